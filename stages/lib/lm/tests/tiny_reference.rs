//! Every architecture switch against transformers: the tiny Qwen2, Qwen3 and Llama-3 models
//! of `fixtures/make_tiny.py` and the logits, greedy tokens, gradients and AdamW step it
//! recorded with transformers and torch.

mod common;

use common::*;
use spice_lm::logprobs::GradOptions;
use spice_lm::optim::{AdamW, AdamWConfig};
use spice_lm::tch::Kind;
use spice_lm::{GenRequest, SamplingParams, ScoreRow};

#[test]
fn logits_match_transformers_in_f32() {
    for arch in ARCHS {
        let p = load(arch, Kind::Float);
        let r = reference(arch);
        let mut worst = 0.0f64;
        for i in 0..3 {
            let input = &r[&format!("input_{i}")];
            let want = &r[&format!("logits_{i}")];
            let got = tch::no_grad(|| {
                let w = p.model().weights(Kind::Float);
                w.logits(&input.unsqueeze(0)).squeeze_dim(0)
            });
            let d = max_abs_diff(&got, want);
            worst = worst.max(d);
            assert!(d < 1e-4, "{arch} input {i}: max abs logit diff {d:e}");
        }
        let scale = r["logits_2"].abs().max().double_value(&[]);
        println!("{arch}: f32 max abs logit diff {worst:.3e} (logits up to {scale:.1})");
    }
}

#[test]
fn bf16_logits_stay_close() {
    for arch in ARCHS {
        let p = load(arch, Kind::BFloat16);
        let r = reference(arch);
        let input = &r["input_2"];
        let got = tch::no_grad(|| {
            let w = p.model().weights(Kind::BFloat16);
            w.logits(&input.unsqueeze(0)).squeeze_dim(0)
        });
        let want = &r["logits_2"];
        let d = max_abs_diff(&got, want);
        let scale = want.abs().max().double_value(&[]);
        println!("{arch}: bf16 max abs logit diff {d:.3e} (logits up to {scale:.1})");
        assert!(d < 0.05 * scale, "{arch}: bf16 diff {d} too large for scale {scale}");
    }
}

#[test]
fn greedy_matches_transformers_alone_and_in_a_mixed_batch() {
    for arch in ARCHS {
        let mut p = load(arch, Kind::Float);
        // The reference ran 40 steps without stopping; so must we.
        p.set_eos_ids(Vec::new());
        let r = reference(arch);
        let reqs: Vec<GenRequest> = (0..3)
            .map(|i| GenRequest { prompt_ids: ids(&r[&format!("input_{i}")]), seed: i })
            .collect();
        let params = SamplingParams::greedy(40);
        let batched = p.generate(&reqs, &params, 3, None).unwrap();
        for (i, req) in reqs.iter().enumerate() {
            let want = ids(&r[&format!("greedy_{i}")]);
            let alone = p.generate(std::slice::from_ref(req), &params, 1, None).unwrap();
            assert_eq!(alone[0].token_ids, want, "{arch} prompt {i} alone");
            assert_eq!(batched[i].token_ids, want, "{arch} prompt {i} in a batch of 3");
            assert_eq!(alone[0].token_ids.len(), 40);
        }
        println!("{arch}: 3 × 40 greedy tokens identical to transformers, alone and batched");
    }
}

#[test]
fn gradients_and_adamw_match_torch() {
    for arch in ARCHS {
        for checkpointing in [false, true] {
            let p = load(arch, Kind::Float);
            let r = reference(arch);
            let row = ScoreRow {
                prompt_ids: ids(&r["grad_prompt"]),
                completion_ids: ids(&r["grad_completion"]),
            };
            let mut opt = AdamW::new(
                p.var_store(),
                AdamWConfig { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
            );
            opt.zero_grad();
            let opts = GradOptions { micro_batch: 1, checkpointing, shared_prefix: false };
            let loss = p
                .accumulate_gradients(std::slice::from_ref(&row), opts, &mut |_, lp| {
                    Ok(-lp.logprobs.sum(Kind::Float))
                })
                .unwrap();
            let want_loss = r["grad_loss"].double_value(&[0]);
            assert!((loss - want_loss).abs() < 1e-3, "{arch}: loss {loss} vs {want_loss}");
            let vars = p.var_store().variables();
            let mut worst = 0.0f64;
            for (k, want) in r.iter().filter(|(k, _)| k.starts_with("grad.")) {
                let name = &k["grad.".len()..];
                let d = max_abs_diff(&vars[name].grad(), want);
                let rel = d / want.abs().max().double_value(&[]).max(1e-6);
                worst = worst.max(rel);
                assert!(rel < 1e-4, "{arch} ckpt={checkpointing}: grad of {name} off by {d:e}");
            }
            opt.step();
            let mut worst_step = 0.0f64;
            for (k, want) in r.iter().filter(|(k, _)| k.starts_with("adamw.")) {
                let name = &k["adamw.".len()..];
                let d = max_abs_diff(&vars[name], want);
                worst_step = worst_step.max(d);
                assert!(d < 1e-5, "{arch}: {name} after AdamW off by {d:e}");
            }
            println!(
                "{arch} (checkpointing {checkpointing}): loss {loss:.4} vs {want_loss:.4}, \
                 grad max rel diff {worst:.2e}, after AdamW max abs diff {worst_step:.2e}"
            );
        }
    }
}

#[test]
fn sequence_logprobs_match_reference_and_carry_autograd() {
    let p = load("qwen2", Kind::Float);
    let r = reference("qwen2");
    let row =
        ScoreRow { prompt_ids: ids(&r["grad_prompt"]), completion_ids: ids(&r["grad_completion"]) };
    // A shorter row beside it checks right padding and the mask.
    let short = ScoreRow { prompt_ids: vec![5, 6], completion_ids: vec![7] };
    let lp = p.sequence_logprobs(&[row.clone(), short]).unwrap();
    assert_eq!(lp.logprobs.size(), vec![2, row.completion_ids.len() as i64]);
    assert!(lp.logprobs.requires_grad());
    let d = max_abs_diff(&lp.logprobs.get(0), &r["grad_logprobs"]);
    assert!(d < 1e-4, "log-prob diff {d:e}");
    let mask: Vec<f32> = Vec::try_from(lp.mask.get(1)).unwrap();
    assert_eq!(mask.iter().sum::<f32>(), 1.0);
    assert_eq!(lp.logprobs.get(1).get(1).double_value(&[]), 0.0);
    let scored = p.score(&[row], 4).unwrap();
    let want: Vec<f32> = Vec::try_from(&r["grad_logprobs"]).unwrap();
    for (a, b) in scored[0].iter().zip(&want) {
        assert!((a - b).abs() < 1e-4);
    }
}
