//! Mathematical equivalence of two answers.
//!
//! Both answers are cleaned, parsed into [`Node`] trees, brought to a canonical shape
//! (chains reduced, `x \in S` → `S`, `a < x < b` → an interval, `±` expanded), and compared
//! structurally; scalars are compared numerically at seeded sample points. When either side
//! does not parse, the answers are compared as normalised text, never as "probably equal":
//! a wrong "correct" rewards a wrong answer, so every doubt resolves to `false`.

use crate::bounds::{head, EVAL_POINTS, MAX_ANSWER_BYTES, MAX_ELEMENTS, MAX_PM_EXPANSION};
use crate::complex::{close, C};
use crate::eval::{collect_vars, eval, sample_points, EvalError};
use crate::expr::{parse, Node};
use crate::latex::RelOp;
use crate::number::{normalize_number_spelling, plain_integer};
use crate::task::AnswerType;
use crate::text::{normalize_text, parse_bool};
use std::cell::Cell;
use std::collections::BTreeSet;

/// Relative tolerance for numbers without variables.
const NUM_TOL: f64 = 1e-6;
/// Relative tolerance for expressions with variables (agreement at random points).
const EXPR_TOL: f64 = 1e-8;

/// Whether `pred` means the same as `gold`. `answer_type` narrows the comparison when the
/// task declared one (`None` infers it from the answers).
pub fn is_equivalent(gold: &str, pred: &str, answer_type: Option<AnswerType>) -> bool {
    if gold.len() > MAX_ANSWER_BYTES || pred.len() > MAX_ANSWER_BYTES {
        // Too long to parse within bounds: only exact agreement counts.
        return gold.len() <= MAX_ANSWER_BYTES * 4
            && gold.trim() == pred.trim()
            && !gold.trim().is_empty();
    }
    reset_budget();
    let g = clean(gold);
    let p = clean(pred);
    if g.is_empty() || p.is_empty() {
        return false;
    }
    match answer_type {
        Some(AnswerType::Boolean) => {
            return match (parse_bool(&g), parse_bool(&p)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        }
        Some(AnswerType::String) => {
            if normalize_text(&g) == normalize_text(&p) && !normalize_text(&g).is_empty() {
                return true;
            }
            return match (parse(&g), parse(&p)) {
                (Ok(a), Ok(b)) if is_numeric(&a) && is_numeric(&b) => compare(&canon(a), &canon(b)),
                _ => false,
            };
        }
        _ => {}
    }
    if squash(&g) == squash(&p) {
        return true;
    }
    // `\text{E}` and `E`: the same once the wrapper is gone, when nothing else is LaTeX.
    let (pg, pp) = (unwrapped(&g), unwrapped(&p));
    if !pg.is_empty() && pg == pp && !pg.contains(['\\', '^', '_']) {
        return true;
    }
    if let (Some(a), Some(b)) = (plain_integer(&g), plain_integer(&p)) {
        return a == b;
    }
    if is_wordy(&g) && is_wordy(&p) && normalize_text(&g) == normalize_text(&p) {
        return true;
    }
    let (Ok(a), Ok(b)) = (parse(&g), parse(&p)) else {
        return false;
    };
    let (a, b) = (canon(a), canon(b));
    if answer_type == Some(AnswerType::Float) && rounds_to_gold(&g, &b) {
        return true;
    }
    if answer_type == Some(AnswerType::Integer) && !(is_numeric(&a) && is_numeric(&b)) {
        return false;
    }
    compare(&a, &b)
}

/// Cleans an answer string: math delimiters, a whole-answer `\boxed{}`, trailing
/// punctuation, doubled backslashes, escaped dollars, and whole-answer number spellings.
pub fn clean(s: &str) -> String {
    let mut t = head(s, MAX_ANSWER_BYTES).trim().to_string();
    // `\\frac` written by a JSON-escaping slip is `\frac`.
    if t.contains("\\\\") {
        let mut out = String::with_capacity(t.len());
        let b: Vec<char> = t.chars().collect();
        let mut i = 0;
        while i < b.len() {
            if b[i] == '\\'
                && b.get(i + 1) == Some(&'\\')
                && b.get(i + 2).is_some_and(|c| c.is_ascii_alphabetic())
            {
                i += 1;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        t = out;
    }
    // Thousands separators first: `,\!` and `{,}` lose their meaning once `\!` is gone.
    t = t.replace(",\\!", "").replace("{,}", "").replace("{, }", "");
    t = t.replace("\\$", "").replace("\\!", "");
    for _ in 0..4 {
        let before = t.len();
        // Trailing punctuation, but not an ellipsis (`1, 2, 3, ...` is not `1, 2, 3`).
        if !t.trim_end().ends_with("...") {
            t = t
                .trim()
                .trim_end_matches(['.', ',', ';'])
                .trim()
                .to_string();
        }
        for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")] {
            if t.len() >= open.len() + close.len() && t.starts_with(open) && t.ends_with(close) {
                t = t[open.len()..t.len() - close.len()].to_string();
            }
        }
        t = t.trim_matches('$').to_string();
        if let Some(inner) = crate::extract::whole_boxed(&t) {
            t = inner.to_string();
        }
        if t.len() == before {
            break;
        }
    }
    normalize_number_spelling(&t)
}

/// Without text wrappers, braces and whitespace.
fn unwrapped(s: &str) -> String {
    crate::text::strip_latex_wrappers(s)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '{' && *c != '}')
        .collect()
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether the answer is words: a run of three or more letters (so `ab` and `AB` stay
/// case-sensitive mathematics), and no LaTeX beyond text wrappers (so `\begin{pmatrix}…` is
/// never compared as prose).
fn is_wordy(s: &str) -> bool {
    let plain = crate::text::strip_latex_wrappers(s);
    if plain.contains(['\\', '&', '^', '_']) {
        return false;
    }
    let mut run = 0;
    let mut prev_backslash = false;
    let mut in_command = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if prev_backslash {
                in_command = true;
            }
            if !in_command {
                run += 1;
                if run >= 3 {
                    return true;
                }
            }
        } else {
            run = 0;
            in_command = false;
        }
        prev_backslash = c == '\\';
    }
    false
}

fn is_numeric(n: &Node) -> bool {
    let mut vars = BTreeSet::new();
    collect_vars(n, &mut vars);
    vars.is_empty() && eval(n, &[]).is_ok()
}

/// `float` answers: a prediction that rounds to the gold's written precision is correct
/// (gold `3.14`, prediction `\pi`).
fn rounds_to_gold(gold: &str, pred: &Node) -> bool {
    let g = gold.trim();
    let Some((_, frac)) = g.split_once('.') else {
        return false;
    };
    let decimals = frac.len();
    if decimals == 0 || decimals > 12 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (Ok(gv), Ok(pv)) = (g.parse::<f64>(), eval(pred, &[])) else {
        return false;
    };
    if !pv.is_real() {
        return false;
    }
    let scale = 10f64.powi(decimals as i32);
    ((pv.re * scale).round() - (gv * scale).round()).abs() < 0.5
}

// ---------------------------------------------------------------------------------------
// Canonical shape

/// A left-hand side that only names the answer (`x`, `f(x)`, `a_3`, `(p, q)`, `|AB|`,
/// `A:B`, `\frac{NO}{BO}`): no numbers, no sums. `x = 5` then means `5`.
fn is_name(n: &Node) -> bool {
    match n {
        Node::Var(_) => true,
        Node::Mul(a, b) | Node::Div(a, b) => is_name(a) && is_name(b),
        Node::Abs(a) | Node::Func(_, a) => is_name(a),
        Node::Group { items, .. } | Node::Ratio(items) => items.iter().all(is_name),
        _ => false,
    }
}

fn has_vars(n: &Node) -> bool {
    let mut v = BTreeSet::new();
    collect_vars(n, &mut v);
    !v.is_empty()
}

fn contains_pm(n: &Node) -> bool {
    use Node::*;
    match n {
        PlusMinus(..) => true,
        Neg(a) | Func(_, a) | Fact(a) | Abs(a) | Percent(a) => contains_pm(a),
        Add(a, b)
        | Sub(a, b)
        | Mul(a, b)
        | Div(a, b)
        | Pow(a, b)
        | LogBase(a, b)
        | Root(a, b)
        | Binom(a, b) => contains_pm(a) || contains_pm(b),
        _ => false,
    }
}

/// The alternatives of an expression with `±` (`1 ± √5` → `1 + √5`, `1 − √5`), at most
/// [`MAX_PM_EXPANSION`]; each subtree is expanded once, so a chain of `±` stays linear.
fn expand_pm(n: &Node) -> Vec<Node> {
    use Node::*;
    fn two(xs: &[Node], ys: &[Node], f: fn(Box<Node>, Box<Node>) -> Node, out: &mut Vec<Node>) {
        for x in xs {
            for y in ys {
                if out.len() < MAX_PM_EXPANSION {
                    out.push(f(Box::new(x.clone()), Box::new(y.clone())));
                }
            }
        }
    }
    fn one(a: &Node, f: fn(Box<Node>) -> Node) -> Vec<Node> {
        expand_pm(a).into_iter().map(|x| f(Box::new(x))).collect()
    }
    if !contains_pm(n) {
        return vec![n.clone()];
    }
    let binary = |a: &Node, b: &Node, f: fn(Box<Node>, Box<Node>) -> Node| {
        let (xs, ys) = (expand_pm(a), expand_pm(b));
        let mut out = Vec::new();
        two(&xs, &ys, f, &mut out);
        out
    };
    match n {
        PlusMinus(a, b) => {
            let (xs, ys) = (expand_pm(a), expand_pm(b));
            let mut out = Vec::new();
            two(&xs, &ys, Add, &mut out);
            two(&xs, &ys, Sub, &mut out);
            out
        }
        Neg(a) => one(a, Neg),
        Abs(a) => one(a, Abs),
        Fact(a) => one(a, Fact),
        Percent(a) => one(a, Percent),
        Func(f, a) => expand_pm(a)
            .into_iter()
            .map(|x| Func(*f, Box::new(x)))
            .collect(),
        Add(a, b) => binary(a, b, Add),
        Sub(a, b) => binary(a, b, Sub),
        Mul(a, b) => binary(a, b, Mul),
        Div(a, b) => binary(a, b, Div),
        Pow(a, b) => binary(a, b, Pow),
        LogBase(a, b) => binary(a, b, LogBase),
        Root(a, b) => binary(a, b, Root),
        Binom(a, b) => binary(a, b, Binom),
        other => vec![other.clone()],
    }
}

fn is_structural(n: &Node) -> bool {
    matches!(
        n,
        Node::Group { .. }
            | Node::Set(_)
            | Node::List(_)
            | Node::Matrix(_)
            | Node::Rel { .. }
            | Node::In(..)
            | Node::Union(_)
            | Node::Ratio(_)
            | Node::Text(_)
            | Node::Dots
            | Node::EmptySet
    )
}

/// Rewrites a parsed answer into the shape compared by [`compare`].
pub(crate) fn canon(n: Node) -> Node {
    match n {
        Node::Rel { items, ops } => canon_rel(items, ops),
        Node::In(lhs, rhs) if is_name(&lhs) => canon(*rhs),
        Node::In(lhs, rhs) => Node::In(lhs, Box::new(canon(*rhs))),
        Node::List(items) => {
            let mut out = Vec::new();
            for item in items.into_iter().take(MAX_ELEMENTS) {
                match canon(item) {
                    Node::Set(alts) if alts.len() > 1 && out.len() < MAX_ELEMENTS => {
                        out.extend(alts)
                    }
                    other => out.push(other),
                }
            }
            if out.len() == 1 {
                out.pop().unwrap_or(Node::EmptySet)
            } else {
                Node::List(out)
            }
        }
        Node::Set(items) => {
            let mut out = Vec::new();
            for item in items.into_iter().take(MAX_ELEMENTS) {
                match canon(item) {
                    Node::Set(alts) if alts.len() > 1 => out.extend(alts),
                    other => out.push(other),
                }
            }
            Node::Set(out)
        }
        Node::Group { open, close, items } => Node::Group {
            open,
            close,
            items: items.into_iter().take(MAX_ELEMENTS).map(canon).collect(),
        },
        Node::Union(parts) => Node::Union(parts.into_iter().map(canon).collect()),
        Node::Ratio(parts) => Node::Ratio(parts.into_iter().map(canon).collect()),
        scalar if !is_structural(&scalar) && contains_matrix(&scalar) => match fold_matrix(&scalar)
        {
            Some(rows) => Node::Matrix(rows),
            None => scalar,
        },
        scalar if !is_structural(&scalar) && contains_pm(&scalar) => Node::Set(expand_pm(&scalar)),
        other => other,
    }
}

fn contains_matrix(n: &Node) -> bool {
    match n {
        Node::Matrix(_) => true,
        Node::Neg(a) => contains_matrix(a),
        Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) => {
            contains_matrix(a) || contains_matrix(b)
        }
        _ => false,
    }
}

/// Matrix sums, differences, products and scalar multiples, entry by entry (entries stay
/// expressions, compared numerically later). `None` when shapes do not fit.
fn fold_matrix(n: &Node) -> Option<Vec<Vec<Node>>> {
    fn bx(n: Node) -> Box<Node> {
        Box::new(n)
    }
    fn elementwise(
        a: Vec<Vec<Node>>,
        b: Vec<Vec<Node>>,
        f: fn(Box<Node>, Box<Node>) -> Node,
    ) -> Option<Vec<Vec<Node>>> {
        if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| x.len() != y.len()) {
            return None;
        }
        Some(
            a.into_iter()
                .zip(b)
                .map(|(x, y)| x.into_iter().zip(y).map(|(p, q)| f(bx(p), bx(q))).collect())
                .collect(),
        )
    }
    let size_ok = |m: &Vec<Vec<Node>>| m.iter().map(Vec::len).sum::<usize>() <= MAX_ELEMENTS;
    let out = match n {
        Node::Matrix(rows) => rows.clone(),
        Node::Neg(a) => fold_matrix(a)?
            .into_iter()
            .map(|r| r.into_iter().map(|x| Node::Neg(bx(x))).collect())
            .collect(),
        Node::Add(a, b) => elementwise(fold_matrix(a)?, fold_matrix(b)?, Node::Add)?,
        Node::Sub(a, b) => elementwise(fold_matrix(a)?, fold_matrix(b)?, Node::Sub)?,
        Node::Mul(a, b) => match (contains_matrix(a), contains_matrix(b)) {
            (true, true) => {
                let (x, y) = (fold_matrix(a)?, fold_matrix(b)?);
                let inner = y.len();
                if x.iter().any(|r| r.len() != inner) || inner == 0 {
                    return None;
                }
                let cols = y[0].len();
                if y.iter().any(|r| r.len() != cols) {
                    return None;
                }
                let mut rows = Vec::new();
                for r in &x {
                    let mut row = Vec::new();
                    for c in 0..cols {
                        let mut terms = r
                            .iter()
                            .zip(&y)
                            .map(|(a, yrow)| Node::Mul(bx(a.clone()), bx(yrow[c].clone())));
                        let first = terms.next()?;
                        row.push(terms.fold(first, |acc, t| Node::Add(bx(acc), bx(t))));
                    }
                    rows.push(row);
                }
                rows
            }
            (true, false) => fold_matrix(a)?
                .into_iter()
                .map(|r| r.into_iter().map(|x| Node::Mul(bx(x), b.clone())).collect())
                .collect(),
            (false, true) => fold_matrix(b)?
                .into_iter()
                .map(|r| r.into_iter().map(|x| Node::Mul(a.clone(), bx(x))).collect())
                .collect(),
            (false, false) => return None,
        },
        _ => return None,
    };
    size_ok(&out).then_some(out)
}

fn canon_rel(mut items: Vec<Node>, mut ops: Vec<RelOp>) -> Node {
    // `x = 1/3 ≈ 0.33`: the approximation is commentary; `x ≈ 11` means `x = 11`.
    if let Some(first_approx) = ops.iter().position(|o| *o == RelOp::Approx) {
        if ops[..first_approx].contains(&RelOp::Eq) {
            ops.truncate(first_approx);
            items.truncate(first_approx + 1);
        } else {
            for o in ops.iter_mut() {
                if *o == RelOp::Approx {
                    *o = RelOp::Eq;
                }
            }
        }
    }
    let all_eq = ops.iter().all(|o| *o == RelOp::Eq);
    if all_eq && items.len() > 2 {
        // `x = 5+5+1 = 11` → `x = 11`; `2+3 = 5 = 5` → the last value.
        let last = items.pop().unwrap_or(Node::EmptySet);
        let first = items.swap_remove(0);
        if !is_name(&first) && !has_vars(&first) && !has_vars(&last) {
            return canon(last);
        }
        return Node::Rel {
            items: vec![canon(first), canon(last)],
            ops: vec![RelOp::Eq],
        };
    }
    if all_eq
        && items.len() == 2
        && !has_vars(&items[0])
        && !has_vars(&items[1])
        && !is_structural(&items[0])
    {
        // A computation: `\frac{1}{2} = \frac{10}{9}` states its result on the right.
        let last = items.pop().unwrap_or(Node::EmptySet);
        return canon(last);
    }
    // `a < x ≤ b` with a named middle is an interval.
    if items.len() == 3 && is_name(&items[1]) {
        let lower = |o: &RelOp| matches!(o, RelOp::Lt | RelOp::Le);
        let upper = |o: &RelOp| matches!(o, RelOp::Gt | RelOp::Ge);
        let strict = |o: &RelOp| matches!(o, RelOp::Lt | RelOp::Gt);
        if ops.iter().all(lower) || ops.iter().all(upper) {
            let (lo, hi, lo_op, hi_op) = if ops.iter().all(lower) {
                (items.remove(0), items.pop(), ops[0], ops[1])
            } else {
                let hi = items.remove(0);
                (
                    items.pop().unwrap_or(Node::EmptySet),
                    Some(hi),
                    ops[1],
                    ops[0],
                )
            };
            if let Some(hi) = hi {
                return Node::Group {
                    open: if strict(&lo_op) { '(' } else { '[' },
                    close: if strict(&hi_op) { ')' } else { ']' },
                    items: vec![canon(lo), canon(hi)],
                };
            }
        }
    }
    Node::Rel {
        items: items.into_iter().map(canon).collect(),
        ops,
    }
}

// ---------------------------------------------------------------------------------------
// Comparison

thread_local! {
    /// Element comparisons left for the current [`is_equivalent`] call. Nested sets compare
    /// every pair of elements at every level; the budget keeps that bounded.
    static BUDGET: Cell<usize> = const { Cell::new(COMPARE_BUDGET) };
}

/// Most element comparisons per answer pair.
const COMPARE_BUDGET: usize = 20_000;

fn reset_budget() {
    BUDGET.with(|b| b.set(COMPARE_BUDGET));
}

/// Takes one unit of budget; `false` when it is spent.
fn spend() -> bool {
    BUDGET.with(|b| match b.get() {
        0 => false,
        n => {
            b.set(n - 1);
            true
        }
    })
}

/// Whether two canonical trees mean the same answer.
pub(crate) fn compare(a: &Node, b: &Node) -> bool {
    use Node::*;
    if !spend() {
        return false;
    }
    match (a, b) {
        (Rel { items: xa, ops: oa }, Rel { items: xb, ops: ob }) => rel_equal(xa, oa, xb, ob),
        (Rel { items, ops }, other) | (other, Rel { items, ops }) => match reduce_named(items, ops)
        {
            Some(rhs) => compare(rhs, other),
            None => false,
        },
        (In(_, s), other) | (other, In(_, s)) => compare(s, other),
        (List(xs) | Set(xs), List(ys) | Set(ys)) => set_equal(xs, ys),
        (
            Group {
                open: oa,
                close: ca,
                items: xa,
            },
            Group {
                open: ob,
                close: cb,
                items: xb,
            },
        ) => {
            oa == ob
                && ca == cb
                && xa.len() == xb.len()
                && xa.iter().zip(xb).all(|(x, y)| compare(x, y))
        }
        (Union(xs), Union(ys)) => set_equal(xs, ys),
        (Ratio(xs), Ratio(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| compare(x, y))
        }
        (Matrix(ra), Matrix(rb)) => {
            ra.len() == rb.len()
                && ra.iter().zip(rb).all(|(x, y)| {
                    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| scalar_equal(p, q))
                })
        }
        (Text(x), Text(y)) => normalize_text(x) == normalize_text(y),
        (Dots, Dots) | (EmptySet, EmptySet) => true,
        (x, y) if !is_structural(x) && !is_structural(y) => scalar_equal(x, y),
        _ => false,
    }
}

/// `name = value` (or a chain reduced to one) stands for its value.
fn reduce_named<'a>(items: &'a [Node], ops: &[RelOp]) -> Option<&'a Node> {
    if ops.len() == 1 && ops[0] == RelOp::Eq && items.len() == 2 && is_name(&items[0]) {
        Some(&items[1])
    } else {
        None
    }
}

/// Order-insensitive equality: every element of each side matches one of the other.
fn set_equal(xs: &[Node], ys: &[Node]) -> bool {
    if xs.len() > MAX_ELEMENTS || ys.len() > MAX_ELEMENTS {
        return false;
    }
    let mut matched_y = vec![false; ys.len()];
    for x in xs {
        let mut found = false;
        for (j, y) in ys.iter().enumerate() {
            if compare(x, y) {
                matched_y[j] = true;
                found = true;
            }
        }
        if !found {
            return false;
        }
    }
    matched_y.iter().all(|m| *m)
}

fn flip(op: RelOp) -> RelOp {
    match op {
        RelOp::Gt => RelOp::Lt,
        RelOp::Ge => RelOp::Le,
        RelOp::Lt => RelOp::Gt,
        RelOp::Le => RelOp::Ge,
        other => other,
    }
}

fn rel_equal(xa: &[Node], oa: &[RelOp], xb: &[Node], ob: &[RelOp]) -> bool {
    if xa.len() != 2 || xb.len() != 2 {
        // Longer chains (`f(2) < f(1) < f(4)`): same operators, same items.
        return oa == ob && xa.len() == xb.len() && xa.iter().zip(xb).all(|(x, y)| compare(x, y));
    }
    // `D = (0, 1)` and `D = (0, 1.5)`: same name, compare the values.
    if oa == [RelOp::Eq] && ob == [RelOp::Eq] && is_name(&xa[0]) && xa[0] == xb[0] {
        return compare(&xa[1], &xb[1]);
    }
    if xa.iter().chain(xb).any(is_structural) {
        return false;
    }
    // Bring both to `l OP r` with OP in {=, ≠, <, ≤}; `a > b` is `b < a`.
    let norm = |items: &[Node], op: RelOp| -> (Node, Node, RelOp) {
        match op {
            RelOp::Gt | RelOp::Ge => (items[1].clone(), items[0].clone(), flip(op)),
            _ => (items[0].clone(), items[1].clone(), op),
        }
    };
    let (la, ra, opa) = norm(xa, oa[0]);
    let (lb, rb, opb) = norm(xb, ob[0]);
    if opa != opb {
        return false;
    }
    let da = Node::Sub(Box::new(la), Box::new(ra));
    let db = Node::Sub(Box::new(lb), Box::new(rb));
    let sign_matters = matches!(opa, RelOp::Lt | RelOp::Le);
    proportional(&da, &db, sign_matters)
}

/// `a = k·b` for one constant k ≠ 0 at every sample point (k > 0 when `positive`).
fn proportional(a: &Node, b: &Node, positive: bool) -> bool {
    let mut vars = BTreeSet::new();
    collect_vars(a, &mut vars);
    collect_vars(b, &mut vars);
    if vars.is_empty() {
        return a == b;
    }
    let mut k: Option<C> = None;
    let mut valid = 0;
    for env in sample_points(&vars, EVAL_POINTS) {
        let (Ok(x), Ok(y)) = (eval(a, &env), eval(b, &env)) else {
            continue;
        };
        if y.abs() < 1e-12 {
            if x.abs() < 1e-12 {
                continue;
            }
            return false;
        }
        let ratio = x / y;
        match k {
            None => {
                if ratio.abs() < 1e-12 || (positive && (!ratio.is_real() || ratio.re <= 0.0)) {
                    return false;
                }
                k = Some(ratio);
            }
            Some(k) => {
                if !close(ratio, k, EXPR_TOL * 100.0) {
                    return false;
                }
            }
        }
        valid += 1;
    }
    valid >= 2
}

/// Numeric equality of two scalar expressions, with `%` read either as a unit (`28%` = 28)
/// or as a factor (`28%` = 0.28).
fn scalar_equal(a: &Node, b: &Node) -> bool {
    let alts = |n: &Node| -> Vec<Node> {
        match n {
            Node::Percent(inner) => vec![(**inner).clone(), n.clone()],
            other => vec![other.clone()],
        }
    };
    let (xa, xb) = (alts(a), alts(b));
    xa.iter().any(|x| xb.iter().any(|y| numeric_equal(x, y)))
}

fn numeric_equal(a: &Node, b: &Node) -> bool {
    let mut vars = BTreeSet::new();
    collect_vars(a, &mut vars);
    collect_vars(b, &mut vars);
    if vars.is_empty() {
        return match (eval(a, &[]), eval(b, &[])) {
            (Ok(x), Ok(y)) => {
                let both_int =
                    |v: C| v.is_real() && v.im == 0.0 && v.re.fract() == 0.0 && v.re.abs() < 9.0e15;
                if both_int(x) && both_int(y) {
                    x.re == y.re
                } else {
                    close(x, y, NUM_TOL)
                }
            }
            (Err(EvalError::NonFinite), Err(EvalError::NonFinite)) => a == b,
            _ => false,
        };
    }
    let mut valid = 0;
    for env in sample_points(&vars, EVAL_POINTS) {
        match (eval(a, &env), eval(b, &env)) {
            (Ok(x), Ok(y)) => {
                if !close(x, y, EXPR_TOL) {
                    return false;
                }
                valid += 1;
            }
            (Err(_), Err(_)) => {}
            // Defined on one side only: not the same function.
            _ => return false,
        }
    }
    if valid == 0 {
        return a == b;
    }
    valid >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_negatives() {
        assert!(!is_equivalent("1/2", "2", None));
        assert!(!is_equivalent("\\sqrt{2}", "2", None));
        assert!(!is_equivalent("x+1", "x-1", None));
        assert!(!is_equivalent("(1,2)", "[1,2]", None));
        assert!(!is_equivalent("1000000", "1000001", None));
    }

    #[test]
    fn basic_positives() {
        assert!(is_equivalent("\\frac{1}{2}", "0.5", None));
        assert!(is_equivalent("2x^2+3x-5", "2*x^2 + 3*x - 5", None));
        assert!(is_equivalent("x = 5", "5", None));
        assert!(is_equivalent("[0,1)", "[0, 1)", None));
        assert!(is_equivalent("\\{1, 2\\}", "\\{2, 1\\}", None));
    }
}
