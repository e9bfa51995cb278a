//! The server side: holds the model, serves sessions, one or more batches each.
//!
//! [`SecureServer`] is built once per model ([`SecureServer::new`]): it picks
//! the HE preset, derives the schedule and checks that every layer encodes.
//! [`SecureServer::serve`] then runs one client session over a fusion-net
//! [`Session`]: the hello exchange, HE and OT setup, any number of batches,
//! and the goodbye, in which it sends its own meter report. The encoded HE
//! layers are cached per batch size across sessions
//! ([`SecureServer::precompute`] fills the cache ahead of time).
//!
//! **What the server learns**: the batch sizes (and so chunk sizes), timing,
//! and nothing about the client's inputs or outputs: it only ever sees RLWE
//! ciphertexts under the client's key and uniformly random shares (in the
//! semi-honest model of the underlying protocols). It sends the client the
//! public view of its program (architecture, shapes, fixed-point parameters,
//! preprocessing), never its coefficients.
//!
//! **Cheat modes** ([`Cheat`]) make the server misbehave on purpose, for tests,
//! demos and the detection experiment: serve a weaker model, corrupt the
//! output at `K` random positions of each batch, or return random outputs.
//! Fusion's checks on the client are what catch them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use fusion_core::ring::FixedPoint;
use fusion_he::{HeParams, PlanOptions, ServerLinear};
use fusion_net::{MeterReport, Session};
use fusion_ot::Role;
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};
use tracing::{debug, info};

use super::config::{EngineParams, HePreset, MAX_CHUNK, ServerConfig};
use super::error::{SecureError, SecureResult};
use super::exec::{LinearSide, Pass, fence_if_dirty, timed};
use super::linear::{BatchCache, blocking, choose_preset, server_layers};
use super::ot::AnyOt;
use super::schedule::Schedule;
use super::stats::{PHASE_OUTPUT, PHASE_SETUP};
use super::wire::{
    ClientMsg, ModelInfo, OutputShare, PROTOCOL, ServerHello, ServerMsg, SessionEnd, VERSION,
    check_protocol, validate_program,
};
use crate::fixed::{FixedProgram, lower};
use crate::model::{Model, Preprocess};

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
        })
    }

    /// Loads the model directory `dir` and lowers it to `fixed`.
    pub fn load(dir: &std::path::Path, fixed: FixedPoint) -> SecureResult<Self> {
        Self::from_model(&Model::load(dir)?, fixed)
    }
}

/// How a cheating server misbehaves (resolved: models loaded).
#[derive(Debug, Clone, Default)]
pub enum Cheat {
    /// Follow the protocol.
    #[default]
    Honest,
    /// Serve this (weaker) model's program and preprocessing instead of the
    /// announced one's, under the announced model's name.
    LowQuality(Box<ServedModel>),
    /// In every batch, pick `positions` distinct positions uniformly at random
    /// and add a large offset (`2^(l-3)` at the output scale) to class
    /// `target`'s logit in the server's output share there, forcing those
    /// samples' label to `target`.
    Tamper {
        /// `K`.
        positions: usize,
        /// The forced class.
        target: usize,
    },
    /// Replace the server's output shares by uniformly random ring elements
    /// (the client reconstructs uniformly random outputs).
    Random,
}

/// A cheat mode as given on a command line (before loading models):
/// `honest`, `low-quality[:DIR]`, `tamper:K[:CLASS]` or `random`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CheatMode {
    /// Honest.
    #[default]
    Honest,
    /// Serve a weaker model: the given directory, or the model directory with
    /// `-weak` appended.
    LowQuality(Option<PathBuf>),
    /// Corrupt `positions` random outputs per batch towards class `target` (default 0).
    Tamper {
        /// `K`.
        positions: usize,
        /// The forced class.
        target: usize,
    },
    /// Random outputs.
    Random,
}

impl FromStr for CheatMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (head, rest) = match s.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (s, None),
        };
        match (head.to_ascii_lowercase().as_str(), rest) {
            ("honest" | "none", None) => Ok(CheatMode::Honest),
            ("low-quality", None) => Ok(CheatMode::LowQuality(None)),
            ("low-quality", Some(dir)) if !dir.is_empty() => {
                Ok(CheatMode::LowQuality(Some(PathBuf::from(dir))))
            }
            ("random", None) => Ok(CheatMode::Random),
            ("tamper", Some(r)) => {
                let (k, target) = match r.split_once(':') {
                    Some((k, t)) => (k, Some(t)),
                    None => (r, None),
                };
                let positions: usize = k
                    .parse()
                    .ok()
                    .filter(|&k| k >= 1)
                    .ok_or_else(|| format!("tamper:K needs an integer K >= 1, got `{k}`"))?;
                let target = match target {
                    Some(t) => t
                        .parse()
                        .map_err(|_| format!("tamper:K:CLASS needs a class index, got `{t}`"))?,
                    None => 0,
                };
                Ok(CheatMode::Tamper { positions, target })
            }
            ("tamper", None) => Err("tamper needs a count: tamper:K (e.g. tamper:10)".into()),
            _ => Err(format!(
                "unknown cheat mode `{s}` (honest, low-quality[:DIR], tamper:K[:CLASS], random)"
            )),
        }
    }
}

impl CheatMode {
    /// Resolves the mode for the model in `model_dir` (loading the weak model
    /// for `low-quality`) with the fixed point `fixed`.
    pub fn resolve(&self, model_dir: &std::path::Path, fixed: FixedPoint) -> SecureResult<Cheat> {
        Ok(match self {
            CheatMode::Honest => Cheat::Honest,
            CheatMode::Random => Cheat::Random,
            CheatMode::Tamper { positions, target } => Cheat::Tamper {
                positions: *positions,
                target: *target,
            },
            CheatMode::LowQuality(dir) => {
                let dir = match dir {
                    Some(d) => d.clone(),
                    None => {
                        let base = model_dir.components().as_path();
                        let name = base
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        base.with_file_name(format!("{name}-weak"))
                    }
                };
                if !dir.is_dir() {
                    return Err(SecureError::Config(format!(
                        "low-quality: no weaker model at {} (give one with low-quality:DIR)",
                        dir.display()
                    )));
                }
                Cheat::LowQuality(Box::new(ServedModel::load(&dir, fixed)?))
            }
        })
    }
}

/// The HE parameters with reply packing for `program` on `preset`: the most
/// levels up to [`fusion_he::DEFAULT_PACKING_LEVELS`] that the preset holds
/// for the program's ring and with which every layer encodes (`None`: none).
fn packing_params(
    preset: HePreset,
    opts: &PlanOptions,
    program: &FixedProgram,
) -> Option<(HeParams, u32)> {
    (1..=fusion_he::DEFAULT_PACKING_LEVELS)
        .rev()
        .find_map(|levels| {
            let params = preset.params_with_packing(program.ring(), levels).ok()?;
            server_layers(&params, opts, program, 1).ok()?;
            Some((params, levels))
        })
}

/// What one served session amounted to.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The client's address.
    pub peer: SocketAddr,
    /// Batches served.
    pub batches: u64,
    /// Samples served.
    pub samples: u64,
    /// The server's meter at the end of the session.
    pub report: MeterReport,
}

type Layers = Vec<Option<Arc<ServerLinear>>>;

/// The server of the secure engine for one model.
pub struct SecureServer {
    announced: ServedModel,
    served: ServedModel,
    cheat: Cheat,
    config: ServerConfig,
    preset: HePreset,
    /// Announced HE reply-packing levels (0: off).
    packing: u32,
    params: HeParams,
    opts: PlanOptions,
    schedule: Schedule,
    cache: BatchCache<Layers>,
}

impl std::fmt::Debug for SecureServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureServer")
            .field("model", &self.announced.name)
            .field("preset", &self.preset)
            .field("cheat", &self.cheat_name())
            .finish_non_exhaustive()
    }
}

impl SecureServer {
    /// Prepares serving `model` (see the module docs). Fails if the program
    /// cannot run securely, no HE preset fits its weights, or the cheat mode
    /// does not fit the model.
    pub fn new(model: ServedModel, config: ServerConfig, cheat: Cheat) -> SecureResult<Self> {
        if config.chunk == 0 || config.chunk > MAX_CHUNK {
            return Err(SecureError::Config(format!(
                "chunk {} outside 1..={MAX_CHUNK}",
                config.chunk
            )));
        }
        if config.max_batch == 0 {
            return Err(SecureError::Config("max batch must be positive".into()));
        }
        let served = match &cheat {
            Cheat::LowQuality(weak) => {
                if weak.program.input_shape != model.program.input_shape
                    || weak.classes != model.classes
                {
                    return Err(SecureError::Config(format!(
                        "low-quality: model `{}` does not have the shape of `{}`",
                        weak.name, model.name
                    )));
                }
                ServedModel {
                    name: model.name.clone(),
                    description: model.description.clone(),
                    ..(**weak).clone()
                }
            }
            Cheat::Tamper { target, positions } => {
                if *target >= model.classes || *positions == 0 {
                    return Err(SecureError::Config(format!(
                        "tamper: class {target} of {} / {positions} positions",
                        model.classes
                    )));
                }
                model.clone()
            }
            _ => model.clone(),
        };
        if served.program.output_shape() != [served.classes] {
            return Err(SecureError::Config(format!(
                "model `{}`: output shape {:?} is not [{}]",
                served.name,
                served.program.output_shape(),
                served.classes
            )));
        }
        validate_program(&served.program.public_view())?;
        config.ot.ot_config(config.ot_parallel)?;
        let opts = config.plan.options()?;
        let schedule = Schedule::new(&served.program)?;
        let preset = choose_preset(config.he, &opts, &served.program)?;
        let (params, packing) = if config.reply_packing {
            packing_params(preset, &opts, &served.program)
        } else {
            None
        }
        .map_or_else(|| preset.params(served.program.ring()).map(|p| (p, 0)), Ok)?;
        Ok(SecureServer {
            packing,
            announced: model,
            served,
            cache: BatchCache::new(config.cache_entries),
            cheat,
            config,
            preset,
            params,
            opts,
            schedule,
        })
    }

    /// The chosen HE preset.
    pub fn preset(&self) -> HePreset {
        self.preset
    }

    /// The model announced to clients.
    pub fn model(&self) -> &ServedModel {
        &self.announced
    }

    /// The schedule both parties run.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// A short name of the cheat mode, for logs.
    pub fn cheat_name(&self) -> String {
        match &self.cheat {
            Cheat::Honest => "honest".into(),
            Cheat::LowQuality(m) => format!("low-quality (serving `{}`)", m.name),
            Cheat::Tamper { positions, target } => format!("tamper:{positions}:{target}"),
            Cheat::Random => "random".into(),
        }
    }

    /// The engine parameters for a client that prefers chunks of `chunk`.
    pub fn engine_params(&self, chunk: usize) -> EngineParams {
        EngineParams {
            he_preset: self.preset,
            plan: self.config.plan,
            ot: self.config.ot,
            chunk: chunk.clamp(1, self.config.chunk) as u64,
            max_batch: self.config.max_batch as u64,
            reply_packing: self.packing,
        }
    }

    /// The hello for a client that prefers chunks of `chunk`.
    pub fn hello(&self, chunk: usize) -> ServerHello {
        ServerHello {
            protocol: PROTOCOL.into(),
            version: VERSION,
            model: ModelInfo {
                name: self.announced.name.clone(),
                description: self.announced.description.clone(),
                classes: self.served.classes as u64,
                preprocess: self.served.preprocess.clone(),
            },
            program: self.served.program.public_view(),
            engine: self.engine_params(chunk),
        }
    }

    /// Encodes (or fetches from the cache) the HE layers for chunks of `n`.
    pub async fn precompute(&self, n: usize) -> SecureResult<()> {
        self.layers(n).await.map(|_| ())
    }

    async fn layers(&self, n: usize) -> SecureResult<Arc<Layers>> {
        if let Some(l) = self.cache.get(n) {
            return Ok(l);
        }
        let (params, opts, program) = (self.params.clone(), self.opts, self.served.program.clone());
        let started = std::time::Instant::now();
        let layers = Arc::new(blocking(move || server_layers(&params, &opts, &program, n)).await?);
        debug!(
            batch = n,
            seconds = started.elapsed().as_secs_f64(),
            "encoded HE layers"
        );
        self.cache.insert(n, layers.clone());
        Ok(layers)
    }

    /// Serves one client session to its end (see the module docs). The
    /// session is finished on success and closed on error; the error says
    /// what went wrong (the caller logs it and keeps serving).
    pub async fn serve<G: Rng + CryptoRng + ?Sized>(
        &self,
        mut session: Session,
        rng: &mut G,
    ) -> SecureResult<SessionSummary> {
        let mut rng = ChaCha20Rng::from_rng(rng);
        let peer = session.peer_addr();
        let mut refused = false;
        let result = self.serve_inner(&mut session, &mut rng, &mut refused).await;
        match result {
            Ok((batches, samples)) => {
                let report = session.report();
                if let Err(e) = session.finish().await {
                    debug!(%peer, error = %e, "session end");
                }
                Ok(SessionSummary {
                    peer,
                    batches,
                    samples,
                    report,
                })
            }
            Err(e) => {
                if refused {
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

    async fn serve_inner(
        &self,
        session: &mut Session,
        rng: &mut ChaCha20Rng,
        refused: &mut bool,
    ) -> SecureResult<(u64, u64)> {
        let meter = session.meter().clone();
        let timeout = self.config.step_timeout;
        let setup = meter.phase(PHASE_SETUP);
        let (mut tx, mut rx) = session.channel::<ServerMsg, ClientMsg>().await?;
        let mut he_conn = session.sub_connection();
        let ot_conn = session.sub_connection();
        // Hello.
        let hello = match rx.recv().await? {
            ClientMsg::Hello(h) => h,
            other => {
                return Err(SecureError::Malformed(format!(
                    "expected a hello, got a {}",
                    other.kind()
                )));
            }
        };
        if let Err(e) = check_protocol(&hello.protocol, hello.version) {
            *refused = tx
                .send(&ServerMsg::Refused {
                    reason: e.to_string(),
                })
                .await
                .is_ok();
            return Err(e);
        }
        let chunk = usize::try_from(hello.chunk)
            .ok()
            .filter(|c| (1..=MAX_CHUNK).contains(c))
            .ok_or_else(|| SecureError::Malformed(format!("requested chunk {}", hello.chunk)))?;
        let hello = self.hello(chunk);
        let engine = hello.engine;
        tx.send(&ServerMsg::Hello(Box::new(hello))).await?;
        // HE and OT setup.
        let (he, mut he_ch) = timed(
            timeout,
            || "receiving the client's HE public key".into(),
            fusion_he::server_setup(&mut he_conn, &self.params),
        )
        .await?;
        let ring = self.served.program.ring();
        let mut ot = timed(
            timeout,
            || "setting up OT".into(),
            AnyOt::setup(
                self.config.ot.flavour,
                ot_conn,
                Role::Server,
                ring,
                self.config.ot.ot_config(self.config.ot_parallel)?,
                rng,
            ),
        )
        .await?;
        let mut ot_dirty = true;
        drop(setup);
        debug!(peer = %session.peer_addr(), "session set up");

        let (mut batches, mut samples) = (0u64, 0u64);
        let in_len: usize = self.served.program.input_shape.iter().product();
        let classes = self.served.classes;
        loop {
            let msg = {
                let _p = meter.phase(PHASE_OUTPUT);
                rx.recv().await?
            };
            let req = match msg {
                ClientMsg::Batch(b) => b,
                ClientMsg::Finish => {
                    let end = SessionEnd {
                        batches,
                        samples,
                        report: meter.report(),
                    };
                    let _p = meter.phase(PHASE_OUTPUT);
                    tx.send(&ServerMsg::Goodbye(Box::new(end))).await?;
                    return Ok((batches, samples));
                }
                ClientMsg::Hello(_) => {
                    return Err(SecureError::Malformed("a second hello".into()));
                }
            };
            let n = usize::try_from(req.samples)
                .ok()
                .filter(|&n| n >= 1 && n as u64 <= engine.max_batch)
                .ok_or_else(|| {
                    SecureError::Malformed(format!(
                        "batch of {} samples (1..={} accepted)",
                        req.samples, engine.max_batch
                    ))
                });
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    *refused = tx
                        .send(&ServerMsg::Refused {
                            reason: e.to_string(),
                        })
                        .await
                        .is_ok();
                    return Err(e);
                }
            };
            let tampered = self.tamper_positions(n, rng);
            let mut start = 0usize;
            for (ci, m) in engine.chunks(n).into_iter().enumerate() {
                let layers = match self.layers(m).await {
                    Ok(l) => l,
                    Err(e) => {
                        *refused = tx
                            .send(&ServerMsg::Refused {
                                reason: format!("cannot encode the model for {m} samples: {e}"),
                            })
                            .await
                            .is_ok();
                        return Err(e);
                    }
                };
                let pass = Pass {
                    program: &self.served.program,
                    schedule: &self.schedule,
                    ot: &mut ot,
                    ot_dirty: &mut ot_dirty,
                    he_channel: &mut he_ch,
                    linear: LinearSide::Server {
                        he: &he,
                        layers: &layers,
                    },
                    meter: &meter,
                    timeout,
                    rng: &mut *rng,
                    progress: None,
                    progress_base: 0,
                    progress_total: 0,
                };
                let mut y = pass.run(vec![0u64; m * in_len], m).await?;
                fence_if_dirty(&mut ot, &mut ot_dirty, &meter, timeout).await?;
                self.cheat_on(&mut y, start, m, classes, &tampered, rng);
                let _p = meter.phase(PHASE_OUTPUT);
                tx.send(&ServerMsg::Output(OutputShare {
                    chunk: ci as u64,
                    shares: y,
                }))
                .await?;
                start += m;
            }
            batches += 1;
            samples += n as u64;
            info!(peer = %session.peer_addr(), samples = n, "served a batch");
        }
    }

    /// The positions (sorted) a tampering server corrupts in a batch of `n`.
    fn tamper_positions(&self, n: usize, rng: &mut ChaCha20Rng) -> Vec<usize> {
        let Cheat::Tamper { positions, .. } = self.cheat else {
            return Vec::new();
        };
        let k = positions.min(n);
        // Partial Fisher-Yates with unbiased sampling.
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + fusion_core::mix::uniform_below(rng, (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        let mut chosen = idx[..k].to_vec();
        chosen.sort_unstable();
        chosen
    }

    /// Applies the cheat to the output share `y` of the chunk of `m` samples
    /// starting at batch position `start`.
    fn cheat_on(
        &self,
        y: &mut [u64],
        start: usize,
        m: usize,
        classes: usize,
        tampered: &[usize],
        rng: &mut ChaCha20Rng,
    ) {
        let ring = self.served.program.ring();
        match self.cheat {
            Cheat::Honest | Cheat::LowQuality(_) => {}
            Cheat::Random => y.iter_mut().for_each(|v| *v = ring.random(rng)),
            Cheat::Tamper { target, .. } => {
                let offset = 1u64 << (ring.bits() - 3);
                for &p in tampered.iter().filter(|&&p| p >= start && p < start + m) {
                    let i = (p - start) * classes + target;
                    y[i] = ring.add(y[i], offset);
                }
            }
        }
    }
}
