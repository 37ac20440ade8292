//! Canonical shape: rewriting a parsed answer so that equal answers compare structurally.
//!
//! `x = 5+5+1 = 11` becomes `x = 11`, `x ≈ 11` becomes `x = 11`, `x \in S` becomes `S`,
//! `a < x ≤ b` becomes the interval `(a, b]`, `1 ± √5` becomes a two-element set, and matrix
//! sums and products are folded entry by entry.

use crate::answer::eval::collect_vars;
use crate::answer::expr::Node;
use crate::answer::latex::RelOp;
use crate::bounds::{MAX_ELEMENTS, MAX_PM_EXPANSION};
use std::collections::BTreeSet;

/// A left-hand side that only names the answer (`x`, `f(x)`, `a_3`, `(p, q)`, `|AB|`,
/// `A:B`, `\frac{NO}{BO}`): no numbers, no sums. `x = 5` then means `5`.
pub(crate) fn is_name(n: &Node) -> bool {
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
        Func(f, a) => expand_pm(a).into_iter().map(|x| Func(*f, Box::new(x))).collect(),
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

pub(crate) fn is_structural(n: &Node) -> bool {
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
        return Node::Rel { items: vec![canon(first), canon(last)], ops: vec![RelOp::Eq] };
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
                (items.pop().unwrap_or(Node::EmptySet), Some(hi), ops[1], ops[0])
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
    Node::Rel { items: items.into_iter().map(canon).collect(), ops }
}
