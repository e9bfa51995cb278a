//! `fusion experiment wrap`: how often a model's fixed-point values leave the
//! ring on a test set, inside and outside the accepted input box.
//!
//! Fusion cannot catch a wrap-around mod `2^l`: the wrapped value is the same
//! in every copy, so the copies agree on a wrong label. The server announces
//! an input box (`fusion serve --input-bound`, default: its dataset's largest
//! preprocessed value) and the client refuses samples outside it; where the
//! worst case inside the box is not proven (`fusion_nn::calibrate`), this
//! experiment measures the guarantee instead. Every test sample, its
//! preprocessed input multiplied by each `--stretch` factor (a stress test of
//! out-of-distribution inputs), runs through the program lowered over
//! `Z_{2^64}`; a sample **wraps** if any of its values reaches `2^(l-2)` in
//! magnitude (beyond the secure truncation's precondition, and in the
//! plaintext engine over `Z_{2^l}` a wrong value); its label **changes** if
//! the program over `Z_{2^l}` predicts another class than the one over
//! `Z_{2^64}`.

use std::path::PathBuf;

use fusion_nn::Model;
use fusion_nn::calibrate::sample_peaks;
use fusion_nn::eval;
use fusion_nn::fixed::{self, lower};
use serde::Serialize;

use crate::common::{CliError, InputBoundSource, failure, usage};

/// Arguments of `fusion experiment wrap`.
#[derive(clap::Args, Debug)]
pub struct WrapArgs {
    /// Model directory (default: the shipped mnist-cnn).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Factors applied to the preprocessed test inputs (comma separated).
    #[arg(
        long,
        value_name = "S,...",
        value_delimiter = ',',
        default_value = "1,2,4,8,16,64"
    )]
    stretch: Vec<f32>,
    /// The accepted input box (default: as `fusion serve` derives it).
    #[arg(long, value_name = "X")]
    input_bound: Option<f64>,
    /// Ring bits l.
    #[arg(long, value_name = "L", default_value_t = 37)]
    ring_bits: u32,
    /// Fractional bits f.
    #[arg(long, value_name = "F", default_value_t = 12)]
    frac_bits: u32,
    /// Test samples (default: the whole held-out split).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Write the results as JSON.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

/// One stretch factor's counts.
#[derive(Debug, Serialize)]
struct WrapRow {
    stretch: f32,
    /// Samples outside the box (the client refuses them).
    outside_box: usize,
    /// Samples with a value at or beyond `2^(l-2)`.
    wrapped: usize,
    /// Of those, inside the box (the client would have sent them).
    wrapped_in_box: usize,
    /// Samples whose `Z_2^l` label differs from the `Z_2^64` label.
    label_changed: usize,
    /// Of those, inside the box.
    label_changed_in_box: usize,
    /// Bits (with the sign) of the largest value over all samples.
    max_bits: u32,
}

#[derive(Debug, Serialize)]
struct WrapReport {
    model: String,
    ring_bits: u32,
    frac_bits: u32,
    input_bound: f64,
    input_bound_source: String,
    /// Largest bits a value may take: `l - 1`.
    allowed_bits: u32,
    /// The worst case inside the box is proven not to wrap.
    proven: bool,
    /// The worst-case analysis in one line.
    range: String,
    samples: usize,
    rows: Vec<WrapRow>,
}

/// Runs `fusion experiment wrap`.
pub fn wrap(a: WrapArgs) -> Result<(), CliError> {
    let dir = crate::experiment::model_dir(&a.model, "mnist-cnn")?;
    let model = Model::load(&dir).map_err(usage)?;
    let fp = eval::fixed_point(a.ring_bits, a.frac_bits).map_err(usage)?;
    if a.stretch.is_empty() || a.stretch.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(usage("--stretch factors must be positive numbers"));
    }
    let (bound, source) = crate::common::input_bound(&dir, a.input_bound)?
        .map_err(|why| usage(format!("no input box: {why}; give --input-bound")))?;
    let source = match source {
        InputBoundSource::Given => "--input-bound".to_string(),
        InputBoundSource::Dataset(d) => format!("dataset {d}"),
    };
    let program = lower(&model, fp).map_err(failure)?;
    let range = fusion_engine::bound::range_analysis(&program, bound).map_err(failure)?;
    let mut test = crate::experiment::held_out(&model)?;
    if let Some(n) = a.limit {
        test = test.head(n);
    }
    let l = a.ring_bits;
    let limit = 1u64 << (l - 2);
    let mut rows = Vec::new();
    for &s in &a.stretch {
        let peaks = sample_peaks(&model, fp, &test.inputs, s).map_err(failure)?;
        let x = model
            .meta
            .preprocess
            .apply(&test.inputs)
            .map_err(failure)?
            .map(|&v| v * s);
        let narrow = fixed::argmax_signed(
            program.ring(),
            &program
                .run(&program.encode_input(&x).map_err(failure)?)
                .map_err(failure)?,
        );
        let mut row = WrapRow {
            stretch: s,
            outside_box: 0,
            wrapped: 0,
            wrapped_in_box: 0,
            label_changed: 0,
            label_changed_in_box: 0,
            max_bits: 0,
        };
        for (p, &n) in peaks.iter().zip(&narrow) {
            let inside = f64::from(p.input_max_abs) <= bound;
            row.outside_box += usize::from(!inside);
            let wrapped = p.peak >= limit;
            row.wrapped += usize::from(wrapped);
            row.wrapped_in_box += usize::from(wrapped && inside);
            let changed = p.label != n;
            row.label_changed += usize::from(changed);
            row.label_changed_in_box += usize::from(changed && inside);
            row.max_bits = row.max_bits.max(65 - p.peak.leading_zeros().min(64));
        }
        eprintln!(
            "stretch {s:>5}: {:>6} outside the box, {:>6} wrapped ({} in the box), {:>6} labels changed ({} in the box), max {} bits",
            row.outside_box,
            row.wrapped,
            row.wrapped_in_box,
            row.label_changed,
            row.label_changed_in_box,
            row.max_bits
        );
        rows.push(row);
    }
    let report = WrapReport {
        model: model.meta.name.clone(),
        ring_bits: l,
        frac_bits: a.frac_bits,
        input_bound: bound,
        input_bound_source: source,
        allowed_bits: range.allowed_bits(),
        proven: range.proven(),
        range: range.summary(),
        samples: test.len(),
        rows,
    };
    println!(
        "{} (Z_2^{l}, f = {}), {} test samples, input box |x| <= {:.4} ({}); range {}",
        report.model,
        report.frac_bits,
        report.samples,
        report.input_bound,
        report.input_bound_source,
        report.range
    );
    println!(
        "  {:>7} {:>11} {:>8} {:>12} {:>14} {:>20} {:>8}",
        "stretch",
        "outside box",
        "wrapped",
        "wrapped, box",
        "label changed",
        "label changed, box",
        "max bits"
    );
    for r in &report.rows {
        println!(
            "  {:>7} {:>11} {:>8} {:>12} {:>14} {:>20} {:>8}",
            r.stretch,
            r.outside_box,
            r.wrapped,
            r.wrapped_in_box,
            r.label_changed,
            r.label_changed_in_box,
            r.max_bits
        );
    }
    if let Some(path) = &a.json {
        crate::experiment::write_json(path, &report)?;
    }
    Ok(())
}
