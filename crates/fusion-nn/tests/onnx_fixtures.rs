//! The ONNX fixtures of `data/onnx/` (made by real exporters, see
//! `tools/onnx-fixtures/`) against onnxruntime's outputs recorded next to them:
//! the float engine's logits within a stated tolerance, the fixed-point
//! engine's argmax on at least 99% of the held-out samples, and calibration at
//! the engine default format.

use fusion_nn::data::{self, Part};
use fusion_nn::onnx::{self, ImportOptions};
use fusion_nn::{calibrate, eval, float};

/// Float logits may differ from onnxruntime's by summation order only.
const ABS_TOL: f64 = 1e-4;
const REL_TOL: f64 = 1e-4;

struct Fixture {
    model: fusion_nn::Model,
    split: data::Split,
    logits: Vec<Vec<f64>>,
}

fn load(name: &str) -> Fixture {
    let dir = data::data_dir().expect("data dir");
    let onnx_dir = dir.join("onnx");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(onnx_dir.join(format!("{name}.reference.json")))
            .expect("reference file"),
    )
    .expect("reference json");
    let dataset = reference["dataset"].as_str().expect("dataset");
    let mut imp = onnx::import_file(
        &onnx_dir.join(format!("{name}.onnx")),
        &ImportOptions {
            name: name.into(),
            output: None,
        },
    )
    .expect("import");
    let info = data::info(dataset).expect("info");
    imp.adapt_input(info.sample_shape).expect("adapt");
    let test = data::load(&dir, dataset, Part::Test).expect("test split");
    let indices: Vec<usize> = reference["indices"]
        .as_array()
        .expect("indices")
        .iter()
        .map(|v| v.as_u64().expect("index") as usize)
        .collect();
    let logits: Vec<Vec<f64>> = reference["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("f64"))
                .collect()
        })
        .collect();
    assert_eq!(logits.len(), indices.len());
    Fixture {
        model: imp.model,
        split: test.gather(&indices),
        logits,
    }
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn float_matches_onnxruntime(name: &str) {
    let fx = load(name);
    let x = fx
        .model
        .meta
        .preprocess
        .apply(&fx.split.inputs)
        .expect("preprocess");
    let y = float::forward(&fx.model, &x).expect("forward");
    let classes = fx.model.meta.classes;
    let mut worst = 0f64;
    for (i, want) in fx.logits.iter().enumerate() {
        let got = &y.data()[i * classes..(i + 1) * classes];
        for (g, w) in got.iter().zip(want) {
            let err = (f64::from(*g) - w).abs();
            worst = worst.max(err);
            assert!(
                err <= ABS_TOL + REL_TOL * w.abs(),
                "{name} sample {i}: {g} vs onnxruntime {w}"
            );
        }
    }
    eprintln!(
        "{name}: float vs onnxruntime max |logit error| {worst:.3e} over {} samples",
        fx.logits.len()
    );
}

fn fixed_argmax_agrees(name: &str) {
    let fx = load(name);
    let program = fusion_nn::fixed::lower(&fx.model, eval::default_fixed_point()).expect("lower");
    let pred = eval::predict_fixed(&fx.model, &program, &fx.split).expect("predict");
    let same = pred
        .iter()
        .zip(&fx.logits)
        .filter(|(p, l)| **p == argmax(l))
        .count();
    let rate = same as f64 / pred.len() as f64;
    eprintln!(
        "{name}: fixed point (l = 37, f = 12) argmax equals onnxruntime's on {same}/{} = {:.4}",
        pred.len(),
        rate
    );
    assert!(rate >= 0.99, "{name}: agreement {rate}");
}

#[test]
fn digits_mlp_float_logits_match_onnxruntime() {
    float_matches_onnxruntime("digits-mlp");
}

#[test]
fn mnist_cnn_float_logits_match_onnxruntime() {
    float_matches_onnxruntime("mnist-cnn-small");
}

#[test]
fn digits_mlp_fixed_point_argmax_matches_onnxruntime() {
    fixed_argmax_agrees("digits-mlp");
}

#[test]
fn mnist_cnn_fixed_point_argmax_matches_onnxruntime() {
    fixed_argmax_agrees("mnist-cnn-small");
}

#[test]
fn fixtures_have_headroom_at_the_engine_default_and_auto_picks_more_bits() {
    for name in ["digits-mlp", "mnist-cnn-small"] {
        let fx = load(name);
        let raw = fx.split.inputs.slice_batch(0..fx.split.len().min(200));
        let cal =
            calibrate::calibrate(&fx.model, eval::default_fixed_point(), &raw).expect("calibrate");
        cal.check(calibrate::DEFAULT_MARGIN_BITS)
            .expect("default format has headroom");
        let (fp, chosen) =
            calibrate::choose_frac_bits(&fx.model, 37, &raw, calibrate::DEFAULT_MARGIN_BITS)
                .expect("choose");
        assert!(fp.frac_bits >= 12, "{name}: chose {}", fp.frac_bits);
        assert!(chosen.min_headroom() >= i64::from(calibrate::DEFAULT_MARGIN_BITS));
    }
}

#[test]
fn the_shipped_fixtures_map_every_layer_kind_they_use() {
    let fx = load("mnist-cnn-small");
    let tags: std::collections::BTreeSet<&str> =
        fx.model.graph.nodes.iter().map(|n| n.op.tag()).collect();
    for t in [
        "conv2d",
        "batch_norm2d",
        "relu",
        "max_pool2d",
        "avg_pool2d",
        "add",
        "global_avg_pool",
        "dense",
    ] {
        assert!(tags.contains(t), "mnist-cnn-small has no {t}: {tags:?}");
    }
    assert!(matches!(
        fx.model.meta.preprocess,
        fusion_nn::model::Preprocess::Standardize { .. }
    ));
}
