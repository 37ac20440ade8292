//! Shared-prefix scoring and training (each distinct prompt forwarded once for all its rows)
//! against the padded layout (every row its own copy of its prompt), on every architecture
//! switch: the same log-probs, loss and gradients up to f32 rounding.

mod common;

use common::*;
use spice_lm::logprobs::GradOptions;
use spice_lm::tch::{Kind, Tensor};
use spice_lm::ScoreRow;

/// Two prompts with several completions each (of different lengths, one empty), prompts that
/// only start like one of them, a prompt of its own, and a repeated prompt of another length:
/// what a Challenger document's attempts (one document, several formats) and a task's answers
/// look like, mixed in one micro-batch.
fn rows() -> Vec<ScoreRow> {
    let row =
        |p: &[u32], c: &[u32]| ScoreRow { prompt_ids: p.to_vec(), completion_ids: c.to_vec() };
    let doc = [5, 9, 13, 2, 7, 31, 8, 8, 40, 3, 11];
    let task = [17, 4, 29];
    vec![
        row(&doc, &[6, 12, 19, 3]),
        row(&doc, &[6, 12]),
        row(&doc, &[44, 1, 2, 3, 4, 5, 6]),
        row(&task, &[9]),
        row(&task, &[10, 20, 30]),
        // The document again with another instruction after it: the document is shared.
        row(&[&doc[..], &[50, 51]].concat(), &[52, 53, 54]),
        row(&[&doc[..], &[60]].concat(), &[61]),
        row(&[21, 22, 23, 24, 25], &[26, 27]),
        row(&doc, &[]),
        row(&task, &[10, 21, 31, 41, 51]),
    ]
}

/// Per-row weights of the test's loss, so each row's gradient counts differently.
fn weights(n: usize) -> Vec<f32> {
    (0..n).map(|i| 0.5 + 0.37 * i as f32 - 0.11 * (i * i) as f32).collect()
}

#[test]
fn shared_prefix_scores_equal_the_padded_rows() {
    let rows = rows();
    let temps: Vec<f64> = (0..rows.len()).map(|i| if i % 2 == 0 { 1.0 } else { 0.7 }).collect();
    for arch in ARCHS {
        let p = load(arch, Kind::Float);
        for micro_batch in [rows.len(), 4] {
            let padded = p.score_with(&rows, &temps, micro_batch, false).unwrap();
            let shared = p.score_with(&rows, &temps, micro_batch, true).unwrap();
            let mut worst = 0.0f32;
            for (i, (a, b)) in padded.iter().zip(&shared).enumerate() {
                assert_eq!(a.len(), rows[i].completion_ids.len(), "{arch}: row {i}");
                assert_eq!(a.len(), b.len(), "{arch}: row {i}");
                for (x, y) in a.iter().zip(b) {
                    worst = worst.max((x - y).abs());
                }
            }
            assert!(
                worst < 2e-5,
                "{arch} micro-batch {micro_batch}: log-probs differ by {worst:e}"
            );
            println!("{arch} micro-batch {micro_batch}: max |Δ log-prob| {worst:.2e}");
        }
    }
}

/// The loss Σ_i w_i Σ_t log p(token) and every parameter's gradient, with or without a
/// shared prefix.
fn gradients(arch: &str, rows: &[ScoreRow], opts: GradOptions) -> (f64, Vec<(String, Tensor)>) {
    let p = load(arch, Kind::Float);
    let w = weights(rows.len());
    let temps: Vec<f64> = (0..rows.len()).map(|i| if i % 3 == 0 { 0.8 } else { 1.0 }).collect();
    let loss = p
        .accumulate_gradients_at(rows, &temps, opts, &mut |idx, lp| {
            let wi: Vec<f32> = idx.iter().map(|&i| w[i]).collect();
            let wi = Tensor::from_slice(&wi).unsqueeze(1);
            Ok(-(&lp.logprobs * wi * &lp.mask).sum(Kind::Float))
        })
        .unwrap();
    let mut grads: Vec<(String, Tensor)> =
        p.var_store().variables().into_iter().map(|(k, v)| (k, v.grad().copy())).collect();
    grads.sort_by(|a, b| a.0.cmp(&b.0));
    (loss, grads)
}

#[test]
fn shared_prefix_loss_and_gradients_equal_the_padded_rows() {
    let rows = rows();
    for arch in ARCHS {
        for checkpointing in [false, true] {
            for micro_batch in [rows.len(), 4] {
                let opts =
                    |shared_prefix| GradOptions { micro_batch, checkpointing, shared_prefix };
                let (loss_a, ga) = gradients(arch, &rows, opts(false));
                let (loss_b, gb) = gradients(arch, &rows, opts(true));
                let what = format!("{arch} ckpt={checkpointing} micro-batch {micro_batch}");
                assert!(
                    (loss_a - loss_b).abs() <= 1e-5 * loss_a.abs(),
                    "{what}: loss {loss_a} vs {loss_b}"
                );
                let mut worst = 0.0f64;
                for ((name, a), (_, b)) in ga.iter().zip(&gb) {
                    let scale = a.abs().max().double_value(&[]);
                    assert!(scale > 0.0, "{what}: {name} has no gradient");
                    let rel = max_abs_diff(a, b) / scale;
                    worst = worst.max(rel);
                    assert!(rel < 1e-5, "{what}: gradient of {name} differs by {rel:e} (relative)");
                }
                println!("{what}: loss {loss_a:.6} vs {loss_b:.6}, worst relative gradient diff {worst:.2e}");
            }
        }
    }
}
