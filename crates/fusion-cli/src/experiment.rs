//! `fusion experiment`: measurements of the whole system.
//!
//! * `detect`: many small Fusion batches against a **tampering** server, and
//!   the measured undetected-cheating rate next to fusion-core's exact
//!   slack-aware probability `P(k)` with a binomial (Clopper-Pearson)
//!   confidence interval.
//! * `honest`: the **false-abort** rate of an honest server at several
//!   thresholds: from the fixed-point engine (whose outputs the secure engine
//!   reproduces) over many random public subsets, exactly (hypergeometric) and
//!   under a binomial model of fresh samples; plus real secure sessions.
//! * `agreement`: the secure engine against the fixed-point engine on many
//!   test samples: argmax agreement and largest logit error.
//! * `targeted`: how often the public-accuracy check catches a **targeted
//!   misclassification** (`--cheat targeted:A:B`, a model change the cheating
//!   bound does not cover) as a function of T and the threshold: exactly
//!   (hypergeometric) and over random public subsets of the held-out split
//!   from the fixed-point engine, plus real secure sessions.
//!
//! * `extraction`: model-extraction attacks through an oracle
//!   (`crate::extraction`, crate `fusion-attacks`).
//!
//! All sessions run both parties in this process over real QUIC + TLS on
//! 127.0.0.1 (`fusion_net::local_pair`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use fusion_core::Threshold;
use fusion_core::engine::{Copies, FusionParams, plan_copies, run_fusion};
use fusion_core::mix::{Labeled, uniform_below};
use fusion_core::security::{self, Layout};
use fusion_core::stats::{binomial_tail, clopper_pearson_interval95 as ci95, hypergeometric_tail};
use fusion_core::verify::Verdict;
use fusion_engine::backends::cheetah::config::OtKind;
use fusion_engine::behaviour::Honest;
use fusion_engine::bound::deviation_bound;
use fusion_engine::cheats::{Tamper, Targeted};
use fusion_engine::stats::human_bytes;
use fusion_engine::{
    Backend, ClientConfig, SecureClient, SecureError, SecureServer, ServedModel, ServerConfig,
};
use fusion_net::{MeterReport, NetConfig, local_pair};
use fusion_nn::data::{self, Part, Split};
use fusion_nn::fixed::{FixedProgram, argmax_signed};
use fusion_nn::tensor::Tensor;
use fusion_nn::{Model, eval};
use rand::rngs::ChaCha20Rng;
use serde::Serialize;

use crate::backend::{CheetahOptions, build_one};
use crate::common::{CliError, failure, init_rayon, os_rng, phase_table, runtime, usage};
use crate::query::DEFAULT_THRESHOLD;

/// Arguments of `fusion experiment`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand, Debug)]
enum Which {
    /// Undetected-cheating rate against a tampering server vs the exact formula.
    Detect(DetectArgs),
    /// False-abort rate of an honest server at several thresholds.
    Honest(HonestArgs),
    /// Secure engine vs fixed-point engine: argmax agreement and logit error.
    Agreement(AgreementArgs),
    /// Detection of a targeted misclassification by the public-accuracy check.
    Targeted(TargetedArgs),
    /// How often fixed-point values leave the ring, inside and outside the
    /// accepted input box, with stretched inputs.
    Wrap(crate::wrap::WrapArgs),
    /// Model-extraction attacks (JbDA, Carlini et al.) against the service's outputs.
    Extraction(crate::extraction::ExtractionArgs),
}

/// Runs `fusion experiment`.
pub fn run(args: Args) -> ExitCode {
    crate::common::init_logging("warn");
    let r = match args.which {
        Which::Detect(a) => detect(a),
        Which::Honest(a) => honest(a),
        Which::Agreement(a) => agreement(a),
        Which::Targeted(a) => targeted(a),
        Which::Wrap(a) => crate::wrap::wrap(a),
        Which::Extraction(a) => crate::extraction::extraction(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("experiment"),
    }
}

fn rng_from(seed: Option<u64>, stream: u64) -> Result<ChaCha20Rng, CliError> {
    match seed {
        Some(s) => Ok(fusion_core::mix::seeded_rng_for_experiments(
            s.wrapping_add(stream),
        )),
        None => os_rng(),
    }
}

pub(crate) fn model_dir(arg: &Option<PathBuf>, default: &str) -> Result<PathBuf, CliError> {
    match arg {
        Some(d) => Ok(d.clone()),
        None => Ok(data::data_dir()
            .map_err(usage)?
            .join("models")
            .join(default)),
    }
}

pub(crate) fn held_out(model: &Model) -> Result<Split, CliError> {
    let dataset = model
        .meta
        .dataset
        .clone()
        .ok_or_else(|| usage("the model names no dataset"))?;
    data::load(&data::data_dir().map_err(usage)?, &dataset, Part::Test).map_err(failure)
}

fn sample_rows(split: &Split, idx: &[usize]) -> Vec<Vec<f32>> {
    idx.iter()
        .map(|&i| split.inputs.sample(i).to_vec())
        .collect()
}

/// Fixed-point logits of raw samples (decoded).
fn fixed_logits(
    model: &Model,
    program: &FixedProgram,
    raw: &Tensor<f32>,
) -> Result<Tensor<f32>, CliError> {
    let x = model.meta.preprocess.apply(raw).map_err(failure)?;
    program.run_float(&x).map_err(failure)
}

fn net() -> NetConfig {
    NetConfig::default()
}

// ---------------------------------------------------------------- detect

/// Arguments of `fusion experiment detect`.
#[derive(clap::Args, Debug)]
pub struct DetectArgs {
    /// Fusion batches (sessions' runs) per tamper count.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    runs: u64,
    /// Queries R per batch.
    #[arg(long, value_name = "R", default_value_t = 2)]
    queries: usize,
    /// Copies B per query.
    #[arg(long, value_name = "B", default_value_t = 2)]
    copies: u64,
    /// Public samples T per batch.
    #[arg(long, value_name = "T", default_value_t = 4)]
    public: usize,
    /// Accuracy threshold delta (slack s = T - ceil(delta T)).
    #[arg(long, value_name = "D", default_value = "0.75")]
    threshold: Threshold,
    /// Tamper counts K (comma separated): positions the server corrupts per batch.
    #[arg(
        long,
        value_name = "K,...",
        value_delimiter = ',',
        default_value = "1,2,3,4"
    )]
    tamper: Vec<u64>,
    /// The class the server forces.
    #[arg(long, value_name = "CLASS", default_value_t = 0)]
    target: usize,
    /// Model directory (default: the shipped bc-mlp).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Seed both parties' generators (default: OS randomness).
    #[arg(long, value_name = "SEED")]
    seed: Option<u64>,
    /// Write the results as JSON.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// The two-party backend both parties run (see `fusion backends`).
    #[arg(long, value_name = "NAME", default_value = fusion_engine::config::DEFAULT_BACKEND)]
    backend: String,
}

#[derive(Debug, Serialize)]
struct DetectRow {
    tamper: u64,
    runs: u64,
    aborted: u64,
    accepted_unaffected: u64,
    undetected: u64,
    rate: f64,
    ci95_low: f64,
    ci95_high: f64,
    exact_slack_aware: f64,
    exact_without_slack: f64,
    exact_within_ci: bool,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct DetectReport {
    model: String,
    queries: usize,
    copies: u64,
    public: usize,
    total: u64,
    threshold: Threshold,
    slack: u64,
    target: usize,
    note: &'static str,
    rows: Vec<DetectRow>,
}

const DETECT_NOTE: &str = "queries and public samples are held-out samples that the model \
classifies correctly (with margin) and whose true label differs from the target, so every \
tampered position changes its label and the game is exactly the one P(k) analyses: the server \
wins iff its k positions are i >= 1 whole copy-groups plus at most s public samples. \
'undetected' = accepted with at least one query's label changed.";

fn detect(a: DetectArgs) -> Result<(), CliError> {
    if a.queries == 0 || a.public == 0 || a.copies < 2 || a.runs == 0 || a.tamper.is_empty() {
        return Err(usage(
            "--queries, --public, --runs and --tamper must be positive, --copies >= 2",
        ));
    }
    let dir = model_dir(&a.model, "bc-mlp")?;
    let fixed = eval::default_fixed_point();
    let model = Model::load(&dir).map_err(usage)?;
    if a.target >= model.meta.classes {
        return Err(usage(format!(
            "--target {} of {} classes",
            a.target, model.meta.classes
        )));
    }
    let program = fusion_nn::fixed::lower(&model, fixed).map_err(failure)?;
    let test = held_out(&model)?;
    let logits = fixed_logits(&model, &program, &test.inputs)?;
    let classes = model.meta.classes;
    // Correct, with margin, and not of the target class.
    let eligible: Vec<usize> = (0..test.len())
        .filter(|&i| {
            let row = logits.sample(i);
            let y = test.labels[i];
            let best_other = row
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != y)
                .map(|(_, &v)| v)
                .fold(f32::NEG_INFINITY, f32::max);
            y != a.target && row[y] - best_other > 0.5
        })
        .collect();
    if eligible.len() < a.queries + a.public {
        return Err(usage(format!(
            "only {} eligible held-out samples for R + T = {}",
            eligible.len(),
            a.queries + a.public
        )));
    }
    let queries = sample_rows(&test, &eligible[..a.queries]);
    let public: Vec<Labeled<Vec<f32>>> = eligible[a.queries..a.queries + a.public]
        .iter()
        .map(|&i| Labeled::new(test.inputs.sample(i).to_vec(), test.labels[i]))
        .collect();
    let truth: Vec<usize> = eligible[..a.queries]
        .iter()
        .map(|&i| test.labels[i])
        .collect();
    let layout = Layout::new(a.queries as u64, a.copies, a.public as u64).map_err(usage)?;
    let slack = a.threshold.slack(a.public as u64);
    let mut params = FusionParams::new(classes, a.threshold);
    params.copies = Copies::Fixed(a.copies);
    init_rayon();
    let rt = runtime()?;
    let mut report = DetectReport {
        model: model.meta.name.clone(),
        queries: a.queries,
        copies: a.copies,
        public: a.public,
        total: layout.total(),
        threshold: a.threshold,
        slack,
        target: a.target,
        note: DETECT_NOTE,
        rows: Vec::new(),
    };
    println!(
        "detection experiment: model `{}`, R = {}, B = {}, T = {}, N = {}, delta = {} (slack s = {}), target class {}, {} runs per K",
        model.meta.name,
        a.queries,
        a.copies,
        a.public,
        layout.total(),
        a.threshold,
        slack,
        a.target,
        a.runs
    );
    println!("{DETECT_NOTE}");
    println!(
        "{:>4} {:>7} {:>8} {:>10} {:>10} {:>9} {:>19} {:>12} {:>12} {:>7}",
        "K",
        "runs",
        "aborted",
        "accepted*",
        "undetected",
        "rate",
        "95% CI",
        "P(K) slack",
        "P(K) s=0",
        "in CI"
    );
    for (ki, &k) in a.tamper.iter().enumerate() {
        if k == 0 || k > layout.total() {
            return Err(usage(format!("tamper count {k} outside 1..=N")));
        }
        let served = ServedModel::from_model(&model, fixed).map_err(failure)?;
        let cheat = Tamper::new(k as usize, a.target, served.classes).map_err(usage)?;
        let server = SecureServer::new(
            served,
            ServerConfig::default(),
            vec![backend(&a.backend, None)?],
            Arc::new(cheat),
        )
        .map_err(failure)?;
        let client_backend = backend(&a.backend, None)?;
        let mut srng = rng_from(a.seed, 1000 + 2 * ki as u64)?;
        let mut crng = rng_from(a.seed, 1001 + 2 * ki as u64)?;
        let started = Instant::now();
        let (aborted, unaffected, wins) = rt.block_on(async {
            let (s, c) = local_pair(&net()).await.map_err(failure)?;
            let client = async {
                let mut client = SecureClient::connect(
                    c,
                    ClientConfig::default(),
                    client_backend.as_ref(),
                    &mut crng,
                )
                .await
                .map_err(failure)?;
                let (mut aborted, mut unaffected, mut wins) = (0u64, 0u64, 0u64);
                for _ in 0..a.runs {
                    let r = run_fusion(&mut client, &queries, &public, &params, &mut crng)
                        .await
                        .map_err(failure)?;
                    match &r.verdict {
                        Verdict::Abort { .. } => aborted += 1,
                        Verdict::Accept { outputs, .. } => {
                            if outputs.iter().zip(&truth).any(|(o, &t)| o.label() != t) {
                                wins += 1;
                            } else {
                                unaffected += 1;
                            }
                        }
                    }
                }
                client.finish().await.map_err(failure)?;
                Ok::<_, CliError>((aborted, unaffected, wins))
            };
            let (srv, cli) = tokio::join!(server.serve(s, &mut srng), client);
            srv.map_err(failure)?;
            cli
        })?;
        let rate = wins as f64 / a.runs as f64;
        let (lo, hi) = ci95(wins, a.runs);
        let exact = security::slack_probability(layout, slack, k).to_f64();
        let no_slack = security::slack_probability(layout, 0, k).to_f64();
        let within = exact >= lo && exact <= hi;
        println!(
            "{k:>4} {:>7} {aborted:>8} {unaffected:>10} {wins:>10} {rate:>9.4} [{lo:>7.4}, {hi:>7.4}] {exact:>12.4} {no_slack:>12.4} {:>7}",
            a.runs,
            if within { "yes" } else { "NO" }
        );
        report.rows.push(DetectRow {
            tamper: k,
            runs: a.runs,
            aborted,
            accepted_unaffected: unaffected,
            undetected: wins,
            rate,
            ci95_low: lo,
            ci95_high: hi,
            exact_slack_aware: exact,
            exact_without_slack: no_slack,
            exact_within_ci: within,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    println!(
        "(* accepted with every query label intact: the tampering hit only public samples within the slack)"
    );
    if let Some(p) = &a.json {
        write_json(p, &report)?;
    }
    Ok(())
}

pub(crate) fn write_json<T: Serialize>(path: &PathBuf, v: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v).map_err(failure)?;
    std::fs::write(path, text).map_err(|e| failure(format!("{}: {e}", path.display())))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------- honest

/// Arguments of `fusion experiment honest`.
#[derive(clap::Args, Debug)]
pub struct HonestArgs {
    /// Model directory (default: the shipped bc-mlp).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Public samples T per batch.
    #[arg(long, value_name = "T", default_value_t = 100)]
    public: usize,
    /// Thresholds to evaluate (comma separated).
    #[arg(
        long,
        value_name = "D,...",
        value_delimiter = ',',
        default_value = "0.85,0.9,0.95,0.97"
    )]
    thresholds: Vec<Threshold>,
    /// Random public subsets per threshold (fixed-point engine).
    #[arg(long, value_name = "M", default_value_t = 100_000)]
    subsets: u64,
    /// Real secure Fusion sessions at --threshold.
    #[arg(long, value_name = "S", default_value_t = 3)]
    sessions: u64,
    /// Queries R of each secure session.
    #[arg(long, value_name = "R", default_value_t = 8)]
    queries: usize,
    /// Threshold of the secure sessions.
    #[arg(long, value_name = "D", default_value = DEFAULT_THRESHOLD)]
    threshold: Threshold,
    /// The two-party backend both parties run (see `fusion backends`).
    #[arg(long, value_name = "NAME", default_value = fusion_engine::config::DEFAULT_BACKEND)]
    backend: String,
    /// Seed (default: OS randomness).
    #[arg(long, value_name = "SEED")]
    seed: Option<u64>,
    /// Write the results as JSON.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct HonestRow {
    threshold: Threshold,
    slack: u64,
    subsets: u64,
    false_aborts: u64,
    empirical_rate: f64,
    exact_hypergeometric: f64,
    binomial_model: f64,
    copies_r8: Option<u64>,
    log2_bound_r8: Option<f64>,
    copies_r32: Option<u64>,
    log2_bound_r32_b7_t100: f64,
}

#[derive(Debug, Serialize)]
struct HonestReport {
    model: String,
    samples: usize,
    wrong: usize,
    fixed_point_accuracy: f64,
    public: usize,
    rows: Vec<HonestRow>,
    secure_threshold: Threshold,
    secure_sessions: u64,
    secure_aborts: u64,
    secure_queries: usize,
}

fn honest(a: HonestArgs) -> Result<(), CliError> {
    let dir = model_dir(&a.model, "bc-mlp")?;
    let fixed = eval::default_fixed_point();
    let model = Model::load(&dir).map_err(usage)?;
    let program = fusion_nn::fixed::lower(&model, fixed).map_err(failure)?;
    let test = held_out(&model)?;
    let n = test.len();
    if a.public == 0 || a.public > n {
        return Err(usage(format!("--public must be in 1..={n}")));
    }
    let pred = eval::predict_fixed(&model, &program, &test).map_err(failure)?;
    let wrong_idx: Vec<bool> = pred.iter().zip(&test.labels).map(|(p, l)| p != l).collect();
    let wrong = wrong_idx.iter().filter(|&&w| w).count();
    let acc = 1.0 - wrong as f64 / n as f64;
    println!(
        "honest runs: model `{}` on its held-out split: {}/{n} correct (fixed point, accuracy {:.4}); T = {} public samples per batch",
        model.meta.name,
        n - wrong,
        acc,
        a.public
    );
    let mut rng = rng_from(a.seed, 7)?;
    let t = a.public as u64;
    let mut rows = Vec::new();
    println!(
        "{:>9} {:>6} {:>10} {:>12} {:>14} {:>14} {:>8} {:>12} {:>8} {:>22}",
        "delta",
        "slack",
        "subsets",
        "false abort",
        "exact (hyper)",
        "binomial(p^)",
        "B (R=8)",
        "log2 P (R=8)",
        "B (R=32)",
        "log2 P (R=32,B=7,T=100)"
    );
    for &delta in &a.thresholds {
        let slack = delta.slack(t);
        let mut idx: Vec<usize> = (0..n).collect();
        let mut aborts = 0u64;
        for _ in 0..a.subsets {
            // Partial Fisher-Yates: idx[..T] is a uniform T-subset.
            let mut wrong_in = 0u64;
            for i in 0..a.public {
                let j = i + uniform_below(&mut rng, (n - i) as u64) as usize;
                idx.swap(i, j);
                wrong_in += u64::from(wrong_idx[idx[i]]);
            }
            if wrong_in > slack {
                aborts += 1;
            }
        }
        let exact = hypergeometric_tail(n as u64, wrong as u64, t, slack);
        let binom = binomial_tail(t, wrong as f64 / n as f64, slack);
        let plan8 = plan_copies(8, t, delta, 40, 64).ok();
        let b8 = plan8.as_ref().map(|(b, _, _)| *b);
        let l8 = plan8.as_ref().map(|(_, _, w)| w.probability.log2());
        let b32 = plan_copies(32, t, delta, 40, 64).ok().map(|(b, _, _)| b);
        let bound = Layout::new(32, 7, 100)
            .map(|l| {
                security::slack_bound(l, delta.slack(100))
                    .probability
                    .log2()
            })
            .unwrap_or(f64::NAN);
        let rate = aborts as f64 / a.subsets.max(1) as f64;
        println!(
            "{:>9} {slack:>6} {:>10} {rate:>12.5} {exact:>14.3e} {binom:>14.3e} {:>8} {:>12} {:>8} {bound:>22.2}",
            delta.to_string(),
            a.subsets,
            b8.map_or("-".into(), |b| b.to_string()),
            l8.map_or("-".into(), |l| format!("{l:.2}")),
            b32.map_or("-".into(), |b| b.to_string()),
        );
        rows.push(HonestRow {
            threshold: delta,
            slack,
            subsets: a.subsets,
            false_aborts: aborts,
            empirical_rate: rate,
            exact_hypergeometric: exact,
            binomial_model: binom,
            copies_r8: b8,
            log2_bound_r8: l8,
            copies_r32: b32,
            log2_bound_r32_b7_t100: bound,
        });
    }
    println!(
        "(false abort: accuracy below delta on a uniformly random T-subset of the held-out split; \
         exact = hypergeometric tail; binomial(p^) = fresh samples at the measured accuracy)"
    );
    // Real secure sessions.
    let mut secure_aborts = 0u64;
    if a.sessions > 0 {
        if a.queries == 0 || a.queries + a.public > n {
            return Err(usage("--queries + --public exceed the held-out split"));
        }
        init_rayon();
        let rt = runtime()?;
        let mut srng = rng_from(a.seed, 8)?;
        let served = ServedModel::from_model(&model, fixed).map_err(failure)?;
        let server = SecureServer::new(
            served,
            ServerConfig::default(),
            vec![backend(&a.backend, None)?],
            Arc::new(Honest),
        )
        .map_err(failure)?;
        let client_backend = backend(&a.backend, None)?;
        let params = FusionParams::new(model.meta.classes, a.threshold);
        for s in 0..a.sessions {
            let mut idx: Vec<usize> = (0..n).collect();
            for i in 0..a.queries + a.public {
                let j = i + uniform_below(&mut rng, (n - i) as u64) as usize;
                idx.swap(i, j);
            }
            let queries = sample_rows(&test, &idx[..a.queries]);
            let public: Vec<Labeled<Vec<f32>>> = idx[a.queries..a.queries + a.public]
                .iter()
                .map(|&i| Labeled::new(test.inputs.sample(i).to_vec(), test.labels[i]))
                .collect();
            let mut crng = rng_from(a.seed.map(|v| v ^ s), 9)?;
            let started = Instant::now();
            let report = rt.block_on(async {
                let (ss, cs) = local_pair(&net()).await.map_err(failure)?;
                let client = async {
                    let mut c = SecureClient::connect(
                        cs,
                        ClientConfig::default(),
                        client_backend.as_ref(),
                        &mut crng,
                    )
                    .await
                    .map_err(failure)?;
                    let r = run_fusion(&mut c, &queries, &public, &params, &mut crng)
                        .await
                        .map_err(failure)?;
                    c.finish().await.map_err(failure)?;
                    Ok::<_, CliError>(r)
                };
                let (srv, cli) = tokio::join!(server.serve(ss, &mut srng), client);
                srv.map_err(failure)?;
                cli
            })?;
            if !report.accepted() {
                secure_aborts += 1;
            }
            println!(
                "secure session {}: {} (accuracy {}/{}, B = {}, N = {}) in {:.2} s",
                s + 1,
                if report.accepted() { "accept" } else { "ABORT" },
                report.accuracy.correct,
                report.accuracy.total,
                report.parameters.copies,
                report.parameters.total,
                started.elapsed().as_secs_f64()
            );
        }
        println!(
            "secure sessions at delta = {}: {secure_aborts} abort(s) in {}",
            a.threshold, a.sessions
        );
    }
    if let Some(p) = &a.json {
        write_json(
            p,
            &HonestReport {
                model: model.meta.name.clone(),
                samples: n,
                wrong,
                fixed_point_accuracy: acc,
                public: a.public,
                rows,
                secure_threshold: a.threshold,
                secure_sessions: a.sessions,
                secure_aborts,
                secure_queries: a.queries,
            },
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------- targeted

/// Arguments of `fusion experiment targeted`.
#[derive(clap::Args, Debug)]
pub struct TargetedArgs {
    /// Model directory (default: the shipped mnist-cnn).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// The class A whose samples the server relabels.
    #[arg(long, value_name = "A", default_value_t = 3)]
    from: usize,
    /// The label B it gives them [default: (A + 1) mod classes].
    #[arg(long, value_name = "B")]
    to: Option<usize>,
    /// Public sample counts T to evaluate (comma separated).
    #[arg(
        long,
        value_name = "T,...",
        value_delimiter = ',',
        default_value = "10,25,50,100,200"
    )]
    public: Vec<usize>,
    /// Thresholds to evaluate (comma separated).
    #[arg(
        long,
        value_name = "D,...",
        value_delimiter = ',',
        default_value = "0.8,0.9,0.95"
    )]
    thresholds: Vec<Threshold>,
    /// Random public subsets per (T, threshold) (fixed-point engine).
    #[arg(long, value_name = "M", default_value_t = 20_000)]
    subsets: u64,
    /// Held-out samples to use (default: the whole split).
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// Real secure Fusion sessions against the targeted server.
    #[arg(long, value_name = "S", default_value_t = 2)]
    sessions: u64,
    /// Queries R of each secure session (held-out samples the honest model
    /// labels A, so that every query is one the cheat changes).
    #[arg(long, value_name = "R", default_value_t = 4)]
    session_queries: usize,
    /// Public samples T of each secure session.
    #[arg(long, value_name = "T", default_value_t = 50)]
    session_public: usize,
    /// Copies B of each secure session. The copy check cannot catch a model
    /// change (all copies agree), so the default is the smallest B; the
    /// position-based bound is then weak, on purpose (flagged in the output).
    #[arg(long, value_name = "B", default_value_t = 2)]
    session_copies: u64,
    /// Threshold of the secure sessions.
    #[arg(long, value_name = "D", default_value = DEFAULT_THRESHOLD)]
    threshold: Threshold,
    /// The two-party backend both parties run (see `fusion backends`).
    #[arg(long, value_name = "NAME", default_value = fusion_engine::config::DEFAULT_BACKEND)]
    backend: String,
    /// Seed (default: OS randomness).
    #[arg(long, value_name = "SEED")]
    seed: Option<u64>,
    /// Write the results as JSON.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct TargetedRow {
    public: usize,
    threshold: Threshold,
    slack: u64,
    subsets: u64,
    detected: u64,
    detection_rate: f64,
    ci95_low: f64,
    ci95_high: f64,
    detection_exact_hypergeometric: f64,
    detection_binomial_model: f64,
    honest_false_abort_exact: f64,
}

#[derive(Debug, Serialize)]
struct TargetedSecure {
    public: usize,
    queries: usize,
    copies: u64,
    threshold: Threshold,
    sessions: u64,
    aborted: u64,
    undetected: u64,
    accepted_unaffected: u64,
    flag: &'static str,
}

#[derive(Debug, Serialize)]
struct TargetedReport {
    model: String,
    from: usize,
    to: usize,
    samples: usize,
    honest_wrong: usize,
    targeted_wrong: usize,
    relabelled: usize,
    fraction_relabelled: f64,
    bound_scope: &'static str,
    note: &'static str,
    rows: Vec<TargetedRow>,
    secure: Option<TargetedSecure>,
}

const TARGETED_NOTE: &str = "the server runs the honest model plus a gadget that relabels every \
sample the honest model labels A as B (a model change: all copies agree, so the cheating bound, \
whose scope is position-based tampering, does not apply). Only the public-accuracy check can \
catch it: the server is caught iff more than s = T - ceil(delta T) public samples come out wrong. \
Public samples are drawn uniformly from the held-out split, which the server is assumed unable \
to single out; a server that could recognise them would answer them honestly and never be \
caught. detection_exact_hypergeometric: public sets drawn without replacement from this split; \
binomial: fresh samples at the same error rate; honest_false_abort_exact: the same check against \
the honest model.";

const TARGETED_FLAG: &str = "weak on purpose: B is fixed (the copy check cannot see a model \
change) and the position-based bound is not met; the sessions measure the public-accuracy check";

fn targeted(a: TargetedArgs) -> Result<(), CliError> {
    if a.public.is_empty() || a.public.contains(&0) || a.thresholds.is_empty() {
        return Err(usage(
            "--public needs positive counts and --thresholds at least one",
        ));
    }
    let dir = model_dir(&a.model, "mnist-cnn")?;
    let fixed = eval::default_fixed_point();
    let model = Model::load(&dir).map_err(usage)?;
    let classes = model.meta.classes;
    if a.from >= classes {
        return Err(usage(format!("--from {} of {classes} classes", a.from)));
    }
    let to = a.to.unwrap_or((a.from + 1) % classes);
    let cheat = Targeted::new(&model, fixed, a.from, to).map_err(usage)?;
    let honest_program = fusion_nn::fixed::lower(&model, fixed).map_err(failure)?;
    let mut test = held_out(&model)?;
    if let Some(c) = a.count {
        if c == 0 {
            return Err(usage("--count must be positive"));
        }
        test = test.head(c);
    }
    let n = test.len();
    if let Some(&t) = a.public.iter().find(|&&t| t > n) {
        return Err(usage(format!(
            "--public {t} exceeds the {n} held-out samples"
        )));
    }
    let started = Instant::now();
    let honest_pred = eval::predict_fixed(&model, &honest_program, &test).map_err(failure)?;
    let cheat_pred =
        eval::predict_fixed(&model, &cheat.served().program, &test).map_err(failure)?;
    let honest_wrong = honest_pred
        .iter()
        .zip(&test.labels)
        .filter(|(p, l)| p != l)
        .count();
    let wrong: Vec<bool> = cheat_pred
        .iter()
        .zip(&test.labels)
        .map(|(p, l)| p != l)
        .collect();
    let targeted_wrong = wrong.iter().filter(|&&w| w).count();
    let relabelled = honest_pred
        .iter()
        .zip(&cheat_pred)
        .filter(|(h, c)| h != c)
        .count();
    println!(
        "targeted misclassification {}->{to}: model `{}` on {n} held-out samples (fixed point, {:.1} s): \
         honest {} wrong, targeted {} wrong; the cheat changes {} labels ({:.2}% of queries from this distribution)",
        a.from,
        model.meta.name,
        started.elapsed().as_secs_f64(),
        honest_wrong,
        targeted_wrong,
        relabelled,
        100.0 * relabelled as f64 / n as f64
    );
    println!("{TARGETED_NOTE}");
    println!(
        "{:>5} {:>7} {:>6} {:>9} {:>10} {:>19} {:>12} {:>12} {:>14}",
        "T", "delta", "slack", "subsets", "detected", "95% CI", "exact", "binomial", "honest abort"
    );
    let mut rng = rng_from(a.seed, 21)?;
    let mut rows = Vec::new();
    let q = targeted_wrong as f64 / n as f64;
    for &t in &a.public {
        for &delta in &a.thresholds {
            let slack = delta.slack(t as u64);
            let mut idx: Vec<usize> = (0..n).collect();
            let mut detected = 0u64;
            for _ in 0..a.subsets {
                let mut wrong_in = 0u64;
                for i in 0..t {
                    let j = i + uniform_below(&mut rng, (n - i) as u64) as usize;
                    idx.swap(i, j);
                    wrong_in += u64::from(wrong[idx[i]]);
                }
                detected += u64::from(wrong_in > slack);
            }
            let rate = detected as f64 / a.subsets.max(1) as f64;
            let (lo, hi) = ci95(detected, a.subsets.max(1));
            let exact = hypergeometric_tail(n as u64, targeted_wrong as u64, t as u64, slack);
            let binom = binomial_tail(t as u64, q, slack);
            let false_abort = hypergeometric_tail(n as u64, honest_wrong as u64, t as u64, slack);
            println!(
                "{t:>5} {:>7} {slack:>6} {:>9} {rate:>10.4} [{lo:>7.4}, {hi:>7.4}] {exact:>12.4} {binom:>12.4} {false_abort:>14.3e}",
                delta.to_string(),
                a.subsets
            );
            rows.push(TargetedRow {
                public: t,
                threshold: delta,
                slack,
                subsets: a.subsets,
                detected,
                detection_rate: rate,
                ci95_low: lo,
                ci95_high: hi,
                detection_exact_hypergeometric: exact,
                detection_binomial_model: binom,
                honest_false_abort_exact: false_abort,
            });
        }
    }
    let secure = if a.sessions > 0 {
        Some(targeted_sessions(
            &a,
            &model,
            fixed,
            &cheat,
            &test,
            &honest_pred,
            to,
            &mut rng,
        )?)
    } else {
        None
    };
    if let Some(p) = &a.json {
        write_json(
            p,
            &TargetedReport {
                model: model.meta.name.clone(),
                from: a.from,
                to,
                samples: n,
                honest_wrong,
                targeted_wrong,
                relabelled,
                fraction_relabelled: relabelled as f64 / n as f64,
                bound_scope: fusion_core::verify::BOUND_SCOPE,
                note: TARGETED_NOTE,
                rows,
                secure,
            },
        )?;
    }
    Ok(())
}

/// Real secure Fusion sessions against the targeted server: queries the
/// honest model labels A, public samples drawn at random from the rest.
#[allow(clippy::too_many_arguments)]
fn targeted_sessions(
    a: &TargetedArgs,
    model: &Model,
    fixed: fusion_core::ring::FixedPoint,
    cheat: &Targeted,
    test: &Split,
    honest_pred: &[usize],
    to: usize,
    rng: &mut ChaCha20Rng,
) -> Result<TargetedSecure, CliError> {
    let n = test.len();
    let sources: Vec<usize> = (0..n).filter(|&i| honest_pred[i] == a.from).collect();
    if a.session_queries == 0 || a.session_public == 0 || a.session_copies < 2 {
        return Err(usage(
            "--session-queries and --session-public must be positive, --session-copies >= 2",
        ));
    }
    if sources.len() < a.session_queries || n < a.session_queries + a.session_public {
        return Err(usage(format!(
            "{} held-out samples of class {} for {} queries, {n} samples for R + T",
            sources.len(),
            a.from,
            a.session_queries
        )));
    }
    println!(
        "secure sessions: R = {} queries the honest model labels {}, B = {}, T = {} random public samples, delta = {} ({TARGETED_FLAG})",
        a.session_queries, a.from, a.session_copies, a.session_public, a.threshold
    );
    init_rayon();
    let rt = runtime()?;
    let served = ServedModel::from_model(model, fixed).map_err(failure)?;
    let server = SecureServer::new(
        served,
        ServerConfig::default(),
        vec![backend(&a.backend, None)?],
        Arc::new(cheat.clone()),
    )
    .map_err(failure)?;
    let client_backend = backend(&a.backend, None)?;
    let mut params = FusionParams::new(model.meta.classes, a.threshold);
    params.copies = Copies::Fixed(a.session_copies);
    let (mut aborted, mut undetected, mut unaffected) = (0u64, 0u64, 0u64);
    let mut srng = rng_from(a.seed, 22)?;
    for s in 0..a.sessions {
        // R distinct source-class queries, then T public samples from the rest.
        let mut src = sources.clone();
        for i in 0..a.session_queries {
            let j = i + uniform_below(rng, (src.len() - i) as u64) as usize;
            src.swap(i, j);
        }
        let chosen = &src[..a.session_queries];
        let mut rest: Vec<usize> = (0..n).filter(|i| !chosen.contains(i)).collect();
        for i in 0..a.session_public {
            let j = i + uniform_below(rng, (rest.len() - i) as u64) as usize;
            rest.swap(i, j);
        }
        let queries = sample_rows(test, chosen);
        let public: Vec<Labeled<Vec<f32>>> = rest[..a.session_public]
            .iter()
            .map(|&i| Labeled::new(test.inputs.sample(i).to_vec(), test.labels[i]))
            .collect();
        let mut crng = rng_from(a.seed.map(|v| v ^ (s + 1)), 23)?;
        let started = Instant::now();
        let report = rt.block_on(async {
            let (ss, cs) = local_pair(&net()).await.map_err(failure)?;
            let client = async {
                let mut c = SecureClient::connect(
                    cs,
                    ClientConfig::default(),
                    client_backend.as_ref(),
                    &mut crng,
                )
                .await
                .map_err(failure)?;
                let r = run_fusion(&mut c, &queries, &public, &params, &mut crng)
                    .await
                    .map_err(failure)?;
                c.finish().await.map_err(failure)?;
                Ok::<_, CliError>(r)
            };
            let (srv, cli) = tokio::join!(server.serve(ss, &mut srng), client);
            srv.map_err(failure)?;
            cli
        })?;
        let verdict = match &report.verdict {
            Verdict::Abort { .. } => {
                aborted += 1;
                "ABORT (caught)".to_string()
            }
            Verdict::Accept { outputs, .. } => {
                let moved = outputs.iter().filter(|o| o.label() == to).count();
                if moved > 0 {
                    undetected += 1;
                } else {
                    unaffected += 1;
                }
                format!(
                    "accept, {moved}/{} query labels moved to {to} (undetected)",
                    outputs.len()
                )
            }
        };
        println!(
            "  session {}: {verdict}; public accuracy {}/{} in {:.2} s",
            s + 1,
            report.accuracy.correct,
            report.accuracy.total,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(TargetedSecure {
        public: a.session_public,
        queries: a.session_queries,
        copies: a.session_copies,
        threshold: a.threshold,
        sessions: a.sessions,
        aborted,
        undetected,
        accepted_unaffected: unaffected,
        flag: TARGETED_FLAG,
    })
}

// ---------------------------------------------------------------- agreement

/// Arguments of `fusion experiment agreement`.
#[derive(clap::Args, Debug)]
pub struct AgreementArgs {
    /// Model directory (default: the shipped mnist-cnn).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Test samples to run (default: the whole held-out split).
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// First test sample.
    #[arg(long, value_name = "K", default_value_t = 0)]
    offset: usize,
    /// Secure evaluations per sample (copies, as Fusion makes them). With 2
    /// or more, the report adds how often copies disagree: on the label (the
    /// default consistency rule, an honest false abort) and under the
    /// near-tie rule with the server's proven output error bound.
    #[arg(long, value_name = "B", default_value_t = 1)]
    copies: usize,
    /// Samples per secure batch (one session runs all batches).
    #[arg(long, value_name = "B", default_value_t = 100)]
    batch: usize,
    /// Backend `cheetah`: OT flavour, silent or iknp [default: silent].
    #[arg(long, value_name = "FLAVOUR")]
    ot: Option<OtKind>,
    /// Samples per chunk.
    #[arg(long, value_name = "N", default_value_t = 256)]
    chunk: usize,
    /// The two-party backend both parties run (see `fusion backends`).
    #[arg(long, value_name = "NAME", default_value = fusion_engine::config::DEFAULT_BACKEND)]
    backend: String,
    /// Seed (default: OS randomness).
    #[arg(long, value_name = "SEED")]
    seed: Option<u64>,
    /// Write the results as JSON.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct AgreementReport {
    model: String,
    samples: usize,
    argmax_agreement: f64,
    disagreements: usize,
    max_logit_error: f64,
    max_deviation_ulps: u64,
    deviation_bound_ulps: u64,
    output_scale_bits: u32,
    secure_accuracy: f64,
    fixed_accuracy: f64,
    seconds: f64,
    bytes: u64,
    client: MeterReport,
    server: Option<MeterReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    copies: Option<CopyReport>,
}

/// How the copies of each sample compare (`--copies B >= 2`).
#[derive(Debug, Serialize)]
struct CopyReport {
    copies: usize,
    queries: usize,
    /// The server's proven per-entry output error bound (score units).
    output_error_bound: Option<f64>,
    /// Queries whose copies' labels differ: an honest false abort under
    /// the default (label) rule.
    label_inconsistent: usize,
    /// 95% Clopper-Pearson upper bound on the per-query rate of that.
    label_inconsistent_rate_upper95: f64,
    /// Under the near-tie rule: verified labels, ties, inconsistent queries.
    near_tie_verified: usize,
    near_tie_ties: usize,
    near_tie_inconsistent: usize,
    /// Verified labels that differ from the fixed-point engine's argmax
    /// (0 if the bound is sound).
    near_tie_verified_wrong: usize,
    /// Largest distance between two copies' scores (score units).
    max_copy_gap: f64,
}

fn agreement(a: AgreementArgs) -> Result<(), CliError> {
    let dir = model_dir(&a.model, "mnist-cnn")?;
    let fixed = eval::default_fixed_point();
    let model = Model::load(&dir).map_err(usage)?;
    let test = held_out(&model)?;
    let count = a.count.unwrap_or(test.len().saturating_sub(a.offset));
    if a.copies == 0 || a.copies > 64 {
        return Err(usage("--copies must be in 1..=64"));
    }
    if count == 0 || a.offset + count > test.len() || a.batch == 0 {
        return Err(usage(format!(
            "--offset {} --count {count} --batch {}: the split has {} samples",
            a.offset,
            a.batch,
            test.len()
        )));
    }
    let idx: Vec<usize> = (a.offset..a.offset + count).collect();
    let split = test.gather(&idx);
    let served = ServedModel::from_model(&model, fixed).map_err(failure)?;
    let program = served.program.clone();
    let ring = program.ring();
    let x = program
        .encode_input(
            &model
                .meta
                .preprocess
                .apply(&split.inputs)
                .map_err(failure)?,
        )
        .map_err(failure)?;
    let all = program.run_all(&x).map_err(failure)?;
    let max_abs: Vec<u64> = all
        .iter()
        .map(|t| {
            t.data()
                .iter()
                .map(|&v| ring.to_signed(v).unsigned_abs())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let bound = deviation_bound(&program, &max_abs)[program.output()];
    let reference = all
        .last()
        .cloned()
        .ok_or_else(|| failure("empty program"))?;
    init_rayon();
    let config = ServerConfig {
        chunk: a.chunk,
        ..ServerConfig::default()
    };
    let server = SecureServer::new(
        served,
        config,
        vec![backend(&a.backend, a.ot)?],
        Arc::new(Honest),
    )
    .map_err(failure)?;
    let client_backend = backend(&a.backend, None)?;
    let rt = runtime()?;
    let mut srng = rng_from(a.seed, 21)?;
    let mut crng = rng_from(a.seed, 22)?;
    let in_len = x.sample_len();
    let output_error_bound = fusion_engine::bound::output_error_bound(&program);
    // Each sample `copies` times in a row (copy k of sample i is row i B + k).
    let (copies, queries) = (a.copies, count);
    let x_rep: Vec<u64> = x
        .data()
        .chunks(in_len)
        .flat_map(|row| std::iter::repeat_n(row, copies).flatten().copied())
        .collect();
    let count = queries * copies;
    let started = Instant::now();
    let (y, client_report, server_report) = rt.block_on(async {
        let (s, c) = local_pair(&net()).await.map_err(failure)?;
        let client = async {
            let mut client = SecureClient::connect(
                c,
                ClientConfig::default(),
                client_backend.as_ref(),
                &mut crng,
            )
            .await
            .map_err(failure)?;
            let mut y = Vec::with_capacity(count * model.meta.classes);
            let mut start = 0;
            while start < count {
                let m = a.batch.min(count - start);
                let xs = x_rep[start * in_len..(start + m) * in_len].to_vec();
                y.extend(client.infer_encoded(xs, m).await.map_err(failure)?);
                start += m;
                eprint!("\r{start}/{count} samples");
            }
            eprintln!();
            let meter = client.meter();
            let end = client.finish().await.map_err(failure)?;
            Ok::<_, CliError>((y, meter.report(), end.report))
        };
        let (srv, cli) = tokio::join!(server.serve(s, &mut srng), client);
        srv.map_err(|e: SecureError| failure(e))?;
        cli
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = client_report.total.bytes_total();
    let classes = model.meta.classes;
    let scale = program.output_scale();
    let copy_report = (copies > 1)
        .then(|| {
            copy_statistics(
                &y,
                classes,
                copies,
                scale,
                ring,
                &reference,
                output_error_bound,
            )
        })
        .transpose()?;
    // The rest compares copy 0 of every sample with the fixed-point engine.
    let y: Vec<u64> = y
        .chunks(classes)
        .step_by(copies)
        .flatten()
        .copied()
        .collect();
    let count = queries;
    let got = Tensor::new(vec![count, classes], y).map_err(failure)?;
    let ref_arg = argmax_signed(ring, &reference);
    let sec_arg = argmax_signed(ring, &got);
    let disagreements = ref_arg.iter().zip(&sec_arg).filter(|(a, b)| a != b).count();
    let max_dev = reference
        .data()
        .iter()
        .zip(got.data())
        .map(|(&a, &b)| (ring.to_signed(a) - ring.to_signed(b)).unsigned_abs())
        .max()
        .unwrap_or(0);
    let acc = |p: &[usize]| {
        p.iter().zip(&split.labels).filter(|(a, b)| a == b).count() as f64 / count as f64
    };
    let r = AgreementReport {
        model: model.meta.name.clone(),
        samples: count,
        argmax_agreement: 1.0 - disagreements as f64 / count as f64,
        disagreements,
        max_logit_error: max_dev as f64 / (2f64).powi(scale as i32),
        max_deviation_ulps: max_dev,
        deviation_bound_ulps: bound,
        output_scale_bits: scale,
        secure_accuracy: acc(&sec_arg),
        fixed_accuracy: acc(&ref_arg),
        seconds,
        bytes,
        client: client_report,
        server: Some(server_report),
        copies: copy_report,
    };
    println!(
        "secure vs fixed-point engine, model `{}`, {} held-out samples (#{}..#{}):\n  argmax agreement {:.4} ({} disagreement(s))\n  max logit error {:.3e} ({} units of 2^-{}; worst-case bound {} units)\n  accuracy: secure {:.4}, fixed point {:.4}\n  {:.1} s, {} on the wire ({:.1} ms and {} per secure evaluation)",
        r.model,
        count,
        a.offset,
        a.offset + count - 1,
        r.argmax_agreement,
        disagreements,
        r.max_logit_error,
        max_dev,
        scale,
        bound,
        r.secure_accuracy,
        r.fixed_accuracy,
        seconds,
        human_bytes(bytes),
        1e3 * seconds / (count * copies) as f64,
        human_bytes(bytes / (count * copies) as u64)
    );
    if let Some(c) = &r.copies {
        let per_session = |rate: f64, r: i32| 1.0 - (1.0 - rate).powi(r);
        let upper = c.label_inconsistent_rate_upper95;
        println!(
            "copies: {} queries x B = {}\n  label rule: {} queries with disagreeing labels \
             (per-query rate <= {upper:.2e} at 95%; an honest session of R = 32 queries \
             false-aborts with probability <= {:.2e}, computed)\n  near-tie rule (bound {}): \
             {} verified, {} ties, {} inconsistent; {} verified labels differ from the \
             fixed-point engine; largest gap between copies {:.3e}",
            c.queries,
            c.copies,
            c.label_inconsistent,
            per_session(upper, 32),
            c.output_error_bound
                .map_or_else(|| "none".to_string(), |b| format!("{b:.3e}")),
            c.near_tie_verified,
            c.near_tie_ties,
            c.near_tie_inconsistent,
            c.near_tie_verified_wrong,
            c.max_copy_gap,
        );
    }
    println!("{}", phase_table(&r.client, r.server.as_ref()));
    if let Some(p) = &a.json {
        write_json(p, &r)?;
    }
    Ok(())
}

/// Compares the `copies` rows of every sample in `y` (row `i B + k` is copy
/// `k` of sample `i`) under the label rule and the near-tie rule.
fn copy_statistics(
    y: &[u64],
    classes: usize,
    copies: usize,
    scale: u32,
    ring: fusion_core::ring::Ring,
    reference: &Tensor<u64>,
    bound: Option<f64>,
) -> Result<CopyReport, CliError> {
    use fusion_core::mix::Unmixed;
    use fusion_core::output::Output;
    use fusion_core::verify::{CheckConfig, Consistency, verify};
    let unit = 2f64.powi(scale as i32);
    let rows: Vec<Output> = y
        .chunks(classes)
        .map(|r| Output::new(r.iter().map(|&v| ring.to_signed(v) as f64 / unit).collect()))
        .collect::<Result<_, _>>()
        .map_err(failure)?;
    let queries: Vec<Vec<Output>> = rows.chunks(copies).map(<[Output]>::to_vec).collect();
    let n = queries.len();
    let max_copy_gap = queries
        .iter()
        .flat_map(|c| {
            c[1..].iter().flat_map(move |o| {
                o.scores()
                    .iter()
                    .zip(c[0].scores())
                    .map(|(a, b)| (a - b).abs())
            })
        })
        .fold(0.0, f64::max);
    let threshold: fusion_core::Threshold = "0.5".parse().map_err(failure)?;
    let run = |consistency: Consistency| {
        let mut config = CheckConfig::new(threshold);
        config.consistency = consistency;
        verify(
            Unmixed {
                queries: queries.clone(),
                // One public sample that always passes: only consistency counts.
                public: vec![(queries[0][0].clone(), queries[0][0].label())],
            },
            &config,
        )
        .verdict
    };
    let inconsistent = |v: &Verdict<Output>| match v {
        Verdict::Abort { reasons } => reasons
            .iter()
            .map(|r| match r {
                fusion_core::verify::AbortReason::InconsistentQueries { queries } => queries.len(),
                _ => 0,
            })
            .sum(),
        Verdict::Accept { .. } => 0,
    };
    let label = run(Consistency::Labels);
    let label_inconsistent = inconsistent(&label);
    let (mut verified, mut ties, mut nt_inconsistent, mut wrong) = (0, 0, 0, 0);
    if let Some(bound) = bound {
        // Per query, so that one inconsistent query does not hide the rest.
        let ref_arg = argmax_signed(ring, reference);
        for (q, c) in queries.iter().enumerate() {
            let mut config = CheckConfig::new(threshold);
            config.consistency = Consistency::NearTies { bound };
            let v = verify(
                Unmixed {
                    queries: vec![c.clone()],
                    public: vec![(c[0].clone(), c[0].label())],
                },
                &config,
            )
            .verdict;
            match v {
                Verdict::Accept { ties: t, .. } if !t.is_empty() => ties += 1,
                Verdict::Accept { outputs, .. } => {
                    verified += 1;
                    if outputs[0].label() != ref_arg[q] {
                        wrong += 1;
                    }
                }
                Verdict::Abort { .. } => nt_inconsistent += 1,
            }
        }
    }
    Ok(CopyReport {
        copies,
        queries: n,
        output_error_bound: bound,
        label_inconsistent,
        // One-sided: 1 - (the 95% lower bound on the consistent rate).
        label_inconsistent_rate_upper95: 1.0
            - fusion_core::stats::clopper_pearson_lower(
                (n - label_inconsistent) as u64,
                n as u64,
                fusion_core::stats::Confidence::default(),
            ),
        near_tie_verified: verified,
        near_tie_ties: ties,
        near_tie_inconsistent: nt_inconsistent,
        near_tie_verified_wrong: wrong,
        max_copy_gap,
    })
}

/// The backend `name` (with the `cheetah` OT flavour `ot`, if given).
fn backend(name: &str, ot: Option<OtKind>) -> Result<Box<dyn Backend>, CliError> {
    let mut options = CheetahOptions::default().given("--ot", ot.is_some());
    if let Some(ot) = ot {
        options.config.ot_flavour = ot;
    }
    build_one(name, options)
}
