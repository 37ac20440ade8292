//! End-to-end tests across stages live in `tests/tests/`.
