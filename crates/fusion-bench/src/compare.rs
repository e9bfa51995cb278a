//! `fusion-bench compare`: ours and SPU side by side, in one run on the same
//! machine, alternating (ours, then SPU, per case and round), with ratios
//! ours/SPU of inference bytes (both directions) and batch wall time.
//!
//! What is compared: our inference bytes are QUIC wire bytes (UDP payload)
//! of one batch from our client's meter; SPU's are the kernel's TCP payload
//! counters of its brpc link (framing and the output share included), median
//! over its measured inferences. Setup (our connect + HE key + OT setup; SPU's
//! lazy Ferret OT and HE key setup in its warm-ups) is excluded from both and
//! reported apart. Our server encodes the weights for the batch size before
//! listening (model load), as SPU encodes them before its first inference.
//! Both run over plain loopback (no emulated link).

use std::path::PathBuf;

use crate::error::{BenchError, Result};
use crate::infer::{InferOptions, run_infer};
use crate::machine::{Machine, command_line, timestamp};
use crate::record::{CompareRow, Record, Sink, SpuRecord};
use crate::spu::{SpuOptions, run_spu};

/// Options of `fusion-bench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareOptions {
    /// Cases NET:BATCH, comma separated.
    #[arg(
        long,
        value_name = "NET:BATCH,...",
        value_delimiter = ',',
        default_value = "mlp-mnist:128,cnn-mnist:16,lenet:1"
    )]
    pub cases: Vec<String>,
    /// Rounds over all cases.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub rounds: usize,
    /// Measured batches per run, both engines (medians are compared).
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub reps: usize,
    /// Our unmeasured batches before them.
    #[arg(long, value_name = "W", default_value_t = 0)]
    pub warmup: usize,
    /// SPU's warm-up inferences (its lazy setup happens there).
    #[arg(long, value_name = "W", default_value_t = 2)]
    pub spu_warmup: usize,
    /// Seed of weights and inputs.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Output file (JSON Lines, appended).
    #[arg(long, value_name = "FILE", default_value = "results/compare.jsonl")]
    pub out: PathBuf,
    /// The SPU peer directory (see `fusion-bench spu`).
    #[arg(long, value_name = "DIR")]
    pub peer_dir: Option<PathBuf>,
    /// The SPU venv (see `fusion-bench spu`).
    #[arg(long, value_name = "DIR")]
    pub venv: Option<PathBuf>,
}

/// Parses `NET:BATCH`.
pub fn parse_case(s: &str) -> Result<(String, usize)> {
    let (net, b) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| BenchError::Usage(format!("case `{s}` is not NET:BATCH")))?;
    let b: usize = b
        .parse()
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| BenchError::Usage(format!("case `{s}`: bad batch size")))?;
    Ok((net.to_string(), b))
}

fn u64_of(v: &serde_json::Value, k: &str) -> Option<u64> {
    v.get(k)
        .and_then(serde_json::Value::as_f64)
        .map(|x| x as u64)
}

/// Runs the comparison; returns the rows (also appended to `--out`).
pub fn run_compare(o: &CompareOptions) -> Result<Vec<CompareRow>> {
    let cases: Vec<(String, usize)> = o
        .cases
        .iter()
        .map(|c| parse_case(c))
        .collect::<Result<_>>()?;
    let mut sink = Sink::open(&o.out)?;
    let mut rows = Vec::new();
    for round in 0..o.rounds.max(1) {
        for (net, batch) in &cases {
            let mut ours = InferOptions::new(net, *batch);
            ours.seed = o.seed;
            ours.reps = o.reps;
            ours.warmup = o.warmup;
            let mine = run_infer(&ours)?;
            sink.write(&Record::Infer(Box::new(mine.clone())))?;
            let mut spu = SpuOptions::new(net, *batch);
            spu.seed = o.seed;
            spu.reps = o.reps;
            spu.warmup = o.spu_warmup;
            spu.peer_dir.clone_from(&o.peer_dir);
            spu.venv.clone_from(&o.venv);
            let theirs = run_spu(&spu)?;
            sink.write(&Record::Spu(SpuRecord {
                command: spu.command(),
                result: theirs.clone(),
            }))?;
            let spu_wall = theirs
                .get("wall_s_median")
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| BenchError::Peer("SPU JSON lacks wall_s_median".into()))?;
            let spu_bytes = u64_of(&theirs, "bytes_total_median")
                .ok_or_else(|| BenchError::Peer("SPU JSON lacks bytes_total_median".into()))?;
            let row = CompareRow {
                round,
                net: net.clone(),
                batch: *batch,
                ours_wall_s: mine.wall_s,
                spu_wall_s: spu_wall,
                ours_bytes: mine.bytes_total,
                spu_bytes,
                wall_ratio: mine.wall_s / spu_wall,
                bytes_ratio: mine.bytes_total as f64 / spu_bytes.max(1) as f64,
                ours_setup_s: mine.setup_s,
                spu_setup_s: theirs.get("setup_s").and_then(serde_json::Value::as_f64),
                ours_setup_bytes: mine.setup_bytes,
                spu_setup_bytes: u64_of(&theirs, "setup_bytes"),
                ours_argmax_agreement: mine.argmax_agreement,
                spu_argmax_agreement: theirs
                    .get("argmax_agreement")
                    .and_then(serde_json::Value::as_f64),
                stat_sec_bits_per_coefficient: mine.stat_sec_bits_per_coefficient,
                stat_sec_bits_per_session: mine.stat_sec_bits_per_session,
                ours_command: mine.command.clone(),
                spu_command: spu.command(),
                machine: Machine::current(),
                timestamp: timestamp(),
                command: command_line(),
            };
            eprintln!(
                "fusion-bench: {net} batch {batch}: time ours/SPU {:.2} ({:.3} s / {:.3} s), bytes ours/SPU {:.2}",
                row.wall_ratio, row.ours_wall_s, row.spu_wall_s, row.bytes_ratio
            );
            sink.write(&Record::Compare(row.clone()))?;
            rows.push(row);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_parse_and_bad_cases_are_rejected() {
        assert_eq!(parse_case("lenet:1").expect("ok"), ("lenet".into(), 1));
        for bad in ["lenet", "lenet:0", "lenet:x"] {
            assert!(parse_case(bad).is_err(), "{bad}");
        }
    }
}
