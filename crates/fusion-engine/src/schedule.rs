//! The execution schedule: how the secure engine runs a [`PublicProgram`].
//!
//! Both parties derive the same schedule from the (public) program: a list of
//! [`Action`]s in step order, each defining one value, and the values to drop
//! after each action. Most steps map one to one onto an action of their
//! [`OpClass`]: linear steps run through HE, local steps on each share, and
//! non-linear steps through the backend's interactive protocols. Three rewrites save work without changing the
//! contract:
//!
//! * **ReLU after truncation is fused** ([`NonLinearOp::ReluTruncate`]). When the
//!   only reader of a `Truncate { bits }` value is a `Relu`, the pair runs as one
//!   `relu_truncate(x, bits)` (fusion-ot; Cheetah's "ReLU then truncate" with the
//!   truncation on the ReLU's flights). The reference computes
//!   `ReLU(floor(x / 2^bits))`, which equals `floor(ReLU(x) / 2^bits)` for every
//!   `x` (a negative `x` has a negative floor), so the fused protocol computes the
//!   same value up to the one-bit truncation error the contract allows: `0` for
//!   `x < 0`, else `floor(x / 2^bits)` or one less (so `0 <= x < 2^bits` may
//!   give `-1`), for every `x` the range contract `|x| < 2^(l-2)` allows (its
//!   comparison skips the truncated bits, which leaves out only the
//!   `2^bits` most negative ring elements). The truncated value itself is
//!   never materialised.
//! * **Truncation of values known to be non-negative** uses
//!   `truncate_nonneg` (valid for `0 <= x < 2^(l-1)`) instead of the bounded
//!   signed `truncate` (valid for `|x| < 2^(l-2)`): twice the headroom, same
//!   cost. A value is *known non-negative* if it is the output of an exact
//!   ReLU, or a max pool, window sum, global sum, reshape, sum or positive
//!   constant multiple of known non-negative values (assuming, as the whole
//!   fixed-point contract does, no overflow). Outputs of truncations and of
//!   fused ReLU-truncations are *not* known non-negative (the one-bit error can
//!   make them `-1`).
//!
//! * **Overlapping max pools are evaluated separably**
//!   ([`NonLinearOp::MaxPool::stages`], [`separable_stages`]): the maximum over
//!   each window's columns of every input row, then over each window's rows.
//!   The same maxima exactly (a window's in-bounds positions are its in-bounds
//!   rows times its in-bounds columns), with fewer pairwise comparisons when
//!   windows overlap: ResNet's `3 x 3` stride-2 pool takes 18,648 comparisons
//!   per channel instead of 24,753, in the same four tournament levels. The
//!   windows themselves stay the op's definition; backends that take maxima
//!   pair by pair (`cheetah`, `cryptflow2`) follow the stages, the garbled
//!   circuits evaluate the windows.
//!
//! Truncations by more than the OT protocols' range (`bits > l - 2`, or
//! `> l - 1` for non-negative inputs) fall back to the exact truncation.
//!
//! **Magnitudes.** The schedule also tracks a public bound `M_v` on `|v|` for
//! every value, from the engine's range contract (every value `|v| < 2^(l-2)`,
//! what [`crate::bound::range_analysis`] proves for a program) and the ops
//! that shrink it: a truncation by `b` of `|x| <= M` gives `|y| <= ceil(M /
//! 2^b) + 1` (the `+ 1` is the one-bit error), a fused ReLU-truncation
//! `-1 <= y <= max(1, floor(M / 2^b))`; ReLU, max pool and reshape keep `M`;
//! window and global sums multiply it by the window size, a constant multiple
//! by `|c|`, an addition adds the bounds; everything is capped at the
//! contract's `2^(l-2)`. A max pool and a ReLU get their inputs' bound as a
//! width in signed bits ([`NonLinearOp::MaxPool::input_bits`],
//! [`NonLinearOp::Relu::input_bits`]), so a backend can compare fewer bits:
//! after a ReLU-truncation by `f = 12` in `Z_2^37` the inputs fit in 25 bits,
//! and each comparison of a max pool reads 25 bits instead of 36; the ReLU
//! after a residual addition of two such values reads 26.
//! The bounds depend only on the public program, and on the widths a server
//! may announce ([`Schedule::with_bounds`], `ModelInfo::value_bits`: what its
//! range analysis proves for the input box), which cap them further; a fused
//! ReLU-truncation then gets its input's width
//! ([`NonLinearOp::ReluTruncate::input_bits`], e.g. 30 bits after mlp-mnist's
//! first layer), and a backend may compute it in a smaller ring.

use std::sync::Arc;

use fusion_nn::fixed::{OpClass, PublicOp, PublicProgram, ValueId};
use fusion_nn::kernels::{Window, window_for_each};

use crate::error::{SecureError, SecureResult};

/// A non-linear step as the backends' [`crate::backend::NonLinearLayers`]
/// receive it: the op vocabulary every backend implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonLinearOp {
    /// Exact ReLU.
    Relu {
        /// The inputs are known to fit in this many signed bits
        /// (`[-2^(k-1), 2^(k-1))`, from the schedule's magnitude tracking);
        /// `None`: nothing is known (the protocol must be exact for every
        /// ring element). A backend may compare fewer bits.
        input_bits: Option<u32>,
    },
    /// Fused `ReLU(x >> bits)`, see the module docs.
    ReluTruncate {
        /// The truncation's shift.
        bits: u32,
        /// The inputs are known to fit in this many signed bits, fewer than
        /// the range contract's `l - 1` (from a magnitude bound the server
        /// announced, [`Schedule::with_bounds`]); `None`: only the contract is
        /// known. A backend may compute in a smaller ring.
        input_bits: Option<u32>,
    },
    /// Truncation (arithmetic shift right).
    Truncate {
        /// The shift.
        bits: u32,
        /// Which protocol (what the input is known to satisfy).
        mode: TruncMode,
    },
    /// Max pool, with each output's in-bounds input positions of one sample.
    MaxPool {
        /// Windows of one sample (indices into the sample's input).
        windows: Arc<Vec<Vec<usize>>>,
        /// Elements of one input sample.
        in_len: usize,
        /// The inputs are known to fit in this many signed bits
        /// (`[-2^(k-1), 2^(k-1))`, from the schedule's magnitude tracking, see
        /// the module docs); `None`: only the range contract
        /// `|x| < 2^(l-2)` is known. A backend may compare fewer bits.
        input_bits: Option<u32>,
        /// How a backend that takes maxima pair by pair may evaluate the
        /// windows with fewer comparisons: stage after stage, each stage's
        /// windows indexing into the previous stage's output (the first
        /// stage's into the input); the last stage's outputs are the
        /// windows' maxima, in order. `None`: the windows directly. The
        /// schedule sets it for overlapping square windows, which are
        /// separable: a row pass, then a column pass ([`separable_stages`]).
        stages: Option<Arc<Vec<PoolStage>>>,
    },
    /// Square (the result is at twice the scale; a truncation follows).
    Square,
}

impl NonLinearOp {
    /// A short name for logs and errors.
    pub fn tag(&self) -> &'static str {
        match self {
            NonLinearOp::Relu { .. } => "relu",
            NonLinearOp::ReluTruncate { .. } => "relu_truncate",
            NonLinearOp::Truncate {
                mode: TruncMode::Signed,
                ..
            } => "truncate",
            NonLinearOp::Truncate {
                mode: TruncMode::NonNeg,
                ..
            } => "truncate_nonneg",
            NonLinearOp::Truncate {
                mode: TruncMode::Exact,
                ..
            } => "truncate_exact",
            NonLinearOp::MaxPool { .. } => "max_pool",
            NonLinearOp::Square => "square",
        }
    }

    /// The signed input width a ReLU's or max pool's comparison reads in
    /// `Z_2^l`: the schedule's bound `input_bits`, else the whole ring for a
    /// ReLU (`l`: exact for every element) and the range contract for a max
    /// pool (`l - 1`), clamped to what the protocols accept (`2..=l` and
    /// `..=l - 1`). `None` for the other ops.
    pub fn input_width(&self, l: u32) -> Option<u32> {
        match self {
            NonLinearOp::Relu { input_bits } => Some(input_bits.unwrap_or(l).max(2).min(l)),
            NonLinearOp::MaxPool { input_bits, .. } => Some(input_bits.unwrap_or(l - 1).min(l - 1)),
            _ => None,
        }
    }

    /// The stages in which a backend that takes maxima pair by pair
    /// evaluates a max pool: [`NonLinearOp::MaxPool::stages`] if set, else
    /// the windows in one stage, as `(windows of one sample, input elements
    /// per sample)`. Empty for the other ops.
    pub fn pool_stages(&self) -> Vec<(&[Vec<usize>], usize)> {
        match self {
            NonLinearOp::MaxPool {
                stages: Some(st), ..
            } => st
                .iter()
                .map(|s| (s.windows.as_slice(), s.in_len))
                .collect(),
            NonLinearOp::MaxPool {
                windows, in_len, ..
            } => vec![(windows.as_slice(), *in_len)],
            _ => Vec::new(),
        }
    }

    /// The max pool's windows over a whole chunk of `n` samples.
    pub fn batch_windows(&self, n: usize) -> Option<Vec<Vec<usize>>> {
        match self {
            NonLinearOp::MaxPool {
                windows, in_len, ..
            } => Some(batch_windows(windows, *in_len, n)),
            _ => None,
        }
    }
}

/// One stage of a max pool's evaluation ([`NonLinearOp::MaxPool::stages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStage {
    /// Windows of one sample, indices into the stage's input.
    pub windows: Vec<Vec<usize>>,
    /// Elements of the stage's input per sample.
    pub in_len: usize,
}

/// How an action is executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// A linear step whose coefficients the server holds
    /// ([`crate::backend::LinearLayers`]).
    Linear,
    /// Public linear map on each share ([`crate::domain::Domain::apply_local`]).
    Local,
    /// An interactive non-linear step ([`crate::backend::NonLinearLayers`]).
    NonLinear(NonLinearOp),
}

/// Which truncation protocol runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncMode {
    /// Bounded signed input, one-bit error.
    Signed,
    /// Known non-negative input, one-bit error.
    NonNeg,
    /// Any input, exact.
    Exact,
}

impl ActionKind {
    /// The op class (which meter phase the action belongs to).
    pub fn class(&self) -> OpClass {
        match self {
            ActionKind::Linear => OpClass::Linear,
            ActionKind::Local => OpClass::Local,
            ActionKind::NonLinear(_) => OpClass::NonLinear,
        }
    }

    /// A short name for logs.
    pub fn tag(&self) -> &'static str {
        match self {
            ActionKind::Linear => "linear",
            ActionKind::Local => "local",
            ActionKind::NonLinear(op) => op.tag(),
        }
    }
}

/// One action of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// What runs.
    pub kind: ActionKind,
    /// The program step whose op runs (for a fused ReLU-truncation, the
    /// truncation step).
    pub step: usize,
    /// The value the action defines.
    pub output: ValueId,
    /// The values it reads.
    pub inputs: Vec<ValueId>,
}

/// The schedule of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// Values that are dead after action `i`.
    pub drop_after: Vec<Vec<ValueId>>,
    /// The program's output value.
    pub output: ValueId,
    /// Number of ReLU-truncation fusions.
    pub fused: usize,
}

impl Schedule {
    /// The schedule of `program` (see the module docs).
    pub fn new(program: &PublicProgram) -> SecureResult<Self> {
        Self::with_bounds(program, &[])
    }

    /// The schedule of `program` when every value `v` is also known to fit
    /// in `value_bits[v]` signed bits (`|v| < 2^(value_bits[v] - 1)`; index
    /// `0` the input, `i + 1` step `i`'s output), as a server announces from
    /// its range analysis ([`crate::wire::ModelInfo::value_bits`]). Empty:
    /// nothing beyond the range contract, as [`Schedule::new`]. The bounds
    /// only narrow the magnitudes the schedule tracks, so the non-linear
    /// steps may compare fewer bits; a wrong bound makes results wrong, not
    /// the protocols less private. Errors if `value_bits` is neither empty
    /// nor one width in `1..=l` per value.
    pub fn with_bounds(program: &PublicProgram, value_bits: &[u32]) -> SecureResult<Self> {
        let ring = program.ring();
        let l = ring.bits();
        let n_values = program.steps.len() + 1;
        let output = program.output();
        // Readers of each value.
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n_values];
        for (i, s) in program.steps.iter().enumerate() {
            for &v in &s.inputs {
                readers
                    .get_mut(v)
                    .ok_or_else(|| SecureError::Malformed(format!("step {i} reads value {v}")))?
                    .push(i);
            }
        }
        if !value_bits.is_empty()
            && (value_bits.len() != n_values || value_bits.iter().any(|&b| b == 0 || b > l))
        {
            return Err(SecureError::Malformed(format!(
                "announced value bounds: {} widths for {n_values} values, each must be in 1..={l}",
                value_bits.len()
            )));
        }
        // The largest magnitude a width of `b` signed bits allows.
        let announced = |v: usize| {
            value_bits
                .get(v)
                .map_or(u128::MAX, |&b| (1u128 << (b - 1).min(126)) - 1)
        };
        let mut nonneg = vec![false; n_values];
        let cap = 1u128 << l.saturating_sub(2).min(126);
        let mut mag = vec![cap; n_values];
        mag[0] = cap.min(announced(0));
        let mut skip = vec![false; program.steps.len()];
        let mut actions = Vec::with_capacity(program.steps.len());
        let mut fused = 0;
        for (i, s) in program.steps.iter().enumerate() {
            if skip[i] {
                continue;
            }
            let out = i + 1;
            let all_nonneg = s.inputs.iter().all(|&v| nonneg[v]);
            mag[out] = magnitude(program, i, &mag).min(cap).min(announced(out));
            let kind = match (&s.op, s.op.class()) {
                (_, OpClass::Linear) => ActionKind::Linear,
                (PublicOp::Relu, _) => {
                    nonneg[out] = true;
                    let k = signed_bits(mag[s.inputs[0]], l);
                    ActionKind::NonLinear(NonLinearOp::Relu {
                        input_bits: (k < l).then_some(k),
                    })
                }
                (PublicOp::Truncate { bits }, _) => {
                    let bits = *bits;
                    let fusable = out != output
                        && readers[out].len() == 1
                        && matches!(program.steps[readers[out][0]].op, PublicOp::Relu)
                        && bits < l;
                    if fusable {
                        let r = readers[out][0];
                        skip[r] = true;
                        fused += 1;
                        mag[r + 1] = (mag[s.inputs[0]] >> bits)
                            .max(1)
                            .min(cap)
                            .min(announced(r + 1).max(1));
                        // At least 2 bits (a value known to be 0 fits in them too),
                        // what the protocols accept.
                        let k = signed_bits(mag[s.inputs[0]], l).max(2);
                        actions.push(Action {
                            kind: ActionKind::NonLinear(NonLinearOp::ReluTruncate {
                                bits,
                                input_bits: (k < l - 1).then_some(k),
                            }),
                            step: i,
                            output: r + 1,
                            inputs: s.inputs.clone(),
                        });
                        continue;
                    }
                    let mode = if all_nonneg && bits < l {
                        TruncMode::NonNeg
                    } else if bits + 2 <= l {
                        TruncMode::Signed
                    } else {
                        TruncMode::Exact
                    };
                    ActionKind::NonLinear(NonLinearOp::Truncate { bits, mode })
                }
                (PublicOp::MaxPool { .. }, _) => {
                    nonneg[out] = all_nonneg;
                    let k = signed_bits(mag[s.inputs[0]], l);
                    max_pool_kind(program, i, (k + 1 < l).then_some(k))?
                }
                (PublicOp::Square, _) => ActionKind::NonLinear(NonLinearOp::Square),
                (op, OpClass::Local) => {
                    nonneg[out] = all_nonneg
                        && match op {
                            PublicOp::MulConst { factor } => !ring.msb(*factor),
                            _ => true,
                        };
                    ActionKind::Local
                }
                (op, OpClass::NonLinear) => {
                    return Err(SecureError::Config(format!(
                        "no secure protocol for `{}`",
                        op.tag()
                    )));
                }
            };
            actions.push(Action {
                kind,
                step: i,
                output: out,
                inputs: s.inputs.clone(),
            });
        }
        // Liveness over the actions.
        let mut last = vec![None::<usize>; n_values];
        for (a, act) in actions.iter().enumerate() {
            for &v in &act.inputs {
                last[v] = Some(a);
            }
        }
        let mut drop_after = vec![Vec::new(); actions.len()];
        for (v, l) in last.iter().enumerate() {
            if let Some(a) = *l
                && v != output
            {
                drop_after[a].push(v);
            }
        }
        if !actions.iter().any(|a| a.output == output) {
            return Err(SecureError::Config(
                "the schedule does not compute the program's output".into(),
            ));
        }
        Ok(Schedule {
            actions,
            drop_after,
            output,
            fused,
        })
    }

    /// Number of actions of each class `(linear, local, non-linear)`.
    pub fn class_counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for a in &self.actions {
            match a.kind.class() {
                OpClass::Linear => c.0 += 1,
                OpClass::Local => c.1 += 1,
                OpClass::NonLinear => c.2 += 1,
            }
        }
        c
    }
}

/// The bound on `|y|` for step `i`'s output `y` from its inputs' bounds
/// `mag` (uncapped; see the module docs). Non-linear steps other than ReLU,
/// truncation and max pool, and linear steps, get only the contract.
fn magnitude(program: &PublicProgram, i: usize, mag: &[u128]) -> u128 {
    let s = &program.steps[i];
    let x = mag[s.inputs[0]];
    let ring = program.ring();
    match &s.op {
        PublicOp::Relu | PublicOp::MaxPool { .. } | PublicOp::Reshape => x,
        PublicOp::Truncate { bits } => {
            let b = (*bits).min(127);
            x.div_ceil(1u128 << b).saturating_add(1)
        }
        PublicOp::SumPool { kernel, .. } => x.saturating_mul((kernel * kernel) as u128),
        PublicOp::GlobalSumPool => {
            let shape = program.value_shape(s.inputs[0]);
            let hw: usize = shape.iter().skip(1).product();
            x.saturating_mul(hw as u128)
        }
        PublicOp::MulConst { factor } => {
            x.saturating_mul(u128::from(ring.to_signed(*factor).unsigned_abs()))
        }
        PublicOp::Add => s
            .inputs
            .iter()
            .fold(0u128, |t, &v| t.saturating_add(mag[v])),
        PublicOp::Dense { .. }
        | PublicOp::Conv2d { .. }
        | PublicOp::ChannelAffine { .. }
        | PublicOp::Square => u128::MAX,
    }
}

/// The signed width `k` with `[-m, m]` inside `[-2^(k-1), 2^(k-1))`, at most
/// `l`.
fn signed_bits(m: u128, l: u32) -> u32 {
    fusion_nn::calibrate::bits_of_wide(m).min(l)
}

fn max_pool_kind(
    program: &PublicProgram,
    i: usize,
    input_bits: Option<u32>,
) -> SecureResult<ActionKind> {
    let s = &program.steps[i];
    let PublicOp::MaxPool {
        kernel,
        stride,
        padding,
    } = s.op
    else {
        return Err(SecureError::Config("not a max pool".into()));
    };
    let shape = program.value_shape(s.inputs[0]);
    let [c, h, w] = *shape else {
        return Err(SecureError::Malformed(format!(
            "max pool input of shape {shape:?}"
        )));
    };
    let g = Window::new(c, h, w, kernel, stride, padding)
        .ok_or_else(|| SecureError::Malformed("max pool window does not fit".into()))?;
    let mut windows: Vec<Vec<usize>> = vec![Vec::with_capacity(kernel * kernel); c * g.ho * g.wo];
    window_for_each(&g, |o, x| windows[o].push(x));
    if windows.iter().any(Vec::is_empty) {
        return Err(SecureError::Malformed(
            "max pool window without in-bounds positions".into(),
        ));
    }
    let stages = separable_stages(&g).filter(|st| {
        let pairs = |ws: &[Vec<usize>]| ws.iter().map(|w| w.len() - 1).sum::<usize>();
        st.iter().map(|s| pairs(&s.windows)).sum::<usize>() < pairs(&windows)
    });
    Ok(ActionKind::NonLinear(NonLinearOp::MaxPool {
        windows: Arc::new(windows),
        in_len: c * h * w,
        input_bits,
        stages: stages.map(Arc::new),
    }))
}

/// A square-window max pool as two passes: the maximum over each window's
/// in-bounds columns of every input row a window reads (the row pass), then
/// over each window's in-bounds rows of those (the column pass). A window's
/// in-bounds positions are its in-bounds rows times its in-bounds columns,
/// so the result is every window's maximum, exactly. With `k x k` windows
/// and stride `s < k` this takes about `(k - 1)(s + 1)` comparisons per
/// output instead of `k^2 - 1` (ResNet's `3 x 3` stride-2 pool: 6 instead
/// of 8) in the same number of tournament levels for `k = 3`. `None` if a
/// window has no in-bounds position.
pub fn separable_stages(g: &Window) -> Option<Vec<PoolStage>> {
    let rows_of =
        |oh: usize| -> Vec<usize> { (0..g.k).filter_map(|i| g.coord(oh, i, g.h)).collect() };
    let cols_of =
        |ow: usize| -> Vec<usize> { (0..g.k).filter_map(|j| g.coord(ow, j, g.w)).collect() };
    // The input rows some window reads, and their index in the row pass.
    let mut row_index = vec![None; g.h];
    let mut used = 0;
    for oh in 0..g.ho {
        for r in rows_of(oh) {
            if row_index[r].is_none() {
                row_index[r] = Some(used);
                used += 1;
            }
        }
    }
    let mut rows_pass = vec![Vec::new(); g.c * used * g.wo];
    for c in 0..g.c {
        for (r, ri) in row_index.iter().enumerate() {
            let Some(ri) = *ri else { continue };
            for ow in 0..g.wo {
                let w = cols_of(ow);
                if w.is_empty() {
                    return None;
                }
                rows_pass[(c * used + ri) * g.wo + ow] =
                    w.iter().map(|&x| (c * g.h + r) * g.w + x).collect();
            }
        }
    }
    let mut cols_pass = Vec::with_capacity(g.c * g.ho * g.wo);
    for c in 0..g.c {
        for oh in 0..g.ho {
            let rows = rows_of(oh);
            if rows.is_empty() {
                return None;
            }
            for ow in 0..g.wo {
                cols_pass.push(
                    rows.iter()
                        .filter_map(|&r| row_index[r])
                        .map(|ri| (c * used + ri) * g.wo + ow)
                        .collect(),
                );
            }
        }
    }
    Some(vec![
        PoolStage {
            windows: rows_pass,
            in_len: g.c * g.h * g.w,
        },
        PoolStage {
            windows: cols_pass,
            in_len: g.c * used * g.wo,
        },
    ])
}

/// The windows of a batch of `n` samples (sample `s`'s windows shifted by `s in_len`).
pub fn batch_windows(windows: &[Vec<usize>], in_len: usize, n: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(windows.len() * n);
    for s in 0..n {
        let off = s * in_len;
        out.extend(windows.iter().map(|w| w.iter().map(|&i| i + off).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_nn::eval::default_fixed_point;
    use fusion_nn::fixed::lower;

    fn schedule(name: &str) -> Schedule {
        let m = fusion_nn::zoo::build(name, 1).expect("zoo");
        Schedule::new(&lower(&m, default_fixed_point()).expect("lower").public()).expect("schedule")
    }

    #[test]
    fn cnn_fuses_every_truncate_relu_pair_and_keeps_pool_truncations_signed() {
        let s = schedule("cnn-mnist");
        // conv/relu twice, fc1/relu: three fusions.
        assert_eq!(s.fused, 3);
        let tags: Vec<&str> = s.actions.iter().map(|a| a.kind.tag()).collect();
        assert_eq!(
            tags,
            [
                "linear",
                "relu_truncate",
                "local",
                "truncate",
                "linear",
                "relu_truncate",
                "local",
                "truncate",
                "local",
                "linear",
                "relu_truncate",
                "linear"
            ]
        );
        assert_eq!(s.actions.last().map(|a| a.output), Some(s.output));
    }

    #[test]
    fn truncation_of_exact_relu_outputs_is_nonneg() {
        // Relu -> avgpool: the pool's truncation reads exact ReLU outputs.
        let mut g = fusion_nn::graph::GraphBuilder::new(vec![2, 4, 4]);
        let x = g.input();
        let x = g.relu("r", x);
        let x = g.avg_pool("p", x, 2, 2, 0);
        let x = g.flatten("f", x);
        g.dense("d", x, 3);
        let graph = g.finish().expect("graph");
        let meta = fusion_nn::zoo::meta("t", &graph).expect("meta");
        let m = fusion_nn::model::Model::init(meta, graph, 3).expect("init");
        let s =
            Schedule::new(&lower(&m, default_fixed_point()).expect("lower").public()).expect("s");
        let tags: Vec<&str> = s.actions.iter().map(|a| a.kind.tag()).collect();
        assert_eq!(
            tags,
            ["relu", "local", "truncate_nonneg", "local", "linear"]
        );
        // Every value but the output is dropped exactly once.
        let dropped: usize = s.drop_after.iter().map(Vec::len).sum();
        assert_eq!(dropped, 5);
    }

    /// The `input_bits` of the schedule's ReLUs or max pools (`tag`), in order.
    fn input_bits(s: &Schedule, tag: &str) -> Vec<Option<u32>> {
        s.actions
            .iter()
            .filter_map(|a| match &a.kind {
                ActionKind::NonLinear(
                    op @ (NonLinearOp::Relu { input_bits }
                    | NonLinearOp::MaxPool { input_bits, .. }),
                ) if op.tag() == tag => Some(*input_bits),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn max_pools_and_relus_after_a_truncation_know_their_inputs_fit_in_fewer_bits() {
        // lenet: conv -> truncate by 12 -> max pool -> ReLU (the lowering runs
        // the ReLU after the pool), twice, in Z_2^37. The truncation's output
        // is below 2^35 / 2^12 + 1 = 2^23 + 1: 25 signed bits, for the pool and
        // for the ReLU after it.
        let s = schedule("lenet");
        assert_eq!(input_bits(&s, "max_pool"), [Some(25), Some(25)]);
        assert_eq!(input_bits(&s, "relu"), [Some(25), Some(25)]);
        // ResNet50's stem the same way; its other unfused ReLUs read a
        // residual sum: a fused output plus the truncated last convolution of
        // the block (26 bits), growing by one such term per block of a stage,
        // never the whole ring.
        let r = schedule("resnet50");
        assert_eq!(input_bits(&r, "max_pool"), [Some(25)]);
        let relu = input_bits(&r, "relu");
        assert_eq!(relu.len(), 17, "the stem's and one per bottleneck block");
        assert_eq!(relu[0], Some(25));
        assert!(
            relu[1..]
                .iter()
                .all(|k| k.is_some_and(|k| (26..=29).contains(&k))),
            "{relu:?}"
        );
    }

    #[test]
    fn a_max_pool_of_an_exact_relu_of_a_linear_output_has_only_the_contract() {
        let mut g = fusion_nn::graph::GraphBuilder::new(vec![2, 4, 4]);
        let x = g.input();
        let x = g.relu("r", x);
        let x = g.max_pool("p", x, 2, 2, 0);
        let x = g.avg_pool("a", x, 2, 2, 0);
        let x = g.max_pool("q", x, 1, 1, 0);
        let x = g.flatten("f", x);
        g.dense("d", x, 3);
        let graph = g.finish().expect("graph");
        let meta = fusion_nn::zoo::meta("t", &graph).expect("meta");
        let m = fusion_nn::model::Model::init(meta, graph, 3).expect("init");
        let s =
            Schedule::new(&lower(&m, default_fixed_point()).expect("lower").public()).expect("s");
        // The input is only known to be below 2^(l-2): the first pool reads
        // l - 1 bits (None). The average pool's window sum (4 x 2^35, capped
        // at 2^35) truncated by 2 bits is below 2^33 + 1: 35 signed bits.
        assert_eq!(input_bits(&s, "max_pool"), [None, Some(35)]);
    }

    #[test]
    fn announced_bounds_narrow_the_fused_steps_after_bounded_layers_only() {
        let m = fusion_nn::zoo::build("cnn-mnist", 1).expect("zoo");
        let p = lower(&m, default_fixed_point()).expect("lower");
        let public = p.public();
        let l = public.ring().bits();
        let fused = |s: &Schedule| -> Vec<Option<u32>> {
            s.actions
                .iter()
                .filter_map(|a| match a.kind {
                    ActionKind::NonLinear(NonLinearOp::ReluTruncate { input_bits, .. }) => {
                        Some(input_bits)
                    }
                    _ => None,
                })
                .collect()
        };
        // Without bounds only the contract is known.
        assert_eq!(fused(&Schedule::new(&public).expect("schedule")), [None; 3]);
        // conv1 fits in 20 bits, conv2 in 30; fc1 is announced at the
        // contract (36 bits, no narrowing) and the rest as unknown (l).
        let mut bits = vec![l; public.steps.len() + 1];
        let at = |name: &str| {
            1 + public
                .steps
                .iter()
                .position(|s| s.name == name)
                .expect(name)
        };
        bits[at("conv1")] = 20;
        bits[at("conv2")] = 30;
        bits[at("fc1")] = l - 1;
        let s = Schedule::with_bounds(&public, &bits).expect("schedule");
        assert_eq!(fused(&s), [Some(20), Some(30), None]);
        // A layer whose outputs are all 0 (width 1) still gets a width the
        // protocols accept.
        let mut zero = bits.clone();
        zero[at("conv1")] = 1;
        let s0 = Schedule::with_bounds(&public, &zero).expect("schedule");
        assert_eq!(fused(&s0)[0], Some(2));
        // The same actions otherwise.
        let tags = |s: &Schedule| s.actions.iter().map(|a| a.kind.tag()).collect::<Vec<_>>();
        assert_eq!(tags(&s), tags(&Schedule::new(&public).expect("schedule")));
        // Widths a peer could send that make no sense are refused.
        for bad in [
            vec![20; 3],
            {
                let mut b = bits.clone();
                b[1] = 0;
                b
            },
            {
                let mut b = bits.clone();
                b[2] = l + 1;
                b
            },
        ] {
            assert!(matches!(
                Schedule::with_bounds(&public, &bad),
                Err(SecureError::Malformed(_))
            ));
        }
    }

    #[test]
    fn batch_windows_shift_per_sample() {
        let w = vec![vec![0, 1], vec![2]];
        assert_eq!(
            batch_windows(&w, 3, 2),
            vec![vec![0, 1], vec![2], vec![3, 4], vec![5]]
        );
    }

    /// The maxima of `x` over `windows`.
    fn maxima(x: &[i64], windows: &[Vec<usize>]) -> Vec<i64> {
        windows
            .iter()
            .map(|w| w.iter().map(|&i| x[i]).max().expect("non-empty window"))
            .collect()
    }

    #[test]
    fn separable_max_pool_stages_give_every_windows_maximum() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(5);
        for (h, w, k, s, p) in [
            (112, 112, 3, 2, 1),
            (8, 8, 3, 1, 1),
            (7, 9, 3, 2, 0),
            (9, 6, 5, 2, 2),
            (10, 10, 4, 3, 1),
            (6, 6, 2, 2, 0),
            (5, 7, 3, 3, 0),
        ] {
            let c = 2;
            let g = Window::new(c, h, w, k, s, p).expect("fits");
            let mut direct = vec![Vec::new(); c * g.ho * g.wo];
            window_for_each(&g, |o, i| direct[o].push(i));
            let stages = separable_stages(&g).expect("separable");
            assert_eq!(stages[0].in_len, c * h * w);
            assert_eq!(stages[1].in_len, stages[0].windows.len());
            let x: Vec<i64> = (0..c * h * w)
                .map(|_| rng.random_range(-1000..1000))
                .collect();
            let rows = maxima(&x, &stages[0].windows);
            assert_eq!(
                maxima(&rows, &stages[1].windows),
                maxima(&x, &direct),
                "{h}x{w}, k {k}, s {s}, p {p}"
            );
        }
    }

    #[test]
    fn overlapping_max_pools_are_evaluated_separably_and_others_directly() {
        let pairs = |ws: &[Vec<usize>]| ws.iter().map(|w| w.len() - 1).sum::<usize>();
        let r = schedule("resnet50");
        let ops: Vec<&NonLinearOp> = r
            .actions
            .iter()
            .filter_map(|a| match &a.kind {
                ActionKind::NonLinear(op @ NonLinearOp::MaxPool { .. }) => Some(op),
                _ => None,
            })
            .collect();
        let [op] = ops[..] else {
            panic!("resnet50 has {} max pools", ops.len())
        };
        let NonLinearOp::MaxPool { windows, .. } = op else {
            unreachable!()
        };
        let stages = op.pool_stages();
        assert_eq!(stages.len(), 2);
        // 3x3 stride 2 over 112 x 112: 18,648 comparisons per channel
        // instead of 24,753.
        let separable: usize = stages.iter().map(|(w, _)| pairs(w)).sum();
        assert_eq!((separable / 64, pairs(windows) / 64), (18_648, 24_753));
        // Non-overlapping 2x2 windows gain nothing: evaluated directly.
        let l = schedule("lenet");
        for a in &l.actions {
            if let ActionKind::NonLinear(op @ NonLinearOp::MaxPool { .. }) = &a.kind {
                assert!(matches!(op, NonLinearOp::MaxPool { stages: None, .. }));
                assert_eq!(op.pool_stages().len(), 1);
            }
        }
    }
}
