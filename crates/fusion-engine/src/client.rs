//! The client side: holds the inputs, learns only the outputs.
//!
//! [`SecureClient::connect`] runs the session's hello (naming the backend and
//! validating everything the server announces, [`ServerHello::validate`] and
//! the backend's [`Backend::join`]) and the backend's setup (keys, base
//! OTs). [`SecureClient::infer_raw`] then runs any number of batches on the
//! same session: it applies the model's public preprocessing in the clear,
//! encodes the samples at scale `f` (its shares; the server's are zero), runs
//! the program chunk by chunk through the session driver, and receives the
//! outputs from the backend's output stage. [`SecureClient::finish`] ends the
//! session and returns the server's own meter report.
//!
//! The client implements [`fusion_core::engine::Engine`] for raw samples
//! (`Vec<f32>`, one flattened sample as stored in the dataset: pixels
//! `0..255`, raw clinical features), so [`fusion_core::engine::run_fusion`]
//! drives it. The outputs are the decoded logits, or in label mode
//! ([`crate::output_mode`], chosen by the server) one-hot vectors of the
//! classes, checked to be one-hot.
//!
//! **What the client learns**: the public view of the server's program
//! (architecture, shapes, fixed-point parameters, preprocessing), the
//! backend's parameters, the outputs of every sample it submits (the logits,
//! or in label mode only the class), and
//! sizes and timing. Semi-honest client only: a client that deviates (shifts
//! its shares, MUSE-style) can learn more about the weights; that is not
//! covered (see the crate docs).

use std::time::Instant;

use fusion_core::engine::{Engine, Output};
use fusion_net::{Meter, MeterReport, MsgReceiver, MsgSender, Phase, Session};
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};

use crate::backend::{Backend, PartySession, SetupLink};
use crate::config::{ClientConfig, MAX_CHUNK};
use crate::domain::Domain;
use crate::driver::{Pass, reveal, timed};
use crate::error::{SecureError, SecureResult};
use crate::output_mode::{OutputMode, ShareStage, check_one_hot};
use crate::reverse_sigmoid::check_probabilities;
use crate::schedule::Schedule;
use crate::stats::BatchStats;
use crate::wire::{BatchRequest, ClientHello, ClientMsg, ServerHello, ServerMsg, SessionEnd};
use fusion_nn::fixed::PublicProgram;
use fusion_nn::tensor::Tensor;

/// The client of a secure inference session.
pub struct SecureClient {
    session: Option<Session>,
    meter: Meter,
    tx: MsgSender<ClientMsg>,
    rx: MsgReceiver<ServerMsg>,
    party: Box<dyn PartySession>,
    domain: Domain,
    backend: String,
    backend_description: String,
    hello: ServerHello,
    schedule: Schedule,
    /// The computation on the shares of the server's output mode (label:
    /// the secure argmax; reverse sigmoid), `None` for logits.
    stage: Option<ShareStage>,
    config: ClientConfig,
    last_batch: Option<BatchStats>,
    failed: bool,
    deviation: Option<std::sync::Arc<dyn crate::behaviour::ClientDeviation>>,
}

impl std::fmt::Debug for SecureClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureClient")
            .field("model", &self.hello.model.name)
            .field("backend", &self.backend)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl SecureClient {
    /// Opens a secure inference session over `session` with `backend` (which
    /// carries the client's local settings for it; see the module docs). On
    /// failure the session is closed.
    pub async fn connect<G: Rng + CryptoRng + ?Sized>(
        mut session: Session,
        config: ClientConfig,
        backend: &dyn Backend,
        rng: &mut G,
    ) -> SecureResult<Self> {
        if config.chunk == 0 || config.chunk > MAX_CHUNK {
            return Err(SecureError::Config(format!(
                "chunk {} outside 1..={MAX_CHUNK}",
                config.chunk
            )));
        }
        let mut rng = ChaCha20Rng::from_rng(rng);
        match Self::setup(&mut session, &config, backend, &mut rng).await {
            Ok(parts) => Ok(SecureClient {
                session: Some(session),
                meter: parts.meter,
                tx: parts.tx,
                rx: parts.rx,
                party: parts.party,
                domain: parts.domain,
                backend: backend.name().to_string(),
                backend_description: parts.description,
                hello: parts.hello,
                schedule: parts.schedule,
                stage: parts.stage,
                config,
                last_batch: None,
                failed: false,
                deviation: None,
            }),
            Err(e) => {
                session.close();
                Err(e)
            }
        }
    }

    async fn setup(
        session: &mut Session,
        config: &ClientConfig,
        backend: &dyn Backend,
        rng: &mut ChaCha20Rng,
    ) -> SecureResult<Parts> {
        let meter = session.meter().clone();
        let _setup = meter.phase(Phase::Setup);
        let timeout = config.step_timeout;
        let (mut tx, mut rx) = session.channel::<ClientMsg, ServerMsg>().await?;
        tx.send(&ClientMsg::Hello(ClientHello::new(
            config.chunk,
            backend.name(),
        )))
        .await?;
        let hello = match rx.recv().await? {
            ServerMsg::Hello(h) => *h,
            ServerMsg::Refused { reason } => return Err(SecureError::Refused(reason)),
            ServerMsg::QuotaExceeded(q) => return Err(SecureError::QuotaExceeded(q)),
            ServerMsg::Busy { retry_after_secs } => {
                return Err(SecureError::Busy {
                    retry_after_secs: retry_after_secs.min(crate::wire::MAX_RETRY_AFTER_SECS),
                });
            }
            ServerMsg::Unavailable { requested, offered } => {
                return Err(SecureError::BackendUnavailable {
                    requested,
                    offered: offered
                        .iter()
                        .take(crate::wire::MAX_OFFERED)
                        .map(|s| {
                            s.chars()
                                .take(crate::wire::MAX_BACKEND_NAME)
                                .collect::<String>()
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            other => {
                return Err(SecureError::Malformed(format!(
                    "expected the server's hello, got a {}",
                    other.kind()
                )));
            }
        };
        hello.validate(&config.policy)?;
        if hello.backend != backend.name() {
            return Err(SecureError::Mismatch(format!(
                "we asked for backend `{}`, the server runs `{}`",
                backend.name(),
                hello.backend.chars().take(64).collect::<String>()
            )));
        }
        if hello.session.chunk > config.chunk as u64 {
            return Err(SecureError::Mismatch(format!(
                "the server wants chunks of {} samples, we asked for at most {}",
                hello.session.chunk, config.chunk
            )));
        }
        let schedule = Schedule::with_bounds(&hello.program, &hello.model.value_bits)?;
        let stage = ShareStage::for_mode(
            hello.model.output_mode,
            &hello.program,
            hello.model.classes as usize,
        )
        .map_err(|e| {
            SecureError::Malformed(format!(
                "the server's output mode {}: {e}",
                hello.model.output_mode
            ))
        })?;
        let prepared = backend.join(&hello.program, &hello.announcement)?;
        if prepared.stat_security() != hello.stat_sec {
            return Err(SecureError::Mismatch(format!(
                "the hello announces statistical security {:?}, the backend's parameters give {:?}",
                hello.stat_sec,
                prepared.stat_security()
            )));
        }
        let link = SetupLink {
            session,
            rng: ChaCha20Rng::from_rng(&mut *rng),
            timeout,
        };
        let party = timed(
            timeout,
            || format!("setting up backend `{}`", backend.name()),
            prepared.open(link),
        )
        .await?;
        Ok(Parts {
            meter,
            tx,
            rx,
            party,
            domain: prepared.domain(),
            description: prepared.describe(),
            hello,
            schedule,
            stage,
        })
    }

    /// What the server announced.
    pub fn server_hello(&self) -> &ServerHello {
        &self.hello
    }

    /// The public program both parties run.
    pub fn program(&self) -> &PublicProgram {
        &self.hello.program
    }

    /// The schedule both parties run.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// What the server lets this client learn of each sample (announced in
    /// the hello).
    pub fn output_mode(&self) -> OutputMode {
        self.hello.model.output_mode
    }

    /// Number of classes of the model.
    pub fn classes(&self) -> usize {
        self.hello.model.classes as usize
    }

    /// Values per raw sample.
    pub fn input_len(&self) -> usize {
        self.hello.program.input_shape.iter().product()
    }

    /// The backend that runs.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The backend's parameters, described.
    pub fn backend_description(&self) -> &str {
        &self.backend_description
    }

    /// The share domain.
    pub fn domain(&self) -> Domain {
        self.domain
    }

    /// The backend's counters so far (JSON object; e.g. OT counts).
    pub fn backend_stats(&self) -> serde_json::Value {
        self.party.stats()
    }

    /// The figures of the last batch.
    pub fn last_batch(&self) -> Option<&BatchStats> {
        self.last_batch.as_ref()
    }

    /// The client's meter so far.
    pub fn report(&self) -> MeterReport {
        self.meter.report()
    }

    /// The session's meter (a handle sharing the counters: it keeps counting
    /// through [`SecureClient::finish`], so a clone taken before reports the
    /// whole session afterwards).
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }

    /// Replaces the progress callback.
    pub fn set_progress(&mut self, progress: Option<crate::config::ProgressFn>) {
        self.config.progress = progress;
    }

    /// Preprocesses and encodes raw samples: the client's input shares.
    pub fn encode(&self, raw: &[Vec<f32>]) -> SecureResult<Vec<u64>> {
        let len = self.input_len();
        let mut data = Vec::with_capacity(raw.len() * len);
        for (i, s) in raw.iter().enumerate() {
            if s.len() != len {
                return Err(SecureError::Config(format!(
                    "sample {i} has {} values, the model `{}` takes {len} ({:?})",
                    s.len(),
                    self.hello.model.name,
                    self.hello.program.input_shape
                )));
            }
            if let Some(j) = s.iter().position(|v| !v.is_finite()) {
                return Err(SecureError::Config(format!(
                    "sample {i} has a non-finite value at position {j}"
                )));
            }
            data.extend_from_slice(s);
        }
        let mut shape = vec![raw.len()];
        shape.extend_from_slice(&self.hello.program.input_shape);
        let x = self
            .hello
            .model
            .preprocess
            .apply(&Tensor::new(shape, data)?)?;
        if let Some(bound) = self.hello.model.input_bound {
            let per = len.max(1);
            if let Some((k, v)) = x
                .data()
                .iter()
                .enumerate()
                .find(|(_, v)| f64::from(v.abs()) > bound)
            {
                return Err(SecureError::Config(format!(
                    "sample {} value {} is {v} after preprocessing, outside the range the server accepts (|x| <= {bound}): its fixed-point values could wrap around and every copy would get the same wrong answer",
                    k / per,
                    k % per
                )));
            }
        }
        Ok(self.hello.program.encode_input(&x)?.into_data())
    }

    /// Makes this client deviate from the protocol (a malicious client, for
    /// attacks and their tests only; see [`crate::behaviour::ClientDeviation`]).
    /// Every later batch runs with the hook.
    pub fn set_deviation(&mut self, d: std::sync::Arc<dyn crate::behaviour::ClientDeviation>) {
        self.deviation = Some(d);
    }

    /// Decodes output ring elements (`samples x classes`) to logits; in
    /// label mode the revealed one-hot vectors become `0.0`/`1.0` scores, in
    /// reverse-sigmoid mode the perturbed probabilities.
    pub fn decode(&self, y: &[u64]) -> Vec<Vec<f64>> {
        if self.output_mode() == OutputMode::Label {
            return y
                .chunks(self.classes().max(1))
                .map(|row| {
                    row.iter()
                        .map(|&v| if v == 1 { 1.0 } else { 0.0 })
                        .collect()
                })
                .collect();
        }
        let fp = self.hello.program.fixed;
        let s = match self.output_mode() {
            OutputMode::ReverseSigmoid { .. } => fp.frac_bits,
            _ => self.hello.program.output_scale(),
        };
        y.chunks(self.classes().max(1))
            .map(|row| row.iter().map(|&v| fp.decode_at(v, s)).collect())
            .collect()
    }

    /// Runs a batch of raw samples; returns their logits (label mode: their
    /// one-hot vectors).
    pub async fn infer_raw(&mut self, raw: &[Vec<f32>]) -> SecureResult<Vec<Vec<f64>>> {
        let x = self.encode(raw)?;
        let y = self.infer_encoded(x, raw.len()).await?;
        Ok(self.decode(&y))
    }

    /// Runs a batch of `n` encoded samples (program values, e.g. from
    /// [`PublicProgram::encode_input`]); returns the output ring elements
    /// (`n x classes`, at the program's output scale; in label mode one-hot
    /// vectors of `0`/`1`, checked).
    pub async fn infer_encoded(&mut self, x: Vec<u64>, n: usize) -> SecureResult<Vec<u64>> {
        if self.failed {
            return Err(SecureError::Config(
                "the session failed earlier; open a new one".into(),
            ));
        }
        let in_len = self.input_len();
        if x.len() != n * in_len {
            return Err(SecureError::Config(format!(
                "{} input values for {n} samples of {in_len}",
                x.len()
            )));
        }
        if let Some(i) = x.iter().position(|&v| !self.program().ring().contains(v)) {
            return Err(SecureError::Config(format!(
                "input value {i} is outside the ring"
            )));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        if n as u64 > self.hello.session.max_batch {
            return Err(SecureError::Config(format!(
                "batch of {n} samples, the server accepts at most {}",
                self.hello.session.max_batch
            )));
        }
        let before = self.meter.report();
        let started = Instant::now();
        let result = self.run_batch(x, n).await;
        match result {
            Ok((y, chunks)) => {
                let after = self.meter.report();
                self.last_batch = Some(BatchStats::between(
                    &before,
                    &after,
                    n,
                    chunks,
                    started.elapsed().as_secs_f64(),
                ));
                Ok(y)
            }
            Err(e) => {
                self.failed = true;
                Err(self.explain(e).await)
            }
        }
    }

    async fn run_batch(&mut self, x: Vec<u64>, n: usize) -> SecureResult<(Vec<u64>, usize)> {
        let timeout = self.config.step_timeout;
        let in_len = self.input_len();
        let classes = self.classes();
        let chunks = self.hello.session.chunks(n);
        {
            let _p = self.meter.phase(Phase::Output);
            timed(
                timeout,
                || "sending the batch request".into(),
                self.tx
                    .send(&ClientMsg::Batch(BatchRequest { samples: n as u64 })),
            )
            .await?;
        }
        let per_pass = self.schedule.actions.len();
        let total = per_pass * chunks.len();
        let domain = self.domain;
        let mut y = Vec::with_capacity(n * classes);
        let mut start = 0usize;
        for (ci, &m) in chunks.iter().enumerate() {
            let share: Vec<u64> = x[start * in_len..(start + m) * in_len]
                .iter()
                .map(|&v| domain.from_program(v))
                .collect();
            let pass = Pass {
                program: &self.hello.program,
                schedule: &self.schedule,
                domain,
                backend: self.party.as_mut(),
                meter: &self.meter,
                timeout,
                input_is_zero: false,
                progress: self.config.progress.as_ref(),
                progress_base: ci * per_pass,
                progress_total: total,
                deviation: self.deviation.as_deref().map(|d| (d, start)),
            };
            let mut yc = pass.run(share, m).await?;
            if let Some(d) = &self.deviation {
                d.before_output(&mut yc, start, m, &domain);
            }
            if let Some(stage) = &self.stage {
                yc = stage
                    .run(
                        self.party.as_mut(),
                        &self.meter,
                        timeout,
                        domain,
                        yc,
                        m,
                        true,
                    )
                    .await?;
            }
            let out = reveal(self.party.as_mut(), &self.meter, timeout, yc, m)
                .await?
                .ok_or_else(|| SecureError::Config("the output stage revealed nothing".into()))?;
            if out.len() != m * classes {
                return Err(SecureError::Malformed(format!(
                    "the output stage revealed {} values for {m} samples of {classes} classes",
                    out.len()
                )));
            }
            match self.output_mode() {
                OutputMode::Label => {
                    check_one_hot(&out, classes, start)?;
                }
                OutputMode::ReverseSigmoid { .. } => {
                    check_probabilities(&out, self.hello.program.fixed, classes, start)?;
                }
                OutputMode::Logits => {}
            }
            y.extend(out);
            start += m;
        }
        Ok((y, chunks.len()))
    }

    /// After a failure, a refusal the server may have sent explains it better.
    async fn explain(&mut self, e: SecureError) -> SecureError {
        if matches!(
            e,
            SecureError::Refused(_)
                | SecureError::QuotaExceeded(_)
                | SecureError::Config(_)
                | SecureError::RevealCapReached { .. }
        ) {
            return e;
        }
        let wait = std::time::Duration::from_millis(500);
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Ok(Ok(ServerMsg::Refused { reason })) => SecureError::Refused(reason),
            Ok(Ok(ServerMsg::QuotaExceeded(q))) => SecureError::QuotaExceeded(q),
            _ => e,
        }
    }

    /// Ends the session: tells the server, receives its goodbye (with its
    /// meter report), and closes the connection.
    pub async fn finish(mut self) -> SecureResult<SessionEnd> {
        let timeout = self.config.step_timeout;
        let result = async {
            let _p = self.meter.phase(Phase::Output);
            timed(
                timeout,
                || "sending finish".into(),
                self.tx.send(&ClientMsg::Finish),
            )
            .await?;
            match timed(timeout, || "waiting for the goodbye".into(), self.rx.recv()).await? {
                ServerMsg::Goodbye(end) => Ok(*end),
                ServerMsg::Refused { reason } => Err(SecureError::Refused(reason)),
                other => Err(SecureError::Malformed(format!(
                    "expected the goodbye, got a {}",
                    other.kind()
                ))),
            }
        }
        .await;
        if let Some(session) = self.session.take() {
            match &result {
                Ok(_) => {
                    let _ = session.finish().await;
                }
                Err(_) => session.close(),
            }
        }
        result
    }

    /// Closes the session at once (error paths).
    pub fn close(mut self) {
        if let Some(s) = self.session.take() {
            s.close();
        }
    }
}

struct Parts {
    meter: Meter,
    tx: MsgSender<ClientMsg>,
    rx: MsgReceiver<ServerMsg>,
    party: Box<dyn PartySession>,
    domain: Domain,
    description: String,
    hello: ServerHello,
    schedule: Schedule,
    stage: Option<ShareStage>,
}

impl Engine<Vec<f32>> for SecureClient {
    type Error = SecureError;

    /// Runs the batch of raw samples and returns their logits (label mode:
    /// one-hot outputs of their classes).
    async fn infer(&mut self, batch: &[Vec<f32>]) -> Result<Vec<Output>, SecureError> {
        if self.output_mode() == OutputMode::Label {
            let x = self.encode(batch)?;
            let y = self.infer_encoded(x, batch.len()).await?;
            let classes = self.classes();
            return check_one_hot(&y, classes, 0)?
                .into_iter()
                .map(|c| {
                    Output::one_hot(c, classes).map_err(|e| SecureError::Malformed(e.to_string()))
                })
                .collect();
        }
        let logits = self.infer_raw(batch).await?;
        logits
            .into_iter()
            .map(|s| Output::new(s).map_err(|e| SecureError::Malformed(e.to_string())))
            .collect()
    }
}
