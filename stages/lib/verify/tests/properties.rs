//! Property tests: no input panics, answers are equivalent to themselves, and equivalence
//! does not depend on argument order for the symmetric notations.

use proptest::prelude::*;
use spice_verify::{
    check, extract_answer, extract_choice, is_equivalent, parse_task, read_gold, AnswerType,
    TaskKind,
};

/// Strings built from the pieces answers are made of, so the parser's corners get exercised
/// far more often than with uniformly random text.
fn latexish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "1",
        "2",
        "0",
        "7",
        "x",
        "y",
        "e",
        "\\pi",
        "+",
        "-",
        "*",
        "/",
        "^",
        "_",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "\\{",
        "\\}",
        ",",
        ";",
        ":",
        "=",
        "<",
        "\\le",
        "\\frac",
        "\\sqrt",
        "\\sin",
        "\\ln",
        "!",
        "%",
        "|",
        "&",
        "\\\\",
        "\\begin{pmatrix}",
        "\\end{pmatrix}",
        "\\pm",
        "\\cup",
        "\\in",
        "\\infty",
        "\\text{cm}",
        "\\boxed{",
        "$",
        " ",
        ".",
        "\\left(",
        "\\right)",
        "10^{",
        "\\cdot",
        "and",
        "=",
        "0.5",
        "1,000",
    ]);
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn any_type() -> impl Strategy<Value = Option<AnswerType>> {
    prop::option::of(prop::sample::select(AnswerType::ALL.to_vec()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn nothing_panics_on_arbitrary_text(a in any::<String>(), b in any::<String>(), ty in any_type()) {
        let _ = is_equivalent(&a, &b, ty);
        let _ = check(&a, &b, TaskKind::Any, ty);
        let _ = extract_answer(&a, TaskKind::FreeForm);
        let _ = extract_choice(&a, 'J');
        let _ = parse_task(&a, TaskKind::Any, ty);
    }

    #[test]
    fn nothing_panics_on_latexish_text(a in latexish(), b in latexish(), ty in any_type()) {
        let _ = is_equivalent(&a, &b, ty);
        let _ = check(&a, &b, TaskKind::FreeForm, ty);
        let _ = check("B", &b, TaskKind::Mcq, None);
        let _ = parse_task(&format!("{{\"question\": \"what is {a}?\", \"answer\": \"{b}\"}}"), TaskKind::Any, ty);
    }

    #[test]
    fn challenger_gold_answers_are_taken_as_they_are(a in latexish(), ty in any_type()) {
        // A valid free-form task's gold answer is a short answer: the checker reads it as it
        // is, never as a solution to extract from (only a boxed one loses its box).
        let json = serde_json::json!({"question": "What is the value asked for here?", "answer": a});
        let mut json = json;
        if let Some(t) = ty {
            json["answer_type"] = t.as_str().into();
        }
        if let Ok(task) = parse_task(&json.to_string(), TaskKind::FreeForm, None).task {
            if !task.answer.contains("\\boxed") && !task.answer.contains("\\fbox") {
                prop_assert_eq!(read_gold(&task.answer, task.answer_type), task.answer.trim(), "{:?}", task.answer);
            }
        }
    }

    #[test]
    fn a_parseable_answer_equals_itself(a in latexish()) {
        // Whatever the string is, the same string is never judged different from itself
        // unless it is empty after cleaning. An empty box (`\boxed{}`) is no answer at all,
        // and is never rewarded, even against itself.
        let content = a.replace("\\boxed", "").replace("\\fbox", "").replace(['{', '}'], "");
        if !content.trim().trim_matches(['$', '.', ',', ';', ' ']).is_empty() && a.len() < 200 {
            prop_assert!(is_equivalent(&a, &a, None), "{a:?}");
        }
    }

    #[test]
    fn numbers_equal_themselves_in_other_spellings(n in -1_000_000i64..1_000_000, d in 1i64..1000) {
        let v = n as f64 / d as f64;
        let latex = format!("\\frac{{{n}}}{{{d}}}");
        let slash = format!("{n}/{d}");
        let decimal = format!("{v:.12}");
        let boxed = format!("\\boxed{{{n}}}");
        let (int, next) = (n.to_string(), (n + 1).to_string());
        prop_assert!(is_equivalent(&latex, &slash, None));
        prop_assert!(is_equivalent(&slash, &decimal, None));
        prop_assert!(is_equivalent(&int, &boxed, Some(AnswerType::Integer)));
        prop_assert!(!is_equivalent(&int, &next, None));
    }

    #[test]
    fn set_order_does_not_matter(mut xs in prop::collection::vec(-50i32..50, 1..8)) {
        let a = format!("\\{{{}\\}}", xs.iter().map(i32::to_string).collect::<Vec<_>>().join(", "));
        xs.reverse();
        let b = format!("\\{{{}\\}}", xs.iter().map(i32::to_string).collect::<Vec<_>>().join(","));
        prop_assert!(is_equivalent(&a, &b, None));
        prop_assert!(is_equivalent(&b, &a, None));
    }

    #[test]
    fn polynomials_match_their_expansion(a in -9i32..10, b in -9i32..10) {
        // (x + a)(x + b) = x^2 + (a+b)x + ab, and shifting one coefficient breaks it.
        let factored = format!("(x + {a})(x + {b})");
        let expanded = format!("x^2 + {}x + {}", a + b, a * b);
        let wrong = format!("x^2 + {}x + {}", a + b, a * b + 1);
        prop_assert!(is_equivalent(&factored, &expanded, Some(AnswerType::Expression)));
        prop_assert!(!is_equivalent(&factored, &wrong, Some(AnswerType::Expression)));
    }
}
