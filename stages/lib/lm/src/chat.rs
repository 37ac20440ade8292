//! Chat templates: the Jinja template of `tokenizer_config.json` (or `chat_template.jinja`)
//! rendered with minijinja, with Python string methods (`.strip()`, `.startswith()`, …)
//! provided by minijinja-contrib's pycompat layer, as transformers renders it.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use minijinja::{context, Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    pub fn new(source: String, bos_token: String, eos_token: String) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.clone())
            .map_err(|e| anyhow!("{e:#}"))
            .context("compiling the chat template")?;
        Ok(ChatTemplate { env, source, bos_token, eos_token })
    }

    /// Read the template of a model folder: `chat_template.jinja` if present, else the
    /// `chat_template` field of `tokenizer_config.json` (a string, or a list of named
    /// templates of which `default` is used).
    pub fn from_folder(dir: &Path) -> Result<ChatTemplate> {
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => serde_json::from_str(&t)
                .with_context(|| format!("parsing {}", cfg_path.display()))?,
            Err(_) => serde_json::Value::Null,
        };
        let jinja = dir.join("chat_template.jinja");
        let source = if jinja.exists() {
            std::fs::read_to_string(&jinja)
                .with_context(|| format!("reading {}", jinja.display()))?
        } else {
            match &cfg["chat_template"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(list) => list
                    .iter()
                    .find(|t| t["name"] == "default")
                    .and_then(|t| t["template"].as_str())
                    .map(str::to_owned)
                    .with_context(|| {
                        format!("{}: `chat_template` list has no `default`", cfg_path.display())
                    })?,
                _ => bail!(
                    "{} has no `chat_template` field and {} does not exist",
                    cfg_path.display(),
                    jinja.display()
                ),
            }
        };
        let token = |field: &str| match &cfg[field] {
            serde_json::Value::String(s) => s.clone(),
            v => v["content"].as_str().unwrap_or_default().to_owned(),
        };
        ChatTemplate::new(source, token("bos_token"), token("eos_token"))
            .with_context(|| format!("chat template of {}", dir.display()))
    }

    /// The prompt text for `messages`; with `add_generation_prompt` it ends where the
    /// assistant's reply begins.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(|e| anyhow!("{e}"))?;
        tmpl.render(context! {
            messages => minijinja::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone(),
            eos_token => self.eos_token.clone(),
        })
        .map_err(|e| anyhow!("{e:#}"))
        .context("rendering the chat template")
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the template writes right after the content of an assistant turn: the text that
    /// follows the assistant's content when a user turn and an assistant turn are rendered
    /// (`<|im_end|>\n` for ChatML, `<|eot_id|>` for Llama 3, `<end_of_turn>\n` for Gemma).
    pub fn after_assistant_turn(&self) -> Result<String> {
        let messages =
            [ChatMessage::new("user", PROBE_USER), ChatMessage::new("assistant", PROBE_ASSISTANT)];
        let text = self.render(&messages, false)?;
        let at = text.rfind(PROBE_ASSISTANT).with_context(|| {
            format!("the chat template does not write an assistant message's content: {text:?}")
        })?;
        Ok(text[at + PROBE_ASSISTANT.len()..].to_string())
    }
}

/// End-of-turn tokens of well-known chat formats (ChatML, Llama 3, Phi-3, Gemma, Llama 4),
/// the fallback of [`end_of_turn_id`] for a template that does not render the probe.
pub const KNOWN_END_OF_TURN: &[&str] =
    &["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|eot|>"];

/// The token that ends an assistant turn in `template`, which generation from a prompt the
/// template rendered must stop at (a model whose EOS is another token, such as a base model
/// whose tokenizer carries a ChatML template with EOS `<|endoftext|>`, would otherwise write
/// past its turn up to the length limit). The rule:
///
/// 1. render a user turn and an assistant turn, and take what the template writes right after
///    the assistant's content ([`ChatTemplate::after_assistant_turn`]); leading whitespace
///    skipped, its first token is the end of turn if it is a special token of the tokenizer
///    (`<|im_end|>` for ChatML, `<|eot_id|>` for Llama 3, `<end_of_turn>` for Gemma, the EOS
///    `</s>` for Mistral). A template that writes plain text there has no end-of-turn token;
/// 2. only when that conversation does not render (a template that refuses it): the first of
///    [`KNOWN_END_OF_TURN`] that is a special token of the tokenizer and appears in the
///    template's source.
pub fn end_of_turn_id(template: &ChatTemplate, tokenizer: &Tokenizer) -> Option<u32> {
    match template.after_assistant_turn() {
        Ok(after) => {
            let first = tokenizer.encode(after.trim_start()).ok()?.first().copied()?;
            tokenizer.is_special(first).then_some(first)
        }
        Err(e) => {
            tracing::debug!(
                "chat template probe failed ({e:#}); looking for known end-of-turn tokens"
            );
            KNOWN_END_OF_TURN
                .iter()
                .filter(|t| template.source().contains(*t))
                .find_map(|t| tokenizer.special_id(t))
        }
    }
}

/// Message contents of the probe conversation of [`ChatTemplate::after_assistant_turn`]: plain
/// words no template strips or rewrites.
const PROBE_USER: &str = "spiceprobeuser";
const PROBE_ASSISTANT: &str = "spiceprobeassistant";

#[cfg(test)]
mod tests {
    use super::*;

    /// The ChatML template shape SmolLM2 and Qwen use, with a default system message.
    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'].strip() + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_python_methods() {
        let t = ChatTemplate::new(CHATML.into(), String::new(), "<|im_end|>".into()).unwrap();
        let out = t.render(&[ChatMessage::new("user", " What is 2+2? ")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?\
             <|im_end|>\n<|im_start|>assistant\n"
        );
        let no_gen = t.render(&[ChatMessage::new("system", "S")], false).unwrap();
        assert_eq!(no_gen, "<|im_start|>system\nS<|im_end|>\n");
    }

    #[test]
    fn after_assistant_turn_is_what_closes_the_turn() {
        let t = ChatTemplate::new(CHATML.into(), String::new(), "<|endoftext|>".into()).unwrap();
        assert_eq!(t.after_assistant_turn().unwrap(), "<|im_end|>\n");
        // Llama 3's shape: the turn ends with <|eot_id|> and nothing after it.
        let llama3 =
            "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + \
                      '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}";
        let t = ChatTemplate::new(llama3.into(), "<s>".into(), String::new()).unwrap();
        assert_eq!(t.after_assistant_turn().unwrap(), "<|eot_id|>");
        // A template that writes nothing after the content.
        let bare = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}";
        let t = ChatTemplate::new(bare.into(), String::new(), String::new()).unwrap();
        assert_eq!(t.after_assistant_turn().unwrap(), "\n");
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::new(
            "{{ raise_exception('roles must alternate') }}".into(),
            String::new(),
            String::new(),
        )
        .unwrap();
        let e = t.render(&[], true).unwrap_err();
        assert!(format!("{e:#}").contains("roles must alternate"));
    }
}
