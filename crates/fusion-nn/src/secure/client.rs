//! The client side: holds the inputs, learns only the outputs.
//!
//! [`SecureClient::connect`] runs the session's hello (validating everything
//! the server announces, [`ServerHello::validate`]), generates the HE key pair
//! and sends the public key, and sets up OT. [`SecureClient::infer`] then runs
//! any number of batches on the same session: it applies the model's public
//! preprocessing in the clear, encodes the samples at scale `f` (its shares;
//! the server's are zero), runs the program chunk by chunk, and reconstructs
//! and decodes the outputs with the server's output shares.
//! [`SecureClient::finish`] ends the session and returns the server's own meter
//! report.
//!
//! The client implements [`fusion_core::engine::Engine`] for raw samples
//! (`Vec<f32>`, one flattened sample as stored in the dataset: pixels
//! `0..255`, raw clinical features), so [`fusion_core::engine::run_fusion`]
//! drives it. The outputs are the decoded logits.
//!
//! **What the client learns**: the public view of the server's program
//! (architecture, shapes, fixed-point parameters, preprocessing), the outputs
//! (logits) of every sample it submits, and sizes and timing. Semi-honest
//! client only: a client that deviates (shifts its shares, MUSE-style) can
//! learn more about the weights; that is not covered (see [`super`]).

use std::sync::Arc;
use std::time::Instant;

use fusion_core::engine::{Engine, Output};
use fusion_he::{HeChannel, HeClient, HeParams, LinearPlan, PlanOptions};
use fusion_net::{Connection, Meter, MeterReport, MsgReceiver, MsgSender, Session};
use fusion_ot::Role;
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};

use super::config::{ClientConfig, MAX_CHUNK};
use super::error::{SecureError, SecureResult};
use super::exec::{LinearSide, Pass, fence_if_dirty, timed};
use super::linear::{BatchCache, blocking, plans};
use super::ot::AnyOt;
use super::schedule::Schedule;
use super::stats::{BatchStats, PHASE_OUTPUT, PHASE_SETUP, phase_delta};
use super::wire::{BatchRequest, ClientHello, ClientMsg, ServerHello, ServerMsg, SessionEnd};
use crate::fixed::FixedProgram;
use crate::tensor::Tensor;

type Plans = Vec<Option<Arc<LinearPlan>>>;

/// The client of a secure inference session.
pub struct SecureClient {
    session: Option<Session>,
    meter: Meter,
    tx: MsgSender<ClientMsg>,
    rx: MsgReceiver<ServerMsg>,
    _he_conn: Connection,
    he: Arc<HeClient>,
    he_channel: HeChannel,
    ot: AnyOt,
    ot_dirty: bool,
    hello: ServerHello,
    schedule: Schedule,
    params: HeParams,
    opts: PlanOptions,
    plans: BatchCache<Plans>,
    config: ClientConfig,
    rng: ChaCha20Rng,
    last_batch: Option<BatchStats>,
    failed: bool,
}

impl std::fmt::Debug for SecureClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureClient")
            .field("model", &self.hello.model.name)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl SecureClient {
    /// Opens a secure inference session over `session` (see the module docs).
    /// On failure the session is closed.
    pub async fn connect<G: Rng + CryptoRng + ?Sized>(
        mut session: Session,
        config: ClientConfig,
        rng: &mut G,
    ) -> SecureResult<Self> {
        if config.chunk == 0 || config.chunk > MAX_CHUNK {
            return Err(SecureError::Config(format!(
                "chunk {} outside 1..={MAX_CHUNK}",
                config.chunk
            )));
        }
        let mut rng = ChaCha20Rng::from_rng(rng);
        match Self::setup(&mut session, &config, &mut rng).await {
            Ok(parts) => Ok(Self::assemble(session, config, rng, parts)),
            Err(e) => {
                session.close();
                Err(e)
            }
        }
    }

    async fn setup(
        session: &mut Session,
        config: &ClientConfig,
        rng: &mut ChaCha20Rng,
    ) -> SecureResult<Parts> {
        let meter = session.meter().clone();
        let _setup = meter.phase(PHASE_SETUP);
        let timeout = config.step_timeout;
        let (mut tx, mut rx) = session.channel::<ClientMsg, ServerMsg>().await?;
        let mut he_conn = session.sub_connection();
        let ot_conn = session.sub_connection();
        tx.send(&ClientMsg::Hello(ClientHello::new(config.chunk)))
            .await?;
        let hello = match rx.recv().await? {
            ServerMsg::Hello(h) => *h,
            ServerMsg::Refused { reason } => return Err(SecureError::Refused(reason)),
            other => {
                return Err(SecureError::Malformed(format!(
                    "expected the server's hello, got a {}",
                    other.kind()
                )));
            }
        };
        hello.validate(&config.policy)?;
        if hello.engine.chunk > config.chunk as u64 {
            return Err(SecureError::Mismatch(format!(
                "the server wants chunks of {} samples, we asked for at most {}",
                hello.engine.chunk, config.chunk
            )));
        }
        let schedule = Schedule::new(&hello.program)?;
        let params = hello.engine.he_params(hello.program.ring())?;
        let opts = hello.engine.plan.options()?;
        // Plan the first chunk size now: a program the HE layer cannot plan is
        // refused before any key material is made.
        let plans_cache = BatchCache::new(4);
        {
            let (p, program) = (params.clone(), hello.program.clone());
            let first = usize::try_from(hello.engine.chunk).unwrap_or(1);
            let built = blocking(move || plans(&p, &opts, &program, first)).await?;
            plans_cache.insert(first, Arc::new(built));
        }
        let (he, he_channel) = timed(
            timeout,
            || "sending the HE public key".into(),
            fusion_he::client_setup(&mut he_conn, &params, rng),
        )
        .await?;
        let ot = timed(
            timeout,
            || "setting up OT".into(),
            AnyOt::setup(
                hello.engine.ot.flavour,
                ot_conn,
                Role::Client,
                hello.program.ring(),
                hello.engine.ot.ot_config(config.ot_parallel)?,
                rng,
            ),
        )
        .await?;
        Ok(Parts {
            meter,
            tx,
            rx,
            he_conn,
            he,
            he_channel,
            ot,
            hello,
            schedule,
            params,
            opts,
            plans: plans_cache,
        })
    }

    fn assemble(session: Session, config: ClientConfig, rng: ChaCha20Rng, p: Parts) -> Self {
        SecureClient {
            session: Some(session),
            meter: p.meter,
            tx: p.tx,
            rx: p.rx,
            _he_conn: p.he_conn,
            he: p.he,
            he_channel: p.he_channel,
            ot: p.ot,
            ot_dirty: true,
            hello: p.hello,
            schedule: p.schedule,
            params: p.params,
            opts: p.opts,
            plans: p.plans,
            config,
            rng,
            last_batch: None,
            failed: false,
        }
    }

    /// What the server announced.
    pub fn server_hello(&self) -> &ServerHello {
        &self.hello
    }

    /// The public program both parties run.
    pub fn program(&self) -> &FixedProgram {
        &self.hello.program
    }

    /// The schedule both parties run.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Number of classes of the model.
    pub fn classes(&self) -> usize {
        self.hello.model.classes as usize
    }

    /// Values per raw sample.
    pub fn input_len(&self) -> usize {
        self.hello.program.input_shape.iter().product()
    }

    /// The OT flavour in use.
    pub fn ot_flavour(&self) -> &'static str {
        self.ot.flavour()
    }

    /// OT counters of the session.
    pub fn ot_stats(&self) -> fusion_ot::Stats {
        self.ot.stats()
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
    pub fn set_progress(&mut self, progress: Option<super::config::ProgressFn>) {
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
        Ok(self.hello.program.encode_input(&x)?.into_data())
    }

    /// Decodes output ring elements (`samples x classes`) to logits.
    pub fn decode(&self, y: &[u64]) -> Vec<Vec<f64>> {
        let (fp, s) = (self.hello.program.fixed, self.hello.program.output_scale());
        y.chunks(self.classes().max(1))
            .map(|row| row.iter().map(|&v| fp.decode_at(v, s)).collect())
            .collect()
    }

    /// Runs a batch of raw samples; returns their logits.
    pub async fn infer_raw(&mut self, raw: &[Vec<f32>]) -> SecureResult<Vec<Vec<f64>>> {
        let x = self.encode(raw)?;
        let y = self.infer_encoded(x, raw.len()).await?;
        Ok(self.decode(&y))
    }

    /// Runs a batch of `n` encoded samples (the client's shares, e.g. from
    /// [`FixedProgram::encode_input`]); returns the reconstructed output ring
    /// elements (`n x classes`, at the program's output scale).
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
        if n as u64 > self.hello.engine.max_batch {
            return Err(SecureError::Config(format!(
                "batch of {n} samples, the server accepts at most {}",
                self.hello.engine.max_batch
            )));
        }
        let before = self.meter.report();
        let started = Instant::now();
        let result = self.run_batch(x, n).await;
        match result {
            Ok((y, chunks)) => {
                let after = self.meter.report();
                let phases = phase_delta(&before, &after);
                self.last_batch = Some(BatchStats {
                    samples: n,
                    chunks,
                    seconds: started.elapsed().as_secs_f64(),
                    bytes_sent: after.total.bytes_sent - before.total.bytes_sent,
                    bytes_received: after.total.bytes_received - before.total.bytes_received,
                    phases,
                });
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
        let ring = self.program().ring();
        let fixed = self.program().fixed;
        let chunks = self.hello.engine.chunks(n);
        {
            let _p = self.meter.phase(PHASE_OUTPUT);
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
        let mut y = Vec::with_capacity(n * classes);
        let mut start = 0usize;
        for (ci, &m) in chunks.iter().enumerate() {
            let plans = self.plans_for(m).await?;
            let pass = Pass {
                program: &self.hello.program,
                schedule: &self.schedule,
                ot: &mut self.ot,
                ot_dirty: &mut self.ot_dirty,
                he_channel: &mut self.he_channel,
                linear: LinearSide::Client {
                    he: &self.he,
                    plans: &plans,
                },
                meter: &self.meter,
                timeout,
                rng: &mut self.rng,
                progress: self.config.progress.as_ref(),
                progress_base: ci * per_pass,
                progress_total: total,
            };
            let share = x[start * in_len..(start + m) * in_len].to_vec();
            let yc = pass.run(share, m).await?;
            fence_if_dirty(&mut self.ot, &mut self.ot_dirty, &self.meter, timeout).await?;
            let msg = {
                let _p = self.meter.phase(PHASE_OUTPUT);
                timed(
                    timeout,
                    || "receiving the server's output share".into(),
                    self.rx.recv(),
                )
                .await?
            };
            let ys = match msg {
                ServerMsg::Output(o) => {
                    o.validate(ci, m * classes, fixed)?;
                    o.shares
                }
                ServerMsg::Refused { reason } => return Err(SecureError::Refused(reason)),
                other => {
                    return Err(SecureError::Malformed(format!(
                        "expected an output share, got a {}",
                        other.kind()
                    )));
                }
            };
            y.extend(yc.iter().zip(&ys).map(|(&a, &b)| ring.reconstruct(a, b)));
            start += m;
        }
        Ok((y, chunks.len()))
    }

    async fn plans_for(&self, m: usize) -> SecureResult<Arc<Plans>> {
        if let Some(p) = self.plans.get(m) {
            return Ok(p);
        }
        let (params, opts, program) = (self.params.clone(), self.opts, self.hello.program.clone());
        let built = Arc::new(blocking(move || plans(&params, &opts, &program, m)).await?);
        self.plans.insert(m, built.clone());
        Ok(built)
    }

    /// After a failure, a refusal the server may have sent explains it better.
    async fn explain(&mut self, e: SecureError) -> SecureError {
        if matches!(e, SecureError::Refused(_) | SecureError::Config(_)) {
            return e;
        }
        let wait = std::time::Duration::from_millis(500);
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Ok(Ok(ServerMsg::Refused { reason })) => SecureError::Refused(reason),
            _ => e,
        }
    }

    /// Ends the session: tells the server, receives its goodbye (with its
    /// meter report), and closes the connection.
    pub async fn finish(mut self) -> SecureResult<SessionEnd> {
        let timeout = self.config.step_timeout;
        let result = async {
            let _p = self.meter.phase(PHASE_OUTPUT);
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
    he_conn: Connection,
    he: Arc<HeClient>,
    he_channel: HeChannel,
    ot: AnyOt,
    hello: ServerHello,
    schedule: Schedule,
    params: HeParams,
    opts: PlanOptions,
    plans: BatchCache<Plans>,
}

impl Engine<Vec<f32>> for SecureClient {
    type Error = SecureError;

    /// Runs the batch of raw samples and returns their logits.
    async fn infer(&mut self, batch: &[Vec<f32>]) -> Result<Vec<Output>, SecureError> {
        let logits = self.infer_raw(batch).await?;
        logits
            .into_iter()
            .map(|s| Output::new(s).map_err(|e| SecureError::Malformed(e.to_string())))
            .collect()
    }
}
