//! Fixtures shared by the tests of several crates. The end-to-end tests across stages live in
//! `tests/tests/`.

pub mod verdict_run;
