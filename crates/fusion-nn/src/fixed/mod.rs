//! The fixed-point engine: a model lowered to a [`FixedProgram`] over `Z_{2^l}`,
//! and a plaintext interpreter for it.
//!
//! # The program is the engine contract
//!
//! [`lower`] turns a [`Model`](crate::model::Model) and a
//! [`FixedPoint`] (ring `Z_{2^l}`, `f` fractional
//! bits; engine default `l = 37, f = 12`, anything with `2f + 2 <= l <= 64` works)
//! into a flat list of [`Step`]s. Value 0 is the encoded input; step `i` reads
//! earlier values (`Step::inputs`) and defines value `i + 1`; the last step's value
//! is the output. Every step records its per-sample output `shape` and the
//! fixed-point `scale` (fractional bits) of its output.
//!
//! The plaintext interpreter ([`FixedProgram::run`]) executes the steps on ring
//! tensors. The secure engine executes **the same steps** on additive shares: the
//! op classes ([`OpClass`]) say how.
//!
//! | class | ops | secure engine |
//! |---|---|---|
//! | [`OpClass::Linear`] | [`FixedOp::Dense`], [`FixedOp::Conv2d`], [`FixedOp::ChannelAffine`] | HE: server-known integer coefficients times the shared input, plus the server's bias; exact in `Z_{2^l}` |
//! | [`OpClass::Local`] | [`FixedOp::SumPool`], [`FixedOp::GlobalSumPool`], [`FixedOp::MulConst`], [`FixedOp::Add`], [`FixedOp::Reshape`] | each party on its own share, no messages (public linear maps) |
//! | [`OpClass::NonLinear`] | [`FixedOp::Truncate`], [`FixedOp::Relu`], [`FixedOp::MaxPool`], [`FixedOp::Square`] | OT-based protocols |
//!
//! # Encoding and the truncation rule
//!
//! * The client applies the model's public preprocessing in the clear and encodes
//!   the input at scale `f`: `x̂ = round(x 2^f) mod 2^l` (saturating).
//! * Linear ops: weights (and batch-norm scales) are encoded at scale `f`, biases
//!   (and shifts) at scale `2f`; the op's output is `W x̂ + b̂` at scale `2f`,
//!   computed exactly in `Z_{2^l}` (no overflow as long as the true value at scale
//!   `2f` stays within `±2^(l-1)`).
//! * **Truncate after each multiplication**: every linear op and every
//!   [`FixedOp::Square`] is followed by `Truncate { bits: f }`, bringing the value
//!   back to scale `f` before anything else reads it. The one exception is the
//!   graph's **output**: if the last op is a multiplication its result is left at
//!   scale `2f` (the client decodes at `2f`; this saves one truncation layer and
//!   loses nothing, since every linear output already had to fit at `2f`).
//! * `Truncate { bits }` is the **exact arithmetic shift right** of the signed
//!   value (floor division by `2^bits`) in this reference interpreter. A secure
//!   truncation may return the floor **or the floor ± 1** in the last bit (the
//!   usual one-bit error of share-local or faithful-with-error truncation); the
//!   contract allows exactly that and nothing larger.
//! * Batch norm is **folded** into the preceding convolution when the conv's only
//!   consumer is that batch norm (`w' = w s`, `b' = b s + t` per output channel, with
//!   `s = gamma / sqrt(var + eps)`, `t = beta - mean s`, computed in f64 before
//!   encoding); otherwise it becomes a [`FixedOp::ChannelAffine`] (scale `s` at `f`,
//!   shift `t` at `2f`) followed by truncation.
//! * Average pooling over `k x k` windows (and global average pooling over `H W`
//!   positions, `k^2 := H W`) is a window **sum** ([`FixedOp::SumPool`] /
//!   [`FixedOp::GlobalSumPool`], local) followed by a division by `k^2`:
//!   - if `k^2` is a power of two, `Truncate { bits: log2 k^2 }` (exact floor of the
//!     mean: error in `(-2^-f, 0]`);
//!   - otherwise `MulConst { factor: c }` with `c = round(2^f / k^2)` (a public
//!     integer, local) and `Truncate { bits: f }`: the mean is scaled by
//!     `c k^2 / 2^f = 1 + rho` with `|rho| <= k^2 / 2^(f+1)` (for ResNet50's 7x7 global
//!     pool at `f = 12`: `c = 84`, `rho = +0.49%`), plus the floor error.
//! * ReLU, max pool and residual adds work on scale `f` values directly; max pool
//!   takes the maximum over in-bounds positions only.
//! * A ReLU whose only reader is a max pool is lowered *after* the pool (steps
//!   `pool`, then the ReLU's name): `max(ReLU(a), ReLU(b)) = ReLU(max(a, b))`
//!   exactly, and the ReLU then runs on one value per window (a secure engine
//!   pays per ReLU).
//! * A `1 x 1` convolution with stride `s > 1` and no padding reads only every
//!   `s`-th pixel: it is lowered as a subsampling (step `<conv>.subsample`, a
//!   [`FixedOp::SumPool`] with `1 x 1` windows and stride `s`, local) followed by
//!   the same convolution with stride 1 on the `s^2` times smaller input. The
//!   outputs are identical; a secure engine then encrypts and multiplies only the
//!   pixels that are read (ResNet's downsampling shortcuts).
//!
//! # Error bounds
//!
//! Write `u = 2^-f`, `e(v)` for the absolute error of a fixed-point value against
//! the exact real computation, and assume no value overflows `±2^(l-1)` at its scale.
//!
//! | step | error of the output |
//! |---|---|
//! | input encoding | `<= u/2` per element |
//! | weight / bias encoding | `<= u/2` / `<= u^2/2` per coefficient |
//! | linear op (before truncation), output `y = sum_i w_i x_i + b` | `<= sum_i |w_i| e(x_i) + (u/2) sum_i |x̂_i| + u^2/2` |
//! | `Truncate` (reference) | adds an error in `(-u, 0]` (floor) |
//! | `Truncate` (secure, allowed) | adds an error in `(-2u, u]` |
//! | ReLU, max pool | `<= max` of the input errors (1-Lipschitz) |
//! | sum pool / add | sum of the input errors |
//! | average pool, `k^2 = 2^t` | `<= max e(x_i) + u` (mean of errors, then floor) |
//! | average pool, other `k^2` | `<= (1 + |rho|) max e(x_i) + |rho| |mean| + u` |
//! | square | `<= 2 |x| e(x) + e(x)^2`, then `+ u` for the truncation |
//!
//! Errors compose layer by layer through these rules; the tests check every row
//! on random data (`tests::*_within_bound`) and the end-to-end argmax agreement of
//! every shipped model. In practice (`l = 37, f = 12`) logits of the shipped models
//! are within a few `1e-3` of the float engine.

mod exec;
mod lower;
mod public;

pub use lower::lower;
pub use public::{PublicOp, PublicProgram, PublicStep};

use fusion_core::ring::{FixedPoint, Ring};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::tensor::{RingTensor, Tensor};

/// Index of a value in a program: 0 is the input, `i + 1` the output of step `i`.
pub type ValueId = usize;

/// A fully connected layer over the ring: `y = W x + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseOp {
    /// Input width `D`.
    pub in_features: usize,
    /// Output width `O`.
    pub out_features: usize,
    /// `W`, row-major `[O, D]`, ring elements at scale `f` (server-private).
    pub weight: Vec<u64>,
    /// `b`, `[O]`, ring elements at scale `2f` (server-private).
    pub bias: Vec<u64>,
}

/// A 2-D convolution over the ring (cross-correlation, zero padding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2dOp {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Input rows `H`.
    pub in_height: usize,
    /// Input columns `W`.
    pub in_width: usize,
    /// Output channels `Co`.
    pub out_channels: usize,
    /// Kernel side `k`.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Weights, row-major `[Co, C, k, k]`, ring elements at scale `f` (server-private).
    pub weight: Vec<u64>,
    /// Bias `[Co]` at scale `2f` (server-private).
    pub bias: Vec<u64>,
}

/// A per-channel affine map `y[c] = s[c] x[c] + t[c]` on `[C, H, W]` (an unfolded batch norm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelAffineOp {
    /// Channels `C`.
    pub channels: usize,
    /// `s`, `[C]` at scale `f` (server-private).
    pub scale: Vec<u64>,
    /// `t`, `[C]` at scale `2f` (server-private).
    pub shift: Vec<u64>,
}

/// One operation of a [`FixedProgram`]. Shapes are per sample; see [`crate::tensor`] for the layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FixedOp {
    /// Linear, server-known coefficients: fully connected.
    Dense(DenseOp),
    /// Linear, server-known coefficients: convolution.
    Conv2d(Conv2dOp),
    /// Linear, server-known coefficients: per-channel scale and shift.
    ChannelAffine(ChannelAffineOp),
    /// Local: sums over `kernel x kernel` windows of `[C, H, W]` (zero padding).
    SumPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// Local: sums over all positions, `[C, H, W] -> [C]`.
    GlobalSumPool,
    /// Local: multiplies by a public integer.
    MulConst {
        /// The factor (a ring element).
        factor: u64,
    },
    /// Local: elementwise sum of two values.
    Add,
    /// Local: same elements, the step's `shape` (flatten).
    Reshape,
    /// Non-linear: arithmetic shift right of the signed value by `bits`.
    Truncate {
        /// Bits to drop.
        bits: u32,
    },
    /// Non-linear: `max(x, 0)` on the signed value.
    Relu,
    /// Non-linear: max over in-bounds positions of `kernel x kernel` windows.
    MaxPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding (ignored positions).
        padding: usize,
    },
    /// Non-linear: `x * x` in the ring (scale doubles; a truncation follows).
    Square,
}

/// How the secure engine executes an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// Server-known coefficients times a shared input (HE).
    Linear,
    /// Public linear map each party applies to its own share.
    Local,
    /// Needs interaction (OT).
    NonLinear,
}

impl FixedOp {
    /// The op's class.
    pub fn class(&self) -> OpClass {
        match self {
            FixedOp::Dense(_) | FixedOp::Conv2d(_) | FixedOp::ChannelAffine(_) => OpClass::Linear,
            FixedOp::SumPool { .. }
            | FixedOp::GlobalSumPool
            | FixedOp::MulConst { .. }
            | FixedOp::Add
            | FixedOp::Reshape => OpClass::Local,
            FixedOp::Truncate { .. }
            | FixedOp::Relu
            | FixedOp::MaxPool { .. }
            | FixedOp::Square => OpClass::NonLinear,
        }
    }

    /// A short name (the JSON tag).
    pub fn tag(&self) -> &'static str {
        match self {
            FixedOp::Dense(_) => "dense",
            FixedOp::Conv2d(_) => "conv2d",
            FixedOp::ChannelAffine(_) => "channel_affine",
            FixedOp::SumPool { .. } => "sum_pool",
            FixedOp::GlobalSumPool => "global_sum_pool",
            FixedOp::MulConst { .. } => "mul_const",
            FixedOp::Add => "add",
            FixedOp::Reshape => "reshape",
            FixedOp::Truncate { .. } => "truncate",
            FixedOp::Relu => "relu",
            FixedOp::MaxPool { .. } => "max_pool",
            FixedOp::Square => "square",
        }
    }

    /// Number of inputs.
    pub fn arity(&self) -> usize {
        if matches!(self, FixedOp::Add) { 2 } else { 1 }
    }
}

/// One step of a program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// A name for logs and benchmarks (the graph node, with a suffix such as `.trunc`).
    pub name: String,
    /// The operation.
    pub op: FixedOp,
    /// Input values (all smaller than this step's value id).
    pub inputs: Vec<ValueId>,
    /// Output shape of one sample.
    pub shape: Vec<usize>,
    /// Fractional bits of the output.
    pub scale: u32,
}

/// A model lowered to ring operations (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedProgram {
    /// The ring and scale `f`.
    pub fixed: FixedPoint,
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
    /// The steps; step `i` defines value `i + 1`.
    pub steps: Vec<Step>,
}

/// Per-step statistics of a traced run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    /// The step's name.
    pub name: String,
    /// Largest absolute signed value of the step's output over the batch.
    pub max_abs: u64,
    /// Bits needed for that value with sign: `ceil(log2(max_abs + 1)) + 1`.
    pub bits_used: u32,
}

impl FixedProgram {
    /// The ring.
    pub fn ring(&self) -> Ring {
        self.fixed.ring
    }

    /// The output value id.
    pub fn output(&self) -> ValueId {
        self.steps.len()
    }

    /// Fractional bits of the output.
    pub fn output_scale(&self) -> u32 {
        self.steps.last().map_or(self.fixed.frac_bits, |s| s.scale)
    }

    /// Per-sample shape of the output.
    pub fn output_shape(&self) -> &[usize] {
        self.steps.last().map_or(&self.input_shape, |s| &s.shape)
    }

    /// Per-sample shape of a value.
    pub fn value_shape(&self, v: ValueId) -> &[usize] {
        if v == 0 {
            &self.input_shape
        } else {
            &self.steps[v - 1].shape
        }
    }

    /// Scale (fractional bits) of a value.
    pub fn value_scale(&self, v: ValueId) -> u32 {
        if v == 0 {
            self.fixed.frac_bits
        } else {
            self.steps[v - 1].scale
        }
    }

    /// For every value, the last step index + 1 (value id) that reads it.
    pub fn last_uses(&self) -> Vec<ValueId> {
        let mut last: Vec<ValueId> = (0..=self.steps.len()).collect();
        for (i, s) in self.steps.iter().enumerate() {
            for &v in &s.inputs {
                if v < last.len() {
                    last[v] = last[v].max(i + 1);
                }
            }
        }
        if let Some(l) = last.last_mut() {
            *l = usize::MAX;
        }
        last
    }

    /// Counts of steps per class `(linear, local, non-linear)`.
    pub fn class_counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for s in &self.steps {
            match s.op.class() {
                OpClass::Linear => c.0 += 1,
                OpClass::Local => c.1 += 1,
                OpClass::NonLinear => c.2 += 1,
            }
        }
        c
    }

    /// Checks the structure: references, arities, shapes and coefficient lengths
    /// (a deserialised program should be validated before use).
    pub fn validate(&self) -> Result<()> {
        let bad = |i: usize, msg: String| NnError::FixedPoint(format!("step {i}: {msg}"));
        if self.steps.is_empty() {
            return Err(NnError::FixedPoint(
                "a program needs at least one step".into(),
            ));
        }
        if self.input_shape.is_empty() || crate::graph::checked_numel(&self.input_shape).is_none() {
            return Err(NnError::FixedPoint(format!(
                "bad input shape {:?}",
                self.input_shape
            )));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if s.inputs.len() != s.op.arity() {
                return Err(bad(
                    i,
                    format!(
                        "{} takes {} inputs, has {}",
                        s.op.tag(),
                        s.op.arity(),
                        s.inputs.len()
                    ),
                ));
            }
            if s.inputs.iter().any(|&v| v > i) {
                return Err(bad(i, "reads a value that is not defined before it".into()));
            }
            let ins: Vec<&[usize]> = s.inputs.iter().map(|&v| self.value_shape(v)).collect();
            let want = exec::output_shape(&s.op, &ins).map_err(|m| bad(i, m))?;
            if want != s.shape {
                return Err(bad(
                    i,
                    format!("declared shape {:?}, the op gives {want:?}", s.shape),
                ));
            }
            if let FixedOp::Truncate { bits } = s.op
                && bits >= self.fixed.ring.bits()
            {
                return Err(bad(
                    i,
                    format!(
                        "truncation by {bits} bits in a {}-bit ring",
                        self.fixed.ring.bits()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Encodes a preprocessed float batch at scale `f`.
    pub fn encode_input(&self, x: &Tensor<f32>) -> Result<RingTensor> {
        crate::float::check_batch(x, &self.input_shape)?;
        let fp = self.fixed;
        Ok(x.map(|&v| fp.encode(v as f64)))
    }

    /// Decodes the output batch at the output scale.
    pub fn decode_output(&self, y: &RingTensor) -> Tensor<f32> {
        let (fp, s) = (self.fixed, self.output_scale());
        y.map(|&v| fp.decode_at(v, s) as f32)
    }

    /// Encodes, runs and decodes a preprocessed float batch.
    pub fn run_float(&self, x: &Tensor<f32>) -> Result<Tensor<f32>> {
        let y = self.run(&self.encode_input(x)?)?;
        Ok(self.decode_output(&y))
    }

    /// Predicted classes of raw samples (the model's preprocessing applied first),
    /// in chunks of `chunk` samples.
    pub fn predict(
        &self,
        preprocess: &crate::model::Preprocess,
        raw: &Tensor<f32>,
        chunk: usize,
    ) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(raw.batch());
        let chunk = chunk.max(1);
        let mut start = 0;
        while start < raw.batch() {
            let end = (start + chunk).min(raw.batch());
            let x = preprocess.apply(&raw.slice_batch(start..end))?;
            out.extend(argmax_signed(
                self.ring(),
                &self.run(&self.encode_input(&x)?)?,
            ));
            start = end;
        }
        Ok(out)
    }
}

/// Per-sample argmax of ring values compared as signed integers (first on ties).
pub fn argmax_signed(ring: Ring, y: &RingTensor) -> Vec<usize> {
    let n = y.sample_len().max(1);
    y.data()
        .chunks(n)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if ring.to_signed(v) > ring.to_signed(row[best]) {
                    best = i;
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests;
