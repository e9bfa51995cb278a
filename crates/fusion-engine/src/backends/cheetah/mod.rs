//! The `cheetah` backend: Cheetah-style semi-honest inference (Huang, Lu,
//! Hong, Ding; USENIX Security 2022) in `Z_{2^l}`.
//!
//! * **Linear layers** ([`he`]): RLWE with polynomial-coefficient encoding
//!   (fusion-he): the client encrypts its share under its own key, the server
//!   adds its share, multiplies by its encoded weights, re-randomises,
//!   noise-floods, mod-switches and masks the result with its output share,
//!   and replies; the client decrypts its share. No rotations (optionally
//!   reply packing with Galois keys, see [`config`]).
//! * **Non-linear layers** ([`ot`]): fusion-ot's protocols (millionaires with
//!   `m`-bit blocks, DReLU, ReLU, truncations, max pool, square) over silent
//!   OT (CryProt's VOLE/LPN-style generation) or IKNP.
//! * **Preprocessing**: before every pass both parties generate the ROTs the
//!   pass consumes in one refill (silent OT's communication grows
//!   sublinearly with the count, so one large refill sends fewer bytes than
//!   several small ones). Input-independent, so it is reported as its own
//!   phase.
//! * **Output stage**: the server sends its output share; the client adds
//!   its own (reveals the logits).
//!
//! **What each party learns**: the server sees RLWE ciphertexts under the
//! client's key (IND-CPA under decision-RLWE) and uniformly random OT
//! messages and shares; the client sees the public program, flooded and
//! re-randomised replies that reveal only its output share, and the outputs.

pub mod config;
pub mod estimate;
pub mod he;
pub mod he_driver;
pub mod ot;

use std::sync::Arc;

use fusion_he::{HeClient, HeParams, HeServer, PlanOptions};
use fusion_net::Channel;
use fusion_nn::fixed::{FixedProgram, PublicProgram};
use fusion_ot::Role;
use rand::rngs::ChaCha20Rng;

use fusion_he::Preset;
use fusion_ot::OtConfig;

use self::config::{CheetahConfig, CheetahParams, he_params};
use self::he::{
    BatchCache, ServerStep, StepPlan, blocking, choose_preset, choose_query_rounding, plans,
    server_layers,
};
use self::ot::AnyOt;
use crate::backend::{
    Backend, LinearCall, LinearLayers, NonLinearLayers, OutputStage, PartySession, PassPlan,
    PreparedBackend, Preprocessing, ProtocolFuture, SetupLink, check_announcement,
};
use crate::domain::Domain;
use crate::error::{SecureError, SecureResult};
use crate::schedule::{ActionKind, NonLinearOp};
use crate::statsec::{RevealBudget, SessionFlooding};

/// The backend's name.
pub const NAME: &str = "cheetah";
/// The backend's one-line summary.
pub const SUMMARY: &str = "Cheetah (USENIX Sec '22): RLWE coefficient-encoded linear layers, \
                           silent-OT (or IKNP) non-linear layers, shares in Z_2^l";

/// The `cheetah` backend with its configuration.
#[derive(Debug, Clone, Default)]
pub struct Cheetah {
    config: CheetahConfig,
}

impl Cheetah {
    /// The backend with `config`.
    pub fn new(config: CheetahConfig) -> Self {
        Cheetah { config }
    }

    /// The configuration.
    pub fn config(&self) -> &CheetahConfig {
        &self.config
    }
}

/// The HE parameters with reply packing for `program` on `preset`: the most
/// levels up to [`fusion_he::DEFAULT_PACKING_LEVELS`] that the preset holds
/// for the program's ring and with which every layer encodes (`None`: none).
fn packing_params(
    preset: Preset,
    opts: &PlanOptions,
    program: &FixedProgram,
    stat_sec_bits: u32,
) -> Option<(HeParams, u32)> {
    (1..=fusion_he::DEFAULT_PACKING_LEVELS)
        .rev()
        .find_map(|levels| {
            let params = he_params(preset, program.ring(), levels, stat_sec_bits, 0).ok()?;
            server_layers(&params, opts, program, 1).ok()?;
            Some((params, levels))
        })
}

impl Backend for Cheetah {
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
        let opts = c.plan;
        let flooding = c.stat_sec.flooding()?;
        let lambda = flooding.per_coefficient_bits;
        let preset = choose_preset(c.he, &opts, program, lambda)?;
        let (params, packing) = if c.reply_packing {
            packing_params(preset, &opts, program, lambda)
        } else {
            None
        }
        .map_or_else(
            || he_params(preset, program.ring(), 0, lambda, 0).map(|p| (p, 0)),
            Ok,
        )?;
        let query_rounding =
            choose_query_rounding(c.query_rounding, preset, &opts, program, packing, lambda)?;
        let params = if query_rounding > 0 {
            he_params(preset, program.ring(), packing, lambda, query_rounding)?
        } else {
            params
        };
        let announced = CheetahParams {
            he_preset: preset,
            plan: c.plan,
            ot_flavour: c.ot_flavour,
            ot: c.ot,
            reply_packing: packing,
            flooding,
            query_rounding,
        };
        let text = serde_json::to_string(&announced)
            .map_err(|e| SecureError::Config(format!("announcement: {e}")))?;
        let prepared = Prepared {
            public: Arc::new(program.public()),
            announced,
            params,
            opts,
            ot_parallel: c.ot.parallel_ot,
            side: Side::Server {
                program: Arc::new(program.clone()),
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
        let announced: CheetahParams = serde_json::from_str(announcement)
            .map_err(|e| SecureError::Malformed(format!("cheetah parameters: {e}")))?;
        announced.validate()?;
        if let Some(want) = self.config.require_ot
            && want != announced.ot_flavour
        {
            return Err(SecureError::Mismatch(format!(
                "the server runs {} OT, we require {want}",
                announced.ot_flavour
            )));
        }
        let params = announced.he_params(program.ring())?;
        let opts = announced.plan;
        // A program the HE layer cannot plan is refused before any key
        // material is made.
        plans(&params, &opts, program, 1)?;
        Ok(Arc::new(Prepared {
            public: Arc::new(program.clone()),
            announced,
            params,
            opts,
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
    /// The server: its program with the coefficients, and its encoded layers
    /// per chunk size.
    Server {
        program: Arc<FixedProgram>,
        layers: Arc<BatchCache<Layers>>,
    },
    /// The client: its public plans per chunk size.
    Client { plans: Arc<BatchCache<Plans>> },
}

/// The backend prepared for one program, on one party.
struct Prepared {
    /// The program's public view.
    public: Arc<PublicProgram>,
    announced: CheetahParams,
    params: HeParams,
    opts: PlanOptions,
    ot_parallel: bool,
    side: Side,
}

/// The server's encoded layers for chunks of `n` (from the cache, or encoded
/// on tokio's blocking pool and cached).
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
    let started = std::time::Instant::now();
    let built = Arc::new(blocking(move || server_layers(&params, &opts, &program, n)).await?);
    tracing::debug!(
        batch = n,
        seconds = started.elapsed().as_secs_f64(),
        "encoded HE layers"
    );
    cache.insert(n, built.clone());
    Ok(built)
}

impl PreparedBackend for Prepared {
    fn domain(&self) -> Domain {
        Domain::Ring(self.public.ring())
    }

    fn describe(&self) -> String {
        format!(
            "cheetah (HE {}, reply packing {}, OT {} with m = {}, flooding {})",
            self.announced.he_preset,
            self.announced.reply_packing,
            self.announced.ot_flavour,
            self.announced.ot.block_bits,
            crate::statsec::describe(&self.announced.flooding)
        )
    }

    fn stat_security(&self) -> Option<SessionFlooding> {
        Some(self.announced.flooding)
    }

    fn estimate(&self, n: usize) -> SecureResult<crate::estimate::CostEstimate> {
        estimate::estimate(
            &self.public,
            &self.params,
            &self.opts,
            self.announced.ot_flavour,
            self.announced.ot.block_bits,
            n,
        )
    }

    fn precompute<'a>(&'a self, n: usize) -> ProtocolFuture<'a, ()> {
        Box::pin(async move {
            let Side::Server { program, layers } = &self.side else {
                return Ok(());
            };
            encoded_layers(layers, &self.params, self.opts, program, n)
                .await
                .map(|_| ())
        })
    }

    fn open<'a>(&'a self, link: SetupLink<'a>) -> ProtocolFuture<'a, Box<dyn PartySession>> {
        Box::pin(async move {
            // The driver bounds the whole setup by the step timeout.
            let SetupLink {
                session, mut rng, ..
            } = link;
            let ot_conn = session.sub_connection();
            let meter = session.meter().clone();
            let mut channel = session.protocol_channel().await?;
            let he = match &self.side {
                Side::Client { plans } => HeSide::Client {
                    he: he_driver::client_setup(&mut channel, &self.params, &mut rng).await?,
                    plans: plans.clone(),
                },
                Side::Server { .. } => HeSide::Server {
                    he: he_driver::server_setup(&mut channel, &self.params).await?,
                },
            };
            let role = match self.side {
                Side::Client { .. } => Role::Client,
                Side::Server { .. } => Role::Server,
            };
            let ot = AnyOt::setup(
                self.announced.ot_flavour,
                ot_conn,
                &meter,
                role,
                self.public.ring(),
                OtConfig {
                    parallel_ot: self.ot_parallel,
                    ..self.announced.ot
                },
                &mut rng,
            )
            .await?;
            let party: Box<dyn PartySession> = Box::new(Party {
                prepared: PreparedRef {
                    public: self.public.clone(),
                    params: self.params.clone(),
                    opts: self.opts,
                    server: match &self.side {
                        Side::Server { program, layers } => Some((program.clone(), layers.clone())),
                        Side::Client { .. } => None,
                    },
                },
                he,
                channel,
                ot,
                rng,
                budget: RevealBudget::new(&self.announced.flooding),
            });
            Ok(party)
        })
    }
}

/// What a session needs of the prepared backend.
struct PreparedRef {
    public: Arc<PublicProgram>,
    params: HeParams,
    opts: PlanOptions,
    /// The server's program and layer cache (shared across sessions).
    server: Option<(Arc<FixedProgram>, Arc<BatchCache<Layers>>)>,
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

/// One party's cheetah session.
struct Party {
    prepared: PreparedRef,
    he: HeSide,
    /// The protocol channel of the HE layers and the output stage.
    channel: Channel,
    ot: AnyOt,
    rng: ChaCha20Rng,
    /// The flooded coefficients this session revealed (the client's replies),
    /// against the announced cap; both parties count the same.
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
        let p = &self.prepared;
        let (params, opts, program) = (p.params.clone(), p.opts, p.public.clone());
        let built = Arc::new(blocking(move || plans(&params, &opts, &program, n)).await?);
        cache.insert(n, built.clone());
        Ok(built)
    }

    async fn server_layers(&self, n: usize) -> SecureResult<Arc<Layers>> {
        let p = &self.prepared;
        let Some((program, cache)) = &p.server else {
            return Err(SecureError::Config(
                "the client has no server layers".into(),
            ));
        };
        encoded_layers(cache, &p.params, p.opts, program, n).await
    }

    async fn run_linear(&mut self, call: LinearCall, x: Vec<u64>) -> SecureResult<Vec<u64>> {
        let missing = || SecureError::Config(format!("no HE layer for step {}", call.step));
        match &self.he {
            HeSide::Client { he, .. } => {
                let he = he.clone();
                let plans = self.client_plans(call.n).await?;
                let plan = plans
                    .get(call.step)
                    .cloned()
                    .flatten()
                    .ok_or_else(missing)?;
                self.budget.charge(plan.revealed_coefficients() as u64)?;
                let (y, _) =
                    he_driver::client_layer(&mut self.channel, &he, &plan, x, &mut self.rng)
                        .await?;
                Ok(y)
            }
            HeSide::Server { he } => {
                let he = he.clone();
                let layers = self.server_layers(call.n).await?;
                let layer = layers
                    .get(call.step)
                    .cloned()
                    .flatten()
                    .ok_or_else(missing)?;
                // Counted before the reply is computed: a call past the cap
                // reveals nothing.
                self.budget.charge(layer.revealed_coefficients() as u64)?;
                let share = (!call.input_is_zero).then_some(x);
                let (y, _) =
                    he_driver::server_layer(&mut self.channel, &he, &layer, share, &mut self.rng)
                        .await?;
                Ok(y)
            }
        }
    }

    /// Flooded coefficients the pass `plan` reveals: the sum over its linear
    /// actions of their plans' [`StepPlan::revealed_coefficients`] (public,
    /// so both parties compute the same).
    async fn pass_revealed(&self, plan: PassPlan<'_>) -> SecureResult<u64> {
        let per_step: Vec<u64> = match &self.he {
            HeSide::Client { .. } => self
                .client_plans(plan.n)
                .await?
                .iter()
                .map(|p| p.as_ref().map_or(0, |p| p.revealed_coefficients() as u64))
                .collect(),
            HeSide::Server { .. } => self
                .server_layers(plan.n)
                .await?
                .iter()
                .map(|l| l.as_ref().map_or(0, |l| l.revealed_coefficients() as u64))
                .collect(),
        };
        Ok(plan
            .schedule
            .actions
            .iter()
            .filter(|a| matches!(a.kind, ActionKind::Linear))
            .map(|a| per_step.get(a.step).copied().unwrap_or(0))
            .fold(0u64, u64::saturating_add))
    }

    /// Checks the session's cap, then queues the ROTs of a whole pass for
    /// background generation ([`AnyOt::schedule_rots`]: runs of at most
    /// [`fusion_ot::OtConfig::max_rots`] per direction, generated while the
    /// pass's HE layers and earlier non-linear layers run; a protocol call
    /// tops up whatever is missing). Both parties compute the same counts
    /// from public sizes and mirrored pools.
    async fn reserve_rots(&mut self, plan: PassPlan<'_>) -> SecureResult<()> {
        self.budget.check(self.pass_revealed(plan).await?)?;
        let (mut send, mut recv) = (0usize, 0usize);
        for action in &plan.schedule.actions {
            let ActionKind::NonLinear(op) = &action.kind else {
                continue;
            };
            let v = action.inputs.first().copied().unwrap_or(0);
            let elems = plan.n * plan.program.value_shape(v).iter().product::<usize>();
            let (s, r) = self.ot.op_rots(op, elems, plan.n);
            send = send.saturating_add(s);
            recv = recv.saturating_add(r);
        }
        self.ot.schedule_rots(send, recv)?;
        Ok(())
    }
}

impl LinearLayers for Party {
    fn linear(&mut self, call: LinearCall, x: Vec<u64>) -> ProtocolFuture<'_, Vec<u64>> {
        Box::pin(self.run_linear(call, x))
    }
}

impl NonLinearLayers for Party {
    fn nonlinear<'a>(
        &'a mut self,
        op: &'a NonLinearOp,
        x: Vec<u64>,
        n: usize,
    ) -> ProtocolFuture<'a, Vec<u64>> {
        Box::pin(async move { Ok(self.ot.run(op, &x, n).await?) })
    }
}

impl Preprocessing for Party {
    fn preprocess<'a>(&'a mut self, plan: PassPlan<'a>) -> ProtocolFuture<'a, ()> {
        Box::pin(self.reserve_rots(plan))
    }
}

impl OutputStage for Party {
    fn reveal(&mut self, y: Vec<u64>, n: usize) -> ProtocolFuture<'_, Option<Vec<u64>>> {
        Box::pin(async move {
            match self.he {
                HeSide::Server { .. } => {
                    let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
                    self.channel.send_frame(&bytes).await?;
                    Ok(None)
                }
                HeSide::Client { .. } => {
                    let bytes = self.channel.recv_exact(8 * y.len()).await.map_err(|e| {
                        SecureError::Malformed(format!(
                            "output share for {n} samples ({} values): {e}",
                            y.len()
                        ))
                    })?;
                    let theirs: Vec<u64> = bytes
                        .chunks_exact(8)
                        .map(|c| {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(c);
                            u64::from_le_bytes(b)
                        })
                        .collect();
                    let ring = self.prepared.public.ring();
                    if theirs.iter().any(|&v| !ring.contains(v)) {
                        return Err(SecureError::Malformed(
                            "output share outside the ring".into(),
                        ));
                    }
                    Ok(Some(
                        y.iter()
                            .zip(&theirs)
                            .map(|(&a, &b)| ring.reconstruct(a, b))
                            .collect(),
                    ))
                }
            }
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
        })
    }
}
