//! `fusion attack muse`: a malicious client recovers bc-mlp's weights by
//! shifting its shares, against a server in the same process over QUIC on
//! 127.0.0.1; and on a backend that fixes the client's shares in
//! preprocessing the deviation is refused by the client's own backend.

use std::path::PathBuf;
use std::process::Command;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn muse(backend: &str, out: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .env("FUSION_DATA", data())
        .args(["attack", "muse", "--local", "--model"])
        .arg(data().join("models/bc-mlp"))
        .args(["--backend", backend, "--json"])
        .arg(out)
        .output()
        .expect("run fusion attack muse")
}

#[test]
fn muse_share_shifting_recovers_every_bc_mlp_parameter_from_514_rows() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("muse.json");
    let run = muse("cheetah", &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("json")).expect("parse");
    // 1 base + 16 hidden shifts + 1 all-off + 16 x (1 + 30) isolations.
    assert_eq!(r["queries"], 514);
    assert_eq!(r["parameters"], 530);
    let err = r["max_relative_error"].as_f64().expect("error");
    assert!(err < 1e-3, "max relative weight error {err}");
    for b in r["layer_bias_errors"].as_array().expect("bias errors") {
        assert!(b.as_f64().expect("f64") < 1e-2, "{b}");
    }
    assert_eq!(r["agreement"].as_f64(), Some(1.0));
}

#[test]
fn delphi_fixes_the_clients_share_in_preprocessing_so_the_online_shift_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = muse("delphi", &tmp.path().join("muse.json"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("differs from the one preprocessed"),
        "{stderr}"
    );
}
