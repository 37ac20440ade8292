//! `spice-score`: the score stage of one SPICE iteration (see the library docs).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "spice-score",
    version,
    about = "Verify the Reasoner's answers and compute both roles' rewards: tasks/ + rollouts/ + \
challenger/ → scored/",
    long_about = "Reasoner rows: one per answer, reward 1 if equivalent to the gold answer, \
advantage against the mean of the task's answers; in the batch only for one valid task per \
document, drawn with a seed of (run seed, iteration, document). Challenger rows: one per selected \
attempt, reward from the task's pass rate ([reward] challenger_reward; the invalid_penalty for \
invalid tasks), advantage against the mean of the document's attempts. The manifest records \
pass-rate shares, Reasoner accuracy, mean rewards and advantages, and batch sizes. A rerun with \
unchanged inputs, [reward] config and seed does nothing."
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
    spice_score::run(&ctx)
}
