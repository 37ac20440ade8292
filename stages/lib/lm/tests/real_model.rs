//! The default model (SmolLM2-135M-Instruct) against transformers' outputs recorded by
//! `stages/lib/gguf/fixtures/make_reference.py`. Skips, saying why, when the model folder
//! (made by `just setup`) or the reference file is absent.

use std::path::PathBuf;

use spice_lm::tch::{Kind, Tensor};
use spice_lm::{ChatMessage, Device, GenRequest, Policy, SamplingParams};

fn paths() -> Option<(PathBuf, serde_json::Value)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let model = root.join("data/models/smollm2-135m-instruct");
    let reference = root.join("stages/lib/gguf/fixtures/reference.json");
    if !model.join("model.safetensors").is_file() {
        println!("SKIPPED: no default model at {} (run `just setup`)", model.display());
        return None;
    }
    let Ok(text) = std::fs::read_to_string(&reference) else {
        println!("SKIPPED: no reference outputs at {}", reference.display());
        return None;
    };
    Some((model, serde_json::from_str(&text).expect("reference.json parses")))
}

fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn default_model_matches_transformers() {
    let Some((dir, r)) = paths() else { return };
    let p = Policy::load(&dir, Device::Cpu, Kind::Float).unwrap();

    // Tokenizer: ids and decoded text of every case; the chat template's text and ids.
    for case in r["tokenizer"]["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = p.tokenizer().encode(text).unwrap();
        assert_eq!(ids, u32s(&case["ids"]), "ids of {text:?}");
        assert_eq!(p.tokenizer().decode(&ids, false).unwrap(), case["decoded"].as_str().unwrap());
    }
    let chat = &r["tokenizer"]["chat"];
    let messages: Vec<ChatMessage> = serde_json::from_value(chat["messages"].clone()).unwrap();
    let text = p.render_chat(&messages, true).unwrap();
    assert_eq!(text, chat["text"].as_str().unwrap());
    assert_eq!(p.tokenizer().encode(&text).unwrap(), u32s(&chat["ids"]));

    // Logits: a fixed subset of the vocabulary at every position, all of it at one position.
    let subset: Vec<i64> = u32s(&r["logits"]["subset_ids"]).into_iter().map(i64::from).collect();
    let subset = Tensor::from_slice(&subset);
    let mut worst = 0.0f64;
    let (mut compared, mut largest) = (0usize, 0.0f64);
    for prompt in r["logits"]["prompts"].as_array().unwrap() {
        let ids: Vec<i64> = u32s(&prompt["ids"]).into_iter().map(i64::from).collect();
        let logits = tch::no_grad(|| {
            let w = p.model().weights(Kind::Float);
            w.logits(&Tensor::from_slice(&ids).unsqueeze(0)).squeeze_dim(0)
        }); // [seq, vocab]
        let rows: Vec<Vec<f32>> =
            prompt["subset_logits"].as_array().unwrap().iter().map(f32s).collect();
        let want = Tensor::from_slice(&rows.concat()).view([rows.len() as i64, -1]);
        assert_eq!(want.size(), vec![ids.len() as i64, subset.size()[0]]);
        compared += want.numel();
        largest = largest.max(want.abs().max().double_value(&[]));
        let d = (logits.index_select(1, &subset) - want).abs().max().double_value(&[]);
        worst = worst.max(d);
        if let Some(last) = prompt.get("last_logits") {
            let want = Tensor::from_slice(&f32s(last));
            assert_eq!(want.size(), vec![p.config().vocab_size as i64]);
            compared += want.numel();
            let d = (logits.get(ids.len() as i64 - 1) - want).abs().max().double_value(&[]);
            worst = worst.max(d);
        }
        let top: Vec<i64> =
            Vec::try_from(logits.get(ids.len() as i64 - 1).topk(20, -1, true, true).1).unwrap();
        let want_top: Vec<i64> =
            u32s(&prompt["last_topk_ids"]).into_iter().map(i64::from).collect();
        assert_eq!(top[..5], want_top[..5]);
    }
    println!(
        "default model: f32 max abs logit diff {worst:.3e} over {compared} logits \
         (largest |logit| {largest:.1})"
    );
    assert!(worst < 1e-3, "max abs logit diff {worst}");

    // Greedy continuations of chat prompts, one by one and as one left-padded batch.
    let greedy = r["greedy"].as_array().unwrap();
    let reqs: Vec<GenRequest> =
        greedy.iter().map(|g| GenRequest { prompt_ids: u32s(&g["prompt_ids"]), seed: 0 }).collect();
    let max_new = greedy[0]["max_new_tokens"].as_u64().unwrap() as usize;
    let params = SamplingParams::greedy(max_new);
    let batched = p.generate(&reqs, &params, reqs.len(), None).unwrap();
    for (i, g) in greedy.iter().enumerate() {
        let want = u32s(&g["new_ids"]);
        let alone = p.generate(&reqs[i..i + 1], &params, 1, None).unwrap();
        assert_eq!(alone[0].token_ids, want, "greedy prompt {i}");
        assert_eq!(batched[i].token_ids, want, "greedy prompt {i} in a batch");
        assert_eq!(alone[0].finish_reason.as_str(), g["finish_reason"].as_str().unwrap());
        assert_eq!(alone[0].text, g["text"].as_str().unwrap());
        println!("greedy {i}: {} tokens identical: {:?}", want.len(), alone[0].text);
    }
}

/// The default model's G-style samples (4 seeds of each chat prompt) come out the same
/// whether each runs alone or all share prefills and slots, in any order; their log-probs
/// equal the update's re-scored ones.
#[test]
fn default_model_samples_do_not_depend_on_sharing_or_slots() {
    let Some((dir, r)) = paths() else { return };
    let p = Policy::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let prompts: Vec<Vec<u32>> =
        r["greedy"].as_array().unwrap().iter().take(2).map(|g| u32s(&g["prompt_ids"])).collect();
    let reqs: Vec<GenRequest> = (0..4u64)
        .flat_map(|s| {
            prompts.iter().map(move |ids| GenRequest { prompt_ids: ids.clone(), seed: 7 + s })
        })
        .collect();
    for params in
        [SamplingParams { max_new_tokens: 32, ..Default::default() }, SamplingParams::greedy(24)]
    {
        let alone: Vec<_> = reqs
            .iter()
            .map(|q| p.generate(std::slice::from_ref(q), &params, 1, None).unwrap().remove(0))
            .collect();
        let (shared, stats) = p.generate_with_stats(&reqs, &params, 8, None).unwrap();
        assert_eq!(stats.engine.prefill_tokens, prompts.iter().map(Vec::len).sum::<usize>());
        let rev: Vec<GenRequest> = reqs.iter().rev().cloned().collect();
        let mut reversed = p.generate(&rev, &params, 3, None).unwrap();
        reversed.reverse();
        for i in 0..reqs.len() {
            assert_eq!(shared[i].token_ids, alone[i].token_ids, "request {i}, 8 slots");
            assert_eq!(reversed[i].token_ids, alone[i].token_ids, "request {i}, reversed, 3 slots");
        }
        let rows: Vec<spice_lm::ScoreRow> = reqs
            .iter()
            .zip(&shared)
            .map(|(q, g)| spice_lm::ScoreRow {
                prompt_ids: q.prompt_ids.clone(),
                completion_ids: g.token_ids.clone(),
            })
            .collect();
        let scored = p.score(&rows, 4).unwrap();
        let mut worst = 0.0f32;
        for (g, s) in shared.iter().zip(&scored) {
            for (a, b) in g.logprobs.iter().zip(s) {
                worst = worst.max((a - b).abs());
            }
        }
        println!(
            "default model, temperature {}: {} samples identical alone, shared in 8 slots and \
             reversed in 3; log-probs vs scoring max diff {worst:.2e}",
            params.temperature,
            reqs.len()
        );
        assert!(worst < 1e-3, "{worst}");
    }
}

/// In f32 on a CPU the default model's rows are the same to the last bit in a batch of 36 rows
/// (decoded in blocks of `INVARIANT_DECODE_ROWS`, prompts prefilled one at a time, each slot
/// attending alone) as in batches of 5: tokens and log-probs. Without those measures oneDNN's
/// GEMMs and the shared attention span round a row differently with its batch, and 2 of 72
/// rows sampled other tokens within 6 steps.
#[test]
fn default_model_f32_rows_do_not_depend_on_the_batch_to_the_last_bit() {
    let Some((dir, _)) = paths() else { return };
    let mut p = Policy::load(&dir, Device::Cpu, Kind::Float).unwrap();
    p.set_eos_ids(Vec::new());
    assert!(p.batch_invariant());
    const { assert!(spice_lm::generate::INVARIANT_DECODE_ROWS < 36) };
    let reqs: Vec<GenRequest> = (0..36usize)
        .map(|i| GenRequest {
            prompt_ids: (0..(8 + (i * 7) % 24))
                .map(|j| ((i * 131 + j * 17) % 40000 + 100) as u32)
                .collect(),
            seed: 1000 + i as u64,
        })
        .collect();
    let params = SamplingParams { max_new_tokens: 6, ..Default::default() };
    let t0 = std::time::Instant::now();
    let wide = p.generate(&reqs, &params, 36, None).unwrap();
    let narrow = p.generate(&reqs, &params, 5, None).unwrap();
    let bits =
        |g: &spice_lm::Generation| g.logprobs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (i, (a, b)) in wide.iter().zip(&narrow).enumerate() {
        assert_eq!(a.token_ids, b.token_ids, "request {i}");
        assert_eq!(bits(a), bits(b), "request {i}: log-probs {:?} vs {:?}", a.logprobs, b.logprobs);
    }
    println!(
        "default model, f32: 36 rows identical to the bit in batches of 36 and 5 ({:.0} s)",
        t0.elapsed().as_secs_f64()
    );
}
