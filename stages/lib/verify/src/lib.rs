//! Task parsing and answer verification for SPICE.
//!
//! Two judgements decide every reward in SPICE: whether the Challenger's task is well formed
//! ([`parse_task`]) and whether the Reasoner's answer is equivalent to the gold answer
//! ([`check`], [`is_equivalent`]). Both are pure functions of their inputs, never panic, and
//! are bounded in time and size (see [`bounds`]), so one pathological completion cannot stall
//! a training run.
//!
//! ```
//! use spice_verify::{check, is_equivalent, TaskKind};
//! assert!(is_equivalent("\\frac{1}{2}", "0.5", None));
//! let c = check("B", "so the answer is \\boxed{\\text{(B)}}", TaskKind::Mcq, None);
//! assert!(c.equivalent);
//! ```

pub mod answer;
pub mod bounds;
pub mod json_extract;
pub mod task;

pub use answer::equiv::is_equivalent;
pub use answer::mcq::{extract_choice, extract_choice_with_options};
pub use answer::reasoning::strip_reasoning;
pub use answer::MCQ_MAX_LETTER;
pub use answer::{
    check, check_with_letters, check_with_options, equiv, extract, extract_answer, mcq, read_gold,
    reasoning, text, Check,
};
pub use spice_vocab::{AnswerType, TaskKind, UnknownName};
pub use task::{
    copied_from_prompt, parse_task, parse_task_for_prompt, Invalid, InvalidReason, ParsedTask, Task,
};
