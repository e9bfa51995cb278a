//! `fusion serve` as a service, with real processes on 127.0.0.1: admission
//! control (`--max-sessions`, the busy refusal and `fusion query`'s exit 4
//! and `--retries`), the hello deadline, and clients that misbehave at the
//! connection level (silent, many connections at once, leaving mid-session)
//! while an honest client is served. Every child is killed on every path and
//! every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fusion_engine::wire::{ClientHello, ClientMsg, ServerMsg};
use fusion_net::{NetConfig, ServerPin, Session};

const LIMIT: Duration = Duration::from_secs(180);

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fusion"));
    c.env("FUSION_DATA", repo_data());
    c
}

fn repo_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// Kills and reaps the child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn drain<R: std::io::Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs a command to completion within `LIMIT` (killed otherwise).
fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fusion");
    let mut guard = Guard(child);
    let out = drain(guard.0.stdout.take().expect("stdout"));
    let err = drain(guard.0.stderr.take().expect("stderr"));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = guard.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "command did not finish in {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Keys and sample files in a fresh directory.
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let keygen = run({
        let mut c = bin();
        c.args(["keygen", "--out"]).arg(dir.join("keys"));
        c
    });
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    for (extra, file) in [
        (&["--count", "2"][..], "q.csv"),
        (
            &["--offset", "4", "--count", "100", "--with-labels"][..],
            "p.csv",
        ),
    ] {
        let out = run({
            let mut c = bin();
            c.args(["samples", "--data", "breast-cancer"])
                .args(extra)
                .arg("--out")
                .arg(dir.join(file));
            c
        });
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    tmp
}

/// Starts `fusion serve` on bc-mlp and returns it with the address it printed.
fn serve(dir: &Path, extra: &[&str]) -> (Guard, SocketAddr) {
    let (guard, addr, _) = serve_lines(dir, extra);
    (guard, addr)
}

/// Like [`serve`], also returning the server's further stdout lines.
fn serve_lines(dir: &Path, extra: &[&str]) -> (Guard, SocketAddr, mpsc::Receiver<String>) {
    let child = bin()
        .arg("serve")
        .arg("--model")
        .arg(repo_data().join("models/bc-mlp"))
        .args(["--listen", "127.0.0.1:0", "--cert"])
        .arg(dir.join("keys/cert.pem"))
        .arg("--key")
        .arg(dir.join("keys/key.pem"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fusion serve");
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(LIMIT)
        .expect("the server prints its address");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .expect("address");
    (guard, addr, rx)
}

/// The metrics address `fusion serve --metrics` printed.
fn metrics_addr(lines: &mpsc::Receiver<String>) -> SocketAddr {
    let line = lines
        .recv_timeout(LIMIT)
        .expect("the server prints its metrics address");
    line.split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in {line:?}"))
        .parse()
        .expect("metrics address")
}

/// `GET path` over HTTP/1.1: (status code, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

/// The value of a sample line `name value` in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Waits (bounded) for the process to exit; returns its status and the time taken.
fn wait_exit(guard: &mut Guard, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(s) = guard.0.try_wait().expect("wait") {
            return (s, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "the server did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(guard: &Guard) {
    let ok = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -TERM failed");
}

fn query_cmd(dir: &Path, addr: SocketAddr, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["query", "--server", &addr.to_string(), "--server-cert"])
        .arg(dir.join("keys/cert.pem"))
        .arg("--queries")
        .arg(dir.join("q.csv"))
        .arg("--public")
        .arg(dir.join("p.csv"))
        .arg("--quiet")
        .args(extra);
    c
}

fn query(dir: &Path, addr: SocketAddr, extra: &[&str]) -> Output {
    run(query_cmd(dir, addr, extra))
}

fn assert_accepted(out: &Output) {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("ACCEPT"), "{stdout}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn pin(dir: &Path) -> ServerPin {
    ServerPin::from_cert_file(&dir.join("keys/cert.pem")).expect("pin")
}

/// A client that connects, sends a valid hello, reads the server's hello and
/// then does nothing (it holds a session slot until dropped).
async fn hold_a_session(addr: SocketAddr, pin: &ServerPin) -> Session {
    let mut session = fusion_net::connect(addr, pin, &NetConfig::default())
        .await
        .expect("connect");
    let (mut tx, mut rx) = session
        .channel::<ClientMsg, ServerMsg>()
        .await
        .expect("channel");
    tx.send(&ClientMsg::Hello(ClientHello::new(16, "cheetah")))
        .await
        .expect("send hello");
    let reply = tokio::time::timeout(LIMIT, rx.recv()).await;
    assert!(
        matches!(reply, Ok(Ok(ServerMsg::Hello(_)))),
        "expected the server's hello: {reply:?}"
    );
    // Keep the streams open with the session.
    std::mem::forget((tx, rx));
    session
}

#[test]
fn busy_server_refuses_with_retry_after_and_exit_4_then_a_retrying_client_is_served() {
    let tmp = setup();
    let dir = tmp.path();
    let (_server, addr) = serve(dir, &["--max-sessions", "1", "--timeout", "60"]);
    let rt = runtime();
    let holder = rt.block_on(hold_a_session(addr, &pin(dir)));
    // The one slot is taken: a second client is refused at once, typed.
    let out = query(dir, addr, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("busy, retry after "), "{stderr}");
    assert!(stderr.contains(" seconds"), "{stderr}");
    // The holder leaves; a client that retries is served.
    let retrying = std::thread::spawn({
        let cmd_dir = dir.to_path_buf();
        move || query(&cmd_dir, addr, &["--retries", "20"])
    });
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(async move { holder.close() });
    let out = retrying.join().expect("retrying client");
    assert_accepted(&out);
}

#[test]
fn two_clients_at_once_with_one_slot_are_both_answered_and_none_hangs() {
    let tmp = setup();
    let dir = tmp.path();
    let (_server, addr) = serve(dir, &["--max-sessions", "1", "--timeout", "60"]);
    // One client retries busy refusals, the other does not: the retrying one
    // is always served; the other is served or refused with exit 4, never
    // left hanging (run() bounds both).
    let a = std::thread::spawn({
        let d = dir.to_path_buf();
        move || query(&d, addr, &["--retries", "20"])
    });
    let b = std::thread::spawn({
        let d = dir.to_path_buf();
        move || query(&d, addr, &[])
    });
    let a = a.join().expect("client a");
    let b = b.join().expect("client b");
    assert_accepted(&a);
    match b.status.code() {
        Some(0) => assert_accepted(&b),
        Some(4) => assert!(text(&b.stderr).contains("busy, retry after"), "{b:?}"),
        other => panic!("client b: exit {other:?}: {}", text(&b.stderr)),
    }
}

#[test]
fn silent_client_is_dropped_after_the_hello_deadline_while_an_honest_client_is_served() {
    let tmp = setup();
    let dir = tmp.path();
    let (_server, addr) = serve(
        dir,
        &[
            "--max-sessions",
            "1",
            "--hello-timeout",
            "2",
            "--timeout",
            "60",
        ],
    );
    let rt = runtime();
    // Connects (TLS done) and says nothing: it takes the only slot until
    // the hello deadline, far below the protocol timeout of 60 s.
    let silent = rt.block_on(async {
        fusion_net::connect(addr, &pin(dir), &NetConfig::default())
            .await
            .expect("connect")
    });
    let start = Instant::now();
    let out = query(dir, addr, &["--retries", "20"]);
    assert_accepted(&out);
    assert!(
        start.elapsed() < Duration::from_secs(50),
        "served only after {:?}",
        start.elapsed()
    );
    rt.block_on(async move { silent.close() });
}

#[test]
fn many_connections_at_once_and_a_client_leaving_mid_session_do_not_stop_an_honest_client() {
    let tmp = setup();
    let dir = tmp.path();
    let (_server, addr) = serve(
        dir,
        &[
            "--max-sessions",
            "2",
            "--hello-timeout",
            "3",
            "--timeout",
            "60",
        ],
    );
    let rt = runtime();
    let pin = pin(dir);
    // A client that starts a session (the server has sent its hello and
    // waits in the backend's setup) and leaves in the middle of it.
    rt.block_on(async {
        let s = hold_a_session(addr, &pin).await;
        s.close();
    });
    // 100 connections at once, all silent.
    let flood: Vec<Session> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100 {
            set.spawn(async move { fusion_net::connect(addr, &pin, &NetConfig::default()).await });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(Ok(s)) = r {
                out.push(s);
            }
        }
        out
    });
    let out = query(dir, addr, &["--retries", "30"]);
    assert_accepted(&out);
    rt.block_on(async move {
        for s in flood {
            s.close();
        }
    });
}

fn keygen(args: &[&str], out: &Path) {
    let o = run({
        let mut c = bin();
        c.arg("keygen").args(args).arg("--out").arg(out);
        c
    });
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn client_ca_admits_its_clients_only_and_refused_ones_never_start_a_session() {
    let tmp = setup();
    let dir = tmp.path();
    let ca = dir.join("ca");
    let other_ca = dir.join("other-ca");
    let clients = dir.join("clients");
    keygen(&["--ca"], &ca);
    keygen(&["--ca"], &other_ca);
    keygen(
        &["--client", "alice", "--ca", ca.to_str().expect("utf8")],
        &clients,
    );
    keygen(
        &[
            "--client",
            "mallory",
            "--ca",
            other_ca.to_str().expect("utf8"),
        ],
        &clients,
    );
    // One session only: had a refused client started one, the server would
    // stop before alice's query.
    let (mut server, addr) = serve(
        dir,
        &[
            "--client-ca",
            ca.join("ca.pem").to_str().expect("utf8"),
            "--sessions",
            "1",
        ],
    );
    let with_cert = |name: &str| {
        vec![
            "--client-cert".to_string(),
            clients.join(format!("{name}.pem")).display().to_string(),
            "--client-key".to_string(),
            clients
                .join(format!("{name}-key.pem"))
                .display()
                .to_string(),
        ]
    };
    let no_cert = query(dir, addr, &[]);
    assert_eq!(no_cert.status.code(), Some(1), "{}", text(&no_cert.stderr));
    assert!(
        text(&no_cert.stderr).contains("certificate"),
        "{}",
        text(&no_cert.stderr)
    );
    let m = with_cert("mallory");
    let m: Vec<&str> = m.iter().map(String::as_str).collect();
    let other = query(dir, addr, &m);
    assert_eq!(other.status.code(), Some(1), "{}", text(&other.stderr));
    let a = with_cert("alice");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_accepted(&query(dir, addr, &a));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = server.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
}

#[test]
fn metrics_count_sessions_samples_bytes_and_refusals_and_readyz_answers() {
    let tmp = setup();
    let dir = tmp.path();
    let (_server, addr, lines) = serve_lines(
        dir,
        &[
            "--max-sessions",
            "1",
            "--metrics",
            "127.0.0.1:0",
            "--timeout",
            "60",
        ],
    );
    let http = metrics_addr(&lines);
    // The endpoint answers from the moment it prints its address; readiness
    // follows a moment later, as a probe would see it (seen once: 503 here).
    let deadline = Instant::now() + LIMIT;
    while http_get(http, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http_get(http, "/readyz"), (200, "ready\n".to_string()));
    assert_eq!(http_get(http, "/nothing").0, 404);
    let json = dir.join("report.json");
    assert_accepted(&query(dir, addr, &["--json", json.to_str().expect("utf8")]));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let n = report["fusion"]["parameters"]["total"]
        .as_u64()
        .expect("the batch size N in the report");
    // The server frees the accepted client's slot after the client has its
    // verdict (the session's own end runs on): wait for that, then hold the
    // only slot for a busy refusal.
    let deadline = Instant::now() + LIMIT;
    while !http_get(http, "/metrics")
        .1
        .contains("fusion_sessions_active 0")
    {
        assert!(
            Instant::now() < deadline,
            "the accepted session never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = runtime();
    let holder = rt.block_on(hold_a_session(addr, &pin(dir)));
    assert_eq!(query(dir, addr, &[]).status.code(), Some(4));
    rt.block_on(async move { holder.close() });
    // The holder's session ends with an error once it has left.
    let deadline = Instant::now() + LIMIT;
    let text = loop {
        let (code, text) = http_get(http, "/metrics");
        assert_eq!(code, 200);
        if text.contains("fusion_sessions_active 0") && text.contains("outcome=\"error\"") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the holder's session did not end:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(metric(&text, "fusion_sessions_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(
        metric(&text, "fusion_sessions_total{outcome=\"error\"}"),
        1.0
    );
    assert_eq!(metric(&text, "fusion_samples_total"), n as f64);
    assert_eq!(metric(&text, "fusion_refusals_total{reason=\"busy\"}"), 1.0);
    assert_eq!(metric(&text, "fusion_sessions_max"), 1.0);
    let client_sent = report["client"]["total"]["bytes_sent"]
        .as_u64()
        .expect("bytes");
    // The server received at least what the accepted client sent.
    assert!(
        metric(&text, "fusion_session_bytes_total{direction=\"received\"}") >= client_sent as f64
    );
    assert_eq!(metric(&text, "fusion_session_seconds_count"), 2.0);
    assert!(
        text.contains("fusion_phase_seconds_count{phase=\"linear\"} 1"),
        "{text}"
    );
}

#[test]
fn sigterm_refuses_newcomers_waits_for_running_sessions_and_ends_them_after_the_grace() {
    let tmp = setup();
    let dir = tmp.path();
    let rt = runtime();
    // 1. A running session that ends during the grace period: the server
    // waits for it, refuses newcomers as busy meanwhile, is not ready, and
    // exits 0 once it ended (well before the 60 s grace).
    let (mut server, addr, lines) = serve_lines(
        dir,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--shutdown-grace",
            "60",
            "--timeout",
            "60",
        ],
    );
    let http = metrics_addr(&lines);
    let holder = rt.block_on(hold_a_session(addr, &pin(dir)));
    sigterm(&server);
    let deadline = Instant::now() + LIMIT;
    while http_get(http, "/readyz").0 != 503 {
        assert!(Instant::now() < deadline, "/readyz stayed ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let newcomer = query(dir, addr, &[]);
    assert_eq!(
        newcomer.status.code(),
        Some(4),
        "{}",
        text(&newcomer.stderr)
    );
    assert!(
        server.0.try_wait().expect("wait").is_none(),
        "exited with a session running"
    );
    rt.block_on(async move { holder.close() });
    let (status, took) = wait_exit(&mut server, Duration::from_secs(50));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(40), "{took:?}");

    // 2. A session that never ends is ended after the grace period.
    let (mut server, addr) = serve(dir, &["--shutdown-grace", "2", "--timeout", "60"]);
    let holder = rt.block_on(hold_a_session(addr, &pin(dir)));
    let start = Instant::now();
    sigterm(&server);
    let (status, _) = wait_exit(&mut server, Duration::from_secs(40));
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    rt.block_on(async move { holder.close() });
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let tmp = setup();
    let dir = tmp.path();
    let child = bin()
        .arg("serve")
        .arg("--model")
        .arg(repo_data().join("models/bc-mlp"))
        .args(["--listen", "127.0.0.1:0", "--cert"])
        .arg(dir.join("keys/cert.pem"))
        .arg("--key")
        .arg(dir.join("keys/key.pem"))
        .args(["--log-format", "json", "--sessions", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut guard = Guard(child);
    let stderr = drain(guard.0.stderr.take().expect("stderr"));
    let stdout = guard.0.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("address line");
    let addr: SocketAddr = first
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address")
        .parse()
        .expect("address");
    assert_accepted(&query(dir, addr, &[]));
    let (status, _) = wait_exit(&mut guard, LIMIT);
    assert!(status.success());
    let log = text(&stderr.join().expect("stderr"));
    let mut lines = 0;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        lines += 1;
    }
    assert!(log.contains("session finished"), "{log}");
    assert!(lines >= 3, "{log}");
}

#[test]
fn quotas_count_per_client_survive_a_restart_and_the_refusal_says_when_they_reset() {
    let tmp = setup();
    let dir = tmp.path();
    let ca = dir.join("ca");
    let clients = dir.join("clients");
    keygen(&["--ca"], &ca);
    for name in ["alice", "bob"] {
        keygen(
            &["--client", name, "--ca", ca.to_str().expect("utf8")],
            &clients,
        );
    }
    let as_client = |name: &str| {
        vec![
            "--client-cert".to_string(),
            clients.join(format!("{name}.pem")).display().to_string(),
            "--client-key".to_string(),
            clients
                .join(format!("{name}-key.pem"))
                .display()
                .to_string(),
        ]
    };
    let db = dir.join("quota.redb");
    let ca_pem = ca.join("ca.pem");
    let server_args = |sessions: &'static str| {
        vec![
            "--client-ca".to_string(),
            ca_pem.display().to_string(),
            "--quota".to_string(),
            "150/1d".to_string(),
            "--quota-db".to_string(),
            db.display().to_string(),
            "--sessions".to_string(),
            sessions.to_string(),
        ]
    };
    // First run: alice's batch of N samples (75 < N <= 150) is served.
    let a1 = server_args("1");
    let (mut server, addr) = serve(dir, &a1.iter().map(String::as_str).collect::<Vec<_>>());
    let json = dir.join("alice.json");
    let mut alice = as_client("alice");
    alice.push("--json".into());
    alice.push(json.display().to_string());
    assert_accepted(&query(
        dir,
        addr,
        &alice.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let n = report["fusion"]["parameters"]["total"].as_u64().expect("N");
    assert!(n > 75 && n <= 150, "the test needs 75 < N <= 150, N = {n}");
    let (status, _) = wait_exit(&mut server, LIMIT);
    assert!(status.success());
    // Restart on the same database: alice's second batch would pass 150 and
    // is refused before any of its protocol work (exit 5, with the reset
    // time); bob has his own quota.
    let a2 = server_args("2");
    let (mut server, addr) = serve(dir, &a2.iter().map(String::as_str).collect::<Vec<_>>());
    let alice = as_client("alice");
    let out = query(
        dir,
        addr,
        &alice.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("quota of 150 samples per 86400 s") && stderr.contains("resets at 20"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("({n} used, {n} requested)")),
        "{stderr}"
    );
    let bob = as_client("bob");
    assert_accepted(&query(
        dir,
        addr,
        &bob.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let (status, _) = wait_exit(&mut server, LIMIT);
    assert!(status.success());
}

/// `fusion query` with `--server` repeated against the given workers; the
/// JSON report goes to `dir/report.json`.
fn query_workers(dir: &Path, workers: &[SocketAddr], extra: &[&str]) -> Output {
    let mut c = query_cmd(dir, workers[0], extra);
    for w in &workers[1..] {
        c.args(["--server", &w.to_string()]);
    }
    c.arg("--json").arg(dir.join("report.json"));
    run(c)
}

#[test]
fn one_batch_split_across_two_workers_is_verified_globally_with_each_workers_cost() {
    let tmp = setup();
    let dir = tmp.path();
    let (_a, a) = serve(dir, &["--sessions", "1"]);
    let (_b, b) = serve(dir, &["--sessions", "1"]);
    let out = query_workers(dir, &[a, b], &[]);
    assert_accepted(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("workers    2"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("report"))
            .expect("json");
    let n = report["fusion"]["parameters"]["total"].as_u64().expect("N");
    let workers = report["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    let sizes: Vec<u64> = workers
        .iter()
        .map(|w| w["samples"].as_u64().expect("samples"))
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), n, "{sizes:?}");
    assert!(sizes[0].abs_diff(sizes[1]) <= 1, "{sizes:?}");
    for w in workers {
        assert_eq!(w["batch"]["samples"], w["samples"]);
        assert!(w["batch"]["bytes_sent"].as_u64().expect("bytes") > 0);
    }
    assert_eq!(report["batch"]["samples"].as_u64(), Some(n));
}

#[test]
fn a_cheating_worker_among_honest_ones_is_caught() {
    let tmp = setup();
    let dir = tmp.path();
    let (_a, a) = serve(dir, &["--sessions", "1"]);
    let (_b, b) = serve(dir, &["--sessions", "1", "--cheat", "random"]);
    let out = query_workers(dir, &[a, b], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("ABORT"), "{stdout}");
}

#[test]
fn workers_announcing_different_parameters_are_refused_before_inference() {
    let tmp = setup();
    let dir = tmp.path();
    let (_a, a) = serve(dir, &["--sessions", "1"]);
    let (_b, b) = serve(dir, &["--sessions", "1", "--ot", "iknp"]);
    let out = query_workers(dir, &[a, b], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("do not serve the same model"), "{stderr}");
}

/// A client whose hello is still on its way when the busy refusal arrives
/// (here: sent only after reading the refusal) must be able to finish sending
/// it: the server keeps its receive side open until the session ends, so
/// the client reads a clean refusal rather than a reset stream.
#[test]
fn a_busy_refusal_does_not_reset_a_hello_still_being_sent() {
    let tmp = setup();
    let dir = tmp.path();
    let (_server, addr) = serve(dir, &["--max-sessions", "1", "--timeout", "60"]);
    let rt = runtime();
    let pin = pin(dir);
    let holder = rt.block_on(hold_a_session(addr, &pin));
    rt.block_on(async {
        let mut session = fusion_net::connect(addr, &pin, &NetConfig::default())
            .await
            .expect("connect");
        let (mut tx, mut rx) = session
            .channel::<ClientMsg, ServerMsg>()
            .await
            .expect("channel");
        let reply = tokio::time::timeout(LIMIT, rx.recv()).await;
        assert!(
            matches!(reply, Ok(Ok(ServerMsg::Busy { .. }))),
            "expected a busy refusal: {reply:?}"
        );
        // Give a stop or reset from the server time to arrive.
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(&ClientMsg::Hello(ClientHello::new(16, "cheetah")))
            .await
            .expect("the hello is accepted after the refusal");
        session.close();
    });
    rt.block_on(async move { holder.close() });
}
