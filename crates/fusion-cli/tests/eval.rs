//! `fusion eval` and `fusion train` as a user runs them.

use std::path::PathBuf;
use std::process::Command;

fn fusion() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
}

fn repo_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn model(name: &str) -> PathBuf {
    repo_data().join("models").join(name)
}

fn eval_json(extra: &[&str]) -> serde_json::Value {
    let out = fusion()
        .args(["eval", "--model"])
        .arg(model("bc-mlp"))
        .args(["--data", "breast-cancer", "--json"])
        .args(extra)
        .env("FUSION_DATA", repo_data())
        .output()
        .expect("run fusion");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn eval_json_has_exactly_the_documented_keys() {
    for (extra, fixed) in [(&[][..], false), (&["--fixed-point"][..], true)] {
        let v = eval_json(extra);
        let obj = v.as_object().expect("object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["accuracy", "data", "fixed_point", "model", "samples"]
        );
        assert_eq!(obj["model"], "bc-mlp");
        assert_eq!(obj["data"], "breast-cancer");
        assert_eq!(obj["samples"], 113);
        assert_eq!(obj["fixed_point"], fixed);
        let acc = obj["accuracy"].as_f64().expect("number");
        assert!((0.95..=1.0).contains(&acc), "accuracy {acc}");
    }
}

#[test]
fn eval_limit_and_ring_options() {
    let v = eval_json(&[
        "--fixed-point",
        "--ring-bits",
        "64",
        "--frac-bits",
        "20",
        "--limit",
        "50",
    ]);
    assert_eq!(v["samples"], 50);
}

#[test]
fn eval_usage_errors_exit_2_and_failures_exit_1() {
    let run = |args: &[&str]| {
        fusion()
            .args(args)
            .env("FUSION_DATA", repo_data())
            .output()
            .expect("run fusion")
    };
    let m = model("bc-mlp");
    let m = m.to_str().expect("utf8 path");

    let out = run(&["eval", "--model", m, "--data", "cifar-10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dataset"));

    // A model for 30 features cannot classify 28x28 images.
    assert_eq!(
        run(&["eval", "--model", m, "--data", "mnist"])
            .status
            .code(),
        Some(2)
    );
    // f too large for the ring.
    assert_eq!(
        run(&[
            "eval",
            "--model",
            m,
            "--data",
            "breast-cancer",
            "--fixed-point",
            "--ring-bits",
            "20"
        ])
        .status
        .code(),
        Some(2)
    );
    // Missing argument (clap).
    assert_eq!(run(&["eval", "--model", m]).status.code(), Some(2));

    let out = run(&[
        "eval",
        "--model",
        "/nonexistent/model",
        "--data",
        "breast-cancer",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.json"));
}

#[test]
fn train_reproduces_the_shipped_bc_mlp() {
    let dir = tempfile_dir();
    let out = fusion()
        .args(["train", "--recipe", "bc-mlp", "--out"])
        .arg(&dir)
        .env("FUSION_DATA", repo_data())
        .output()
        .expect("run fusion");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fixed point"), "{stdout}");
    // Same recipe and seed: the same weights (bitwise on the machine that trained
    // the shipped model; a CPU with other SIMD features may differ in the last bits).
    let shipped = fusion_nn::Model::load(&model("bc-mlp")).expect("shipped");
    let fresh = fusion_nn::Model::load(&dir).expect("fresh");
    for (name, t) in &shipped.params.0 {
        let f = fresh.params.get(name).expect("same tensors");
        let diff = t
            .data()
            .iter()
            .zip(f.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-3, "{name} differs by {diff}");
    }
    let _ = std::fs::remove_dir_all(&dir);

    let bad = fusion()
        .args(["train", "--recipe", "nope"])
        .output()
        .expect("run fusion");
    assert_eq!(bad.status.code(), Some(2));
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("fusion-cli-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
