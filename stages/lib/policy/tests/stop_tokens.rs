//! A stage generating from chat prompts stops at the template's end of turn even when the
//! model's EOS is another token, and its generation metrics record the stop tokens.

use std::path::{Path, PathBuf};

use spice_lm::tch::{Kind, Tensor};
use spice_lm::{FinishReason, GenRequest, Policy, SamplingParams};
use spice_policy::{sampling, StagePolicy};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lm/fixtures/tiny-qwen2")
}

/// The tiny Qwen2 fixture as a base model with a ChatML template: EOS `<|endoftext|>` (id 0),
/// turns closed by `<|im_end|>` (id 2), whose output row is made 1.5 × the row of the token
/// greedy decoding writes third, so a chat completion reaches `<|im_end|>` within three tokens.
fn base_model_with_chatml(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in std::fs::read_dir(fixture()).unwrap() {
        let f = f.unwrap().path();
        if f.file_name().unwrap() != "reference.safetensors" {
            std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    for (name, key, value) in [
        ("config.json", "eos_token_id", serde_json::json!(0)),
        ("generation_config.json", "eos_token_id", serde_json::json!(0)),
        ("tokenizer_config.json", "eos_token", serde_json::json!("<|endoftext|>")),
    ] {
        let path = dir.join(name);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v[key] = value;
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
    let sp = StagePolicy::load(dir, "cpu", "f32").unwrap();
    let (_, ids) = sp.chat_prompt("What is 2+2?").unwrap();
    let mut p = sp.policy;
    p.set_eos_ids(Vec::new());
    let req = GenRequest { prompt_ids: ids, seed: 0 };
    let greedy = p.generate(&[req], &SamplingParams::greedy(6), 1, None).unwrap().remove(0);
    let third = greedy.token_ids[2] as i64;
    assert!(!greedy.token_ids[..3].contains(&2) && third != 0, "{:?}", greedy.token_ids);
    let file = dir.join("model.safetensors");
    let mut tensors = Tensor::read_safetensors(&file).unwrap();
    let (_, head) = tensors.iter_mut().find(|(n, _)| n == "lm_head.weight").unwrap();
    let row = head.get(third) * 1.5;
    head.get(2).copy_(&row); // `get` is a view: this writes into the head
    Tensor::write_safetensors(&tensors, &file).unwrap();
}

#[test]
fn chat_prompts_stop_at_the_end_of_turn_and_the_metrics_say_so() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("base-chatml-{}", std::process::id()));
    base_model_with_chatml(&dir);
    let sp = StagePolicy::load(&dir, "cpu", "f32").unwrap();
    assert!(sp.chat, "the folder has a chat template");
    assert_eq!(sp.policy.eos_ids(), [0]);
    let params = sampling(1.0, 1.0, 0, 12);
    assert_eq!(sp.stop_token_ids(&params), [0, 2], "EOS, then the template's end of turn");
    assert_eq!(sp.with_turn_stops(&params).stop_token_ids, [2]);

    let (_, ids) = sp.chat_prompt("What is 2+2?").unwrap();
    let reqs = [GenRequest { prompt_ids: ids, seed: 0 }];
    let greedy = SamplingParams { temperature: 0.0, ..params.clone() };
    let (gens, metrics) = sp.generate(&reqs, &greedy, 1, "test").unwrap();
    let g = &gens[0];
    assert_eq!(g.finish_reason, FinishReason::Stop, "{:?}", g.token_ids);
    assert_eq!(g.token_ids.last(), Some(&2));
    assert!(g.token_ids.len() <= 3, "{:?}", g.token_ids);
    assert_eq!(metrics.stop_token_ids, [0, 2]);
    assert!(metrics.batch_invariant, "f32 on a CPU");

    // The same policy from outside a stage, with only its EOS: past the end of the turn.
    let p = Policy::load(&dir, spice_lm::Device::Cpu, Kind::Float).unwrap();
    let through = p.generate(&reqs, &greedy, 1, None).unwrap().remove(0);
    assert_eq!(through.finish_reason, FinishReason::Length, "{:?}", through.token_ids);
    assert!(through.token_ids.contains(&2));
    std::fs::remove_dir_all(&dir).unwrap();
}
