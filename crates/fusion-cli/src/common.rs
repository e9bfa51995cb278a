//! Helpers shared by the networked subcommands: exit codes, the async
//! runtime, thread pools, sample files, progress display and traffic tables.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use fusion_engine::stats::human_bytes;
use fusion_engine::{Progress, ProgressFn};
use fusion_net::{MeterReport, Phase};
use fusion_nn::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::ChaCha20Rng;

/// Exit code: Fusion accepted / success.
pub const EXIT_OK: u8 = 0;
/// Exit code: failure (network, protocol, I/O).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage error (bad arguments or input files).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: Fusion aborted (cheating detected or the model missed the threshold).
pub const EXIT_ABORT: u8 = 3;
/// Exit code: the server was busy (at its limit of concurrent sessions, or
/// shutting down) and refused the session before any protocol work; retry
/// later.
pub const EXIT_BUSY: u8 = 4;
/// Exit code: the server refused because our quota for its current period is
/// used up (the message says when it resets).
pub const EXIT_QUOTA: u8 = 5;

/// A subcommand's failure, with its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or input files (exit 2).
    Usage(String),
    /// Anything else (exit 1).
    Failure(String),
    /// The server refused: our quota is used up (exit 5).
    Quota(String),
    /// The server refused the session as busy (exit 4).
    Busy {
        /// The server's suggested wait, seconds.
        retry_after_secs: u64,
    },
}

impl CliError {
    /// The same error with `what: ` in front of its message (a busy refusal
    /// is kept as it is, so that retries still apply).
    pub fn context(self, what: &str) -> CliError {
        match self {
            CliError::Usage(m) => CliError::Usage(format!("{what}: {m}")),
            CliError::Failure(m) => CliError::Failure(format!("{what}: {m}")),
            CliError::Quota(m) => CliError::Quota(format!("{what}: {m}")),
            busy @ CliError::Busy { .. } => busy,
        }
    }

    /// Prints the error with the subcommand's name and returns its exit code.
    pub fn report(&self, cmd: &str) -> ExitCode {
        match self {
            CliError::Usage(m) => {
                eprintln!("fusion {cmd}: {m}");
                ExitCode::from(EXIT_USAGE)
            }
            CliError::Failure(m) => {
                eprintln!("fusion {cmd}: {m}");
                ExitCode::from(EXIT_FAILURE)
            }
            CliError::Busy { retry_after_secs } => {
                eprintln!("fusion {cmd}: busy, retry after {retry_after_secs} seconds");
                ExitCode::from(EXIT_BUSY)
            }
            CliError::Quota(m) => {
                eprintln!("fusion {cmd}: {m}");
                ExitCode::from(EXIT_QUOTA)
            }
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failure(m) | CliError::Quota(m) => f.write_str(m),
            CliError::Busy { retry_after_secs } => {
                write!(f, "busy, retry after {retry_after_secs} seconds")
            }
        }
    }
}

/// `Failure` from any displayable error.
pub fn failure(e: impl std::fmt::Display) -> CliError {
    CliError::Failure(e.to_string())
}

/// `Usage` from any displayable error.
pub fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// The client identity of `--client-cert FILE --client-key FILE` (clap
/// requires both or neither); `None` without them.
pub fn client_identity(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<fusion_net::Identity>, CliError> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some(
            fusion_net::Identity::from_pem_files(c, k).map_err(usage)?,
        )),
        _ => Ok(None),
    }
}

/// The runtime `fusion serve` runs its sessions on, apart from the runtime
/// of the listener and the connections' network tasks ([`runtime`]): a
/// protocol step that computes on its async task (instead of rayon or the
/// blocking pool) then delays other sessions' protocol steps at most, never
/// the QUIC endpoint, the stream managers, hellos or refusals. One worker per
/// core, at least two.
pub fn session_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.max(2))
        .thread_name("fusion-session")
        .enable_all()
        .build()
        .map_err(|e| failure(format!("cannot start the session runtime: {e}")))
}

/// A multi-threaded tokio runtime.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| failure(format!("cannot start the async runtime: {e}")))
}

/// Sizes the global rayon pool: CryProt's OT receivers block a worker while
/// they wait for the network, so a process needs spare workers (more when
/// both parties run in it). Idempotent; call before any rayon use.
pub fn init_rayon() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(cores.max(2) * 2)
        .build_global();
}

/// Logs to stderr (`RUST_LOG` overrides the default filter). cryprot-net
/// logs every stream its manager fails to accept once a connection closes,
/// which is how every session ends: silenced unless `RUST_LOG` asks for it.
pub fn init_logging(default: &str) {
    init_logging_as(default, LogFormat::Text);
}

/// Parses `--output-mode`: `logits`, `label`, `reverse-sigmoid` or
/// `reverse-sigmoid:BETA,GAMMA` (see `fusion_engine::OutputMode`).
pub fn parse_output_mode(s: &str) -> Result<fusion_engine::OutputMode, String> {
    s.parse()
        .map_err(|e: fusion_engine::SecureError| e.to_string())
}

/// The format of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, message and the
    /// event's fields), for log collectors.
    Json,
}

/// [`init_logging`] in the given format.
pub fn init_logging_as(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},cryprot_net=off"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// A ChaCha20 generator seeded from the operating system.
pub fn os_rng() -> Result<ChaCha20Rng, CliError> {
    fusion_core::mix::os_rng().map_err(failure)
}

/// A hidden `--seed` on the commands that must never take one (`serve`,
/// `query`, `demo`): given, it is refused with the reason, so that a seed
/// that works for `fusion experiment` is never silently ignored or used.
#[derive(clap::Args, Debug, Default)]
pub struct NoSeed {
    #[arg(long, hide = true, value_name = "N", allow_hyphen_values = true)]
    seed: Option<String>,
}

impl NoSeed {
    /// Refuses a given `--seed` (exit 2).
    pub fn check(&self, command: &str) -> Result<(), CliError> {
        match &self.seed {
            None => Ok(()),
            Some(_) => Err(usage(format!(
                "fusion {command} takes no --seed: its permutation, masks and keys come from \
                 the operating system's RNG only (a seeded run is predictable by anyone who \
                 knows the seed); seeds are for `fusion experiment` and `fusion-bench`"
            ))),
        }
    }
}

/// Samples read from a CSV file (see [`read_samples`]).
#[derive(Debug, Clone)]
pub struct SampleFile {
    /// Feature values per sample.
    pub features: usize,
    /// The samples (raw features / pixels), in file order.
    pub samples: Vec<Vec<f32>>,
    /// The `label` column, if the file has one.
    pub labels: Option<Vec<usize>>,
}

/// Largest sample file we read (1 GiB).
const MAX_FILE: u64 = 1 << 30;

/// Reads a sample file: CSV, one sample per row, comma-separated numbers.
/// Blank lines and lines starting with `#` are skipped. An optional first
/// row of column names (any non-numeric field makes a row a header) may name
/// one column `label`: the sample's class index; all other columns are the
/// raw features in order (for images, the pixels row-major, `0..255`).
/// `need_labels` makes the `label` column mandatory.
pub fn read_samples(path: &Path, need_labels: bool) -> Result<SampleFile, CliError> {
    let bad = |m: String| usage(format!("{}: {m}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > MAX_FILE {
        return Err(bad(format!("larger than {} bytes", MAX_FILE)));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .peekable();
    let Some(&(first_no, first)) = lines.peek() else {
        return Err(bad("no samples".into()));
    };
    let fields: Vec<&str> = first.split(',').map(str::trim).collect();
    let is_header = fields.iter().any(|f| f.parse::<f64>().is_err());
    let (columns, label_col) = if is_header {
        lines.next();
        let labels: Vec<usize> = fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.eq_ignore_ascii_case("label"))
            .map(|(i, _)| i)
            .collect();
        if labels.len() > 1 {
            return Err(bad(format!("line {first_no}: several `label` columns")));
        }
        (fields.len(), labels.first().copied())
    } else {
        (fields.len(), None)
    };
    if need_labels && label_col.is_none() {
        return Err(bad(
            "no `label` column: public samples need a header row naming one column `label` \
             (write such files with `fusion samples --with-labels`)"
                .into(),
        ));
    }
    let features = columns - usize::from(label_col.is_some());
    if features == 0 {
        return Err(bad("no feature columns".into()));
    }
    let mut samples = Vec::new();
    let mut labels = label_col.map(|_| Vec::new());
    for (no, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns {
            return Err(bad(format!(
                "line {no}: {} fields, expected {columns}",
                fields.len()
            )));
        }
        let mut row = Vec::with_capacity(features);
        for (i, f) in fields.iter().enumerate() {
            if Some(i) == label_col {
                let v: f64 = f
                    .parse()
                    .map_err(|_| bad(format!("line {no}: label `{f}` is not a number")))?;
                if !(v >= 0.0 && v.fract() == 0.0 && v < 1e9) {
                    return Err(bad(format!("line {no}: label `{f}` is not a class index")));
                }
                if let Some(l) = labels.as_mut() {
                    l.push(v as usize);
                }
            } else {
                let v: f32 = f
                    .parse()
                    .map_err(|_| bad(format!("line {no}: `{f}` is not a number")))?;
                if !v.is_finite() {
                    return Err(bad(format!("line {no}: `{f}` is not finite")));
                }
                row.push(v);
            }
        }
        samples.push(row);
    }
    if samples.is_empty() {
        return Err(bad("no samples".into()));
    }
    Ok(SampleFile {
        features,
        samples,
        labels,
    })
}

/// Writes samples `range` of a batch (and optionally their labels) in the
/// format [`read_samples`] reads, with a header row `x0,...,x{d-1}[,label]`.
pub fn write_samples(
    path: &Path,
    inputs: &Tensor<f32>,
    labels: Option<&[usize]>,
    range: std::ops::Range<usize>,
) -> std::io::Result<()> {
    let d = inputs.sample_len();
    let mut out = String::with_capacity(range.len() * d * 4 + 64);
    let header: Vec<String> = (0..d).map(|i| format!("x{i}")).collect();
    out.push_str(&header.join(","));
    if labels.is_some() {
        out.push_str(",label");
    }
    out.push('\n');
    for i in range {
        let row: Vec<String> = inputs.sample(i).iter().map(|v| v.to_string()).collect();
        out.push_str(&row.join(","));
        if let Some(l) = labels {
            let _ = write!(out, ",{}", l[i]);
        }
        out.push('\n');
    }
    std::fs::write(path, out)
}

/// A progress bar on stderr for `total` steps, hidden when `quiet` or when
/// stderr is not a terminal; and the engine callback that drives it.
pub fn progress(quiet: bool, what: &str) -> (ProgressBar, ProgressFn) {
    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(1);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} steps (eta {eta})",
        ) {
            b.set_style(style);
        }
        b
    };
    bar.set_message(what.to_string());
    let b = bar.clone();
    let callback: ProgressFn = Arc::new(move |p: Progress| {
        b.set_length(p.total as u64);
        b.set_position(p.done as u64);
    });
    (bar, callback)
}

/// A table of wire bytes and time per phase. Bytes are attributed by the
/// *receiving* party's meter (a receiver waits for its data inside the phase,
/// while a sender's datagrams may leave after it has moved on): client to
/// server from the server's report when known (else the client's sent
/// bytes), server to client from the client's.
pub fn phase_table(client: &MeterReport, server: Option<&MeterReport>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<13} {:>14} {:>14} {:>10} {:>10}",
        "phase", "client->server", "server->client", "client s", "server s"
    );
    let secs = |r: Option<&MeterReport>, name: Phase| {
        r.and_then(|r| r.phase(name))
            .map_or("-".to_string(), |p| format!("{:.3}", p.seconds))
    };
    for name in Phase::ALL {
        let c = client.phase(name);
        let sv = server.and_then(|r| r.phase(name));
        if c.is_none() && sv.is_none() {
            continue;
        }
        let up = match server {
            Some(_) => sv.map_or(0, |p| p.counters.bytes_received),
            None => c.map_or(0, |p| p.counters.bytes_sent),
        };
        let down = c.map_or(0, |p| p.counters.bytes_received);
        let _ = writeln!(
            s,
            "  {:<13} {:>14} {:>14} {:>10} {:>10}",
            name.as_str(),
            human_bytes(up),
            human_bytes(down),
            secs(Some(client), name),
            secs(server, name)
        );
    }
    let up = server.map_or(client.total.bytes_sent, |r| r.total.bytes_received);
    let _ = write!(
        s,
        "  {:<13} {:>14} {:>14} {:>10} {:>10}",
        "total",
        human_bytes(up),
        human_bytes(client.total.bytes_received),
        format!("{:.3}", client.seconds),
        server.map_or("-".to_string(), |r| format!("{:.3}", r.seconds))
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_files_round_trip_and_bad_files_are_usage_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("s.csv");
        let t = Tensor::new(vec![2, 3], vec![1.5, 2.0, -3.25, 0.0, 255.0, 1e-3]).expect("t");
        write_samples(&p, &t, Some(&[1, 0]), 0..2).expect("write");
        let f = read_samples(&p, true).expect("read");
        assert_eq!(f.features, 3);
        assert_eq!(
            f.samples,
            vec![vec![1.5, 2.0, -3.25], vec![0.0, 255.0, 1e-3]]
        );
        assert_eq!(f.labels, Some(vec![1, 0]));
        write_samples(&p, &t, None, 1..2).expect("write");
        assert!(matches!(read_samples(&p, true), Err(CliError::Usage(_))));
        let f = read_samples(&p, false).expect("read");
        assert_eq!(f.samples.len(), 1);
        for bad in [
            "1,2\n3\n",
            "a,label\n1,x\n",
            "x,label\n1,-1\n",
            "",
            "x,label,label\n1,1,1\n",
        ] {
            std::fs::write(&p, bad).expect("write");
            assert!(
                matches!(read_samples(&p, false), Err(CliError::Usage(_))),
                "{bad:?}"
            );
        }
        std::fs::write(&p, "# comment\n1,2\n\n3,4\n").expect("write");
        assert_eq!(read_samples(&p, false).expect("read").samples.len(), 2);
    }
}

/// Where a served model's accepted input box comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputBoundSource {
    /// Given with `--input-bound`.
    Given,
    /// The largest preprocessed value of the model's dataset (both splits).
    Dataset(String),
}

/// The accepted input box of the model in `dir`: `given`, else the largest
/// `|x|` of its dataset's samples after preprocessing (train and test
/// splits), else `None` (the model names no dataset the registry can load;
/// the reason is returned for the log).
pub fn input_bound(
    dir: &Path,
    given: Option<f64>,
) -> Result<Result<(f64, InputBoundSource), String>, CliError> {
    if let Some(b) = given {
        if !(b.is_finite() && b > 0.0) {
            return Err(usage(format!(
                "--input-bound must be a positive number, not {b}"
            )));
        }
        return Ok(Ok((b, InputBoundSource::Given)));
    }
    let model = fusion_nn::Model::load(dir).map_err(usage)?;
    let Some(name) = model.meta.dataset.clone() else {
        return Ok(Err("the model names no dataset".into()));
    };
    let data_dir = match fusion_nn::data::data_dir() {
        Ok(d) => d,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let mut bound = 0f64;
    for part in [fusion_nn::data::Part::Train, fusion_nn::data::Part::Test] {
        let split = match fusion_nn::data::load(&data_dir, &name, part) {
            Ok(s) => s,
            Err(e) => return Ok(Err(format!("dataset `{name}`: {e}"))),
        };
        let m = fusion_nn::calibrate::input_max_abs(&model, &split.inputs).map_err(failure)?;
        bound = bound.max(m);
    }
    if bound > 0.0 {
        Ok(Ok((bound, InputBoundSource::Dataset(name))))
    } else {
        Ok(Err(format!("dataset `{name}` has only zero inputs")))
    }
}
