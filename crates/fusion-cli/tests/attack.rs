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

/// Kills and reaps the child when dropped.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fusion() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fusion"));
    c.env("FUSION_DATA", data());
    c
}

/// A deviating client (on a backend that refuses the shift mid-protocol,
/// and on one where the attack succeeds) neither stops nor hangs a real
/// `fusion serve`: an honest client is served afterwards.
#[test]
fn a_deviating_client_neither_stops_nor_hangs_the_server_for_honest_clients() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(fusion()
        .args(["keygen", "--out"])
        .arg(dir.join("keys"))
        .output()
        .expect("keygen"));
    for (extra, file) in [
        (&["--count", "2"][..], "q.csv"),
        (
            &["--offset", "4", "--count", "100", "--with-labels"][..],
            "p.csv",
        ),
    ] {
        ok(fusion()
            .args(["samples", "--data", "breast-cancer"])
            .args(extra)
            .arg("--out")
            .arg(dir.join(file))
            .output()
            .expect("samples"));
    }
    let mut server = Guard(
        fusion()
            .arg("serve")
            .arg("--model")
            .arg(data().join("models/bc-mlp"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--backend",
                "cheetah,delphi",
                "--cert",
            ])
            .arg(dir.join("keys/cert.pem"))
            .arg("--key")
            .arg(dir.join("keys/key.pem"))
            .args(["--timeout", "60"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let stdout = server.0.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on "))
        .expect("address line");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address")
        .to_string();
    let attack = |backend: &str| {
        fusion()
            .args(["attack", "muse", "--server", &addr, "--server-cert"])
            .arg(dir.join("keys/cert.pem"))
            .arg("--model")
            .arg(data().join("models/bc-mlp"))
            .args(["--backend", backend, "--json"])
            .arg(dir.join(format!("muse-{backend}.json")))
            .output()
            .expect("attack")
    };
    let refused = attack("delphi");
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    ok(attack("cheetah"));
    let honest = fusion()
        .args(["query", "--server", &addr, "--server-cert"])
        .arg(dir.join("keys/cert.pem"))
        .arg("--queries")
        .arg(dir.join("q.csv"))
        .arg("--public")
        .arg(dir.join("p.csv"))
        .args(["--quiet", "--timeout", "60"])
        .output()
        .expect("query");
    let text = String::from_utf8_lossy(&honest.stdout);
    assert_eq!(honest.status.code(), Some(0), "{text}");
    assert!(text.contains("ACCEPT"), "{text}");
    assert!(
        server.0.try_wait().expect("wait").is_none(),
        "the server is still running"
    );
}
