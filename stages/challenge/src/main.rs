//! `spice-challenge`: the Challenger stage of one SPICE iteration (see the library docs).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "spice-challenge",
    version,
    about = "Challenger: write tasks grounded in the iteration's documents",
    long_about = "Samples the iteration's B documents from <run>/chunks, renders the Challenger \
prompts of the configured prompt set, and generates attempts with the iteration's policy until \
each document has a valid task or challenger.max_attempts is reached. Writes every attempt to \
<run>/iter-N/challenger/, marking the G kept for training. Settings come from <run>/run.toml."
)]
struct Cli {
    #[command(flatten)]
    stage: spice_stage::StageArgs,
    #[command(flatten)]
    cell: spice_stage::CellArgs,
}

fn main() -> anyhow::Result<()> {
    spice_stage::init_logging();
    let cli = Cli::parse();
    let ctx = spice_stage::StageCtx::load(&cli.stage)?.in_cell(cli.cell.crossplay);
    spice_challenge::run(&ctx)
}
