//! `fusion serve`: the server of verifiable private inference. It holds a
//! model, listens for clients over QUIC + TLS (its certificate is what clients
//! pin, see `fusion keygen`), and serves client sessions one after another:
//! each session runs the secure two-party engine (`fusion_engine`) on the
//! batches the client sends. A client that misbehaves or vanishes ends its own
//! session with a logged error; the server keeps serving. Ctrl-C stops it.
//!
//! The server learns the batch sizes and nothing about the clients' samples or
//! outputs; clients learn the public view of the model (architecture, shapes,
//! fixed-point parameters, preprocessing), never its weights. `--cheat` makes
//! the server misbehave on purpose (for demonstrations and experiments):
//! Fusion clients detect it and abort.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fusion_engine::backends::cheetah::config::{CheetahConfig, HeChoice, OtKind};
use fusion_engine::stats::human_bytes;
use fusion_engine::statsec::{self, StatSecTarget};
use fusion_engine::{SecureServer, ServedModel, ServerConfig};
use fusion_net::{Identity, NetConfig, Server};
use fusion_nn::eval;

use crate::backend::{CheetahOptions, build, parse_names};
use crate::cheat::CheatMode;
use tracing::{error, info, warn};

use crate::common::{CliError, failure, init_logging, init_rayon, os_rng, runtime, usage};

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
    /// Stop after this many sessions (default: serve until Ctrl-C).
    #[arg(long, value_name = "N")]
    sessions: Option<u64>,
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
    /// sends about 1.2 MB of Galois keys once per session), the byte-minimising
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
    #[command(flatten)]
    no_seed: crate::common::NoSeed,
}

/// Runs `fusion serve`.
pub fn run(args: Args) -> ExitCode {
    init_logging("info");
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
    cheetah.ot_flavour = args.ot.unwrap_or_default();
    cheetah.ot.parallel_ot = args.ot_parallel;
    let options = CheetahOptions {
        given: Vec::new(),
        config: cheetah,
    }
    .given("--ot", args.ot.is_some())
    .given("--he", args.he.is_some())
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
    let timeout = Duration::from_secs(args.timeout);
    let config = ServerConfig {
        chunk: args.chunk,
        max_batch: args.max_batch,
        step_timeout: timeout,
    };
    let server =
        std::sync::Arc::new(SecureServer::new(model, config, backends, behaviour).map_err(usage)?);
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
    let rt = runtime()?;
    rt.block_on(async move {
        let mut listener = Server::bind(args.listen, &identity, net).map_err(failure)?;
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
            "fusion serve: listening on {addr} (model `{}`, {} classes, backends: {}; certificate SHA-256 {})",
            server.model().name,
            server.model().classes,
            offered.join("; "),
            identity.fingerprint()
        );
        if !args.cheat.is_honest() {
            warn!(mode = %server.behaviour_name(), "this server CHEATS on purpose");
        }
        let mut served = 0u64;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        // One session at a time (admission control for more comes with the
        // service work); each runs in its own task, so a client whose bytes
        // make the session fail or even panic ends only its own session.
        let admission = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
        loop {
            let permit = std::sync::Arc::clone(&admission)
                .acquire_owned()
                .await
                .map_err(|e| failure(format!("admission: {e}")))?;
            let session = tokio::select! {
                s = listener.accept() => s.map_err(failure)?,
                _ = &mut ctrl_c => { info!("interrupted; stopping"); break; }
            };
            let peer = session.peer_addr();
            let meter = session.meter().clone();
            info!(%peer, "session started");
            let mut rng = os_rng()?;
            tokio::select! {
                r = server.serve_isolated(session, &mut rng) => match r {
                    Ok(s) => info!(
                        %peer,
                        backend = %s.backend,
                        batches = s.batches,
                        samples = s.samples,
                        sent = %human_bytes(s.report.total.bytes_sent),
                        received = %human_bytes(s.report.total.bytes_received),
                        seconds = format!("{:.3}", s.report.seconds),
                        "session finished"
                    ),
                    Err(e) => error!(
                        %peer,
                        phase = %meter.last_entered(),
                        error = %e,
                        "session ended with an error"
                    ),
                },
                _ = &mut ctrl_c => { info!("interrupted during a session; stopping"); break; }
            }
            drop(permit);
            served += 1;
            if args.sessions.is_some_and(|n| served >= n) {
                info!(sessions = served, "served the requested number of sessions");
                break;
            }
        }
        Ok(())
    })
}
