//! The `delphi` backend: DELPHI-style semi-honest inference (Mishra,
//! Lehmkuhl, Srinivasan, Zheng, Popa, "Delphi: A Cryptographic Inference
//! Service for Neural Networks", USENIX Security 2020), in `Z_{2^l}`.
//!
//! DELPHI splits inference into an input-independent **offline** phase and a
//! cheap **online** phase. Here the offline phase is the engine's
//! `Preprocessing` (run before every pass of a chunk, charged to the
//! `preprocessing` phase); the online phase is the pass itself.
//!
//! | layer | offline (`preprocess`) | online | file |
//! |---|---|---|---|
//! | linear (dense, convolution, channel affine) | client's mask `r`, HE: client gets `W·r + b − s`, server `s` | client sends `x_C − r`; server computes `W·(x_S + x_C − r) + s` in the clear | [`linear`] |
//! | ReLU, ReLU-truncation, truncation, max pool, square | server garbles the step's circuit, sends tables and its mask's labels; client gets its input's labels by IKNP OT (its share if known offline, else a pad) | client sends its padded share (if padded), server its input labels, client evaluates | [`gc`] |
//! | output | — | server sends its output share | this file |
//!
//! Byte formats and bounded decoding are in [`pack`]. Every OT is IKNP
//! (fusion-ot's `OtEngine<Iknp>`, as in the paper); no silent OT.
//!
//! **Share arrangement.** Both parties hold additive shares in `Z_{2^l}` of
//! every value (the engine's seam). A garbled circuit reconstructs its input
//! from both shares and outputs `op(x) − z` to the client, the server keeping
//! its fresh uniform mask `z` as its share (fusion-gc's share gadgets). In the
//! paper the ReLU circuit's output is instead `ReLU(x) − r_{i+1}` for the next
//! layer's offline mask, which saves the online message of the next linear
//! layer; with the engine's local steps between layers this backend keeps the
//! simpler, uniform arrangement and pays one masked-input message per linear
//! layer (`⌈len·l/8⌉` bytes).
//!
//! **Deviations from the paper** (a later issue may add the field):
//!
//! * shares in `Z_{2^l}` (`Domain::Ring`) and fusion-he's coefficient
//!   encoding (Cheetah-style) for the offline `W·r`, where DELPHI uses a
//!   prime field `Z_p` and SEAL's SIMD batching with rotations. Correctness
//!   and what each party learns are the same; costs differ;
//! * where a non-linear step reads a linear layer's output, the client's
//!   share is its offline HE share and is the OT's input offline, as in the
//!   paper (no online message from the client). Where it reads a local
//!   step's output (a residual sum, say), the client's share is known only
//!   online: it is transferred offline by OT on a random pad `ρ` and
//!   revealed online as `x_C ⊕ ρ` (see [`gc`]);
//! * truncations (fixed-point rescaling) run inside the garbled circuits,
//!   exactly (floor), fused with the ReLU where the schedule fuses them;
//!   max pool and square also run as garbled circuits.
//!
//! **What each party learns.** The server: RLWE ciphertexts under the
//! client's key, one-time-padded client shares (`x_C − r`, `x_C ⊕ ρ`) and
//! nothing from the OTs, in which it is the sender. The client: flooded,
//! re-randomised HE replies decrypting to its uniformly masked shares,
//! garbled circuits under fresh offsets with one label per wire, uniformly
//! masked circuit outputs, and the program's output (revealed by the output
//! stage). Semi-honest security, as in the paper.

pub mod estimate;
pub mod gc;
pub mod linear;
pub mod pack;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use fusion_gc::{Evaluator, Garbler};
use fusion_he::{HeClient, HeParams, HeServer, PlanOptions, Preset};
use fusion_net::Channel;
use fusion_nn::fixed::{FixedOp, FixedProgram, PublicProgram, Step, ValueId};
use fusion_ot::{Iknp, OtConfig, OtEngine, Role};
use rand::rngs::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use self::gc::{ClientGc, ServerGc};
use self::linear::{ClientMask, ServerMask};
use crate::backend::{
    Backend, LinearCall, LinearLayers, NonLinearLayers, OutputStage, PartySession, PassPlan,
    PreparedBackend, Preprocessing, ProtocolFuture, SetupLink, check_announcement,
};
use crate::backends::cheetah::config::{HeChoice, he_params};
use crate::backends::cheetah::he::{
    BatchCache, ServerStep, StepPlan, blocking, choose_preset, plans, server_layers,
};
use crate::backends::cheetah::he_driver;
use crate::domain::Domain;
use crate::error::{SecureError, SecureResult};
use crate::schedule::{ActionKind, NonLinearOp, Schedule};
use crate::statsec::{RevealBudget, SessionFlooding, StatSecTarget};

/// The backend's name.
pub const NAME: &str = "delphi";
/// The backend's one-line summary.
pub const SUMMARY: &str = "DELPHI (USENIX Sec '20): offline HE masks and garbled circuits, \
                           online masked linear layers and GC evaluation, IKNP OT, shares in Z_2^l";
/// The protocol version in the announcement.
pub const PROTOCOL_VERSION: u32 = 1;

/// The parameters the server announces and both parties use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelphiParams {
    /// The backend's protocol version ([`PROTOCOL_VERSION`]).
    pub version: u32,
    /// RLWE preset of the offline linear layers.
    pub he_preset: Preset,
    /// HE planner options (both parties plan with them).
    pub plan: PlanOptions,
    /// IKNP OT parameters (checked again by the OT engine's handshake;
    /// `parallel_ot` is local and not sent).
    pub ot: OtConfig,
    /// The offline HE flooding's statistical security: bits per revealed
    /// coefficient and the session's cap ([`crate::statsec`]).
    pub flooding: SessionFlooding,
}

impl DelphiParams {
    /// Checks every field (the client calls this on the announcement).
    pub fn validate(&self) -> SecureResult<()> {
        if self.version != PROTOCOL_VERSION {
            return Err(SecureError::Mismatch(format!(
                "delphi protocol version {} (we run {PROTOCOL_VERSION})",
                self.version
            )));
        }
        self.plan
            .validate()
            .map_err(|e| SecureError::Mismatch(format!("HE planner options: {e}")))?;
        self.ot
            .validate()
            .map_err(|e| SecureError::Mismatch(format!("OT parameters: {e}")))?;
        self.flooding
            .validate()
            .map_err(|e| SecureError::Mismatch(format!("statistical security: {e}")))?;
        Ok(())
    }
}

/// The `delphi` backend's settings (the server's are announced; the client
/// uses only `ot.parallel_ot`).
#[derive(Debug, Clone, PartialEq)]
pub struct DelphiConfig {
    /// HE preset choice (server).
    pub he: HeChoice,
    /// HE planner options (server, announced).
    pub plan: PlanOptions,
    /// IKNP OT parameters (server, announced).
    pub ot: OtConfig,
    /// How many batch sizes keep their encoded HE layers cached (server).
    pub cache_entries: usize,
    /// The offline HE flooding's statistical security (server, announced;
    /// [`crate::statsec`]).
    pub stat_sec: StatSecTarget,
}

impl Default for DelphiConfig {
    fn default() -> Self {
        DelphiConfig {
            he: HeChoice::Auto,
            plan: PlanOptions::default(),
            ot: OtConfig::default(),
            cache_entries: 4,
            stat_sec: StatSecTarget::default(),
        }
    }
}

/// The `delphi` backend with its configuration.
#[derive(Debug, Clone, Default)]
pub struct Delphi {
    config: DelphiConfig,
}

impl Delphi {
    /// The backend with `config`.
    pub fn new(config: DelphiConfig) -> Self {
        Delphi { config }
    }

    /// The configuration.
    pub fn config(&self) -> &DelphiConfig {
        &self.config
    }
}

/// Linear steps without their bias (the server's online product; the bias
/// is in the offline HE share). `None` for other steps.
fn bias_free(program: &FixedProgram) -> Vec<Option<Arc<Step>>> {
    program
        .steps
        .iter()
        .map(|s| {
            let mut s = s.clone();
            match &mut s.op {
                FixedOp::Dense(d) => d.bias.iter_mut().for_each(|b| *b = 0),
                FixedOp::Conv2d(c) => c.bias.iter_mut().for_each(|b| *b = 0),
                FixedOp::ChannelAffine(a) => a.shift.iter_mut().for_each(|b| *b = 0),
                _ => return None,
            }
            Some(Arc::new(s))
        })
        .collect()
}

impl Backend for Delphi {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        SUMMARY
    }

    fn serve(&self, program: &FixedProgram) -> SecureResult<(Arc<dyn PreparedBackend>, String)> {
        let c = &self.config;
        c.ot.validate()
            .map_err(|e| SecureError::Config(format!("OT parameters: {e}")))?;
        c.plan
            .validate()
            .map_err(|e| SecureError::Config(format!("HE planner options: {e}")))?;
        // Every non-linear op of the schedule has a circuit (gc::build); the
        // schedule itself must exist.
        Schedule::new(&program.public())?;
        let flooding = c.stat_sec.flooding()?;
        let lambda = flooding.per_coefficient_bits;
        let preset = choose_preset(c.he, &c.plan, program, lambda)?;
        let params = he_params(preset, program.ring(), 0, lambda, 0)?;
        let announced = DelphiParams {
            version: PROTOCOL_VERSION,
            he_preset: preset,
            plan: c.plan,
            ot: c.ot,
            flooding,
        };
        let text = serde_json::to_string(&announced)
            .map_err(|e| SecureError::Config(format!("announcement: {e}")))?;
        let prepared = Prepared {
            public: Arc::new(program.public()),
            announced,
            params,
            opts: c.plan,
            ot_parallel: c.ot.parallel_ot,
            side: Side::Server {
                program: Arc::new(program.clone()),
                bias_free: Arc::new(bias_free(program)),
                layers: Arc::new(BatchCache::new(c.cache_entries)),
            },
        };
        Ok((Arc::new(prepared), text))
    }

    fn join(
        &self,
        program: &PublicProgram,
        announcement: &str,
    ) -> SecureResult<Arc<dyn PreparedBackend>> {
        check_announcement(announcement)?;
        let announced: DelphiParams = serde_json::from_str(announcement)
            .map_err(|e| SecureError::Malformed(format!("delphi parameters: {e}")))?;
        announced.validate()?;
        let params = he_params(
            announced.he_preset,
            program.ring(),
            0,
            announced.flooding.per_coefficient_bits,
            0,
        )?;
        // A program the HE layer cannot plan is refused before any key
        // material is made.
        plans(&params, &announced.plan, program, 1)?;
        Schedule::new(program)?;
        Ok(Arc::new(Prepared {
            public: Arc::new(program.clone()),
            announced,
            params,
            opts: announced.plan,
            ot_parallel: self.config.ot.parallel_ot,
            side: Side::Client {
                plans: Arc::new(BatchCache::new(4)),
            },
        }))
    }
}

type Layers = Vec<Option<Arc<ServerStep>>>;
type Plans = Vec<Option<Arc<StepPlan>>>;

/// What differs between the parties' prepared backends.
enum Side {
    Server {
        program: Arc<FixedProgram>,
        bias_free: Arc<Vec<Option<Arc<Step>>>>,
        layers: Arc<BatchCache<Layers>>,
    },
    Client {
        plans: Arc<BatchCache<Plans>>,
    },
}

/// The backend prepared for one program, on one party.
struct Prepared {
    public: Arc<PublicProgram>,
    announced: DelphiParams,
    params: HeParams,
    opts: PlanOptions,
    ot_parallel: bool,
    side: Side,
}

async fn encoded_layers(
    cache: &BatchCache<Layers>,
    params: &HeParams,
    opts: PlanOptions,
    program: &Arc<FixedProgram>,
    n: usize,
) -> SecureResult<Arc<Layers>> {
    if let Some(l) = cache.get(n) {
        return Ok(l);
    }
    let (params, program) = (params.clone(), program.clone());
    let built = Arc::new(blocking(move || server_layers(&params, &opts, &program, n)).await?);
    cache.insert(n, built.clone());
    Ok(built)
}

impl PreparedBackend for Prepared {
    fn domain(&self) -> Domain {
        Domain::Ring(self.public.ring())
    }

    fn describe(&self) -> String {
        format!(
            "delphi (offline HE {}, garbled circuits, IKNP OT, flooding {})",
            self.announced.he_preset,
            crate::statsec::describe(&self.announced.flooding)
        )
    }

    fn stat_security(&self) -> Option<SessionFlooding> {
        Some(self.announced.flooding)
    }

    fn estimate(&self, n: usize) -> SecureResult<crate::estimate::CostEstimate> {
        estimate::estimate(&self.public, &self.params, &self.opts, n)
    }

    fn precompute<'a>(&'a self, n: usize) -> ProtocolFuture<'a, ()> {
        Box::pin(async move {
            let Side::Server {
                program, layers, ..
            } = &self.side
            else {
                return Ok(());
            };
            encoded_layers(layers, &self.params, self.opts, program, n)
                .await
                .map(|_| ())
        })
    }

    fn open<'a>(&'a self, link: SetupLink<'a>) -> ProtocolFuture<'a, Box<dyn PartySession>> {
        Box::pin(async move {
            let SetupLink {
                session, mut rng, ..
            } = link;
            let ot_conn = session.sub_connection();
            let meter = session.meter().clone();
            let mut he_ch = session.protocol_channel().await?;
            let gc_ch = session.protocol_channel().await?;
            let (he, role, server) = match &self.side {
                Side::Client { plans } => (
                    HeSide::Client {
                        he: he_driver::client_setup(&mut he_ch, &self.params, &mut rng).await?,
                        plans: plans.clone(),
                    },
                    Role::Client,
                    None,
                ),
                Side::Server {
                    program,
                    bias_free,
                    layers,
                } => (
                    HeSide::Server {
                        he: he_driver::server_setup(&mut he_ch, &self.params).await?,
                    },
                    Role::Server,
                    Some(ServerModel {
                        program: program.clone(),
                        bias_free: bias_free.clone(),
                        layers: layers.clone(),
                    }),
                ),
            };
            let config = OtConfig {
                parallel_ot: self.ot_parallel,
                ..self.announced.ot
            };
            let ot = OtEngine::<Iknp>::setup_on(
                ot_conn,
                Some(&meter),
                role,
                self.public.ring(),
                config,
                &mut rng,
            )
            .await?;
            let party: Box<dyn PartySession> = Box::new(Party {
                public: self.public.clone(),
                params: self.params.clone(),
                opts: self.opts,
                server,
                he,
                he_ch,
                gc_ch,
                ot: Box::new(ot),
                rng,
                garbler: Some(Garbler::new()),
                evaluator: Some(Evaluator::new()),
                next_circuit: 0,
                queue: VecDeque::new(),
                stats: Stats::default(),
                budget: RevealBudget::new(&self.announced.flooding),
            });
            Ok(party)
        })
    }
}

/// The server's model in a session.
struct ServerModel {
    program: Arc<FixedProgram>,
    bias_free: Arc<Vec<Option<Arc<Step>>>>,
    layers: Arc<BatchCache<Layers>>,
}

/// This party's HE state.
enum HeSide {
    Client {
        he: Arc<HeClient>,
        plans: Arc<BatchCache<Plans>>,
    },
    Server {
        he: Arc<HeServer>,
    },
}

/// One preprocessed step, consumed by the pass in schedule order.
enum Pre {
    ClientLinear(ClientMask),
    ServerLinear(ServerMask),
    ClientGc(Box<ClientGc>),
    ServerGc(Box<ServerGc>),
}

/// Counters for [`PartySession::stats`].
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    circuits: u64,
    and_gates: u64,
    table_bytes: u64,
    linear_masks: u64,
}

/// One party's delphi session.
struct Party {
    public: Arc<PublicProgram>,
    params: HeParams,
    opts: PlanOptions,
    server: Option<ServerModel>,
    he: HeSide,
    /// The HE channel: offline HE, online masked inputs, output shares.
    he_ch: Channel,
    /// The garbled-circuit channel.
    gc_ch: Channel,
    ot: Box<OtEngine<Iknp>>,
    rng: ChaCha20Rng,
    garbler: Option<Garbler>,
    evaluator: Option<Evaluator>,
    /// The client's count of circuits received (the garbler's id counter).
    next_circuit: u64,
    queue: VecDeque<Pre>,
    stats: Stats,
    /// Flooded coefficients of the offline HE replies revealed in this
    /// session, against the announced cap (both parties count the same).
    budget: RevealBudget,
}

impl Party {
    async fn client_plans(&self, n: usize) -> SecureResult<Arc<Plans>> {
        let HeSide::Client { plans: cache, .. } = &self.he else {
            return Err(SecureError::Config("the server has no client plans".into()));
        };
        if let Some(p) = cache.get(n) {
            return Ok(p);
        }
        let (params, opts, program) = (self.params.clone(), self.opts, self.public.clone());
        let built = Arc::new(blocking(move || plans(&params, &opts, &program, n)).await?);
        cache.insert(n, built.clone());
        Ok(built)
    }

    /// The offline phase of one pass (module docs): every linear and
    /// non-linear action of the schedule, in order.
    async fn offline(&mut self, plan: PassPlan<'_>) -> SecureResult<()> {
        if !self.queue.is_empty() {
            return Err(SecureError::Config(format!(
                "{} preprocessed steps of the previous pass were not consumed",
                self.queue.len()
            )));
        }
        let ring = self.public.ring();
        let n = plan.n;
        // Outputs of linear actions: the client's share of them is its
        // offline HE share (the client keeps it; the server only the fact).
        let mut known: HashMap<ValueId, Option<Vec<u64>>> = HashMap::new();
        for action in &plan.schedule.actions {
            match &action.kind {
                ActionKind::Local => {}
                ActionKind::Linear => {
                    let missing =
                        || SecureError::Config(format!("no HE layer for step {}", action.step));
                    let pre = match &self.he {
                        HeSide::Client { he, .. } => {
                            let he = he.clone();
                            let plans = self.client_plans(n).await?;
                            let p = plans
                                .get(action.step)
                                .cloned()
                                .flatten()
                                .ok_or_else(missing)?;
                            self.budget.charge(p.revealed_coefficients() as u64)?;
                            Pre::ClientLinear(
                                linear::client_offline(
                                    &mut self.he_ch,
                                    &he,
                                    &p,
                                    action.step,
                                    ring,
                                    &mut self.rng,
                                )
                                .await?,
                            )
                        }
                        HeSide::Server { he } => {
                            let he = he.clone();
                            let model = self.server.as_ref().ok_or_else(missing)?;
                            let layers = encoded_layers(
                                &model.layers,
                                &self.params,
                                self.opts,
                                &model.program,
                                n,
                            )
                            .await?;
                            let layer = layers
                                .get(action.step)
                                .cloned()
                                .flatten()
                                .ok_or_else(missing)?;
                            self.budget.charge(layer.revealed_coefficients() as u64)?;
                            Pre::ServerLinear(
                                linear::server_offline(
                                    &mut self.he_ch,
                                    &he,
                                    &layer,
                                    action.step,
                                    &mut self.rng,
                                )
                                .await?,
                            )
                        }
                    };
                    self.stats.linear_masks += 1;
                    let share = match &pre {
                        Pre::ClientLinear(m) => Some(m.share.clone()),
                        _ => None,
                    };
                    known.insert(action.output, share);
                    self.queue.push_back(pre);
                }
                ActionKind::NonLinear(op) => {
                    let v = action.inputs.first().copied().ok_or_else(|| {
                        SecureError::Config(format!("step {} has no input", action.step))
                    })?;
                    let elems = n * plan.program.value_shape(v).iter().product::<usize>();
                    let op2 = op.clone();
                    let step = action.step;
                    // The client's share, if known now, as it will feed it
                    // online (a deviating client's choice of GC inputs).
                    let input = known.get(&v).cloned().map(|share| {
                        share.map(|s| plan.as_fed_online(step, s, &Domain::Ring(ring)))
                    });
                    let padded = input.is_none();
                    let oc =
                        blocking(move || gc::build(&op2, ring, n, elems, step, padded)).await?;
                    self.stats.circuits += 1;
                    self.stats.and_gates += oc.circuit.and_count() as u64;
                    let pre = if self.server.is_some() {
                        let (s, bytes) = gc::server_offline(
                            &mut self.gc_ch,
                            &mut self.ot,
                            &mut self.garbler,
                            oc,
                            ring,
                            &mut self.rng,
                        )
                        .await?;
                        self.stats.table_bytes += bytes;
                        Pre::ServerGc(Box::new(s))
                    } else {
                        let id = self.next_circuit;
                        self.next_circuit += 1;
                        Pre::ClientGc(Box::new(
                            gc::client_offline(
                                &mut self.gc_ch,
                                &mut self.ot,
                                id,
                                oc,
                                input.flatten(),
                                ring,
                                &mut self.rng,
                            )
                            .await?,
                        ))
                    };
                    self.queue.push_back(pre);
                }
            }
        }
        Ok(())
    }

    async fn online_linear(&mut self, call: LinearCall, x: Vec<u64>) -> SecureResult<Vec<u64>> {
        let ring = self.public.ring();
        let unprepared = || {
            SecureError::Config(format!(
                "linear step {} was not preprocessed in this order",
                call.step
            ))
        };
        match self.queue.pop_front() {
            Some(Pre::ClientLinear(m)) if m.step == call.step => {
                linear::client_online(&mut self.he_ch, m, &x, ring).await
            }
            Some(Pre::ServerLinear(m)) if m.step == call.step => {
                let model = self.server.as_ref().ok_or_else(unprepared)?;
                let step = model
                    .bias_free
                    .get(call.step)
                    .cloned()
                    .flatten()
                    .ok_or_else(unprepared)?;
                let s = self.public.steps.get(call.step).ok_or_else(unprepared)?;
                let v = s.inputs.first().copied().ok_or_else(unprepared)?;
                let in_shape = self.public.value_shape(v).to_vec();
                let share = (!call.input_is_zero).then_some(x);
                linear::server_online(&mut self.he_ch, m, step, &in_shape, call.n, share, ring)
                    .await
            }
            _ => Err(unprepared()),
        }
    }

    async fn online_nonlinear(&mut self, op: &NonLinearOp, x: Vec<u64>) -> SecureResult<Vec<u64>> {
        let ring = self.public.ring();
        let unprepared = || {
            SecureError::Config(format!(
                "non-linear step `{}` was not preprocessed in this order",
                op.tag()
            ))
        };
        match self.queue.pop_front() {
            Some(Pre::ClientGc(g)) if g.tag() == op.tag() => {
                gc::client_online(&mut self.gc_ch, &mut self.evaluator, *g, &x, ring).await
            }
            Some(Pre::ServerGc(g)) if g.tag() == op.tag() => {
                gc::server_online(&mut self.gc_ch, *g, &x, ring).await
            }
            _ => Err(unprepared()),
        }
    }
}

impl LinearLayers for Party {
    fn linear(&mut self, call: LinearCall, x: Vec<u64>) -> ProtocolFuture<'_, Vec<u64>> {
        Box::pin(self.online_linear(call, x))
    }
}

impl NonLinearLayers for Party {
    fn nonlinear<'a>(
        &'a mut self,
        op: &'a NonLinearOp,
        x: Vec<u64>,
        _n: usize,
    ) -> ProtocolFuture<'a, Vec<u64>> {
        Box::pin(self.online_nonlinear(op, x))
    }
}

impl Preprocessing for Party {
    fn preprocess<'a>(&'a mut self, plan: PassPlan<'a>) -> ProtocolFuture<'a, ()> {
        Box::pin(self.offline(plan))
    }
}

impl OutputStage for Party {
    fn reveal(&mut self, y: Vec<u64>, n: usize) -> ProtocolFuture<'_, Option<Vec<u64>>> {
        Box::pin(async move {
            let ring = self.public.ring();
            if self.server.is_some() {
                self.he_ch.send_frame(&pack::pack(&y, ring.bits())).await?;
                return Ok(None);
            }
            let what = format!("output share for {n} samples");
            let theirs = pack::recv_values(&mut self.he_ch, y.len(), ring, &what).await?;
            Ok(Some(
                y.iter()
                    .zip(&theirs)
                    .map(|(&a, &b)| ring.reconstruct(a, b))
                    .collect(),
            ))
        })
    }
}

impl PartySession for Party {
    fn stats(&self) -> serde_json::Value {
        let s = self.ot.stats();
        serde_json::json!({
            "ot_flavour": self.ot.flavour(),
            "rots_as_sender": s.rots_as_sender,
            "rots_as_receiver": s.rots_as_receiver,
            "ot_refills": s.refills,
            "garbled_circuits": self.stats.circuits,
            "and_gates": self.stats.and_gates,
            "table_bytes": self.stats.table_bytes,
            "linear_masks": self.stats.linear_masks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_nn::eval::default_fixed_point;
    use fusion_nn::fixed::lower;

    /// The shipped bc-mlp (trained: non-zero biases).
    fn program() -> FixedProgram {
        let dir = fusion_nn::data::data_dir().expect("data dir");
        let m = fusion_nn::model::Model::load(&dir.join("models").join("bc-mlp")).expect("model");
        lower(&m, default_fixed_point()).expect("lower")
    }

    #[test]
    fn the_announcement_round_trips_and_bad_ones_are_refused() {
        let p = program();
        let (_, text) = Delphi::default().serve(&p).expect("serve");
        let public = p.public();
        assert!(Delphi::default().join(&public, &text).is_ok());
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["version"] = serde_json::json!(PROTOCOL_VERSION + 1);
        assert!(matches!(
            Delphi::default().join(&public, &v.to_string()),
            Err(SecureError::Mismatch(_))
        ));
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["ot"]["block_bits"] = serde_json::json!(99);
        assert!(matches!(
            Delphi::default().join(&public, &v.to_string()),
            Err(SecureError::Mismatch(_))
        ));
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["extra"] = serde_json::json!(1);
        assert!(matches!(
            Delphi::default().join(&public, &v.to_string()),
            Err(SecureError::Malformed(_))
        ));
        assert!(matches!(
            Delphi::default().join(&public, "not json"),
            Err(SecureError::Malformed(_))
        ));
    }

    #[test]
    fn bias_free_steps_drop_only_the_bias() {
        let p = program();
        let free = bias_free(&p);
        let ring = p.ring();
        for (s, f) in p.steps.iter().zip(&free) {
            let Some(f) = f else {
                assert_ne!(s.op.class(), fusion_nn::fixed::OpClass::Linear);
                continue;
            };
            let len: usize = p.value_shape(s.inputs[0]).iter().product();
            let mut shape = vec![2];
            shape.extend_from_slice(p.value_shape(s.inputs[0]));
            let x: Vec<u64> = (0..2 * len as u64).map(|i| ring.reduce(i * 977)).collect();
            let t = fusion_nn::tensor::Tensor::new(shape.clone(), x).expect("tensor");
            let zero = fusion_nn::tensor::Tensor::new(shape, vec![0; 2 * len]).expect("tensor");
            let full = s.apply(ring, &[&t]).expect("apply");
            let bias = s.apply(ring, &[&zero]).expect("apply");
            let lin = f.apply(ring, &[&t]).expect("apply");
            for ((&a, &b), &c) in full.data().iter().zip(bias.data()).zip(lin.data()) {
                assert_eq!(ring.sub(a, b), c);
            }
            assert!(
                bias.data().iter().any(|&b| b != 0),
                "a zero bias tests nothing"
            );
        }
    }
}
