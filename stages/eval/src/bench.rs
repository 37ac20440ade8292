//! Benchmark questions from the column layouts users have: one preset per well-known
//! benchmark (auto-detected from the column names), or an explicit `--columns` mapping.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use spice_verify::TaskKind;

use crate::table::{read_table, Table};

/// One benchmark question, ready for the Reasoner prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub id: String,
    pub subject: Option<String>,
    pub kind: TaskKind,
    pub question: String,
    /// Option texts in letter order (empty for free-form).
    pub options: Vec<String>,
    /// The gold answer: a letter for MCQ, the answer text for free-form.
    pub gold: String,
}

impl Question {
    /// The last letter an MCQ answer may use (`D` for four options, `J` for ten).
    pub fn max_letter(&self) -> char {
        letter(self.options.len().saturating_sub(1))
    }
}

/// Column names for a layout no preset covers (`--columns question=q,answer=a,...`).
/// With `options` the questions are multiple choice, else free-form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ColumnMap {
    pub question: String,
    pub answer: String,
    pub options: Option<String>,
    pub subject: Option<String>,
    pub id: Option<String>,
}

impl FromStr for ColumnMap {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut m: HashMap<&str, String> = HashMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .with_context(|| format!("`{part}` in --columns is not KEY=COLUMN"))?;
            let k = k.trim();
            if !["question", "answer", "options", "subject", "id"].contains(&k) {
                bail!(
                    "unknown key `{k}` in --columns (keys: question, answer, options, subject, id)"
                );
            }
            m.insert(k, v.trim().to_string());
        }
        let need = |k: &str, m: &mut HashMap<&str, String>| {
            m.remove(k).with_context(|| format!("--columns needs `{k}=COLUMN`"))
        };
        Ok(ColumnMap {
            question: need("question", &mut m)?,
            answer: need("answer", &mut m)?,
            options: m.remove("options"),
            subject: m.remove("subject"),
            id: m.remove("id"),
        })
    }
}

/// The column layouts of the benchmarks users evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Preset {
    /// `problem`, `answer`, `subject`, `unique_id`.
    Math500,
    /// `question`, `answer` with the gold after `#### ` (commas removed).
    Gsm8k,
    /// `problem`, `answer`, `id` (optional).
    Aime,
    /// Same layout as `aime`.
    Amc,
    /// `question`, `options` (list), `answer` (letter) or `answer_index`, `category`, `question_id`.
    MmluPro,
    /// `Question`, `Correct Answer`, `Incorrect Answer 1..3` (options shuffled per question).
    GpqaDiamond,
    /// `question`, `options`, `answer_letter`, `discipline`/`field`, `uuid`.
    Supergpqa,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::Supergpqa,
        Preset::MmluPro,
        Preset::GpqaDiamond,
        Preset::Math500,
        Preset::Aime,
        Preset::Amc,
        Preset::Gsm8k,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Math500 => "math500",
            Preset::Gsm8k => "gsm8k",
            Preset::Aime => "aime",
            Preset::Amc => "amc",
            Preset::MmluPro => "mmlu_pro",
            Preset::GpqaDiamond => "gpqa_diamond",
            Preset::Supergpqa => "supergpqa",
        }
    }

    /// Columns a file must have for this preset (`a|b`: either).
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Preset::Math500 => &["problem", "answer", "unique_id"],
            Preset::Gsm8k => &["question", "answer"],
            Preset::Aime | Preset::Amc => &["problem", "answer"],
            Preset::MmluPro => &["question", "options", "answer|answer_index"],
            Preset::GpqaDiamond => &[
                "Question",
                "Correct Answer",
                "Incorrect Answer 1",
                "Incorrect Answer 2",
                "Incorrect Answer 3",
            ],
            Preset::Supergpqa => &["question", "options", "answer_letter"],
        }
    }

    fn fits(self, columns: &[String]) -> bool {
        self.required().iter().all(|r| r.split('|').any(|c| columns.iter().any(|have| have == c)))
    }

    /// The first preset whose columns the file has (most specific first); `aime` and `amc`
    /// share a layout, so the file name decides between them.
    pub fn detect(columns: &[String], path: &Path) -> Option<Preset> {
        let found = Preset::ALL.into_iter().find(|p| p.fits(columns))?;
        let name =
            path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
        Some(if found == Preset::Aime && name.contains("amc") { Preset::Amc } else { found })
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a file's rows become questions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    Preset(Preset),
    Columns(ColumnMap),
}

/// One `--bench` argument: `FILE` (named by its stem) or `NAME=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchSpec {
    pub name: String,
    pub path: PathBuf,
}

impl FromStr for BenchSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some((name, path)) = s.split_once('=') {
            if !name.is_empty() && !name.contains(['/', '\\', '.']) {
                return Ok(BenchSpec { name: name.to_string(), path: PathBuf::from(path) });
            }
        }
        let path = PathBuf::from(s);
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or(s);
        let name = file.split('.').next().filter(|n| !n.is_empty()).unwrap_or(file).to_string();
        Ok(BenchSpec { name, path })
    }
}

/// A benchmark file read into questions.
pub struct Benchmark {
    pub name: String,
    pub path: PathBuf,
    pub layout: Layout,
    pub questions: Vec<Question>,
}

/// Read `spec` with `preset`, `columns`, or the detected preset; keep the first `limit`
/// questions (0 = all).
pub fn load_benchmark(
    spec: &BenchSpec,
    preset: Option<Preset>,
    columns: Option<&ColumnMap>,
    limit: usize,
) -> Result<Benchmark> {
    let path = &spec.path;
    let table = read_table(path)?;
    let layout = match (columns, preset) {
        (Some(c), _) => {
            for col in [
                Some(&c.question),
                Some(&c.answer),
                c.options.as_ref(),
                c.subject.as_ref(),
                c.id.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                if !table.columns.contains(col) {
                    bail!(
                        "{}: --columns names column `{col}`, which the file does not have (columns: {})",
                        path.display(),
                        table.columns.join(", ")
                    );
                }
            }
            Layout::Columns(c.clone())
        }
        (None, Some(p)) => {
            if !p.fits(&table.columns) {
                bail!(
                    "{}: preset `{p}` needs columns {}, the file has: {}",
                    path.display(),
                    p.required().join(", "),
                    table.columns.join(", ")
                );
            }
            Layout::Preset(p)
        }
        (None, None) => match Preset::detect(&table.columns, path) {
            Some(p) => Layout::Preset(p),
            None if table.rows.is_empty() && table.columns.is_empty() => {
                bail!("{}: the file has no rows", path.display())
            }
            None => {
                let presets: Vec<String> = Preset::ALL
                    .iter()
                    .map(|p| format!("  {}: {}", p, p.required().join(", ")))
                    .collect();
                bail!(
                    "{}: the columns fit no preset.\nThe file has: {}\nThe presets need (a|b = either):\n{}\n\
                     Name the columns with --columns question=COL,answer=COL[,options=COL,subject=COL,id=COL].",
                    path.display(),
                    table.columns.join(", "),
                    presets.join("\n")
                )
            }
        },
    };
    let questions = to_questions(&table, &layout, path, &spec.name, limit)?;
    Ok(Benchmark { name: spec.name.clone(), path: path.clone(), layout, questions })
}

fn to_questions(
    table: &Table,
    layout: &Layout,
    path: &Path,
    bench: &str,
    limit: usize,
) -> Result<Vec<Question>> {
    let take = if limit == 0 { table.rows.len() } else { limit.min(table.rows.len()) };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(take);
    for (i, row) in table.rows.iter().take(take).enumerate() {
        let ctx = RowCtx { path, row: i, obj: row };
        let q = match layout {
            Layout::Preset(p) => preset_question(*p, &ctx, bench)?,
            Layout::Columns(c) => column_question(c, &ctx)?,
        };
        if let Some(first) = seen.insert(q.id.clone(), i) {
            bail!("{}: rows {first} and {i} have the same question id {:?}", path.display(), q.id);
        }
        out.push(q);
    }
    Ok(out)
}

/// A row being read, for errors that name file, row and field (rows count from 0 in file
/// order, as Polars and DuckDB's `row_number() - 1` do).
struct RowCtx<'a> {
    path: &'a Path,
    row: usize,
    obj: &'a Map<String, Value>,
}

impl RowCtx<'_> {
    fn err(&self, field: &str, what: &str) -> anyhow::Error {
        anyhow::anyhow!("{}: row {}, field `{field}`: {what}", self.path.display(), self.row)
    }

    /// A text field: strings as they are, numbers as written; `None` when absent, null or blank.
    fn opt(&self, field: &str) -> Option<String> {
        match self.obj.get(field)? {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.trim().to_string()),
            v => Some(v.to_string()),
        }
    }

    fn text(&self, field: &str) -> Result<String> {
        self.opt(field).ok_or_else(|| self.err(field, "missing or empty"))
    }

    fn list(&self, field: &str) -> Result<Vec<String>> {
        match self.obj.get(field) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    Value::Null => Err(self.err(field, "an option is null")),
                    v => Ok(v.to_string()),
                })
                .collect(),
            // Some exports store the list as JSON text.
            Some(Value::String(s)) => serde_json::from_str::<Vec<Value>>(s)
                .map(|v| {
                    v.iter()
                        .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
                        .collect()
                })
                .map_err(|_| self.err(field, "not a list of options")),
            None | Some(Value::Null) => Err(self.err(field, "missing")),
            Some(_) => Err(self.err(field, "not a list of options")),
        }
    }

    fn id(&self, field: Option<&str>) -> String {
        field.and_then(|f| self.opt(f)).unwrap_or_else(|| self.row.to_string())
    }
}

fn preset_question(p: Preset, r: &RowCtx, bench: &str) -> Result<Question> {
    Ok(match p {
        Preset::Math500 | Preset::Aime | Preset::Amc => Question {
            id: r.id(Some(if p == Preset::Math500 { "unique_id" } else { "id" })),
            subject: r.opt("subject"),
            kind: TaskKind::FreeForm,
            question: r.text("problem")?,
            options: Vec::new(),
            gold: r.text("answer")?,
        },
        Preset::Gsm8k => {
            let answer = r.text("answer")?;
            let gold = gsm8k_gold(&answer)
                .ok_or_else(|| r.err("answer", "no final answer after `####`"))?;
            Question {
                id: r.id(Some("id")),
                subject: None,
                kind: TaskKind::FreeForm,
                question: r.text("question")?,
                options: Vec::new(),
                gold,
            }
        }
        Preset::MmluPro => {
            let options = r.list("options")?;
            let gold = match r.opt("answer") {
                Some(a) => gold_letter(&Value::String(a), &options, r, "answer")?,
                None => {
                    let v = r.obj.get("answer_index").cloned().unwrap_or(Value::Null);
                    gold_letter(&v, &options, r, "answer_index")?
                }
            };
            Question {
                id: r.id(Some("question_id")),
                subject: r.opt("category"),
                kind: TaskKind::Mcq,
                question: r.text("question")?,
                options,
                gold,
            }
        }
        Preset::Supergpqa => {
            let options = r.list("options")?;
            let v = Value::String(r.text("answer_letter")?);
            let gold = gold_letter(&v, &options, r, "answer_letter")?;
            Question {
                id: r.id(Some("uuid")),
                subject: r.opt("discipline").or_else(|| r.opt("field")),
                kind: TaskKind::Mcq,
                question: r.text("question")?,
                options,
                gold,
            }
        }
        Preset::GpqaDiamond => {
            let id = r.id(Some("Record ID"));
            let correct = r.text("Correct Answer")?;
            let mut options = vec![correct.clone()];
            for k in 1..=3 {
                options.push(r.text(&format!("Incorrect Answer {k}"))?);
            }
            let order = gpqa_order(bench, &id);
            let options: Vec<String> = order.iter().map(|&j| options[j].clone()).collect();
            let pos = order.iter().position(|&j| j == 0).expect("a permutation contains 0");
            Question {
                id,
                subject: r.opt("High-level domain").or_else(|| r.opt("Subdomain")),
                kind: TaskKind::Mcq,
                question: r.text("Question")?,
                options,
                gold: letter(pos).to_string(),
            }
        }
    })
}

fn column_question(c: &ColumnMap, r: &RowCtx) -> Result<Question> {
    let question = r.text(&c.question)?;
    let (kind, options, gold) = match &c.options {
        Some(col) => {
            let options = r.list(col)?;
            let v = r.obj.get(&c.answer).cloned().unwrap_or(Value::Null);
            let gold = gold_letter(&v, &options, r, &c.answer)?;
            (TaskKind::Mcq, options, gold)
        }
        None => (TaskKind::FreeForm, Vec::new(), r.text(&c.answer)?),
    };
    Ok(Question {
        id: r.id(c.id.as_deref()),
        subject: c.subject.as_deref().and_then(|s| r.opt(s)),
        kind,
        question,
        options,
        gold,
    })
}

/// GSM8K's gold: the text after the last `####`, without thousands separators.
pub fn gsm8k_gold(answer: &str) -> Option<String> {
    let (_, tail) = answer.rsplit_once("####")?;
    let gold: String = tail.trim().chars().filter(|c| *c != ',').collect();
    (!gold.is_empty()).then_some(gold)
}

/// `A` for 0, `B` for 1, …
pub fn letter(i: usize) -> char {
    (b'A' + i as u8) as char
}

/// The gold letter of an MCQ row from a letter (`C`, `(C)`), a 0-based index, or the text
/// of the right option.
fn gold_letter(v: &Value, options: &[String], r: &RowCtx, field: &str) -> Result<String> {
    if options.len() < 2 || options.len() > 26 {
        return Err(r.err(field, &format!("{} options (a question needs 2 to 26)", options.len())));
    }
    let n = options.len();
    let idx = match v {
        Value::Number(x) => x.as_u64().map(|i| i as usize),
        Value::String(s) => {
            let t = s.trim().trim_matches(|c: char| c == '(' || c == ')' || c == '.').trim();
            let mut ch = t.chars();
            match (ch.next(), ch.next()) {
                (Some(c), None) if c.is_ascii_uppercase() => Some((c as u8 - b'A') as usize),
                _ => options.iter().position(|o| o == s.trim()),
            }
        }
        Value::Null => return Err(r.err(field, "missing")),
        _ => None,
    };
    match idx {
        Some(i) if i < n => Ok(letter(i).to_string()),
        _ => Err(r.err(field, &format!("{v} is not one of the {n} options (A–{})", letter(n - 1)))),
    }
}

/// The order GPQA's four options are shown in: a permutation of [correct, incorrect 1..3]
/// fixed by the benchmark name and question id alone, so every checkpoint and every run sees
/// the same letters. splitmix64 rather than a `rand` generator, whose streams may change
/// between versions.
pub fn gpqa_order(bench: &str, id: &str) -> [usize; 4] {
    let mut state = spice_stage::derive_seed(0, 0, &format!("eval/{bench}/{id}/options"), 0);
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order = [0, 1, 2, 3];
    for i in (1..4).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_gold_is_after_the_marker_without_commas() {
        assert_eq!(gsm8k_gold("3 + 4 = 7\n#### 1,234").as_deref(), Some("1234"));
        assert_eq!(gsm8k_gold("#### -5").as_deref(), Some("-5"));
        assert_eq!(gsm8k_gold("no marker 5"), None);
        assert_eq!(gsm8k_gold("#### "), None);
    }

    #[test]
    fn column_map_parses_and_rejects_unknown_keys() {
        let c: ColumnMap = "question=q, answer=a,options=opts".parse().unwrap();
        assert_eq!(c.question, "q");
        assert_eq!(c.options.as_deref(), Some("opts"));
        assert!("question=q".parse::<ColumnMap>().unwrap_err().to_string().contains("answer"));
        assert!("question=q,answer=a,gold=g"
            .parse::<ColumnMap>()
            .unwrap_err()
            .to_string()
            .contains("gold"));
    }

    #[test]
    fn bench_spec_takes_a_name_or_the_file_stem() {
        let b: BenchSpec = "data/bench/math500.test.jsonl".parse().unwrap();
        assert_eq!(
            (b.name.as_str(), b.path.as_path()),
            ("math500", Path::new("data/bench/math500.test.jsonl"))
        );
        let b: BenchSpec = "mine=x/y.parquet".parse().unwrap();
        assert_eq!((b.name.as_str(), b.path.as_path()), ("mine", Path::new("x/y.parquet")));
    }

    #[test]
    fn gpqa_orders_are_permutations_that_vary_and_repeat() {
        let mut positions = std::collections::HashSet::new();
        for i in 0..40 {
            let o = gpqa_order("gpqa_diamond", &format!("rec{i}"));
            let mut s = o;
            s.sort();
            assert_eq!(s, [0, 1, 2, 3]);
            assert_eq!(o, gpqa_order("gpqa_diamond", &format!("rec{i}")));
            positions.insert(o.iter().position(|&j| j == 0).unwrap());
        }
        // The correct answer lands on every letter somewhere among 40 questions.
        assert_eq!(positions.len(), 4);
    }

    #[test]
    fn detection_prefers_the_most_specific_preset() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let p = Path::new("x.jsonl");
        assert_eq!(
            Preset::detect(&cols(&["problem", "answer", "subject", "unique_id"]), p),
            Some(Preset::Math500)
        );
        assert_eq!(Preset::detect(&cols(&["problem", "answer", "id"]), p), Some(Preset::Aime));
        assert_eq!(
            Preset::detect(&cols(&["problem", "answer"]), Path::new("amc23.jsonl")),
            Some(Preset::Amc)
        );
        assert_eq!(Preset::detect(&cols(&["question", "answer"]), p), Some(Preset::Gsm8k));
        assert_eq!(
            Preset::detect(&cols(&["question", "options", "answer", "category"]), p),
            Some(Preset::MmluPro)
        );
        assert_eq!(
            Preset::detect(&cols(&["question", "options", "answer_letter", "answer"]), p),
            Some(Preset::Supergpqa)
        );
        assert_eq!(Preset::detect(&cols(&["text", "label"]), p), None);
    }
}
