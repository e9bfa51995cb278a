//! A worst-case bound on how far the secure engine's values can be from the
//! plaintext fixed-point interpreter's.
//!
//! The secure engine runs the same program as [`FixedProgram::run`], with one
//! difference: every secure truncation returns the reference's floor **or one
//! less**. Linear, local, ReLU and max-pool steps are exact on shares; so the
//! only source of deviation is truncation, and it propagates as follows
//! (`d` = largest absolute deviation of an input value, in units of its last
//! bit, over all elements and samples):
//!
//! | step | output deviation |
//! |---|---|
//! | input | 0 |
//! | dense / conv, integer weights `w` | `max_o sum_i |w_oi| d` |
//! | channel affine, scales `s` | `max_c |s_c| d` |
//! | truncate by `b` (also fused with a ReLU) | `ceil(d / 2^b) + 1` |
//! | ReLU, max pool, reshape | `d` |
//! | window sum over `k x k` / global sum over `H W` | `k^2 d` / `H W d` |
//! | constant multiple `c` | `|c| d` |
//! | add | `d_1 + d_2` |
//! | square, reference magnitude `M` | `(2M + d) d` |
//!
//! (For the truncation: `|floor(a'/2^b) - floor(a/2^b)| <= ceil(|a' - a| / 2^b)`,
//! plus one for the secure protocol's error.) The bound is worst-case; the
//! observed deviations are a few units of the last bit.

use fusion_nn::calibrate::{self, RangeAnalysis};
use fusion_nn::fixed::{FixedOp, FixedProgram};

use crate::error::SecureResult;

/// Whether the **secure engine's** values provably stay below `2^(l-2)` for
/// preprocessed inputs `|x| <= input_bound`: the reference's worst-case
/// magnitudes ([`calibrate::magnitude_bounds`]) widened by the engine's
/// deviation from the reference ([`deviation_bound`]). See
/// `fusion_nn::calibrate` for what "proven" covers.
pub fn range_analysis(program: &FixedProgram, input_bound: f64) -> SecureResult<RangeAnalysis> {
    let input = calibrate::encoded_input_bound(program, input_bound);
    let magnitudes: Vec<u64> = calibrate::magnitude_bounds(program, input)
        .into_iter()
        .map(|m| m.min(u128::from(u64::MAX)) as u64)
        .collect();
    let slack = deviation_bound(program, &magnitudes);
    Ok(calibrate::analyse_range(program, input_bound, &slack)?)
}

/// The bound of [`deviation_bound`] on the program's output, in score units
/// (`ulps / 2^scale`), for any input: `None` when it is not finite for all
/// inputs (a square, whose bound needs the input's magnitude, or a
/// saturated bound). What a server announces as
/// [`crate::wire::ModelInfo::output_error_bound`].
pub fn output_error_bound(program: &FixedProgram) -> Option<f64> {
    if program
        .steps
        .iter()
        .any(|s| matches!(s.op, FixedOp::Square))
    {
        return None;
    }
    let ulps = deviation_bound(program, &[])[program.output()];
    (ulps < u64::MAX).then(|| ulps as f64 / 2f64.powi(program.output_scale() as i32))
}

fn abs_sum(ring: fusion_core::ring::Ring, w: &[u64]) -> u128 {
    w.iter()
        .map(|&v| u128::from(ring.to_signed(v).unsigned_abs()))
        .sum()
}

/// Per-value bound (value id index) on `|secure - reference|`, in units of
/// the value's last bit, for a program with its coefficients. `max_abs[v]` is
/// the largest absolute signed reference value of value `v` (only read for
/// the inputs of squares). Saturates at `u64::MAX`.
pub fn deviation_bound(program: &FixedProgram, max_abs: &[u64]) -> Vec<u64> {
    let ring = program.ring();
    let mut d = vec![0u128; program.steps.len() + 1];
    let sat = |v: u128| v.min(u128::from(u64::MAX));
    for (i, s) in program.steps.iter().enumerate() {
        let x = d[s.inputs[0]];
        let out = match &s.op {
            FixedOp::Dense(op) => (0..op.out_features)
                .map(|o| {
                    let row = &op.weight[o * op.in_features..(o + 1) * op.in_features];
                    abs_sum(ring, row)
                })
                .max()
                .unwrap_or(0)
                .saturating_mul(x),
            FixedOp::Conv2d(op) => {
                let per = op.in_channels * op.kernel * op.kernel;
                op.weight
                    .chunks(per.max(1))
                    .map(|f| abs_sum(ring, f))
                    .max()
                    .unwrap_or(0)
                    .saturating_mul(x)
            }
            FixedOp::ChannelAffine(op) => op
                .scale
                .iter()
                .map(|&v| u128::from(ring.to_signed(v).unsigned_abs()))
                .max()
                .unwrap_or(0)
                .saturating_mul(x),
            FixedOp::Truncate { bits } => x.div_ceil(1u128 << bits) + 1,
            FixedOp::Relu | FixedOp::MaxPool { .. } | FixedOp::Reshape => x,
            FixedOp::SumPool { kernel, .. } => x.saturating_mul((kernel * kernel) as u128),
            FixedOp::GlobalSumPool => {
                let shape = program.value_shape(s.inputs[0]);
                let hw: usize = shape.iter().skip(1).product();
                x.saturating_mul(hw as u128)
            }
            FixedOp::MulConst { factor } => {
                x.saturating_mul(u128::from(ring.to_signed(*factor).unsigned_abs()))
            }
            FixedOp::Add => x.saturating_add(d[s.inputs[1]]),
            FixedOp::Square => {
                let m = u128::from(max_abs.get(s.inputs[0]).copied().unwrap_or(u64::MAX));
                m.saturating_mul(2).saturating_add(x).saturating_mul(x)
            }
        };
        d[i + 1] = sat(out);
    }
    d.into_iter().map(|v| sat(v) as u64).collect()
}
