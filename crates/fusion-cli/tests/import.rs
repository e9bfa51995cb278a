//! `fusion import` end to end: import the skl2onnx digits MLP fixture,
//! check the written model with `fusion eval` and `fusion inspect`, run one
//! secure session over loopback with `fusion demo --model` and compare its
//! predictions with the fixed-point engine; and every bad input is exit 2
//! with a clear message and no files written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fusion_nn::data::{self, Part};
use fusion_nn::onnx::{self, proto};
use fusion_nn::{Model, eval, fixed};

fn repo_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn fixture(name: &str) -> PathBuf {
    repo_data().join("onnx").join(name)
}

fn fusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .env("FUSION_DATA", repo_data())
        .args(args)
        .output()
        .expect("run fusion")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn import(onnx: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["import", "--onnx", s(onnx), "--out", s(out)];
    if !extra.contains(&"--calibrate") {
        args.extend(["--calibrate", "digits"]);
    }
    args.extend(extra);
    fusion(&args)
}

#[test]
fn imported_digits_mlp_is_served_and_the_secure_session_agrees_with_fixed_point() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("digits-mlp");
    let o = import(&fixture("digits-mlp.onnx"), &out, &[]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(
        stdout.contains("Softmax") && stdout.contains("dropped"),
        "{stdout}"
    );
    assert!(out.join("model.json").is_file() && out.join("calibration.json").is_file());

    let model = Model::load(&out).expect("load imported");
    assert_eq!(model.meta.dataset.as_deref(), Some("digits"));
    let ev = model.meta.evaluation.clone().expect("evaluation recorded");
    assert!(ev.argmax_agreement >= 0.99, "{ev:?}");

    let o = fusion(&[
        "eval",
        "--model",
        s(&out),
        "--data",
        "digits",
        "--fixed-point",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("accuracy"));

    let o = fusion(&["inspect", "--model", s(&out)]);
    let shown = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        shown.contains("dense") && shown.contains("truncate") && shown.contains("headroom"),
        "{shown}"
    );
    for backend in fusion_engine::backends::names() {
        assert!(
            shown.contains(&format!("estimated cost, backend `{backend}`")),
            "{shown}"
        );
    }
    let o = fusion(&["inspect", "--model", s(&out), "--backends", "nosuch"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    let json = tmp.path().join("demo.json");
    let o = fusion(&[
        "demo",
        "--model",
        s(&out),
        "--queries",
        "4",
        "--public",
        "100",
        "--quiet",
        "--json",
        s(&json),
    ]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    assert_eq!(report["fusion"]["verdict"]["verdict"], "accept");
    let got: Vec<usize> = report["fusion"]["verdict"]["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| o["label"].as_u64().expect("label") as usize)
        .collect();
    let test = data::load(&repo_data(), "digits", Part::Test)
        .expect("digits")
        .head(4);
    let program = fixed::lower(&model, eval::default_fixed_point()).expect("lower");
    let want = eval::predict_fixed(&model, &program, &test).expect("predict");
    assert_eq!(got, want, "secure session vs fixed-point engine");
}

/// A copy of the digits MLP fixture with `edit` applied, written to `dir`.
fn edited(dir: &Path, name: &str, edit: impl FnOnce(&mut proto::ModelProto)) -> PathBuf {
    let bytes = std::fs::read(fixture("digits-mlp.onnx")).expect("fixture");
    let mut m = onnx::decode(&bytes).expect("decode");
    edit(&mut m);
    let path = dir.join(name);
    std::fs::write(&path, onnx::encode(&m)).expect("write");
    path
}

fn graph(m: &mut proto::ModelProto) -> &mut proto::GraphProto {
    m.graph.as_mut().expect("graph")
}

fn assert_usage_error(onnx: &Path, extra: &[&str], want: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("model");
    let o = import(onnx, &out, extra);
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{want}: {err}\n{}",
        text(&o.stdout)
    );
    assert!(
        err.to_lowercase().contains(&want.to_lowercase()),
        "expected `{want}` in: {err}"
    );
    assert!(!out.exists(), "{want}: the output directory was written");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("ls").collect();
    assert!(left.is_empty(), "{want}: files left behind: {left:?}");
}

#[test]
fn bad_inputs_are_usage_errors_that_write_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bytes = std::fs::read(fixture("digits-mlp.onnx")).expect("fixture");

    let truncated = tmp.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    assert_usage_error(&truncated, &[], "malformed ONNX file");

    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"x,label\n1,0\n").expect("write");
    assert_usage_error(&junk, &[], "malformed ONNX file");

    let dynamic = edited(tmp.path(), "dynamic.onnx", |m| {
        let dim = &mut graph(m).input[0]
            .r#type
            .as_mut()
            .and_then(|t| t.tensor_type.as_mut())
            .and_then(|t| t.shape.as_mut())
            .expect("shape")
            .dim[1];
        dim.dim_value = None;
        dim.dim_param = Some("features".into());
    });
    assert_usage_error(&dynamic, &[], "dynamic dimension `features`");

    assert_usage_error(
        &fixture("digits-mlp.onnx"),
        &["--calibrate", "mnist"],
        "input shape mismatch",
    );

    let huge = edited(tmp.path(), "huge.onnx", |m| {
        for t in &mut graph(m).initializer {
            if t.dims.len() == 2 {
                let n = t
                    .raw_data
                    .as_ref()
                    .map_or(t.float_data.len(), |r| r.len() / 4);
                t.raw_data = Some(
                    std::iter::repeat_n(1e9f32.to_le_bytes(), n)
                        .flatten()
                        .collect(),
                );
                t.float_data.clear();
            }
        }
    });
    assert_usage_error(&huge, &[], "does not fit");

    let sigmoid = edited(tmp.path(), "sigmoid.onnx", |m| {
        for n in &mut graph(m).node {
            if n.op_type.as_deref() == Some("Relu") {
                n.op_type = Some("Sigmoid".into());
            }
        }
    });
    assert_usage_error(&sigmoid, &[], "operator `Sigmoid` is not supported");

    assert_usage_error(
        &fixture("digits-mlp.onnx"),
        &["--calibrate", "/nonexistent/samples.csv"],
        "neither a dataset",
    );
}
