//! `fusion demo`: the whole system in one command, no arguments needed. It
//! starts a `fusion serve`-style server on the shipped `bc-mlp` breast-cancer
//! diagnosis model (a fresh throw-away certificate, real QUIC + TLS on
//! 127.0.0.1), and a client holding held-out patient records: `R` private
//! queries and `T` labelled public samples, disjoint slices of the held-out
//! split (patients never seen in training). The client runs Fusion (plan,
//! mix, secure inference, verify) and prints the verdict, the predictions next
//! to the true diagnoses, and bytes and time per phase of both parties.
//!
//! `--cheat low-quality` (the server secretly serves `bc-mlp-weak`),
//! `--cheat tamper:K` (forces "malignant" at K random positions of the batch)
//! and `--cheat random` (random outputs) end in an abort (exit 3) with the
//! reason shown. A small `K` may hit only public samples within the
//! threshold's slack: then no query is affected and the client accepts
//! correct predictions; `fusion experiment detect` measures these odds.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use fusion_core::Threshold;
use fusion_core::mix::Labeled;
use fusion_core::search::DEFAULT_LAMBDA;
use fusion_engine::statsec::StatSecTarget;
use fusion_engine::{SecureServer, ServedModel, ServerConfig};
use fusion_net::{ClientRoots, Identity, NetConfig, Server, connect_as};
use fusion_nn::data::{self, Part};
use fusion_nn::eval;

use crate::backend::{CheetahOptions, build, parse_names};
use crate::cheat::CheatMode;

use crate::common::{CliError, failure, init_rayon, os_rng, progress, runtime, usage};
use crate::query::{DEFAULT_THRESHOLD, THRESHOLD_HELP};
use crate::session::{FusionSettings, fusion_over};

/// Arguments of `fusion demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Make the server cheat: honest, low-quality, tamper:K (or tamper:K:CLASS), random or
    /// `targeted:A[:B]`.
    #[arg(long, value_name = "MODE", default_value = "honest")]
    cheat: CheatMode,
    /// The two-party backend both parties run (see `fusion backends`).
    #[arg(long, value_name = "NAME", default_value = fusion_engine::config::DEFAULT_BACKEND)]
    backend: String,
    /// Number of private queries R (held-out patients).
    #[arg(long, value_name = "R", default_value_t = 8)]
    queries: usize,
    /// Number of public samples T (held-out patients, disjoint from the queries).
    #[arg(long, value_name = "T", default_value_t = 100)]
    public: usize,
    #[doc = "Accuracy threshold delta in (0, 1]."]
    #[arg(long, value_name = "D", default_value = DEFAULT_THRESHOLD, long_help = THRESHOLD_HELP)]
    threshold: Threshold,
    /// Security parameter lambda.
    #[arg(long, value_name = "LAMBDA", default_value_t = DEFAULT_LAMBDA)]
    lambda: u32,
    /// What the server lets the client learn of each sample: `logits`,
    /// `label` (only the class, by a secure argmax on the shares) or
    /// `reverse-sigmoid[:BETA,GAMMA]` (perturbed probabilities computed on
    /// the shares).
    #[arg(long, value_name = "MODE", default_value = "logits", value_parser = crate::common::parse_output_mode)]
    output_mode: fusion_engine::OutputMode,
    /// Model directory (default: the shipped bc-mlp).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Write the full report as JSON to this file.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    no_seed: crate::common::NoSeed,
}

/// Runs `fusion demo`.
pub fn run(args: Args) -> ExitCode {
    crate::common::init_logging("warn");
    match demo(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report("demo"),
    }
}

fn demo(args: Args) -> Result<u8, CliError> {
    args.no_seed.check("demo")?;
    // As `fusion serve` and `fusion query` by default: 40 bits of statistical
    // security per session, required by the client.
    let backends = build(
        &parse_names(&args.backend)?,
        CheetahOptions::default(),
        StatSecTarget::default_per_session(),
    )?;
    if backends.len() != 1 {
        return Err(usage("the demo runs exactly one backend"));
    }
    let dir = data::data_dir().map_err(usage)?;
    let model_dir = args
        .model
        .clone()
        .unwrap_or_else(|| dir.join("models").join("bc-mlp"));
    let fixed = eval::default_fixed_point();
    let mut model = ServedModel::load(&model_dir, fixed).map_err(usage)?;
    model.input_bound = crate::common::input_bound(&model_dir, None)?
        .ok()
        .map(|(b, _)| b);
    let behaviour = args.cheat.resolve(&model_dir, fixed, &model)?;
    let meta = fusion_nn::Model::load(&model_dir).map_err(usage)?.meta;
    let dataset = meta
        .dataset
        .clone()
        .ok_or_else(|| usage("the model names no dataset"))?;
    let test = data::load(&dir, &dataset, Part::Test).map_err(failure)?;
    let (r, t) = (args.queries, args.public);
    if r == 0 || t == 0 || r + t > test.len() {
        return Err(usage(format!(
            "--queries {r} + --public {t} must be positive and at most the {} held-out samples",
            test.len()
        )));
    }
    // The honest model's fixed-point predictions of the queries: the demo's
    // own check (no party of the protocol sees them) of whether an accepted
    // batch from a cheating server still carries correct outputs.
    let reference = {
        let plain = fusion_nn::Model::load(&model_dir).map_err(usage)?;
        let program = fusion_nn::fixed::lower(&plain, fixed).map_err(failure)?;
        let q = test.head(r);
        eval::predict_fixed(&plain, &program, &q).map_err(failure)?
    };
    let row = |i: usize| test.inputs.sample(i).to_vec();
    let queries: Vec<Vec<f32>> = (0..r).map(row).collect();
    let truth: Vec<usize> = test.labels[..r].to_vec();
    let public: Vec<Labeled<Vec<f32>>> = (r..r + t)
        .map(|i| Labeled::new(row(i), test.labels[i]))
        .collect();
    let mut settings = FusionSettings::new(args.threshold);
    settings.lambda = args.lambda;
    settings.backend = args.backend.clone();
    settings.policy.min_stat_sec_bits = Some(fusion_engine::statsec::DEFAULT_SESSION_BITS);
    settings.check_plan(r, t)?;

    init_rayon();
    let mut server =
        SecureServer::new(model, ServerConfig::default(), backends, behaviour).map_err(usage)?;
    server.set_output_mode(args.output_mode).map_err(usage)?;
    let identity = Identity::generate(&[]).map_err(failure)?;
    // Mutual TLS as a deployed server runs it: a throw-away client CA and
    // one client certificate, made here (no set-up needed).
    let client_ca = Identity::generate_client_ca().map_err(failure)?;
    let client_id = client_ca.issue_client("demo-client").map_err(failure)?;
    let client_roots = ClientRoots::from_identity(&client_ca).map_err(failure)?;
    let net = NetConfig::default();
    println!(
        "fusion demo: server with model `{}` ({}) on 127.0.0.1, {}, output mode {}; client with \
         R = {r} held-out patients as queries and T = {t} other held-out patients as public \
         samples",
        server.model().name,
        server.model().description,
        if args.cheat.is_honest() {
            "honest".to_string()
        } else {
            format!("CHEATING ({})", server.behaviour_name())
        },
        server.output_mode()
    );
    if let Some(range) = server.range() {
        println!("fusion demo: range {}", range.map_err(failure)?.summary());
    }
    let (bar, callback) = progress(args.quiet, "secure inference");
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let mut listener = Server::bind_with_client_auth(
            (Ipv4Addr::LOCALHOST, 0).into(),
            &identity,
            Some(&client_roots),
            net.clone(),
        )
        .map_err(failure)?;
        let addr = listener.local_addr();
        let mut srng = os_rng()?;
        let mut crng = os_rng()?;
        let serve = async {
            let session = listener.accept().await.map_err(failure)?;
            server.serve(session, &mut srng).await.map_err(failure)
        };
        let client = async {
            let session = connect_as(addr, &identity.pin(), Some(&client_id), &net)
                .await
                .map_err(failure)?;
            fusion_over(
                session,
                &queries,
                &public,
                &settings,
                Some(callback),
                &mut crng,
            )
            .await
        };
        let (served, outcome) = tokio::join!(serve, client);
        if let Err(e) = served {
            eprintln!("fusion demo: server: {e}");
        }
        outcome
    });
    bar.finish_and_clear();
    let outcome = outcome?;
    let names: &[&str] = if dataset == "breast-cancer" {
        &["malignant", "benign"]
    } else {
        &[]
    };
    println!("{}", outcome.render(Some(&truth), names));
    if let (false, fusion_core::verify::Verdict::Accept { outputs, .. }) =
        (args.cheat.is_honest(), &outcome.fusion.verdict)
    {
        let changed = outputs
            .iter()
            .zip(&reference)
            .filter(|(o, p)| o.label() != **p)
            .count();
        if changed == 0 {
            println!(
                "demo check: accepted although the server cheated, and all {r} predictions \
                     equal the honest model's: the corruption changed no query's label (it hit \
                     only public samples within the slack or outputs already in the forced \
                     class); try a larger K, or `fusion experiment detect` for the odds"
            );
        } else {
            println!(
                "demo check: {changed} of {r} accepted predictions differ from the honest \
                     model's: undetected cheating (the bound above says how unlikely this is)"
            );
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, outcome.to_json())
            .map_err(|e| failure(format!("{}: {e}", path.display())))?;
    }
    Ok(outcome.exit_code())
}
