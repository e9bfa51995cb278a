//! The `cryptflow2` backend: CrypTFlow2's SCI_HE protocol family (Rathee,
//! Rastogi, Gupta, Chandran, Sharma, Rastogi, Yadav, "CrypTFlow2: Practical
//! 2-Party Secure Inference", CCS 2020, ePrint 2020/1002), shares in a prime
//! field `Z_p`.
//!
//! | layer | protocol | file |
//! |---|---|---|
//! | dense, convolution, per-channel affine | BFV with SIMD (batch) encoding and rotations: FC by Halevi–Shoup diagonals in Gazelle's hybrid form, convolution by Gazelle's packed convolution (fusion-he's [`fusion_he::simd`]); the client encrypts its share, the server adds its own, evaluates, masks, re-randomises, floods and switches modulus | [`linear`] |
//! | ReLU, ReLU-truncation (fused), truncation, max pool | SCI's field protocols on KK13 1-out-of-16 OT extension and IKNP (fusion-ot's [`fusion_ot::FieldOtEngine`]): millionaires with `m = 4`-bit blocks and the AND tree, field DReLU and multiplexer, field division by `2^f`, max pool as a tournament of ReLUs | this file |
//! | output | the server sends its share (8 bytes per value) | this file |
//!
//! **The field.** `p` is the smallest prime `p = 1 (mod 2N)` above `2^l`
//! ([`fusion_core::field::PrimeField::ntt_friendly`]; `N` the SIMD ring
//! degree, `l` the program's ring bits), so SIMD slots exist mod `p` and the
//! program's signed values `|x| < 2^(l-1)` embed without wrapping
//! ([`crate::domain::Domain::Field`]). Local steps run mod `p` on each
//! share.
//!
//! **Deviations from SCI_HE** (each with its cost stated where it lives):
//! fusion-he's SIMD layers (see [`fusion_he::simd`]: worst-case flooding
//! width instead of SCI's fixed smudging, re-randomisation with the client's
//! public key, power-of-two rotation keys, modulus switching to powers of
//! two, convolutions refused for images larger than half a ciphertext
//! instead of tiled); fusion-ot's field protocols (see
//! [`fusion_ot::FieldOtEngine`]'s modules: exact truncation by our
//! construction after CrypTFlow2's division protocol, and a fused
//! ReLU-truncation that SCI does not have: 10 flights instead of 16 for
//! ReLU then truncation); no square (models with `x^2` activations are
//! refused). No conversion between `Z_p`
//! and `Z_{2^l}` is ever needed: the session driver embeds the client's
//! input and reconstructs the output ([`crate::domain`]).
//!
//! **What each party learns.** The server: the client's public and Galois
//! keys and IND-CPA ciphertexts (nothing about the client's shares); from
//! the OT protocols, one-time-padded messages (nothing). The client: flooded,
//! re-randomised replies decrypting to its uniformly masked share (the HE
//! flooding's statistical security is announced and counted per session,
//! [`crate::statsec`]); OT outputs masked by the server's randomness; and the
//! program's output. Semi-honest security, as in the paper.

pub mod estimate;
pub mod linear;

use std::sync::Arc;

use fusion_core::field::PrimeField;
use fusion_he::simd::{
    GaloisSet, SimdClient, SimdLinear, SimdParams, SimdPlan, SimdPreset, SimdServer,
};
use fusion_net::Channel;
use fusion_nn::fixed::{FixedProgram, PublicProgram};
use fusion_ot::{FieldOtConfig, FieldOtEngine, Role};
use rand::rngs::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::backend::{
    Backend, LinearCall, LinearLayers, NonLinearLayers, OutputStage, PartySession, PreparedBackend,
    Preprocessing, ProtocolFuture, SetupLink, check_announcement,
};
use crate::backends::cheetah::he::BatchCache;
use crate::domain::Domain;
use crate::error::{SecureError, SecureResult};
use crate::schedule::{ActionKind, NonLinearOp, Schedule, batch_windows};
use crate::statsec::{RevealBudget, SessionFlooding, StatSecTarget};

/// The backend's name.
pub const NAME: &str = "cryptflow2";
/// The backend's one-line summary.
pub const SUMMARY: &str = "CrypTFlow2 SCI_HE (CCS '20): SIMD BFV linear layers (Gazelle / \
                           Halevi-Shoup), field millionaires on KK13 and IKNP OT, shares in Z_p";
/// The protocol version in the announcement.
pub const PROTOCOL_VERSION: u32 = 1;

/// The flooding for `program`: `target` as given, except that a per-session
/// target left at the engine-wide default cap
/// ([`crate::statsec::DEFAULT_MAX_REVEALED`], `2^30`) gets the largest
/// power-of-two cap that the SIMD parameters admit for this program at the
/// requested bits per session. A SIMD reply reveals all `N` coefficients of
/// each ciphertext (about 25,000 per `mnist-cnn` sample at `N = 8192`), and
/// at the default parameters (`log2 q = 218`, a 38-bit `p`) the flooding
/// admits at most about 61-64 bits per coefficient, depending on the layers:
/// 40 bits per session then cap a session at `2^21`-`2^24` coefficients,
/// where cheetah's coefficient encoding reaches `2^30`. The session ends at
/// the cap ([`crate::SecureError::RevealCapReached`]); the cap is announced.
pub fn flooding_for(
    program: &FixedProgram,
    preset: SimdPreset,
    field: PrimeField,
    target: StatSecTarget,
) -> SecureResult<SessionFlooding> {
    let fits = |f: SessionFlooding| -> bool {
        preset
            .builder()
            .field(field)
            .stat_sec_bits(f.per_coefficient_bits)
            .build()
            .ok()
            .is_some_and(|params| linear::server_layers(&params, program, 1).is_ok())
    };
    match target {
        StatSecTarget::PerSession { bits, max_revealed }
            if max_revealed == crate::statsec::DEFAULT_MAX_REVEALED =>
        {
            let log2 = max_revealed.ilog2();
            for k in (1..=log2).rev() {
                let t = StatSecTarget::PerSession {
                    bits,
                    max_revealed: 1 << k,
                };
                if let Ok(f) = t.flooding()
                    && fits(f)
                {
                    return Ok(f);
                }
            }
            Err(SecureError::Config(format!(
                "cryptflow2: no session cap admits {bits} bits of statistical security per session \
                 with the {preset:?} SIMD parameters for this model; lower --stat-sec"
            )))
        }
        other => other.flooding(),
    }
}

/// The field OT parameters in the announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldOtParams {
    /// Millionaires' block size `m` (SCI: 4).
    pub block_bits: u32,
    /// Largest batch per protocol run.
    pub chunk: usize,
    /// Minimum IKNP ROTs per refill and direction.
    pub min_refill: usize,
}

impl From<FieldOtConfig> for FieldOtParams {
    fn from(c: FieldOtConfig) -> Self {
        FieldOtParams {
            block_bits: c.block_bits,
            chunk: c.chunk,
            min_refill: c.min_refill,
        }
    }
}

impl From<FieldOtParams> for FieldOtConfig {
    fn from(c: FieldOtParams) -> Self {
        FieldOtConfig {
            block_bits: c.block_bits,
            chunk: c.chunk,
            min_refill: c.min_refill,
        }
    }
}

/// The parameters the server announces and both parties use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cryptflow2Params {
    /// The backend's protocol version ([`PROTOCOL_VERSION`]).
    pub version: u32,
    /// The SIMD HE preset (ring degree and `q`).
    pub he_preset: SimdPreset,
    /// The plaintext prime `p` (the share field).
    pub prime: u64,
    /// Field OT parameters.
    pub ot: FieldOtParams,
    /// The HE flooding's statistical security ([`crate::statsec`]).
    pub flooding: SessionFlooding,
}

/// The `cryptflow2` backend's settings (the server's are announced).
#[derive(Debug, Clone, PartialEq)]
pub struct Cryptflow2Config {
    /// The SIMD HE preset (server, announced).
    pub he: SimdPreset,
    /// Field OT parameters (server, announced).
    pub ot: FieldOtConfig,
    /// How many batch sizes keep their encoded HE layers cached (server).
    pub cache_entries: usize,
    /// The HE flooding's statistical security (server, announced).
    pub stat_sec: StatSecTarget,
}

impl Default for Cryptflow2Config {
    fn default() -> Self {
        Cryptflow2Config {
            he: SimdPreset::N8192,
            ot: FieldOtConfig::default(),
            cache_entries: 4,
            stat_sec: StatSecTarget::default(),
        }
    }
}

/// The `cryptflow2` backend with its configuration.
#[derive(Debug, Clone, Default)]
pub struct Cryptflow2 {
    config: Cryptflow2Config,
}

impl Cryptflow2 {
    /// The backend with `config`.
    pub fn new(config: Cryptflow2Config) -> Self {
        Cryptflow2 { config }
    }

    /// The configuration.
    pub fn config(&self) -> &Cryptflow2Config {
        &self.config
    }
}

/// The share field for `program` under `preset`: the smallest prime
/// `p = 1 (mod 2N)` above `2^l`.
pub fn field_for(program: &PublicProgram, preset: SimdPreset) -> SecureResult<PrimeField> {
    let l = program.ring().bits();
    if l >= 61 {
        return Err(SecureError::Config(format!(
            "cryptflow2 needs a prime above 2^{l}; its fields stop below 2^62"
        )));
    }
    PrimeField::ntt_friendly(1 << l, 2 * preset.degree() as u64)
        .ok_or_else(|| SecureError::Config(format!("no NTT-friendly prime above 2^{l} below 2^62")))
}

/// The SIMD parameters of an announcement.
fn simd_params(a: &Cryptflow2Params) -> SecureResult<SimdParams> {
    let field = PrimeField::new(a.prime)
        .map_err(|e| SecureError::Mismatch(format!("cryptflow2 prime: {e}")))?;
    Ok(a.he_preset
        .builder()
        .field(field)
        .stat_sec_bits(a.flooding.per_coefficient_bits)
        .build()?)
}

/// Every step of `program` has a protocol here (no square).
fn check_ops(program: &PublicProgram) -> SecureResult<Schedule> {
    let schedule = Schedule::new(program)?;
    if let Some(a) = schedule
        .actions
        .iter()
        .find(|a| matches!(a.kind, ActionKind::NonLinear(NonLinearOp::Square)))
    {
        return Err(SecureError::Config(format!(
            "step `{}`: cryptflow2 has no square protocol (use cheetah, delphi or aby for x^2 activations)",
            program.steps[a.step].name
        )));
    }
    Ok(schedule)
}

impl Cryptflow2Params {
    /// Checks every field against the program (the client calls this on the
    /// announcement).
    pub fn validate(&self, program: &PublicProgram) -> SecureResult<()> {
        if self.version != PROTOCOL_VERSION {
            return Err(SecureError::Mismatch(format!(
                "cryptflow2 protocol version {} (we run {PROTOCOL_VERSION})",
                self.version
            )));
        }
        let expected = field_for(program, self.he_preset)?;
        if self.prime != expected.modulus() {
            return Err(SecureError::Mismatch(format!(
                "cryptflow2 prime {} (for this program and preset we use {})",
                self.prime,
                expected.modulus()
            )));
        }
        let ot = self.ot;
        if !(1..=8).contains(&ot.block_bits)
            || !(1..=1 << 26).contains(&ot.chunk)
            || !(1..=1 << 26).contains(&ot.min_refill)
        {
            return Err(SecureError::Mismatch(format!("field OT parameters {ot:?}")));
        }
        self.flooding
            .validate()
            .map_err(|e| SecureError::Mismatch(format!("statistical security: {e}")))?;
        Ok(())
    }
}

impl Backend for Cryptflow2 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        SUMMARY
    }

    fn serve(&self, program: &FixedProgram) -> SecureResult<(Arc<dyn PreparedBackend>, String)> {
        let c = &self.config;
        let public = program.public();
        check_ops(&public)?;
        let field = field_for(&public, c.he)?;
        let flooding = flooding_for(program, c.he, field, c.stat_sec)?;
        let announced = Cryptflow2Params {
            version: PROTOCOL_VERSION,
            he_preset: c.he,
            prime: field.modulus(),
            ot: c.ot.into(),
            flooding,
        };
        announced.validate(&public)?;
        let params = simd_params(&announced)?;
        // Every linear step must have a plan (and its noise budget must hold)
        // at batch size 1 before we offer the backend.
        linear::server_layers(&params, program, 1)?;
        let text = serde_json::to_string(&announced)
            .map_err(|e| SecureError::Config(format!("announcement: {e}")))?;
        Ok((
            Arc::new(Prepared {
                public: Arc::new(public),
                announced,
                params,
                side: Side::Server {
                    program: Arc::new(program.clone()),
                    layers: Arc::new(BatchCache::new(c.cache_entries)),
                },
            }),
            text,
        ))
    }

    fn join(
        &self,
        program: &PublicProgram,
        announcement: &str,
    ) -> SecureResult<Arc<dyn PreparedBackend>> {
        check_announcement(announcement)?;
        let announced: Cryptflow2Params = serde_json::from_str(announcement)
            .map_err(|e| SecureError::Malformed(format!("cryptflow2 parameters: {e}")))?;
        announced.validate(program)?;
        check_ops(program)?;
        let params = simd_params(&announced)?;
        linear::plans(&params, program, 1)?;
        Ok(Arc::new(Prepared {
            public: Arc::new(program.clone()),
            announced,
            params,
            side: Side::Client {
                plans: Arc::new(BatchCache::new(4)),
            },
        }))
    }
}

/// What differs between the parties' prepared backends.
enum Side {
    Server {
        program: Arc<FixedProgram>,
        layers: Arc<BatchCache<linear::Layers>>,
    },
    Client {
        plans: Arc<BatchCache<linear::Plans>>,
    },
}

struct Prepared {
    public: Arc<PublicProgram>,
    announced: Cryptflow2Params,
    params: SimdParams,
    side: Side,
}

impl Prepared {
    fn field(&self) -> PrimeField {
        self.params.field()
    }
}

impl PreparedBackend for Prepared {
    fn domain(&self) -> Domain {
        Domain::Field {
            field: self.field(),
            ring: self.public.ring(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "cryptflow2 (SIMD HE {:?}, p = {}, KK13 + IKNP OT with m = {}, flooding {})",
            self.announced.he_preset,
            self.announced.prime,
            self.announced.ot.block_bits,
            crate::statsec::describe(&self.announced.flooding)
        )
    }

    fn stat_security(&self) -> Option<SessionFlooding> {
        Some(self.announced.flooding)
    }

    fn estimate(&self, n: usize) -> SecureResult<crate::estimate::CostEstimate> {
        estimate::estimate(&self.public, &self.params, self.announced.ot.into(), n)
    }

    fn precompute<'a>(&'a self, n: usize) -> ProtocolFuture<'a, ()> {
        Box::pin(async move {
            if let Side::Server { program, layers } = &self.side {
                linear::encoded_layers(layers, &self.params, program, n).await?;
            }
            Ok(())
        })
    }

    fn open<'a>(&'a self, link: SetupLink<'a>) -> ProtocolFuture<'a, Box<dyn PartySession>> {
        Box::pin(async move {
            let SetupLink {
                session, mut rng, ..
            } = link;
            let ot_conn = session.sub_connection();
            let meter = session.meter().clone();
            let mut channel = session.protocol_channel().await?;
            let rotations = GaloisSet::power_of_two_rotations(self.params.degree(), true);
            let he = match &self.side {
                Side::Client { plans } => HeSide::Client {
                    he: linear::client_setup(&mut channel, &self.params, &rotations, &mut rng)
                        .await?,
                    plans: plans.clone(),
                },
                Side::Server { program, layers } => HeSide::Server {
                    he: linear::server_setup(&mut channel, &self.params, &rotations).await?,
                    program: program.clone(),
                    layers: layers.clone(),
                },
            };
            let role = match self.side {
                Side::Client { .. } => Role::Client,
                Side::Server { .. } => Role::Server,
            };
            let ot = FieldOtEngine::setup_on(
                ot_conn,
                Some(&meter),
                role,
                self.field(),
                self.announced.ot.into(),
                &mut rng,
            )
            .await?;
            let party: Box<dyn PartySession> = Box::new(Party {
                public: self.public.clone(),
                params: self.params.clone(),
                field: self.field(),
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

/// This party's HE state.
enum HeSide {
    Client {
        he: Arc<SimdClient>,
        plans: Arc<BatchCache<linear::Plans>>,
    },
    Server {
        he: Arc<SimdServer>,
        program: Arc<FixedProgram>,
        layers: Arc<BatchCache<linear::Layers>>,
    },
}

/// One party's session.
struct Party {
    public: Arc<PublicProgram>,
    params: SimdParams,
    field: PrimeField,
    he: HeSide,
    channel: Channel,
    ot: FieldOtEngine,
    rng: ChaCha20Rng,
    budget: RevealBudget,
}

impl Party {
    fn plan_of(layers: &[Option<Arc<SimdPlan>>], step: usize) -> SecureResult<Arc<SimdPlan>> {
        layers
            .get(step)
            .cloned()
            .flatten()
            .ok_or_else(|| SecureError::Config(format!("step {step} has no SIMD plan")))
    }

    async fn run_linear(&mut self, call: LinearCall, x: Vec<u64>) -> SecureResult<Vec<u64>> {
        match &self.he {
            HeSide::Client { he, plans } => {
                let plans = linear::client_plans(plans, &self.params, &self.public, call.n).await?;
                let plan = Self::plan_of(&plans, call.step)?;
                self.budget.charge(plan.revealed_coefficients())?;
                let he = he.clone();
                linear::client_layer(&mut self.channel, &he, &plan, x, &mut self.rng).await
            }
            HeSide::Server {
                he,
                program,
                layers,
            } => {
                let (he, program, layers) = (he.clone(), program.clone(), layers.clone());
                let encoded =
                    linear::encoded_layers(&layers, &self.params, &program, call.n).await?;
                let layer: Arc<SimdLinear> =
                    encoded.get(call.step).cloned().flatten().ok_or_else(|| {
                        SecureError::Config(format!("step {} has no SIMD layer", call.step))
                    })?;
                self.budget.charge(layer.plan().revealed_coefficients())?;
                let x = if call.input_is_zero {
                    vec![0; x.len()]
                } else {
                    x
                };
                linear::server_layer(&mut self.channel, &he, &layer, x, &mut self.rng).await
            }
        }
    }

    async fn run_nonlinear(
        &mut self,
        op: &NonLinearOp,
        x: Vec<u64>,
        n: usize,
    ) -> SecureResult<Vec<u64>> {
        Ok(match op {
            NonLinearOp::Relu { .. } => self.ot.relu(&x).await?,
            NonLinearOp::ReluTruncate { bits, .. } => self.ot.relu_truncate(&x, *bits).await?,
            NonLinearOp::Truncate { bits, .. } => self.ot.truncate(&x, *bits).await?,
            NonLinearOp::MaxPool { .. } => {
                let mut v = x;
                for (windows, in_len) in op.pool_stages() {
                    let w = batch_windows(windows, in_len, n);
                    v = self.ot.maxpool(&v, &w).await?;
                }
                v
            }
            NonLinearOp::Square => {
                return Err(SecureError::Config(
                    "cryptflow2 has no square protocol".into(),
                ));
            }
        })
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
        Box::pin(self.run_nonlinear(op, x, n))
    }
}

impl Preprocessing for Party {}

impl OutputStage for Party {
    fn reveal(&mut self, y: Vec<u64>, n: usize) -> ProtocolFuture<'_, Option<Vec<u64>>> {
        Box::pin(async move {
            let domain = Domain::Field {
                field: self.field,
                ring: self.public.ring(),
            };
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
                    if theirs.iter().any(|&v| !self.field.contains(v)) {
                        return Err(SecureError::Malformed(
                            "output share outside the field".into(),
                        ));
                    }
                    Ok(Some(domain.reconstruct(&y, &theirs)))
                }
            }
        })
    }
}

impl PartySession for Party {
    fn stats(&self) -> serde_json::Value {
        let s = self.ot.stats();
        serde_json::json!({
            "prime": self.field.modulus(),
            "ot_bytes_sent": s.bytes_sent,
            "ot_bytes_received": s.bytes_received,
            "ot_flights": s.flights,
            "rots_as_sender": s.rots_as_sender,
            "rots_as_receiver": s.rots_as_receiver,
            "revealed_coefficients": self.budget.revealed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_nn::eval::default_fixed_point;
    use fusion_nn::fixed::lower;

    fn program(name: &str) -> FixedProgram {
        let dir = fusion_nn::data::data_dir().expect("data dir");
        let m = fusion_nn::model::Model::load(&dir.join("models").join(name)).expect("model");
        lower(&m, default_fixed_point()).expect("lower")
    }

    #[test]
    fn a_per_session_target_at_the_default_cap_gets_the_largest_cap_that_fits() {
        let p = program("mnist-cnn");
        let field = field_for(&p.public(), SimdPreset::N8192).expect("field");
        let f = flooding_for(
            &p,
            SimdPreset::N8192,
            field,
            StatSecTarget::default_per_session(),
        )
        .expect("flooding");
        // mnist-cnn's 5x5 convolution needs lambda_c <= 62: M = 2^22.
        assert_eq!(f.max_revealed, 1 << 22);
        assert!(f.per_session_bits() >= 40.0);
        // An explicit cap is kept (and refused here if it does not fit).
        let explicit = StatSecTarget::PerSession {
            bits: 40,
            max_revealed: 1 << 28,
        };
        assert_eq!(
            flooding_for(&p, SimdPreset::N8192, field, explicit)
                .expect("flooding")
                .max_revealed,
            1 << 28
        );
        assert!(
            Cryptflow2::new(Cryptflow2Config {
                stat_sec: explicit,
                ..Cryptflow2Config::default()
            })
            .serve(&p)
            .is_err()
        );
    }

    #[test]
    fn a_simd_reply_reveals_whole_ciphertexts() {
        let p = program("mnist-cnn");
        let params = SimdPreset::N8192.builder().build().expect("params");
        let plans = linear::plans(&params, &p.public(), 50).expect("plans");
        let r: u64 = plans
            .iter()
            .flatten()
            .map(|x| x.revealed_coefficients())
            .sum();
        assert_eq!(r % 8192, 0);
        // About 25,000 coefficients per sample at batch 50.
        assert!((20_000..30_000).contains(&(r / 50)), "{r}");
    }
}
