//! Data-parallel update over c10d's Gloo on localhost: world size 2 takes the step world size
//! 1 takes, with the optimizer replicated (ZeRO stage 0) or its moments sharded (stage 1, the
//! default). Each rank runs in its own thread with its own model, optimizer, store client and
//! process group — what two processes would hold.

mod common;

use std::time::Duration;

use common::*;
use spice_dist::c10d::{Backend, ProcessGroup, Store};
use spice_lm::tch::Tensor;
use spice_lm::AdamW;
use spice_schemas::rows::UpdateMetricsRow;
use spice_update::{input::read_scored, train};

/// A rank's weights by name, its metric rows and the elements its optimizer holds moments of.
type RankResult = (Vec<(String, Tensor)>, Vec<UpdateMetricsRow>, i64);

/// The update of iteration 0 at `world` ranks: each rank's weights, metric rows and optimizer
/// state size.
fn update_at(run: &TestRun, world: usize) -> Vec<RankResult> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let one_rank = move |group: Option<ProcessGroup>, run: &TestRun| {
        let policy = load(&run.model);
        let config = train::adamw_config(&run.cfg);
        let mut opt = match &group {
            Some(g) if run.cfg.update.zero_stage == 1 => {
                AdamW::sharded(policy.var_store(), config, g.rank(), g.world())
            }
            _ => AdamW::new(policy.var_store(), config),
        };
        let s = train::UpdateSettings::from_config(&run.cfg, 0, run.cfg.run.seed);
        let mut rows = read_scored(&run.scored_dir(0), 0, true).unwrap().rows;
        let mut opts = s.score_options();
        opts.dist = group.as_ref();
        if !train::single_step(rows.len(), &s) {
            train::score_old(&policy, &mut rows, opts, None).unwrap();
        }
        if s.beta > 0.0 {
            train::score_reference(&load(&run.model), &mut rows, opts, None).unwrap();
        }
        let steps = train::run_epochs(&policy, &mut opt, &rows, &s, group.as_ref(), None).unwrap();
        let state = opt.state_elements();
        (params(&policy), steps.into_iter().map(|s| s.metrics).collect(), state)
    };
    if world == 1 {
        return vec![one_rank(None, run)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                scope.spawn(move || {
                    let timeout = Duration::from_secs(120);
                    let store =
                        Store::tcp("127.0.0.1", port, world, rank == 0, timeout, "update").unwrap();
                    let group =
                        ProcessGroup::new(Backend::Gloo, store, rank, world, timeout).unwrap();
                    one_rank(Some(group), run)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Largest |a − b| over all weights, and the largest |b − initial| (the step's own size).
fn weight_diff(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

fn assert_same_metrics(one: &[UpdateMetricsRow], two: &[UpdateMetricsRow], what: &str) {
    assert_eq!(one.len(), two.len(), "{what}: steps");
    for (a, b) in one.iter().zip(two) {
        assert_eq!(
            (a.epoch, a.step, a.sequences, a.tokens),
            (b.epoch, b.step, b.sequences, b.tokens),
            "{what}"
        );
        assert_eq!(
            (a.challenger_sequences, a.reasoner_sequences),
            (b.challenger_sequences, b.reasoner_sequences)
        );
        for (name, x, y) in [
            ("loss", a.loss, b.loss),
            ("pg_loss", a.pg_loss, b.pg_loss),
            ("kl", a.kl, b.kl),
            ("grad_norm", a.grad_norm, b.grad_norm),
            ("clip_fraction", a.clip_fraction, b.clip_fraction),
        ] {
            assert!(
                close(x, y, 1e-5),
                "{what}: step {} {name} {x:e} at world 1, {y:e} at world 2",
                a.step
            );
        }
    }
}

/// World 2 against world 1 on one configuration: every rank ends with the same weights, and
/// those are world 1's to within f32 rounding.
fn world_two_equals_world_one(overrides: &[&str], what: &str) {
    let run = make_run(overrides);
    run.write_scored(0, &scored_rows(0, 3));
    let initial = params(&load(&run.model));
    let one = update_at(&run, 1);
    let two = update_at(&run, 2);
    let (w1, m1, full_state) = &one[0];
    let step = weight_diff(w1, &initial);
    let between_ranks = weight_diff(&two[0].0, &two[1].0);
    let diff = weight_diff(w1, &two[0].0);
    println!("{what}: max |Δw| world 1 vs 2 {diff:.3e}, between ranks {between_ranks:.1e}, step size {step:.3e}");
    // Every rank takes the same AdamW step on the same summed gradient: bit-identical weights.
    assert_eq!(between_ranks, 0.0, "{what}: ranks diverged");
    // The micro-batches are world 1's, only the order of their gradient sum differs (f32
    // rounding, ~1e-7 relative); Adam divides by √v, so the step moves by far less than its size.
    assert!(step > 1e-4, "{what}: the update must move the weights ({step})");
    assert!(diff <= 1e-3 * step, "{what}: world 2 is {diff:e} from world 1 (step {step:e})");
    assert_same_metrics(m1, &two[0].1, what);
    assert_same_metrics(m1, &two[1].1, what);
    let states = [two[0].2, two[1].2];
    println!("{what}: optimizer state elements per rank {states:?}, at world 1 {full_state}");
    if run.cfg.update.zero_stage == 1 {
        // ZeRO-1: each rank holds the moments of its half of every bucket, no more.
        assert_eq!(states[0] + states[1], *full_state, "{what}: shards must cover the state");
        for s in states {
            assert!(s <= full_state / 2 + 1_000, "{what}: a shard of {s} of {full_state}");
        }
    } else {
        assert_eq!(states, [*full_state; 2], "{what}: a replicated optimizer");
    }
}

#[test]
fn one_step_over_the_batch_at_world_two_equals_world_one() {
    world_two_equals_world_one(&[], "one step");
}

#[test]
fn one_step_with_a_replicated_optimizer_at_world_two_equals_world_one() {
    world_two_equals_world_one(&["update.zero_stage=0"], "one step, ZeRO stage 0");
}

#[test]
fn epochs_of_mini_batches_with_scored_old_and_reference_at_world_two_equal_world_one() {
    // Several steps, πθ_old and π_ref scored in shares and exchanged, a KL term, and a last
    // mini-batch too small to give both ranks a micro-batch.
    world_two_equals_world_one(
        &[
            "update.ppo_epochs=2",
            "update.mini_batch_size=5",
            "update.beta=0.05",
            "update.micro_batch_size=4",
        ],
        "2 epochs of mini-batches, beta 0.05",
    );
}

/// `spice-update` as a user runs it, on iteration `iter` of `run`.
fn spice_update(run: &TestRun, iter: u32, env: &[(&str, &str)]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spice-update"))
        .args(["--run", run.root.to_str().unwrap(), "--iter", &iter.to_string()])
        .envs(env.iter().copied())
        .env("SPICE_LM_THREADS", "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    out
}

fn ok(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The two ranks of iteration `iter` started by hand, as torchrun or `srun` would start them.
fn spice_update_ranks(run: &TestRun, iter: u32) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            let rank = rank.to_string();
            std::process::Command::new(env!("CARGO_BIN_EXE_spice-update"))
                .args(["--run", run.root.to_str().unwrap(), "--iter", &iter.to_string()])
                .envs([("RANK", rank.as_str()), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1")])
                .env("MASTER_PORT", &port)
                .env("SPICE_LM_THREADS", "1")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (rank, c) in children.into_iter().enumerate() {
        ok(c.wait_with_output().unwrap(), &format!("iteration {iter}, rank {rank} of 2"));
    }
}

fn checkpoint_diff(a: &TestRun, b: &TestRun, iter: u32) -> f64 {
    weight_diff(&params(&load(&a.checkpoint(iter))), &params(&load(&b.checkpoint(iter))))
}

#[test]
fn update_processes_two_commits_the_checkpoint_of_one_process_and_resumes_across_world_sizes() {
    // `single`: both iterations at 1 process. `two_then_one`: iteration 0 at
    // update.processes = 2, iteration 1 at 1 (WORLD_SIZE=1 wins over run.toml). `one_then_two`:
    // iteration 0 at 1, iteration 1 at 2 ranks started by hand. At 2 ranks each saves its
    // shard of the optimizer state, and the state reloads at the other world size: every
    // resume is the uninterrupted run's.
    let single = make_run(&[]);
    let two_then_one = make_run(&["update.processes=2"]);
    let one_then_two = make_run(&[]);
    for run in [&single, &two_then_one, &one_then_two] {
        run.write_scored(0, &scored_rows(0, 1));
        run.write_scored(1, &scored_rows(1, 2));
    }
    ok(spice_update(&single, 0, &[]), "single, iteration 0");
    ok(spice_update(&two_then_one, 0, &[]), "two_then_one, iteration 0 (2 processes)");
    ok(spice_update(&one_then_two, 0, &[]), "one_then_two, iteration 0");
    assert_eq!(
        optimizer_files(&two_then_one, 0),
        [
            "_manifest.json",
            "optimizer-rank00000-of-00002.safetensors",
            "optimizer-rank00001-of-00002.safetensors",
            "optimizer.json"
        ]
    );
    assert_eq!(
        optimizer_files(&single, 0),
        ["_manifest.json", "optimizer.json", "optimizer.safetensors"]
    );

    let (m1, m2) = (single.update_manifest(0), two_then_one.update_manifest(0));
    assert_eq!(m1.metric("world_size").unwrap(), 1.0);
    assert_eq!(m2.metric("world_size").unwrap(), 2.0);
    let state = |m: &spice_schemas::Manifest| m.metric("optimizer_state_bytes").unwrap();
    assert_eq!((m1.metric("zero_stage").unwrap(), m2.metric("zero_stage").unwrap()), (0.0, 1.0));
    assert!(state(&m2) <= state(&m1) / 2.0 + 8_000.0, "{} of {}", state(&m2), state(&m1));
    for key in ["sequences", "tokens", "sequence_tokens", "forwarded_tokens", "optimizer_step"] {
        assert_eq!(m1.metric(key).unwrap(), m2.metric(key).unwrap(), "{key}");
    }
    assert_same_metrics(&single.update_rows(0), &two_then_one.update_rows(0), "stage, iteration 0");
    let step0 = weight_diff(&params(&load(&single.checkpoint(0))), &params(&load(&single.model)));
    let diff0 = checkpoint_diff(&single, &two_then_one, 0);
    println!("iteration 0: 2 processes {diff0:.2e} from 1 (step {step0:.2e})");
    assert!(step0 > 1e-4 && diff0 <= 1e-3 * step0, "{diff0:e} vs step {step0:e}");

    ok(spice_update(&single, 1, &[]), "single, iteration 1");
    ok(
        spice_update(&two_then_one, 1, &[("RANK", "0"), ("WORLD_SIZE", "1")]),
        "two_then_one, iteration 1",
    );
    spice_update_ranks(&one_then_two, 1);
    let step1 =
        weight_diff(&params(&load(&single.checkpoint(1))), &params(&load(&single.checkpoint(0))));
    for (run, what) in [(&two_then_one, "2 then 1"), (&one_then_two, "1 then 2")] {
        let m =
            run.update_manifest(1).metrics_as::<spice_schemas::metrics::UpdateMetrics>().unwrap();
        assert!(m.optimizer_resumed, "{what}");
        assert_eq!(m.optimizer_step, 2, "{what}");
        let diff = checkpoint_diff(&single, run, 1);
        println!("iteration 1, {what}: {diff:.2e} from all at 1 process (step {step1:.2e})");
        assert!(diff <= 1e-3 * step1, "{what}: {diff:e} vs step {step1:e}");
    }
    assert_eq!(one_then_two.update_manifest(1).metric("world_size").unwrap(), 2.0);
    assert_eq!(optimizer_files(&one_then_two, 1).len(), 4, "2 shards, settings, manifest");
}

fn optimizer_files(run: &TestRun, iter: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.layout().optimizer(iter))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_rank_that_never_comes_fails_the_update_naming_the_rank_and_commits_nothing() {
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 1));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    // Rank 0 of 2 alone: rank 1 never starts.
    let out = spice_update(
        &run,
        0,
        &[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", &port.to_string()),
            ("SPICE_DIST_TIMEOUT", "3"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    println!(
        "failed after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        err.lines().last().unwrap_or("")
    );
    assert!(!out.status.success(), "a missing rank must fail the update");
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
    assert!(err.contains("rank 0 of 2"), "{err}");
    for folder in ["iter-0000/update", "iter-0000/checkpoint", "iter-0000/optimizer"] {
        assert!(!run.root.join(folder).join("_manifest.json").exists(), "{folder} was committed");
    }
}
