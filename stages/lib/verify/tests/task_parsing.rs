//! Task parsing: every invalid reason is reachable, and the model slips we tolerate parse.

use spice_verify::{parse_task, AnswerType, InvalidReason, Task, TaskKind};
use std::collections::BTreeMap;

const MCQ_OK: &str = r#"{"question": "Which gas do plants absorb during photosynthesis?", "options": {"A": "Oxygen", "B": "Carbon dioxide", "C": "Nitrogen", "D": "Helium"}, "answer": "B"}"#;

fn ok(completion: &str, expect: TaskKind, forced: Option<AnswerType>) -> Task {
    match parse_task(completion, expect, forced).task {
        Ok(t) => t,
        Err(e) => panic!("expected a valid task from {completion:?}, got {e}"),
    }
}

fn reason(completion: &str, expect: TaskKind, forced: Option<AnswerType>) -> InvalidReason {
    match parse_task(completion, expect, forced).task {
        Ok(t) => panic!("expected an invalid task from {completion:?}, got {t:?}"),
        Err(e) => {
            assert!(!e.detail.is_empty(), "every invalid task explains itself");
            e.reason
        }
    }
}

/// One completion per reason, and each must produce exactly that reason.
fn invalid_cases() -> Vec<(InvalidReason, &'static str, TaskKind, Option<AnswerType>)> {
    use InvalidReason::*;
    use TaskKind::*;
    vec![
        (NoJson, "I think a good question would be about photosynthesis.", Any, None),
        (NoJson, "", Mcq, None),
        (InvalidJson, r#"{"question": "What is 2+2?", "answer": "#, FreeForm, None),
        (InvalidJson, "{{{{", Any, None),
        (MissingField, r#"{"answer": 4, "answer_type": "integer"}"#, FreeForm, None),
        (
            MissingField,
            r#"{"question": "What is the sum of two and two?", "answer_type": "integer"}"#,
            FreeForm,
            None,
        ),
        (MissingField, r#"{"question": "Which planet is closest to the Sun?"}"#, Mcq, None),
        (
            MissingField,
            r#"{"question": "Which planet is closest to the Sun?", "options": ["Mercury", "Venus", "Earth", "Mars"]}"#,
            Mcq,
            None,
        ),
        (
            BadLetter,
            r#"{"question": "Which planet is closest to the Sun?", "options": ["Mercury", "Venus", "Earth", "Mars"], "answer": "E"}"#,
            Mcq,
            None,
        ),
        (
            BadLetter,
            r#"{"question": "Which planet is closest to the Sun?", "options": ["Mercury", "Venus", "Earth", "Mars"], "answer": "Pluto"}"#,
            Mcq,
            None,
        ),
        (
            WrongOptionCount,
            r#"{"question": "Which planet is closest to the Sun?", "options": ["Mercury", "Venus", "Earth"], "answer": "A"}"#,
            Mcq,
            None,
        ),
        (
            WrongOptionCount,
            r#"{"question": "Which planet is closest to the Sun?", "options": ["Mercury", "Venus", "Earth", "Mars", "Jupiter"], "answer": "A"}"#,
            Mcq,
            None,
        ),
        (
            EmptyOption,
            r#"{"question": "Which planet is closest to the Sun?", "options": ["Mercury", " ", "Earth", "Mars"], "answer": "A"}"#,
            Mcq,
            None,
        ),
        (
            DuplicateOptions,
            r#"{"question": "Which planet is closest to the Sun?", "options": ["Mercury", "Venus", "mercury", "Mars"], "answer": "A"}"#,
            Mcq,
            None,
        ),
        (
            DuplicateOptions,
            r#"{"question": "What is one half written as a decimal?", "options": ["0.5", "\\frac{1}{2}", "0.25", "2"], "answer": "A"}"#,
            Mcq,
            None,
        ),
        (
            TrivialStem,
            r#"{"question": "Pick one", "options": ["Mercury", "Venus", "Earth", "Mars"], "answer": "A"}"#,
            Mcq,
            None,
        ),
        (
            TrivialStem,
            r#"{"question": "Compute", "answer": "4", "answer_type": "integer"}"#,
            FreeForm,
            None,
        ),
        (
            UnknownAnswerType,
            r#"{"question": "How many moons does Mars have?", "answer": "2", "answer_type": "count"}"#,
            FreeForm,
            None,
        ),
        (
            AnswerTypeMismatch,
            r#"{"question": "What is seven divided by two?", "answer": "3.5", "answer_type": "integer"}"#,
            FreeForm,
            None,
        ),
        (
            AnswerTypeMismatch,
            r#"{"question": "Is every prime number odd?", "answer": "perhaps", "answer_type": "boolean"}"#,
            FreeForm,
            None,
        ),
        (
            AnswerTypeMismatch,
            r#"{"question": "How many moons does Mars have?", "answer": "2", "answer_type": "integer"}"#,
            FreeForm,
            Some(AnswerType::Expression),
        ),
        (
            UnparseableAnswer,
            r#"{"question": "How many moons does Mars have?", "answer": "two-ish}{", "answer_type": "integer"}"#,
            FreeForm,
            None,
        ),
        (
            UnparseableAnswer,
            r#"{"question": "Simplify the expression x times x.", "answer": "\\frac{x", "answer_type": "expression"}"#,
            FreeForm,
            None,
        ),
        (
            QuestionLeaksAnswer,
            r#"{"question": "Given that x = 12, what is x?", "answer": "12", "answer_type": "integer"}"#,
            FreeForm,
            None,
        ),
        (
            QuestionLeaksAnswer,
            r#"{"question": "Which city, Paris, is the capital of France?", "answer": "Paris", "answer_type": "string"}"#,
            FreeForm,
            None,
        ),
        (
            QuestionLeaksAnswer,
            r#"{"question": "Since mitochondria make ATP, which organelle makes ATP?", "options": ["Ribosome", "Mitochondria", "Nucleus", "Vacuole"], "answer": "B"}"#,
            Mcq,
            None,
        ),
        (
            RefersToDocument,
            r#"{"question": "According to the passage, how many moons does Mars have?", "answer": "2", "answer_type": "integer"}"#,
            FreeForm,
            None,
        ),
        (
            RefersToDocument,
            r#"{"question": "What year is mentioned in the text as the founding date?", "options": ["1900", "1910", "1920", "1930"], "answer": "C"}"#,
            Mcq,
            None,
        ),
        (
            TooLong,
            r#"{"question": "What is the value of the sum described here?", "answer": "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111", "answer_type": "integer"}"#,
            FreeForm,
            None,
        ),
        (
            FormatMismatch,
            r#"{"question": "Which planet is closest to the Sun?", "options": ["Mercury", "Venus", "Earth", "Mars"], "answer": "A"}"#,
            FreeForm,
            None,
        ),
    ]
}

#[test]
fn every_invalid_reason_is_reachable() {
    let cases = invalid_cases();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (want, completion, expect, forced) in &cases {
        let got = reason(completion, *expect, *forced);
        assert_eq!(got, *want, "completion {completion:?}");
        *seen.entry(want.as_str()).or_default() += 1;
    }
    // A question longer than the cap.
    let long = format!(
        r#"{{"question": "{} ?", "answer": "4", "answer_type": "integer"}}"#,
        "word ".repeat(1000)
    );
    assert_eq!(reason(&long, TaskKind::FreeForm, None), InvalidReason::TooLong);
    *seen.entry("too_long").or_default() += 1;
    // A question copied from the prompt it answers (only the prompt-aware parser sees it).
    let copied = r#"{"question": "Which gas do plants absorb from the air?", "answer": "CO2", "answer_type": "string"}"#;
    let prompt = r#"Answer like this: {"question": "Which gas do plants absorb from the air?"}"#;
    let got = spice_verify::parse_task_for_prompt(copied, prompt, TaskKind::FreeForm, None)
        .task
        .unwrap_err()
        .reason;
    assert_eq!(got, InvalidReason::CopiedFromPrompt);
    *seen.entry("copied_from_prompt").or_default() += 1;
    println!("task parsing: {} invalid cases", cases.len() + 2);
    for (r, n) in &seen {
        println!("  {r:<22} {n}");
    }
    for r in InvalidReason::ALL {
        assert!(seen.contains_key(r.as_str()), "no test case produces {r}");
    }
}

#[test]
fn reasons_serialise_snake_case() {
    let p = parse_task("no json", TaskKind::Any, None);
    let e = p.task.unwrap_err();
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        serde_json::json!({"reason": "no_json", "detail": e.detail})
    );
}

#[test]
fn mcq_option_spellings() {
    let forms = [
        r#"{"question": "Which gas do plants absorb during photosynthesis?", "options": ["Oxygen", "Carbon dioxide", "Nitrogen", "Helium"], "correct_answer": "B"}"#,
        r#"{"question": "Which gas do plants absorb during photosynthesis?", "options": ["A) Oxygen", "B) Carbon dioxide", "C) Nitrogen", "D) Helium"], "answer": "(B)"}"#,
        r#"{"question": "Which gas do plants absorb during photosynthesis?", "choices": ["(A) Oxygen", "(B) Carbon dioxide", "(C) Nitrogen", "(D) Helium"], "correct_option": "B) Carbon dioxide"}"#,
        r#"{"question": "Which gas do plants absorb during photosynthesis?", "A": "Oxygen", "B": "Carbon dioxide", "C": "Nitrogen", "D": "Helium", "answer": "B. Carbon dioxide"}"#,
        r#"{"stem": "Which gas do plants absorb during photosynthesis?", "options": {"a": "Oxygen", "b": "Carbon dioxide", "c": "Nitrogen", "d": "Helium"}, "answer": "Carbon dioxide"}"#,
        r#"{"Question": "Which gas do plants absorb during photosynthesis?", "Options": {"A": "Oxygen", "B": "Carbon dioxide", "C": "Nitrogen", "D": "Helium"}, "Correct Answer": "option B"}"#,
    ];
    for f in forms {
        let t = ok(f, TaskKind::Mcq, None);
        assert_eq!(t.kind, TaskKind::Mcq);
        assert_eq!(t.answer, "B", "{f}");
        assert_eq!(t.options, ["Oxygen", "Carbon dioxide", "Nitrogen", "Helium"], "{f}");
        assert_eq!(t.answer_type, None);
    }
}

#[test]
fn model_slips_are_tolerated() {
    let wrapped = [
        format!("Sure! Here is the task:\n```json\n{MCQ_OK}\n```\nLet me know if you need more."),
        MCQ_OK.replace("\"B\"}", "\"B\",}"),
        MCQ_OK.replace('"', "'"),
        MCQ_OK.replacen("\"question\"", "“question”", 1),
        format!("First draft: {{\"question\": \"draft\"}}\nFinal: {MCQ_OK}"),
    ];
    for w in &wrapped {
        assert_eq!(ok(w, TaskKind::Any, None).answer, "B", "{w}");
    }
    let latex = r#"{"question": "Simplify the fraction two fourths completely.", "answer": "\frac{1}{2}", "answer_type": "expression"}"#;
    assert_eq!(ok(latex, TaskKind::FreeForm, None).answer, "\\frac{1}{2}");
    let newline = "{\"question\": \"How many legs\ndoes a spider have?\", \"answer\": 8, \"answer_type\": \"integer\"}";
    assert_eq!(ok(newline, TaskKind::FreeForm, None).answer, "8");
}

#[test]
fn free_form_types() {
    let cases = [
        (
            r#"{"question": "How many legs does a spider have?", "answer": 8, "answer_type": "integer"}"#,
            AnswerType::Integer,
            "8",
        ),
        (
            r#"{"question": "What is the boiling point of water at sea level in Celsius?", "answer": "100.0", "answer_type": "float"}"#,
            AnswerType::Float,
            "100.0",
        ),
        (
            r#"{"question": "What is the derivative of x squared with respect to x?", "answer": "2x", "answer_type": "expression"}"#,
            AnswerType::Expression,
            "2x",
        ),
        (
            r#"{"question": "Which element has the chemical symbol Fe?", "answer": "Iron", "answer_type": "string"}"#,
            AnswerType::String,
            "Iron",
        ),
        (
            r#"{"question": "Is the square root of two irrational?", "answer": true, "answer_type": "boolean"}"#,
            AnswerType::Boolean,
            "true",
        ),
        (
            r#"{"question": "List the first three prime numbers.", "answer": [2, 3, 5], "answer_type": "list"}"#,
            AnswerType::List,
            "2, 3, 5",
        ),
        (
            r#"{"question": "How many legs does a spider have?", "answer": "8"}"#,
            AnswerType::Integer,
            "8",
        ),
    ];
    for (c, ty, ans) in cases {
        let t = ok(c, TaskKind::FreeForm, None);
        assert_eq!((t.answer_type, t.answer.as_str()), (Some(ty), ans), "{c}");
    }
    // A forced type wins over inference and must agree with what was declared.
    let t = ok(
        r#"{"question": "How many legs does a spider have?", "answer": "8"}"#,
        TaskKind::FreeForm,
        Some(AnswerType::Float),
    );
    assert_eq!(t.answer_type, Some(AnswerType::Float));
}

#[test]
fn raw_json_is_kept_for_audit() {
    let p = parse_task(
        r#"{"question": "How many legs does a spider have?", "answer": 8, "answer_type": "integer", "difficulty": "easy", "reasoning": "arachnids"}"#,
        TaskKind::Any,
        None,
    );
    let json = p.json.expect("json kept");
    assert_eq!(json["difficulty"], "easy");
    assert_eq!(json["reasoning"], "arachnids");
    assert_eq!(p.task.unwrap().kind, TaskKind::FreeForm);
}
