//! Accuracy of a model on labelled data, with the float and fixed-point engines.

use fusion_core::ring::{FixedPoint, Ring};

use crate::data::Split;
use crate::error::{NnError, Result};
use crate::fixed::{FixedProgram, lower};
use crate::float;
use crate::model::{Evaluation, Model};

/// Samples per engine call when evaluating a dataset.
pub const CHUNK: usize = 256;

/// The engine default: `l = 37`, `f = 12` (Cheetah's choice).
pub fn default_fixed_point() -> FixedPoint {
    fixed_point(37, 12).unwrap_or_else(|_| unreachable!("37/12 is valid"))
}

/// Validated fixed-point parameters.
pub fn fixed_point(ring_bits: u32, frac_bits: u32) -> Result<FixedPoint> {
    let ring = Ring::new(ring_bits).map_err(|e| NnError::InvalidArgument(e.to_string()))?;
    FixedPoint::new(ring, frac_bits).map_err(|e| NnError::InvalidArgument(e.to_string()))
}

/// Fraction of `pred` equal to `labels`.
pub fn accuracy(pred: &[usize], labels: &[usize]) -> f64 {
    if pred.is_empty() {
        return 0.0;
    }
    pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / pred.len() as f64
}

/// Float-engine predictions of raw samples.
pub fn predict_float(model: &Model, split: &Split) -> Result<Vec<usize>> {
    float::predict(model, &split.inputs, CHUNK)
}

/// Fixed-point predictions of raw samples through a lowered program.
pub fn predict_fixed(model: &Model, program: &FixedProgram, split: &Split) -> Result<Vec<usize>> {
    program.predict(&model.meta.preprocess, &split.inputs, CHUNK)
}

/// Float and fixed-point accuracy, their argmax agreement and the largest logit
/// difference on `split`.
pub fn evaluate(
    model: &Model,
    split: &Split,
    fixed: FixedPoint,
    split_name: &str,
) -> Result<Evaluation> {
    let program = lower(model, fixed)?;
    let (mut pf, mut px) = (
        Vec::with_capacity(split.len()),
        Vec::with_capacity(split.len()),
    );
    let mut max_err = 0f64;
    let mut start = 0;
    while start < split.len() {
        let end = (start + CHUNK).min(split.len());
        let x = model
            .meta
            .preprocess
            .apply(&split.inputs.slice_batch(start..end))?;
        let yf = float::forward(model, &x)?;
        let yr = program.run(&program.encode_input(&x)?)?;
        let scale = program.output_scale();
        for (a, &b) in yf.data().iter().zip(yr.data()) {
            max_err = max_err.max((*a as f64 - fixed.decode_at(b, scale)).abs());
        }
        pf.extend(yf.argmax_rows());
        px.extend(crate::fixed::argmax_signed(fixed.ring, &yr));
        start = end;
    }
    Ok(Evaluation {
        split: split_name.into(),
        samples: split.len(),
        float_accuracy: accuracy(&pf, &split.labels),
        fixed_accuracy: accuracy(&px, &split.labels),
        argmax_agreement: accuracy(&px, &pf),
        max_logit_error: max_err,
        ring_bits: fixed.ring.bits(),
        frac_bits: fixed.frac_bits,
    })
}
