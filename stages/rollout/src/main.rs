//! `spice-rollout`: the Reasoner stage of one SPICE iteration (see the library docs).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "spice-rollout",
    version,
    about = "Reasoner: K answers per valid task, without the document",
    long_about = "Reads <run>/iter-N/tasks/, and for every valid task among the Challenger's kept \
trajectories samples reasoner.num_generations (K) answers with the iteration's policy, from the \
Reasoner prompt (pipelines/prompts/reasoner/) that shows the question and options only. Writes \
<run>/iter-N/rollouts/. Settings come from <run>/run.toml."
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
    spice_rollout::run(&ctx)
}
