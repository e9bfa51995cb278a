//! The JSON Lines records `compare` and `tables` write and `report` reads.
//! One JSON object per line, tagged by `kind`.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, io};
use crate::fit::LinearFit;
use crate::infer::InferResult;
use crate::machine::Machine;

/// One line of a results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// One `infer` run (ours).
    Infer(Box<InferResult>),
    /// One SPU peer run.
    Spu(SpuRecord),
    /// Ours vs SPU on one network and batch.
    Compare(CompareRow),
    /// One cell row of the paper-shaped tables.
    Table(TableRow),
}

/// An SPU peer run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpuRecord {
    /// The command that ran the peer.
    pub command: String,
    /// The peer's JSON, unchanged.
    pub result: Value,
}

/// Ours vs SPU, same network, batch and machine, back to back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// Round number (0-based).
    pub round: usize,
    /// Network.
    pub net: String,
    /// Samples per batch.
    pub batch: usize,
    /// Our batch wall time (median), seconds.
    pub ours_wall_s: f64,
    /// SPU's batch wall time (`wall_s_median`), seconds.
    pub spu_wall_s: f64,
    /// Our inference bytes, both directions (median batch).
    pub ours_bytes: u64,
    /// SPU's inference bytes, both directions (`bytes_total_median`).
    pub spu_bytes: u64,
    /// `ours_wall_s / spu_wall_s`.
    pub wall_ratio: f64,
    /// `ours_bytes / spu_bytes`.
    pub bytes_ratio: f64,
    /// Our setup time.
    pub ours_setup_s: f64,
    /// SPU's setup time (its warm-up excess).
    pub spu_setup_s: Option<f64>,
    /// Our setup bytes.
    pub ours_setup_bytes: u64,
    /// SPU's setup bytes.
    pub spu_setup_bytes: Option<u64>,
    /// Our argmax agreement with the plaintext fixed-point engine.
    pub ours_argmax_agreement: f64,
    /// SPU's argmax agreement with numpy float64.
    pub spu_argmax_agreement: Option<f64>,
    /// Our flooding's statistical security per revealed HE coefficient: 40,
    /// the like-for-like setting of SPU's Cheetah (0 in older records).
    #[serde(default)]
    pub stat_sec_bits_per_coefficient: u32,
    /// Our flooding's statistical security over the whole session (per
    /// coefficient minus `log2` of the session's cap on revealed
    /// coefficients; SPU announces no cap).
    #[serde(default)]
    pub stat_sec_bits_per_session: f64,
    /// Our command.
    pub ours_command: String,
    /// SPU's command.
    pub spu_command: String,
    /// Machine.
    pub machine: Machine,
    /// When (UTC).
    pub timestamp: String,
    /// The `fusion-bench` command that produced the row.
    pub command: String,
}

fn cheetah() -> String {
    "cheetah".into()
}

/// Which paper table a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Tables II-IV: Fusion on the MNIST CNN / CIFAR-10-shaped CNN for several R.
    Queries,
    /// The LevioSA setting (TIMIT DNN, R = 1845, B = 5, T = 100).
    Leviosa,
    /// Table VI: ResNet50 per query.
    Resnet,
}

/// One row of a paper-shaped table: `R` queries with Fusion's `(B, T)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    /// Which table.
    pub table: Table,
    /// The backend (rows written before backends existed read as `cheetah`).
    #[serde(default = "cheetah")]
    pub backend: String,
    /// Network.
    pub net: String,
    /// Link (`lan` / `wan` / `none`).
    pub link: String,
    /// `R`.
    pub queries: u64,
    /// `B`.
    pub copies: u64,
    /// `T`.
    pub public: u64,
    /// `N = RB + T`.
    pub total: u64,
    /// `N / R`.
    pub overhead: f64,
    /// Semi-honest baseline: `R` queries in one batch, seconds (without setup).
    pub baseline_s: f64,
    /// Semi-honest baseline bytes (without setup).
    pub baseline_bytes: f64,
    /// Fusion: `N` samples in one batch, seconds (without setup).
    pub fusion_s: f64,
    /// Fusion bytes (without setup).
    pub fusion_bytes: f64,
    /// `fusion_s / R`.
    pub per_query_s: f64,
    /// `fusion_bytes / R`.
    pub per_query_bytes: f64,
    /// One-time session setup (mean over the measured runs), seconds.
    pub setup_s: f64,
    /// One-time setup bytes.
    pub setup_bytes: f64,
    /// True when the Fusion cell (`N` samples) is extrapolated from other batch sizes.
    pub extrapolated: bool,
    /// True when the baseline cell (`R` samples) is extrapolated.
    #[serde(default)]
    pub baseline_extrapolated: bool,
    /// The batch sizes measured for the fit.
    pub measured_batches: Vec<usize>,
    /// Time fit (seconds vs samples).
    pub time_fit: Option<LinearFit>,
    /// Bytes fit (bytes vs samples).
    pub bytes_fit: Option<LinearFit>,
    /// Free text: how the row was obtained.
    pub note: String,
    /// Machine.
    pub machine: Machine,
    /// When (UTC).
    pub timestamp: String,
    /// The `fusion-bench` command that produced the row.
    pub command: String,
}

/// Appends records to a JSON Lines file (creating its directory).
pub struct Sink {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Sink {
    /// Opens `path` for appending.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir.display(), e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path.display(), e))?;
        Ok(Sink {
            file,
            path: path.into(),
        })
    }

    /// Writes one record as one line.
    pub fn write(&mut self, r: &Record) -> Result<()> {
        let line = serde_json::to_string(r).map_err(|e| io("serialising a record", e))?;
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(|e| io(self.path.display(), e))
    }
}

/// Reads every record of every `*.jsonl` file in `dir` (or of the file `dir`),
/// skipping lines that are not records (with a warning on stderr).
pub fn read_records(dir: &Path) -> Result<Vec<Record>> {
    let mut files = Vec::new();
    if dir.is_file() {
        files.push(dir.to_path_buf());
    } else {
        for e in std::fs::read_dir(dir).map_err(|e| io(dir.display(), e))? {
            let p = e.map_err(|e| io(dir.display(), e))?.path();
            if p.extension().is_some_and(|x| x == "jsonl") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| io(f.display(), e))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(r) => out.push(r),
                Err(e) => eprintln!(
                    "fusion-bench: {}:{}: skipped (not a record: {e})",
                    f.display(),
                    i + 1
                ),
            }
        }
    }
    Ok(out)
}

/// Every line of the JSON Lines `files` as a `T` (blank lines skipped); a
/// line that is not a `T` is a usage error naming the file and line.
pub fn read_json_lines<T: serde::de::DeserializeOwned>(
    files: &[std::path::PathBuf],
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| crate::BenchError::Io(format!("{}: {e}", f.display())))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            out.push(serde_json::from_str(line).map_err(|e| {
                crate::BenchError::Usage(format!("{} line {}: {e}", f.display(), i + 1))
            })?);
        }
    }
    Ok(out)
}

/// Writes `text` to `path`, creating its directory.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::BenchError::Io(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| crate::BenchError::Io(format!("{}: {e}", path.display())))
}
