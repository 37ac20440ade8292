//! Progress of long work: an indicatif bar on a terminal (its message, when the worker sets
//! one, follows the counts); elsewhere (Slurm logs, pipes, the
//! driver's captured output) one plain line every `SPICE_PROGRESS_SECS` seconds (default 30)
//! and one at the end, so a log shows the work moving without a wall of redraws.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar over `len` units (`unit`: "rows", "tokens", …) labelled `what`.
pub fn progress(len: u64, what: &str, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}}) {{msg}}"
            ))
            .expect("valid template"),
        );
        pb.set_prefix(what.to_string());
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
        let every = std::env::var("SPICE_PROGRESS_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(30)
            .max(1);
        let weak = pb.downgrade();
        let what = what.to_string();
        let unit = unit.to_string();
        std::thread::spawn(move || {
            let tick = Duration::from_millis(200);
            let mut waited = Duration::ZERO;
            loop {
                std::thread::sleep(tick);
                waited += tick;
                // The stage dropped its bar without finishing it: nothing more to report.
                let Some(bar) = weak.upgrade() else { break };
                let done = bar.is_finished();
                if done || waited.as_secs() >= every {
                    waited = Duration::ZERO;
                    let (pos, len, secs) =
                        (bar.position(), bar.length().unwrap_or(0), bar.elapsed().as_secs_f64());
                    let rate = if secs > 0.0 { pos as f64 / secs } else { 0.0 };
                    // What the worker adds (e.g. finished samples) follows the counts.
                    let msg = bar.message();
                    let msg = if msg.is_empty() { String::new() } else { format!(", {msg}") };
                    eprintln!(
                        "{what}: {pos}/{len} {unit} in {secs:.0} s ({rate:.1} {unit}/s){msg}"
                    );
                }
                if done {
                    break;
                }
            }
        });
    }
    pb
}
