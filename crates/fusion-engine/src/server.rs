//! The server side: holds the model, serves sessions, one or more batches each.
//!
//! [`SecureServer`] is built once per model ([`SecureServer::new`]): it
//! derives the schedule and prepares every offered backend for the program
//! (each checks that it has a protocol for every step and picks its
//! parameters). [`SecureServer::serve`] then runs one client session over a
//! fusion-net [`Session`]: the hello exchange (the client names a backend; one
//! the server does not offer is refused with the list it does offer), the
//! backend's setup, any number of batches, and the goodbye, in which it sends
//! its own meter report. Backends cache per-model work (e.g. encoded weights)
//! across sessions ([`SecureServer::precompute`] fills the caches ahead of
//! time).
//!
//! **What the server learns**: the batch sizes (and so chunk sizes), timing,
//! the backend the client chose, and nothing about the client's inputs or
//! outputs beyond what the backend's protocols reveal (nothing, in the
//! semi-honest model). It sends the client the public view of its program
//! (architecture, shapes, fixed-point parameters, preprocessing), never its
//! coefficients.
//!
//! **Isolation**: [`SecureServer::serve_isolated`] runs a session in its own
//! task, so an error *or a panic* while serving one client (in our code or
//! in a dependency, caused by whatever bytes that client sent) ends that
//! session only, reported as [`SecureError::Panicked`] with the phase it was
//! in; `fusion serve` uses it for every session.
//!
//! **Misbehaviour** is injected through the behaviour hook
//! ([`crate::behaviour`], default honest; cheat modes in [`crate::cheats`]):
//! this file has no cheat branches.

use std::net::SocketAddr;
use std::sync::Arc;

use fusion_core::ring::FixedPoint;
use fusion_net::{MeterReport, Phase, Session};
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};
use tracing::{debug, info};

use crate::backend::{Backend, PartySession, PreparedBackend, SetupLink};
use crate::behaviour::ServerBehaviour;
use crate::config::{MAX_CHUNK, ServerConfig, SessionParams};
use crate::driver::{Pass, reveal, timed};
use crate::error::{SecureError, SecureResult};
use crate::output_mode::{OutputMode, ShareStage};
use crate::schedule::Schedule;
use crate::wire::{
    ClientHello, ClientMsg, ModelInfo, PROTOCOL, ServerHello, ServerMsg, SessionEnd, VERSION,
    check_protocol, validate_program,
};
use fusion_nn::fixed::{FixedProgram, PublicProgram, lower};
use fusion_nn::model::{Model, Preprocess};

/// The magnitude bounds a server announces for the program it runs
/// ([`ModelInfo::value_bits`]): every value's proven width for inputs in the
/// box `input_bound` ([`crate::bound::range_analysis`]), up to the first
/// value whose bound exceeds the range contract (`l - 1` bits). Each bound
/// assumes that no earlier value wrapped, which the earlier bounds prove;
/// from the first value over the contract on, the widths are `l` (nothing
/// known). None without a box, or if no value after the input is bounded.
pub fn announced_value_bits(program: &FixedProgram, input_bound: Option<f64>) -> Vec<u32> {
    let Some(bound) = input_bound else {
        return Vec::new();
    };
    // A program the analysis cannot cover gets no bounds (and is served
    // under the range contract alone, as without them).
    match crate::bound::range_analysis(program, bound) {
        Ok(range) => {
            let (l, allowed) = (range.ring_bits, range.allowed_bits());
            let known = range
                .values
                .iter()
                .take_while(|v| v.bits <= allowed)
                .count();
            if known < 2 {
                return Vec::new();
            }
            let mut bits: Vec<u32> = range.values[..known]
                .iter()
                .map(|v| v.bits.max(1))
                .collect();
            bits.resize(range.values.len(), l);
            bits
        }
        Err(_) => Vec::new(),
    }
}

/// A model as the server serves it: public metadata and the full program.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// Name announced to clients.
    pub name: String,
    /// Description announced to clients.
    pub description: String,
    /// Number of classes.
    pub classes: usize,
    /// The public preprocessing.
    pub preprocess: Preprocess,
    /// The lowered program, with the coefficients.
    pub program: FixedProgram,
    /// The accepted input box announced to clients: the largest `|x|` of a
    /// preprocessed input entry (`None`: unchecked; see
    /// [`crate::wire::ModelInfo::input_bound`]).
    pub input_bound: Option<f64>,
}

impl ServedModel {
    /// Lowers `model` to `fixed`.
    pub fn from_model(model: &Model, fixed: FixedPoint) -> SecureResult<Self> {
        Ok(ServedModel {
            name: model.meta.name.clone(),
            description: model.meta.description.clone(),
            classes: model.meta.classes,
            preprocess: model.meta.preprocess.clone(),
            program: lower(model, fixed)?,
            input_bound: None,
        })
    }

    /// Loads the model directory `dir` and lowers it to `fixed`.
    pub fn load(dir: &std::path::Path, fixed: FixedPoint) -> SecureResult<Self> {
        Self::from_model(&Model::load(dir)?, fixed)
    }
}

/// What one served session amounted to.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The client's address.
    pub peer: SocketAddr,
    /// The backend that ran.
    pub backend: String,
    /// Batches served.
    pub batches: u64,
    /// Samples served.
    pub samples: u64,
    /// The server's meter at the end of the session.
    pub report: MeterReport,
}

/// Decides, before each batch of a session, whether the client may run it
/// (e.g. per-client quotas). [`SecureServer::serve_isolated_gated`] calls
/// [`BatchGate::admit`] with the requested batch size before any of the
/// batch's protocol work; a refusal is sent to the client as
/// [`ServerMsg::QuotaExceeded`] and ends the session.
pub trait BatchGate: Send + Sync {
    /// Admits (and counts) a batch of `samples` samples, or refuses it.
    fn admit(&self, samples: u64) -> Result<(), crate::wire::QuotaStatus>;
}

/// A backend prepared for the served program.
struct Offered {
    name: &'static str,
    prepared: Arc<dyn PreparedBackend>,
    announcement: String,
}

/// The server of the secure engine for one model.
pub struct SecureServer {
    announced: ServedModel,
    served: ServedModel,
    /// The served program's public view (what clients get and the schedule
    /// both parties walk).
    public: PublicProgram,
    /// The announced bound on an honest engine's output error (see
    /// [`ModelInfo::output_error_bound`]).
    output_error_bound: Option<f64>,
    /// The announced magnitude bounds (see [`ModelInfo::value_bits`]).
    value_bits: Vec<u32>,
    behaviour: Arc<dyn ServerBehaviour>,
    config: ServerConfig,
    schedule: Schedule,
    offered: Vec<Offered>,
    /// Limit on the client's hello (see [`SecureServer::set_hello_timeout`]).
    hello_timeout: std::time::Duration,
    /// What clients learn ([`SecureServer::set_output_mode`]) and the
    /// computation on the shares it needs (argmax, reverse sigmoid).
    output_mode: OutputMode,
    stage: Option<ShareStage>,
}

impl std::fmt::Debug for SecureServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureServer")
            .field("model", &self.announced.name)
            .field("backends", &self.backend_names())
            .field("behaviour", &self.behaviour.name())
            .finish_non_exhaustive()
    }
}

impl SecureServer {
    /// Prepares serving `model` with each of `backends` (at least one, names
    /// distinct) and the behaviour `behaviour` (see the module docs). Fails if
    /// the program cannot run securely or a backend cannot serve it.
    pub fn new(
        model: ServedModel,
        config: ServerConfig,
        backends: Vec<Box<dyn Backend>>,
        behaviour: Arc<dyn ServerBehaviour>,
    ) -> SecureResult<Self> {
        config.validate()?;
        if backends.is_empty() {
            return Err(SecureError::Config(
                "a server offers at least one backend".into(),
            ));
        }
        let served = match behaviour.replacement() {
            Some(weak) => {
                if weak.program.input_shape != model.program.input_shape
                    || weak.classes != model.classes
                {
                    return Err(SecureError::Config(format!(
                        "model `{}` does not have the shape of `{}`",
                        weak.name, model.name
                    )));
                }
                ServedModel {
                    name: model.name.clone(),
                    description: model.description.clone(),
                    input_bound: model.input_bound,
                    ..weak.clone()
                }
            }
            None => model.clone(),
        };
        if served.program.output_shape() != [served.classes] {
            return Err(SecureError::Config(format!(
                "model `{}`: output shape {:?} is not [{}]",
                served.name,
                served.program.output_shape(),
                served.classes
            )));
        }
        let public = served.program.public();
        validate_program(&public)?;
        let output_error_bound = crate::bound::output_error_bound(&served.program);
        let value_bits = announced_value_bits(&served.program, model.input_bound);
        let schedule = Schedule::with_bounds(&public, &value_bits)?;
        let mut offered: Vec<Offered> = Vec::with_capacity(backends.len());
        for b in &backends {
            if offered.iter().any(|o| o.name == b.name()) {
                return Err(SecureError::Config(format!(
                    "backend `{}` offered twice",
                    b.name()
                )));
            }
            let (prepared, announcement) = b.serve(&served.program)?;
            offered.push(Offered {
                name: b.name(),
                prepared,
                announcement,
            });
        }
        Ok(SecureServer {
            announced: model,
            served,
            public,
            output_error_bound,
            value_bits,
            behaviour,
            config,
            schedule,
            offered,
            hello_timeout: crate::config::DEFAULT_HELLO_TIMEOUT,
            output_mode: OutputMode::Logits,
            stage: None,
        })
    }

    /// Chooses what clients learn of each sample (default
    /// [`OutputMode::Logits`]); announced in every later session's hello.
    /// Label mode runs the secure argmax ([`crate::output_mode`]; exact under
    /// the engine's own range condition), reverse-sigmoid mode the
    /// perturbation on the shares ([`crate::reverse_sigmoid`]); both are
    /// refused for a model with fewer than two classes.
    pub fn set_output_mode(&mut self, mode: OutputMode) -> SecureResult<()> {
        self.stage = ShareStage::for_mode(mode, &self.public, self.served.classes)?;
        self.output_mode = mode;
        Ok(())
    }

    /// Whether the server announces its magnitude bounds
    /// ([`ModelInfo::value_bits`], from the input box; the default when the
    /// model has a box). Off: the hello carries none and both parties run
    /// the schedule of the range contract alone, so the announcement reveals
    /// nothing computed from the weights beyond the output error bound (the
    /// non-linear steps after linear layers then compare more bits).
    pub fn set_announce_bounds(&mut self, on: bool) -> SecureResult<()> {
        self.value_bits = if on {
            announced_value_bits(&self.served.program, self.announced.input_bound)
        } else {
            Vec::new()
        };
        self.schedule = Schedule::with_bounds(&self.public, &self.value_bits)?;
        Ok(())
    }

    /// The magnitude bounds the server announces (empty: none).
    pub fn value_bits(&self) -> &[u32] {
        &self.value_bits
    }

    /// What clients learn of each sample.
    pub fn output_mode(&self) -> OutputMode {
        self.output_mode
    }

    /// Sets the limit on the client's hello (default
    /// [`crate::config::DEFAULT_HELLO_TIMEOUT`]): a client that connects and
    /// sends no hello within it ends its session with
    /// [`SecureError::Timeout`], whatever the step timeout. Zero is refused.
    pub fn set_hello_timeout(&mut self, timeout: std::time::Duration) -> SecureResult<()> {
        if timeout.is_zero() {
            return Err(SecureError::Config(
                "the hello timeout must be positive".into(),
            ));
        }
        self.hello_timeout = timeout;
        Ok(())
    }

    /// The limit on the client's hello.
    pub fn hello_timeout(&self) -> std::time::Duration {
        self.hello_timeout
    }

    /// Refuses a session because the server is at its limit of concurrent
    /// sessions: sends [`ServerMsg::Busy`] with `retry_after_secs` at once
    /// (the client reads it in answer to its hello; the server does not wait
    /// for the hello) and ends the session, waiting at most the session's
    /// linger time for the client's goodbye. No protocol work is done. Errors
    /// if the refusal could not be sent within the hello timeout; the session
    /// is closed either way.
    pub async fn refuse_busy(&self, session: Session, retry_after_secs: u64) -> SecureResult<()> {
        self.refuse_with(session, ServerMsg::Busy { retry_after_secs })
            .await
    }

    /// Refuses a session because the client's quota is used up, like
    /// [`SecureServer::refuse_busy`] with [`ServerMsg::QuotaExceeded`].
    pub async fn refuse_quota(
        &self,
        session: Session,
        status: crate::wire::QuotaStatus,
    ) -> SecureResult<()> {
        self.refuse_with(session, ServerMsg::QuotaExceeded(status))
            .await
    }

    async fn refuse_with(&self, mut session: Session, refusal: ServerMsg) -> SecureResult<()> {
        let limit = self.hello_timeout;
        let exchange = async {
            let (mut tx, rx) = session.channel::<ServerMsg, ClientMsg>().await?;
            tx.send(&refusal).await?;
            Ok((tx, rx))
        };
        let result = match tokio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(SecureError::Timeout {
                what: "sending a refusal".into(),
                after: limit,
            }),
        };
        match result {
            Ok(streams) => {
                // A graceful end lets the refusal reach the client. The
                // streams stay open until then: dropping the receive side
                // earlier would reset a hello the client is still sending,
                // and the client would see a reset stream instead of the
                // refusal (found by `fusion-bench load`).
                let _ = session.finish().await;
                drop(streams);
                Ok(())
            }
            Err(e) => {
                session.close();
                Err(e)
            }
        }
    }

    /// The model announced to clients.
    pub fn model(&self) -> &ServedModel {
        &self.announced
    }

    /// Whether the announced model's values provably stay in range for its
    /// announced input box ([`crate::bound::range_analysis`]); `None` if no
    /// box is announced.
    pub fn range(&self) -> Option<SecureResult<fusion_nn::calibrate::RangeAnalysis>> {
        self.announced
            .input_bound
            .map(|b| crate::bound::range_analysis(&self.announced.program, b))
    }

    /// The schedule both parties run.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The behaviour's name, for logs.
    pub fn behaviour_name(&self) -> String {
        self.behaviour.name()
    }

    /// The offered backends' names.
    pub fn backend_names(&self) -> Vec<&'static str> {
        self.offered.iter().map(|o| o.name).collect()
    }

    /// Each offered backend with a description of its parameters.
    pub fn backend_descriptions(&self) -> Vec<(&'static str, String)> {
        self.offered
            .iter()
            .map(|o| (o.name, o.prepared.describe()))
            .collect()
    }

    /// The session parameters for a client that prefers chunks of `chunk`.
    pub fn session_params(&self, chunk: usize) -> SessionParams {
        SessionParams {
            chunk: chunk.clamp(1, self.config.chunk) as u64,
            max_batch: self.config.max_batch as u64,
        }
    }

    fn hello(&self, chunk: usize, offered: &Offered) -> ServerHello {
        ServerHello {
            protocol: PROTOCOL.into(),
            version: VERSION,
            model: ModelInfo {
                name: self.announced.name.clone(),
                description: self.announced.description.clone(),
                classes: self.served.classes as u64,
                preprocess: self.served.preprocess.clone(),
                output_error_bound: self.output_error_bound,
                input_bound: self.announced.input_bound,
                value_bits: self.value_bits.clone(),
                output_mode: self.output_mode,
            },
            program: self.public.clone(),
            session: self.session_params(chunk),
            backend: offered.name.into(),
            announcement: offered.announcement.clone(),
            stat_sec: offered.prepared.stat_security(),
        }
    }

    /// Does every offered backend's per-model work for chunks of `n` ahead of
    /// the first session (e.g. encoding the weights).
    pub async fn precompute(&self, n: usize) -> SecureResult<()> {
        for o in &self.offered {
            o.prepared.precompute(n).await?;
        }
        Ok(())
    }

    /// Serves one client session to its end (see the module docs). The
    /// session is finished on success and closed on error; the error says
    /// what went wrong (the caller logs it and keeps serving).
    pub async fn serve<G: Rng + CryptoRng + ?Sized>(
        &self,
        session: Session,
        rng: &mut G,
    ) -> SecureResult<SessionSummary> {
        self.serve_gated(session, rng, None).await
    }

    /// [`SecureServer::serve`] with a [`BatchGate`] asked before each batch.
    pub async fn serve_gated<G: Rng + CryptoRng + ?Sized>(
        &self,
        mut session: Session,
        rng: &mut G,
        gate: Option<Arc<dyn BatchGate>>,
    ) -> SecureResult<SessionSummary> {
        let mut rng = ChaCha20Rng::from_rng(rng);
        let peer = session.peer_addr();
        let mut state = ServeState::default();
        let result = self
            .serve_inner(&mut session, &mut rng, &mut state, gate.as_deref())
            .await;
        match result {
            Ok(()) => {
                let report = session.report();
                if let Err(e) = session.finish().await {
                    debug!(%peer, error = %e, "session end");
                }
                Ok(SessionSummary {
                    peer,
                    backend: state.backend.unwrap_or_default(),
                    batches: state.batches,
                    samples: state.samples,
                    report,
                })
            }
            Err(e) => {
                if state.refused {
                    // Let the refusal reach the client: a graceful end (bounded
                    // by the session's linger time) instead of an abrupt close.
                    let _ = session.finish().await;
                } else {
                    session.close();
                }
                Err(e)
            }
        }
    }

    /// [`SecureServer::serve`] in a task of its own: a panic anywhere in
    /// the session (including inside a dependency, on a runtime worker or a
    /// rayon thread that propagates it) ends this session only and comes back
    /// as [`SecureError::Panicked`] naming the phase the session had last
    /// entered; the server stays usable. If the returned future is dropped
    /// the session is aborted. The session's randomness is drawn from `rng`.
    pub async fn serve_isolated<G: Rng + CryptoRng + ?Sized>(
        self: &Arc<Self>,
        session: Session,
        rng: &mut G,
    ) -> SecureResult<SessionSummary> {
        self.serve_isolated_gated(session, rng, None).await
    }

    /// [`SecureServer::serve_isolated`] with a [`BatchGate`] asked before
    /// each batch.
    pub async fn serve_isolated_gated<G: Rng + CryptoRng + ?Sized>(
        self: &Arc<Self>,
        session: Session,
        rng: &mut G,
        gate: Option<Arc<dyn BatchGate>>,
    ) -> SecureResult<SessionSummary> {
        let mut task_rng = ChaCha20Rng::from_rng(rng);
        let meter = session.meter().clone();
        let this = Arc::clone(self);
        let handle =
            tokio::spawn(async move { this.serve_gated(session, &mut task_rng, gate).await });
        match AbortOnDrop(handle).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(SecureError::Panicked {
                phase: meter.last_entered(),
                message: panic_message(e.into_panic().as_ref()),
            }),
            Err(e) => Err(SecureError::Task(format!("session task: {e}"))),
        }
    }

    async fn serve_inner(
        &self,
        session: &mut Session,
        rng: &mut ChaCha20Rng,
        state: &mut ServeState,
        gate: Option<&dyn BatchGate>,
    ) -> SecureResult<()> {
        let meter = session.meter().clone();
        let timeout = self.config.step_timeout;
        let setup = meter.phase(Phase::Setup);
        // The hello has its own, short deadline: a client that connects and
        // says nothing holds a session slot for at most this long.
        let hello_limit = self.hello_timeout;
        let opening = async {
            let (tx, mut rx) = session.channel::<ServerMsg, ClientMsg>().await?;
            let first = rx.recv().await?;
            Ok::<_, SecureError>((tx, rx, first))
        };
        let (mut tx, mut rx, first) = match tokio::time::timeout(hello_limit, opening).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(SecureError::Timeout {
                    what: "waiting for the client's hello".into(),
                    after: hello_limit,
                });
            }
        };
        let hello: ClientHello = match first {
            ClientMsg::Hello(h) => h,
            other => {
                return Err(SecureError::Malformed(format!(
                    "expected a hello, got a {}",
                    other.kind()
                )));
            }
        };
        let refuse = |reason: String| ServerMsg::Refused { reason };
        if let Err(e) = check_protocol(&hello.protocol, hello.version) {
            state.refused = tx.send(&refuse(e.to_string())).await.is_ok();
            return Err(e);
        }
        let chunk = usize::try_from(hello.chunk)
            .ok()
            .filter(|c| (1..=MAX_CHUNK).contains(c))
            .ok_or_else(|| SecureError::Malformed(format!("requested chunk {}", hello.chunk)))?;
        let Some(offered) = self.offered.iter().find(|o| o.name == hello.backend) else {
            let requested: String = hello.backend.chars().take(64).collect();
            let offered: Vec<String> = self.backend_names().iter().map(|s| s.to_string()).collect();
            state.refused = tx
                .send(&ServerMsg::Unavailable {
                    requested: requested.clone(),
                    offered: offered.clone(),
                })
                .await
                .is_ok();
            return Err(SecureError::BackendUnavailable {
                requested,
                offered: offered.join(", "),
            });
        };
        state.backend = Some(offered.name.to_string());
        let hello = self.hello(chunk, offered);
        let params = hello.session;
        tx.send(&ServerMsg::Hello(Box::new(hello))).await?;
        let link = SetupLink {
            session: &mut *session,
            rng: ChaCha20Rng::from_rng(&mut *rng),
            timeout,
        };
        let mut party = timed(
            timeout,
            || format!("setting up backend `{}`", offered.name),
            offered.prepared.open(link),
        )
        .await?;
        drop(setup);
        debug!(peer = %session.peer_addr(), backend = offered.name, "session set up");

        loop {
            let msg = {
                let _p = meter.phase(Phase::Output);
                rx.recv().await?
            };
            let req = match msg {
                ClientMsg::Batch(b) => b,
                ClientMsg::Finish => {
                    let end = SessionEnd {
                        batches: state.batches,
                        samples: state.samples,
                        report: meter.report(),
                    };
                    let _p = meter.phase(Phase::Output);
                    tx.send(&ServerMsg::Goodbye(Box::new(end))).await?;
                    return Ok(());
                }
                ClientMsg::Hello(_) => {
                    return Err(SecureError::Malformed("a second hello".into()));
                }
            };
            let n = usize::try_from(req.samples)
                .ok()
                .filter(|&n| n >= 1 && n as u64 <= params.max_batch)
                .ok_or_else(|| {
                    SecureError::Malformed(format!(
                        "batch of {} samples (1..={} accepted)",
                        req.samples, params.max_batch
                    ))
                });
            if let (Ok(_), Some(gate)) = (&n, gate)
                && let Err(q) = gate.admit(req.samples)
            {
                // Before any of the batch's protocol work.
                state.refused = tx.send(&ServerMsg::QuotaExceeded(q)).await.is_ok();
                return Err(SecureError::QuotaExceeded(q));
            }
            let result = match n {
                Ok(n) => {
                    self.serve_batch(party.as_mut(), offered, &meter, params, n, rng)
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    state.batches += 1;
                    state.samples += req.samples;
                    info!(peer = %session.peer_addr(), samples = req.samples, "served a batch");
                }
                Err(e) => {
                    // Tell the client why (it may be waiting on the backend's
                    // streams); the session ends either way.
                    state.refused = tx.send(&refuse(e.to_string())).await.is_ok();
                    return Err(e);
                }
            }
        }
    }

    async fn serve_batch(
        &self,
        party: &mut dyn PartySession,
        offered: &Offered,
        meter: &fusion_net::Meter,
        params: SessionParams,
        n: usize,
        rng: &mut ChaCha20Rng,
    ) -> SecureResult<()> {
        let timeout = self.config.step_timeout;
        let classes = self.served.classes;
        let in_len: usize = self.served.program.input_shape.iter().product();
        let domain = offered.prepared.domain();
        let mut alteration = self.behaviour.begin_batch(n, classes, rng);
        let mut start = 0usize;
        for m in params.chunks(n) {
            let pass = Pass {
                program: &self.public,
                schedule: &self.schedule,
                domain,
                backend: &mut *party,
                meter,
                timeout,
                input_is_zero: true,
                progress: None,
                progress_base: 0,
                progress_total: 0,
                deviation: None,
            };
            let mut y = pass.run(vec![0u64; m * in_len], m).await?;
            if let Some(a) = alteration.as_mut() {
                a.alter(&mut y, start, m, &domain, rng);
            }
            if let Some(stage) = &self.stage {
                y = stage
                    .run(&mut *party, meter, timeout, domain, y, m, false)
                    .await?;
            }
            reveal(&mut *party, meter, timeout, y, m).await?;
            start += m;
        }
        Ok(())
    }
}

/// Aborts a spawned session when dropped (e.g. the server is interrupted).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// What a session did so far (for its summary and error handling).
#[derive(Debug, Default)]
struct ServeState {
    backend: Option<String>,
    batches: u64,
    samples: u64,
    /// A refusal was sent: end the session gracefully so it arrives.
    refused: bool,
}
