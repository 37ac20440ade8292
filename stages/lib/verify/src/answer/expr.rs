//! The expression tree and its recursive-descent parser.
//!
//! One grammar covers everything an answer can be: scalars (`2x^2+3x-5`), relations and
//! chains (`x = 5+5+1 = 11`, `-2 \le x \le 7`), intervals and tuples (`[0, 1)`, `(3, 2)`),
//! sets and bare lists (`\{1, 2\}`, `1, 2, 3`), unions, ratios and matrices. The parser is
//! bounded: it refuses more than [`MAX_DEPTH`] levels of nesting and [`MAX_NODES`] nodes,
//! so adversarial input fails fast instead of exhausting the stack.

use crate::answer::latex::{tokenize, Func, LexError, RelOp, Tok};
use crate::bounds::{MAX_DEPTH, MAX_NODES};
use thiserror::Error;

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Num(f64),
    Var(String),
    Pi,
    E,
    I,
    Inf,
    Neg(Box<Node>),
    Add(Box<Node>, Box<Node>),
    Sub(Box<Node>, Box<Node>),
    /// `a ± b`: stands for two values.
    PlusMinus(Box<Node>, Box<Node>),
    Mul(Box<Node>, Box<Node>),
    Div(Box<Node>, Box<Node>),
    Pow(Box<Node>, Box<Node>),
    Func(Func, Box<Node>),
    /// `\log_b(x)`.
    LogBase(Box<Node>, Box<Node>),
    /// `\sqrt[n]{x}`: index, radicand.
    Root(Box<Node>, Box<Node>),
    Fact(Box<Node>),
    Abs(Box<Node>),
    Binom(Box<Node>, Box<Node>),
    Percent(Box<Node>),
    /// A bracketed group of two or more items: a tuple, a point, or an interval.
    Group {
        open: char,
        close: char,
        items: Vec<Node>,
    },
    Set(Vec<Node>),
    /// Items separated by commas, semicolons or "and"/"or" with no enclosing brackets.
    List(Vec<Node>),
    Matrix(Vec<Vec<Node>>),
    /// A chain `items[0] ops[0] items[1] ops[1] …` (a single relation has two items).
    Rel {
        items: Vec<Node>,
        ops: Vec<RelOp>,
    },
    In(Box<Node>, Box<Node>),
    Union(Vec<Node>),
    Ratio(Vec<Node>),
    Text(String),
    Dots,
    EmptySet,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ParseError {
    #[error(transparent)]
    Lex(#[from] LexError),
    #[error("unexpected token at {0}")]
    Unexpected(usize),
    #[error("unexpected end of input")]
    Eof,
    #[error("nesting deeper than the limit")]
    TooDeep,
    #[error("expression larger than the limit")]
    TooBig,
    #[error("empty input")]
    Empty,
    #[error("invalid number {0}")]
    BadNumber(String),
}

type PResult = Result<Node, ParseError>;

/// Parses an answer into a tree. Words in `\text{}` next to mathematics are read as units and
/// dropped; an answer that is only words becomes [`Node::Text`].
pub fn parse(src: &str) -> PResult {
    let toks = tokenize(src)?;
    let has_math = toks.iter().any(|t| !matches!(t, Tok::Text(_) | Tok::Sep | Tok::Comma));
    let toks: Vec<Tok> = if has_math {
        toks.into_iter().filter(|t| !matches!(t, Tok::Text(_))).collect()
    } else {
        toks
    };
    if toks.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut p = Parser { toks, pos: 0, depth: 0, nodes: 0 };
    let node = p.list(&[])?;
    if p.pos != p.toks.len() {
        return Err(ParseError::Unexpected(p.pos));
    }
    Ok(node)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    nodes: usize,
}

fn bx(n: Node) -> Box<Node> {
    Box::new(n)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }
    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, t: &Tok) -> Result<(), ParseError> {
        if self.eat(t) {
            Ok(())
        } else if self.pos >= self.toks.len() {
            Err(ParseError::Eof)
        } else {
            Err(ParseError::Unexpected(self.pos))
        }
    }
    fn node(&mut self, n: Node) -> PResult {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(ParseError::TooBig);
        }
        Ok(n)
    }
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(ParseError::TooDeep)
        } else {
            Ok(())
        }
    }
    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn at_end_or(&self, stops: &[Tok]) -> bool {
        match self.peek() {
            None => true,
            Some(t) => stops.contains(t),
        }
    }

    /// Items separated by `,` `;` or connectives, up to one of `stops` (not consumed).
    fn list(&mut self, stops: &[Tok]) -> PResult {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            while matches!(self.peek(), Some(Tok::Comma | Tok::Semi | Tok::Sep)) {
                self.pos += 1;
            }
            if self.at_end_or(stops) {
                break;
            }
            items.push(self.relation(stops)?);
            if !matches!(self.peek(), Some(Tok::Comma | Tok::Semi | Tok::Sep)) {
                break;
            }
        }
        self.leave();
        match items.len() {
            0 => Err(ParseError::Empty),
            1 => Ok(items.pop().unwrap_or(Node::EmptySet)),
            _ => self.node(Node::List(items)),
        }
    }

    fn relation(&mut self, stops: &[Tok]) -> PResult {
        let first = self.ratio()?;
        let mut items = vec![first];
        let mut ops = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Rel(op)) => {
                    let op = *op;
                    self.pos += 1;
                    ops.push(op);
                    items.push(self.ratio()?);
                }
                Some(Tok::In) => {
                    self.pos += 1;
                    let rhs = self.list_item_set(stops)?;
                    let lhs = if items.len() == 1 {
                        items.pop().unwrap_or(Node::EmptySet)
                    } else {
                        self.node(Node::Rel {
                            items: std::mem::take(&mut items),
                            ops: std::mem::take(&mut ops),
                        })?
                    };
                    return self.node(Node::In(bx(lhs), bx(rhs)));
                }
                _ => break,
            }
        }
        if ops.is_empty() {
            Ok(items.pop().unwrap_or(Node::EmptySet))
        } else {
            self.node(Node::Rel { items, ops })
        }
    }

    /// The right side of `\in`: a union of intervals/sets.
    fn list_item_set(&mut self, _stops: &[Tok]) -> PResult {
        self.ratio()
    }

    fn ratio(&mut self) -> PResult {
        let first = self.union()?;
        if self.peek() != Some(&Tok::Colon) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(&Tok::Colon) {
            parts.push(self.union()?);
        }
        self.node(Node::Ratio(parts))
    }

    fn union(&mut self) -> PResult {
        let first = self.additive()?;
        if self.peek() != Some(&Tok::Cup) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(&Tok::Cup) {
            parts.push(self.additive()?);
        }
        self.node(Node::Union(parts))
    }

    fn additive(&mut self) -> PResult {
        self.enter()?;
        let mut lhs = self.term()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => Tok::Plus,
                Some(Tok::Minus) => Tok::Minus,
                Some(Tok::Pm) => Tok::Pm,
                _ => break,
            };
            self.pos += 1;
            let rhs = self.term()?;
            lhs = self.node(match op {
                Tok::Plus => Node::Add(bx(lhs), bx(rhs)),
                Tok::Minus => Node::Sub(bx(lhs), bx(rhs)),
                _ => Node::PlusMinus(bx(lhs), bx(rhs)),
            })?;
        }
        self.leave();
        Ok(lhs)
    }

    fn starts_factor(t: Option<&Tok>) -> bool {
        matches!(
            t,
            Some(
                Tok::Num(_)
                    | Tok::Ident(_)
                    | Tok::Pi
                    | Tok::Inf
                    | Tok::Func(_)
                    | Tok::Frac
                    | Tok::Sqrt
                    | Tok::Binom
                    | Tok::LParen
                    | Tok::LBrace
                    | Tok::BeginMatrix
            )
        )
    }

    fn term(&mut self) -> PResult {
        let mut lhs = self.unary()?;
        loop {
            match self.peek() {
                Some(Tok::Star) => {
                    self.pos += 1;
                    let rhs = self.unary()?;
                    lhs = self.node(Node::Mul(bx(lhs), bx(rhs)))?;
                }
                Some(Tok::Slash) => {
                    self.pos += 1;
                    let rhs = self.unary()?;
                    lhs = self.node(Node::Div(bx(lhs), bx(rhs)))?;
                }
                t if Self::starts_factor(t) => {
                    let rhs = self.power()?;
                    lhs = self.node(Node::Mul(bx(lhs), bx(rhs)))?;
                }
                _ => break,
            }
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> PResult {
        self.enter()?;
        let out = match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                let inner = self.unary()?;
                self.node(Node::Neg(bx(inner)))
            }
            Some(Tok::Plus) => {
                self.pos += 1;
                self.unary()
            }
            Some(Tok::Pm) => {
                self.pos += 1;
                let inner = self.unary()?;
                self.node(Node::PlusMinus(bx(Node::Num(0.0)), bx(inner)))
            }
            _ => self.power(),
        };
        self.leave();
        out
    }

    fn power(&mut self) -> PResult {
        self.enter()?;
        let base = self.postfix()?;
        let out = if self.eat(&Tok::Caret) {
            let exp = self.exponent()?;
            let n = self.node(Node::Pow(bx(base), bx(exp)))?;
            self.postfix_ops(n)
        } else {
            Ok(base)
        };
        self.leave();
        out
    }

    /// The exponent after `^`: a braced group, or one signed atom (`2^-1`, `x^2`).
    fn exponent(&mut self) -> PResult {
        self.enter()?;
        let out = match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                let e = self.exponent()?;
                self.node(Node::Neg(bx(e)))
            }
            _ => match self.postfix() {
                // `10^10^10` is 10^(10^10).
                Ok(base) if self.eat(&Tok::Caret) => {
                    let e = self.exponent();
                    e.and_then(|e| self.node(Node::Pow(bx(base), bx(e))))
                }
                other => other,
            },
        };
        self.leave();
        out
    }

    fn postfix(&mut self) -> PResult {
        let a = self.atom()?;
        self.postfix_ops(a)
    }

    fn postfix_ops(&mut self, mut a: Node) -> PResult {
        loop {
            match self.peek() {
                Some(Tok::Bang) => {
                    self.pos += 1;
                    a = self.node(Node::Fact(bx(a)))?;
                }
                Some(Tok::Percent) => {
                    self.pos += 1;
                    a = self.node(Node::Percent(bx(a)))?;
                }
                _ => return Ok(a),
            }
        }
    }

    /// Raw text of a subscript (`_3`, `_{37}`, `_{MBCN}`), for naming variables.
    fn subscript_text(&mut self) -> Result<String, ParseError> {
        let mut s = String::new();
        if self.eat(&Tok::LBrace) {
            let mut depth = 1usize;
            while let Some(t) = self.next() {
                match t {
                    Tok::LBrace => depth += 1,
                    Tok::RBrace => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(s);
                        }
                    }
                    _ => {}
                }
                s.push_str(&tok_text(&t));
            }
            Err(ParseError::Eof)
        } else {
            match self.next() {
                Some(Tok::Num(n)) => {
                    // `x_12` in plain text is x₁₂, but `a_1b` is a₁·b: only digits join.
                    Ok(n)
                }
                Some(t) => Ok(tok_text(&t)),
                None => Err(ParseError::Eof),
            }
        }
    }

    /// A `\frac`/`\sqrt` argument: a braced group, or a single token (`\frac94` is 9/4).
    fn arg(&mut self) -> PResult {
        match self.peek() {
            Some(Tok::LBrace) => {
                self.pos += 1;
                let inner = self.list(&[Tok::RBrace])?;
                self.expect(&Tok::RBrace)?;
                Ok(inner)
            }
            Some(Tok::Num(_)) => self.single_digit_or_number(),
            _ => self.atom(),
        }
    }

    /// Takes one digit off a number token, leaving the rest in place: in LaTeX `\frac94`
    /// is 9/4 and `\sqrt23` is √2·3.
    fn single_digit_or_number(&mut self) -> PResult {
        let Some(Tok::Num(s)) = self.peek().cloned() else {
            return Err(ParseError::Unexpected(self.pos));
        };
        let mut chars = s.chars();
        let first = chars.next().ok_or(ParseError::Eof)?;
        let rest: String = chars.collect();
        if first.is_ascii_digit() && !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
            self.toks[self.pos] = Tok::Num(rest);
            let v = f64::from(first.to_digit(10).unwrap_or(0));
            return self.node(Node::Num(v));
        }
        self.pos += 1;
        let v: f64 = s.parse().map_err(|_| ParseError::BadNumber(s.clone()))?;
        self.node(Node::Num(v))
    }

    fn group(&mut self, open: char) -> PResult {
        let inner = self.list(&[Tok::RParen, Tok::RBrack])?;
        let close = match self.next() {
            Some(Tok::RParen) => ')',
            Some(Tok::RBrack) => ']',
            Some(_) => return Err(ParseError::Unexpected(self.pos)),
            None => return Err(ParseError::Eof),
        };
        match inner {
            Node::List(items) => self.node(Node::Group { open, close, items }),
            single if open == '(' && close == ')' => Ok(single),
            single if open == '[' && close == ']' => Ok(single),
            single => self.node(Node::Group { open, close, items: vec![single] }),
        }
    }

    fn atom(&mut self) -> PResult {
        self.enter()?;
        let out = self.atom_inner();
        self.leave();
        out
    }

    fn atom_inner(&mut self) -> PResult {
        let Some(t) = self.next() else {
            return Err(ParseError::Eof);
        };
        match t {
            Tok::Num(s) => {
                let v: f64 = s.parse().map_err(|_| ParseError::BadNumber(s.clone()))?;
                if self.peek() == Some(&Tok::Underscore) {
                    // `204_5`: a numeral in base 5.
                    self.pos += 1;
                    let base = self.subscript_text()?;
                    return match base.parse::<u32>().ok().and_then(|b| from_base(&s, b)) {
                        Some(v) => self.node(Node::Num(v)),
                        None => Err(ParseError::BadNumber(format!("{s}_{base}"))),
                    };
                }
                self.node(Node::Num(v))
            }
            Tok::Ident(name) => {
                let mut name = name;
                if self.eat(&Tok::Underscore) {
                    let sub = self.subscript_text()?;
                    name = format!("{name}_{sub}");
                }
                match name.as_str() {
                    "e" => self.node(Node::E),
                    "i" => self.node(Node::I),
                    _ => self.node(Node::Var(name)),
                }
            }
            Tok::Pi => self.node(Node::Pi),
            Tok::Inf => self.node(Node::Inf),
            Tok::Func(f) => self.function(f),
            Tok::Frac => {
                let num = self.arg()?;
                let den = self.arg()?;
                self.node(Node::Div(bx(num), bx(den)))
            }
            Tok::Binom => {
                let n = self.arg()?;
                let k = self.arg()?;
                self.node(Node::Binom(bx(n), bx(k)))
            }
            Tok::Sqrt => {
                if self.eat(&Tok::LBrack) {
                    let index = self.list(&[Tok::RBrack])?;
                    self.expect(&Tok::RBrack)?;
                    let rad = self.arg()?;
                    return self.node(Node::Root(bx(index), bx(rad)));
                }
                let rad = match self.peek() {
                    Some(Tok::LParen) => self.atom()?,
                    _ => self.arg()?,
                };
                self.node(Node::Root(bx(Node::Num(2.0)), bx(rad)))
            }
            Tok::LParen => self.group('('),
            Tok::LBrack => self.group('['),
            Tok::LBrace => {
                let inner = self.list(&[Tok::RBrace])?;
                self.expect(&Tok::RBrace)?;
                match inner {
                    Node::List(items) => self.node(Node::Set(items)),
                    single => Ok(single),
                }
            }
            Tok::LSet => {
                if self.eat(&Tok::RSet) {
                    return self.node(Node::EmptySet);
                }
                let inner = self.list(&[Tok::RSet])?;
                self.expect(&Tok::RSet)?;
                match inner {
                    Node::List(items) => self.node(Node::Set(items)),
                    single => self.node(Node::Set(vec![single])),
                }
            }
            Tok::Bar => {
                let inner = self.additive()?;
                self.expect(&Tok::Bar)?;
                self.node(Node::Abs(bx(inner)))
            }
            Tok::BeginMatrix => self.matrix(),
            Tok::Text(s) => self.node(Node::Text(s)),
            Tok::Dots => self.node(Node::Dots),
            Tok::EmptySet => self.node(Node::EmptySet),
            _ => Err(ParseError::Unexpected(self.pos.saturating_sub(1))),
        }
    }

    fn function(&mut self, f: Func) -> PResult {
        // `\sin^2 x` is (sin x)^2; `\log_2 8` has a base.
        let mut power = None;
        let mut base = None;
        for _ in 0..2 {
            if self.eat(&Tok::Caret) {
                power = Some(self.exponent()?);
            } else if f == Func::Log && self.eat(&Tok::Underscore) {
                base = Some(match self.peek() {
                    Some(Tok::LBrace) => self.arg()?,
                    Some(Tok::Num(_)) => self.single_digit_or_number()?,
                    _ => self.atom()?,
                });
            }
        }
        let arg = match self.peek() {
            Some(Tok::LParen) => self.atom()?,
            Some(Tok::LBrace) => self.arg()?,
            _ => self.power()?,
        };
        let applied = match base {
            Some(b) => self.node(Node::LogBase(bx(b), bx(arg)))?,
            None => self.node(Node::Func(f, bx(arg)))?,
        };
        match power {
            Some(p) => self.node(Node::Pow(bx(applied), bx(p))),
            None => Ok(applied),
        }
    }

    fn matrix(&mut self) -> PResult {
        let mut rows: Vec<Vec<Node>> = Vec::new();
        let mut row: Vec<Node> = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ParseError::Eof),
                Some(Tok::EndMatrix) => {
                    self.pos += 1;
                    if !row.is_empty() {
                        rows.push(row);
                    }
                    break;
                }
                Some(Tok::RowSep) => {
                    self.pos += 1;
                    if !row.is_empty() {
                        rows.push(std::mem::take(&mut row));
                    }
                }
                Some(Tok::Amp) => {
                    self.pos += 1;
                }
                _ => {
                    let cell = self.additive()?;
                    row.push(cell);
                }
            }
        }
        if rows.is_empty() {
            return Err(ParseError::Empty);
        }
        self.node(Node::Matrix(rows))
    }
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Num(s) | Tok::Ident(s) | Tok::Text(s) => s.clone(),
        Tok::Plus => "+".into(),
        Tok::Minus => "-".into(),
        Tok::Comma => ",".into(),
        other => format!("{other:?}"),
    }
}

/// The value of an integer numeral `digits` in `base`, if every digit is valid there.
fn from_base(digits: &str, base: u32) -> Option<f64> {
    if !(2..=36).contains(&base) || digits.len() > 40 {
        return None;
    }
    let mut v = 0f64;
    for c in digits.chars() {
        let d = c.to_digit(base)?;
        v = v * f64::from(base) + f64::from(d);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_with_single_digit_arguments() {
        assert_eq!(parse("\\frac94").unwrap(), Node::Div(bx(Node::Num(9.0)), bx(Node::Num(4.0))));
    }

    #[test]
    fn interval_keeps_its_brackets() {
        match parse("[0, 1)").unwrap() {
            Node::Group { open: '[', close: ')', items } => assert_eq!(items.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chains_become_one_relation() {
        match parse("x = 5+5+1 = 11").unwrap() {
            Node::Rel { items, ops } => {
                assert_eq!(items.len(), 3);
                assert_eq!(ops, vec![RelOp::Eq, RelOp::Eq]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn depth_is_capped() {
        let deep = "(".repeat(500) + "1" + &")".repeat(500);
        assert_eq!(parse(&deep), Err(ParseError::TooDeep));
        let fracs = "\\frac{".repeat(300) + "1" + &"}{2}".repeat(300);
        assert!(parse(&fracs).is_err());
    }

    #[test]
    fn base_subscripts() {
        assert_eq!(parse("204_5").unwrap(), Node::Num(54.0));
        assert!(parse("29_5").is_err());
    }
}
