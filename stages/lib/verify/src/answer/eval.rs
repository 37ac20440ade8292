//! Numeric evaluation of scalar expression trees at sample points.
//!
//! Two expressions are taken to be equal when they agree at several seeded pseudo-random
//! points (the classic polynomial-identity test, extended to the elementary functions).
//! Evaluation never loops on input size beyond the tree itself: powers use `powf`, factorials
//! stop at [`MAX_FACTORIAL`], and anything that overflows is just a non-finite value that
//! makes the point unusable.

use crate::answer::complex::C;
use crate::answer::expr::Node;
use crate::answer::latex::Func;
use crate::bounds::MAX_FACTORIAL;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalError {
    /// The node is a tuple, set, relation… not a scalar.
    NotScalar,
    /// A value that is not a finite complex number (overflow, 0/0, ∞).
    NonFinite,
}

/// Variable values for one sample point, sorted by name.
pub type Env = [(String, C)];

/// Evaluates a scalar expression. `±` takes its `+` branch (callers expand it first).
pub fn eval(node: &Node, env: &Env) -> Result<C, EvalError> {
    let v = eval_inner(node, env)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(EvalError::NonFinite)
    }
}

fn eval_inner(node: &Node, env: &Env) -> Result<C, EvalError> {
    use Node::*;
    Ok(match node {
        Num(v) => C::real(*v),
        Var(name) => match env.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => env[i].1,
            Err(_) => return Err(EvalError::NonFinite),
        },
        Pi => C::real(std::f64::consts::PI),
        E => C::real(std::f64::consts::E),
        I => C::new(0.0, 1.0),
        Inf => C::real(f64::INFINITY),
        Neg(a) => -eval_inner(a, env)?,
        Add(a, b) | PlusMinus(a, b) => eval_inner(a, env)? + eval_inner(b, env)?,
        Sub(a, b) => eval_inner(a, env)? - eval_inner(b, env)?,
        Mul(a, b) => eval_inner(a, env)? * eval_inner(b, env)?,
        Div(a, b) => {
            let d = eval_inner(b, env)?;
            if d.abs() == 0.0 {
                return Err(EvalError::NonFinite);
            }
            eval_inner(a, env)? / d
        }
        Pow(a, b) => {
            let base = eval_inner(a, env)?;
            let e = eval_inner(b, env)?;
            if !base.is_finite() || !e.is_finite() {
                return Err(EvalError::NonFinite);
            }
            base.pow(e)
        }
        Func(f, a) => apply(*f, eval_inner(a, env)?),
        LogBase(b, a) => eval_inner(a, env)?.ln() / eval_inner(b, env)?.ln(),
        Root(n, a) => {
            let n = eval_inner(n, env)?;
            let a = eval_inner(a, env)?;
            if n.is_real() && (n.re - 2.0).abs() < 1e-12 {
                a.sqrt()
            } else {
                a.pow(n.recip())
            }
        }
        Fact(a) => {
            let v = eval_inner(a, env)?;
            if !v.is_real() || v.re < 0.0 || v.re.fract() != 0.0 || v.re > MAX_FACTORIAL {
                return Err(EvalError::NonFinite);
            }
            let mut acc = 1.0f64;
            let mut k = 2.0;
            while k <= v.re {
                acc *= k;
                k += 1.0;
            }
            C::real(acc)
        }
        Abs(a) => C::real(eval_inner(a, env)?.abs()),
        Binom(n, k) => {
            let n = eval_inner(n, env)?;
            let k = eval_inner(k, env)?;
            if !n.is_real()
                || !k.is_real()
                || k.re.fract() != 0.0
                || k.re < 0.0
                || k.re > MAX_FACTORIAL
            {
                return Err(EvalError::NonFinite);
            }
            let mut acc = 1.0f64;
            let mut i = 0.0;
            while i < k.re {
                acc = acc * (n.re - i) / (i + 1.0);
                i += 1.0;
            }
            C::real(acc)
        }
        Percent(a) => eval_inner(a, env)? / C::real(100.0),
        Group { .. }
        | Set(_)
        | List(_)
        | Matrix(_)
        | Rel { .. }
        | In(..)
        | Union(_)
        | Ratio(_)
        | Text(_)
        | Dots
        | EmptySet => return Err(EvalError::NotScalar),
    })
}

fn apply(f: Func, x: C) -> C {
    match f {
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.sin() / x.cos(),
        Func::Sec => x.cos().recip(),
        Func::Csc => x.sin().recip(),
        Func::Cot => x.cos() / x.sin(),
        Func::Asin if x.is_real() && x.re.abs() <= 1.0 => C::real(x.re.asin()),
        Func::Acos if x.is_real() && x.re.abs() <= 1.0 => C::real(x.re.acos()),
        Func::Atan if x.is_real() => C::real(x.re.atan()),
        Func::Asin | Func::Acos | Func::Atan => C::real(f64::NAN),
        Func::Sinh => (x.exp() - (-x).exp()) / C::real(2.0),
        Func::Cosh => (x.exp() + (-x).exp()) / C::real(2.0),
        Func::Tanh => (x.exp() - (-x).exp()) / (x.exp() + (-x).exp()),
        Func::Ln => x.ln(),
        Func::Log => x.ln() / C::real(std::f64::consts::LN_10),
        Func::Exp => x.exp(),
    }
}

/// Every variable name in the tree.
pub fn collect_vars(node: &Node, out: &mut BTreeSet<String>) {
    use Node::*;
    match node {
        Var(n) => {
            out.insert(n.clone());
        }
        Neg(a) | Func(_, a) | Fact(a) | Abs(a) | Percent(a) => collect_vars(a, out),
        Add(a, b)
        | Sub(a, b)
        | PlusMinus(a, b)
        | Mul(a, b)
        | Div(a, b)
        | Pow(a, b)
        | LogBase(a, b)
        | Root(a, b)
        | Binom(a, b)
        | In(a, b) => {
            collect_vars(a, out);
            collect_vars(b, out);
        }
        Group { items, .. }
        | Set(items)
        | List(items)
        | Union(items)
        | Ratio(items)
        | Rel { items, .. } => items.iter().for_each(|i| collect_vars(i, out)),
        Matrix(rows) => rows.iter().flatten().for_each(|i| collect_vars(i, out)),
        Num(_) | Pi | E | I | Inf | Text(_) | Dots | EmptySet => {}
    }
}

/// Sample points: each variable gets a value in roughly [0.4, 2.9], different per point and
/// per variable, from a fixed-seed generator so results are reproducible.
pub fn sample_points(vars: &BTreeSet<String>, count: usize) -> Vec<Vec<(String, C)>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // SplitMix64.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..count)
        .map(|_| vars.iter().map(|v| (v.clone(), C::real(0.4 + 2.5 * next()))).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::expr::parse;

    fn value(s: &str) -> C {
        eval(&parse(s).unwrap(), &[]).unwrap()
    }

    #[test]
    fn evaluates_latex() {
        assert!((value("\\frac{1}{2}+\\sqrt{4}").re - 2.5).abs() < 1e-12);
        assert!((value("2\\pi").re - 2.0 * std::f64::consts::PI).abs() < 1e-12);
        assert!((value("5!").re - 120.0).abs() < 1e-12);
        assert!((value("\\binom{5}{2}").re - 10.0).abs() < 1e-12);
        assert!((value("\\log_2 8").re - 3.0).abs() < 1e-12);
    }

    #[test]
    fn huge_values_are_not_finite_not_slow() {
        for s in ["10^10^10", "9999!", "(10^{100})^{100}", "170.5!"] {
            assert!(eval(&parse(s).unwrap(), &[]).is_err(), "{s}");
        }
    }
}
