//! Fuzz target: every public entry point on arbitrary bytes. A crash, a hang (libFuzzer's
//! `-timeout`), or a check slower than the cap is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spice_verify::{
    check, check_with_options, extract_answer, extract_choice, extract_choice_with_options,
    is_equivalent, parse_task, read_gold, strip_reasoning, AnswerType, TaskKind,
};
use std::time::{Duration, Instant};

/// Slowest acceptable run of all the calls together. The library promises a few
/// milliseconds per call; coverage-instrumented builds on a shared machine are several times
/// slower and noisy, so this cap is there to catch hangs and super-linear blow-ups, while
/// `tests/bounds.rs` holds release builds to 50 ms per call.
const CAP: Duration = Duration::from_millis(500);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    // Split into a gold and a prediction at the first 0xFF byte (or halfway).
    let cut = rest.iter().position(|&b| b == 0xFF).unwrap_or(rest.len() / 2);
    let gold = String::from_utf8_lossy(&rest[..cut]);
    let pred = String::from_utf8_lossy(&rest[cut.min(rest.len())..]);
    let ty = AnswerType::ALL.get(usize::from(selector % 7)).copied();
    let kind = [TaskKind::Mcq, TaskKind::FreeForm, TaskKind::Any][usize::from(selector / 7 % 3)];

    let t = Instant::now();
    let _ = is_equivalent(&gold, &pred, ty);
    let _ = check(&gold, &pred, kind, ty);
    let _ = extract_answer(&text, kind);
    let _ = extract_choice(&text, 'J');
    // Option texts: the gold's lines (up to ten), as a benchmark's options would be.
    let options: Vec<&str> = gold.lines().take(10).collect();
    let _ = extract_choice_with_options(&pred, 'J', &options);
    let _ = check_with_options(&gold, &pred, kind, ty, 'J', &options);
    let _ = read_gold(&gold, ty);
    let _ = strip_reasoning(&text);
    let parsed = parse_task(&text, kind, ty);
    if let Ok(task) = parsed.task {
        // A valid task's own answer is always accepted by the checker.
        if task.kind == TaskKind::FreeForm {
            assert!(is_equivalent(&task.answer, &task.answer, task.answer_type), "gold {:?} rejects itself", task.answer);
        }
    }
    let dt = t.elapsed();
    assert!(dt < CAP, "calls took {dt:?}");
});
