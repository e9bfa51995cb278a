//! Configuration of the secure engine: what the server announces (the engine
//! parameters both parties must share), what each party sets locally, and
//! what the client accepts.
//!
//! The **server decides** the ring and fixed-point scale (by lowering its
//! model, [`crate::fixed::lower`]), the HE parameter preset, the OT flavour and
//! its parameters, the HE planner's options, HE reply packing and the chunk
//! size, and announces them in its hello ([`EngineParams`]). The **client
//! validates** them ([`EngineParams::validate`], [`ClientPolicy`]) and uses
//! exactly them, so both derive the same HE plans and run the same OT calls.
//!
//! **Reply packing** ([`ServerConfig::reply_packing`], off by default;
//! [`ServerConfig::minimise_bytes`] turns it on together with the
//! byte-minimising planner) makes the client send Galois keys once per session
//! (charged to the `setup` phase) and lets the server merge reply ciphertexts
//! before flooding and re-randomising them (fusion-he's `pack` module); the
//! planner packs a layer only where its cost model prefers it (fully connected
//! layers; convolutions' replies are dense and never packed). Security is that
//! of the unpacked protocol: same keys, same flooding, same re-randomisation.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use fusion_core::ring::Ring;
use fusion_he::{HeParams, PlanOptions, Preset};
use fusion_ot::OtConfig;
use serde::{Deserialize, Serialize};

use super::error::{SecureError, SecureResult};

/// Default number of samples per chunk (see [`ServerConfig::chunk`]).
pub const DEFAULT_CHUNK: usize = 256;
/// Largest chunk a server may announce or a client accept.
pub const MAX_CHUNK: usize = 1 << 16;
/// Default largest batch a server accepts in one request.
pub const DEFAULT_MAX_BATCH: usize = 1 << 20;
/// Millionaires' block size of [`ServerConfig::minimise_bytes`]: at `l = 37`,
/// `m = 3` sends about 10 B less per comparison than `m = 4` (CrypTFlow2's
/// cost `bits (1 + 2^(m+1)/m) + 6 q` bits), measured 11-12% fewer non-linear
/// bytes on `mlp-mnist` and `cnn-mnist`.
pub const BYTES_BLOCK_BITS: u32 = 3;
/// Most HE reply-packing levels a server may announce (`log2` of the
/// smallest preset's degree).
pub const MAX_PACKING_LEVELS: u32 = 12;
/// Default limit on every protocol step (one HE layer, one OT layer, one message).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// The OT flavour of the non-linear layers ([`fusion_ot::OtFlavour`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtKind {
    /// Silent OT (VOLE/LPN style; sublinear communication), the default.
    #[default]
    Silent,
    /// IKNP OT extension (as CrypTFlow2's SCI_OT).
    Iknp,
}

impl fmt::Display for OtKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OtKind::Silent => "silent",
            OtKind::Iknp => "iknp",
        })
    }
}

impl FromStr for OtKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "silent" => Ok(OtKind::Silent),
            "iknp" => Ok(OtKind::Iknp),
            other => Err(format!("unknown OT flavour `{other}` (silent or iknp)")),
        }
    }
}

/// An RLWE parameter preset ([`fusion_he::Preset`]) as it travels on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HePreset {
    /// `N = 4096`, `log2 q = 109` (128-bit security; `l <= 41` with fixed-point weights).
    N4096,
    /// `N = 8192`, `log2 q = 218` (128-bit security; needed for `l = 64`).
    N8192,
}

impl HePreset {
    /// The fusion-he preset.
    pub fn preset(self) -> Preset {
        match self {
            HePreset::N4096 => Preset::N4096,
            HePreset::N8192 => Preset::N8192,
        }
    }

    /// The preset's parameters for `ring`.
    pub fn params(self, ring: Ring) -> SecureResult<HeParams> {
        Ok(self.preset().params(ring)?)
    }

    /// The preset's parameters for `ring` with HE reply packing of up to
    /// `levels` merge levels (`0`: no packing, the same as [`HePreset::params`];
    /// see [`fusion_he::ParamsBuilder::reply_packing`]).
    pub fn params_with_packing(self, ring: Ring, levels: u32) -> SecureResult<HeParams> {
        if levels == 0 {
            return self.params(ring);
        }
        Ok(self.preset().builder(ring).reply_packing(levels).build()?)
    }
}

impl fmt::Display for HePreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HePreset::N4096 => "n4096",
            HePreset::N8192 => "n8192",
        })
    }
}

/// How the server picks the HE preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeChoice {
    /// The smallest preset whose flooding bound holds for every layer of the model.
    #[default]
    Auto,
    /// This preset (the server refuses to start if a layer does not fit it).
    Fixed(HePreset),
}

impl FromStr for HeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(HeChoice::Auto),
            "n4096" | "4096" => Ok(HeChoice::Fixed(HePreset::N4096)),
            "n8192" | "8192" => Ok(HeChoice::Fixed(HePreset::N8192)),
            other => Err(format!(
                "unknown HE preset `{other}` (auto, n4096 or n8192)"
            )),
        }
    }
}

/// The OT session parameters both parties must use (checked again by the OT
/// engine's own setup handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtParams {
    /// The flavour.
    pub flavour: OtKind,
    /// Millionaires' block size `m` (1..=6).
    pub block_bits: u32,
    /// Largest batch one OT protocol run handles.
    pub chunk: u64,
    /// Most ROTs one run may consume per direction.
    pub max_rots: u64,
    /// Minimum ROTs generated per refill and direction.
    pub min_refill: u64,
}

impl Default for OtParams {
    fn default() -> Self {
        let c = OtConfig::default();
        OtParams {
            flavour: OtKind::Silent,
            block_bits: c.block_bits,
            chunk: c.chunk as u64,
            max_rots: c.max_rots as u64,
            min_refill: c.min_refill as u64,
        }
    }
}

impl OtParams {
    /// The fusion-ot configuration (`parallel` is local to each party).
    pub fn ot_config(&self, parallel: bool) -> SecureResult<OtConfig> {
        let size = |v: u64, what: &str| {
            usize::try_from(v)
                .ok()
                .filter(|&v| (1..=1 << 26).contains(&v))
                .ok_or_else(|| SecureError::Mismatch(format!("OT {what} {v} is outside 1..=2^26")))
        };
        if !(1..=6).contains(&self.block_bits) {
            return Err(SecureError::Mismatch(format!(
                "OT block size {} is outside 1..=6",
                self.block_bits
            )));
        }
        Ok(OtConfig {
            block_bits: self.block_bits,
            chunk: size(self.chunk, "chunk")?,
            max_rots: size(self.max_rots, "max_rots")?,
            min_refill: size(self.min_refill, "min_refill")?,
            parallel_ot: parallel,
        })
    }
}

/// The HE planner's options as they travel on the wire (both parties must
/// plan with the same options: the plan fixes the message layout).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanParams {
    /// Assumed bandwidth, bytes per second.
    pub bandwidth: f64,
    /// Assumed cores per party.
    pub threads: u32,
    /// Kernel-cache budget of the server, bytes.
    pub weight_cache_bytes: u64,
}

impl Default for PlanParams {
    fn default() -> Self {
        let o = PlanOptions::default();
        PlanParams {
            bandwidth: o.bandwidth,
            threads: o.threads as u32,
            weight_cache_bytes: o.weight_cache_bytes as u64,
        }
    }
}

impl PlanParams {
    /// The byte-minimising planner options ([`PlanOptions::minimise_bytes`]).
    pub fn minimise_bytes() -> Self {
        let o = PlanOptions::minimise_bytes();
        PlanParams {
            bandwidth: o.bandwidth,
            threads: o.threads as u32,
            weight_cache_bytes: o.weight_cache_bytes as u64,
        }
    }

    /// The fusion-he options, validated.
    pub fn options(&self) -> SecureResult<PlanOptions> {
        if !(self.bandwidth.is_finite() && self.bandwidth >= 1.0 && self.bandwidth <= 1e15) {
            return Err(SecureError::Mismatch(format!(
                "HE planner bandwidth {} is not a sane number of bytes per second",
                self.bandwidth
            )));
        }
        if !(1..=4096).contains(&self.threads) {
            return Err(SecureError::Mismatch(format!(
                "HE planner threads {} outside 1..=4096",
                self.threads
            )));
        }
        let cache = usize::try_from(self.weight_cache_bytes)
            .ok()
            .filter(|&c| c <= 1 << 40)
            .ok_or_else(|| SecureError::Mismatch("HE weight cache budget too large".into()))?;
        Ok(PlanOptions {
            bandwidth: self.bandwidth,
            threads: self.threads as usize,
            weight_cache_bytes: cache,
        })
    }
}

/// The engine parameters the server announces and both parties use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngineParams {
    /// RLWE preset of the linear layers.
    pub he_preset: HePreset,
    /// HE planner options.
    pub plan: PlanParams,
    /// OT parameters of the non-linear layers.
    pub ot: OtParams,
    /// Samples per chunk: a batch of `N` samples runs as `ceil(N / chunk)`
    /// passes through the program (all of `chunk` samples but the last).
    pub chunk: u64,
    /// The largest batch the server accepts in one request.
    pub max_batch: u64,
    /// HE reply packing: the most merge levels (`0`: off). When on, the client
    /// sends Galois keys at setup and the planner packs a layer's replies
    /// where its cost model prefers it ([`fusion_he::LinearPlan::new`]).
    #[serde(default)]
    pub reply_packing: u32,
}

impl EngineParams {
    /// Checks every field (the client calls this on the server's announcement).
    pub fn validate(&self) -> SecureResult<()> {
        self.plan.options()?;
        self.ot.ot_config(false)?;
        if self.chunk == 0 || self.chunk > MAX_CHUNK as u64 {
            return Err(SecureError::Mismatch(format!(
                "chunk of {} samples is outside 1..={MAX_CHUNK}",
                self.chunk
            )));
        }
        if self.reply_packing > MAX_PACKING_LEVELS {
            return Err(SecureError::Mismatch(format!(
                "HE reply packing of {} levels is outside 0..={MAX_PACKING_LEVELS}",
                self.reply_packing
            )));
        }
        if self.max_batch == 0 || self.max_batch > 1 << 40 {
            return Err(SecureError::Mismatch(format!(
                "maximum batch {} is outside 1..=2^40",
                self.max_batch
            )));
        }
        Ok(())
    }

    /// The HE parameters of this session for `ring` (preset and reply packing).
    pub fn he_params(&self, ring: Ring) -> SecureResult<HeParams> {
        self.he_preset.params_with_packing(ring, self.reply_packing)
    }

    /// The chunk sizes of a batch of `n` samples.
    pub fn chunks(&self, n: usize) -> Vec<usize> {
        let c = usize::try_from(self.chunk).unwrap_or(usize::MAX).max(1);
        let mut out = Vec::with_capacity(n.div_ceil(c));
        let mut left = n;
        while left > 0 {
            let k = left.min(c);
            out.push(k);
            left -= k;
        }
        out
    }
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// HE preset choice.
    pub he: HeChoice,
    /// HE planner options (announced).
    pub plan: PlanParams,
    /// OT parameters (announced).
    pub ot: OtParams,
    /// Generate the two OT directions concurrently (local; needs >= 2 rayon
    /// threads per party, see [`fusion_ot::OtConfig::parallel_ot`]).
    pub ot_parallel: bool,
    /// Largest chunk the server runs at once (the client may ask for less).
    pub chunk: usize,
    /// Largest batch accepted in one request.
    pub max_batch: usize,
    /// Limit on every protocol step and message wait.
    pub step_timeout: Duration,
    /// How many batch sizes keep their encoded HE layers cached (at least 1).
    pub cache_entries: usize,
    /// Enable HE reply packing ([`fusion_he::DEFAULT_PACKING_LEVELS`] levels,
    /// announced in [`EngineParams::reply_packing`]); the server falls back to
    /// no packing if the preset cannot hold it for the model's ring.
    pub reply_packing: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            he: HeChoice::Auto,
            plan: PlanParams::default(),
            ot: OtParams::default(),
            ot_parallel: false,
            chunk: DEFAULT_CHUNK,
            max_batch: DEFAULT_MAX_BATCH,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            cache_entries: 4,
            reply_packing: false,
        }
    }
}

impl ServerConfig {
    /// The defaults tuned for the fewest bytes per inference: HE reply packing
    /// on ([`ServerConfig::reply_packing`]; the client sends Galois keys once
    /// per session, 1.4 MB at `N = 4096`) and the byte-minimising planner
    /// ([`PlanParams::minimise_bytes`]; the server caches more kernel
    /// polynomials, up to 512 MiB per batch size), and millionaires' blocks of
    /// [`BYTES_BLOCK_BITS`] bits (fewer bits on the wire per comparison than
    /// fusion-ot's default of 4, for about 10% more ROTs). Same security as the
    /// defaults: packing happens before the replies are flooded and
    /// re-randomised (fusion-he), and the block size only changes how the
    /// comparison is split into 1-out-of-`2^m` OTs.
    pub fn minimise_bytes() -> Self {
        let d = ServerConfig::default();
        ServerConfig {
            plan: PlanParams::minimise_bytes(),
            reply_packing: true,
            ot: OtParams {
                block_bits: BYTES_BLOCK_BITS,
                ..d.ot
            },
            ..d
        }
    }
}

/// What the client accepts from a server: everything `None` accepts any
/// valid value. The client always checks the announcement's consistency
/// (program structure, shapes, classes, preprocessing, engine parameters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientPolicy {
    /// Required ring bits `l`.
    pub ring_bits: Option<u32>,
    /// Required fractional bits `f`.
    pub frac_bits: Option<u32>,
    /// Required OT flavour.
    pub ot: Option<OtKind>,
    /// Required number of classes.
    pub classes: Option<usize>,
    /// Required per-sample input length (raw features or pixels).
    pub input_len: Option<usize>,
    /// Required model name.
    pub model_name: Option<String>,
}

/// Progress of a batch, reported after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Steps done in this batch (over all chunks).
    pub done: usize,
    /// Steps in this batch (actions per pass times chunks).
    pub total: usize,
}

/// A progress callback.
pub type ProgressFn = std::sync::Arc<dyn Fn(Progress) + Send + Sync>;

/// The client's settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// Preferred chunk (the server's announced chunk wins if smaller).
    pub chunk: usize,
    /// Limit on every protocol step and message wait.
    pub step_timeout: Duration,
    /// What the client accepts.
    pub policy: ClientPolicy,
    /// Generate the two OT directions concurrently (local).
    pub ot_parallel: bool,
    /// Called after every step of a batch.
    pub progress: Option<ProgressFn>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("chunk", &self.chunk)
            .field("step_timeout", &self.step_timeout)
            .field("policy", &self.policy)
            .field("ot_parallel", &self.ot_parallel)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            chunk: DEFAULT_CHUNK,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            policy: ClientPolicy::default(),
            ot_parallel: false,
            progress: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_batch_with_equal_chunks_but_the_last() {
        let p = EngineParams {
            he_preset: HePreset::N4096,
            plan: PlanParams::default(),
            ot: OtParams::default(),
            chunk: 4,
            max_batch: 100,
            reply_packing: 0,
        };
        assert_eq!(p.chunks(10), vec![4, 4, 2]);
        assert_eq!(p.chunks(4), vec![4]);
        assert!(p.chunks(0).is_empty());
        assert!(p.validate().is_ok());
        assert!(EngineParams { chunk: 0, ..p }.validate().is_err());
        assert!(
            EngineParams {
                ot: OtParams {
                    block_bits: 9,
                    ..p.ot
                },
                ..p
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!("IKNP".parse::<OtKind>(), Ok(OtKind::Iknp));
        assert!("x".parse::<OtKind>().is_err());
        assert_eq!("auto".parse::<HeChoice>(), Ok(HeChoice::Auto));
        assert_eq!(
            "n8192".parse::<HeChoice>(),
            Ok(HeChoice::Fixed(HePreset::N8192))
        );
    }
}
