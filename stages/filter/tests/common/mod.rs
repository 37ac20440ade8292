//! The hand-built run folder of `spice-tests`, and the filter binary under test.

#![allow(dead_code)]

pub use spice_tests::verdict_run::*;

pub const FILTER: &str = env!("CARGO_BIN_EXE_spice-filter");
