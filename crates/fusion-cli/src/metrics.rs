//! `fusion serve --metrics ADDR`: the server's counters in the Prometheus
//! text exposition format (version 0.0.4, through `prometheus-client`) on
//! `GET /metrics`, and readiness on `GET /readyz` (200 while the server
//! admits sessions, 503 once it is shutting down).
//!
//! The HTTP side is a minimal HTTP/1.1 responder (no HTTP framework in the
//! dependency tree): one request per connection, the request head read up to
//! [`MAX_REQUEST_HEAD`] bytes within [`REQUEST_TIMEOUT`], at most
//! [`MAX_CONNECTIONS`] connections at once; anything else gets 400, 404 or
//! 405 and the connection is closed. Bind it to a private address (it
//! carries no authentication; the numbers are aggregates, no client names).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use fusion_net::MeterReport;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

/// Largest request head read (bytes); a longer one gets 400.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most HTTP connections served at once (further ones wait in the backlog).
pub const MAX_CONNECTIONS: usize = 32;

type Labels = Vec<(String, String)>;

fn session_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 20))
}

/// How a session ended, for `fusion_sessions_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served to its end.
    Ok,
    /// Ended by a timeout (including the hello deadline).
    Timeout,
    /// The server refused a request (protocol version, backend, batch).
    Refused,
    /// The session's task panicked.
    Panicked,
    /// Ended by the shutdown deadline.
    Aborted,
    /// Any other error (network, malformed data, ...).
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Panicked => "panicked",
            Outcome::Aborted => "aborted",
            Outcome::Error => "error",
        }
    }

    /// The outcome of a session's error.
    pub fn of_error(e: &fusion_engine::SecureError) -> Self {
        use fusion_engine::SecureError as E;
        match e {
            E::Timeout { .. } => Outcome::Timeout,
            E::Net(fusion_net::NetError::Timeout { .. }) => Outcome::Timeout,
            E::Panicked { .. } => Outcome::Panicked,
            E::BackendUnavailable { .. }
            | E::Mismatch(_)
            | E::RevealCapReached { .. }
            | E::QuotaExceeded(_) => Outcome::Refused,
            _ => Outcome::Error,
        }
    }
}

/// Why a client was refused without a session, for
/// `fusion_refusals_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// At `--max-sessions` (or shutting down): the busy refusal, with its
    /// "retry after" seconds.
    Busy(u64),
    /// Too many refusals pending: the connection was closed at once.
    Overflow,
    /// The client's quota is used up.
    Quota(fusion_engine::wire::QuotaStatus),
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Busy(_) => "busy",
            Refusal::Overflow => "overflow",
            Refusal::Quota(_) => "quota",
        }
    }

    /// For logs.
    pub fn describe(&self) -> String {
        match self {
            Refusal::Busy(s) => format!("busy, retry after {s} seconds"),
            Refusal::Overflow => "too many pending refusals".into(),
            Refusal::Quota(q) => q.to_string(),
        }
    }
}

/// The server's metrics (cheap to clone; every clone updates the same
/// registry).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    sessions: Family<Labels, Counter>,
    active: Gauge,
    refusals: Family<Labels, Counter>,
    samples: Counter,
    bytes: Family<Labels, Counter>,
    phase_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    session_seconds: Histogram,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (prefix `fusion_`).
    pub fn new(max_sessions: usize) -> Self {
        let mut registry = Registry::with_prefix("fusion");
        let sessions = Family::<Labels, Counter>::default();
        registry.register(
            "sessions",
            "Sessions ended, by outcome (ok, timeout, refused, panicked, aborted, error)",
            sessions.clone(),
        );
        let active = Gauge::<i64, AtomicI64>::default();
        registry.register("sessions_active", "Sessions running now", active.clone());
        let limit = Gauge::<i64, AtomicI64>::default();
        limit.set(i64::try_from(max_sessions).unwrap_or(i64::MAX));
        registry.register(
            "sessions_max",
            "Most sessions run at once (--max-sessions)",
            limit,
        );
        let refusals = Family::<Labels, Counter>::default();
        registry.register(
            "refusals",
            "Clients refused without a session, by reason (busy, overflow, quota)",
            refusals.clone(),
        );
        let samples = Counter::default();
        registry.register(
            "samples",
            "Samples (rows) served in completed batches",
            samples.clone(),
        );
        let bytes = Family::<Labels, Counter>::default();
        registry.register(
            "session_bytes",
            "UDP payload bytes of sessions, by direction (sent, received), counted when a session ends",
            bytes.clone(),
        );
        let phase_seconds: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(session_seconds);
        registry.register(
            "phase_seconds",
            "Seconds a session spent per phase (connect, setup, preprocessing, linear, nonlinear, output)",
            phase_seconds.clone(),
        );
        let session_seconds = session_seconds();
        registry.register(
            "session_seconds",
            "Seconds from a session's admission to its end",
            session_seconds.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            sessions,
            active,
            refusals,
            samples,
            bytes,
            phase_seconds,
            session_seconds,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A session was admitted.
    pub fn session_started(&self) {
        self.active.inc();
    }

    /// A session ended: its outcome, samples served, the server's meter
    /// and its duration.
    pub fn session_ended(
        &self,
        outcome: Outcome,
        samples: u64,
        report: Option<&MeterReport>,
        seconds: f64,
    ) {
        self.active.dec();
        self.sessions
            .get_or_create(&vec![("outcome".into(), outcome.label().into())])
            .inc();
        self.samples.inc_by(samples);
        self.session_seconds.observe(seconds);
        let Some(report) = report else {
            return;
        };
        for (dir, n) in [
            ("sent", report.total.bytes_sent),
            ("received", report.total.bytes_received),
        ] {
            self.bytes
                .get_or_create(&vec![("direction".into(), dir.into())])
                .inc_by(n);
        }
        for p in &report.phases {
            self.phase_seconds
                .get_or_create(&vec![("phase".into(), p.name.to_string())])
                .observe(p.seconds);
        }
    }

    /// A client was refused without a session.
    pub fn refused(&self, why: Refusal) {
        self.refusals
            .get_or_create(&vec![("reason".into(), why.label().into())])
            .inc();
    }

    /// Whether `/readyz` answers 200.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            warn!(error = %e, "encoding the metrics failed");
        }
        out
    }

    /// Serves `/metrics` and `/readyz` on `listener` until the task is
    /// dropped.
    pub async fn serve(self, listener: TcpListener) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.respond(stream).await {
                    debug!(%peer, error = %e, "metrics request failed");
                }
                drop(permit);
            });
        }
    }

    async fn respond(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await;
        let (status, content_type, body) = match head {
            Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(None)) => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
            Ok(Ok(Some(head))) => self.route(&head),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        })
        .await
        .unwrap_or(Ok(()))
    }

    fn route(&self, head: &str) -> (&'static str, &'static str, String) {
        let mut parts = head.lines().next().unwrap_or("").split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        match (method, path) {
            ("GET", "/metrics") => ("200 OK", prometheus_text::CONTENT_TYPE, self.render()),
            ("GET", "/readyz") => {
                if self.ready.load(Ordering::SeqCst) {
                    ("200 OK", "text/plain", "ready\n".into())
                } else {
                    (
                        "503 Service Unavailable",
                        "text/plain",
                        "not ready\n".into(),
                    )
                }
            }
            (_, "/metrics" | "/readyz") => {
                ("405 Method Not Allowed", "text/plain", "GET only\n".into())
            }
            _ => ("404 Not Found", "text/plain", "not found\n".into()),
        }
    }
}

/// Reads up to the end of the request head (`\r\n\r\n`). `None` if it is
/// longer than [`MAX_REQUEST_HEAD`], not UTF-8, or the peer closed first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(String::from_utf8(buf).ok());
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
    }
}

/// Binds the metrics listener (so a bad address fails at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr).await?;
    info!(addr = %l.local_addr()?, "metrics on /metrics, readiness on /readyz");
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_text_format_with_their_labels() {
        let m = Metrics::new(4);
        m.session_started();
        let report = MeterReport {
            party: fusion_net::Party::Server,
            seconds: 1.5,
            total: fusion_net::Counters {
                bytes_sent: 1000,
                bytes_received: 2000,
                ..Default::default()
            },
            phases: Vec::new(),
            steps: Vec::new(),
        };
        m.session_ended(Outcome::Ok, 180, Some(&report), 1.5);
        m.refused(Refusal::Busy(2));
        m.refused(Refusal::Busy(3));
        let text = m.render();
        assert!(
            text.contains("fusion_sessions_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("fusion_samples_total 180"), "{text}");
        assert!(
            text.contains("fusion_refusals_total{reason=\"busy\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fusion_session_bytes_total{direction=\"received\"} 2000"),
            "{text}"
        );
        assert!(text.contains("fusion_sessions_active 0"), "{text}");
        assert!(text.contains("fusion_sessions_max 4"), "{text}");
    }

    #[test]
    fn requests_are_routed_and_readiness_follows_the_flag() {
        let m = Metrics::new(1);
        assert_eq!(m.route("GET /readyz HTTP/1.1").0, "503 Service Unavailable");
        m.set_ready(true);
        assert_eq!(m.route("GET /readyz HTTP/1.1").0, "200 OK");
        assert_eq!(m.route("GET /metrics?x=1 HTTP/1.1").0, "200 OK");
        assert_eq!(
            m.route("POST /metrics HTTP/1.1").0,
            "405 Method Not Allowed"
        );
        assert_eq!(m.route("GET /other HTTP/1.1").0, "404 Not Found");
        assert_eq!(m.route("").0, "404 Not Found");
    }
}
