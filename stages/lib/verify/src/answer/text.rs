//! Normalisation of short text answers and booleans.
//!
//! A string answer is compared after removing what does not change its meaning: case,
//! surrounding LaTeX (`\text{…}`, `$…$`), punctuation, articles and extra whitespace. This is
//! deliberately not fuzzy matching: `Paris` and `paris.` agree, `Paris` and `Pari` do not.

/// Removes LaTeX text wrappers and math delimiters, keeping their content.
pub fn strip_latex_wrappers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(idx) = rest.find('\\') {
        out.push_str(&rest[..idx]);
        let after = &rest[idx + 1..];
        let name_len = after.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let name = &after[..name_len];
        let wrapper = matches!(
            name,
            "text"
                | "textbf"
                | "textit"
                | "textrm"
                | "mbox"
                | "textnormal"
                | "mathrm"
                | "mathbf"
                | "mathit"
                | "operatorname"
                | "boxed"
                | "fbox"
                | "textsf"
                | "texttt"
                | "mathsf"
        );
        if wrapper {
            // Drop the command; its braces are dropped below with the other punctuation.
            rest = &after[name_len..];
        } else if name.is_empty() {
            // `\,` `\!` `\ ` `\$` `\%`: keep the escaped character if it is meaningful.
            let mut chars = after.chars();
            match chars.next() {
                Some('%') => out.push('%'),
                Some(c) if c.is_alphanumeric() => out.push(c),
                _ => {}
            }
            rest = chars.as_str();
        } else {
            out.push('\\');
            out.push_str(name);
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    out
}

/// Case-folded words of a text answer, without punctuation, articles or LaTeX wrappers.
pub fn normalize_text(s: &str) -> String {
    let s = strip_latex_wrappers(s).to_lowercase();
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '-' || c == '.' || c == '%' { c } else { ' ' })
        .collect();
    let words: Vec<&str> = cleaned
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c == '.' || c == '-'))
        .filter(|w| !w.is_empty() && !matches!(*w, "a" | "an" | "the"))
        .collect();
    words.join(" ")
}

/// Reads a boolean answer in its common spellings.
pub fn parse_bool(s: &str) -> Option<bool> {
    let n = normalize_text(s);
    let n = n.trim_end_matches('.');
    match n {
        "true" | "yes" | "correct" | "right" | "t" | "y" | "1" | "valid" | "holds" | "always" => {
            Some(true)
        }
        "false" | "no" | "incorrect" | "wrong" | "f" | "n" | "0" | "invalid" | "never" => {
            Some(false)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_normalisation() {
        assert_eq!(normalize_text("\\text{The Evelyn}."), "evelyn");
        assert_eq!(normalize_text("  New   York, "), "new york");
        assert_ne!(normalize_text("Paris"), normalize_text("Pari"));
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("Yes."), Some(true));
        assert_eq!(parse_bool("\\text{False}"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }
}
