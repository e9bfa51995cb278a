//! `fusion query`: the client of verifiable private inference (Fusion, Dong
//! et al., NDSS 2023). It connects to a `fusion serve` server (pinning its
//! certificate), **plans** the number of copies `B` for its `R` queries and `T`
//! public samples against the slack-aware bound (`fusion_core::security`),
//! **mixes** `B` copies of every query with the labelled public samples under a
//! secret random permutation, runs the batch through the secure two-party
//! engine (the server sees only encryptions and random shares), **verifies**
//! accuracy on the public samples and consistency of the copies, and prints
//! one prediction per query on accept or the reasons on abort.
//!
//! Exit codes: 0 accept, 3 abort (cheating detected or the model misses the
//! threshold), 2 usage errors (arguments, input files, a server model that
//! does not fit the files), 4 the server was busy (it runs its maximum of
//! sessions; "busy, retry after S seconds", after `--retries` attempts),
//! 5 our quota on the server is used up (the message says when it resets),
//! 1 other failures (network, protocol).
//!
//! Sample files: CSV, one sample per row, raw features (for images the
//! pixels `0..255` row-major, 784 values for MNIST), an optional header row;
//! the public file needs a header with a `label` column. `fusion samples`
//! writes both kinds from the shipped datasets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::ArgGroup;
use fusion_core::Threshold;
use fusion_core::mix::Labeled;
use fusion_core::search::DEFAULT_LAMBDA;
use fusion_core::security::Layout;
use fusion_core::verify::SecurityFigures;
use fusion_engine::backends::cheetah::config::OtKind;
use fusion_net::{NetConfig, ServerPin, connect_as};

use crate::common::{
    CliError, SampleFile, failure, init_rayon, os_rng, progress, read_samples, runtime, usage,
};
use crate::session::{FusionSettings, fusion_over_workers};

/// The default accuracy threshold (see `fusion query --help`).
pub const DEFAULT_THRESHOLD: &str = "0.9";

/// Help for `--threshold`: the choice and its cost.
pub const THRESHOLD_HELP: &str = "Accuracy threshold delta in (0, 1], parsed exactly (0.9 = 9/10): \
the client accepts only if at least ceil(delta T) of the T public samples are classified \
correctly.\n\n\
Why 0.9 by default: it keeps false aborts of an honest server rare for the shipped models \
(`fusion experiment honest`, T = 100): bc-mlp, 96.5% accurate on its 113 held-out patients, \
never aborted in 100,000 random public subsets of them and would abort with probability \
8.5e-4 on fresh samples (binomial model at 96.5%; 0.14 at delta = 0.95); mnist-cnn (99.3%) \
about 1e-10.\n\n\
Its price is slack: a cheating server may also corrupt s = T - ceil(delta T) public samples \
for free (s = 10 at T = 100). B is planned against the slack-aware bound, so 2^-lambda still \
holds, at the same or a higher B: at R = 8, T = 100 both 0.9 and 0.95 need B = 10 (bound \
2^-40.2 against 2^-42.1), at R = 32 both need B = 8. Raise delta for a model you know to be \
more accurate, lower it for a weaker one.";

/// Arguments of `fusion query`.
#[derive(clap::Args, Debug)]
#[command(group(ArgGroup::new("pin").required(true).args(["server_cert", "server_fingerprint"])))]
pub struct Args {
    /// The server's address, e.g. 127.0.0.1:4433 or fusion.example.org:4433
    /// (a name is resolved once, at start; its first address is used). Repeat it to split one
    /// batch across several `fusion serve` workers holding the same model
    /// (and presenting the one pinned certificate): the already-mixed batch
    /// is split by a fresh uniformly random partition of its positions, the
    /// checks run on the whole batch with the global B, T and bound, and the
    /// report gives each worker's cost (docs/SERVICE.md, "One batch across
    /// workers").
    #[arg(long = "server", value_name = "HOST:PORT", required = true, value_parser = resolve)]
    server: Vec<SocketAddr>,
    /// The server's certificate (PEM) to pin.
    #[arg(long, value_name = "FILE")]
    server_cert: Option<PathBuf>,
    /// The server certificate's SHA-256 fingerprint (hex, colons optional) to pin.
    #[arg(long, value_name = "HEX")]
    server_fingerprint: Option<String>,
    /// Our client certificate (PEM, from `fusion keygen --client NAME --ca
    /// DIR`) for a server that authenticates clients (`--client-ca`); needs
    /// --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// The private queries: CSV, one sample per row (raw features; for images
    /// the pixels 0..255 row-major), optional header row.
    #[arg(long, value_name = "FILE")]
    queries: PathBuf,
    /// The public samples: CSV like the queries plus a `label` column (header required).
    #[arg(long, value_name = "FILE")]
    public: PathBuf,
    /// Security parameter: undetected cheating has probability <= 2^-lambda.
    #[arg(long, value_name = "LAMBDA", default_value_t = DEFAULT_LAMBDA)]
    lambda: u32,
    #[doc = "Accuracy threshold delta in (0, 1]."]
    #[arg(long, value_name = "D", default_value = DEFAULT_THRESHOLD, long_help = THRESHOLD_HELP)]
    threshold: Threshold,
    /// Use exactly B copies per query instead of planning B. A B whose bound
    /// misses 2^-lambda for these R and T is refused unless --allow-weaker;
    /// the achieved bound is printed either way.
    #[arg(long, value_name = "B")]
    copies: Option<u64>,
    /// Run with --copies (or --public-count) even if the bound then misses
    /// 2^-lambda; the report flags it.
    #[arg(long)]
    allow_weaker: bool,
    /// Allow for near ties: copies whose scores agree within twice the
    /// server's announced output error bound are consistent, and a query whose
    /// margin is below that is reported as `tie` (accepted, no verified label)
    /// instead of aborting.
    #[arg(long)]
    near_ties: bool,
    /// Use only the first T public samples of the file.
    #[arg(long, value_name = "T")]
    public_count: Option<usize>,
    /// Largest B the planner may choose.
    #[arg(long, value_name = "B", default_value_t = 64)]
    max_copies: u64,
    /// Write the full report as JSON to this file.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
    /// Samples per chunk (the server may lower it).
    #[arg(long, value_name = "N", default_value_t = 256)]
    chunk: usize,
    /// Limit in seconds on every protocol step.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Require the server to compute in Z_2^L.
    #[arg(long, value_name = "L")]
    ring_bits: Option<u32>,
    /// Require the server to use F fractional bits.
    #[arg(long, value_name = "F")]
    frac_bits: Option<u32>,
    /// The two-party backend to run (see `fusion backends`); the server must
    /// offer it.
    #[arg(long, value_name = "NAME", default_value = fusion_engine::config::DEFAULT_BACKEND)]
    backend: String,
    /// Backend `cheetah`: require the server to use this OT flavour (silent or iknp).
    #[arg(long, value_name = "FLAVOUR")]
    ot: Option<OtKind>,
    /// Require at least BITS of statistical security per session from the
    /// server's HE noise flooding (announced as bits per revealed coefficient
    /// lambda_c and a cap M on the coefficients a session reveals; per session
    /// lambda_c - log2 M). A server below it is refused (exit 2) before any
    /// sample is sent; 0 accepts any.
    #[arg(long, value_name = "BITS", default_value_t = fusion_engine::statsec::DEFAULT_SESSION_BITS)]
    min_stat_sec: u32,
    /// On a busy refusal (the server runs its maximum of sessions), wait the
    /// seconds the server suggests and try again, up to this many times
    /// (default 0: report "busy, retry after S seconds" and exit 4).
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
    /// Require the server to announce this model name.
    #[arg(long, value_name = "NAME")]
    expect_model: Option<String>,
    #[command(flatten)]
    no_seed: crate::common::NoSeed,
}

/// Runs `fusion query`.
pub fn run(args: Args) -> ExitCode {
    crate::common::init_logging("warn");
    match query(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report("query"),
    }
}

/// Labelled public samples.
type Public = Vec<Labeled<Vec<f32>>>;

fn load(args: &Args) -> Result<(SampleFile, Public), CliError> {
    let queries = read_samples(&args.queries, false)?;
    let public = read_samples(&args.public, true)?;
    if queries.features != public.features {
        return Err(usage(format!(
            "queries have {} values per sample, public samples {}",
            queries.features, public.features
        )));
    }
    let labels = public.labels.clone().unwrap_or_default();
    let mut public: Vec<Labeled<Vec<f32>>> = public
        .samples
        .into_iter()
        .zip(labels)
        .map(|(s, l)| Labeled::new(s, l))
        .collect();
    if let Some(t) = args.public_count {
        if t == 0 || t > public.len() {
            return Err(usage(format!(
                "--public-count {t}: the public file has {} samples",
                public.len()
            )));
        }
        public.truncate(t);
    }
    Ok((queries, public))
}

fn query(args: Args) -> Result<u8, CliError> {
    args.no_seed.check("query")?;
    if args.lambda == 0 || args.lambda > fusion_core::search::MAX_LAMBDA {
        return Err(usage("--lambda must be in 1..=256"));
    }
    if args.timeout == 0 {
        return Err(usage("--timeout must be positive"));
    }
    let pin = match (&args.server_cert, &args.server_fingerprint) {
        (Some(p), _) => ServerPin::from_cert_file(p).map_err(usage)?,
        (None, Some(h)) => ServerPin::from_fingerprint_hex(h).map_err(usage)?,
        (None, None) => return Err(usage("give --server-cert or --server-fingerprint")),
    };
    let client_id =
        crate::common::client_identity(args.client_cert.as_deref(), args.client_key.as_deref())?;
    let (queries, public) = load(&args)?;
    let (r, t) = (queries.samples.len(), public.len());
    let mut settings = FusionSettings::new(args.threshold);
    settings.lambda = args.lambda;
    settings.copies = args.copies;
    settings.max_copies = args.max_copies;
    settings.chunk = args.chunk;
    settings.timeout = Duration::from_secs(args.timeout);
    settings.policy.ring_bits = args.ring_bits;
    settings.policy.frac_bits = args.frac_bits;
    settings.require_ot = args.ot;
    settings.backend = args.backend.clone();
    settings.policy.model_name = args.expect_model.clone();
    settings.policy.min_stat_sec_bits = (args.min_stat_sec > 0).then_some(args.min_stat_sec);
    settings.allow_weaker = args.allow_weaker;
    settings.near_ties = args.near_ties;
    settings.check_backend()?;
    settings.check_plan(r, t)?;
    if let Some(b) = args.copies {
        let slack = args.threshold.slack(t as u64);
        let layout = Layout::new(r as u64, b, t as u64).map_err(usage)?;
        let sec = SecurityFigures::compute(layout, slack, args.lambda);
        eprintln!(
            "fusion query: R = {r}, B = {b}, T = {t}, delta = {} (slack s = {slack}): undetected \
             cheating <= 2^{:.2} (slack-aware; paper's bound 2^{:.2}); target 2^-{} {}",
            args.threshold,
            sec.log2_slack_bound,
            sec.log2_paper_bound,
            args.lambda,
            if sec.meets_target { "met" } else { "NOT met" }
        );
    }
    init_rayon();
    let mut rng = os_rng()?;
    let mut net = NetConfig::default();
    net.messages = net.messages.with_timeout(settings.timeout);
    let (bar, callback) = progress(args.quiet, "secure inference");
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let mut attempt = 0u32;
        loop {
            let mut sessions = Vec::with_capacity(args.server.len());
            for addr in &args.server {
                let session = connect_as(*addr, &pin, client_id.as_ref(), &net)
                    .await
                    .map_err(|e| connect_error(e, client_id.is_some()))
                    .map_err(|e| {
                        if args.server.len() > 1 {
                            e.context(&format!("worker {addr}"))
                        } else {
                            e
                        }
                    })?;
                sessions.push((addr.to_string(), session));
            }
            let result = fusion_over_workers(
                sessions,
                &queries.samples,
                &public,
                &settings,
                Some(callback.clone()),
                &mut rng,
            )
            .await;
            match result {
                Err(CliError::Busy { retry_after_secs }) if attempt < args.retries => {
                    attempt += 1;
                    eprintln!(
                        "fusion query: busy, retry after {retry_after_secs} seconds \
                         (retry {attempt} of {})",
                        args.retries
                    );
                    tokio::time::sleep(Duration::from_secs(retry_after_secs)).await;
                }
                other => return other,
            }
        }
    });
    bar.finish_and_clear();
    let outcome = outcome?;
    println!("{}", outcome.render(queries.labels.as_deref(), &[]));
    if let Some(path) = &args.json {
        std::fs::write(path, outcome.to_json())
            .map_err(|e| failure(format!("{}: {e}", path.display())))?;
        eprintln!("fusion query: wrote the report to {}", path.display());
    }
    Ok(outcome.exit_code())
}

/// `HOST:PORT` to its first socket address (a name is resolved by the
/// system resolver).
fn resolve(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    text.to_socket_addrs()
        .map_err(|e| format!("`{text}`: {e} (expected HOST:PORT)"))?
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

/// A connection failure, with a hint when the server's TLS alert says it
/// wants (another) client certificate.
fn connect_error(e: fusion_net::NetError, presented: bool) -> CliError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if lower.contains("certificate") && !lower.contains("pinned") {
        let hint = if presented {
            "the server refused our client certificate (not signed by its client CA?)"
        } else {
            "the server requires a client certificate: give --client-cert and --client-key"
        };
        failure(format!("{text} ({hint})"))
    } else {
        failure(e)
    }
}
