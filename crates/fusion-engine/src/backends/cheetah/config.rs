//! The `cheetah` backend's configuration: what the server announces (the
//! parameters both parties must share) and what each party sets locally.
//!
//! The **server decides** the HE parameter preset, the OT flavour and its
//! parameters, the HE planner's options and HE reply packing, and announces
//! them ([`CheetahParams`], JSON in the hello). The **client validates** them
//! ([`CheetahParams::validate`]) and uses exactly them, so both derive the
//! same HE plans and run the same OT calls.
//!
//! **Reply packing** ([`CheetahConfig::reply_packing`], off by default;
//! [`CheetahConfig::minimise_bytes`] turns it on together with the
//! byte-minimising planner) makes the client send Galois keys once per session
//! (charged to the `setup` phase) and lets the server merge reply ciphertexts
//! before flooding and re-randomising them (fusion-he's `pack` module); the
//! planner packs a layer only where its cost model prefers it (fully connected
//! layers; convolutions' replies are dense and never packed). Security is that
//! of the unpacked protocol: same keys, same flooding, same re-randomisation.

use std::fmt;
use std::str::FromStr;

use fusion_core::ring::Ring;
use fusion_he::{HeParams, PlanOptions, Preset};
use fusion_ot::OtConfig;
use serde::{Deserialize, Serialize};

use crate::error::{SecureError, SecureResult};

/// Millionaires' block size of [`CheetahConfig::minimise_bytes`]: at `l = 37`,
/// `m = 3` sends about 10 B less per comparison than `m = 4` (CrypTFlow2's
/// cost `bits (1 + 2^(m+1)/m) + 6 q` bits), measured 11-12% fewer non-linear
/// bytes on `mlp-mnist` and `cnn-mnist`.
pub const BYTES_BLOCK_BITS: u32 = 3;
/// Most HE reply-packing levels a server may announce (`log2` of the
/// smallest preset's degree).
pub const MAX_PACKING_LEVELS: u32 = 12;

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

/// The parameters the server announces and both parties use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheetahParams {
    /// RLWE preset of the linear layers.
    pub he_preset: HePreset,
    /// HE planner options.
    pub plan: PlanParams,
    /// OT parameters of the non-linear layers.
    pub ot: OtParams,
    /// HE reply packing: the most merge levels (`0`: off). When on, the client
    /// sends Galois keys at setup and the planner packs a layer's replies
    /// where its cost model prefers it ([`fusion_he::LinearPlan::new`]).
    pub reply_packing: u32,
}

impl CheetahParams {
    /// Checks every field (the client calls this on the server's announcement).
    pub fn validate(&self) -> SecureResult<()> {
        self.plan.options()?;
        self.ot.ot_config(false)?;
        if self.reply_packing > MAX_PACKING_LEVELS {
            return Err(SecureError::Mismatch(format!(
                "HE reply packing of {} levels is outside 0..={MAX_PACKING_LEVELS}",
                self.reply_packing
            )));
        }
        Ok(())
    }

    /// The HE parameters of this session for `ring` (preset and reply packing).
    pub fn he_params(&self, ring: Ring) -> SecureResult<HeParams> {
        self.he_preset.params_with_packing(ring, self.reply_packing)
    }
}

/// The `cheetah` backend's settings (server and client; the client uses only
/// [`CheetahConfig::ot_parallel`] and [`CheetahConfig::require_ot`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheetahConfig {
    /// HE preset choice (server).
    pub he: HeChoice,
    /// HE planner options (server, announced).
    pub plan: PlanParams,
    /// OT parameters (server, announced).
    pub ot: OtParams,
    /// Generate the two OT directions concurrently (local; needs >= 2 rayon
    /// threads per party, see [`fusion_ot::OtConfig::parallel_ot`]).
    pub ot_parallel: bool,
    /// How many batch sizes keep their encoded HE layers cached (server, at
    /// least 1).
    pub cache_entries: usize,
    /// Enable HE reply packing ([`fusion_he::DEFAULT_PACKING_LEVELS`] levels,
    /// announced in [`CheetahParams::reply_packing`]); the server falls back
    /// to no packing if the preset cannot hold it for the model's ring.
    pub reply_packing: bool,
    /// The OT flavour the client requires (client; `None`: any).
    pub require_ot: Option<OtKind>,
}

impl Default for CheetahConfig {
    fn default() -> Self {
        CheetahConfig {
            he: HeChoice::Auto,
            plan: PlanParams::default(),
            ot: OtParams::default(),
            ot_parallel: false,
            cache_entries: 4,
            reply_packing: false,
            require_ot: None,
        }
    }
}

impl CheetahConfig {
    /// The defaults tuned for the fewest bytes per inference: HE reply packing
    /// on ([`CheetahConfig::reply_packing`]; the client sends Galois keys once
    /// per session, 1.4 MB at `N = 4096`) and the byte-minimising planner
    /// ([`PlanParams::minimise_bytes`]; the server caches more kernel
    /// polynomials, up to 512 MiB per batch size), and millionaires' blocks of
    /// [`BYTES_BLOCK_BITS`] bits (fewer bits on the wire per comparison than
    /// fusion-ot's default of 4, for about 10% more ROTs). Same security as the
    /// defaults: packing happens before the replies are flooded and
    /// re-randomised (fusion-he), and the block size only changes how the
    /// comparison is split into 1-out-of-`2^m` OTs.
    pub fn minimise_bytes() -> Self {
        let d = CheetahConfig::default();
        CheetahConfig {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_outside_the_ranges_are_refused() {
        let p = CheetahParams {
            he_preset: HePreset::N4096,
            plan: PlanParams::default(),
            ot: OtParams::default(),
            reply_packing: 0,
        };
        assert!(p.validate().is_ok());
        let bad_ot = CheetahParams {
            ot: OtParams {
                block_bits: 9,
                ..p.ot
            },
            ..p
        };
        assert!(bad_ot.validate().is_err());
        let bad_packing = CheetahParams {
            reply_packing: MAX_PACKING_LEVELS + 1,
            ..p
        };
        assert!(bad_packing.validate().is_err());
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
