//! The `fusion-bench` binary end to end: `infer` over two OS processes, and
//! `report` on the records it wrote.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fusion-bench");

/// Asserts the run exited 0, showing its exit status and stderr if not.
fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn infer_json_has_the_required_keys_and_agrees_with_the_fixed_point_engine() {
    let out = Command::new(BIN)
        .args([
            "infer",
            "--net",
            "mlp-bc",
            "--batch",
            "4",
            "--seed",
            "3",
            "--reps",
            "2",
            "--json",
            "--timeout",
            "300",
            "--engine",
            "default",
        ])
        .output()
        .expect("run fusion-bench");
    succeeded(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "net",
        "batch",
        "link",
        "setup_s",
        "setup_bytes",
        "wall_s",
        "bytes_server_to_client",
        "bytes_client_to_server",
        "per_sample_ms",
        "per_sample_kib",
        "argmax_agreement",
        "max_logit_error",
        "phases",
        "ring_bits",
        "frac_bits",
        "he_preset",
        "ot",
        "machine",
        "timestamp",
    ] {
        assert!(v.get(key).is_some(), "missing `{key}` in {v}");
    }
    assert_eq!(v["net"], "mlp-bc");
    assert_eq!(v["batch"], 4);
    assert_eq!(v["link"], "none");
    assert_eq!(v["argmax_agreement"], 1.0);
    assert_eq!(v["checked_samples"], 8);
    assert!(v["bytes_server_to_client"].as_u64().expect("u64") > 0);
    assert!(v["bytes_client_to_server"].as_u64().expect("u64") > 0);
    assert!(v["max_logit_error"].as_f64().expect("f64") < 0.01);
    let phases = v["phases"].as_array().expect("phases");
    let linear = phases
        .iter()
        .find(|p| p["name"] == "linear")
        .expect("a linear phase");
    assert!(linear["bytes_server_to_client"].as_u64().expect("u64") > 0);
    assert!(phases.iter().any(|p| p["name"] == "nonlinear"));

    // The report renders a results file holding this run.
    let dir = tempfile::tempdir().expect("tmp");
    let line = serde_json::json!({"kind": "infer"});
    let mut rec = v.clone();
    if let (Some(o), Some(k)) = (rec.as_object_mut(), line.as_object()) {
        o.extend(k.clone());
    }
    std::fs::write(dir.path().join("runs.jsonl"), format!("{rec}\n")).expect("write");
    let md = dir.path().join("BENCH.md");
    let st = Command::new(BIN)
        .args(["report", "--in"])
        .arg(dir.path())
        .arg("--out")
        .arg(&md)
        .arg("--svg-dir")
        .arg(dir.path().join("svg"))
        .status()
        .expect("report");
    assert!(st.success());
    let text = std::fs::read_to_string(&md).expect("markdown");
    assert!(text.contains("| mlp-bc | 4 | none |"), "{text}");
    assert!(text.contains("cargo bench -p fusion-he --bench linear"));
}

#[test]
fn delphi_infer_reports_offline_and_online_apart_and_agrees_exactly() {
    let out = Command::new(BIN)
        .args([
            "infer",
            "--net",
            "mlp-bc",
            "--batch",
            "4",
            "--seed",
            "3",
            "--backend",
            "delphi",
            "--json",
            "--timeout",
            "300",
        ])
        .output()
        .expect("run fusion-bench");
    succeeded(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["backend"], "delphi");
    assert_eq!(v["ot"], "iknp");
    assert_eq!(v["argmax_agreement"], 1.0);
    // Exact truncation inside the garbled circuits: no one-bit errors.
    assert_eq!(v["max_logit_error"].as_f64().expect("f64"), 0.0);
    let total = v["bytes_total"].as_u64().expect("u64");
    let pre = v["preprocessing_bytes"].as_u64().expect("u64");
    let online = v["online_bytes"].as_u64().expect("u64");
    // The offline phase (HE masks, garbled tables, OTs) dominates.
    assert!(pre > online && online > 0, "{pre} offline, {online} online");
    assert_eq!(pre + online, total);
    assert!(v["preprocessing_s"].as_f64().expect("f64") > 0.0);
}

#[test]
fn aby_infer_reports_triples_apart_and_agrees_exactly() {
    let out = Command::new(BIN)
        .args([
            "infer",
            "--net",
            "mlp-bc",
            "--batch",
            "4",
            "--seed",
            "3",
            "--backend",
            "aby",
            "--json",
            "--timeout",
            "300",
        ])
        .output()
        .expect("run fusion-bench");
    succeeded(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["backend"], "aby");
    assert_eq!(v["ot"], "iknp");
    assert_eq!(v["argmax_agreement"], 1.0);
    // Exact truncation in Yao after A2Y: no one-bit errors.
    assert_eq!(v["max_logit_error"].as_f64().expect("f64"), 0.0);
    let total = v["bytes_total"].as_u64().expect("u64");
    let pre = v["preprocessing_bytes"].as_u64().expect("u64");
    let online = v["online_bytes"].as_u64().expect("u64");
    // The setup phase (OT triples, garbled tables, label OTs) dominates.
    assert!(pre > online && online > 0, "{pre} offline, {online} online");
    assert_eq!(pre + online, total);
    assert!(v["preprocessing_s"].as_f64().expect("f64") > 0.0);
}

#[test]
fn unknown_networks_are_usage_errors() {
    let out = Command::new(BIN)
        .args(["infer", "--net", "no-such-net", "--batch", "1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown network"));
}

#[test]
fn the_server_party_exits_when_its_parent_closes_stdin() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(BIN)
        .args([
            "party-server",
            "--net",
            "mlp-bc",
            "--batch",
            "1",
            "--seed",
            "0",
            "--ot",
            "silent",
            "--ring-bits",
            "37",
            "--frac-bits",
            "12",
            "--he",
            "auto",
            "--chunk",
            "256",
            "--mtu",
            "1500",
            "--timeout",
            "300",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    assert!(line.starts_with("LISTENING 127.0.0.1:"), "{line:?}");
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.expect("the server party outlived its parent's stdin");
    assert!(!status.success());
}

/// `elements` on a tiny batch: one parseable JSON object per (op, width),
/// every op checked against the plaintext (a wrong result would fail the run),
/// and the counters that do not depend on timing are consistent.
#[test]
fn elements_json_lists_every_op_and_width_checked_against_plaintext() {
    let out = Command::new(BIN)
        .args([
            "elements", "--n", "40", "--bits", "20,37", "--reps", "2", "--json",
        ])
        .output()
        .expect("run fusion-bench");
    succeeded(&out);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let ops = [
        "millionaire",
        "drelu",
        "relu",
        "truncate",
        "truncate_nonneg",
        "truncate_exact",
        "relu_truncate",
        "maxpool2x2",
    ];
    assert_eq!(rows.len(), ops.len() * 2);
    for (i, r) in rows.iter().enumerate() {
        let (op, bits) = (ops[i % ops.len()], [20, 37][i / ops.len()]);
        assert_eq!(r["op"], op);
        assert_eq!(r["bits"], bits);
        assert_eq!(r["n"], 40);
        assert_eq!(r["reps"], 2);
        assert_eq!(r["correct"], true, "{op} l={bits}");
        for key in ["command", "machine", "timestamp", "transport"] {
            assert!(!r[key].is_null(), "{op}: {key}");
        }
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{op}: {k}"));
        assert!(f("bits_protocol") > 0.0, "{op}");
        assert!(
            f("bits_call") >= f("bits_protocol"),
            "{op}: wire >= messages"
        );
        assert!(f("rots_consumed") >= 1.0, "{op}");
    }
}
