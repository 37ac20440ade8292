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
    for (i, r) in reqs.iter().enumerate() {
        let alone = p.generate(std::slice::from_ref(r), &params, 1, None).unwrap();
        assert_eq!(together[i].token_ids, alone[0].token_ids, "row {i}");
        assert_eq!(in_pairs[i].token_ids, alone[0].token_ids, "row {i}");
    }
    // Different seeds give different samples; the same seed the same.
    assert_ne!(together[0].token_ids, together[1].token_ids);
    let mut again = reqs[0].clone();
    again.seed += 1;
    let other = p.generate(&[again], &params, 1, None).unwrap();
    assert_ne!(other[0].token_ids, together[0].token_ids);
}

#[test]
fn logprobs_are_the_models_own_at_temperature_one() {
    let mut p = load("qwen3", Kind::Float);
    p.set_eos_ids(Vec::new());
    let reqs = requests(4);
    // Sampling at another temperature with filters must still record temperature-1 log-probs.
    let params = SamplingParams {
        temperature: 0.7,
        top_k: 50,
        top_p: 0.9,
        max_new_tokens: 16,
        ..Default::default()
    };
    let worst = logprob_gap(&p, &reqs, &params, 4);
    println!("generation vs scoring log-prob max diff {worst:.2e}");
    assert!(worst < 1e-4, "{worst}");
}

/// Worst |generation log-prob − scoring log-prob| of `reqs` generated `batch` rows at a time.
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
    let scored = p.score(&rows, 2).unwrap();
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
        let converted = dnn.to_onednn();
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
                for (a, b) in g.logprobs.iter().zip(&alone[i].logprobs) {
                    assert!((a - b).abs() < 1e-5, "{arch} {how}: request {i} log-prob {a} vs {b}");
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
