//! GGUF tensor names → Hugging Face Llama names, dequantization to f32, and the inverse of
//! llama.cpp's Q/K row permutation.

use anyhow::{bail, Result};

use crate::config::LlamaConfig;

/// Which rows-permutation a tensor needs undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permute {
    None,
    /// Query projection: permuted per attention head.
    Query,
    /// Key projection: permuted per key/value head.
    Key,
}

/// One tensor of the output checkpoint.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    pub gguf_name: String,
    pub hf_name: String,
    /// Row-major shape the Hugging Face tensor must have.
    pub shape: Vec<usize>,
    pub permute: Permute,
}

/// Every tensor of a Llama checkpoint, in reading order. `tied`: no `lm_head.weight`.
pub fn llama_plan(cfg: &LlamaConfig, tied: bool) -> Vec<TensorPlan> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let q_out = cfg.num_attention_heads * cfg.head_dim;
    let kv_out = cfg.num_key_value_heads * cfg.head_dim;
    let t = |g: String, hf: String, shape: Vec<usize>, permute| TensorPlan {
        gguf_name: g,
        hf_name: hf,
        shape,
        permute,
    };
    let mut plan = vec![t(
        "token_embd.weight".into(),
        "model.embed_tokens.weight".into(),
        vec![v, h],
        Permute::None,
    )];
    for l in 0..cfg.num_hidden_layers {
        let g = |s: &str| format!("blk.{l}.{s}.weight");
        let hf = |s: &str| format!("model.layers.{l}.{s}.weight");
        plan.push(t(g("attn_q"), hf("self_attn.q_proj"), vec![q_out, h], Permute::Query));
        plan.push(t(g("attn_k"), hf("self_attn.k_proj"), vec![kv_out, h], Permute::Key));
        plan.push(t(g("attn_v"), hf("self_attn.v_proj"), vec![kv_out, h], Permute::None));
        plan.push(t(g("attn_output"), hf("self_attn.o_proj"), vec![h, q_out], Permute::None));
        plan.push(t(g("ffn_gate"), hf("mlp.gate_proj"), vec![i, h], Permute::None));
        plan.push(t(g("ffn_up"), hf("mlp.up_proj"), vec![i, h], Permute::None));
        plan.push(t(g("ffn_down"), hf("mlp.down_proj"), vec![h, i], Permute::None));
        plan.push(t(g("attn_norm"), hf("input_layernorm"), vec![h], Permute::None));
        plan.push(t(g("ffn_norm"), hf("post_attention_layernorm"), vec![h], Permute::None));
    }
    plan.push(t("output_norm.weight".into(), "model.norm.weight".into(), vec![h], Permute::None));
    if !tied {
        plan.push(t("output.weight".into(), "lm_head.weight".into(), vec![v, h], Permute::None));
    }
    plan
}

/// Undoes llama.cpp's `permute(w, n_head)` on the rows of a `[n_head * head_dim, cols]`
/// matrix. llama.cpp interleaves the two rotary halves of each head (row `2i + j` of a head
/// holds Hugging Face row `j * head_dim/2 + i`); this puts them back in halves. Same as
/// `transformers`' `reverse_permute_weights`:
/// `w.reshape(n_head, head_dim/2, 2, cols).swapaxes(1, 2).reshape(w.shape)`.
pub fn unpermute_rows(w: &[f32], n_head: usize, rows: usize, cols: usize) -> Result<Vec<f32>> {
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) || w.len() != rows * cols {
        bail!(
            "cannot un-permute a [{rows}, {cols}] matrix ({} values) over {n_head} heads",
            w.len()
        );
    }
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                let src = h * head_dim + 2 * i + j;
                let dst = h * head_dim + j * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's forward permutation, written as its converter does it.
    fn permute_rows(w: &[f32], n_head: usize, rows: usize, cols: usize) -> Vec<f32> {
        let head_dim = rows / n_head;
        let half = head_dim / 2;
        let mut out = vec![0f32; w.len()];
        // reshape(n_head, 2, half, cols).swapaxes(1, 2): out[h, i, j] = w[h, j, i]
        for h in 0..n_head {
            for j in 0..2 {
                for i in 0..half {
                    let src = h * head_dim + j * half + i;
                    let dst = h * head_dim + 2 * i + j;
                    out[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&w[src * cols..(src + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (n_head, head_dim, cols) = (3, 8, 5);
        let rows = n_head * head_dim;
        let w: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let p = permute_rows(&w, n_head, rows, cols);
        assert_ne!(p, w);
        assert_eq!(unpermute_rows(&p, n_head, rows, cols).unwrap(), w);
    }

    #[test]
    fn unpermute_moves_rows_into_rotary_halves() {
        // One head of dim 4, one column: GGUF rows [a0, b0, a1, b1] → HF [a0, a1, b0, b1].
        let got = unpermute_rows(&[0.0, 10.0, 1.0, 11.0], 1, 4, 1).unwrap();
        assert_eq!(got, vec![0.0, 1.0, 10.0, 11.0]);
    }

    #[test]
    fn unpermute_rejects_bad_shapes() {
        assert!(unpermute_rows(&[0.0; 6], 2, 3, 2).is_err());
        assert!(unpermute_rows(&[0.0; 5], 1, 4, 1).is_err());
    }
}
