//! `spice report`: the per-iteration report of a run (the `spice-report` library) printed as a
//! table, CSV or JSON, and written with its plots into `<run>/report/`.

use std::path::PathBuf;

use anyhow::Result;
use spice_report::Report;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Numbers as rows, iterations as columns.
    Table,
    /// One line per iteration, as in report.csv.
    Csv,
    /// An array of one object per iteration, as in report.json.
    Json,
}

#[derive(clap::Args)]
#[command(
    after_help = "Writes report.csv, report.json and the plots (PNG and SVG: pass_rate, difficulty, \
valid_rate, loss, stage_time, diversity, zero_advantage, eval) into the report folder. Every number is defined in stages/lib/report/README.md; \
stages that have not finished give empty cells."
)]
pub struct ReportArgs {
    /// Run folder.
    #[arg(long, default_value = "data/runs/default")]
    pub run: PathBuf,
    /// Folder for report.csv, report.json and the plots (default: <run>/report).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// What goes to stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the CSV and JSON files but no plots.
    #[arg(long)]
    pub no_plots: bool,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let report = Report::build(&args.run)?;
    let out = args.out.clone().unwrap_or_else(|| args.run.join("report"));
    let files = report.write(&out, !args.no_plots)?;
    match args.format {
        Format::Table => print!("{}", report.table()),
        Format::Csv => print!("{}", report.csv()),
        Format::Json => print!("{}", report.json()),
    }
    eprintln!(
        "report: {} iteration(s) of {}; {} files in {}",
        report.iterations.len(),
        args.run.display(),
        files.len(),
        out.display()
    );
    Ok(())
}
