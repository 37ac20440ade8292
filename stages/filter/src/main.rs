//! `spice-filter`: the filter stage of one SPICE iteration (see the library docs).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "spice-filter",
    version,
    about = "Parse and validate one iteration's Challenger attempts: challenger/ → tasks/",
    long_about = "Every attempt of <run>/iter-N/challenger/ (all parts must be committed) becomes \
one row of <run>/iter-N/tasks/part-I.parquet, valid or not: task id i{iter}-d{doc}-a{attempt}, \
question, options, gold answer (the letter for multiple choice), answer type, the JSON the model \
wrote, and for an invalid task a machine-readable reason (no_json, missing_field, bad_letter, …) \
with a detail. The manifest records attempts, valid rate, counts by reason and by format. A rerun \
with unchanged inputs and [challenger] config does nothing."
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
    spice_filter::run(&ctx)
}
