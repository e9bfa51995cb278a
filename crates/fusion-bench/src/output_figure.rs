//! `fusion-bench output-figure`: the paper's Figure 7 shape from
//! `fusion-bench infer --output-mode MODE --json` lines: bytes and wall time
//! of a secure batch in each output mode (logits, label, reverse sigmoid) at
//! each measured batch size, as two SVG bar charts.
//!
//! Every bar is a measured line of the input files (the last line of each
//! (network, batch, mode) wins); nothing is interpolated.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

use crate::svg;
use crate::{BenchError, Result};

/// Options of `fusion-bench output-figure`.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputFigureOptions {
    /// JSON-lines files of `fusion-bench infer --output-mode MODE --json`.
    #[arg(long = "results", value_name = "FILE", required = true, num_args = 1..)]
    pub results: Vec<PathBuf>,
    /// Where the two charts go (`output-modes-bytes.svg`,
    /// `output-modes-time.svg`).
    #[arg(long, value_name = "DIR", default_value = "docs/bench")]
    pub svg_dir: PathBuf,
}

/// One line of `fusion-bench infer --json` (the keys drawn).
#[derive(Debug, Clone, Deserialize)]
pub struct OutputRecord {
    /// The zoo network.
    pub net: String,
    /// Samples in the batch.
    pub batch: usize,
    /// The server's output mode (older lines: logits).
    #[serde(default = "logits")]
    pub output_mode: String,
    /// Wire bytes of the batch, both directions.
    pub bytes_total: u64,
    /// Wall seconds of the batch.
    pub wall_s: f64,
}

fn logits() -> String {
    "logits".into()
}

/// Reads every record of the files.
pub fn read_records(files: &[PathBuf]) -> Result<Vec<OutputRecord>> {
    let out: Vec<OutputRecord> = crate::record::read_json_lines(files)?;
    if out.is_empty() {
        return Err(BenchError::Usage("no records in the input".into()));
    }
    Ok(out)
}

/// The two charts (bytes in MiB, wall seconds): categories `net, batch N`,
/// one series per output mode.
pub fn figures(records: &[OutputRecord]) -> (String, String) {
    let cats: BTreeSet<(String, usize)> =
        records.iter().map(|r| (r.net.clone(), r.batch)).collect();
    let cats: Vec<(String, usize)> = cats.into_iter().collect();
    let order = ["logits", "label", "reverse-sigmoid"];
    let mut modes: Vec<String> = records.iter().map(|r| r.output_mode.clone()).collect();
    modes.sort_by_key(|m| {
        (
            order.iter().position(|o| m.starts_with(o)).unwrap_or(9),
            m.clone(),
        )
    });
    modes.dedup();
    let find = |net: &str, batch: usize, mode: &str| {
        records
            .iter()
            .rev()
            .find(|r| r.net == net && r.batch == batch && r.output_mode == mode)
    };
    let series = |f: &dyn Fn(&OutputRecord) -> f64| -> Vec<(String, Vec<f64>)> {
        modes
            .iter()
            .map(|m| {
                let v = cats
                    .iter()
                    .map(|(net, b)| find(net, *b, m).map_or(0.0, f))
                    .collect();
                (m.clone(), v)
            })
            .collect()
    };
    let categories: Vec<String> = cats
        .iter()
        .map(|(n, b)| format!("{n}, batch {b}"))
        .collect();
    let bytes = svg::bar_chart(
        "Figure 7 shape: bytes of a secure batch per output mode",
        "MiB",
        &categories,
        &series(&|r| r.bytes_total as f64 / (1024.0 * 1024.0)),
    );
    let time = svg::bar_chart(
        "Figure 7 shape: wall time of a secure batch per output mode",
        "seconds",
        &categories,
        &series(&|r| r.wall_s),
    );
    (bytes, time)
}

/// Runs `fusion-bench output-figure`; returns the files written.
pub fn run_output_figure(o: &OutputFigureOptions) -> Result<Vec<PathBuf>> {
    let records = read_records(&o.results)?;
    let (bytes, time) = figures(&records);
    let files = vec![
        o.svg_dir.join("output-modes-bytes.svg"),
        o.svg_dir.join("output-modes-time.svg"),
    ];
    crate::record::write_file(&files[0], &bytes)?;
    crate::record::write_file(&files[1], &time)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(batch: usize, mode: &str, bytes: u64) -> OutputRecord {
        OutputRecord {
            net: "cnn-mnist".into(),
            batch,
            output_mode: mode.into(),
            bytes_total: bytes,
            wall_s: 1.0,
        }
    }

    #[test]
    fn the_figure_has_one_bar_per_mode_and_batch_with_the_last_measurement() {
        let r = [
            rec(8, "reverse-sigmoid", 3 << 20),
            rec(8, "logits", 1 << 20),
            rec(8, "logits", 2 << 20),
            rec(32, "label", 5 << 20),
        ];
        let (bytes, time) = figures(&r);
        for label in [
            "cnn-mnist, batch 8",
            "cnn-mnist, batch 32",
            "logits",
            "label",
        ] {
            assert!(bytes.contains(label), "{label}");
            assert!(time.contains(label), "{label}");
        }
        assert!(bytes.contains("reverse-sigmoid"));
        // Modes in the command line's order.
        let (a, b) = (bytes.find(">logits<"), bytes.find(">reverse-sigmoid<"));
        assert!(a.is_some() && b.is_some() && a < b, "{bytes}");
    }

    #[test]
    fn an_empty_or_malformed_input_is_a_usage_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("x.jsonl");
        std::fs::write(&f, "").expect("write");
        assert!(matches!(
            read_records(std::slice::from_ref(&f)),
            Err(BenchError::Usage(_))
        ));
        std::fs::write(&f, "{\"net\": 3}\n").expect("write");
        assert!(matches!(read_records(&[f]), Err(BenchError::Usage(_))));
    }
}
