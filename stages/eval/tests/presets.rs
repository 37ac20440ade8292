//! Every preset reads a small file in its real column layout; bad files fail with errors that
//! name the file, the row and the field.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;
use spice_eval::{load_benchmark, BenchSpec, ColumnMap, Layout, Preset};
use spice_verify::TaskKind;

fn spec(p: &Path) -> BenchSpec {
    p.to_str().unwrap().parse().unwrap()
}

#[test]
fn math500_aime_amc_gsm8k_jsonl_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let math = dir.path().join("math500.jsonl");
    write_jsonl(
        &math,
        &[
            json!({"problem": "Compute $1+1$.", "solution": "...", "answer": "2", "subject": "Algebra", "level": 1, "unique_id": "test/algebra/1.json"}),
            json!({"problem": "Simplify $\\frac{4}{6}$.", "solution": "...", "answer": "\\frac{2}{3}", "subject": "Prealgebra", "level": 2, "unique_id": "test/prealgebra/7.json"}),
        ],
    );
    let b = load_benchmark(&spec(&math), None, None, 0).unwrap();
    assert_eq!(b.layout, Layout::Preset(Preset::Math500));
    assert_eq!(b.name, "math500");
    assert_eq!(b.questions[1].id, "test/prealgebra/7.json");
    assert_eq!(b.questions[1].gold, "\\frac{2}{3}");
    assert_eq!(b.questions[1].subject.as_deref(), Some("Prealgebra"));
    assert_eq!(b.questions[0].kind, TaskKind::FreeForm);

    // AIME answers are often integers; ids optional.
    let aime = dir.path().join("aime24.jsonl");
    write_jsonl(
        &aime,
        &[
            json!({"id": 60, "problem": "Find N.", "answer": 204}),
            json!({"problem": "Find M.", "answer": "33"}),
        ],
    );
    let b = load_benchmark(&spec(&aime), None, None, 0).unwrap();
    assert_eq!(b.layout, Layout::Preset(Preset::Aime));
    assert_eq!((b.questions[0].id.as_str(), b.questions[0].gold.as_str()), ("60", "204"));
    assert_eq!((b.questions[1].id.as_str(), b.questions[1].gold.as_str()), ("1", "33"));
    let amc = dir.path().join("amc23.jsonl");
    write_jsonl(&amc, &[json!({"id": 0, "problem": "p", "answer": 27.0})]);
    let b = load_benchmark(&spec(&amc), None, None, 0).unwrap();
    assert_eq!(b.layout, Layout::Preset(Preset::Amc));
    assert_eq!(b.questions[0].gold, "27.0");

    let gsm = dir.path().join("gsm8k_test.jsonl");
    write_jsonl(
        &gsm,
        &[
            json!({"question": "Janet sells 1,000 eggs and 234 more.", "answer": "1000 + 234 = <<1000+234=1234>>1234\n#### 1,234"}),
            json!({"question": "Q2", "answer": "It loses 3.\n#### -3"}),
        ],
    );
    let b = load_benchmark(&spec(&gsm), None, None, 0).unwrap();
    assert_eq!(b.layout, Layout::Preset(Preset::Gsm8k));
    assert_eq!(b.questions[0].gold, "1234");
    assert_eq!(b.questions[1].gold, "-3");
    assert_eq!(b.questions[1].id, "1");
    // --limit keeps the first N.
    assert_eq!(load_benchmark(&spec(&gsm), None, None, 1).unwrap().questions.len(), 1);
}

#[test]
fn mmlu_pro_parquet_with_up_to_ten_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mmlu_pro.parquet");
    let golds = write_mmlu_pro(&path);
    let b = load_benchmark(&spec(&path), None, None, 0).unwrap();
    assert_eq!(b.layout, Layout::Preset(Preset::MmluPro));
    assert_eq!(b.questions.len(), 6);
    let got: Vec<&str> = b.questions.iter().map(|q| q.gold.as_str()).collect();
    assert_eq!(got, golds.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(b.questions[1].options.len(), 10);
    assert_eq!(b.questions[1].max_letter(), 'J');
    assert_eq!(b.questions[0].max_letter(), 'D');
    assert_eq!(b.questions[5].subject.as_deref(), Some("physics"));
    assert_eq!(b.questions[2].id, "72");
    assert!(b.questions.iter().all(|q| q.kind == TaskKind::Mcq));

    // Without `answer`, `answer_index` (0-based) gives the same letters.
    let only_index = dir.path().join("mmlu_idx.jsonl");
    write_jsonl(
        &only_index,
        &[
            json!({"question_id": 1, "question": "q", "options": ["a", "b", "c"], "answer_index": 2, "category": "x"}),
        ],
    );
    let b = load_benchmark(&spec(&only_index), None, None, 0).unwrap();
    assert_eq!(b.layout, Layout::Preset(Preset::MmluPro));
    assert_eq!(b.questions[0].gold, "C");
}

#[test]
fn supergpqa_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("supergpqa.jsonl");
    write_jsonl(
        &path,
        &[json!({
            "uuid": "abc", "question": "Which?", "options": ["w", "x", "y", "z", "v"],
            "answer": "y", "answer_letter": "C", "discipline": "Engineering", "field": "Optics", "difficulty": "hard"
        })],
    );
    let b = load_benchmark(&spec(&path), None, None, 0).unwrap();
    assert_eq!(b.layout, Layout::Preset(Preset::Supergpqa));
    let q = &b.questions[0];
    assert_eq!(
        (q.id.as_str(), q.gold.as_str(), q.subject.as_deref()),
        ("abc", "C", Some("Engineering"))
    );
    assert_eq!(q.options[q.gold.as_bytes()[0] as usize - b'A' as usize], "y");
}

#[test]
fn gpqa_options_are_shuffled_per_question_and_the_same_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpqa_diamond.parquet");
    let n = 24;
    let ids: Vec<String> = (0..n).map(|i| format!("rec{i:03}")).collect();
    let col = |f: &dyn Fn(usize) -> String| -> Vec<String> { (0..n).map(f).collect() };
    let (q, c, i1, i2, i3, dom) = (
        col(&|i| format!("Question {i}?")),
        col(&|i| format!("right {i}")),
        col(&|i| format!("wrong a{i}")),
        col(&|i| format!("wrong b{i}")),
        col(&|i| format!("wrong c{i}")),
        col(&|i| if i % 2 == 0 { "Physics".into() } else { "Chemistry".into() }),
    );
    let s = |v: &Vec<String>| strings(&v.iter().map(|x| Some(x.as_str())).collect::<Vec<_>>());
    write_parquet(
        &path,
        vec![
            ("Record ID", s(&ids)),
            ("Question", s(&q)),
            ("Correct Answer", s(&c)),
            ("Incorrect Answer 1", s(&i1)),
            ("Incorrect Answer 2", s(&i2)),
            ("Incorrect Answer 3", s(&i3)),
            ("High-level domain", s(&dom)),
        ],
    );
    let a = load_benchmark(&spec(&path), None, None, 0).unwrap();
    let b = load_benchmark(&spec(&path), None, None, 0).unwrap();
    assert_eq!(a.layout, Layout::Preset(Preset::GpqaDiamond));
    assert_eq!(a.questions, b.questions, "the shuffle is deterministic");
    let mut letters = std::collections::HashSet::new();
    for (i, q) in a.questions.iter().enumerate() {
        let pos = (q.gold.as_bytes()[0] - b'A') as usize;
        assert_eq!(
            q.options[pos],
            format!("right {i}"),
            "gold letter points at the correct answer"
        );
        let mut sorted = q.options.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![
                format!("right {i}"),
                format!("wrong a{i}"),
                format!("wrong b{i}"),
                format!("wrong c{i}")
            ]
        );
        assert_eq!(q.id, ids[i]);
        letters.insert(q.gold.clone());
    }
    assert!(letters.len() >= 3, "the correct answer is not always in the same place: {letters:?}");
}

#[test]
fn explicit_columns_for_other_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sums.jsonl");
    write_jsonl(&path, &arithmetic_rows(5));
    let cols: ColumnMap = "question=q,answer=a,subject=topic,id=key".parse().unwrap();
    let b = load_benchmark(&spec(&path), None, Some(&cols), 0).unwrap();
    assert_eq!(b.questions[0].id, "sum-0");
    assert_eq!(b.questions[0].question, "What is 11 + 23?");
    assert_eq!(b.questions[0].gold, "34");
    assert_eq!(b.questions[1].subject.as_deref(), Some("odd"));

    // Multiple choice by option text.
    let mcq = dir.path().join("mcq.jsonl");
    write_jsonl(
        &mcq,
        &[
            json!({"stem": "Capital of France?", "choices": ["Rome", "Paris", "Oslo"], "right": "Paris"}),
        ],
    );
    let cols: ColumnMap = "question=stem,answer=right,options=choices".parse().unwrap();
    let b = load_benchmark(&spec(&mcq), None, Some(&cols), 0).unwrap();
    assert_eq!((b.questions[0].kind, b.questions[0].gold.as_str()), (TaskKind::Mcq, "B"));
}

#[test]
fn bad_files_give_errors_naming_file_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.jsonl");
    write_jsonl(&unknown, &[json!({"text": "x", "label": 1})]);
    let e = format!("{:#}", load_benchmark(&spec(&unknown), None, None, 0).err().unwrap());
    assert!(e.contains("unknown.jsonl") && e.contains("fit no preset"), "{e}");
    assert!(e.contains("label, text"), "lists the file's columns: {e}");
    assert!(
        e.contains("gpqa_diamond: Question, Correct Answer"),
        "lists the presets' columns: {e}"
    );

    let missing = dir.path().join("math.jsonl");
    write_jsonl(
        &missing,
        &[
            json!({"problem": "a", "answer": "1", "unique_id": "u0"}),
            json!({"problem": "b", "answer": null, "unique_id": "u1"}),
        ],
    );
    let e = format!("{:#}", load_benchmark(&spec(&missing), None, None, 0).err().unwrap());
    assert!(e.contains("math.jsonl: row 1, field `answer`: missing"), "{e}");

    let gsm = dir.path().join("gsm.jsonl");
    write_jsonl(&gsm, &[json!({"question": "q", "answer": "no marker"})]);
    let e = format!("{:#}", load_benchmark(&spec(&gsm), None, None, 0).err().unwrap());
    assert!(e.contains("row 0, field `answer`") && e.contains("####"), "{e}");

    let bad_letter = dir.path().join("mmlu.jsonl");
    write_jsonl(
        &bad_letter,
        &[
            json!({"question_id": 1, "question": "q", "options": ["a", "b", "c", "d"], "answer": "F"}),
        ],
    );
    let e = format!("{:#}", load_benchmark(&spec(&bad_letter), None, None, 0).err().unwrap());
    assert!(e.contains("row 0, field `answer`") && e.contains("A–D"), "{e}");

    let e = format!(
        "{:#}",
        load_benchmark(&spec(&missing), Some(Preset::Gsm8k), None, 0).err().unwrap()
    );
    assert!(e.contains("preset `gsm8k` needs columns question, answer"), "{e}");

    let cols: ColumnMap = "question=q,answer=nope".parse().unwrap();
    let e = format!("{:#}", load_benchmark(&spec(&unknown), None, Some(&cols), 0).err().unwrap());
    assert!(e.contains("column `q`"), "{e}");

    let dup = dir.path().join("dup.jsonl");
    write_jsonl(
        &dup,
        &[
            json!({"problem": "a", "answer": "1", "id": 3}),
            json!({"problem": "b", "answer": "2", "id": 3}),
        ],
    );
    let e = format!("{:#}", load_benchmark(&spec(&dup), None, None, 0).err().unwrap());
    assert!(e.contains("rows 0 and 1") && e.contains("\"3\""), "{e}");

    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"problem\": \"a\", \"answer\": \"1\"}\n{not json\n").unwrap();
    let e = format!("{:#}", load_benchmark(&spec(&broken), None, None, 0).err().unwrap());
    assert!(e.contains("broken.jsonl: line 2"), "{e}");

    let e =
        format!("{:#}", load_benchmark(&spec(Path::new("x.csv")), None, None, 0).err().unwrap());
    assert!(e.contains("x.csv") && e.contains(".parquet or .jsonl"), "{e}");
}
