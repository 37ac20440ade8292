//! Properties of batched generation on a tiny model: per-row seeds, batch independence,
//! finish reasons, stop strings, and log-probs that agree with scoring.

mod common;

use common::*;
use spice_lm::tch::Kind;
use spice_lm::{FinishReason, GenRequest, SamplingParams, ScoreRow};

fn requests(n: usize) -> Vec<GenRequest> {
    (0..n)
        .map(|i| GenRequest {
            prompt_ids: (0..(3 + 5 * i)).map(|j| (10 + 7 * j + i) as u32 % 300 + 3).collect(),
            seed: 1000 + i as u64,
        })
        .collect()
}

#[test]
fn a_rows_sample_does_not_depend_on_its_batch() {
    let mut p = load("llama3", Kind::Float);
    p.set_eos_ids(Vec::new());
    let reqs = requests(5);
    let params = SamplingParams { max_new_tokens: 24, ..Default::default() };
    let together = p.generate(&reqs, &params, 5, None).unwrap();
    let in_pairs = p.generate(&reqs, &params, 2, None).unwrap();
    let bits =
        |g: &spice_lm::Generation| g.logprobs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (i, r) in reqs.iter().enumerate() {
        let alone = p.generate(std::slice::from_ref(r), &params, 1, None).unwrap();
        assert_eq!(together[i].token_ids, alone[0].token_ids, "row {i}");
        assert_eq!(in_pairs[i].token_ids, alone[0].token_ids, "row {i}");
        // f32 on a CPU is batch-invariant to the last bit, log-probs included.
        assert!(p.batch_invariant());
        assert_eq!(bits(&together[i]), bits(&alone[0]), "row {i} log-probs, 5 rows");
        assert_eq!(bits(&in_pairs[i]), bits(&alone[0]), "row {i} log-probs, 2 rows");
    }
    // Different seeds give different samples; the same seed the same.
    assert_ne!(together[0].token_ids, together[1].token_ids);
    let mut again = reqs[0].clone();
    again.seed += 1;
    let other = p.generate(&[again], &params, 1, None).unwrap();
    assert_ne!(other[0].token_ids, together[0].token_ids);
}

#[test]
fn logprobs_are_those_of_the_sampling_temperature() {
    let mut p = load("qwen3", Kind::Float);
    p.set_eos_ids(Vec::new());
    let reqs = requests(4);
    // Generation records log-probs under softmax(logits / T), and scoring at T gives them back:
    // the update's πθ_old of a role sampled at T (top-k and top-p are not applied to them).
    for params in [
        SamplingParams { temperature: 0.7, max_new_tokens: 16, ..Default::default() },
        SamplingParams { temperature: 1.3, max_new_tokens: 16, ..Default::default() },
        SamplingParams { temperature: 1.0, max_new_tokens: 16, ..Default::default() },
        SamplingParams {
            temperature: 0.7,
            top_k: 50,
            top_p: 0.9,
            max_new_tokens: 16,
            ..Default::default()
        },
    ] {
        let worst = logprob_gap(&p, &reqs, &params, 4);
        println!(
            "T {} top-k {} top-p {}: generation vs scoring at T, log-prob max diff {worst:.2e}",
            params.temperature, params.top_k, params.top_p
        );
        assert!(worst < 1e-4, "{worst}");
    }

    // At 0.7 they are a log-softmax of the full forward pass's logits / 0.7, not the
    // temperature-1 log-probs.
    let params = SamplingParams { temperature: 0.7, max_new_tokens: 16, ..Default::default() };
    let gens = p.generate(&reqs, &params, 4, None).unwrap();
    let w = p.model().weights(Kind::Float);
    let (mut worst, mut from_t1) = (0.0f32, 0.0f32);
    for (r, g) in reqs.iter().zip(&gens) {
        let ids: Vec<i64> = r.prompt_ids.iter().chain(&g.token_ids).map(|&t| t as i64).collect();
        let ids = tch::Tensor::from_slice(&ids).view([1, -1]);
        let logits = tch::no_grad(|| w.logits(&ids)).squeeze_dim(0);
        let at_t = (&logits / 0.7).log_softmax(-1, Kind::Float);
        let at_1 = logits.log_softmax(-1, Kind::Float);
        for (j, (&tok, &lp)) in g.token_ids.iter().zip(&g.logprobs).enumerate() {
            let pos = (r.prompt_ids.len() - 1 + j) as i64;
            let want = at_t.double_value(&[pos, tok as i64]) as f32;
            worst = worst.max((lp - want).abs());
            from_t1 = from_t1.max((lp - at_1.double_value(&[pos, tok as i64]) as f32).abs());
        }
    }
    println!(
        "T 0.7: |generation − log_softmax(logits / 0.7)| ≤ {worst:.2e}, vs T 1: {from_t1:.2e}"
    );
    assert!(worst < 1e-4, "{worst}");
    assert!(from_t1 > 1e-2, "the log-probs at 0.7 must not be those at 1 ({from_t1})");
}

/// Worst |generation log-prob − scoring log-prob| of `reqs` generated `batch` rows at a time,
/// scored at the sampling temperature (greedy: at 1).
fn logprob_gap(
    p: &spice_lm::Policy,
    reqs: &[GenRequest],
    params: &SamplingParams,
    batch: usize,
) -> f32 {
    let gens = p.generate(reqs, params, batch, None).unwrap();
    let rows: Vec<ScoreRow> = reqs
        .iter()
        .zip(&gens)
        .map(|(r, g)| ScoreRow {
            prompt_ids: r.prompt_ids.clone(),
            completion_ids: g.token_ids.clone(),
        })
        .collect();
    let temps = vec![params.temperature; rows.len()];
    let scored = p.score_at(&rows, &temps, 2).unwrap();
    let mut worst = 0.0f32;
    for (g, s) in gens.iter().zip(&scored) {
        assert_eq!(g.logprobs.len(), g.token_ids.len());
        for (a, b) in g.logprobs.iter().zip(s) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

#[test]
fn bf16_on_a_cpu_without_it_decodes_few_rows_with_bf16_weights() {
    let mut p = load("qwen2", Kind::BFloat16);
    p.set_eos_ids(Vec::new());
    let reqs = requests(6);
    // Six rows decode together, above the narrow-decode threshold: the f32 compute that
    // scoring uses too, so the log-probs agree to rounding.
    let params = SamplingParams { max_new_tokens: 12, ..Default::default() };
    let wide = logprob_gap(&p, &reqs, &params, 6);
    // Two rows at a time: bf16 weights where the CPU has no native bf16 (the model is the
    // same, so the gap stays small), f32 otherwise.
    let narrow = logprob_gap(&p, &reqs, &params, 2);
    let emulated = p.compute_kind() == Kind::Float;
    println!(
        "bf16 requested, compute {:?}: log-prob gap to scoring {wide:.2e} at 6 rows, {narrow:.2e} at 2 rows",
        p.compute_kind()
    );
    const {
        assert!(
            spice_lm::generate::NARROW_DECODE_ROWS >= 2
                && spice_lm::generate::NARROW_DECODE_ROWS < 6
        )
    };
    if emulated {
        assert!(wide < 1e-4, "{wide}");
        assert!(narrow > 1e-4 && narrow < 0.2, "{narrow}");
    } else {
        assert!(narrow < 0.2 && wide < 0.2, "{narrow} {wide}");
    }
}

#[test]
fn finish_reasons_eos_and_stop_strings() {
    let p = load("qwen2", Kind::Float);
    let eos = p.eos_ids()[0];
    let reqs = requests(6);
    let params = SamplingParams { temperature: 1.5, max_new_tokens: 30, ..Default::default() };
    let gens = p.generate(&reqs, &params, 3, None).unwrap();
    for g in &gens {
        let ends_on_eos = g.token_ids.last() == Some(&eos);
        match g.finish_reason {
            FinishReason::Stop => assert!(ends_on_eos),
            FinishReason::Length => assert_eq!(g.token_ids.len(), 30),
        }
        // EOS never appears before the end.
        assert!(!g.token_ids[..g.token_ids.len() - 1].contains(&eos));
    }
    // A stop string taken from an unconstrained sample ends generation right after it.
    let mut p = p;
    p.set_eos_ids(Vec::new());
    let free = p.generate(&reqs[..1], &SamplingParams::greedy(30), 1, None).unwrap();
    let text = p.tokenizer().decode(&free[0].token_ids, false).unwrap();
    let chars: Vec<char> = text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let params = SamplingParams { stop_strings: vec![stop.clone()], ..SamplingParams::greedy(30) };
    let stopped = p.generate(&reqs[..1], &params, 1, None).unwrap();
    let g = &stopped[0];
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert!(g.token_ids.len() < 30);
    assert_eq!(g.token_ids[..], free[0].token_ids[..g.token_ids.len()]);
    let got = p.tokenizer().decode(&g.token_ids, false).unwrap();
    let before = p.tokenizer().decode(&g.token_ids[..g.token_ids.len() - 1], false).unwrap();
    assert!(got.contains(&stop) && !before.contains(&stop), "{got:?} / {stop:?}");
}

#[test]
fn bad_requests_are_errors() {
    let p = load("qwen2", Kind::Float);
    let e = p.generate(
        &[GenRequest { prompt_ids: vec![], seed: 0 }],
        &SamplingParams::default(),
        1,
        None,
    );
    assert!(e.is_err());
    let e = p.generate(
        &[GenRequest { prompt_ids: vec![100_000], seed: 0 }],
        &SamplingParams::default(),
        1,
        None,
    );
    assert!(format!("{:#}", e.unwrap_err()).contains("vocabulary"));
}

#[test]
fn onednn_weights_give_the_dense_logits() {
    let p = load("qwen2", Kind::Float);
    let ids = tch::Tensor::from_slice(&[5i64, 17, 42, 99, 3, 250]).view([1, 6]);
    tch::no_grad(|| {
        let dense = p.model().weights(Kind::Float);
        let mut dnn = p.model().weights(Kind::Float);
        dnn.fuse();
        let converted = dnn.to_onednn(None);
        // This libtorch (the PyPI wheel) is built with oneDNN: the fast path must engage.
        assert_eq!(converted, tch::utils::has_mkldnn());
        assert!(converted, "libtorch without oneDNN: the CPU decode path is untested here");
        let d = (dense.logits(&ids) - dnn.logits(&ids)).abs().max().double_value(&[]);
        println!("oneDNN vs dense f32 logits: max abs diff {d:.2e}");
        assert!(d < 1e-4, "{d}");
    });
}

/// `n` samples (seeds) of each of `prompts` distinct prompts, interleaved as a stage that
/// lists them prompt by prompt would not: the engine must find the groups itself.
fn grouped_requests(prompts: usize, n: usize) -> Vec<GenRequest> {
    let distinct = requests(prompts);
    (0..n)
        .flat_map(|s| {
            distinct.iter().map(move |r| GenRequest {
                prompt_ids: r.prompt_ids.clone(),
                seed: r.seed * 100 + s as u64,
            })
        })
        .collect()
}

#[test]
fn shared_prefill_slots_and_arrival_order_leave_every_sample_unchanged() {
    for (arch, params) in [
        // Hot sampling with EOS on: samples end at different steps, so slots are refilled.
        ("qwen2", SamplingParams { temperature: 1.5, max_new_tokens: 20, ..Default::default() }),
        ("llama3", SamplingParams::greedy(12)),
        (
            "qwen3",
            SamplingParams { top_k: 20, top_p: 0.9, max_new_tokens: 16, ..Default::default() },
        ),
    ] {
        let mut p = load(arch, Kind::Float);
        let reqs = grouped_requests(3, 4);
        let alone: Vec<_> = reqs
            .iter()
            .map(|r| p.generate(std::slice::from_ref(r), &params, 1, None).unwrap().remove(0))
            .collect();
        let check = |gens: &[spice_lm::Generation], order: &[usize], how: &str| {
            for (g, &i) in gens.iter().zip(order) {
                assert_eq!(g.token_ids, alone[i].token_ids, "{arch} {how}: request {i}");
                assert_eq!(g.finish_reason, alone[i].finish_reason, "{arch} {how}: request {i}");
                // Bit for bit: f32 on a CPU is batch-invariant.
                for (a, b) in g.logprobs.iter().zip(&alone[i].logprobs) {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{arch} {how}: request {i} log-prob {a} vs {b}"
                    );
                }
            }
        };
        let in_order: Vec<usize> = (0..reqs.len()).collect();
        let (all, stats) = p.generate_with_stats(&reqs, &params, 12, None).unwrap();
        check(&all, &in_order, "12 slots");
        // One prefill per distinct prompt, shared by its 4 samples.
        let distinct: usize = requests(3).iter().map(|r| r.prompt_ids.len()).sum();
        assert_eq!(stats.engine.prefill_tokens, distinct, "{arch}");
        assert_eq!(stats.engine.prompt_tokens, 4 * distinct, "{arch}");
        check(&p.generate(&reqs, &params, 5, None).unwrap(), &in_order, "5 slots");
        // Last first: a different arrival order and grouping.
        let reversed: Vec<usize> = in_order.iter().rev().copied().collect();
        let rev_reqs: Vec<GenRequest> = reversed.iter().map(|&i| reqs[i].clone()).collect();
        check(&p.generate(&rev_reqs, &params, 3, None).unwrap(), &reversed, "reversed, 3 slots");
        // A KV budget of two slots' worth binds below the batch size.
        let longest = reqs.iter().map(|r| r.prompt_ids.len()).max().unwrap();
        p.set_kv_cache_tokens(Some(2 * (longest + params.max_new_tokens)));
        let (bounded, stats) = p.generate_with_stats(&reqs, &params, 12, None).unwrap();
        assert_eq!(stats.engine.slots, 2, "{arch}");
        check(&bounded, &in_order, "KV budget of 2 slots");
        // Even a budget below one sample's needs still generates, one sample at a time.
        p.set_kv_cache_tokens(Some(1));
        let (one, stats) = p.generate_with_stats(&reqs[..3], &params, 12, None).unwrap();
        assert_eq!(stats.engine.slots, 1, "{arch}");
        check(&one, &in_order[..3], "KV budget below one sample");
        let early = alone.iter().filter(|g| g.finish_reason == FinishReason::Stop).count();
        println!(
            "{arch}: {} samples of 3 prompts identical alone, in 12/5/3/2/1 slots and reversed \
             ({early} stopped early); prefill {} of {} prompt tokens",
            reqs.len(),
            distinct,
            4 * distinct
        );
    }
}

#[test]
fn shared_samples_logprobs_equal_scoring() {
    let mut p = load("qwen3", Kind::Float);
    p.set_eos_ids(Vec::new());
    let params = SamplingParams { max_new_tokens: 14, ..Default::default() };
    let worst = logprob_gap(&p, &grouped_requests(2, 5), &params, 4);
    println!("shared prefill: generation vs scoring log-prob max diff {worst:.2e}");
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn progress_counts_tokens_and_finishes_at_the_total() {
    let p = load("qwen2", Kind::Float);
    let reqs = grouped_requests(2, 3);
    let params = SamplingParams { temperature: 1.5, max_new_tokens: 20, ..Default::default() };
    let pb = spice_lm::generate::hidden_progress();
    let (gens, stats) = p.generate_with_stats(&reqs, &params, 4, Some(&pb)).unwrap();
    let total: usize = gens.iter().map(|g| g.token_ids.len()).sum();
    assert_eq!(stats.new_tokens, total);
    assert_eq!(pb.position(), total as u64);
    // Samples that stopped early gave back their unused budget.
    assert_eq!(pb.length(), Some(total as u64));
    assert_eq!(pb.message(), format!("{0}/{0} samples", reqs.len()));
}

/// A copy of the tiny Qwen2 fixture made a base model with a ChatML template: its EOS is
/// `<|endoftext|>` (id 0) while the template closes turns with `<|im_end|>` (id 2). The output
/// row of `<|im_end|>` becomes 1.5 × the row of the token greedy decoding writes fourth after a
/// chat prompt, so that token's logit goes to `<|im_end|>` instead and a chat completion
/// reaches the end of its turn within four tokens. Writes it into `dir`; returns the token ids
/// of a chat prompt.
fn base_model_with_chatml(dir: &std::path::Path) -> Vec<u32> {
    for f in std::fs::read_dir(tiny("qwen2")).unwrap() {
        let f = f.unwrap().path();
        if f.file_name().unwrap() != "reference.safetensors" {
            std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    let edit = |name: &str, key: &str, value: serde_json::Value| {
        let path = dir.join(name);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v[key] = value;
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    };
    edit("config.json", "eos_token_id", 0.into());
    edit("generation_config.json", "eos_token_id", 0.into());
    edit("tokenizer_config.json", "eos_token", "<|endoftext|>".into());
    let p = spice_lm::Policy::load(dir, spice_lm::Device::Cpu, Kind::Float).unwrap();
    let text = p.render_chat(&[spice_lm::ChatMessage::new("user", "What is 2+2?")], true).unwrap();
    let prompt = p.tokenizer().encode(&text).unwrap();
    let mut free = p;
    free.set_eos_ids(Vec::new());
    let req = GenRequest { prompt_ids: prompt.clone(), seed: 0 };
    let greedy = free.generate(&[req], &SamplingParams::greedy(8), 1, None).unwrap().remove(0);
    let fourth = greedy.token_ids[3] as i64;
    assert!(!greedy.token_ids[..4].contains(&2) && fourth != 0, "{:?}", greedy.token_ids);
    let file = dir.join("model.safetensors");
    let mut tensors = tch::Tensor::read_safetensors(&file).unwrap();
    let (_, head) = tensors.iter_mut().find(|(n, _)| n == "lm_head.weight").unwrap();
    let row = head.get(fourth) * 1.5;
    head.get(2).copy_(&row); // `get` is a view: this writes into the head
    tch::Tensor::write_safetensors(&tensors, &file).unwrap();
    prompt
}

#[test]
fn a_chat_completion_stops_at_the_templates_end_of_turn_when_it_is_not_the_eos() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = base_model_with_chatml(dir.path());
    let p = spice_lm::Policy::load(dir.path(), spice_lm::Device::Cpu, Kind::Float).unwrap();
    assert_eq!(p.eos_ids(), [0], "EOS from config.json: <|endoftext|>");
    assert_eq!(p.end_of_turn_id(), Some(2), "the template closes a turn with <|im_end|>");
    assert_eq!(p.chat_stop_ids(), [0, 2]);
    assert_eq!(p.describe_tokens(&p.chat_stop_ids()), "0 <|endoftext|>, 2 <|im_end|>");
    let req = [GenRequest { prompt_ids: prompt, seed: 0 }];

    // EOS alone: the completion runs through <|im_end|> to the length limit.
    let eos_only = p.generate(&req, &SamplingParams::greedy(16), 1, None).unwrap().remove(0);
    assert!(eos_only.token_ids.contains(&2), "{:?}", eos_only.token_ids);
    assert_eq!(eos_only.finish_reason, FinishReason::Length, "{:?}", eos_only.token_ids);

    // With the end of turn among the stop tokens, it ends there, the token kept.
    let params = SamplingParams { stop_token_ids: vec![2], ..SamplingParams::greedy(16) };
    let g = p.generate(&req, &params, 1, None).unwrap().remove(0);
    println!("stops after {} tokens: {:?} ({:?})", g.token_ids.len(), g.token_ids, g.text);
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert_eq!(g.token_ids.last(), Some(&2));
    assert!(g.token_ids.len() <= 4, "{:?}", g.token_ids);
    let n = g.token_ids.len();
    assert_eq!(g.token_ids[..n - 1], eos_only.token_ids[..n - 1]);
    assert_eq!(g.logprobs.len(), n);
    assert!(!g.text.contains("<|im_end|>"), "the stop token is a special token: {:?}", g.text);
}

#[test]
fn end_of_turn_follows_the_template() {
    // ChatML with <|im_end|> as EOS (the fixtures): the end of turn is the EOS itself.
    let p = load("llama3", Kind::Float);
    assert_eq!((p.eos_ids(), p.end_of_turn_id()), (&[2][..], Some(2)));
    assert_eq!(p.chat_stop_ids(), [2]);
    // A template that writes plain text after the assistant's content has no end-of-turn
    // token, and one that does not render the probe falls back to known end-of-turn tokens
    // present in the tokenizer and the template.
    let tok = p.tokenizer();
    let t =
        |src: &str| spice_lm::chat::ChatTemplate::new(src.into(), "".into(), "".into()).unwrap();
    let plain = t("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}");
    assert_eq!(spice_lm::chat::end_of_turn_id(&plain, tok), None);
    let refusing =
        t("{% if messages|length > 1 %}{{ raise_exception('one message only') }}{% endif %}\
                      {% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}");
    assert_eq!(spice_lm::chat::end_of_turn_id(&refusing, tok), Some(2));
    let unknown = t("{{ raise_exception('no') }}<|eot_id|>");
    assert_eq!(spice_lm::chat::end_of_turn_id(&unknown, tok), None, "not in this tokenizer");
}

/// A policy that keeps only its generation weights generates exactly what a full one does,
/// bit for bit in f32 on a CPU, over several calls (the weights are made once); the master
/// weights are gone, so scoring is refused.
#[test]
fn generation_only_policies_generate_the_same_tokens() {
    for kind in [Kind::Float, Kind::BFloat16] {
        let full = load("qwen2", kind);
        let mut only = load("qwen2", kind);
        only.generation_only();
        assert!(only.is_generation_only() && !full.is_generation_only());
        assert_eq!(only.parameter_count(), 0, "the master variables are released");
        let params = SamplingParams { temperature: 1.2, max_new_tokens: 10, ..Default::default() };
        for reqs in [requests(4), grouped_requests(2, 3)] {
            let a = full.generate(&reqs, &params, 3, None).unwrap();
            let b = only.generate(&reqs, &params, 3, None).unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.token_ids, y.token_ids, "{kind:?}");
                let bits = |g: &spice_lm::Generation| {
                    g.logprobs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                assert_eq!(bits(x), bits(y), "{kind:?}");
            }
        }
        let row = ScoreRow { prompt_ids: vec![5, 6, 7], completion_ids: vec![8, 9] };
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            only.score(std::slice::from_ref(&row), 1)
        }));
        assert!(refused.is_err(), "scoring needs the master weights");
    }
}

/// `n` distinct prompts that begin with one 90-token prefix (a document) and end in tails of
/// their own (the task format), each sampled twice, interleaved with an unrelated prompt.
fn family_requests(n: usize) -> Vec<GenRequest> {
    let doc: Vec<u32> = (0..90).map(|j| (11 + 13 * j) % 290 + 5).collect();
    let mut reqs = Vec::new();
    for s in 0..2u64 {
        for i in 0..n {
            let tail = (0..(2 + 3 * i)).map(|j| (40 + 17 * j + 29 * i) as u32 % 290 + 5);
            let prompt_ids = doc.iter().copied().chain(tail).collect();
            reqs.push(GenRequest { prompt_ids, seed: 500 + 10 * i as u64 + s });
        }
        reqs.push(GenRequest { prompt_ids: vec![7, 8, 9, 10], seed: 77 + s });
    }
    reqs
}

/// Where batch invariance is not promised (here f32 with it switched off, as bf16 or a GPU),
/// distinct prompts with a long common prefix prefill it once and continue it: the same
/// tokens as each prompt alone, log-probs within rounding and equal to the update's
/// re-scored ones.
#[test]
fn prompts_with_a_shared_prefix_prefill_it_once() {
    for (arch, params) in [
        ("qwen3", SamplingParams { temperature: 1.2, max_new_tokens: 16, ..Default::default() }),
        ("llama3", SamplingParams::greedy(12)),
    ] {
        let mut p = load(arch, Kind::Float);
        p.set_eos_ids(Vec::new());
        p.set_batch_invariant(false);
        let reqs = family_requests(3);
        let (shared, stats) = p.generate_with_stats(&reqs, &params, 8, None).unwrap();
        // The 90-token prefix once, each of the 3 tails once, the short prompt once.
        let tails: usize = (0..3).map(|i| 2 + 3 * i).sum();
        assert_eq!(stats.engine.prefill_tokens, 90 + tails + 4, "{arch}");
        assert_eq!(stats.engine.prompt_tokens, 2 * (3 * 90 + tails + 4), "{arch}");
        assert_eq!(stats.engine.prefix_shared_prompts, 3, "{arch}");
        let mut worst = 0.0f32;
        for (i, r) in reqs.iter().enumerate() {
            let alone = p.generate(std::slice::from_ref(r), &params, 1, None).unwrap().remove(0);
            assert_eq!(shared[i].token_ids, alone.token_ids, "{arch} request {i}");
            for (a, b) in shared[i].logprobs.iter().zip(&alone.logprobs) {
                worst = worst.max((a - b).abs());
            }
        }
        assert!(worst < 1e-4, "{arch}: shared vs alone log-probs differ by {worst}");
        // In fewer slots than prompts the prefix is held until its last prompt is prefilled.
        let (two, stats) = p.generate_with_stats(&reqs, &params, 2, None).unwrap();
        assert_eq!(stats.engine.prefill_tokens, 90 + tails + 4, "{arch}, 2 slots");
        for (a, b) in two.iter().zip(&shared) {
            assert_eq!(a.token_ids, b.token_ids, "{arch}, 2 slots");
        }
        let gap = logprob_gap(&p, &reqs, &params, 4);
        println!(
            "{arch}: {} samples of 3 prompts sharing a 90-token prefix: prefill {} of {} prompt \
             tokens; the same tokens as alone (log-probs within {worst:.1e}); vs scoring {gap:.1e}",
            reqs.len(),
            stats.engine.prefill_tokens,
            stats.engine.prompt_tokens
        );
        assert!(gap < 1e-4, "{arch}: {gap}");
        // Batch-invariant generation prefills each prompt whole, as it always has.
        p.set_batch_invariant(true);
        let (_, stats) = p.generate_with_stats(&reqs, &params, 8, None).unwrap();
        assert_eq!(stats.engine.prefix_shared_prompts, 0, "{arch}");
        assert_eq!(stats.engine.prefill_tokens, 3 * 90 + tails + 4, "{arch}");
    }
}

/// A generation-only policy keeps the prefixes it prefilled for its later calls (the
/// Challenger's rounds return to their documents): a prompt alone that begins with one, or a
/// new family whose prefix extends one, prefills only what is new, and generates as before.
#[test]
fn later_calls_continue_the_prefixes_of_earlier_ones() {
    let mut p = load("qwen2", Kind::Float);
    p.set_eos_ids(Vec::new());
    p.set_batch_invariant(false);
    let params = SamplingParams { temperature: 1.1, max_new_tokens: 10, ..Default::default() };
    let reqs = family_requests(3);
    let first = p.generate(&reqs, &params, 8, None).unwrap();
    p.generation_only();
    let (again, stats) = p.generate_with_stats(&reqs, &params, 8, None).unwrap();
    assert_eq!(stats.engine.prefill_tokens, 90 + 15 + 4, "the first call in the cache");
    // Round 2: one prompt of the family alone; its 90-token prefix comes from the cache.
    let (one, stats) = p.generate_with_stats(&reqs[1..2], &params, 8, None).unwrap();
    assert_eq!(stats.engine.prefill_tokens, 5, "only its own 5 tokens");
    assert_eq!(stats.engine.prefix_shared_prompts, 1);
    assert_eq!(one[0].token_ids, first[1].token_ids);
    // Two new prompts that share 95 tokens: the cached 90, then 5 more, then their own.
    let longer: Vec<GenRequest> = (0..2u32)
        .map(|i| {
            let mut ids = reqs[2].prompt_ids[..95].to_vec();
            ids.extend([9 + i, 10 + i, 11]);
            GenRequest { prompt_ids: ids, seed: 40 + i as u64 }
        })
        .collect();
    let (got, stats) = p.generate_with_stats(&longer, &params, 8, None).unwrap();
    assert_eq!(stats.engine.prefill_tokens, 5 + 2 * 3);
    let mut fresh = load("qwen2", Kind::Float);
    fresh.set_eos_ids(Vec::new());
    fresh.set_batch_invariant(false);
    for (i, r) in longer.iter().enumerate() {
        let alone = fresh.generate(std::slice::from_ref(r), &params, 1, None).unwrap().remove(0);
        assert_eq!(got[i].token_ids, alone.token_ids, "prompt {i}");
        for (a, b) in got[i].logprobs.iter().zip(&alone.logprobs) {
            assert!((a - b).abs() < 1e-4, "prompt {i}: {a} vs {b}");
        }
    }
    for (a, b) in again.iter().zip(&first) {
        assert_eq!(a.token_ids, b.token_ids);
    }
}
