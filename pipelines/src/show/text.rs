//! `spice show` for a terminal: headed sections, long texts cut at `max_chars` unless asked for
//! in full.

use std::fmt::Write;

use spice_schemas::rows::TaskRow;

use super::example::{Answer, Attempt, Example, TaskLine};

/// The whole example as text. `max_chars` cuts each long text (`None`: print in full).
pub fn render(ex: &Example, max_chars: Option<usize>) -> String {
    let mut o = String::new();
    header(&mut o, ex);
    document(&mut o, ex, max_chars);
    challenger(&mut o, ex, max_chars);
    reasoner(&mut o, ex, max_chars);
    section(&mut o, &format!("Other tasks of iteration {} (`--task ID`)", ex.iteration));
    o.push_str(&task_table(&ex.other_tasks));
    o
}

/// Which task this is, why it was picked, and whether its data may still change.
fn header(o: &mut String, ex: &Example) {
    let t = &ex.task;
    let _ = writeln!(o, "Task {} of iteration {} in {}", t.task_id, ex.iteration, ex.run.display());
    if let Some(why) = &ex.picked_by {
        let _ = writeln!(o, "picked: {why}; `--task ID` shows another (list at the end)");
    }
    if !ex.unfinished.is_empty() {
        let _ = writeln!(
            o,
            "note: not finished yet in this iteration: {} (what they hold may be partial)",
            ex.unfinished.join(", ")
        );
    }
}

fn document(o: &mut String, ex: &Example, max_chars: Option<usize>) {
    section(o, "Document");
    match (&ex.document, &ex.document_note) {
        (Some(d), _) => {
            let _ = writeln!(
                o,
                "chunk {}: {}, document {}, chunk {}, {} tokens\n",
                d.chunk_id, d.source, d.doc_index, d.chunk_index, d.n_tokens
            );
            block(o, &d.text, max_chars);
        }
        (None, Some(note)) => {
            let _ = writeln!(o, "({note})");
        }
        (None, None) => {
            let _ = writeln!(
                o,
                "(none: the Challenger wrote this task without a document, grounding = \"none\")"
            );
        }
    }
}

/// The Challenger's attempt, the task parsed from it, and its reward.
fn challenger(o: &mut String, ex: &Example, max_chars: Option<usize>) {
    let t = &ex.task;
    section(o, &format!("Challenger (document slot {}, attempt {})", t.doc_slot, t.attempt));
    match &ex.attempt {
        Some(a) => attempt(o, a, t.selected, max_chars),
        None => {
            let _ = writeln!(o, "(its row is not in challenger/)");
        }
    }
    sub(o, "parsed task");
    parsed_task(o, t);
    challenger_score(o, ex);
}

/// The attempt's summary line, then its prompt, format choice and completion.
fn attempt(o: &mut String, a: &Attempt, selected: bool, max_chars: Option<usize>) {
    let _ = writeln!(
        o,
        "{}{}, prompt set {}, finish {}, {} tokens, {}, policy {}",
        a.task_kind,
        a.answer_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
        a.prompt_set,
        a.finish_reason,
        a.tokens,
        if selected { "selected for training (T_C)" } else { "not selected for training" },
        a.policy_id
    );
    if let Some(p) = &a.prompt {
        sub(o, "prompt");
        block(o, p, max_chars);
    }
    if let Some(f) = &a.format_completion {
        sub(o, "format choice");
        block(o, f, max_chars);
    }
    if a.response_prefix.is_empty() {
        sub(o, "completion");
    } else {
        sub(o, &format!("completion (the prompt wrote its start, `{}`)", a.response_prefix));
    }
    block(o, &format!("{}{}", a.response_prefix, a.completion), max_chars);
}

/// The task's fields, one per line, names in a column.
fn parsed_task(o: &mut String, t: &TaskRow) {
    let field = |o: &mut String, name: &str, v: &str| {
        let _ = writeln!(o, "{name:<12} {v}");
    };
    if t.valid {
        field(o, "valid", "yes");
    } else {
        field(o, "valid", &format!("no: {}", t.invalid_reason.as_deref().unwrap_or("?")));
        if let Some(d) = &t.invalid_detail {
            field(o, "detail", d);
        }
    }
    field(o, "kind", &t.task_kind);
    if let Some(q) = &t.question {
        field(o, "question", q);
    }
    for (letter, opt) in ['A', 'B', 'C', 'D'].iter().zip(&t.options) {
        field(o, if *letter == 'A' { "options" } else { "" }, &format!("{letter}. {opt}"));
    }
    if let Some(a) = &t.answer {
        field(o, "answer", a);
    }
    if let Some(a) = &t.answer_type {
        field(o, "answer type", a);
    }
}

/// r_C and the pass rate it came from, or why there is none.
fn challenger_score(o: &mut String, ex: &Example) {
    match &ex.challenger_score {
        Some(s) => {
            let p = match s.pass_rate {
                Some(p) => format!(
                    "p̂ {p:.3} ({} of {} answers correct)",
                    ex.answers.iter().filter(|a| a.correct == Some(true)).count(),
                    ex.answers.len()
                ),
                None => "no pass rate (invalid task)".to_string(),
            };
            let _ = writeln!(o, "\nr_C {:.3}, advantage {:+.3}, {p}", s.reward, s.advantage);
        }
        None if ex.task.selected => {
            let _ = writeln!(o, "\nnot scored yet");
        }
        None => {
            let _ = writeln!(o, "\nno r_C: only selected attempts are scored");
        }
    }
}

/// The Reasoner's shared prompt and every answer, or why there are none.
fn reasoner(o: &mut String, ex: &Example, max_chars: Option<usize>) {
    let t = &ex.task;
    let in_batch = ex.answers.first().and_then(|a| a.in_batch);
    section(
        o,
        &format!(
            "Reasoner: {} answer(s){}",
            ex.answers.len(),
            match in_batch {
                Some(true) => ", in the training batch T_R",
                Some(false) => ", not in T_R (another task of this document was chosen)",
                None => "",
            }
        ),
    );
    if ex.answers.is_empty() {
        let _ = writeln!(
            o,
            "{}",
            if !t.valid {
                "(none: the Reasoner answers valid tasks only)"
            } else if !t.selected {
                "(none: the Reasoner answers selected tasks only)"
            } else {
                "(none yet)"
            }
        );
    }
    if let Some(p) = &ex.reasoner_prompt {
        sub(o, "prompt (the same for every answer)");
        block(o, p, max_chars);
    }
    for a in &ex.answers {
        sub(o, &answer_header(a));
        block(o, &a.completion, max_chars);
    }
}

fn answer_header(a: &Answer) -> String {
    let verdict = match a.correct {
        Some(true) => "correct",
        Some(false) => "wrong",
        None => "not scored yet",
    };
    let mut h = format!("answer {}: {verdict}", a.sample);
    if a.correct.is_some() {
        match &a.extracted {
            Some(e) => {
                let _ = write!(h, ", extracted `{e}`");
            }
            None => h.push_str(", no answer extracted"),
        }
    }
    if let (Some(r), Some(adv)) = (a.reward, a.advantage) {
        let _ = write!(h, ", reward {r}, advantage {adv:+.3}");
    }
    let _ = write!(h, ", finish {}, {} tokens", a.finish_reason, a.tokens);
    h
}

/// One line per task: id, selected, validity, answers, p̂, r_C.
pub fn task_table(lines: &[TaskLine]) -> String {
    // `p̂` is two chars (a combining accent) in one column: pad it one wider.
    let mut o = format!(
        "{:<18} {:<8} {:<24} {:>7} {:>7} {:>7}\n",
        "task", "selected", "valid", "correct", "p̂", "r_C"
    );
    for l in lines {
        let valid = if l.valid {
            "yes".to_string()
        } else {
            format!("no: {}", l.invalid_reason.as_deref().unwrap_or("?"))
        };
        let correct =
            if l.answers > 0 { format!("{}/{}", l.correct, l.answers) } else { "-".into() };
        let opt = |v: Option<f32>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            o,
            "{:<18} {:<8} {:<24} {:>7} {:>6} {:>7}",
            l.task_id,
            if l.selected { "yes" } else { "no" },
            valid,
            correct,
            opt(l.pass_rate),
            opt(l.challenger_reward)
        );
    }
    if lines.is_empty() {
        o.push_str("(none)\n");
    }
    o
}

fn section(o: &mut String, title: &str) {
    let _ = writeln!(o, "\n=== {title} ===");
}

fn sub(o: &mut String, title: &str) {
    let _ = writeln!(o, "\n--- {title} ---");
}

/// A text, cut at `max_chars` characters with a note of how much was left out.
fn block(o: &mut String, text: &str, max_chars: Option<usize>) {
    let total = text.chars().count();
    match max_chars {
        Some(max) if total > max => {
            let cut: String = text.chars().take(max).collect();
            let _ =
                writeln!(o, "{cut}\n[… {} more characters; --full prints everything]", total - max);
        }
        _ => {
            let _ = writeln!(o, "{}", text.trim_end_matches('\n'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_with_a_note() {
        let mut o = String::new();
        block(&mut o, "héllo world", Some(5));
        assert_eq!(o, "héllo\n[… 6 more characters; --full prints everything]\n");
        let mut o = String::new();
        block(&mut o, "héllo world\n", None);
        assert_eq!(o, "héllo world\n");
    }
}
