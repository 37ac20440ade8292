//! The prompt templates of both roles (`pipelines/prompts/`, frozen per run in
//! `<run>/prompts/`), rendered to the user message that the policy's chat template wraps.
//!
//! - [`Prompts::locate`] finds the folder: the run's frozen copy, `SPICE_PROMPTS`, or the
//!   repository's `pipelines/prompts`;
//! - [`Prompts::challenger_task`] / [`Prompts::challenger_format`] render the Challenger's two
//!   prompts; [`Prompts::reasoner`] the Reasoner's;
//! - [`parse_format_choice`] reads the format the model chose in the paper's first prompt.

mod format;
mod templates;

pub use format::{parse_format_choice, FormatChoice};
pub use templates::{ChoiceOption, Prompts};
