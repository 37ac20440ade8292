//! Comparison of canonical answer trees: sets order-insensitively, tuples and intervals by
//! position and bracket, relations as proportional, scalars numerically at sample points.

use crate::answer::canon::{is_name, is_structural};
use crate::answer::complex::{close, C};
use crate::answer::eval::{collect_vars, eval, sample_points, EvalError};
use crate::answer::expr::Node;
use crate::answer::latex::RelOp;
use crate::answer::text::normalize_text;
use crate::bounds::{EVAL_POINTS, MAX_ELEMENTS};
use std::cell::Cell;
use std::collections::BTreeSet;

/// Relative tolerance for numbers without variables.
const NUM_TOL: f64 = 1e-6;
/// Relative tolerance for expressions with variables (agreement at random points).
const EXPR_TOL: f64 = 1e-8;

thread_local! {
    /// Element comparisons left for the current [`is_equivalent`] call. Nested sets compare
    /// every pair of elements at every level; the budget keeps that bounded.
    static BUDGET: Cell<usize> = const { Cell::new(COMPARE_BUDGET) };
}

/// Most element comparisons per answer pair.
const COMPARE_BUDGET: usize = 20_000;

pub(crate) fn reset_budget() {
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
        (Group { open: oa, close: ca, items: xa }, Group { open: ob, close: cb, items: xb }) => {
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
