//! A tiny Llama GGUF written here (candle's GGUF writer) runs the whole import without the
//! real model: Q/K un-permutation against known Hugging Face weights, the tokenizer's digit
//! split, special tokens, idempotence, and the errors for broken files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use spice_gguf::{import_gguf, FILES};

const HIDDEN: usize = 32;
const FFN: usize = 64;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = HIDDEN / HEADS;
const LAYERS: usize = 2;
const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const MERGES: [(&str, &str); 4] = [("h", "e"), ("l", "l"), ("he", "ll"), ("1", "2")];
const TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}{% endfor %}";

/// GPT-2's byte → printable character table.
fn byte_alphabet() -> Vec<char> {
    let mut bs: Vec<u32> =
        (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        table[b as usize] = char::from_u32(c).unwrap();
    }
    table
}

fn tokens() -> Vec<String> {
    let mut t: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    t.extend(byte_alphabet().into_iter().map(String::from));
    t.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    t
}

/// Deterministic, distinct values for a Hugging Face-layout tensor.
fn values(shape: &[usize], seed: usize) -> Vec<f32> {
    let n: usize = shape.iter().product();
    (0..n).map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect()
}

/// llama.cpp's converter permutation, applied to a Hugging Face Q/K matrix.
fn llama_cpp_permute(w: &[f32], n_head: usize, rows: usize, cols: usize) -> Vec<f32> {
    let half = rows / n_head / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for j in 0..2 {
            for i in 0..half {
                let src = h * 2 * half + j * half + i;
                let dst = h * 2 * half + 2 * i + j;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

struct Fixture {
    /// Hugging Face name → (shape, values) the import must produce.
    expected: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Writes a tiny GGUF. `edit` may change the metadata and tensor lists before writing.
fn write_gguf(
    path: &Path,
    edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>),
) -> Fixture {
    let toks = tokens();
    let vocab = toks.len();
    let mut types = vec![Value::I32(1); vocab];
    for t in types.iter_mut().take(SPECIALS.len()) {
        *t = Value::I32(3);
    }
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("llama.block_count".into(), Value::U32(LAYERS as u32)),
        ("llama.context_length".into(), Value::U32(256)),
        ("llama.embedding_length".into(), Value::U32(HIDDEN as u32)),
        ("llama.feed_forward_length".into(), Value::U32(FFN as u32)),
        ("llama.attention.head_count".into(), Value::U32(HEADS as u32)),
        ("llama.attention.head_count_kv".into(), Value::U32(KV_HEADS as u32)),
        ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-6)),
        ("llama.rope.freq_base".into(), Value::F32(10_000.0)),
        ("llama.rope.dimension_count".into(), Value::U32(HEAD_DIM as u32)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(toks.iter().map(|t| Value::String(t.clone())).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(MERGES.iter().map(|(a, b)| Value::String(format!("{a} {b}"))).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        ("tokenizer.chat_template".into(), Value::String(TEMPLATE.into())),
    ];
    let mut expected = HashMap::new();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut seed = 0;
    let mut add = |gguf: String, hf: String, shape: Vec<usize>, permute_heads: Option<usize>| {
        seed += 1;
        let hf_values = values(&shape, seed);
        let stored = match permute_heads {
            Some(h) => llama_cpp_permute(&hf_values, h, shape[0], shape[1]),
            None => hf_values.clone(),
        };
        let t = Tensor::from_vec(stored, shape.as_slice(), &Device::Cpu).unwrap();
        tensors.push((gguf, QTensor::quantize(&t, GgmlDType::F32).unwrap()));
        expected.insert(hf, (shape, hf_values));
    };
    add("token_embd.weight".into(), "model.embed_tokens.weight".into(), vec![vocab, HIDDEN], None);
    for l in 0..LAYERS {
        let g = |s: &str| format!("blk.{l}.{s}.weight");
        let hf = |s: &str| format!("model.layers.{l}.{s}.weight");
        add(g("attn_q"), hf("self_attn.q_proj"), vec![HEADS * HEAD_DIM, HIDDEN], Some(HEADS));
        add(g("attn_k"), hf("self_attn.k_proj"), vec![KV_HEADS * HEAD_DIM, HIDDEN], Some(KV_HEADS));
        add(g("attn_v"), hf("self_attn.v_proj"), vec![KV_HEADS * HEAD_DIM, HIDDEN], None);
        add(g("attn_output"), hf("self_attn.o_proj"), vec![HIDDEN, HIDDEN], None);
        add(g("ffn_gate"), hf("mlp.gate_proj"), vec![FFN, HIDDEN], None);
        add(g("ffn_up"), hf("mlp.up_proj"), vec![FFN, HIDDEN], None);
        add(g("ffn_down"), hf("mlp.down_proj"), vec![HIDDEN, FFN], None);
        add(g("attn_norm"), hf("input_layernorm"), vec![HIDDEN], None);
        add(g("ffn_norm"), hf("post_attention_layernorm"), vec![HIDDEN], None);
    }
    add("output_norm.weight".into(), "model.norm.weight".into(), vec![HIDDEN], None);
    edit(&mut meta, &mut tensors);
    let mut f = std::fs::File::create(path).unwrap();
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(&mut f, &meta_refs, &tensor_refs).unwrap();
    Fixture { expected }
}

fn tiny(dir: &Path) -> (PathBuf, Fixture) {
    let path = dir.join("tiny.gguf");
    let fx = write_gguf(&path, |_, _| {});
    (path, fx)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn weights_come_back_in_hugging_face_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (gguf, fx) = tiny(dir.path());
    let out = dir.path().join("model");
    let report = import_gguf(&gguf, &out).unwrap();
    assert_eq!(report.tensors, 1 + LAYERS * 9 + 1);
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), fx.expected.len());
    for (name, (shape, want)) in &fx.expected {
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        let got: Vec<f32> =
            t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert!(got == *want, "{name}: values differ from the Hugging Face layout");
    }
    assert!(st.tensor("lm_head.weight").is_err(), "tied: no lm_head");
}

#[test]
fn config_and_tokenizer_files() {
    let dir = tempfile::tempdir().unwrap();
    let (gguf, _) = tiny(dir.path());
    let out = dir.path().join("model");
    import_gguf(&gguf, &out).unwrap();
    for f in FILES.iter().chain(["import.json"].iter()) {
        assert!(out.join(f).is_file(), "{f} written");
    }
    let c = json(&out.join("config.json"));
    assert_eq!(c["num_hidden_layers"], LAYERS);
    assert_eq!(c["num_key_value_heads"], KV_HEADS);
    assert_eq!(c["head_dim"], HEAD_DIM);
    assert_eq!(c["vocab_size"], tokens().len());
    assert_eq!(c["rms_norm_eps"].as_f64(), Some(1e-6));
    assert_eq!(c["rope_theta"].as_f64(), Some(10000.0));
    assert_eq!(c["tie_word_embeddings"], true);
    assert_eq!(json(&out.join("tokenizer_config.json"))["chat_template"], TEMPLATE);

    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let id = |s: &str| tok.token_to_id(s).unwrap();
    // Digits are split one by one before BPE: the merge "1 2" must not apply.
    let ids = tok.encode("hello 12", true).unwrap().get_ids().to_vec();
    assert_eq!(ids, vec![id("hell"), id("o"), id("\u{120}"), id("1"), id("2")]);
    assert_eq!(tok.decode(&ids, false).unwrap(), "hello 12");
    // Control tokens are matched whole, are special, and no BOS is added.
    let ids = tok.encode("<|im_start|>hello<|im_end|>", true).unwrap().get_ids().to_vec();
    assert_eq!(ids, vec![1, id("hell"), id("o"), 2]);
    assert_eq!(tok.decode(&ids, true).unwrap(), "hello");
    // Bytes outside ASCII survive the round trip.
    let text = "naïve 日本 😀";
    let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
}

#[test]
fn import_is_idempotent_and_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let (gguf, _) = tiny(dir.path());
    let out = dir.path().join("model");
    assert!(!import_gguf(&gguf, &out).unwrap().skipped);
    assert!(import_gguf(&gguf, &out).unwrap().skipped);
    // A changed source is imported again, replacing the folder.
    write_gguf(&gguf, |meta, _| {
        meta.push(("general.name".into(), Value::String("changed".into())))
    });
    assert!(!import_gguf(&gguf, &out).unwrap().skipped);
    // A folder missing a file is not "up to date".
    std::fs::remove_file(out.join("tokenizer.json")).unwrap();
    assert!(!import_gguf(&gguf, &out).unwrap().skipped);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["model", "tiny.gguf"], "no temporary folders left");
}

fn import_error(
    edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>),
) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    write_gguf(&path, edit);
    let out = dir.path().join("model");
    let err = format!("{:#}", import_gguf(&path, &out).unwrap_err());
    assert!(err.contains("broken.gguf"), "error names the file: {err}");
    (err, out.exists())
}

#[test]
fn errors_name_the_key_or_tensor() {
    let (err, exists) = import_error(|meta, _| meta.retain(|(k, _)| k != "llama.block_count"));
    assert!(err.contains("`llama.block_count`"), "{err}");
    assert!(!exists);
    let (err, _) = import_error(|meta, _| meta[0].1 = Value::String("mamba".into()));
    assert!(err.contains("general.architecture") && err.contains("mamba"), "{err}");
    let (err, _) = import_error(|_, tensors| tensors.retain(|(k, _)| k != "blk.1.ffn_up.weight"));
    assert!(err.contains("`blk.1.ffn_up.weight`") && err.contains("missing"), "{err}");
    let (err, _) = import_error(|meta, _| {
        meta.iter_mut().find(|(k, _)| k == "llama.embedding_length").unwrap().1 =
            Value::String("32".into())
    });
    assert!(err.contains("`llama.embedding_length`") && err.contains("integer"), "{err}");
    let (err, _) = import_error(|meta, _| {
        meta.iter_mut().find(|(k, _)| k == "tokenizer.ggml.pre").unwrap().1 =
            Value::String("mystery".into())
    });
    assert!(err.contains("mystery"), "{err}");
}

#[test]
fn truncated_and_garbage_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (gguf, _) = tiny(dir.path());
    let bytes = std::fs::read(&gguf).unwrap();
    for len in [0, 3, 100, bytes.len() / 2, bytes.len() - 1] {
        let path = dir.path().join(format!("cut-{len}.gguf"));
        std::fs::write(&path, &bytes[..len]).unwrap();
        let out = dir.path().join(format!("out-{len}"));
        let err = format!("{:#}", import_gguf(&path, &out).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{len}: {err}");
        assert!(err.contains("truncated"), "{len}: {err}");
        assert!(!out.exists());
    }
    let path = dir.path().join("text.gguf");
    std::fs::write(&path, b"this is not a gguf file at all, just text").unwrap();
    let err = format!("{:#}", import_gguf(&path, &dir.path().join("o")).unwrap_err());
    assert!(err.contains("text.gguf") && err.contains("not a readable GGUF"), "{err}");
    let err = format!(
        "{:#}",
        import_gguf(&dir.path().join("absent.gguf"), &dir.path().join("o")).unwrap_err()
    );
    assert!(err.contains("absent.gguf"), "{err}");
}
