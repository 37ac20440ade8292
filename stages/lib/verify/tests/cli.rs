//! The `spice-verify check` binary: one output line per input line, errors named by line,
//! and the throughput the pipeline relies on.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

fn run_check(input: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spice-verify"))
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn spice-verify");
    let mut stdin = child.stdin.take().expect("stdin");
    let owned = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(owned.as_bytes()));
    let out = child.wait_with_output().expect("run spice-verify");
    writer.join().expect("writer thread").expect("write stdin");
    assert!(out.status.success(), "exit status {:?}", out.status);
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

#[test]
fn output_lines_stay_aligned_with_input_lines() {
    let input = [
        r#"{"gold": "1/2", "pred": "so \\boxed{0.5}"}"#,
        "this is not json",
        "",
        r#"{"gold": 5}"#,
        r#"{"gold": "B", "pred": "The answer is (B).", "kind": "mcq"}"#,
        r#"{"gold": 3, "pred": "3", "answer_type": "nonsense"}"#,
        r#"{"gold": 7, "pred": "\\boxed{8}", "answer_type": "integer"}"#,
    ]
    .join("\n");
    let out = run_check(&input, &[]);
    assert_eq!(out.len(), 7);
    assert_eq!(out[0], serde_json::json!({"equivalent": true, "extracted": "0.5"}));
    for (i, line) in [(1, 2), (2, 3), (3, 4), (5, 6)] {
        assert_eq!(out[i]["line"], line, "{}", out[i]);
        assert!(out[i]["error"].as_str().unwrap().starts_with(&format!("line {line}:")));
    }
    assert_eq!(out[4], serde_json::json!({"equivalent": true, "extracted": "B"}));
    assert_eq!(out[6], serde_json::json!({"equivalent": false, "extracted": "8"}));
}

#[test]
fn letter_range_is_configurable() {
    let line = r#"{"gold": "H", "pred": "Answer: H", "kind": "mcq"}"#;
    assert_eq!(run_check(line, &[])[0]["equivalent"], false);
    assert_eq!(run_check(line, &["--max-letter", "J"])[0]["equivalent"], true);
}

#[test]
fn throughput_is_at_least_ten_thousand_lines_per_second() {
    // A mix like a Reasoner batch: boxed numbers, fractions, expressions, MCQ letters,
    // intervals, lists, booleans, strings, and one long completion in ten.
    let long = format!(
        "{} so $\\sqrt{{12}}$ simplifies; \\boxed{{2\\sqrt{{3}}}}",
        "We reason step by step about the problem. ".repeat(40)
    );
    let lines = [
        r#"{"gold": "42", "pred": "We add them. The answer is \\boxed{42}."}"#.to_string(),
        r#"{"gold": "\\frac{1}{2}", "pred": "so we get $\\boxed{0.5}$", "answer_type": "float"}"#.to_string(),
        r#"{"gold": "x^2+2x+1", "pred": "Expanding gives \\boxed{(x+1)^2}", "answer_type": "expression"}"#.to_string(),
        r#"{"gold": "B", "pred": "I think the answer is (B).", "kind": "mcq"}"#.to_string(),
        r#"{"gold": "[0,1)", "pred": "The interval is $\\boxed{[0, 1)}$."}"#.to_string(),
        r#"{"gold": "\\{1,2,3\\}", "pred": "\\boxed{3, 2, 1}", "answer_type": "list"}"#.to_string(),
        r#"{"gold": "true", "pred": "Yes, it holds: \\boxed{\\text{True}}", "answer_type": "boolean"}"#.to_string(),
        r#"{"gold": "Paris", "pred": "The capital is \\boxed{Paris}", "answer_type": "string"}"#.to_string(),
        r#"{"gold": "1000", "pred": "Final Answer: The final answer is $1,000$. I hope it is correct.", "answer_type": "integer"}"#.to_string(),
        serde_json::json!({"gold": "2\\sqrt{3}", "pred": long}).to_string(),
    ];
    let n = 50_000;
    let input: String = (0..n).map(|i| format!("{}\n", lines[i % lines.len()])).collect();
    let t = Instant::now();
    let out = run_check(&input, &[]);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.len(), n);
    for (i, v) in out.iter().enumerate().take(lines.len()) {
        assert_eq!(v["equivalent"], true, "line {}: {v}", i + 1);
    }
    let rate = n as f64 / secs;
    println!("spice-verify check: {n} lines in {secs:.3}s = {rate:.0} lines/s");
    if cfg!(debug_assertions) {
        println!("(debug build: throughput not asserted)");
    } else {
        assert!(rate >= 10_000.0, "{rate:.0} lines/s is below 10,000");
    }
}

#[test]
fn hedged_answers_reasoning_blocks_and_solution_golds() {
    let lines = [
        // Several options named: no answer.
        (r#"{"gold": "B", "pred": "\\boxed{A} or \\boxed{B}", "kind": "mcq"}"#, false),
        (r#"{"gold": "B", "pred": "\\boxed{\\text{B and C}}", "kind": "mcq"}"#, false),
        (r#"{"gold": "A", "pred": "The answer is A, B, C or D.", "kind": "mcq"}"#, false),
        (r#"{"gold": "D", "pred": "We need vitamin D to absorb calcium.", "kind": "mcq"}"#, false),
        // One option, committed.
        (r#"{"gold": "B", "pred": "Comparing the options...\n\nB", "kind": "mcq"}"#, true),
        // A reasoning block is not the answer.
        (r#"{"gold": "42", "pred": "<think>Maybe \\boxed{41}?</think> Final: \\boxed{42}"}"#, true),
        // A gold that is a whole solution is read like a prediction.
        (
            r#"{"gold": "We add $3+4=7$, so the answer is $\\boxed{7}$.", "pred": "The sum is \\boxed{7}."}"#,
            true,
        ),
        (r#"{"gold": "Hence: \\[ \\boxed{2,\\! 450} \\]", "pred": "\\boxed{2450}"}"#, true),
        // Option texts, when the line gives them.
        (
            r#"{"gold": "B", "pred": "\\boxed{Paris}", "kind": "mcq", "options": ["London", "Paris", "Rome", "Berlin"]}"#,
            true,
        ),
    ];
    let input: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    let out = run_check(&input, &[]);
    assert_eq!(out.len(), lines.len());
    for ((line, want), got) in lines.iter().zip(&out) {
        assert_eq!(got["equivalent"], *want, "{line} -> {got}");
    }
}
