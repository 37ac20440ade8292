//! Reasoning blocks: `<think>…</think>` is a model thinking aloud, not its answer.
//!
//! Thinking models (Qwen3, DeepSeek-R1) write their scratch work, boxed guesses included,
//! inside `<think>…</think>` and the answer after it. Everything inside a block is removed
//! before any answer is read, from the completion and from the gold alike:
//!
//! - every `<think>…</think>` block is removed;
//! - a `</think>` with no `<think>` before it closes a block the chat template opened in the
//!   prompt, so everything before it is removed;
//! - a `<think>` that never closes (a completion cut off while thinking) runs to the end of
//!   the text: nothing after it counts, and a completion that is all thinking has no answer.

use std::borrow::Cow;

/// `text` without its reasoning blocks (see the module documentation for the rules).
/// One pass over `text`; borrows when there is no tag.
pub fn strip_reasoning(text: &str) -> Cow<'_, str> {
    if !text.contains("think>") {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::new();
    // Start of the text outside blocks not yet copied; `None` inside a block.
    let mut outside = Some(0);
    for (i, _) in text.match_indices("think>") {
        let end = i + "think>".len();
        if i >= 2 && &b[i - 2..i] == b"</" {
            if outside.is_some() {
                // A close with no open before it: the block began before the text did.
                out.clear();
            }
            outside = Some(end);
        } else if i >= 1 && b[i - 1] == b'<' {
            if let Some(from) = outside {
                out.push_str(&text[from..i - 1]);
                outside = None;
            }
        }
    }
    // A block never closed runs to the end.
    if let Some(from) = outside {
        out.push_str(&text[from..]);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_removed() {
        assert_eq!(strip_reasoning("<think>41?</think> 42"), " 42");
        assert_eq!(strip_reasoning("a<think>x</think>b<think>y</think>c"), "abc");
        assert_eq!(strip_reasoning("so 41.\n</think>\n42"), "\n42");
        assert_eq!(strip_reasoning("<think>cut off \\boxed{7}"), "");
        assert_eq!(strip_reasoning("5 <think>hmm"), "5 ");
        assert_eq!(strip_reasoning("no tags, 42"), "no tags, 42");
        assert!(matches!(strip_reasoning("plain"), Cow::Borrowed(_)));
    }
}
