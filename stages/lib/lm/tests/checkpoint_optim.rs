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

/// Every tensor of a safetensors file, by name.
fn tensors(path: &std::path::Path) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(path).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn sharded_state_saved_at_one_world_size_reloads_at_another() {
    let cfg = AdamWConfig { lr: 1e-3, ..Default::default() };
    let p = load("qwen3", Kind::Float);
    let mut full = AdamW::new(p.var_store(), cfg);
    update(&p, &mut full);
    update(&p, &mut full);
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    full.save(&dir("world1")).unwrap();

    // One state reloaded as 3 shards, each saved by its rank; those as 2; those as one again.
    let mut from = dir("world1");
    for (world, name) in [(3, "world3"), (2, "world2")] {
        let to = dir(name);
        let mut held = 0;
        for rank in 0..world {
            let mut shard = AdamW::sharded(p.var_store(), AdamWConfig::default(), rank, world);
            shard.load(&from, false).unwrap();
            assert_eq!((shard.step, shard.config), (2, cfg));
            held += shard.state_elements();
            assert!(shard.save(&to).is_err(), "a shard alone is not the optimizer's state");
            shard.save_shard(&to).unwrap();
            if rank == 0 {
                shard.save_meta(&to).unwrap();
            }
        }
        assert_eq!(held, full.state_elements(), "world {world}: the shards hold the state once");
        assert!(!to.join(spice_lm::optim::STATE_FILE).exists());
        assert!(spice_lm::optim::has_state(&to));
        from = to;
    }
    let mut back = AdamW::new(p.var_store(), AdamWConfig::default());
    back.load(&from, false).unwrap();
    back.save(&dir("back")).unwrap();
    let (a, b) = (
        tensors(&tmp.path().join("world1/optimizer.safetensors")),
        tensors(&tmp.path().join("back/optimizer.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(ta.size(), tb.size(), "{na}");
        assert_eq!(max_abs_diff(ta, tb), 0.0, "{na} changed on the way through the shards");
    }
    assert!(a.iter().any(|(_, t)| t.abs().max().double_value(&[]) > 0.0), "moments are zero");

    // A missing shard is named.
    std::fs::remove_file(from.join("optimizer-rank00001-of-00002.safetensors")).unwrap();
    assert!(!spice_lm::optim::has_state(&from));
    let err = back.load(&from, false).unwrap_err();
    assert!(format!("{err:#}").contains("optimizer-rank00001-of-00002.safetensors"), "{err:#}");
}
