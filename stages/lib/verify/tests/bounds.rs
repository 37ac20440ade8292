//! Every check is bounded: thousands of adversarial inputs, each under a time cap, no panics.
//!
//! The inputs are the known ways to hang or crash a checker: deep nesting, towers of powers,
//! huge factorials, long digit strings, unbalanced braces, nested fractions, long lists,
//! megabyte completions, and random bytes.

use spice_verify::{
    check, check_with_options, extract_answer, is_equivalent, parse_task, AnswerType, TaskKind,
};
use std::time::{Duration, Instant};

/// Per-check cap. Debug builds are several times slower, so they get more room.
const CAP: Duration =
    if cfg!(debug_assertions) { Duration::from_millis(500) } else { Duration::from_millis(50) };

/// xorshift64*: a dependency-free, reproducible stream for the random inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn adversarial() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for n in [1, 10, 47, 48, 49, 100, 1000, 5000] {
        v.push("(".repeat(n) + "1" + &")".repeat(n));
        v.push("(".repeat(n));
        v.push("{".repeat(n) + "x");
        v.push("}".repeat(n));
        v.push("\\frac{".repeat(n) + "1" + &"}{2}".repeat(n));
        v.push("\\frac{\\frac{".repeat(n));
        v.push("\\sqrt{".repeat(n) + "2" + &"}".repeat(n));
        v.push("10^".repeat(n) + "10");
        v.push("x^".repeat(n) + "x");
        v.push("\\boxed{".repeat(n) + "1" + &"}".repeat(n));
        v.push("-".repeat(n) + "1");
        v.push("1".repeat(n * 10));
        v.push(format!("\\{{{}\\}}", (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")));
        v.push((0..n).map(|_| "1\\pm").collect::<String>() + "1");
        v.push("$".repeat(n));
        v.push("\\(".repeat(n) + "x");
        v.push("\\left(".repeat(n));
        v.push("|".repeat(n));
        v.push(format!("\\begin{{pmatrix}}{}\\end{{pmatrix}}", vec!["1 & 2"; n].join("\\\\")));
        v.push("\\text{".repeat(n));
        v.push("{\"a\":".repeat(n));
        v.push("1,".repeat(n));
        v.push("x = ".repeat(n) + "1");
        v.push("\\{".repeat(n) + &"\\}".repeat(n));
    }
    for s in [
        "10^10^10",
        "9999!",
        "(10^{10^{10}})!",
        "170!",
        "171!",
        "2^{2^{2^{2^{2^{2}}}}}",
        "\\binom{10^9}{10^9}",
        "0^0",
        "0/0",
        "1/0",
        "\\ln 0",
        "\\sqrt{-1}",
        "(-8)^{1/3}",
        "\\tan(\\pi/2)",
        "10^{-400}",
        "1e400",
        "1e-400",
        "\\infty - \\infty",
        "x/0",
        "0^{-1}",
        "\\log_1 5",
        "\\log_0 0",
        "e^{e^{e^{e^{10}}}}",
        "99999999999999999999999999999999999999999!",
        "\\frac{1}{\\frac{1}{\\frac{1}{0}}}",
        "(1,2",
        "[1,2",
        "\\begin{pmatrix}",
        "\\end{pmatrix}",
        "\\boxed{",
        "\\boxed",
        "}{",
        "\\",
        "\\\\\\\\",
        "^",
        "_",
        "!",
        "%",
        "\\%",
        "\\text{}",
        "\\frac",
        "\\sqrt",
        "\\sqrt[",
        "\\sqrt[3",
        "\\log_",
        "x_{",
        "a_",
        "1_",
        "1_1",
        "12_99",
        "\\{\\}",
        "\\{",
        "",
        " ",
        "\u{0}",
        "\u{feff}",
        "é",
        "🙂",
        "\\begin{align}",
        "x \\in",
        "\\in x",
        "\\cup",
        "[1,2] \\cup",
        "1:2:3:4",
        "::::",
        "= = =",
        "x < < y",
        "\\pm",
        "\\pm\\pm\\pm",
        "1 2 3 4 5 6 7 8 9",
    ] {
        v.push(s.to_string());
    }
    let alphabet: Vec<&str> = vec![
        "1",
        "0",
        "9",
        "x",
        "y",
        "e",
        "i",
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
        ">",
        "\\le",
        "\\frac",
        "\\sqrt",
        "\\sin",
        "\\ln",
        "\\log",
        "!",
        "%",
        "\\%",
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
        "...",
        "\\left(",
        "\\right)",
        "10^{",
        "e^{",
        "\\cdot",
    ];
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for _ in 0..2500 {
        let len = 1 + rng.below(80);
        v.push((0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect());
    }
    for _ in 0..500 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        v.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    v
}

#[test]
fn adversarial_inputs_are_bounded() {
    let inputs = adversarial();
    let golds = ["1", "x^2+1", "(1,2)", "\\{1,2\\}", "\\frac{1}{2}", "B"];
    let options = ["1", "x^2+1", "\\frac{1}{2}", "(1,2)"];
    let types = [
        None,
        Some(AnswerType::Integer),
        Some(AnswerType::Float),
        Some(AnswerType::Expression),
        Some(AnswerType::String),
        Some(AnswerType::Boolean),
        Some(AnswerType::List),
    ];
    let start = Instant::now();
    let mut worst = (Duration::ZERO, String::new());
    let mut worst_small = (Duration::ZERO, String::new());
    let mut checks = 0usize;
    let trace = std::env::var_os("SPICE_BOUNDS_TRACE").is_some();
    let mut timed = |label: &str, input: &str, f: &mut dyn FnMut()| {
        if trace {
            eprintln!("{label}: {:?}", input.chars().take(60).collect::<String>());
        }
        let t = Instant::now();
        f();
        let dt = t.elapsed();
        checks += 1;
        if input.len() <= 4096 && dt > worst_small.0 {
            worst_small = (dt, format!("{label}: {}", input.chars().take(60).collect::<String>()));
        }
        if dt > worst.0 {
            worst = (dt, format!("{label}: {}", input.chars().take(60).collect::<String>()));
        }
        assert!(
            dt < CAP,
            "{label} took {dt:?} on {:?}",
            input.chars().take(80).collect::<String>()
        );
    };
    for (i, input) in inputs.iter().enumerate() {
        let gold = golds[i % golds.len()];
        let ty = types[i % types.len()];
        timed("is_equivalent(gold, input)", input, &mut || {
            is_equivalent(gold, input, ty);
        });
        timed("is_equivalent(input, input)", input, &mut || {
            is_equivalent(input, input, ty);
        });
        timed("check free_form", input, &mut || {
            check(gold, input, TaskKind::FreeForm, ty);
        });
        timed("check mcq", input, &mut || {
            check("B", input, TaskKind::Mcq, None);
        });
        timed("check mcq with options", input, &mut || {
            check_with_options("B", input, TaskKind::Mcq, None, 'D', &options);
        });
        timed("check with the input as gold", input, &mut || {
            check(input, "so \\boxed{1}", TaskKind::Any, ty);
        });
        timed("parse_task", input, &mut || {
            parse_task(input, TaskKind::Any, ty);
        });
    }
    // Megabyte-scale completions: only the tail is scanned.
    let big = [
        "The answer is 5. ".repeat(70_000),
        "\\(".repeat(500_000),
        "$1$ ".repeat(250_000),
        "{\"q\": \"\\frac{1}{2}".repeat(60_000),
        "\\boxed{".repeat(200_000),
        "{".repeat(1_000_000),
        "1".repeat(1_000_000),
        "<think>".repeat(150_000),
        "</think>B".repeat(110_000),
        "<think>\\boxed{A}</think>".repeat(40_000),
        "B is correct ".repeat(80_000),
        "the answer is ".repeat(70_000),
        "A) 1\n".repeat(200_000),
        "\\boxed{A} or ".repeat(70_000),
    ];
    for b in &big {
        timed("extract free_form (1 MB)", b, &mut || {
            extract_answer(b, TaskKind::FreeForm);
        });
        timed("extract mcq (1 MB)", b, &mut || {
            extract_answer(b, TaskKind::Mcq);
        });
        timed("parse_task (1 MB)", b, &mut || {
            parse_task(b, TaskKind::Any, None);
        });
        timed("is_equivalent (1 MB)", b, &mut || {
            is_equivalent(b, b, None);
        });
        timed("check, 1 MB gold and completion", b, &mut || {
            check(b, b, TaskKind::Any, None);
        });
        timed("check mcq with options (1 MB)", b, &mut || {
            check_with_options("B", b, TaskKind::Mcq, None, 'D', &options);
        });
    }
    // Inputs the fuzzer once found slow, replayed the way the fuzz target splits them.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut regressions = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fuzz_regressions") {
        let data = std::fs::read(entry.expect("dir entry").path()).expect("regression input");
        let Some((&selector, rest)) = data.split_first() else {
            continue;
        };
        let cut = rest.iter().position(|&b| b == 0xFF).unwrap_or(rest.len() / 2);
        let gold = String::from_utf8_lossy(&rest[..cut]).into_owned();
        let pred = String::from_utf8_lossy(&rest[cut..]).into_owned();
        let text = String::from_utf8_lossy(rest).into_owned();
        let ty = AnswerType::ALL.get(usize::from(selector % 7)).copied();
        let kind =
            [TaskKind::Mcq, TaskKind::FreeForm, TaskKind::Any][usize::from(selector / 7 % 3)];
        timed("regression is_equivalent", &text, &mut || {
            is_equivalent(&gold, &pred, ty);
        });
        timed("regression check", &text, &mut || {
            check(&gold, &pred, kind, ty);
        });
        timed("regression extract", &text, &mut || {
            extract_answer(&text, kind);
        });
        timed("regression parse_task", &text, &mut || {
            parse_task(&text, kind, ty);
        });
        regressions += 1;
    }
    assert!(regressions > 0, "no fuzz regression inputs found in {}", dir.display());
    let total = start.elapsed();
    println!(
        "bounds: {checks} checks over {} inputs in {total:?}; worst {:?} ({}); worst on inputs up to 4 KiB {:?} ({})",
        inputs.len() + big.len(),
        worst.0,
        worst.1,
        worst_small.0,
        worst_small.1
    );
    assert!(
        total < Duration::from_secs(if cfg!(debug_assertions) { 300 } else { 30 }),
        "total {total:?}"
    );
}
