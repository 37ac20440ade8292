//! `spice show`: one example of an iteration, the way a person audits it — the document, the
//! task the Challenger wrote from it (raw and parsed, valid or not), the Challenger's reward,
//! and the Reasoner's answers with their verdicts. Reads the shards only.

mod example;
mod text;

use std::path::PathBuf;

use anyhow::Result;

use example::{iteration_of, latest_with_tasks, Iteration};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Headed sections for a terminal.
    Text,
    /// One JSON object (texts never cut).
    Json,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// Run folder.
    #[arg(long, default_value = "data/runs/default")]
    pub run: PathBuf,
    /// Iteration (default: the one the --task id names, else the latest with tasks).
    #[arg(long)]
    pub iter: Option<u32>,
    /// Task id, e.g. `i0003-d012-a0005` (default: the first valid selected task whose answers
    /// are partly right, else the first with answers, else the first valid, else the first).
    #[arg(long)]
    pub task: Option<String>,
    /// List every task of the iteration (validity, answers, p̂, r_C) instead of showing one.
    #[arg(long)]
    pub list: bool,
    /// Print long texts (document, completions, prompts) in full.
    #[arg(long)]
    pub full: bool,
    /// Characters of each long text printed without --full.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub max_chars: usize,
    /// Also print the rendered prompts the model saw (Challenger's and Reasoner's).
    #[arg(long)]
    pub prompts: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: &ShowArgs) -> Result<()> {
    let iteration = match (args.iter, args.task.as_deref().and_then(iteration_of)) {
        (Some(i), _) | (None, Some(i)) => i,
        (None, None) => latest_with_tasks(&args.run)?,
    };
    let it = Iteration::load(&args.run, iteration)?;
    if args.list {
        let lines = it.lines();
        match args.format {
            Format::Text => print!("{}", text::task_table(&lines)),
            Format::Json => println!("{}", serde_json::to_string_pretty(&lines)?),
        }
        return Ok(());
    }
    let (task_id, picked_by) = match &args.task {
        Some(t) => (t.clone(), None),
        None => {
            let (t, why) = it.pick();
            (t, Some(why.to_string()))
        }
    };
    let mut ex = it.example(&task_id, args.prompts)?;
    ex.picked_by = picked_by;
    match args.format {
        Format::Text => print!("{}", text::render(&ex, (!args.full).then_some(args.max_chars))),
        Format::Json => println!("{}", serde_json::to_string_pretty(&ex)?),
    }
    Ok(())
}
