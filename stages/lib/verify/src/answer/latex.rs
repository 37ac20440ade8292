//! LaTeX and plain-text mathematics to tokens.
//!
//! Answers arrive as LaTeX (`\frac{1}{2}`), plain text (`1/2`), or a mix (`x \geq 5`,
//! `28 percent`). The tokenizer folds the notations that mean the same thing into one
//! token (`\dfrac`/`\tfrac`/`\cfrac` → `\frac`, `\le`/`<=`/`≤` → `≤`, `\cdot`/`\times` → `*`)
//! and drops what carries no value (`\left`, spacing, `^\circ`, units), so the parser sees
//! one small grammar. Anything it does not recognise is an error rather than a guess.

use crate::bounds::MAX_TOKENS;
use thiserror::Error;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// A decimal literal as written (digits, optional point, optional exponent).
    Num(String),
    /// A single-letter (or Greek) variable, possibly with a subscript folded in later.
    Ident(String),
    Func(Func),
    Frac,
    Sqrt,
    Binom,
    Pi,
    Inf,
    Plus,
    Minus,
    Pm,
    Star,
    Slash,
    Caret,
    Underscore,
    Bang,
    Percent,
    Rel(RelOp),
    In,
    Cup,
    Comma,
    Semi,
    Colon,
    Amp,
    RowSep,
    Bar,
    LParen,
    RParen,
    LBrack,
    RBrack,
    LBrace,
    RBrace,
    LSet,
    RSet,
    BeginMatrix,
    EndMatrix,
    /// `\text{…}` and friends: words inside mathematics (units, names, connectives).
    Text(String),
    /// "and", "or" between answers: a list separator.
    Sep,
    Dots,
    EmptySet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Log,
    Exp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Approx,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum LexError {
    #[error("unsupported command \\{0}")]
    UnsupportedCommand(String),
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    #[error("too many tokens")]
    TooLong,
    #[error("unbalanced braces")]
    Unbalanced,
}

/// Words that name a unit: dropped when they follow a quantity.
const UNIT_WORDS: &[&str] = &[
    "cm",
    "mm",
    "km",
    "m",
    "kg",
    "mg",
    "g",
    "lb",
    "lbs",
    "oz",
    "ml",
    "l",
    "liter",
    "liters",
    "litre",
    "litres",
    "meter",
    "meters",
    "metre",
    "metres",
    "centimeter",
    "centimeters",
    "millimeter",
    "millimeters",
    "kilometer",
    "kilometers",
    "inch",
    "inches",
    "ft",
    "feet",
    "foot",
    "yard",
    "yards",
    "mile",
    "miles",
    "mph",
    "sec",
    "secs",
    "second",
    "seconds",
    "min",
    "mins",
    "minute",
    "minutes",
    "hr",
    "hrs",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "dollar",
    "dollars",
    "cent",
    "cents",
    "yuan",
    "euro",
    "euros",
    "units",
    "unit",
    "sq",
    "square",
    "cubic",
    "degree",
    "degrees",
    "deg",
    "rad",
    "radians",
    "people",
    "students",
    "ways",
    "times",
    "points",
    "kmh",
    "grams",
    "kilograms",
    "pounds",
    "ounces",
    "gallons",
    "gallon",
    "tons",
    "ton",
    "watts",
    "joules",
    "newtons",
    "volts",
    "amps",
    "ohms",
    "hz",
    "kwh",
];

fn func_named(name: &str) -> Option<Func> {
    Some(match name {
        "sin" => Func::Sin,
        "cos" => Func::Cos,
        "tan" => Func::Tan,
        "sec" => Func::Sec,
        "csc" => Func::Csc,
        "cot" => Func::Cot,
        "arcsin" | "asin" => Func::Asin,
        "arccos" | "acos" => Func::Acos,
        "arctan" | "atan" => Func::Atan,
        "sinh" => Func::Sinh,
        "cosh" => Func::Cosh,
        "tanh" => Func::Tanh,
        "ln" => Func::Ln,
        "log" | "lg" => Func::Log,
        "exp" => Func::Exp,
        _ => return None,
    })
}

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

/// Commands that only change appearance: the argument that follows is read as is.
const TRANSPARENT: &[&str] = &[
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathcal",
    "mathbb",
    "boldsymbol",
    "bm",
    "vec",
    "overline",
    "overrightarrow",
    "hat",
    "bar",
    "widehat",
    "operatorname",
    "displaystyle",
    "textstyle",
    "left",
    "right",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "big",
    "Big",
    "bigg",
    "Bigg",
    "biggl",
    "biggr",
    "limits",
    "boxed",
    "fbox",
    "underline",
    "mathbin",
    "mathop",
];

/// Commands that are spacing and carry nothing.
const SPACING: &[&str] = &["quad", "qquad", "enspace", "thinspace", "medspace", "negthinspace"];

/// Turns an answer into tokens. `src` must already be bounded by the caller.
pub fn tokenize(src: &str) -> Result<Vec<Tok>, LexError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if out.len() > MAX_TOKENS {
            return Err(LexError::TooLong);
        }
        let c = chars[i];
        if c.is_whitespace() || c == '~' || c == '$' {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let (num, next) = read_number(&chars, i);
            out.push(Tok::Num(num));
            i = next;
            continue;
        }
        if c == '.' {
            // "..." is an ellipsis; a lone point is punctuation.
            if chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') {
                out.push(Tok::Dots);
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            push_word(&mut out, &word);
            continue;
        }
        if c == '\\' {
            i = lex_command(&chars, i, &mut out)?;
            continue;
        }
        let tok = match c {
            '+' => Tok::Plus,
            '-' | '−' | '–' => Tok::Minus,
            '*' | '×' | '·' | '⋅' => Tok::Star,
            '/' | '÷' => Tok::Slash,
            '^' => {
                // `^\circ`, `^{\circ}`: a degree sign, no value.
                if let Some(next) = skip_degree(&chars, i + 1) {
                    i = next;
                    continue;
                }
                Tok::Caret
            }
            '_' => Tok::Underscore,
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                out.push(Tok::Rel(RelOp::Ne));
                continue;
            }
            '!' => Tok::Bang,
            '%' => Tok::Percent,
            '=' if chars.get(i + 1) == Some(&'<') => {
                i += 2;
                out.push(Tok::Rel(RelOp::Le));
                continue;
            }
            '=' => Tok::Rel(RelOp::Eq),
            '<' | '>' => {
                let strict = if c == '<' { RelOp::Lt } else { RelOp::Gt };
                let loose = if c == '<' { RelOp::Le } else { RelOp::Ge };
                if chars.get(i + 1) == Some(&'=') {
                    i += 2;
                    out.push(Tok::Rel(loose));
                } else {
                    i += 1;
                    out.push(Tok::Rel(strict));
                }
                continue;
            }
            '≤' | '⩽' => Tok::Rel(RelOp::Le),
            '≥' | '⩾' => Tok::Rel(RelOp::Ge),
            '≠' => Tok::Rel(RelOp::Ne),
            '≈' => Tok::Rel(RelOp::Approx),
            '±' => Tok::Pm,
            '∈' => Tok::In,
            '∪' => Tok::Cup,
            'π' => Tok::Pi,
            '∞' => Tok::Inf,
            '√' => Tok::Sqrt,
            '°' => {
                i += 1;
                continue;
            }
            '²' => {
                out.push(Tok::Caret);
                Tok::Num("2".into())
            }
            '³' => {
                out.push(Tok::Caret);
                Tok::Num("3".into())
            }
            ',' => Tok::Comma,
            ';' => Tok::Semi,
            ':' => Tok::Colon,
            '&' => Tok::Amp,
            '|' => Tok::Bar,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBrack,
            ']' => Tok::RBrack,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '…' => Tok::Dots,
            '\'' | '"' | '`' | '?' => {
                i += 1;
                continue;
            }
            '€' | '£' | '¥' => {
                i += 1;
                continue;
            }
            other => {
                if other.is_alphabetic() {
                    Tok::Ident(other.to_string())
                } else {
                    return Err(LexError::UnexpectedChar(other));
                }
            }
        };
        out.push(tok);
        i += 1;
    }
    Ok(out)
}

fn push_word(out: &mut Vec<Tok>, word: &str) {
    let lower = word.to_ascii_lowercase();
    if lower == "and" || lower == "or" {
        out.push(Tok::Sep);
        return;
    }
    if lower == "percent" || lower == "pct" || lower == "percentage" {
        out.push(Tok::Percent);
        return;
    }
    if word.len() >= 2 {
        if let Some(f) = func_named(word) {
            out.push(Tok::Func(f));
            return;
        }
        match word {
            "pi" => return out.push(Tok::Pi),
            "sqrt" => return out.push(Tok::Sqrt),
            "inf" | "infty" | "infinity" | "oo" => return out.push(Tok::Inf),
            _ => {}
        }
        // A unit after a quantity: drop it (and a `^2`/`^3` that belongs to it).
        let after_quantity = matches!(
            out.last(),
            Some(Tok::Num(_))
                | Some(Tok::RBrace)
                | Some(Tok::RParen)
                | Some(Tok::Pi)
                | Some(Tok::Percent)
        );
        if after_quantity && UNIT_WORDS.contains(&lower.as_str()) {
            return;
        }
    }
    for ch in word.chars() {
        out.push(Tok::Ident(ch.to_string()));
    }
}

fn read_number(chars: &[char], mut i: usize) -> (String, usize) {
    let start = i;
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    if i < chars.len() && chars[i] == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
    }
    // Scientific notation: 1.5e-3, 2E10 (but not `2e` alone, which is 2·e).
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        let mut j = i + 1;
        if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
            j += 1;
        }
        if j < chars.len() && chars[j].is_ascii_digit() {
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            // Not part of a longer word (e.g. `2ex`).
            if !chars.get(j).is_some_and(|c| c.is_ascii_alphabetic()) {
                i = j;
            }
        }
    }
    (chars[start..i].iter().collect(), i)
}

/// After a `^`, recognise `\circ` or `{\circ}` and return the index after it.
fn skip_degree(chars: &[char], mut i: usize) -> Option<usize> {
    while i < chars.len() && chars[i] == ' ' {
        i += 1;
    }
    let rest: String = chars[i..chars.len().min(i + 12)].iter().collect();
    for pat in
        ["\\circ", "{\\circ}", "{ \\circ }", "{\\circ }", "{ \\circ}", "\\degree", "{o}", "o"]
    {
        if rest.starts_with(pat) {
            // `^o` only when nothing alphabetic follows (so `x^open` is not eaten).
            if pat == "o" && chars.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            return Some(i + pat.chars().count());
        }
    }
    None
}

/// Reads the braced argument starting at `i` (which must be `{`); returns its text and
/// the index after the closing brace.
pub fn braced_arg(chars: &[char], i: usize) -> Result<(String, usize), LexError> {
    let mut depth = 0usize;
    let mut j = i;
    while j < chars.len() {
        match chars[j] {
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1).ok_or(LexError::Unbalanced)?;
                if depth == 0 {
                    return Ok((chars[i + 1..j].iter().collect(), j + 1));
                }
            }
            '\\' => j += 1,
            _ => {}
        }
        j += 1;
    }
    Err(LexError::Unbalanced)
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] == ' ' {
        i += 1;
    }
    i
}

fn lex_command(chars: &[char], i: usize, out: &mut Vec<Tok>) -> Result<usize, LexError> {
    let mut j = i + 1;
    let Some(&first) = chars.get(j) else {
        return Ok(j);
    };
    if !first.is_ascii_alphabetic() {
        // One-character commands.
        j += 1;
        match first {
            '{' => out.push(Tok::LSet),
            '}' => out.push(Tok::RSet),
            '%' => out.push(Tok::Percent),
            '\\' => out.push(Tok::RowSep),
            '|' => out.push(Tok::Bar),
            ',' | ';' | ':' | '!' | ' ' | '>' | '$' | '\n' | '\t' | '#' | '&' | '_' => {}
            '(' | ')' | '[' | ']' => {}
            other => return Err(LexError::UnsupportedCommand(other.to_string())),
        }
        return Ok(j);
    }
    while j < chars.len() && chars[j].is_ascii_alphabetic() {
        j += 1;
    }
    let mut name: String = chars[i + 1..j].iter().collect();
    // `\quadx` is `\quad x` as far as a reader is concerned.
    for sp in ["qquad", "quad"] {
        if name.len() > sp.len() && name.starts_with(sp) {
            j = i + 1 + sp.len();
            name = sp.to_string();
        }
    }
    let name = name.as_str();
    match name {
        "frac" | "dfrac" | "tfrac" | "cfrac" => out.push(Tok::Frac),
        "sqrt" => out.push(Tok::Sqrt),
        "binom" | "dbinom" | "tbinom" | "choose" => out.push(Tok::Binom),
        "pi" => out.push(Tok::Pi),
        "infty" | "infin" => out.push(Tok::Inf),
        "cdot" | "times" | "ast" => out.push(Tok::Star),
        "div" => out.push(Tok::Slash),
        "pm" | "mp" => out.push(Tok::Pm),
        "le" | "leq" | "leqslant" | "leqq" => out.push(Tok::Rel(RelOp::Le)),
        "ge" | "geq" | "geqslant" | "geqq" => out.push(Tok::Rel(RelOp::Ge)),
        "lt" => out.push(Tok::Rel(RelOp::Lt)),
        "gt" => out.push(Tok::Rel(RelOp::Gt)),
        "ne" | "neq" => out.push(Tok::Rel(RelOp::Ne)),
        "approx" | "simeq" | "sim" | "cong" => out.push(Tok::Rel(RelOp::Approx)),
        "in" => out.push(Tok::In),
        "cup" => out.push(Tok::Cup),
        "dots" | "ldots" | "cdots" => out.push(Tok::Dots),
        "emptyset" | "varnothing" => out.push(Tok::EmptySet),
        "lbrace" => out.push(Tok::LSet),
        "rbrace" => out.push(Tok::RSet),
        "vert" | "lvert" | "rvert" | "mid" => out.push(Tok::Bar),
        "lfloor" | "rfloor" | "lceil" | "rceil" => {
            return Err(LexError::UnsupportedCommand(name.to_string()))
        }
        "circ" | "degree" | "%" | "dollar" | "cr" | "nonumber" | "notag" => {}
        "text" | "textbf" | "textit" | "textrm" | "mbox" | "textnormal" | "textsf" | "texttt"
        | "hbox" => {
            let k = skip_spaces(chars, j);
            if chars.get(k) == Some(&'{') {
                let (content, next) = braced_arg(chars, k)?;
                push_text(out, content.trim());
                // A unit's power: `\text{ cm}^2`.
                let n = skip_spaces(chars, next);
                if chars.get(n) == Some(&'^') && matches!(out.last(), None | Some(Tok::Text(_))) {
                    if let Some(d) = chars.get(n + 1) {
                        if d.is_ascii_digit() {
                            return Ok(n + 2);
                        }
                        if *d == '{' {
                            let (_, after) = braced_arg(chars, n + 1)?;
                            return Ok(after);
                        }
                    }
                }
                return Ok(next);
            }
        }
        "begin" | "end" => {
            let k = skip_spaces(chars, j);
            if chars.get(k) != Some(&'{') {
                return Err(LexError::UnsupportedCommand(name.to_string()));
            }
            let (env, mut next) = braced_arg(chars, k)?;
            let env = env.trim().trim_end_matches('*');
            if !matches!(
                env,
                "pmatrix" | "bmatrix" | "matrix" | "Bmatrix" | "vmatrix" | "smallmatrix" | "array"
            ) {
                return Err(LexError::UnsupportedCommand(format!("{name}{{{env}}}")));
            }
            if name == "begin" {
                // `\begin{array}{cc}`: skip the column specification.
                if env == "array" {
                    let k2 = skip_spaces(chars, next);
                    if chars.get(k2) == Some(&'{') {
                        next = braced_arg(chars, k2)?.1;
                    }
                }
                out.push(Tok::BeginMatrix);
            } else {
                out.push(Tok::EndMatrix);
            }
            return Ok(next);
        }
        _ if SPACING.contains(&name) => {}
        _ if TRANSPARENT.contains(&name) => {
            // `\left.` / `\right.`: an invisible delimiter.
            if (name == "left" || name == "right") && chars.get(j) == Some(&'.') {
                return Ok(j + 1);
            }
        }
        _ if GREEK.contains(&name) => out.push(Tok::Ident(name.to_string())),
        _ => match func_named(name) {
            Some(f) => out.push(Tok::Func(f)),
            None => return Err(LexError::UnsupportedCommand(name.to_string())),
        },
    }
    Ok(j)
}

fn push_text(out: &mut Vec<Tok>, content: &str) {
    let lower = content.to_ascii_lowercase();
    let lower = lower.trim_matches(|c: char| c == ',' || c.is_whitespace());
    if lower.is_empty() {
        return;
    }
    if matches!(lower, "and" | "or" | "," | "and also") {
        out.push(Tok::Sep);
        return;
    }
    out.push(Tok::Text(content.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_fraction_spellings() {
        for s in ["\\frac12", "\\dfrac{1}{2}", "\\tfrac12", "\\cfrac{1}{2}"] {
            assert_eq!(tokenize(s).unwrap()[0], Tok::Frac, "{s}");
        }
    }

    #[test]
    fn relations_from_every_notation() {
        for s in ["x \\leq 5", "x<=5", "x \\le 5", "x ≤ 5", "x =< 5"] {
            assert_eq!(tokenize(s).unwrap()[1], Tok::Rel(RelOp::Le), "{s}");
        }
    }

    #[test]
    fn degree_and_units_vanish() {
        assert_eq!(tokenize("90^\\circ").unwrap(), vec![Tok::Num("90".into())]);
        assert_eq!(tokenize("90^{\\circ}").unwrap(), vec![Tok::Num("90".into())]);
        assert_eq!(tokenize("125 miles").unwrap(), vec![Tok::Num("125".into())]);
        assert_eq!(
            tokenize("15\\text{ cm}^2").unwrap(),
            vec![Tok::Num("15".into()), Tok::Text("cm".into())]
        );
    }

    #[test]
    fn unknown_commands_are_errors() {
        assert!(tokenize("\\sum_{k=0}^n k").is_err());
        assert!(tokenize("\\int x dx").is_err());
    }

    #[test]
    fn scientific_notation_needs_digits() {
        assert_eq!(tokenize("1.5e-3").unwrap(), vec![Tok::Num("1.5e-3".into())]);
        assert_eq!(tokenize("2e").unwrap(), vec![Tok::Num("2".into()), Tok::Ident("e".into())]);
    }
}
