//! Calibration: how much of the ring a model's fixed-point values use on a set
//! of samples, per layer, and the choice of the fractional bits `f`.
//!
//! For a model, a fixed-point format `(l, f)` and raw calibration samples,
//! [`calibrate`] reports for the encoded input and for every step of the
//! lowered [`FixedProgram`]:
//!
//! * the largest `|value|` of the fixed-point engine (decoded at the step's
//!   scale), and the float engine's largest `|value|` of the graph node the step
//!   stands for (none for intermediate steps such as window sums);
//! * the bits the signed ring value needs, and the **headroom** `l - bits`: how
//!   many doublings of that largest value the ring still holds. A negative
//!   headroom means the value wraps around (a silently wrong result).
//!
//! The fixed-point values are measured by running the program lowered over
//! `Z_{2^64}` with the same `f`: without overflow, the ring width does not change
//! a single step's result (products, sums and arithmetic shifts of the signed
//! values are the same), so these are exactly the values the engine over
//! `Z_{2^l}` computes, or the values it should have computed where it
//! overflows. The weights are also lowered over `Z_{2^l}` itself, which fails
//! with [`NnError::FixedPoint`] if a coefficient does not fit.
//!
//! [`choose_frac_bits`] tries `f` from the largest the ring allows
//! (`2f + 2 <= l`) downwards and returns the first whose smallest headroom is
//! at least the margin; [`Calibration::check`] tells, naming the layer, why a
//! given format is refused.
//!
//! **Range safety** (the same module, for serving). Calibration measures; it
//! does not prove. [`magnitude_bounds`] proves, for every value of a lowered
//! program, a bound on `|value|` that holds for **every** input whose encoded
//! entries are at most a given magnitude (interval propagation of the
//! worst case through each step, table below). [`RangeAnalysis`] compares
//! those bounds with the ring: the secure engine's bounded-signed truncation
//! needs `|x| < 2^(l-2)` (fusion-ot `truncate`), and this module asks the same
//! of every value, so a value within its bound never wraps mod `2^l` and
//! never breaks a protocol's precondition. Where the worst case does not fit,
//! the guarantee is only empirical: [`sample_peaks`] measures, per sample, the
//! largest value the program produces (the wrap rate of a test set).
//!
//! | step | worst-case `|output|` from input bound `M` |
//! |---|---|
//! | dense / conv | `max_o (sum_i |w_oi| M + |b_o|)` |
//! | channel affine | `max_c (|s_c| M + |t_c|)` |
//! | truncate by `b` | `ceil(M / 2^b)` |
//! | ReLU, max pool, reshape | `M` |
//! | window sum `k x k` / global sum over `H W` | `k^2 M` / `H W M` |
//! | constant multiple `c` | `|c| M` |
//! | add | `M_1 + M_2` |
//! | square | `M^2` |

use fusion_core::ring::{FixedPoint, Ring};
use serde::Serialize;

use crate::error::{NnError, Result};
use crate::fixed::{FixedOp, FixedProgram, lower};
use crate::float;
use crate::graph::Op;
use crate::model::Model;
use crate::tensor::Tensor;

/// Default headroom margin: the calibration maximum may double twice on unseen inputs.
pub const DEFAULT_MARGIN_BITS: u32 = 2;
/// Smallest `f` [`choose_frac_bits`] considers.
pub const MIN_FRAC_BITS: u32 = 6;
/// Samples per engine call.
const CHUNK: usize = 128;

/// The range of one value of the program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRange {
    /// The step's name (`"input"` for the encoded input).
    pub step: String,
    /// The step's operation (its tag).
    pub op: &'static str,
    /// Per-sample shape.
    pub shape: Vec<usize>,
    /// Fractional bits of the value.
    pub scale: u32,
    /// Largest `|value|` of the fixed-point engine, decoded at `scale`.
    pub fixed_max_abs: f64,
    /// Largest `|value|` of the float engine for the graph node this step stands for.
    pub float_max_abs: Option<f64>,
    /// Bits the largest signed ring value needs (with its sign).
    pub bits: u32,
    /// `l - bits` (negative: overflow).
    pub headroom_bits: i64,
}

/// Ranges of every value over a calibration set, for one format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Ring bits `l`.
    pub ring_bits: u32,
    /// Fractional bits `f`.
    pub frac_bits: u32,
    /// Calibration samples.
    pub samples: usize,
    /// The encoded input, then every step of the program.
    pub ranges: Vec<StepRange>,
}

impl Calibration {
    /// The value with the least headroom.
    pub fn tightest(&self) -> Option<&StepRange> {
        self.ranges.iter().min_by_key(|r| r.headroom_bits)
    }

    /// The smallest headroom over all values.
    pub fn min_headroom(&self) -> i64 {
        self.tightest().map_or(i64::MAX, |r| r.headroom_bits)
    }

    /// `Ok` if every value has at least `margin` bits of headroom, else a
    /// [`NnError::Calibration`] naming the tightest value.
    pub fn check(&self, margin: u32) -> Result<()> {
        match self.tightest() {
            Some(r) if r.headroom_bits < i64::from(margin) => Err(NnError::Calibration(format!(
                "Z_2^{} with f = {}: `{}` ({}) reaches |{:.4}| over {} calibration samples, which needs {} bits: headroom {} bits, less than the required margin of {margin} (use a larger ring or fewer fractional bits)",
                self.ring_bits,
                self.frac_bits,
                r.step,
                r.op,
                r.fixed_max_abs,
                self.samples,
                r.bits,
                r.headroom_bits
            ))),
            _ => Ok(()),
        }
    }

    /// A table, one line per value.
    pub fn render(&self) -> String {
        let mut s = format!(
            "  {:<28} {:<15} {:>5} {:>12} {:>12} {:>5} {:>8}\n",
            "value", "op", "scale", "float max", "fixed max", "bits", "headroom"
        );
        for r in &self.ranges {
            s.push_str(&format!(
                "  {:<28} {:<15} {:>5} {:>12} {:>12.4} {:>5} {:>8}\n",
                r.step,
                r.op,
                r.scale,
                r.float_max_abs
                    .map_or("-".to_string(), |v| format!("{v:.4}")),
                r.fixed_max_abs,
                r.bits,
                r.headroom_bits
            ));
        }
        s
    }
}

fn bits_of(max_abs: u64) -> u32 {
    65 - max_abs.leading_zeros().min(64)
}

/// Largest `|value|` of every graph node with the float engine over `raw`.
pub fn float_ranges(model: &Model, raw: &Tensor<f32>) -> Result<Vec<f64>> {
    let mut max = vec![0f64; model.graph.nodes.len()];
    let mut start = 0;
    while start < raw.batch() {
        let end = (start + CHUNK).min(raw.batch());
        let x = model.meta.preprocess.apply(&raw.slice_batch(start..end))?;
        for (m, v) in max.iter_mut().zip(float::forward_all(model, &x)?) {
            for &e in v.data() {
                *m = m.max(f64::from(e.abs()));
            }
        }
        start = end;
    }
    Ok(max)
}

/// For every step of `program`, the graph node whose value it stands for
/// (`None` for window sums). A convolution whose only consumer is a batch norm
/// stands for the batch norm's output (the lowering folds them).
fn step_nodes(model: &Model, program: &FixedProgram) -> Vec<Option<usize>> {
    let g = &model.graph;
    let consumers = g.consumers();
    program
        .steps
        .iter()
        .map(|s| {
            let base = [".trunc", ".div", ".scale"]
                .iter()
                .find_map(|suf| s.name.strip_suffix(suf))
                .unwrap_or(&s.name);
            let id = g.nodes.iter().position(|n| n.name == base)?;
            if let (Op::Conv2d { .. }, [bn]) = (&g.nodes[id].op, consumers[id].as_slice())
                && matches!(g.nodes[*bn].op, Op::BatchNorm2d { .. })
            {
                return Some(*bn);
            }
            Some(id)
        })
        .collect()
}

/// Ranges of the input and of every step for `fixed` over raw samples, given
/// the float ranges of [`float_ranges`] (see the module doc).
pub fn calibrate_with(
    model: &Model,
    fixed: FixedPoint,
    raw: &Tensor<f32>,
    float_max: &[f64],
) -> Result<Calibration> {
    if raw.batch() == 0 {
        return Err(NnError::Calibration("no calibration samples".into()));
    }
    if raw.sample_shape() != model.graph.input_shape.as_slice() {
        return Err(NnError::InputShape {
            expected: model.graph.input_shape.clone(),
            found: raw.shape().to_vec(),
        });
    }
    let l = fixed.ring.bits();
    let f = fixed.frac_bits;
    // The weights must fit the target ring.
    lower(model, fixed)?;
    let wide_ring = Ring::new(64).map_err(|e| NnError::InvalidArgument(e.to_string()))?;
    let wide =
        FixedPoint::new(wide_ring, f).map_err(|e| NnError::InvalidArgument(e.to_string()))?;
    let program = lower(model, wide)?;
    let mut step_max = vec![0u64; program.steps.len()];
    let mut input_max = 0u64;
    let mut start = 0;
    while start < raw.batch() {
        let end = (start + CHUNK).min(raw.batch());
        let x = model.meta.preprocess.apply(&raw.slice_batch(start..end))?;
        let enc = program.encode_input(&x)?;
        for &v in enc.data() {
            input_max = input_max.max(wide_ring.to_signed(v).unsigned_abs());
        }
        let (_, stats) = program.run_traced(&enc)?;
        for (m, s) in step_max.iter_mut().zip(stats) {
            *m = (*m).max(s.max_abs);
        }
        start = end;
    }
    let nodes = step_nodes(model, &program);
    let range = |step: String, op: &'static str, shape: Vec<usize>, scale: u32, max: u64, fl| {
        let bits = bits_of(max);
        StepRange {
            step,
            op,
            shape,
            scale,
            fixed_max_abs: max as f64 / (2f64).powi(scale as i32),
            float_max_abs: fl,
            bits,
            headroom_bits: i64::from(l) - i64::from(bits),
        }
    };
    let mut ranges = vec![range(
        "input".into(),
        "input",
        model.graph.input_shape.clone(),
        f,
        input_max,
        float_max.first().copied(),
    )];
    for ((s, &m), node) in program.steps.iter().zip(&step_max).zip(nodes) {
        let fl = node.and_then(|id| float_max.get(id).copied());
        let fl = if s.name.ends_with(".sum") { None } else { fl };
        ranges.push(range(
            s.name.clone(),
            s.op.tag(),
            s.shape.clone(),
            s.scale,
            m,
            fl,
        ));
    }
    Ok(Calibration {
        ring_bits: l,
        frac_bits: f,
        samples: raw.batch(),
        ranges,
    })
}

/// Ranges of the input and of every step for `fixed` over raw samples.
pub fn calibrate(model: &Model, fixed: FixedPoint, raw: &Tensor<f32>) -> Result<Calibration> {
    let float_max = float_ranges(model, raw)?;
    calibrate_with(model, fixed, raw, &float_max)
}

/// The largest `f` (at most `(l - 2) / 2`, at least [`MIN_FRAC_BITS`]) whose
/// calibration leaves at least `margin` bits of headroom everywhere, with that
/// calibration. Fails with the reason of the smallest `f` tried.
pub fn choose_frac_bits(
    model: &Model,
    ring_bits: u32,
    raw: &Tensor<f32>,
    margin: u32,
) -> Result<(FixedPoint, Calibration)> {
    let ring = Ring::new(ring_bits).map_err(|e| NnError::InvalidArgument(e.to_string()))?;
    let top = ring_bits.saturating_sub(2) / 2;
    if top < MIN_FRAC_BITS {
        return Err(NnError::InvalidArgument(format!(
            "a {ring_bits}-bit ring leaves fewer than {MIN_FRAC_BITS} fractional bits"
        )));
    }
    let float_max = float_ranges(model, raw)?;
    let mut last = None;
    for f in (MIN_FRAC_BITS..=top).rev() {
        let fixed =
            FixedPoint::new(ring, f).map_err(|e| NnError::InvalidArgument(e.to_string()))?;
        let cal = match calibrate_with(model, fixed, raw, &float_max) {
            Ok(c) => c,
            Err(e @ NnError::FixedPoint(_)) => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        match cal.check(margin) {
            Ok(()) => return Ok((fixed, cal)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| NnError::Calibration("no fractional bits fit".into())))
}

fn signed_abs(ring: Ring, v: u64) -> u128 {
    u128::from(ring.to_signed(v).unsigned_abs())
}

/// The largest `max_o (sum_i |w_oi| m + |b_o|)` over output rows (or
/// filters) `w` of `per` coefficients with biases `b`.
fn affine_rows(ring: Ring, w: &[u64], per: usize, b: &[u64], m: u128) -> u128 {
    w.chunks(per.max(1))
        .enumerate()
        .map(|(o, row)| {
            let sum: u128 = row.iter().map(|&v| signed_abs(ring, v)).sum();
            let bias = b.get(o).map_or(0, |&v| signed_abs(ring, v));
            sum.saturating_mul(m).saturating_add(bias)
        })
        .max()
        .unwrap_or(0)
}

/// A proven bound on `|value|` (signed ring value, in units of its last bit)
/// of every value of `program` (index = value id, `0` the input), for any
/// input whose encoded entries have `|x| <= input_max_abs`, computed in the
/// ring's exact integer arithmetic as if it did not wrap (module docs, table).
/// Saturates at `u128::MAX`.
pub fn magnitude_bounds(program: &FixedProgram, input_max_abs: u64) -> Vec<u128> {
    let ring = program.ring();
    let mut m = vec![0u128; program.steps.len() + 1];
    m[0] = u128::from(input_max_abs);
    for (i, s) in program.steps.iter().enumerate() {
        let x = m[s.inputs[0]];
        m[i + 1] = match &s.op {
            FixedOp::Dense(op) => affine_rows(ring, &op.weight, op.in_features, &op.bias, x),
            FixedOp::Conv2d(op) => affine_rows(
                ring,
                &op.weight,
                op.in_channels * op.kernel * op.kernel,
                &op.bias,
                x,
            ),
            FixedOp::ChannelAffine(op) => affine_rows(ring, &op.scale, 1, &op.shift, x),
            FixedOp::Truncate { bits } => x.div_ceil(1u128 << (*bits).min(127)),
            FixedOp::Relu | FixedOp::MaxPool { .. } | FixedOp::Reshape => x,
            FixedOp::SumPool { kernel, .. } => x.saturating_mul((kernel * kernel) as u128),
            FixedOp::GlobalSumPool => {
                let hw: usize = program.value_shape(s.inputs[0]).iter().skip(1).product();
                x.saturating_mul(hw as u128)
            }
            FixedOp::MulConst { factor } => x.saturating_mul(signed_abs(ring, *factor)),
            FixedOp::Add => x.saturating_add(m[s.inputs[1]]),
            FixedOp::Square => x.saturating_mul(x),
        };
    }
    m
}

/// Bits a signed value of magnitude `v` needs, with its sign: `[-v, v]` lies
/// in `[-2^(k-1), 2^(k-1))` for the returned `k`.
pub fn bits_of_wide(v: u128) -> u32 {
    129 - v.leading_zeros().min(128)
}

/// One value of a [`RangeAnalysis`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueBound {
    /// The step's name (`"input"` for the encoded input).
    pub step: String,
    /// The step's operation (its tag).
    pub op: &'static str,
    /// Fractional bits of the value.
    pub scale: u32,
    /// The proven bound on `|value|`, decoded at `scale`.
    pub max_abs: f64,
    /// Bits the bound needs (with its sign).
    pub bits: u32,
}

/// Whether a program's values provably stay below `2^(l-2)` in magnitude for
/// every input in the accepted box `|x| <= input_bound` (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeAnalysis {
    /// Ring bits `l`.
    pub ring_bits: u32,
    /// Fractional bits `f`.
    pub frac_bits: u32,
    /// The accepted box: largest `|x|` of a preprocessed input entry.
    pub input_bound: f64,
    /// Every value's proven bound: the input, then every step.
    pub values: Vec<ValueBound>,
}

impl RangeAnalysis {
    /// Largest bits a value may need: `l - 1` (magnitude below `2^(l-2)`).
    pub fn allowed_bits(&self) -> u32 {
        self.ring_bits - 1
    }

    /// The value whose bound needs the most bits.
    pub fn widest(&self) -> Option<&ValueBound> {
        self.values.iter().max_by_key(|v| v.bits)
    }

    /// `true` if no value can reach `2^(l-2)` for inputs in the box.
    pub fn proven(&self) -> bool {
        self.widest().is_none_or(|v| v.bits <= self.allowed_bits())
    }

    /// One line: proven, or the widest value and how far it is over.
    pub fn summary(&self) -> String {
        match self.widest() {
            Some(v) if !self.proven() => format!(
                "not proven for inputs |x| <= {:.4}: in the worst case `{}` ({}) reaches |{:.4e}|, {} bits where Z_2^{} allows {} (the guarantee is empirical: measure it with `fusion experiment wrap`)",
                self.input_bound,
                v.step,
                v.op,
                v.max_abs,
                v.bits,
                self.ring_bits,
                self.allowed_bits()
            ),
            Some(v) => format!(
                "proven for inputs |x| <= {:.4}: no value of Z_2^{} can wrap (widest `{}`, {} of {} bits)",
                self.input_bound,
                self.ring_bits,
                v.step,
                v.bits,
                self.allowed_bits()
            ),
            None => "empty program".into(),
        }
    }
}

/// The largest `|x|` of the preprocessed samples `raw` (the model's
/// preprocessing applied): the smallest input box that holds them.
pub fn input_max_abs(model: &Model, raw: &Tensor<f32>) -> Result<f64> {
    let mut max = 0f32;
    let mut start = 0;
    while start < raw.batch() {
        let end = (start + CHUNK).min(raw.batch());
        let x = model.meta.preprocess.apply(&raw.slice_batch(start..end))?;
        max = x.data().iter().fold(max, |a, &v| a.max(v.abs()));
        start = end;
    }
    Ok(f64::from(max))
}

/// The encoded magnitude of a preprocessed input bound (rounded up).
pub fn encoded_input_bound(program: &FixedProgram, input_bound: f64) -> u64 {
    let scaled = (input_bound * 2f64.powi(program.fixed.frac_bits as i32)).ceil();
    if scaled >= u64::MAX as f64 {
        u64::MAX
    } else {
        scaled as u64
    }
}

/// The proven ranges of `program` for preprocessed inputs `|x| <=
/// input_bound` (encoded at the program's `f`, rounded up one unit), each
/// value's bound widened by `slack[value id]` (missing entries: 0), e.g. how
/// far a secure engine may deviate from the reference.
pub fn analyse_range(
    program: &FixedProgram,
    input_bound: f64,
    slack: &[u64],
) -> Result<RangeAnalysis> {
    if !(input_bound.is_finite() && input_bound > 0.0) {
        return Err(NnError::InvalidArgument(format!(
            "the input bound must be finite and positive, not {input_bound}"
        )));
    }
    let f = program.fixed.frac_bits;
    let mut bounds = magnitude_bounds(program, encoded_input_bound(program, input_bound));
    for (b, &s) in bounds.iter_mut().zip(slack) {
        *b = b.saturating_add(u128::from(s));
    }
    let value = |step: String, op: &'static str, scale: u32, m: u128| ValueBound {
        step,
        op,
        scale,
        max_abs: m as f64 / 2f64.powi(scale as i32),
        bits: bits_of_wide(m),
    };
    let mut values = vec![value("input".into(), "input", f, bounds[0])];
    for (s, &m) in program.steps.iter().zip(&bounds[1..]) {
        values.push(value(s.name.clone(), s.op.tag(), s.scale, m));
    }
    Ok(RangeAnalysis {
        ring_bits: program.ring().bits(),
        frac_bits: f,
        input_bound,
        values,
    })
}

/// One sample's values over the wide ring (see [`sample_peaks`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplePeak {
    /// Largest `|value|` of the encoded input and of every step, in units of
    /// each value's last bit.
    pub peak: u64,
    /// Largest `|x|` of the preprocessed (and stretched) input.
    pub input_max_abs: f32,
    /// The wide program's predicted class (first maximal score).
    pub label: usize,
}

/// Per sample of `raw` (raw samples, the model's preprocessing applied, then
/// multiplied by `stretch`): the largest `|value|` over the encoded input and
/// every step of the program lowered over `Z_{2^64}` with `fixed`'s `f`, the
/// largest `|x|` of its preprocessed input, and the wide program's label.
/// Without overflow of the wide ring these are the values an engine over
/// `Z_{2^l}` should compute, so a sample whose peak reaches `2^(l-2)` is one
/// whose values wrap or break a truncation's precondition in `Z_{2^l}`.
pub fn sample_peaks(
    model: &Model,
    fixed: FixedPoint,
    raw: &Tensor<f32>,
    stretch: f32,
) -> Result<Vec<SamplePeak>> {
    let wide_ring = Ring::new(64).map_err(|e| NnError::InvalidArgument(e.to_string()))?;
    let wide = FixedPoint::new(wide_ring, fixed.frac_bits)
        .map_err(|e| NnError::InvalidArgument(e.to_string()))?;
    let program = lower(model, wide)?;
    let mut out = Vec::with_capacity(raw.batch());
    let mut start = 0;
    while start < raw.batch() {
        let end = (start + CHUNK).min(raw.batch());
        let x = model.meta.preprocess.apply(&raw.slice_batch(start..end))?;
        let x = x.map(|&v| v * stretch);
        let n = end - start;
        let per = x.data().len() / n.max(1);
        let mut peaks: Vec<SamplePeak> = x
            .data()
            .chunks(per.max(1))
            .map(|c| SamplePeak {
                peak: 0,
                input_max_abs: c.iter().fold(0f32, |a, &v| a.max(v.abs())),
                label: 0,
            })
            .collect();
        let enc = program.encode_input(&x)?;
        let mut note = |t: &crate::tensor::RingTensor| {
            let per = t.data().len() / n.max(1);
            for (p, c) in peaks.iter_mut().zip(t.data().chunks(per.max(1))) {
                for &v in c {
                    p.peak = p.peak.max(wide_ring.to_signed(v).unsigned_abs());
                }
            }
        };
        note(&enc);
        let y = program.run_observed(&enc, |_, y| note(y))?;
        for (p, label) in peaks
            .iter_mut()
            .zip(crate::fixed::argmax_signed(wide_ring, &y))
        {
            p.label = label;
        }
        out.extend(peaks);
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::model::{ModelMeta, Params};

    /// y = w * relu(x) with one input feature: the ranges are known exactly.
    fn scaled(w: f32) -> Model {
        let mut g = GraphBuilder::new(vec![1]);
        let x = g.input();
        let h = g.relu("relu", x);
        g.dense("fc", h, 1);
        let mut p = Params::default();
        p.insert("fc.weight", Tensor::new(vec![1, 1], vec![w]).expect("t"));
        p.insert("fc.bias", Tensor::new(vec![1], vec![0.0]).expect("t"));
        Model::new(ModelMeta::for_tests(1), g.finish().expect("graph"), p).expect("model")
    }

    fn fp(l: u32, f: u32) -> FixedPoint {
        crate::eval::fixed_point(l, f).expect("fp")
    }

    #[test]
    fn ranges_and_headroom_follow_the_values() {
        let m = scaled(8.0);
        let x = Tensor::new(vec![3, 1], vec![-5.0, 2.0, 3.0]).expect("t");
        let cal = calibrate(&m, fp(37, 12), &x).expect("cal");
        let input = &cal.ranges[0];
        assert_eq!(input.fixed_max_abs, 5.0);
        // 5 * 2^12 = 20480 needs 15 bits + sign = 16.
        assert_eq!(input.bits, 16);
        assert_eq!(input.headroom_bits, 21);
        let fc = cal.ranges.iter().find(|r| r.step == "fc").expect("fc");
        assert_eq!(fc.fixed_max_abs, 24.0);
        assert_eq!(fc.float_max_abs, Some(24.0));
        // 24 * 2^24 needs 29 bits + sign.
        assert_eq!(fc.bits, 30);
        assert_eq!(cal.min_headroom(), 7);
        assert!(cal.check(7).is_ok());
        let err = cal.check(8).expect_err("margin 8").to_string();
        assert!(err.contains("`fc`") && err.contains("headroom 7"), "{err}");
    }

    #[test]
    fn overflowing_values_get_negative_headroom() {
        // 3 * 2^20 at scale 2f = 40 overflows a 37-bit ring (f = 17... take f = 16).
        let m = scaled(1024.0);
        let x = Tensor::new(vec![1, 1], vec![3.0]).expect("t");
        let cal = calibrate(&m, fp(37, 16), &x).expect("cal");
        let fc = cal.ranges.iter().find(|r| r.step == "fc").expect("fc");
        assert_eq!(fc.fixed_max_abs, 3072.0);
        assert!(fc.headroom_bits < 0, "{fc:?}");
        assert!(cal.check(0).is_err());
    }

    #[test]
    fn chosen_frac_bits_is_the_largest_with_the_margin() {
        let m = scaled(8.0);
        let x = Tensor::new(vec![2, 1], vec![1.0, 3.0]).expect("t");
        let (fixed, cal) = choose_frac_bits(&m, 37, &x, 2).expect("choose");
        assert!(cal.min_headroom() >= 2);
        let f = fixed.frac_bits;
        // One more fractional bit would break the margin (or the ring's rule).
        if f < 17 {
            let more = calibrate(&m, fp(37, f + 1), &x).expect("cal");
            assert!(more.check(2).is_err());
        }
        assert_eq!(cal.frac_bits, f);
    }

    #[test]
    fn weights_that_do_not_fit_the_ring_are_a_fixed_point_error() {
        let m = scaled(1e12);
        let x = Tensor::new(vec![1, 1], vec![1.0]).expect("t");
        assert!(matches!(
            calibrate(&m, fp(37, 12), &x),
            Err(NnError::FixedPoint(_))
        ));
    }

    #[test]
    fn calibration_data_of_another_shape_is_an_input_shape_error() {
        let m = scaled(1.0);
        let x = Tensor::new(vec![1, 2], vec![1.0, 2.0]).expect("t");
        assert!(matches!(
            calibrate(&m, fp(37, 12), &x),
            Err(NnError::InputShape { .. })
        ));
    }

    #[test]
    fn proven_bounds_are_exact_on_a_one_weight_model() {
        let m = scaled(8.0);
        let program = lower(&m, fp(37, 12)).expect("lower");
        let a = analyse_range(&program, 5.0, &[]).expect("analysis");
        assert_eq!(a.values[0].max_abs, 5.0);
        let relu = a.values.iter().find(|v| v.step == "relu").expect("relu");
        assert_eq!(relu.max_abs, 5.0);
        let fc = a.values.iter().find(|v| v.step == "fc").expect("fc");
        // 8 x 5 at scale 24: 40 * 2^24 < 2^30 needs 31 bits with the sign.
        assert_eq!(fc.max_abs, 40.0);
        assert_eq!(fc.bits, 31);
        assert!(a.proven(), "{}", a.summary());
    }

    #[test]
    fn range_is_proven_only_when_every_bound_fits_below_a_quarter_ring() {
        // fc reaches 8 A 2^24; Z_2^37 allows |v| < 2^35, so A < 256.
        let program = lower(&scaled(8.0), fp(37, 12)).expect("lower");
        let ok = analyse_range(&program, 255.0, &[]).expect("analysis");
        assert!(ok.proven(), "{}", ok.summary());
        let over = analyse_range(&program, 256.0, &[]).expect("analysis");
        assert!(!over.proven());
        let text = over.summary();
        assert!(
            text.contains("`fc`") && text.contains("empirical"),
            "{text}"
        );
        assert!(analyse_range(&program, f64::NAN, &[]).is_err());
        assert!(analyse_range(&program, 0.0, &[]).is_err());
    }

    #[test]
    fn no_value_in_the_input_box_exceeds_its_proven_bound() {
        use rand::{RngExt, SeedableRng};
        for (net, bound) in [("mlp-bc", 4.0f32), ("cnn-mnist", 1.0)] {
            let model = crate::zoo::build(net, 3).expect("zoo");
            let program = lower(&model, fp(37, 12)).expect("lower");
            let f = program.fixed.frac_bits;
            let enc_bound = (f64::from(bound) * 2f64.powi(f as i32)).ceil() as u64;
            let bounds = magnitude_bounds(&program, enc_bound);
            let len: usize = model.graph.input_shape.iter().product();
            let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(11);
            // Random points of the box, its corners of one sign, and zero.
            let mut data = Vec::new();
            for _ in 0..6 {
                data.extend((0..len).map(|_| rng.random_range(-bound..=bound)));
            }
            data.extend(std::iter::repeat_n(bound, len));
            data.extend(std::iter::repeat_n(-bound, len));
            data.extend(std::iter::repeat_n(0.0, len));
            let mut shape = vec![9];
            shape.extend_from_slice(&model.graph.input_shape);
            let x = program
                .encode_input(&Tensor::new(shape, data).expect("t"))
                .expect("encode");
            let ring = program.ring();
            program
                .run_observed(&x, |i, y| {
                    for &v in y.data() {
                        let a = u128::from(ring.to_signed(v).unsigned_abs());
                        assert!(
                            a <= bounds[i + 1],
                            "{net} step {i}: {a} > {}",
                            bounds[i + 1]
                        );
                    }
                })
                .expect("run");
        }
    }

    #[test]
    fn sample_peaks_grow_with_the_stretch() {
        let m = scaled(8.0);
        let x = Tensor::new(vec![2, 1], vec![3.0, -1.0]).expect("t");
        let p1 = sample_peaks(&m, fp(37, 12), &x, 1.0).expect("peaks");
        let p2 = sample_peaks(&m, fp(37, 12), &x, 2.0).expect("peaks");
        // Sample 0: fc = 24 at scale 24; sample 1: the input, 1 at scale 12.
        let short = |p: &[SamplePeak]| {
            p.iter()
                .map(|s| (s.peak, s.input_max_abs))
                .collect::<Vec<_>>()
        };
        assert_eq!(short(&p1), vec![(24 << 24, 3.0), (1 << 12, 1.0)]);
        assert_eq!(short(&p2), vec![(48 << 24, 6.0), (2 << 12, 2.0)]);
    }
}
