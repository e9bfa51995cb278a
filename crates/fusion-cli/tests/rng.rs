//! `fusion serve`, `fusion query` and `fusion demo` take no seed: their
//! randomness comes from the operating system only, and a `--seed` (which
//! `fusion experiment` accepts) is refused with the reason, before any work.

use std::process::{Command, Output};

fn fusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("the fusion binary runs")
}

fn assert_refused(args: &[&str]) {
    let o = fusion(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains("takes no --seed") && err.contains("operating system"),
        "{args:?}: {err}"
    );
    assert!(o.stdout.is_empty(), "{args:?} did work before refusing");
}

#[test]
fn serve_refuses_a_seed() {
    assert_refused(&[
        "serve",
        "--model",
        "data/models/bc-mlp",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        "/nonexistent.pem",
        "--key",
        "/nonexistent.pem",
        "--seed",
        "1",
    ]);
}

#[test]
fn query_refuses_a_seed() {
    assert_refused(&[
        "query",
        "--server",
        "127.0.0.1:9",
        "--server-fingerprint",
        "00",
        "--queries",
        "/nonexistent.csv",
        "--public",
        "/nonexistent.csv",
        "--seed",
        "1",
    ]);
}

#[test]
fn demo_refuses_a_seed() {
    assert_refused(&["demo", "--seed", "7"]);
}

#[test]
fn experiments_still_take_a_seed() {
    let o = fusion(&["experiment", "honest", "--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("--seed"));
}
