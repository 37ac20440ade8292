//! What the update does to the model: direction of the step, the resume across iterations,
//! the Dr. GRPO normalisation, the KL term, the frozen Challenger.

mod common;

use common::*;
use spice_lm::AdamW;
use spice_schemas::{
    manifest::OutputFile, metrics::UpdateMetrics, rows::UpdateMetricsRow, Manifest,
};
use spice_update::{input::read_scored, train, Outcome, UpdateOptions};

fn update(run: &TestRun, iter: u32) -> UpdateMetricsRow {
    let out = spice_update::run(&run.ctx(iter, false), &UpdateOptions::default()).unwrap();
    assert!(matches!(out, Outcome::Updated(_)));
    run.update_rows(iter).last().cloned().unwrap()
}

#[test]
fn one_step_raises_positive_and_lowers_negative_advantage_completions() {
    let run = make_run(&[]);
    let rows = scored_rows(0, 1);
    run.write_scored(0, &rows);
    let before = summed_logprobs(&load(&run.model), &rows);
    update(&run, 0);
    let after = summed_logprobs(&load(&run.checkpoint(0)), &rows);

    let (mut pos, mut neg) = (0.0, 0.0);
    for ((r, b), a) in rows.iter().zip(&before).zip(&after) {
        if !r.in_batch {
            continue;
        }
        if r.advantage > 0.0 {
            pos += a - b;
        } else if r.advantage < 0.0 {
            neg += a - b;
        }
    }
    println!("summed log-prob change: positive-advantage {pos:+.4}, negative-advantage {neg:+.4}");
    assert!(pos > 0.0, "positive-advantage completions must gain probability ({pos})");
    assert!(neg < 0.0, "negative-advantage completions must lose probability ({neg})");
}

#[test]
fn optimizer_state_survives_the_iteration_boundary() {
    // Two iterations of one step each through the stage (iteration 1 resumes from
    // iteration 0's checkpoint and AdamW state) …
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 1));
    run.write_scored(1, &scored_rows(1, 2));
    update(&run, 0);
    update(&run, 1);
    let staged = load(&run.checkpoint(1));
    // Iteration 1 read iteration 0's optimizer/ folder and recorded it as an input; with the
    // default bounds that folder is pruned once iteration 1 has committed, every checkpoint
    // is kept.
    let m = run.update_manifest(1);
    let input = m.inputs.iter().find(|i| i.name == "optimizer").expect("an optimizer input");
    assert_eq!(input.path, std::path::Path::new("iter-0000/optimizer"), "run-relative");
    assert!(m.metrics_as::<UpdateMetrics>().unwrap().optimizer_resumed);
    assert!(spice_schemas::prune::is_pruned(&run.layout().optimizer(0)));
    assert!(run.checkpoint(0).join("model.safetensors").exists());

    // … against the same two steps in one process, one optimizer throughout.
    let in_process = |resume: bool| {
        let policy = load(&run.model);
        let mut opt = AdamW::new(policy.var_store(), train::adamw_config(&run.cfg));
        for iter in 0..2 {
            if iter == 1 && !resume {
                opt = AdamW::new(policy.var_store(), train::adamw_config(&run.cfg));
            }
            let s = train::UpdateSettings::from_config(&run.cfg, iter, run.cfg.run.seed);
            let rows = read_scored(&run.scored_dir(iter), iter, true).unwrap().rows;
            let steps = train::run_epochs(&policy, &mut opt, &rows, &s, None, None).unwrap();
            assert_eq!(steps.len(), 1);
        }
        assert_eq!(opt.step, if resume { 2 } else { 1 });
        policy
    };
    let one_process = in_process(true);
    let diff = max_param_diff(&staged, &one_process);
    let fresh_moments = max_param_diff(&staged, &in_process(false));
    println!("max |Δweight|: resumed vs one process {diff:.2e}; vs fresh moments at iteration 1 {fresh_moments:.2e}");
    assert!(diff < 1e-6, "weights after the resumed update differ from one process by {diff}");
    assert!(fresh_moments > 1e-4, "fresh moments must give other weights ({fresh_moments})");
}

/// Turn iteration `iter`'s folders into those of a run made before `optimizer/` existed:
/// the optimizer files inside `checkpoint/`, listed by its manifest.
fn to_old_layout(run: &TestRun, iter: u32) {
    let (ckpt, opt) = (run.checkpoint(iter), run.layout().optimizer(iter));
    let path = ckpt.join("_manifest.json");
    let mut m = Manifest::read(&path).unwrap();
    for f in ["optimizer.safetensors", "optimizer.json"] {
        std::fs::rename(opt.join(f), ckpt.join(f)).unwrap();
        let digest = spice_schemas::digest::sha256_file(&ckpt.join(f)).unwrap();
        // Manifests of that time recorded no sizes.
        m.outputs.push(OutputFile { file: f.into(), rows: 0, bytes: 0, digest });
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    std::fs::remove_dir_all(opt).unwrap();
}

#[test]
fn a_run_from_before_optimizer_folders_resumes_from_the_state_in_its_checkpoint() {
    let new_layout = make_run(&[]);
    let old_layout = make_run(&[]);
    for run in [&new_layout, &old_layout] {
        run.write_scored(0, &scored_rows(0, 1));
        run.write_scored(1, &scored_rows(1, 2));
        update(run, 0);
    }
    update(&new_layout, 1);
    to_old_layout(&old_layout, 0);
    // The old iteration still reads as done …
    let again = spice_update::run(&old_layout.ctx(0, false), &UpdateOptions::default()).unwrap();
    assert!(matches!(again, Outcome::AlreadyDone));
    // … and the next one resumes its moments from inside checkpoint/, as one optimizer would.
    update(&old_layout, 1);
    let m = old_layout.update_manifest(1);
    assert!(m.metrics_as::<UpdateMetrics>().unwrap().optimizer_resumed);
    assert!(!m.inputs.iter().any(|i| i.name == "optimizer"), "{:?}", m.inputs);
    let diff = max_param_diff(&load(&old_layout.checkpoint(1)), &load(&new_layout.checkpoint(1)));
    assert!(diff < 1e-6, "resumed from the old layout, the weights differ by {diff}");
    // What it writes is the new layout.
    assert!(!old_layout.checkpoint(1).join("optimizer.safetensors").exists());
    assert!(old_layout.layout().optimizer(1).join("optimizer.safetensors").exists());

    // A checkpoint with no optimizer state at all (made elsewhere): fresh moments.
    let bare = make_run(&[]);
    bare.write_scored(0, &scored_rows(0, 1));
    bare.write_scored(1, &scored_rows(1, 2));
    update(&bare, 0);
    std::fs::remove_dir_all(bare.layout().optimizer(0)).unwrap();
    update(&bare, 1);
    assert!(!bare.update_manifest(1).metrics_as::<UpdateMetrics>().unwrap().optimizer_resumed);
    assert_eq!(bare.update_manifest(1).metric("optimizer_step"), Some(1.0));
}

#[test]
fn pg_loss_is_the_token_sum_over_a_constant_and_scales_the_gradient() {
    // At the first step ρ = 1, so pg_loss = −Σ_i Â_i·n_i / (L·N), with L = max(64, 48).
    let rows = scored_rows(0, 3);
    let trained: Vec<_> = rows.iter().filter(|r| r.in_batch).collect();
    let n = trained.len() as f64;
    let weighted: f64 =
        trained.iter().map(|r| r.advantage as f64 * r.completion_ids.len() as f64).sum();

    let run = make_run(&[]);
    run.write_scored(0, &rows);
    let m = update(&run, 0);
    let want = -weighted / (64.0 * n);
    println!("pg_loss {:.6e}, hand-computed {want:.6e}", m.pg_loss);
    assert!((m.pg_loss - want).abs() < 1e-5 * want.abs().max(1e-3), "{} vs {want}", m.pg_loss);
    assert!((m.loss - m.pg_loss).abs() < 1e-7, "β = 0: loss {} is pg_loss {}", m.loss, m.pg_loss);
    assert_eq!((m.kl, m.clip_fraction), (0.0, 0.0));
    assert_eq!(m.sequences as f64, n);
    assert_eq!(m.tokens, trained.iter().map(|r| r.completion_ids.len() as u64).sum::<u64>());

    // Doubling L halves loss and gradient: the constant divides the gradient, not only the log.
    let run2 = make_run(&["challenger.max_completion_length=128"]);
    run2.write_scored(0, &rows);
    let m2 = update(&run2, 0);
    assert!((m2.pg_loss * 2.0 - m.pg_loss).abs() < 1e-6 * m.pg_loss.abs().max(1e-3));
    let ratio = m.grad_norm / m2.grad_norm;
    println!(
        "grad norm with L = 64: {:.6e}, L = 128: {:.6e} (ratio {ratio:.6})",
        m.grad_norm, m2.grad_norm
    );
    assert!((ratio - 2.0).abs() < 1e-4, "grad norm ratio {ratio}");
}

#[test]
fn beta_adds_a_nonnegative_kl_to_the_initial_model() {
    let run = make_run(&["update.beta=0.1", "update.ppo_epochs=3"]);
    run.write_scored(0, &scored_rows(0, 4));
    update(&run, 0);
    let steps = run.update_rows(0);
    assert_eq!(steps.len(), 3);
    for s in &steps {
        println!(
            "step {}: loss {:.6e}, pg_loss {:.6e}, kl {:.3e}",
            s.step, s.loss, s.pg_loss, s.kl
        );
        assert!(s.kl >= 0.0, "k3 is never negative ({})", s.kl);
        // loss = pg_loss + β·Σkl/(L·N), with kl the per-token mean.
        let kl_part = 0.1 * s.kl * s.tokens as f64 / (64.0 * s.sequences as f64);
        assert!((s.loss - s.pg_loss - kl_part).abs() < 1e-6, "{s:?}");
    }
    // The policy starts as the reference and moves away from it.
    assert!(steps[0].kl < 1e-9, "{}", steps[0].kl);
    assert!(steps[2].kl > 1e-7, "{}", steps[2].kl);
    assert!(run.update_manifest(0).inputs.iter().any(|i| i.name == "reference"));
}

#[test]
fn frozen_challenger_trains_only_the_reasoner_and_still_writes_a_checkpoint() {
    let frozen = format!("challenger.frozen_model={:?}", fixture().display().to_string());
    let run = make_run(&["challenger.training=frozen", &frozen]);
    let rows = scored_rows(0, 5);
    run.write_scored(0, &rows);
    let m = update(&run, 0);
    assert_eq!(m.challenger_sequences, 0);
    assert_eq!(m.reasoner_sequences, 8);
    let manifest = run.update_manifest(0);
    assert_eq!(manifest.metric("frozen_challenger_rows_skipped"), Some(6.0));

    // Only Challenger rows in the batch: nothing to train, the policy passes on unchanged.
    let run = make_run(&["challenger.training=frozen", &frozen]);
    let only_c: Vec<_> = rows.iter().filter(|r| r.role == "challenger").cloned().collect();
    run.write_scored(0, &only_c);
    spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
    assert!(run.update_rows(0).is_empty());
    assert_eq!(run.update_manifest(0).metric("steps"), Some(0.0));
    assert_eq!(max_param_diff(&load(&run.checkpoint(0)), &load(&run.model)), 0.0);
    // … and the next iteration can start from it.
    run.ctx(1, false).policy_dir().unwrap();
}

#[test]
fn recomputed_old_logprobs_match_the_sampling_ones_of_the_same_policy() {
    let run = make_run(&[]);
    let mut rows = scored_rows(0, 6);
    let policy = load(&run.model);
    let score: Vec<spice_lm::ScoreRow> = rows
        .iter()
        .map(|r| spice_lm::ScoreRow {
            prompt_ids: r.prompt_ids.clone(),
            completion_ids: r.completion_ids.clone(),
        })
        .collect();
    for (r, lp) in rows.iter_mut().zip(policy.score(&score, 1).unwrap()) {
        r.logprobs = lp;
    }
    run.write_scored(0, &rows);
    update(&run, 0);
    let m = run.update_manifest(0);
    let mismatch = m.metric("logprob_mismatch_mean_abs").unwrap();
    println!("mean |old − sampling| with the same policy: {mismatch:.2e}");
    assert!(mismatch < 1e-5, "{mismatch}");

    // The placeholder log-probs of the other tests (−1 per token) are far off.
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 6));
    update(&run, 0);
    assert!(run.update_manifest(0).metric("logprob_mismatch_mean_abs").unwrap() > 0.5);
}

#[test]
fn a_single_step_needs_no_separate_old_logprob_pass() {
    // One step over the whole batch: πθ_old from the step's own forward pass equals πθ_old
    // scored beforehand, so both give the same loss and gradient.
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 8));
    let s = train::UpdateSettings::from_config(&run.cfg, 0, 7);
    let step = |score: bool| {
        let policy = load(&run.model);
        let mut opt = AdamW::new(policy.var_store(), train::adamw_config(&run.cfg));
        let mut rows = read_scored(&run.scored_dir(0), 0, true).unwrap().rows;
        let mismatch =
            score.then(|| train::score_old(&policy, &mut rows, s.score_options(), None).unwrap());
        let steps = train::run_epochs(&policy, &mut opt, &rows, &s, None, None).unwrap();
        assert_eq!(steps.len(), 1);
        (steps[0].clone(), mismatch)
    };
    let ((current, _), (scored, mismatch)) = (step(false), step(true));
    let (a, b) = (&current.metrics, &scored.metrics);
    println!(
        "pg_loss {:.9e} / {:.9e}, grad norm {:.9e} / {:.9e}",
        a.pg_loss, b.pg_loss, a.grad_norm, b.grad_norm
    );
    assert!((a.pg_loss - b.pg_loss).abs() < 1e-6 * a.pg_loss.abs());
    assert!((a.grad_norm - b.grad_norm).abs() < 1e-5 * a.grad_norm);
    assert_eq!((a.clip_fraction, b.clip_fraction), (0.0, 0.0));
    // Both measure the same distance to the sampling log-probs.
    let m = mismatch.unwrap();
    assert_eq!(current.sampling_mismatch.tokens, m.tokens);
    assert!((current.sampling_mismatch.mean_abs - m.mean_abs).abs() < 1e-5);

    // More than one step: rows without πθ_old are refused.
    let two = train::UpdateSettings { ppo_epochs: 2, ..s.clone() };
    let policy = load(&run.model);
    let mut opt = AdamW::new(policy.var_store(), train::adamw_config(&run.cfg));
    let rows = read_scored(&run.scored_dir(0), 0, true).unwrap().rows;
    let err = train::run_epochs(&policy, &mut opt, &rows, &two, None, None).unwrap_err();
    assert!(format!("{err:#}").contains("no πθ_old"), "{err:#}");
}

/// Each row's log-probs under softmax(logits / T) of `policy`, computed here from one full
/// forward pass, T by role — what generation records for a role sampled at T.
fn logprobs_at(
    policy: &spice_lm::Policy,
    rows: &mut [spice_schemas::rows::ScoredRow],
    t: (f64, f64),
) {
    use spice_lm::tch::{Kind, Tensor};
    let w = policy.model().weights(Kind::Float);
    for r in rows.iter_mut() {
        let temperature = if r.role == "challenger" { t.0 } else { t.1 };
        let ids: Vec<i64> =
            r.prompt_ids.iter().chain(&r.completion_ids).map(|&x| x as i64).collect();
        let logits = spice_lm::tch::no_grad(|| w.logits(&Tensor::from_slice(&ids).view([1, -1])));
        let lp = (logits.squeeze_dim(0) / temperature).log_softmax(-1, Kind::Float);
        r.logprobs = r
            .completion_ids
            .iter()
            .enumerate()
            .map(|(j, &tok)| {
                lp.double_value(&[(r.prompt_ids.len() - 1 + j) as i64, tok as i64]) as f32
            })
            .collect();
    }
}

#[test]
fn each_role_is_scored_at_its_sampling_temperature() {
    // The Challenger sampled at 0.7, the Reasoner at 1.3: the update's πθ_old (scored before
    // the first step with two epochs, or the step's own forward pass with one) is the
    // distribution they sampled from, so it agrees with the sampling log-probs.
    let temps = ["challenger.temperature=0.7", "reasoner.temperature=1.3"];
    for epochs in ["update.ppo_epochs=1", "update.ppo_epochs=2"] {
        let run = make_run(&[temps[0], temps[1], epochs]);
        let mut rows = scored_rows(0, 6);
        logprobs_at(&load(&run.model), &mut rows, (0.7, 1.3));
        run.write_scored(0, &rows);
        update(&run, 0);
        let m = run.update_manifest(0);
        let mismatch = m.metric("logprob_mismatch_max_abs").unwrap();
        println!("{epochs}: max |old − sampling| at T 0.7 / 1.3: {mismatch:.2e}");
        assert!(mismatch < 1e-4, "{epochs}: {mismatch}");
    }
    // Scored at 1 instead, the same rows are off by much more.
    let run = make_run(&[]);
    let mut rows = scored_rows(0, 6);
    logprobs_at(&load(&run.model), &mut rows, (0.7, 1.3));
    run.write_scored(0, &rows);
    update(&run, 0);
    let at_one = run.update_manifest(0).metric("logprob_mismatch_max_abs").unwrap();
    assert!(at_one > 1e-2, "{at_one}");
}

#[test]
fn the_manifest_records_the_compute_dtype_and_the_share_of_the_measured_gemm_peak() {
    // bf16 asked: the update measures f32 and bf16 GEMMs and trains in bf16 only on a CPU
    // with AMX, whose bf16 GEMMs are the faster ones.
    let run = make_run(&["run.dtype=bf16"]);
    run.write_scored(0, &scored_rows(0, 1));
    let row = update(&run, 0);
    let m: UpdateMetrics = run.update_manifest(0).metrics_as().unwrap();
    println!(
        "compute {} ({}); GEMM f32 {:.1} bf16 {:?} GFLOP/s; model {:.3} GFLOP/s = {:.2}% of peak",
        m.compute_dtype,
        m.compute_reason,
        m.matmul_f32_gflops,
        m.matmul_bf16_gflops,
        m.model_gflops_per_second,
        100.0 * m.peak_fraction
    );
    // The rule follows the instruction set: bf16 only with AMX.
    let amx = spice_lm::cpu::CpuInfo::get().amx_bf16;
    let want = if amx { "BFloat16" } else { "Float" };
    assert_eq!(m.compute_dtype, want, "{}", m.compute_reason);
    assert!(m.matmul_f32_gflops > 0.1, "{m:?}");
    assert!(m.matmul_bf16_gflops.is_some_and(|b| b > 0.0), "bf16 was asked for: measured");
    // P: every trainable tensor of the tiny model, counted from its checkpoint.
    let p: i64 = params(&load(&run.checkpoint(0))).iter().map(|(_, t)| t.numel() as i64).sum();
    assert_eq!(m.parameters, p as u64);
    let expect = 6.0 * p as f64 * m.forwarded_tokens as f64 / m.train_seconds / 1e9;
    assert!((m.model_gflops_per_second - expect).abs() <= 1e-9 * expect.max(1.0), "{m:?}");
    let peak = if m.compute_dtype == "BFloat16" {
        m.matmul_bf16_gflops.unwrap()
    } else {
        m.matmul_f32_gflops
    };
    assert!((m.peak_fraction - m.model_gflops_per_second / peak).abs() < 1e-12, "{m:?}");
    assert_eq!(row.tokens, m.tokens, "one step: its tokens are the update's");
}

#[test]
fn a_shared_prefix_update_equals_the_padded_one_with_fewer_tokens_forwarded() {
    // The batch as the stages write it: a document's attempts and a task's answers share
    // their prompt.
    let mut rows = scored_rows(0, 3);
    let mut first: std::collections::HashMap<String, Vec<u32>> = Default::default();
    for r in &mut rows {
        r.prompt_ids = first.entry(r.group_id.clone()).or_insert(r.prompt_ids.clone()).clone();
    }
    let run_with = |shared: bool| {
        let run = make_run(&[
            &format!("update.shared_prefix={shared}"),
            "update.micro_batch_size=4",
            "update.gradient_checkpointing=true",
        ]);
        run.write_scored(0, &rows);
        let row = update(&run, 0);
        let m: UpdateMetrics = run.update_manifest(0).metrics_as().unwrap();
        (run, row, m)
    };
    let (padded_run, padded_row, padded) = run_with(false);
    let (shared_run, shared_row, shared) = run_with(true);
    let trained: Vec<_> = rows.iter().filter(|r| r.in_batch).collect();
    let all: u64 =
        trained.iter().map(|r| (r.prompt_ids.len() + r.completion_ids.len()) as u64).sum();
    assert_eq!((padded.sequence_tokens, shared.sequence_tokens), (all, all));
    assert_eq!(padded.forwarded_tokens, all, "without sharing every prompt is forwarded");
    assert!(
        shared.forwarded_tokens < all,
        "shared prompts are forwarded once per micro-batch: {} of {all}",
        shared.forwarded_tokens
    );
    assert!((padded_row.pg_loss - shared_row.pg_loss).abs() <= 1e-5 * padded_row.pg_loss.abs());
    assert!((padded_row.grad_norm - shared_row.grad_norm).abs() <= 1e-5 * padded_row.grad_norm);
    let diff = max_param_diff(&load(&padded_run.checkpoint(0)), &load(&shared_run.checkpoint(0)));
    println!(
        "forwarded {} of {all} tokens; pg_loss {} vs {}; weights differ by {diff:e}",
        shared.forwarded_tokens, padded_row.pg_loss, shared_row.pg_loss
    );
    // AdamW's first step moves each weight by about lr · g / |g|: where a gradient element is
    // tiny, f32 rounding of the two layouts is amplified. Both updates moved the weights by
    // about lr; they agree to under 1% of that.
    let lr = padded_run.cfg.update.learning_rate;
    let moved = max_param_diff(&load(&padded_run.model), &load(&padded_run.checkpoint(0)));
    assert!(moved > 0.5 * lr, "the update moved the weights by {moved}");
    assert!(diff < 1e-2 * lr, "the updated weights differ by {diff} (lr {lr})");
}
