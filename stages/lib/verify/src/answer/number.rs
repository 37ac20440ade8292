//! Number spellings that are decided on the whole answer string, before tokenizing.
//!
//! A comma is a thousands separator in `7,425,000` but a list separator in `-2,1`; a space
//! is one in `1 000` but not in `4 4/9` (a mixed number). These are only unambiguous when the
//! whole answer has that exact shape, so they are decided here on the full string.

/// Rewrites whole-answer number spellings into plain ones: `7,425,000` → `7425000`,
/// `1 000` → `1000`, `4 4/9` → `(40/9)`, `-2\frac{1}{3}` → `-(7/3)`. Anything else is
/// returned unchanged. `{,}` and `,\!` are always thousands separators (LaTeX only writes
/// them that way), so they are removed everywhere.
pub fn normalize_number_spelling(s: &str) -> String {
    let mut t = s.replace("{,}", "").replace(",\\!", "").replace("{,}\\!", "");
    let trimmed = t.trim();
    if let Some(plain) = grouped_number(trimmed, ',').or_else(|| grouped_number(trimmed, ' ')) {
        return plain;
    }
    if let Some(m) = mixed_number(trimmed) {
        return m;
    }
    if t.len() != trimmed.len() {
        t = trimmed.to_string();
    }
    t
}

/// `-?\d{1,3}(SEP\d{3})+(\.\d+)?` with an optional trailing `%`, as a plain number.
fn grouped_number(s: &str, sep: char) -> Option<String> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s),
    };
    let (body, pct) = match body.strip_suffix('%').or_else(|| body.strip_suffix("\\%")) {
        Some(b) => (b.trim_end(), "%"),
        None => (body, ""),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let groups: Vec<&str> = int.split(sep).collect();
    if groups.len() < 2 {
        return None;
    }
    // `0,111` is a decimal comma or a list, never thousands.
    let first_ok = !groups[0].is_empty()
        && groups[0].len() <= 3
        && !groups[0].starts_with('0')
        && groups[0].bytes().all(|b| b.is_ascii_digit());
    let rest_ok = groups[1..].iter().all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !(first_ok && rest_ok && frac_ok) {
        return None;
    }
    let mut out = format!("{sign}{}", groups.concat());
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out.push_str(pct);
    Some(out)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `4 4/9`, `-4 4/9`, `2\frac{1}{3}`, `2\dfrac13` as an exact fraction, when the fractional
/// part is proper (numerator below denominator): otherwise it is a product, not a mixed number.
fn mixed_number(s: &str) -> Option<String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, s),
    };
    let pct = body.ends_with('%');
    let body = body.trim_end_matches('%').trim_end_matches('\\').trim_end();
    let (whole, num, den) = if let Some((w, frac)) = body.split_once(' ') {
        let (n, d) = frac.trim().split_once('/')?;
        (w, n.trim().to_string(), d.trim().to_string())
    } else {
        let idx = body.find('\\')?;
        let (w, rest) = body.split_at(idx);
        let rest = rest
            .strip_prefix("\\frac")
            .or_else(|| rest.strip_prefix("\\dfrac"))
            .or_else(|| rest.strip_prefix("\\tfrac"))?
            .trim();
        let (n, d) = if let Some(r) = rest.strip_prefix('{') {
            let (n, r) = r.split_once('}')?;
            let r = r.trim().strip_prefix('{')?;
            let (d, r) = r.split_once('}')?;
            if !r.trim().is_empty() {
                return None;
            }
            (n.to_string(), d.to_string())
        } else if rest.len() == 2 && rest.is_ascii() {
            (rest[..1].to_string(), rest[1..].to_string())
        } else {
            return None;
        };
        (w.trim(), n, d)
    };
    if !(all_digits(whole) && all_digits(&num) && all_digits(&den)) {
        return None;
    }
    let (w, n, d): (u64, u64, u64) = (whole.parse().ok()?, num.parse().ok()?, den.parse().ok()?);
    if d == 0 || n >= d {
        return None;
    }
    let top = w.checked_mul(d)?.checked_add(n)?;
    let sign = if neg { "-" } else { "" };
    let pct = if pct { "%" } else { "" };
    Some(format!("{sign}({top}/{d}){pct}"))
}

/// `Some(digits)` when `s` is a plain integer literal (optional sign, leading zeros dropped),
/// for exact comparison of integers too long for `f64`.
pub fn plain_integer(s: &str) -> Option<String> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = body.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if neg && digits != "0" { "-" } else { "" };
    Some(format!("{sign}{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(normalize_number_spelling("7,425,000"), "7425000");
        assert_eq!(normalize_number_spelling("1 000"), "1000");
        assert_eq!(normalize_number_spelling("1,000.99"), "1000.99");
        assert_eq!(normalize_number_spelling("14{,}916"), "14916");
        assert_eq!(normalize_number_spelling("-2,1"), "-2,1");
        assert_eq!(normalize_number_spelling("1,22"), "1,22");
    }

    #[test]
    fn mixed_numbers() {
        assert_eq!(normalize_number_spelling("4 4/9"), "(40/9)");
        assert_eq!(normalize_number_spelling("-4 4/9"), "-(40/9)");
        assert_eq!(normalize_number_spelling("2\\frac{1}{3}"), "(7/3)");
        assert_eq!(normalize_number_spelling("2\\frac{5}{3}"), "2\\frac{5}{3}");
        assert_eq!(normalize_number_spelling("11.0 4/9"), "11.0 4/9");
    }

    #[test]
    fn plain_integers() {
        assert_eq!(plain_integer("004").as_deref(), Some("4"));
        assert_eq!(plain_integer("-0").as_deref(), Some("0"));
        assert_eq!(plain_integer("1.0"), None);
    }
}
