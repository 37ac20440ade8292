//! Checkpoints round-trip, and the optimizer resumes exactly.

mod common;

use common::*;
use spice_lm::logprobs::GradOptions;
use spice_lm::optim::{AdamW, AdamWConfig};
use spice_lm::tch::{Kind, Tensor};
use spice_lm::{checkpoint, Policy, ScoreRow};

fn rows() -> Vec<ScoreRow> {
    vec![
        ScoreRow { prompt_ids: vec![5, 9, 14, 3], completion_ids: vec![20, 40, 60, 80, 100] },
        ScoreRow { prompt_ids: vec![7, 8], completion_ids: vec![11, 12, 13] },
        ScoreRow { prompt_ids: vec![30, 31, 32, 33, 34, 35], completion_ids: vec![200] },
    ]
}

/// One update: gradient of a Dr. GRPO-like loss, clipping, AdamW.
fn update(p: &Policy, opt: &mut AdamW) {
    opt.zero_grad();
    let adv = [1.0f32, -0.5, 0.25];
    p.accumulate_gradients(
        &rows(),
        GradOptions { micro_batch: 2, checkpointing: false, shared_prefix: false },
        &mut |idx, lp| {
            let a: Vec<f32> = idx.iter().map(|&i| adv[i]).collect();
            let a = Tensor::from_slice(&a).unsqueeze(1);
            Ok(-(&lp.logprobs * a * &lp.mask).sum(Kind::Float) / 15.0)
        },
    )
    .unwrap();
    opt.clip_grad_norm(0.5);
    opt.step();
}

fn params(p: &Policy) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = p.var_store().variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn two_single_steps_with_a_save_between_equal_one_two_step_run() {
    let cfg = AdamWConfig { lr: 1e-3, ..Default::default() };
    // Reference: two steps in one process.
    let a = load("qwen3", Kind::Float);
    let mut opt_a = AdamW::new(a.var_store(), cfg);
    update(&a, &mut opt_a);
    update(&a, &mut opt_a);

    // Resumed: one step, save policy and optimizer, reload both, one more step.
    let tmp = tempfile::tempdir().unwrap();
    let b = load("qwen3", Kind::Float);
    let mut opt_b = AdamW::new(b.var_store(), cfg);
    update(&b, &mut opt_b);
    checkpoint::save(&b, &tmp.path().join("ckpt")).unwrap();
    opt_b.save(&tmp.path().join("optim")).unwrap();
    drop((b, opt_b));
    let c = Policy::load(&tmp.path().join("ckpt"), spice_lm::Device::Cpu, Kind::Float).unwrap();
    let mut opt_c = AdamW::new(c.var_store(), AdamWConfig::default());
    opt_c.load(&tmp.path().join("optim"), false).unwrap();
    assert_eq!((opt_c.step, opt_c.config), (1, cfg));
    update(&c, &mut opt_c);

    let (pa, pc) = (params(&a), params(&c));
    assert_eq!(pa.len(), pc.len());
    let initial = params(&load("qwen3", Kind::Float));
    let mut moved = 0.0f64;
    for ((na, ta), ((nc, tc), (_, t0))) in pa.iter().zip(pc.iter().zip(&initial)) {
        assert_eq!(na, nc);
        assert_eq!(max_abs_diff(ta, tc), 0.0, "{na} differs after resume");
        moved = moved.max(max_abs_diff(ta, t0));
    }
    assert!(moved > 1e-4, "the updates must move the weights ({moved})");
}

#[test]
fn saved_checkpoint_reloads_with_same_logits_and_files() {
    for arch in ARCHS {
        let p = load(arch, Kind::Float);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        checkpoint::save(&p, &dir).unwrap();
        // Saving over an existing checkpoint replaces it.
        checkpoint::save(&p, &dir).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json"] {
            assert!(dir.join(f).is_file(), "{arch}: {f} missing");
        }
        let names: Vec<String> = Tensor::read_safetensors(dir.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names.contains(&"lm_head.weight".to_string()), !p.config().tie_word_embeddings);
        let q = Policy::load(&dir, spice_lm::Device::Cpu, Kind::Float).unwrap();
        let input = Tensor::from_slice(&[3i64, 50, 70, 90]).unsqueeze(0);
        let (a, b) = tch::no_grad(|| {
            let wa = p.model().weights(Kind::Float);
            let wb = q.model().weights(Kind::Float);
            (wa.logits(&input), wb.logits(&input))
        });
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{arch}");
        assert_eq!(
            q.render_chat(&[spice_lm::ChatMessage::new("user", "hi")], true).unwrap(),
            p.render_chat(&[spice_lm::ChatMessage::new("user", "hi")], true).unwrap()
        );
    }
}
