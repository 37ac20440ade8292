//! Tokenizer and chat template against the Python tokenizers / transformers reference.

mod common;

use common::*;
use spice_lm::tch::Kind;
use spice_lm::ChatMessage;

#[test]
fn token_ids_and_chat_text_match_the_reference() {
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tokenizer_reference.json")).unwrap(),
    )
    .unwrap();
    let p = load("qwen2", Kind::Float);
    let strings = r["strings"].as_array().unwrap();
    for (i, s) in strings.iter().enumerate() {
        let s = s.as_str().unwrap();
        let want: Vec<u32> =
            r["ids"][i].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let got = p.tokenizer().encode(s).unwrap();
        assert_eq!(got, want, "ids of {s:?}");
        assert_eq!(p.tokenizer().decode(&got, false).unwrap(), r["decoded"][i].as_str().unwrap());
    }
    let messages: Vec<ChatMessage> = serde_json::from_value(r["chat_messages"].clone()).unwrap();
    let text = p.render_chat(&messages, true).unwrap();
    assert_eq!(text, r["chat_text"].as_str().unwrap());
    println!("{} strings tokenized identically; chat template identical", strings.len());
}

#[test]
fn incomplete_folders_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"] {
        std::fs::copy(tiny("qwen2").join(f), dir.path().join(f)).unwrap();
    }
    let e = spice_lm::Policy::load(dir.path(), spice_lm::Device::Cpu, Kind::Float).err().unwrap();
    assert!(format!("{e:#}").contains("model.safetensors"), "{e:#}");
    // A config that promises a tensor the weights lack names it.
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    cfg["num_hidden_layers"] = 3.into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(tiny("qwen2").join("model.safetensors"), dir.path().join("model.safetensors"))
        .unwrap();
    let e = spice_lm::Policy::load(dir.path(), spice_lm::Device::Cpu, Kind::Float).err().unwrap();
    assert!(format!("{e:#}").contains("model.layers.2."), "{e:#}");
    cfg["model_type"] = "gpt_neox".into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = spice_lm::Policy::load(dir.path(), spice_lm::Device::Cpu, Kind::Float).err().unwrap();
    assert!(format!("{e:#}").contains("gpt_neox"), "{e:#}");
}
