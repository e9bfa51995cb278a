//! `fusion serve`: the server of verifiable private inference. It holds a
//! model, listens for clients over QUIC + TLS (its certificate is what clients
//! pin, see `fusion keygen`), and serves up to `--max-sessions` client
//! sessions at once: each session runs the secure two-party engine
//! (`fusion_engine`) on the batches the client sends, in a task of its own on
//! the session runtime (apart from the listener's). A client beyond the limit
//! gets a busy refusal ("retry after S seconds") in answer to its hello; a
//! client that sends no hello within `--hello-timeout` is dropped. A client
//! that misbehaves or vanishes ends its own session with a logged error; the
//! server keeps serving. SIGINT (Ctrl-C) or SIGTERM stops it gracefully: no
//! new sessions (newcomers get the busy refusal), running sessions get
//! `--shutdown-grace` seconds to finish, then are ended.
//!
//! The server learns the batch sizes and nothing about the clients' samples or
//! outputs; clients learn the public view of the model (architecture, shapes,
//! fixed-point parameters, preprocessing), never its weights. `--cheat` makes
//! the server misbehave on purpose (for demonstrations and experiments):
//! Fusion clients detect it and abort.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use fusion_engine::backends::cheetah::config::{CheetahConfig, HeChoice, OtKind, RoundingChoice};
use fusion_engine::stats::human_bytes;
use fusion_engine::statsec::{self, StatSecTarget};
use fusion_engine::{SecureServer, ServedModel, ServerConfig};
use fusion_net::{ClientRoots, Identity, NetConfig, Server};
use fusion_nn::eval;

use crate::backend::{CheetahOptions, build, parse_names};
use crate::cheat::CheatMode;
use crate::metrics::{Metrics, Outcome, Refusal};
use tracing::{error, info, warn};

use crate::common::{
    CliError, LogFormat, failure, init_logging_as, init_rayon, os_rng, runtime, session_runtime,
    usage,
};

/// Arguments of `fusion serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (model.json and weights), e.g. data/models/bc-mlp.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:4433 (port 0 picks a free port; the
    /// address is printed on stdout).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The server's certificate (PEM), from `fusion keygen`.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// The server's private key (PEM), from `fusion keygen`.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Accept only clients presenting a certificate signed by this client CA
    /// (PEM, `ca.pem` from `fusion keygen --ca`; mutual TLS): any other client
    /// fails the TLS handshake, before any protocol work. Each session is
    /// logged with the client's name (its certificate's common name). Without
    /// it the server is open to any client and says so at start (for local
    /// experiments; deployments always set it).
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Misbehave on purpose: honest; low-quality (serve the `-weak` sibling
    /// model) or low-quality:DIR; tamper:K or tamper:K:CLASS (force class
    /// CLASS, default 0, at K random positions of every batch); random
    /// (random outputs); targeted:A or targeted:A:B (every sample the honest
    /// model labels A is labelled B, default (A+1) mod classes: a model change
    /// that only the public-accuracy check can catch).
    #[arg(long, value_name = "MODE", default_value = "honest")]
    cheat: CheatMode,
    /// Ring bits l of the fixed-point encoding (Z_2^l).
    #[arg(long, value_name = "L", default_value_t = 37)]
    ring_bits: u32,
    /// Fractional bits f of the fixed-point encoding.
    #[arg(long, value_name = "F", default_value_t = 12)]
    frac_bits: u32,
    /// The two-party backends offered (comma separated; see `fusion backends`).
    /// The client chooses one of them.
    #[arg(long, value_name = "NAME[,NAME...]", default_value = "cheetah")]
    backend: String,
    /// Backend `cheetah`: OT flavour of the non-linear layers, silent or iknp
    /// [default: silent].
    #[arg(long, value_name = "FLAVOUR")]
    ot: Option<OtKind>,
    /// Backend `cheetah`: RLWE preset of the linear layers, auto, n4096 or
    /// n8192 [default: auto].
    #[arg(long, value_name = "PRESET")]
    he: Option<HeChoice>,
    /// Backend `cheetah`: the clients' queries travel rounded to multiples of
    /// `2^d` (`d` bits fewer per coefficient, more noise the flooding must
    /// cover): `auto` (the largest `d` with which every layer keeps the
    /// announced statistical security at any batch size), `off`, or `d`
    /// itself (refused at start-up if a layer cannot take it) [default: auto].
    #[arg(long, value_name = "auto|off|BITS")]
    query_rounding: Option<RoundingChoice>,
    /// Largest number of samples run through the network at once (larger
    /// batches run in chunks).
    #[arg(long, value_name = "N", default_value_t = 256)]
    chunk: usize,
    /// Largest batch accepted in one request.
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    max_batch: usize,
    /// Limit in seconds on every protocol step and message wait.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Encode the HE layers for these chunk sizes at start-up (comma separated).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    precompute: Vec<usize>,
    /// Backend `cheetah`: generate the two OT directions concurrently (needs
    /// >= 2 free cores).
    #[arg(long)]
    ot_parallel: bool,
    /// Stop after this many admitted sessions have ended (default: serve
    /// until SIGINT/SIGTERM). Busy refusals do not count.
    #[arg(long, value_name = "N")]
    sessions: Option<u64>,
    /// Most sessions run at once; the next client is refused with "busy,
    /// retry after S seconds" (S: the recent mean session time divided by
    /// N, 1..=300, 2 before any session ended) in answer to its hello, before
    /// any protocol work. Default: the number of CPU cores of this machine
    /// (a session keeps about one core busy).
    #[arg(long, value_name = "N", default_value_t = default_max_sessions())]
    max_sessions: usize,
    /// Seconds a client may take from the connection to its hello; a client
    /// that says nothing is dropped after it (separate from --timeout).
    #[arg(long, value_name = "SECS", default_value_t = fusion_engine::config::DEFAULT_HELLO_TIMEOUT.as_secs())]
    hello_timeout: u64,
    /// What clients learn of each sample: `logits` (every class's score),
    /// `label` (only the class; a secure argmax runs on the shares) or
    /// `reverse-sigmoid[:BETA,GAMMA]` (Lee et al.'s perturbed probabilities,
    /// computed on the shares; default 0.7,0.5). See docs/SECURITY.md.
    /// Announced in the handshake.
    #[arg(long, value_name = "MODE", default_value = "logits", value_parser = crate::common::parse_output_mode)]
    output_mode: fusion_engine::OutputMode,
    /// On SIGINT/SIGTERM: seconds running sessions get to finish before they
    /// are ended (new clients are refused as busy meanwhile).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    shutdown_grace: u64,
    /// Serve GET /metrics (Prometheus text format: sessions by outcome,
    /// samples, bytes, phase and session durations, refusals, active
    /// sessions) and GET /readyz (200 while admitting sessions, 503 once
    /// shutting down) over HTTP on this address, e.g. 127.0.0.1:9464 (port 0
    /// picks one; the address is printed on stdout). Keep it private: it has
    /// no authentication.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Per-client quota: at most N samples (rows of the mixed batch) per
    /// PERIOD for each client (by its certificate's name; needs
    /// --client-ca), e.g. 100000/1d or 5000/1h (units s, m, h, d; periods
    /// are fixed windows aligned to the Unix epoch, UTC). Checked when a
    /// session starts and before every batch; the refusal says when the
    /// quota resets. Counts persist in --quota-db.
    #[arg(long, value_name = "N/PERIOD", requires = "client_ca")]
    quota: Option<crate::quota::QuotaSpec>,
    /// The quota database (redb file; created if missing, kept across
    /// restarts).
    #[arg(long, value_name = "FILE", default_value = "fusion-quota.redb")]
    quota_db: PathBuf,
    /// Log format on stderr: text or json (one JSON object per line).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Statistical security per session (bits) of the HE noise flooding
    /// (backends `cheetah` and `delphi`): the client's whole view of the
    /// flooded coefficients of one session is within statistical distance
    /// 2^-BITS of its simulation. The server floods each revealed coefficient
    /// at lambda_c = BITS + ceil(log2 M) bits (M = --max-revealed-coefficients;
    /// union bound M 2^-lambda_c), announces lambda_c and M, and ends a
    /// session before a pass that would reveal more than M coefficients.
    /// 40 bits at M = 2^30 need lambda_c = 70, i.e. N = 8192 (--he auto picks
    /// it; a preset whose modulus is too small is refused).
    #[arg(long, value_name = "BITS", default_value_t = statsec::DEFAULT_SESSION_BITS)]
    stat_sec: u32,
    /// The most flooded HE coefficients one session may reveal (the session
    /// ends at the cap; one coefficient per output value of every linear
    /// layer per sample: 10,350 per cnn-mnist sample, 266 per mlp-mnist
    /// sample, so 2^30 covers 103,744 cnn-mnist samples). Default 2^30; for
    /// `cryptflow2`, whose SIMD replies reveal whole ciphertexts and whose
    /// parameters admit about 61-64 bits per coefficient, the default is the
    /// largest power of two that fits the model (2^22 for mnist-cnn at 40
    /// bits).
    #[arg(long, value_name = "M", default_value_t = statsec::DEFAULT_MAX_REVEALED)]
    max_revealed_coefficients: u64,
    /// Backend `cheetah`: tune for the fewest bytes per inference: HE reply packing (the client
    /// sends about 1.2 MB of Galois keys once per session), the bytes-first
    /// HE planner (more server memory) and 3-bit millionaires' blocks. Pays off
    /// for large fully connected layers and large batches.
    #[arg(long)]
    minimise_bytes: bool,
    /// The accepted input box announced to clients: the largest |x| of a
    /// preprocessed input value (clients refuse samples outside it). Default:
    /// the largest such value of the model's dataset, train and test splits;
    /// without a loadable dataset, inputs are not checked.
    #[arg(long, value_name = "X")]
    input_bound: Option<f64>,
    /// Refuse to serve unless no value of the fixed-point program can wrap
    /// around Z_2^l for inputs in the box (a worst-case proof; without it
    /// the range guarantee may only be empirical, and the server says so).
    #[arg(long)]
    require_range_proof: bool,
    /// Do not announce the per-value magnitude bounds the range analysis
    /// proves for the input box (by default they are announced, and the
    /// fused ReLU-truncations after layers with small bounds compare fewer
    /// bits; the widths reveal each bounded layer's largest row L1 norm to
    /// within a factor of two, docs/SECURITY.md "Announced magnitude bounds").
    #[arg(long)]
    no_value_bounds: bool,
    #[command(flatten)]
    no_seed: crate::common::NoSeed,
}

/// Runs `fusion serve`.
pub fn run(args: Args) -> ExitCode {
    init_logging_as("info", args.log_format);
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("serve"),
    }
}

fn serve(args: Args) -> Result<(), CliError> {
    args.no_seed.check("serve")?;
    let fixed = eval::fixed_point(args.ring_bits, args.frac_bits).map_err(usage)?;
    if !args.model.join("model.json").is_file() {
        return Err(usage(format!(
            "{} is not a model directory (no model.json)",
            args.model.display()
        )));
    }
    if args.timeout == 0 {
        return Err(usage("--timeout must be positive"));
    }
    init_rayon();
    let names = parse_names(&args.backend)?;
    let mut cheetah = if args.minimise_bytes {
        CheetahConfig::minimise_bytes()
    } else {
        CheetahConfig::default()
    };
    cheetah.he = args.he.unwrap_or_default();
    cheetah.query_rounding = args.query_rounding.unwrap_or_default();
    cheetah.ot_flavour = args.ot.unwrap_or_default();
    cheetah.ot.parallel_ot = args.ot_parallel;
    let options = CheetahOptions {
        given: Vec::new(),
        config: cheetah,
    }
    .given("--ot", args.ot.is_some())
    .given("--he", args.he.is_some())
    .given("--query-rounding", args.query_rounding.is_some())
    .given("--ot-parallel", args.ot_parallel)
    .given("--minimise-bytes", args.minimise_bytes);
    let stat_sec = StatSecTarget::PerSession {
        bits: args.stat_sec,
        max_revealed: args.max_revealed_coefficients,
    };
    let backends = build(&names, options, stat_sec)?;
    let mut model = ServedModel::load(&args.model, fixed).map_err(failure)?;
    let bound = crate::common::input_bound(&args.model, args.input_bound)?;
    model.input_bound = bound.as_ref().ok().map(|(b, _)| *b);
    let behaviour = args.cheat.resolve(&args.model, fixed, &model)?;
    let identity = Identity::from_pem_files(&args.cert, &args.key).map_err(usage)?;
    let client_roots = args
        .client_ca
        .as_deref()
        .map(ClientRoots::from_cert_file)
        .transpose()
        .map_err(usage)?;
    let timeout = Duration::from_secs(args.timeout);
    let config = ServerConfig {
        chunk: args.chunk,
        max_batch: args.max_batch,
        step_timeout: timeout,
    };
    let mut server = SecureServer::new(model, config, backends, behaviour).map_err(usage)?;
    server.set_output_mode(args.output_mode).map_err(usage)?;
    // `SecureServer::new` announces them already; only withdrawing is work.
    if args.no_value_bounds {
        server.set_announce_bounds(false).map_err(failure)?;
    }
    if server.value_bits().is_empty() {
        info!("magnitude bounds: none announced");
    } else {
        let l = fixed.ring.bits();
        let known = server.value_bits().iter().filter(|&&b| b < l).count();
        info!(
            bounded = known,
            values = server.value_bits().len(),
            "magnitude bounds announced"
        );
    }
    info!(output_mode = %server.output_mode(), "output mode");
    let server = std::sync::Arc::new(server);
    match (&bound, server.range()) {
        (Ok((b, source)), Some(range)) => {
            let range = range.map_err(failure)?;
            let from = match source {
                crate::common::InputBoundSource::Given => "--input-bound".to_string(),
                crate::common::InputBoundSource::Dataset(d) => format!("dataset `{d}`"),
            };
            if args.require_range_proof && !range.proven() {
                return Err(usage(format!(
                    "--require-range-proof: {} (input box |x| <= {b} from {from})",
                    range.summary()
                )));
            }
            if range.proven() {
                info!(input_bound = b, from = %from, "range {}", range.summary());
            } else {
                warn!(input_bound = b, from = %from, "range {}", range.summary());
            }
        }
        _ => {
            let why = bound.as_ref().err().cloned().unwrap_or_default();
            if args.require_range_proof {
                return Err(usage(format!(
                    "--require-range-proof needs an input box: {why}; give --input-bound"
                )));
            }
            warn!("inputs are not range-checked ({why}; give --input-bound to announce a box)");
        }
    }
    let mut net = NetConfig::default();
    net.messages = net.messages.with_timeout(timeout);
    if args.max_sessions == 0 {
        return Err(usage("--max-sessions must be at least 1"));
    }
    if args.hello_timeout == 0 {
        return Err(usage("--hello-timeout must be positive"));
    }
    let mut server = server;
    std::sync::Arc::get_mut(&mut server)
        .ok_or_else(|| failure("server shared too early"))?
        .set_hello_timeout(Duration::from_secs(args.hello_timeout))
        .map_err(usage)?;
    let quotas = match args.quota {
        Some(spec) => Some(Arc::new(
            crate::quota::QuotaBook::open(&args.quota_db, spec).map_err(usage)?,
        )),
        None => None,
    };
    let rt = runtime()?;
    let sessions_rt = session_runtime()?;
    let sessions_handle = sessions_rt.handle().clone();
    let limits = Limits {
        max_sessions: args.max_sessions,
        stop_after: args.sessions,
        grace: Duration::from_secs(args.shutdown_grace),
    };
    rt.block_on(async move {
        let mut listener =
            Server::bind_with_client_auth(args.listen, &identity, client_roots.as_ref(), net)
                .map_err(failure)?;
        match &client_roots {
            Some(roots) => info!(
                client_ca = %roots.fingerprints().iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                "clients must present a certificate of the client CA (mutual TLS)"
            ),
            None => warn!(
                "no --client-ca: this server is OPEN TO ANY CLIENT (fine for local experiments; \
                 a deployment sets --client-ca)"
            ),
        }
        let addr = listener.local_addr();
        for &n in &args.precompute {
            server.precompute(n).await.map_err(failure)?;
        }
        let offered: Vec<String> = server
            .backend_descriptions()
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        println!(
            "fusion serve: listening on {addr} (model `{}`, {} classes, backends: {}; certificate SHA-256 {}; at most {} sessions at once)",
            server.model().name,
            server.model().classes,
            offered.join("; "),
            identity.fingerprint(),
            limits.max_sessions,
        );
        let metrics = Metrics::new(limits.max_sessions);
        if let Some(at) = args.metrics {
            let http = crate::metrics::bind(at)
                .await
                .map_err(|e| usage(format!("--metrics {at}: {e}")))?;
            let local = http
                .local_addr()
                .map_err(|e| failure(format!("--metrics: {e}")))?;
            println!("fusion serve: metrics on http://{local}/metrics, readiness on http://{local}/readyz");
            tokio::spawn(metrics.clone().serve(http));
        }
        if !args.cheat.is_honest() {
            warn!(mode = %server.behaviour_name(), "this server CHEATS on purpose");
        }
        metrics.set_ready(true);
        if let (Some(spec), Some(_)) = (args.quota, &quotas) {
            info!(
                limit = spec.limit,
                period_secs = spec.period.as_secs(),
                db = %args.quota_db.display(),
                "per-client quota"
            );
        }
        let ctx = LoopContext {
            server,
            sessions_rt: sessions_handle,
            limits,
            metrics,
            quotas,
        };
        accept_loop(&mut listener, ctx).await
    })?;
    // Sessions still on the session runtime past the grace period end here.
    sessions_rt.shutdown_background();
    Ok(())
}

/// Most busy refusals in progress at once (each sends the refusal and waits
/// at most the connection's goodbye linger, 5 s, for the client to leave);
/// beyond it, a connection is closed at once, so a client opening many
/// connections holds at most this many refusal tasks.
const MAX_PENDING_REFUSALS: usize = 256;

/// The default of `--max-sessions`: the machine's cores.
fn default_max_sessions() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Admission limits of the accept loop.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_sessions: usize,
    stop_after: Option<u64>,
    grace: Duration,
}

/// The recent mean session time, for the busy refusal's "retry after".
#[derive(Debug, Default)]
struct SessionClock {
    mean_secs: std::sync::Mutex<Option<f64>>,
}

impl SessionClock {
    fn record(&self, d: Duration) {
        if let Ok(mut m) = self.mean_secs.lock() {
            let x = d.as_secs_f64();
            *m = Some(m.map_or(x, |prev| 0.8 * prev + 0.2 * x));
        }
    }

    /// Seconds until a slot is likely free: the mean session time over the
    /// number of slots, 1..=300; 2 before any session ended.
    fn retry_after(&self, slots: usize) -> u64 {
        let mean = self.mean_secs.lock().ok().and_then(|m| *m);
        match mean {
            None => 2,
            Some(m) => (m / slots.max(1) as f64).ceil().clamp(1.0, 300.0) as u64,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Accepts clients, admits up to `max_sessions` at once, refuses the rest as
/// busy; stops on a signal or after `stop_after` sessions, then lets running
/// sessions finish within the grace period.
/// What the accept loop works with.
struct LoopContext {
    server: Arc<SecureServer>,
    sessions_rt: tokio::runtime::Handle,
    limits: Limits,
    metrics: Metrics,
    quotas: Option<Arc<crate::quota::QuotaBook>>,
}

async fn accept_loop(listener: &mut Server, ctx: LoopContext) -> Result<(), CliError> {
    let LoopContext {
        server,
        sessions_rt,
        limits,
        metrics,
        quotas,
    } = ctx;
    let slots = Arc::new(Semaphore::new(limits.max_sessions));
    let refusals = Arc::new(Semaphore::new(MAX_PENDING_REFUSALS));
    let clock = Arc::new(SessionClock::default());
    let mut running: JoinSet<()> = JoinSet::new();
    let mut admitted = 0u64;
    let mut ended = 0u64;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut interrupted = false;
    loop {
        if limits.stop_after.is_some_and(|n| admitted >= n) {
            break;
        }
        let session = tokio::select! {
            s = listener.accept() => s.map_err(failure)?,
            Some(_) = running.join_next(), if !running.is_empty() => {
                ended += 1;
                continue;
            }
            _ = &mut stop => {
                info!("signal received; refusing new sessions, letting running ones finish");
                interrupted = true;
                break;
            }
        };
        // Quotas: a client with nothing left is refused before any work.
        let gate = match (&quotas, session.peer_identity()) {
            (Some(book), Some(id)) => {
                let client = id.name();
                match book.check(&client, crate::quota::now_unix()) {
                    Ok(Ok(())) => Some(Arc::new(crate::quota::ClientGate {
                        book: Arc::clone(book),
                        client,
                    }) as Arc<dyn fusion_engine::BatchGate>),
                    Ok(Err(status)) => {
                        info!(%client, "refused a session: {status}");
                        refuse_with(
                            &server,
                            session,
                            &refusals,
                            Refusal::Quota(status),
                            &metrics,
                        );
                        continue;
                    }
                    Err(e) => {
                        error!(%client, error = %e, "quota database failed; closing the connection");
                        session.close();
                        continue;
                    }
                }
            }
            _ => None,
        };
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => {
                admitted += 1;
                metrics.session_started();
                let task = run_session(Arc::clone(&server), session, Arc::clone(&clock), gate);
                let on_sessions = sessions_rt.spawn(task);
                let metrics = metrics.clone();
                running.spawn(async move {
                    let (outcome, samples, report, seconds) = match on_sessions.await {
                        Ok(r) => r,
                        Err(_) => (Outcome::Panicked, 0, None, 0.0),
                    };
                    metrics.session_ended(outcome, samples, report.as_ref(), seconds);
                    drop(permit);
                });
            }
            Err(_) => refuse(
                &server,
                session,
                &refusals,
                clock.retry_after(limits.max_sessions),
                &metrics,
            ),
        }
    }
    metrics.set_ready(false);
    let stopping = if interrupted {
        "shutting down"
    } else {
        "served the requested number of sessions"
    };
    info!(
        running = running.len(),
        "{stopping}; waiting for running sessions"
    );
    let grace = tokio::time::sleep(limits.grace);
    tokio::pin!(grace);
    let retry = clock.retry_after(limits.max_sessions);
    while !running.is_empty() {
        tokio::select! {
            Some(_) = running.join_next() => ended += 1,
            s = listener.accept() => {
                // Newcomers during the drain: refused as busy.
                if let Ok(s) = s {
                    refuse(&server, s, &refusals, retry, &metrics);
                }
            }
            _ = &mut grace, if interrupted => {
                warn!(running = running.len(), "grace period over; ending the remaining sessions");
                for _ in 0..running.len() {
                    metrics.session_ended(Outcome::Aborted, 0, None, limits.grace.as_secs_f64());
                }
                running.abort_all();
                while running.join_next().await.is_some() {}
                break;
            }
            _ = &mut stop, if !interrupted => {
                interrupted = true;
                info!("signal received while draining");
            }
        }
    }
    info!(sessions = ended, "stopped");
    Ok(())
}

/// Sends a busy refusal in a task of its own (see [`refuse_with`]).
fn refuse(
    server: &Arc<SecureServer>,
    session: fusion_net::Session,
    refusals: &Arc<Semaphore>,
    retry_after: u64,
    metrics: &Metrics,
) {
    refuse_with(
        server,
        session,
        refusals,
        Refusal::Busy(retry_after),
        metrics,
    );
}

/// Sends a refusal in a task of its own (bounded by
/// [`MAX_PENDING_REFUSALS`]; beyond it the connection is closed at once).
fn refuse_with(
    server: &Arc<SecureServer>,
    session: fusion_net::Session,
    refusals: &Arc<Semaphore>,
    why: Refusal,
    metrics: &Metrics,
) {
    let peer = session.peer_addr();
    match Arc::clone(refusals).try_acquire_owned() {
        Ok(permit) => {
            metrics.refused(why);
            let server = Arc::clone(server);
            tokio::spawn(async move {
                let sent = match why {
                    Refusal::Busy(s) => server.refuse_busy(session, s).await,
                    Refusal::Quota(q) => server.refuse_quota(session, q).await,
                    Refusal::Overflow => Ok(()),
                };
                match sent {
                    Ok(()) => info!(%peer, "refused a session: {}", why.describe()),
                    Err(e) => info!(%peer, error = %e, "refusal not delivered"),
                }
                drop(permit);
            });
        }
        Err(_) => {
            metrics.refused(Refusal::Overflow);
            warn!(%peer, "too many pending refusals; closing the connection");
            session.close();
        }
    }
}

/// What an ended session contributes to the metrics: outcome, samples
/// served, the server's meter and the session's seconds.
type SessionRecord = (Outcome, u64, Option<fusion_net::MeterReport>, f64);

/// One admitted session, isolated (see `SecureServer::serve_isolated`).
async fn run_session(
    server: Arc<SecureServer>,
    session: fusion_net::Session,
    clock: Arc<SessionClock>,
    gate: Option<Arc<dyn fusion_engine::BatchGate>>,
) -> SessionRecord {
    let peer = session.peer_addr();
    let meter = session.meter().clone();
    let client = session
        .peer_identity()
        .map_or_else(|| "anonymous".to_string(), |id| id.name());
    info!(%peer, %client, "session started");
    let mut rng = match os_rng() {
        Ok(r) => r,
        Err(e) => {
            error!(%peer, error = %e, "no randomness; dropping the session");
            session.close();
            return (Outcome::Error, 0, Some(meter.report()), 0.0);
        }
    };
    let start = std::time::Instant::now();
    let (outcome, samples) = match server.serve_isolated_gated(session, &mut rng, gate).await {
        Ok(s) => {
            info!(
                %peer,
                %client,
                backend = %s.backend,
                batches = s.batches,
                samples = s.samples,
                sent = %human_bytes(s.report.total.bytes_sent),
                received = %human_bytes(s.report.total.bytes_received),
                seconds = format!("{:.3}", s.report.seconds),
                "session finished"
            );
            (Outcome::Ok, s.samples)
        }
        Err(e) => {
            error!(
                %peer,
                %client,
                phase = %meter.last_entered(),
                error = %e,
                "session ended with an error"
            );
            (Outcome::of_error(&e), 0)
        }
    };
    let seconds = start.elapsed();
    clock.record(seconds);
    (
        outcome,
        samples,
        Some(meter.report()),
        seconds.as_secs_f64(),
    )
}
