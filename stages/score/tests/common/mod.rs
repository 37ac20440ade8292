//! The hand-built run folder of `spice-tests`, with the filter stage run in process (its binary
//! belongs to another crate) and the score binary under test.

#![allow(dead_code)]

use clap::Parser;
pub use spice_tests::verdict_run::*;

pub const SCORE: &str = env!("CARGO_BIN_EXE_spice-score");

#[derive(Parser)]
struct FilterCli {
    #[command(flatten)]
    stage: spice_stage::StageArgs,
}

/// `spice-filter --run <run> --iter ITER <extra…>`, which must succeed.
pub fn filter_ok(run: &Run, extra: &[&str]) {
    let root = run.root.display().to_string();
    let iter = ITER.to_string();
    let args =
        ["spice-filter", "--run", &root, "--iter", &iter].into_iter().chain(extra.iter().copied());
    let cli = FilterCli::parse_from(args);
    let ctx = spice_stage::StageCtx::load(&cli.stage).expect("run.toml");
    spice_filter::run(&ctx).expect("spice-filter");
}
