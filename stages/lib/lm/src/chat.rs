//! Chat templates: the Jinja template of `tokenizer_config.json` (or `chat_template.jinja`)
//! rendered with minijinja, with Python string methods (`.strip()`, `.startswith()`, …)
//! provided by minijinja-contrib's pycompat layer, as transformers renders it.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use minijinja::{context, Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

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
        env.add_template_owned("chat", source)
            .map_err(|e| anyhow!("{e:#}"))
            .context("compiling the chat template")?;
        Ok(ChatTemplate { env, bos_token, eos_token })
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
}

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
