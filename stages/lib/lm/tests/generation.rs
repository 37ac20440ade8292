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
