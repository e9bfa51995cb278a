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
//! given format is refused. A later range-safety check can reuse [`calibrate`]
//! as it is.

use fusion_core::ring::{FixedPoint, Ring};
use serde::Serialize;

use crate::error::{NnError, Result};
use crate::fixed::{FixedProgram, lower};
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
}
