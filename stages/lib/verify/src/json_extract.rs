//! Finding and reading the JSON object in a Challenger completion.
//!
//! Models wrap the object in prose and code fences and make small slips: trailing commas,
//! single or typographic quotes, raw newlines in strings, unquoted keys, Python literals,
//! LaTeX backslashes that are not JSON escapes (`"\frac{1}{2}"`, where `\f` would silently
//! become a form feed). The reader here accepts all of JSON plus those slips where the
//! meaning is unambiguous, and nothing else.

use crate::bounds::{tail, MAX_COMPLETION_BYTES};
use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays/objects accepted.
const MAX_JSON_DEPTH: usize = 16;
/// Most bytes the reader may examine in one completion, over all attempts.
const WORK_BUDGET: usize = 256 * 1024;

/// The outcome of looking for a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// Objects that parsed, in order of appearance.
    Objects(Vec<Value>),
    /// Something object-like was there but nothing parsed.
    Unparsable(String),
    /// No `{` at all.
    Nothing,
}

/// Every top-level `{…}` in `text` that reads as a JSON object (leniently).
pub fn find_objects(text: &str) -> Found {
    let s = tail(text, MAX_COMPLETION_BYTES);
    let b = s.as_bytes();
    let mut objects = Vec::new();
    let mut last_error = None;
    let mut saw_brace = false;
    // Bytes read across all attempts: failed attempts restart at the next `{`, so without a
    // budget a long unterminated string full of LaTeX braces would cost quadratic time.
    let mut work = 0usize;
    let mut i = 0;
    while i < b.len() && work < WORK_BUDGET {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        saw_brace = true;
        let (result, used) = Reader::new(&s[i..]).object_prefix();
        work += used;
        match result {
            Ok(value) => {
                if value.is_object() {
                    objects.push(value);
                }
                i += used.max(1);
            }
            Err(e) => {
                last_error = Some(e);
                i += 1;
            }
        }
    }
    if !objects.is_empty() {
        Found::Objects(objects)
    } else if saw_brace {
        Found::Unparsable(last_error.unwrap_or_else(|| "no object".into()))
    } else {
        Found::Nothing
    }
}

/// LaTeX command names that begin with a letter JSON would read as an escape
/// (`\b \f \n \r \t \u`): in a model's JSON string they are almost always LaTeX.
const LATEX_AFTER_ESCAPE: &[&str] = &[
    "frac",
    "forall",
    "flat",
    "beta",
    "boxed",
    "bar",
    "binom",
    "begin",
    "big",
    "bigl",
    "bigr",
    "bigg",
    "bmatrix",
    "bot",
    "bf",
    "bullet",
    "backslash",
    "right",
    "rho",
    "rangle",
    "rightarrow",
    "rm",
    "rfloor",
    "rceil",
    "text",
    "textbf",
    "textit",
    "times",
    "theta",
    "tan",
    "tau",
    "to",
    "tfrac",
    "triangle",
    "top",
    "tilde",
    "textrm",
    "tanh",
    "neq",
    "nu",
    "nabla",
    "not",
    "ne",
    "neg",
    "ni",
    "nonumber",
    "newline",
    "nmid",
    "notin",
    "underline",
    "underbrace",
    "uparrow",
    "upsilon",
    "cup",
    "cap",
];

struct Reader<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

type R<T> = Result<T, String>;

impl<'a> Reader<'a> {
    fn new(s: &'a str) -> Self {
        Reader { s, pos: 0, depth: 0 }
    }

    /// Reads one value from the start; returns it (or why not) and how far it read.
    fn object_prefix(mut self) -> (R<Value>, usize) {
        let v = self.value();
        (v, self.pos)
    }

    fn peek_char(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        loop {
            match self.peek_char() {
                Some(c) if c.is_whitespace() => self.pos += c.len_utf8(),
                Some('/') if self.s[self.pos..].starts_with("//") => {
                    while let Some(c) = self.peek_char() {
                        self.pos += c.len_utf8();
                        if c == '\n' {
                            break;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn value(&mut self) -> R<Value> {
        self.depth += 1;
        if self.depth > MAX_JSON_DEPTH {
            return Err("nested too deeply".into());
        }
        self.skip_ws();
        let v = match self.peek_char() {
            None => Err("unexpected end".into()),
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some(q @ ('"' | '\'' | '“' | '”' | '‘' | '’')) => {
                self.string(q).map(Value::String)
            }
            Some(_) => self.bare(),
        };
        self.depth -= 1;
        v
    }

    fn object(&mut self) -> R<Value> {
        self.pos += 1;
        let mut map = Map::new();
        loop {
            self.skip_ws();
            match self.peek_char() {
                None => return Err("unterminated object".into()),
                Some('}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                Some(',') => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let key = match self.peek_char() {
                Some(q @ ('"' | '\'' | '“' | '”' | '‘' | '’')) => self.string(q)?,
                _ => self.bare_key()?,
            };
            self.skip_ws();
            if self.peek_char() != Some(':') && self.peek_char() != Some('=') {
                return Err(format!("expected ':' after key {key:?}"));
            }
            self.pos += 1;
            let v = self.value()?;
            map.insert(key, v);
        }
    }

    fn array(&mut self) -> R<Value> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek_char() {
                None => return Err("unterminated array".into()),
                Some(']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                Some(',') => {
                    self.pos += 1;
                    continue;
                }
                _ => items.push(self.value()?),
            }
        }
    }

    fn bare_key(&mut self) -> R<String> {
        let start = self.pos;
        while let Some(c) = self.peek_char() {
            if c.is_alphanumeric() || c == '_' || c == '-' || c == ' ' {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        let key = self.s[start..self.pos].trim();
        if key.is_empty() {
            return Err("expected a key".into());
        }
        Ok(key.to_string())
    }

    /// A string in `q` quotes. A quote only closes the string when what follows it can
    /// follow a string (`,` `:` `}` `]` or the end), so `"say "hi" now"` keeps its inner quotes.
    fn string(&mut self, q: char) -> R<String> {
        let close_set: &[char] = match q {
            '"' => &['"'],
            '\'' => &['\''],
            '“' | '”' => &['”', '“', '"'],
            _ => &['’', '‘', '\''],
        };
        self.pos += q.len_utf8();
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_char() else {
                return Err("unterminated string".into());
            };
            self.pos += c.len_utf8();
            if close_set.contains(&c) {
                let rest = self.s[self.pos..].trim_start();
                if rest.is_empty() || rest.starts_with([',', ':', '}', ']', '=']) {
                    return Ok(out);
                }
                // A closing quote followed by a newline and a new key: missing comma.
                if self.s[self.pos..].starts_with(['\n', '\r']) && rest.starts_with(['"', '\'']) {
                    return Ok(out);
                }
                out.push(c);
                continue;
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek_char() else {
                return Err("unterminated string".into());
            };
            // `\frac` in a JSON string is LaTeX, not a form feed.
            if matches!(e, 'b' | 'f' | 'n' | 'r' | 't' | 'u') {
                let word: String =
                    self.s[self.pos..].chars().take_while(|c| c.is_ascii_alphabetic()).collect();
                if LATEX_AFTER_ESCAPE.iter().any(|w| word == *w) {
                    out.push('\\');
                    continue;
                }
            }
            self.pos += e.len_utf8();
            match e {
                '"' | '\\' | '/' | '\'' => out.push(e),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex = self.s.get(self.pos..self.pos + 4).unwrap_or("");
                    match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                        Some(ch) if hex.len() == 4 => {
                            out.push(ch);
                            self.pos += 4;
                        }
                        _ => out.push_str("\\u"),
                    }
                }
                other if other == q => out.push(other),
                // `\(`, `\sqrt`, `\{`: LaTeX; keep the backslash.
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    /// Numbers, literals (`true`, `False`, `None`, `null`) and unquoted words up to the next
    /// delimiter.
    fn bare(&mut self) -> R<Value> {
        let start = self.pos;
        while let Some(c) = self.peek_char() {
            if matches!(c, ',' | '}' | ']' | '\n') {
                break;
            }
            self.pos += c.len_utf8();
        }
        let word = self.s[start..self.pos].trim();
        if word.is_empty() {
            return Err(format!("unexpected character at {start}"));
        }
        Ok(match word {
            "true" | "True" => Value::Bool(true),
            "false" | "False" => Value::Bool(false),
            "null" | "None" => Value::Null,
            _ => {
                let looks_numeric = word
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
                match looks_numeric.then(|| serde_json::from_str::<Number>(word).ok()).flatten() {
                    Some(n) => Value::Number(n),
                    None => Value::String(word.to_string()),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(s: &str) -> Value {
        match find_objects(s) {
            Found::Objects(mut v) => v.pop().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn strict_json_in_prose_and_fences() {
        let v = one("Here you go:\n```json\n{\"question\": \"Q?\", \"answer\": 5}\n```\nDone.");
        assert_eq!(v, json!({"question": "Q?", "answer": 5}));
    }

    #[test]
    fn common_slips() {
        assert_eq!(one("{'a': 'b',}"), json!({"a": "b"}));
        assert_eq!(one("{“a”: “b”}"), json!({"a": "b"}));
        assert_eq!(one("{\"a\": \"line1\nline2\"}"), json!({"a": "line1\nline2"}));
        assert_eq!(one("{a: True, b: None}"), json!({"a": true, "b": null}));
        assert_eq!(one(r#"{"a": "\frac{1}{2}"}"#), json!({"a": "\\frac{1}{2}"}));
        assert_eq!(one(r#"{"a": "say "hi" now"}"#), json!({"a": "say \"hi\" now"}));
    }

    #[test]
    fn nothing_and_broken() {
        assert_eq!(find_objects("no json here"), Found::Nothing);
        assert!(matches!(find_objects("{\"a\": "), Found::Unparsable(_)));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let s = "{\"a\":".repeat(10_000);
        assert!(matches!(find_objects(&s), Found::Unparsable(_)));
    }
}
