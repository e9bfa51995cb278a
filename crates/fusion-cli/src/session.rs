//! The client side of a Fusion run over the secure engine, shared by
//! `fusion query`, `fusion demo` and `fusion experiment`: connect, plan, mix,
//! infer, verify, finish; then report (human and JSON).

use std::fmt::Write as _;
use std::time::Duration;

use fusion_core::Threshold;
use fusion_core::engine::{Copies, FusionParams, plan_copies, run_fusion};
use fusion_core::mix::Labeled;
use fusion_core::search::DEFAULT_LAMBDA;
use fusion_core::security::Layout;
use fusion_core::split::SplitEngine;
use fusion_core::verify::SecurityFigures;
use fusion_core::verify::{Consistency, Report, Verdict};
use fusion_engine::backends::cheetah::config::OtKind;
use fusion_engine::stats::human_bytes;
use fusion_engine::{
    BatchStats, ClientConfig, ClientPolicy, ModelInfo, ProgressFn, SecureClient, SecureError,
    ServerHello, SessionEnd,
};
use fusion_net::{MeterReport, Session};
use futures::future::join_all;
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};
use serde::Serialize;

use crate::backend::{CheetahOptions, build_one};
use crate::common::{CliError, failure, phase_table, usage};

/// The client's Fusion settings.
#[derive(Debug, Clone)]
pub struct FusionSettings {
    /// Accuracy threshold delta.
    pub threshold: Threshold,
    /// Security target 2^-lambda.
    pub lambda: u32,
    /// Fixed B (default: the smallest B meeting 2^-lambda, slack-aware).
    pub copies: Option<u64>,
    /// Largest B the automatic choice may pick.
    pub max_copies: u64,
    /// Samples per chunk the client asks for.
    pub chunk: usize,
    /// Step timeout.
    pub timeout: Duration,
    /// What the client requires of the server.
    pub policy: ClientPolicy,
    /// The backend to run.
    pub backend: String,
    /// Backend `cheetah`: the OT flavour the client requires.
    pub require_ot: Option<OtKind>,
    /// Accept a fixed `copies` (or too few public samples) whose bound misses
    /// 2^-lambda (default: refuse before connecting).
    pub allow_weaker: bool,
    /// Allow for near ties: copies agree if their scores are within twice
    /// the server's announced output error bound; a query whose margin is
    /// below that is reported as a tie, never as a verified label.
    pub near_ties: bool,
}

impl FusionSettings {
    /// Defaults for a threshold.
    pub fn new(threshold: Threshold) -> Self {
        FusionSettings {
            threshold,
            lambda: DEFAULT_LAMBDA,
            copies: None,
            max_copies: 64,
            chunk: fusion_engine::config::DEFAULT_CHUNK,
            timeout: fusion_engine::config::DEFAULT_STEP_TIMEOUT,
            policy: ClientPolicy::default(),
            backend: fusion_engine::config::DEFAULT_BACKEND.into(),
            require_ot: None,
            allow_weaker: false,
            near_ties: false,
        }
    }

    /// Checks the backend choice (before connecting).
    pub fn check_backend(&self) -> Result<(), CliError> {
        self.build_backend().map(|_| ())
    }

    fn build_backend(&self) -> Result<Box<dyn fusion_engine::Backend>, CliError> {
        let mut options = CheetahOptions::default().given("--ot", self.require_ot.is_some());
        options.config.require_ot = self.require_ot;
        build_one(&self.backend, options)
    }

    fn params(&self, classes: usize) -> FusionParams {
        let mut p = FusionParams::new(classes, self.threshold);
        p.lambda = self.lambda;
        p.max_copies = self.max_copies;
        p.copies = self.copies.map_or(Copies::Auto, Copies::Fixed);
        p
    }

    /// Checks that a plan exists (before connecting). A fixed `copies`
    /// whose slack-aware bound misses 2^-lambda for these `queries` and
    /// `public` samples is refused unless `allow_weaker`; returns the
    /// achieved bound's log2 for a fixed `copies` (for the caller to print).
    pub fn check_plan(&self, queries: usize, public: usize) -> Result<Option<f64>, CliError> {
        if let Some(b) = self.copies {
            if b < 2 {
                return Err(usage("--copies must be at least 2"));
            }
            let slack = self.threshold.slack(public as u64);
            let layout = Layout::new(queries as u64, b, public as u64).map_err(usage)?;
            let sec = SecurityFigures::compute(layout, slack, self.lambda);
            if !sec.meets_target && !self.allow_weaker {
                let planned = plan_copies(
                    queries as u64,
                    public as u64,
                    self.threshold,
                    self.lambda,
                    self.max_copies,
                )
                .ok()
                .map_or_else(
                    || format!("no B <= {} reaches it with T = {public}", self.max_copies),
                    |(b, _, w)| {
                        format!("the planner's B = {b} gives 2^{:.2}", w.probability.log2())
                    },
                );
                return Err(usage(format!(
                    "B = {b} copies of R = {queries} queries with T = {public} public samples \
                     bound undetected cheating by only 2^{:.2}, above the target 2^-{} \
                     ({planned}); pass --allow-weaker to run it anyway",
                    sec.log2_slack_bound, self.lambda
                )));
            }
            return Ok(Some(sec.log2_slack_bound));
        }
        plan_copies(
            queries as u64,
            public as u64,
            self.threshold,
            self.lambda,
            self.max_copies,
        )
        .map(|_| None)
        .map_err(|e| {
            usage(format!(
                "{e} (give more public samples, a lower lambda, or --copies)"
            ))
        })
    }
}

/// Public facts about the served model, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Classes.
    pub classes: u64,
    /// Input shape per sample.
    pub input_shape: Vec<usize>,
    /// Ring bits l.
    pub ring_bits: u32,
    /// Fractional bits f.
    pub frac_bits: u32,
    /// Steps of the program.
    pub steps: usize,
    /// ReLU-truncation fusions in the schedule.
    pub fused_relu_truncations: usize,
    /// The server's announced per-entry output error bound `E` (score
    /// units; `--near-ties` uses it, the client cannot check it).
    pub output_error_bound: Option<f64>,
    /// What the server reveals of each sample (`logits` or `label`).
    pub output_mode: String,
}

/// Per-query figures of the inference batch.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerQuery {
    /// Queries R.
    pub queries: u64,
    /// Wire bytes (both directions, client's meter) of the batch / R.
    pub bytes: f64,
    /// Wall-clock seconds of the batch / R.
    pub seconds: f64,
    /// Wire bytes of the whole session (setup included) / R.
    pub bytes_with_setup: f64,
    /// Wall-clock seconds of the whole session (connect + setup included) / R.
    pub seconds_with_setup: f64,
}

/// The statistical security of the server's HE noise flooding, as announced
/// ([`fusion_engine::statsec`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StatSecFigures {
    /// `lambda_c - log2 M`: bits over the whole session.
    pub stat_sec_bits_per_session: f64,
    /// `lambda_c`: bits per revealed coefficient.
    pub stat_sec_bits_per_coefficient: u32,
    /// `M`: the session's cap on revealed coefficients.
    pub max_revealed_coefficients: u64,
}

impl StatSecFigures {
    /// The figures of an announced setting.
    pub fn new(f: &fusion_engine::statsec::SessionFlooding) -> Self {
        StatSecFigures {
            stat_sec_bits_per_session: f.per_session_bits(),
            stat_sec_bits_per_coefficient: f.per_coefficient_bits,
            max_revealed_coefficients: f.max_revealed,
        }
    }
}

/// Everything a Fusion run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The Fusion report (parameters, verdict, accuracy and its bound, security figures).
    pub fusion: Report,
    /// The served model.
    pub model: ModelSummary,
    /// The parameters the server announced: `backend`, `chunk`, `max_batch`
    /// and the backend's own parameters.
    pub engine: serde_json::Value,
    /// The inference batch's figures (client's meter).
    pub batch: Option<BatchStats>,
    /// The client's meter for the whole session.
    pub client: MeterReport,
    /// The server's meter for the whole session, as it reported it at the end.
    pub server: Option<MeterReport>,
    /// Per-query figures.
    pub per_query: Option<PerQuery>,
    /// The statistical security of the server's HE flooding (`None`: the
    /// backend reveals no flooded coefficients).
    pub stat_sec: Option<StatSecFigures>,
    /// Per worker, when the batch was split across several servers (empty
    /// for one server). `batch`, `client` and `server` above are then the
    /// workers' figures combined: bytes summed, seconds the longest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerReport>,
}

fn engine_error(e: SecureError) -> CliError {
    if let SecureError::Busy { retry_after_secs } = e {
        CliError::Busy { retry_after_secs }
    } else if let SecureError::QuotaExceeded(_) = e {
        CliError::Quota(e.to_string())
    } else if e.is_mismatch() {
        usage(e)
    } else {
        failure(e)
    }
}

/// The announced parameters as one JSON object (see [`Outcome::engine`]).
pub fn announced_parameters(hello: &ServerHello) -> serde_json::Value {
    let mut v = serde_json::from_str::<serde_json::Value>(&hello.announcement)
        .ok()
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("backend".into(), hello.backend.clone().into());
        o.insert("chunk".into(), hello.session.chunk.into());
        o.insert("max_batch".into(), hello.session.max_batch.into());
        if let Some(f) = &hello.stat_sec {
            let figures = StatSecFigures::new(f);
            o.insert(
                "stat_sec_bits_per_session".into(),
                figures.stat_sec_bits_per_session.into(),
            );
            o.insert(
                "stat_sec_bits_per_coefficient".into(),
                figures.stat_sec_bits_per_coefficient.into(),
            );
            o.insert(
                "max_revealed_coefficients".into(),
                figures.max_revealed_coefficients.into(),
            );
        }
    }
    v
}

/// Runs Fusion on an established session: secure client setup, then
/// [`run_fusion`], then the goodbye (which brings the server's meter back).
pub async fn fusion_over<G: Rng + CryptoRng>(
    session: Session,
    queries: &[Vec<f32>],
    public: &[Labeled<Vec<f32>>],
    settings: &FusionSettings,
    progress: Option<ProgressFn>,
    rng: &mut G,
) -> Result<Outcome, CliError> {
    fusion_over_workers(
        vec![(String::new(), session)],
        queries,
        public,
        settings,
        progress,
        rng,
    )
    .await
}

/// One worker's share of a batch split across several servers
/// ([`fusion_over_workers`]).
#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    /// The worker's address as given.
    pub server: String,
    /// Samples of the mixed batch it ran.
    pub samples: usize,
    /// Its inference batch's figures (client's meter).
    pub batch: Option<BatchStats>,
    /// The client's meter for its whole session.
    pub client: MeterReport,
    /// Its own meter, as it reported it at the end.
    pub server_meter: Option<MeterReport>,
}

fn connect_failure(e: SecureError) -> CliError {
    match e {
        SecureError::Net(fusion_net::NetError::ConnectionLost { .. }) => failure(format!(
            "{e} (the server closed the connection before its hello: a server that \
             authenticates clients does so for a client without a certificate signed by \
             its client CA; see --client-cert and --client-key)"
        )),
        e => engine_error(e),
    }
}

/// Checks that every worker serves the same model with the same parameters,
/// so that their outputs are outputs of one function.
fn same_service(clients: &[SecureClient], names: &[String]) -> Result<(), CliError> {
    let first = &clients[0];
    for (c, name) in clients.iter().zip(names).skip(1) {
        let (a, b) = (first.server_hello(), c.server_hello());
        let what = if a.model.name != b.model.name {
            Some(format!(
                "model `{}` against `{}`",
                b.model.name, a.model.name
            ))
        } else if c.program() != first.program() {
            Some("a different fixed-point program (weights aside, its public view)".into())
        } else if a.backend != b.backend || a.announcement != b.announcement {
            Some(format!(
                "backend `{}` with parameters {} against `{}` with {}",
                b.backend, b.announcement, a.backend, a.announcement
            ))
        } else if a.model.output_error_bound != b.model.output_error_bound {
            Some("a different output error bound".into())
        } else if a.model.output_mode != b.model.output_mode {
            Some(format!(
                "output mode `{}` against `{}`",
                b.model.output_mode, a.model.output_mode
            ))
        } else {
            None
        };
        if let Some(what) = what {
            return Err(usage(format!(
                "the workers do not serve the same model: {name} announces {what} ({} is the \
                 first worker)",
                names[0]
            )));
        }
    }
    Ok(())
}

/// Runs Fusion with its batch split across one or more servers holding the
/// same model (`sessions`: each worker's name and session): secure setup with
/// each, a check that they announce the same model and parameters, then
/// [`run_fusion`] over a [`SplitEngine`] (a fresh uniformly random partition
/// of the already-mixed batch; verification is global), then every goodbye.
/// The progress callback follows the first worker.
pub async fn fusion_over_workers<G: Rng + CryptoRng>(
    sessions: Vec<(String, Session)>,
    queries: &[Vec<f32>],
    public: &[Labeled<Vec<f32>>],
    settings: &FusionSettings,
    progress: Option<ProgressFn>,
    rng: &mut G,
) -> Result<Outcome, CliError> {
    if sessions.is_empty() {
        return Err(usage("no server to query"));
    }
    let mut policy = settings.policy.clone();
    policy.input_len = policy.input_len.or_else(|| queries.first().map(Vec::len));
    let backend = settings.build_backend()?;
    let (names, sessions): (Vec<String>, Vec<Session>) = sessions.into_iter().unzip();
    // Secure setup with every worker, side by side, each with its own
    // generator seeded from `rng`.
    let seeds: Vec<ChaCha20Rng> = (0..sessions.len())
        .map(|_| ChaCha20Rng::from_rng(&mut *rng))
        .collect();
    let setups = sessions
        .into_iter()
        .zip(seeds)
        .enumerate()
        .map(|(i, (session, mut seed))| {
            let config = ClientConfig {
                chunk: settings.chunk,
                step_timeout: settings.timeout,
                policy: policy.clone(),
                progress: if i == 0 { progress.clone() } else { None },
            };
            let backend = backend.as_ref();
            async move { SecureClient::connect(session, config, backend, &mut seed).await }
        });
    let mut clients = Vec::new();
    let mut first_error = None;
    for (i, r) in join_all(setups).await.into_iter().enumerate() {
        match r {
            Ok(c) => clients.push(c),
            Err(e) => {
                let e = connect_failure(e);
                if first_error.is_none() {
                    first_error = Some(if names.len() > 1 {
                        e.context(&format!("worker {}", names[i]))
                    } else {
                        e
                    });
                }
            }
        }
    }
    let close_all = |clients: Vec<SecureClient>| clients.into_iter().for_each(SecureClient::close);
    if let Some(e) = first_error {
        close_all(clients);
        return Err(e);
    }
    if let Err(e) = same_service(&clients, &names) {
        close_all(clients);
        return Err(e);
    }
    let classes = clients[0].classes();
    if let Some(bad) = public.iter().find(|p| p.label >= classes) {
        close_all(clients);
        return Err(usage(format!(
            "a public sample has label {}, the model has {classes} classes",
            bad.label
        )));
    }
    let hello = clients[0].server_hello().clone();
    let model = summary(&hello.model, &clients[0]);
    let mut params = settings.params(classes);
    if settings.near_ties && hello.model.output_mode != fusion_engine::OutputMode::Logits {
        close_all(clients);
        return Err(usage(format!(
            "--near-ties compares logits within the announced bound, and the server of model `{}` does not reveal logits (output mode `{}`)",
            hello.model.name, hello.model.output_mode
        )));
    }
    if settings.near_ties {
        match hello.model.output_error_bound {
            Some(bound) => params.consistency = Consistency::NearTies { bound },
            None => {
                close_all(clients);
                return Err(usage(format!(
                    "--near-ties: the server announces no finite output error bound for model `{}`",
                    hello.model.name
                )));
            }
        }
    }
    let mut split = SplitEngine::new(clients, rng).map_err(failure)?;
    let result = run_fusion(&mut split, queries, public, &params, rng).await;
    let sizes = split.last_sizes().to_vec();
    let clients = split.into_workers();
    let report = match result {
        Ok(r) => r,
        Err(fusion_core::Error::Engine(e)) => {
            close_all(clients);
            return Err(engine_failure(e.as_ref(), &names));
        }
        Err(e) => {
            close_all(clients);
            return Err(usage(e));
        }
    };
    let mut workers = Vec::with_capacity(clients.len());
    let finishes = clients.into_iter().map(|client| async move {
        let batch = client.last_batch().cloned();
        let meter = client.meter();
        let end: Option<SessionEnd> = client.finish().await.ok();
        (batch, meter.report(), end.map(|e| e.report))
    });
    for ((i, (batch, client, server_meter)), name) in
        join_all(finishes).await.into_iter().enumerate().zip(&names)
    {
        workers.push(WorkerReport {
            server: name.clone(),
            samples: sizes.get(i).copied().unwrap_or(0),
            batch,
            client,
            server_meter,
        });
    }
    let client_report =
        MeterReport::concurrent(&workers.iter().map(|w| w.client.clone()).collect::<Vec<_>>())
            .ok_or_else(|| failure("no worker report"))?;
    let server_reports: Option<Vec<MeterReport>> =
        workers.iter().map(|w| w.server_meter.clone()).collect();
    let server = server_reports.and_then(|r| MeterReport::concurrent(&r));
    let batches: Option<Vec<BatchStats>> = workers.iter().map(|w| w.batch.clone()).collect();
    let batch = batches.and_then(|b| BatchStats::concurrent(&b));
    let per_query = batch.as_ref().map(|b| {
        let r = report.parameters.queries.max(1) as f64;
        let c = &client_report;
        PerQuery {
            queries: report.parameters.queries,
            bytes: (b.bytes_sent + b.bytes_received) as f64 / r,
            seconds: b.seconds / r,
            bytes_with_setup: c.total.bytes_total() as f64 / r,
            seconds_with_setup: c.seconds / r,
        }
    });
    Ok(Outcome {
        fusion: report,
        model,
        engine: announced_parameters(&hello),
        batch,
        client: client_report,
        server,
        per_query,
        stat_sec: hello.stat_sec.as_ref().map(StatSecFigures::new),
        workers: if workers.len() > 1 {
            workers
        } else {
            Vec::new()
        },
    })
}

/// An engine failure from [`run_fusion`] (possibly one worker's), as a CLI
/// error: a quota refusal keeps its own exit code.
fn engine_failure(e: &(dyn std::error::Error + 'static), names: &[String]) -> CliError {
    let (worker, inner) = match e.downcast_ref::<fusion_core::Error>() {
        Some(fusion_core::Error::Worker { worker, source }) => (
            Some(*worker),
            source.as_ref() as &(dyn std::error::Error + 'static),
        ),
        _ => (None, e),
    };
    let prefix = match worker {
        Some(w) if names.len() > 1 => format!("worker {}: ", names.get(w).map_or("?", |n| n)),
        _ => String::new(),
    };
    match inner.downcast_ref::<SecureError>() {
        Some(q @ SecureError::QuotaExceeded(_)) => CliError::Quota(format!("{prefix}{q}")),
        _ => failure(format!("{prefix}{inner}")),
    }
}

fn summary(m: &ModelInfo, client: &SecureClient) -> ModelSummary {
    let p = client.program();
    ModelSummary {
        name: m.name.clone(),
        description: m.description.clone(),
        classes: m.classes,
        input_shape: p.input_shape.clone(),
        ring_bits: p.fixed.ring.bits(),
        frac_bits: p.fixed.frac_bits,
        steps: p.steps.len(),
        fused_relu_truncations: client.schedule().fused,
        output_error_bound: m.output_error_bound,
        output_mode: m.output_mode.to_string(),
    }
}

impl Outcome {
    /// Exit code: 0 accept, 3 abort.
    pub fn exit_code(&self) -> u8 {
        if self.fusion.accepted() {
            crate::common::EXIT_OK
        } else {
            crate::common::EXIT_ABORT
        }
    }

    /// The full report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable report: verdict and checks, predictions (or abort
    /// reasons), traffic and time per phase. `truth` adds the true label of
    /// each query where known; `class_names` names classes.
    pub fn render(&self, truth: Option<&[usize]>, class_names: &[&str]) -> String {
        let mut s = String::new();
        let m = &self.model;
        let _ = writeln!(
            s,
            "model      `{}` ({} classes, input {:?}, Z_2^{} with f = {}, {} steps; output mode {})",
            m.name, m.classes, m.input_shape, m.ring_bits, m.frac_bits, m.steps, m.output_mode
        );
        if let Some(f) = &self.stat_sec {
            let _ = writeln!(
                s,
                "flooding   {:.1} bits of statistical security per session ({} bits per revealed \
                 HE coefficient, at most {} revealed coefficients per session)",
                f.stat_sec_bits_per_session,
                f.stat_sec_bits_per_coefficient,
                f.max_revealed_coefficients
            );
        }
        let _ = writeln!(s, "{}", self.fusion);
        let name = |c: usize| {
            class_names
                .get(c)
                .map_or_else(|| format!("class {c}"), |n| format!("{n} ({c})"))
        };
        match &self.fusion.verdict {
            Verdict::Accept { outputs, ties } => {
                let _ = writeln!(s, "predictions (one per query):");
                for (i, o) in outputs.iter().enumerate() {
                    let scores: Vec<String> =
                        o.scores().iter().map(|v| format!("{v:.3}")).collect();
                    let t = truth
                        .and_then(|t| t.get(i))
                        .map(|&t| {
                            format!(
                                "   true: {}{}",
                                name(t),
                                if t == o.label() {
                                    ""
                                } else {
                                    "  <- misclassified"
                                }
                            )
                        })
                        .unwrap_or_default();
                    let label = if ties.contains(&i) {
                        format!("tie, no verified label (copy 0 says {})", name(o.label()))
                    } else {
                        name(o.label())
                    };
                    if m.output_mode == "label" {
                        let _ = writeln!(s, "  query {i:>3}: {label}{t}");
                    } else if m.output_mode.starts_with("reverse-sigmoid") {
                        let _ = writeln!(
                            s,
                            "  query {i:>3}: {label}   perturbed probabilities [{}]{t}",
                            scores.join(", ")
                        );
                    } else {
                        let _ = writeln!(
                            s,
                            "  query {i:>3}: {label}   logits [{}]{t}",
                            scores.join(", ")
                        );
                    }
                }
            }
            Verdict::Abort { .. } => {
                let _ = writeln!(
                    s,
                    "no predictions: the outputs cannot be trusted (see the reasons above)"
                );
            }
        }
        let _ = writeln!(
            s,
            "traffic and time per phase (wire bytes; client's meter and the server's own report):"
        );
        let _ = writeln!(s, "{}", phase_table(&self.client, self.server.as_ref()));
        if let (Some(b), Some(q)) = (&self.batch, &self.per_query) {
            let _ = writeln!(
                s,
                "inference  N = {} samples in {} chunk(s): {:.3} s, {} sent + {} received",
                b.samples,
                b.chunks,
                b.seconds,
                human_bytes(b.bytes_sent),
                human_bytes(b.bytes_received)
            );
            let _ = write!(
                s,
                "per query  {} and {:.4} s (inference batch / R); with connection and setup: {} and {:.4} s",
                human_bytes(q.bytes.round() as u64),
                q.seconds,
                human_bytes(q.bytes_with_setup.round() as u64),
                q.seconds_with_setup
            );
        }
        if !self.workers.is_empty() {
            let _ = write!(
                s,
                "\nworkers    {} (figures above: bytes summed, seconds the longest)",
                self.workers.len()
            );
            for w in &self.workers {
                let (sent, received, seconds) = w
                    .batch
                    .as_ref()
                    .map_or((0, 0, 0.0), |b| (b.bytes_sent, b.bytes_received, b.seconds));
                let _ = write!(
                    s,
                    "\n  {:<22} {:>6} samples: {} sent + {} received, {:.3} s (session total {})",
                    w.server,
                    w.samples,
                    human_bytes(sent),
                    human_bytes(received),
                    seconds,
                    human_bytes(w.client.total.bytes_total())
                );
            }
        }
        s
    }
}
