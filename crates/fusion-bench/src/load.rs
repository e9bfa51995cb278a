//! `fusion-bench load`: a load test of `fusion serve`.
//!
//! Starts `fusion serve` as a child process on 127.0.0.1 (a fresh
//! throw-away certificate, `--max-sessions N` if given) and drives it with
//! `C` concurrent clients that run `S` sessions in total. Each session is
//! what a Fusion client does: connect (QUIC + TLS, pinning the server), the
//! hello and the backend's setup, one batch of `--batch` samples through the
//! secure engine (`cheetah`), and the goodbye. A busy refusal is counted in
//! `refused` and retried after the seconds the server suggests.
//!
//! The JSON record has `completed` (sessions served to their end), `failed`
//! (ended with an error other than a busy refusal), `lost` (no end within
//! `--session-timeout` seconds, retries included), with
//! `completed + failed + lost = S`; `refused` (busy refusals that were
//! retried); `p50_s`, `p95_s`, `p99_s` and `mean_s` of the completed
//! sessions' times (from the first connection attempt to the goodbye,
//! retries included); `wall_s`; and `server_peak_rss_bytes`, the server
//! process's peak resident set (`VmHWM` of `/proc/PID/status`, Linux).
//!
//! The `fusion` binary is looked up next to `fusion-bench` (build both:
//! `cargo build --release -p fusion-cli -p fusion-bench`) unless `--fusion`
//! names it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fusion_engine::{ClientConfig, SecureClient, SecureError};
use fusion_net::{Identity, NetConfig, ServerPin};
use serde::Serialize;

use crate::error::{BenchError, Result, io};

/// Options of `fusion-bench load`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent clients.
    #[arg(long, value_name = "C", default_value_t = 8)]
    pub clients: usize,
    /// Sessions in total (spread over the clients).
    #[arg(long, value_name = "S", default_value_t = 64)]
    pub sessions: usize,
    /// The served model directory.
    #[arg(long, value_name = "DIR", default_value = "data/models/bc-mlp")]
    pub model: PathBuf,
    /// The server's --max-sessions (default: the server's own default, the
    /// machine's cores).
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Samples per session (one batch).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub batch: usize,
    /// A session (retries included) that has not ended after this many
    /// seconds is counted as lost.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub session_timeout: u64,
    /// The `fusion` binary (default: next to this executable).
    #[arg(long, value_name = "PATH")]
    pub fusion: Option<PathBuf>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// What a load test measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The served model's directory.
    pub model: String,
    /// Concurrent clients `C`.
    pub clients: usize,
    /// Sessions in total `S`.
    pub sessions: usize,
    /// The server's `--max-sessions` (`None`: its default).
    pub max_sessions: Option<usize>,
    /// Samples per session.
    pub batch: usize,
    /// Sessions served to their end.
    pub completed: usize,
    /// Busy refusals that were retried.
    pub refused: u64,
    /// Sessions that ended with an error (not a busy refusal).
    pub failed: usize,
    /// Sessions with no end within the session timeout.
    pub lost: usize,
    /// Median time of a completed session, seconds (first attempt to goodbye).
    pub p50_s: f64,
    /// 95th percentile, seconds.
    pub p95_s: f64,
    /// 99th percentile, seconds.
    pub p99_s: f64,
    /// Mean, seconds.
    pub mean_s: f64,
    /// Wall-clock time of the whole test, seconds.
    pub wall_s: f64,
    /// Completed sessions per second of wall-clock time.
    pub sessions_per_s: f64,
    /// The server process's peak resident set, bytes (`VmHWM`).
    pub server_peak_rss_bytes: u64,
    /// The first few failure messages.
    pub failures: Vec<String>,
}

impl LoadReport {
    /// A short human summary.
    pub fn summary(&self) -> String {
        format!(
            "load: {} clients, {} sessions of {} samples (max sessions {}): {} completed, {} \
             failed, {} lost, {} busy refusals retried; p50 {:.2} s, p95 {:.2} s, p99 {:.2} s; \
             {:.2} sessions/s; server peak RSS {:.1} MiB\n",
            self.clients,
            self.sessions,
            self.batch,
            self.max_sessions
                .map_or_else(|| "default".to_string(), |n| n.to_string()),
            self.completed,
            self.failed,
            self.lost,
            self.refused,
            self.p50_s,
            self.p95_s,
            self.p99_s,
            self.sessions_per_s,
            self.server_peak_rss_bytes as f64 / (1024.0 * 1024.0)
        )
    }
}

/// The `q`-quantile (nearest rank) of sorted values; 0 if empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Kills and reaps the server when dropped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fusion_binary(o: &LoadOptions) -> Result<PathBuf> {
    if let Some(p) = &o.fusion {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().map_err(|e| io("current executable", e))?;
    let p = exe.with_file_name(format!("fusion{}", std::env::consts::EXE_SUFFIX));
    if p.is_file() {
        Ok(p)
    } else {
        Err(BenchError::Usage(format!(
            "no `fusion` binary at {} (build it: cargo build --release -p fusion-cli, or give --fusion)",
            p.display()
        )))
    }
}

/// Peak resident set of a process (`VmHWM`), bytes.
fn peak_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| io(format!("/proc/{pid}/status"), e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| BenchError::Peer("no VmHWM in /proc status".into()))
}

fn start_server(o: &LoadOptions, keys: &Path) -> Result<(ServerProcess, SocketAddr, ServerPin)> {
    let identity = Identity::generate(&[]).map_err(|e| BenchError::Session(e.to_string()))?;
    let (cert, key) = identity
        .write_pem_files(keys)
        .map_err(|e| BenchError::Io(e.to_string()))?;
    let mut cmd = Command::new(fusion_binary(o)?);
    cmd.arg("serve")
        .arg("--model")
        .arg(&o.model)
        .args(["--listen", "127.0.0.1:0", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--timeout", &o.session_timeout.to_string()]);
    if let Some(n) = o.max_sessions {
        cmd.args(["--max-sessions", &n.to_string()]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io("spawning fusion serve", e))?;
    let stdout = child.stdout.take();
    let proc = ServerProcess(child);
    let stdout = stdout.ok_or_else(|| BenchError::Peer("no stdout pipe".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Some(Ok(l))) => l,
        _ => {
            return Err(BenchError::Peer(
                "fusion serve did not print its address".into(),
            ));
        }
    };
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| BenchError::Peer(format!("no address in {line:?}")))?;
    Ok((proc, addr, identity.pin()))
}

enum SessionEnd {
    Completed(f64),
    Failed(String),
    Lost,
}

/// One session with retries on busy refusals.
async fn one_session(
    addr: SocketAddr,
    pin: ServerPin,
    batch: usize,
    timeout: Duration,
    refused: Arc<AtomicU64>,
) -> SessionEnd {
    let start = Instant::now();
    let attempt = async {
        loop {
            let net = NetConfig::default();
            let session = fusion_net::connect(addr, &pin, &net)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let backend = fusion_engine::backends::by_name("cheetah").map_err(|e| e.to_string())?;
            let mut rng = fusion_core::mix::os_rng().map_err(|e| e.to_string())?;
            let config = ClientConfig {
                chunk: batch,
                step_timeout: timeout,
                ..ClientConfig::default()
            };
            let mut client =
                match SecureClient::connect(session, config, backend.as_ref(), &mut rng).await {
                    Ok(c) => c,
                    Err(SecureError::Busy { retry_after_secs }) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(retry_after_secs.max(1))).await;
                        continue;
                    }
                    Err(e) => return Err(format!("setup: {e}")),
                };
            let n = batch;
            let x = vec![0u64; n * client.input_len()];
            client
                .infer_encoded(x, n)
                .await
                .map_err(|e| format!("batch: {e}"))?;
            client.finish().await.map_err(|e| format!("finish: {e}"))?;
            return Ok::<_, String>(());
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => SessionEnd::Completed(start.elapsed().as_secs_f64()),
        Ok(Err(e)) => SessionEnd::Failed(e),
        Err(_) => SessionEnd::Lost,
    }
}

/// Runs the load test (see the module docs).
pub fn run_load(o: &LoadOptions) -> Result<LoadReport> {
    if o.clients == 0 || o.sessions == 0 || o.batch == 0 {
        return Err(BenchError::Usage(
            "--clients, --sessions and --batch must be positive".into(),
        ));
    }
    if o.max_sessions == Some(0) {
        return Err(BenchError::Usage("--max-sessions must be positive".into()));
    }
    if !o.model.join("model.json").is_file() {
        return Err(BenchError::Usage(format!(
            "{} is not a model directory",
            o.model.display()
        )));
    }
    // CryProt's OT receivers block a rayon worker while they wait for the
    // network: every concurrent client session needs its spare workers.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(2 * o.clients + 2)
        .build_global();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let keys = TempDir(
        std::env::temp_dir().join(format!("fusion-bench-load-{}-{nonce}", std::process::id())),
    );
    let (server, addr, pin) = start_server(o, &keys.0)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| io("tokio runtime", e))?;
    let timeout = Duration::from_secs(o.session_timeout);
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let ends: Vec<SessionEnd> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..o.clients {
            let (next, refused) = (Arc::clone(&next), Arc::clone(&refused));
            let (sessions, batch) = (o.sessions, o.batch);
            set.spawn(async move {
                let mut mine = Vec::new();
                while next.fetch_add(1, Ordering::SeqCst) < sessions {
                    mine.push(one_session(addr, pin, batch, timeout, Arc::clone(&refused)).await);
                }
                mine
            });
        }
        let mut all = Vec::with_capacity(o.sessions);
        while let Some(r) = set.join_next().await {
            match r {
                Ok(mine) => all.extend(mine),
                Err(e) => all.push(SessionEnd::Failed(format!("client task: {e}"))),
            }
        }
        all
    });
    let wall_s = started.elapsed().as_secs_f64();
    let server_peak_rss_bytes = peak_rss(server.0.id())?;
    drop(server);
    let mut times = Vec::new();
    let (mut failed, mut lost, mut failures) = (0, 0, Vec::new());
    for e in ends {
        match e {
            SessionEnd::Completed(t) => times.push(t),
            SessionEnd::Failed(m) => {
                failed += 1;
                if failures.len() < 5 {
                    failures.push(m);
                }
            }
            SessionEnd::Lost => lost += 1,
        }
    }
    times.sort_by(f64::total_cmp);
    let completed = times.len();
    let mean_s = if completed == 0 {
        0.0
    } else {
        times.iter().sum::<f64>() / completed as f64
    };
    Ok(LoadReport {
        model: o.model.display().to_string(),
        clients: o.clients,
        sessions: o.sessions,
        max_sessions: o.max_sessions,
        batch: o.batch,
        completed,
        refused: refused.load(Ordering::SeqCst),
        failed,
        lost,
        p50_s: quantile(&times, 0.50),
        p95_s: quantile(&times, 0.95),
        p99_s: quantile(&times, 0.99),
        mean_s,
        wall_s,
        sessions_per_s: completed as f64 / wall_s.max(1e-9),
        server_peak_rss_bytes,
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.95), 95.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[3.0], 0.99), 3.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
