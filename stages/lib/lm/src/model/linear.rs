//! `y = x · Wᵀ + b`, whatever the weight's layout: a plain tensor (any dtype; training,
//! scoring, GPUs) or packed for oneDNN (CPU generation in f32).

use tch::{Kind, Tensor};

use super::load::Vars;

/// How the weight is stored, which decides the kernel `forward` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// A plain tensor: libtorch's GEMM (autograd works).
    Dense,
    /// oneDNN's blocked layout: libtorch's dense f32 GEMM repacks the weight on every call,
    /// which dominates decode steps of a few dozen rows; oneDNN keeps it packed (1.4–1.9×
    /// the GEMM throughput at 8–64 rows on a 2-core AVX2 machine). Inference only.
    ///
    /// With `decode_rows`, inputs of one token per row (a decode step, or the last positions
    /// the LM head reads) go through in blocks of at most that many rows. oneDNN sums a row
    /// the same way whatever the number of rows up to a few dozen, but switches to other
    /// kernels beyond (from 63 to 128 rows for SmolLM2-135M's shapes on a 2-core AVX2
    /// machine), which changes a row's last bits with the size of its batch.
    OneDnn { decode_rows: Option<i64> },
}

pub struct Linear {
    weight: Tensor, // [out, in]
    bias: Option<Tensor>,
    layout: Layout,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear { weight, bias, layout: Layout::Dense }
    }

    /// `{prefix}.weight` [out, in] and, when `bias`, `{prefix}.bias` [out].
    pub fn load(vars: &mut Vars, prefix: &str, in_dim: i64, out_dim: i64, bias: bool) -> Result {
        let weight = vars.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?;
        let bias = vars.get_if(bias, &format!("{prefix}.bias"), &[out_dim])?;
        Ok(Linear::new(weight, bias))
    }

    /// [.., in] → [.., out].
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self.layout {
            Layout::Dense => x.linear(&self.weight, self.bias.as_ref()),
            Layout::OneDnn { decode_rows } => {
                let mut shape = x.size();
                let k = *shape.last().unwrap();
                let x = x.reshape([-1, k]).contiguous();
                let rows = x.size()[0];
                let one_token_per_row = shape.len() == 2 || shape[shape.len() - 2] == 1;
                let y = match decode_rows {
                    Some(block) if one_token_per_row && rows > block => {
                        let parts: Vec<Tensor> = (0..rows)
                            .step_by(block as usize)
                            .map(|start| self.onednn(&x.narrow(0, start, block.min(rows - start))))
                            .collect();
                        Tensor::cat(&parts, 0)
                    }
                    _ => self.onednn(&x),
                };
                *shape.last_mut().unwrap() = y.size()[1];
                y.reshape(shape)
            }
        }
    }

    /// `x` [rows, in] through oneDNN's GEMM.
    fn onednn(&self, x: &Tensor) -> Tensor {
        x.contiguous()
            .to_mkldnn()
            .mkldnn_linear(&self.weight, self.bias.as_ref())
            .to_dense(None, false)
    }

    /// The same projection in `kind` (no copy when it already is; differentiable when grad
    /// mode is on, so gradients reach the f32 master weights).
    pub fn to_kind(&self, kind: Kind) -> Linear {
        assert_eq!(self.layout, Layout::Dense, "only dense weights are cast");
        Linear::new(cast(&self.weight, kind), self.bias.as_ref().map(|b| cast(b, kind)))
    }

    /// A copy in oneDNN's layout (f32, inference only), for CPU generation; `decode_rows`
    /// bounds the rows of one GEMM of one-token-per-row inputs (see `Layout::OneDnn`).
    pub fn to_onednn(&self, decode_rows: Option<i64>) -> Linear {
        let dnn = |t: &Tensor| t.contiguous().to_mkldnn();
        Linear {
            weight: dnn(&self.weight),
            bias: self.bias.as_ref().map(dnn),
            layout: Layout::OneDnn { decode_rows },
        }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn out_dim(&self) -> i64 {
        self.weight.size()[0]
    }
}

type Result = anyhow::Result<Linear>;

/// Several projections of one input (q/k/v, gate/up): separate, as trained (each checkpoint
/// tensor gets its own gradient), or stacked into one matrix so generation runs one GEMM
/// where it ran several (per-op overhead dominates small CPU batches).
pub enum Projections {
    Separate(Vec<Linear>),
    /// The stacked projection and where each output starts and ends in its last dimension.
    Stacked(Linear, Vec<i64>),
}

impl Projections {
    /// One output per projection: [.., out_i].
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        match self {
            Projections::Separate(ps) => ps.iter().map(|p| p.forward(x)).collect(),
            Projections::Stacked(p, sizes) => {
                let all = p.forward(x);
                let last = all.dim() as i64 - 1;
                let mut start = 0;
                sizes
                    .iter()
                    .map(|&n| {
                        start += n;
                        all.narrow(last, start - n, n)
                    })
                    .collect()
            }
        }
    }

    /// Stack separate dense projections (inference only: the stacked copy has no autograd
    /// path to the master weights). The biases stack too when every projection has one;
    /// when only some have one nothing is stacked. Returns whether the result is stacked.
    pub fn stack(&mut self) -> bool {
        let Projections::Separate(ps) = self else { return true };
        let with_bias = ps.iter().filter(|p| p.bias.is_some()).count();
        if with_bias != 0 && with_bias != ps.len() {
            return false;
        }
        let cat =
            |f: &dyn Fn(&Linear) -> &Tensor| Tensor::cat(&ps.iter().map(f).collect::<Vec<_>>(), 0);
        let weight = cat(&|p: &Linear| &p.weight);
        let bias = (with_bias != 0).then(|| cat(&|p: &Linear| p.bias.as_ref().unwrap()));
        let sizes = ps.iter().map(Linear::out_dim).collect();
        *self = Projections::Stacked(Linear::new(weight, bias), sizes);
        true
    }

    pub fn is_stacked(&self) -> bool {
        matches!(self, Projections::Stacked(..))
    }

    pub fn to_kind(&self, kind: Kind) -> Projections {
        match self {
            Projections::Separate(ps) => {
                Projections::Separate(ps.iter().map(|p| p.to_kind(kind)).collect())
            }
            Projections::Stacked(p, sizes) => Projections::Stacked(p.to_kind(kind), sizes.clone()),
        }
    }

    /// The stacked projection in oneDNN's layout; separate ones stay as they are (the model
    /// converts only when every layer is stacked).
    pub fn to_onednn(&mut self, decode_rows: Option<i64>) {
        if let Projections::Stacked(p, _) = self {
            *p = p.to_onednn(decode_rows);
        }
    }
}

/// `t` in `kind`: the tensor itself when it already is (no copy), else a cast.
pub fn cast(t: &Tensor, kind: Kind) -> Tensor {
    if t.kind() == kind {
        t.shallow_clone()
    } else {
        t.to_kind(kind)
    }
}
