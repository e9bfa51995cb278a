//! `fusion-bench spu`: runs the SPU (SecretFlow) Cheetah peer benchmark
//! (`shared/peers/spu/bench.py`, see its README) and returns its JSON.
//!
//! The peer's Python venv is `--venv`, else `$FUSION_PEER_VENV`, else
//! `~/.cache/fusion-peers/spu-venv`; the peer directory is `--peer-dir`, else
//! `$FUSION_SPU_DIR`, else `../shared/peers/spu` relative to the repository
//! root. The peer counts **TCP payload bytes** of its brpc link per direction
//! (median over its measured inferences, brpc framing and the server's output
//! share included, setup excluded) and times each inference on the client
//! (encoding, `Runtime.run`, output reconstruction); weight encoding, compile
//! and link setup are excluded.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::error::{BenchError, Result, io};

/// Options of `fusion-bench spu`.
#[derive(Debug, Clone, clap::Args)]
pub struct SpuOptions {
    /// Network (mlp-bc, mlp-mnist, cnn-mnist, lenet, timit-dnn).
    #[arg(long, value_name = "NAME")]
    pub net: String,
    /// Samples per batch.
    #[arg(long, value_name = "N")]
    pub batch: usize,
    /// Measured inferences (the peer reports medians).
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub reps: usize,
    /// Warm-up inferences (they carry the peer's lazy OT and HE setup).
    #[arg(long, value_name = "W", default_value_t = 2)]
    pub warmup: usize,
    /// Seed.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Time limit in seconds (passed to the peer).
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub timeout: u64,
    /// The peer directory (default: $FUSION_SPU_DIR or ../shared/peers/spu from the repository root).
    #[arg(long, value_name = "DIR")]
    pub peer_dir: Option<PathBuf>,
    /// The peer's Python venv (default: $FUSION_PEER_VENV or ~/.cache/fusion-peers/spu-venv).
    #[arg(long, value_name = "DIR")]
    pub venv: Option<PathBuf>,
}

impl SpuOptions {
    /// Defaults for `net` and `batch`.
    pub fn new(net: &str, batch: usize) -> Self {
        SpuOptions {
            net: net.into(),
            batch,
            reps: 3,
            warmup: 2,
            seed: 0,
            timeout: 900,
            peer_dir: None,
            venv: None,
        }
    }

    /// The peer directory in effect.
    pub fn peer_dir(&self) -> PathBuf {
        self.peer_dir
            .clone()
            .or_else(|| std::env::var_os("FUSION_SPU_DIR").map(PathBuf::from))
            .unwrap_or_else(|| {
                repo_root()
                    .join("..")
                    .join("shared")
                    .join("peers")
                    .join("spu")
            })
    }

    /// The venv in effect.
    pub fn venv(&self) -> PathBuf {
        self.venv
            .clone()
            .or_else(|| std::env::var_os("FUSION_PEER_VENV").map(PathBuf::from))
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map_or_else(|| PathBuf::from("."), PathBuf::from)
                    .join(".cache")
                    .join("fusion-peers")
                    .join("spu-venv")
            })
    }

    /// The command line this runs.
    pub fn command(&self) -> String {
        format!(
            "{}/bin/python {}/bench.py --net {} --batch {} --reps {} --warmup {} --seed {} --timeout {}",
            self.venv().display(),
            self.peer_dir().display(),
            self.net,
            self.batch,
            self.reps,
            self.warmup,
            self.seed,
            self.timeout
        )
    }
}

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map_or(here.clone(), PathBuf::from)
}

/// Runs the SPU peer and returns its JSON object (an `{"error": ...}` object
/// from the peer becomes an error).
pub fn run_spu(o: &SpuOptions) -> Result<Value> {
    let dir = o.peer_dir();
    let bench = dir.join("bench.py");
    if !bench.is_file() {
        return Err(BenchError::Usage(format!(
            "the SPU peer is missing: no {} (set --peer-dir or FUSION_SPU_DIR)",
            bench.display()
        )));
    }
    let python = o.venv().join("bin").join("python");
    if !python.is_file() {
        return Err(BenchError::Usage(format!(
            "the SPU venv is missing: no {} (create it with `bash {}/setup.sh`, or set --venv or FUSION_PEER_VENV)",
            python.display(),
            dir.display()
        )));
    }
    eprintln!("fusion-bench: SPU {} batch {} ...", o.net, o.batch);
    let out = Command::new(&python)
        .arg(&bench)
        .args(["--net", &o.net])
        .args(["--batch", &o.batch.to_string()])
        .args(["--reps", &o.reps.to_string()])
        .args(["--warmup", &o.warmup.to_string()])
        .args(["--seed", &o.seed.to_string()])
        .args(["--timeout", &o.timeout.to_string()])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| io(format!("running {}", python.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = parse_peer_output(&text)?;
    if let Some(e) = value.get("error") {
        return Err(BenchError::Peer(format!("SPU peer: {e}")));
    }
    if !out.status.success() {
        return Err(BenchError::Peer(format!(
            "SPU peer exited with {}",
            out.status
        )));
    }
    Ok(value)
}

/// The last line of `text` that is a JSON object.
pub fn parse_peer_output(text: &str) -> Result<Value> {
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(Value::is_object)
        .ok_or_else(|| {
            BenchError::Peer(format!("no JSON object in the SPU peer's output: {text:?}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_output_takes_the_last_json_object() {
        let v = parse_peer_output("noise\n{\"a\": 1}\n{\"net\": \"x\"}\n").expect("json");
        assert_eq!(v["net"], "x");
        assert!(parse_peer_output("nothing here\n[1]\n").is_err());
    }

    #[test]
    fn a_missing_venv_is_a_clear_usage_error() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("bench.py"), "").expect("write");
        let mut o = SpuOptions::new("mlp-bc", 4);
        o.peer_dir = Some(dir.path().into());
        o.venv = Some(dir.path().join("no-venv"));
        let e = run_spu(&o).expect_err("missing venv");
        assert!(e.to_string().contains("venv is missing"), "{e}");
        o.peer_dir = Some(dir.path().join("nope"));
        assert!(
            run_spu(&o)
                .expect_err("missing")
                .to_string()
                .contains("peer is missing")
        );
    }
}
