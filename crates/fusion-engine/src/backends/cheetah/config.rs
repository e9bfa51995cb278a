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
use crate::statsec::{SessionFlooding, StatSecTarget};

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

/// The HE parameters of `preset` for `ring` with HE reply packing of up to
/// `levels` merge levels (`0`: no packing; see
/// [`fusion_he::ParamsBuilder::reply_packing`]), flooding at `stat_sec_bits`
/// per revealed coefficient ([`fusion_he::ParamsBuilder::stat_sec_bits`]; the
/// builder refuses a modulus too small for it) and queries rounded to
/// multiples of `2^query_rounding` ([`fusion_he::ParamsBuilder::query_rounding`];
/// `0`: sent exactly).
pub fn he_params(
    preset: Preset,
    ring: Ring,
    levels: u32,
    stat_sec_bits: u32,
    query_rounding: u32,
) -> SecureResult<HeParams> {
    Ok(preset
        .builder(ring)
        .reply_packing(levels)
        .stat_sec_bits(stat_sec_bits)
        .query_rounding(query_rounding)
        .build()?)
}

/// How the server picks the query rounding `d`
/// ([`fusion_he::ParamsBuilder::query_rounding`]): the client sends its
/// queries' coefficients `d` bits shorter, and every layer's noise grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoundingChoice {
    /// The largest `d` with which every layer's flooding still reaches the
    /// announced statistical security for the server's weights, at every
    /// batch size ([`super::he::choose_query_rounding`]). The default.
    #[default]
    Auto,
    /// This `d` (`0`: queries sent exactly); the server refuses to start if a
    /// layer's flooding does not hold with it.
    Fixed(u32),
}

impl fmt::Display for RoundingChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoundingChoice::Auto => f.write_str("auto"),
            RoundingChoice::Fixed(d) => write!(f, "{d}"),
        }
    }
}

impl FromStr for RoundingChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(RoundingChoice::Auto),
            "off" => Ok(RoundingChoice::Fixed(0)),
            _ => match t.parse::<u32>() {
                Ok(d) if d <= fusion_he::MAX_QUERY_ROUNDING_BITS => Ok(RoundingChoice::Fixed(d)),
                _ => Err(format!(
                    "query rounding `{}`: auto, off or a number of bits in 0..={}",
                    s.trim(),
                    fusion_he::MAX_QUERY_ROUNDING_BITS
                )),
            },
        }
    }
}

/// How the server picks the HE preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeChoice {
    /// The smallest preset whose flooding bound holds for every layer of the model.
    #[default]
    Auto,
    /// This preset (the server refuses to start if a layer does not fit it).
    Fixed(Preset),
}

impl FromStr for HeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(HeChoice::Auto);
        }
        s.parse::<Preset>()
            .map(HeChoice::Fixed)
            .map_err(|_| format!("unknown HE preset `{}` (auto, n4096 or n8192)", s.trim()))
    }
}

/// The parameters the server announces and both parties use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheetahParams {
    /// RLWE preset of the linear layers.
    pub he_preset: Preset,
    /// HE planner options (both parties must plan with the same options: the
    /// plan fixes the message layout).
    pub plan: PlanOptions,
    /// OT flavour of the non-linear layers.
    pub ot_flavour: OtKind,
    /// OT parameters of the non-linear layers (checked again by the OT
    /// engine's own setup handshake; `parallel_ot` is local and not sent).
    pub ot: OtConfig,
    /// HE reply packing: the most merge levels (`0`: off). When on, the client
    /// sends Galois keys at setup and the planner packs a layer's replies
    /// where its cost model prefers it ([`fusion_he::LinearPlan::new`]).
    pub reply_packing: u32,
    /// The flooding's statistical security: bits per revealed coefficient
    /// (the HE parameters' [`HeParams::stat_sec_bits`]) and the session's cap
    /// on revealed coefficients ([`crate::statsec`]).
    pub flooding: SessionFlooding,
    /// The query rounding `d`: the client's query coefficients travel rounded
    /// to multiples of `2^d` ([`fusion_he::ParamsBuilder::query_rounding`]).
    #[serde(default)]
    pub query_rounding: u32,
}

impl CheetahParams {
    /// Checks every field (the client calls this on the server's announcement).
    pub fn validate(&self) -> SecureResult<()> {
        self.plan
            .validate()
            .map_err(|e| SecureError::Mismatch(format!("HE planner options: {e}")))?;
        self.ot
            .validate()
            .map_err(|e| SecureError::Mismatch(format!("OT parameters: {e}")))?;
        if self.reply_packing > MAX_PACKING_LEVELS {
            return Err(SecureError::Mismatch(format!(
                "HE reply packing of {} levels is outside 0..={MAX_PACKING_LEVELS}",
                self.reply_packing
            )));
        }
        self.flooding
            .validate()
            .map_err(|e| SecureError::Mismatch(format!("statistical security: {e}")))?;
        if self.query_rounding > fusion_he::MAX_QUERY_ROUNDING_BITS {
            return Err(SecureError::Mismatch(format!(
                "query rounding of {} bits is outside 0..={}",
                self.query_rounding,
                fusion_he::MAX_QUERY_ROUNDING_BITS
            )));
        }
        Ok(())
    }

    /// The HE parameters of this session for `ring` (preset, reply packing
    /// and flooding).
    pub fn he_params(&self, ring: Ring) -> SecureResult<HeParams> {
        he_params(
            self.he_preset,
            ring,
            self.reply_packing,
            self.flooding.per_coefficient_bits,
            self.query_rounding,
        )
    }
}

/// The `cheetah` backend's settings (server and client; the client uses only
/// `ot.parallel_ot` and [`CheetahConfig::require_ot`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheetahConfig {
    /// HE preset choice (server).
    pub he: HeChoice,
    /// HE planner options (server, announced).
    pub plan: PlanOptions,
    /// OT flavour (server, announced).
    pub ot_flavour: OtKind,
    /// OT parameters (server, announced); `parallel_ot` (generate the two
    /// directions concurrently, needs >= 2 rayon threads per party) is local
    /// to each party.
    pub ot: OtConfig,
    /// How many batch sizes keep their encoded HE layers cached (server, at
    /// least 1).
    pub cache_entries: usize,
    /// Enable HE reply packing ([`fusion_he::DEFAULT_PACKING_LEVELS`] levels,
    /// announced in [`CheetahParams::reply_packing`]); the server falls back
    /// to no packing if the preset cannot hold it for the model's ring.
    pub reply_packing: bool,
    /// The OT flavour the client requires (client; `None`: any).
    pub require_ot: Option<OtKind>,
    /// The flooding's statistical security (server, announced): the
    /// per-coefficient parameter and the session's cap on revealed
    /// coefficients ([`crate::statsec`]). The preset must admit the
    /// per-coefficient parameter ([`HeChoice::Auto`] picks the smallest that
    /// does).
    pub stat_sec: StatSecTarget,
    /// The query rounding (server, announced in
    /// [`CheetahParams::query_rounding`]).
    pub query_rounding: RoundingChoice,
}

impl Default for CheetahConfig {
    fn default() -> Self {
        CheetahConfig {
            he: HeChoice::Auto,
            plan: PlanOptions::default(),
            ot_flavour: OtKind::Silent,
            ot: OtConfig::default(),
            cache_entries: 4,
            reply_packing: false,
            require_ot: None,
            stat_sec: StatSecTarget::default(),
            query_rounding: RoundingChoice::Auto,
        }
    }
}

impl CheetahConfig {
    /// The defaults tuned for the fewest bytes per inference: HE reply packing
    /// on ([`CheetahConfig::reply_packing`]; the client sends Galois keys once
    /// per session, 1.4 MB at `N = 4096`) and the bytes-first planner
    /// ([`PlanOptions::bytes_first`]: the byte-minimal plan unless one with a
    /// few more bytes saves much computation; the server caches more kernel
    /// polynomials, up to 512 MiB per batch size), and millionaires' blocks of
    /// [`BYTES_BLOCK_BITS`] bits (fewer bits on the wire per comparison than
    /// fusion-ot's default of 4, for about 10% more ROTs). Same security as the
    /// defaults: packing happens before the replies are flooded and
    /// re-randomised (fusion-he), and the block size only changes how the
    /// comparison is split into 1-out-of-`2^m` OTs.
    pub fn minimise_bytes() -> Self {
        let d = CheetahConfig::default();
        CheetahConfig {
            plan: PlanOptions::bytes_first(),
            reply_packing: true,
            ot: OtConfig {
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
            he_preset: Preset::N4096,
            plan: PlanOptions::default(),
            ot_flavour: OtKind::Silent,
            ot: OtConfig::default(),
            reply_packing: 0,
            flooding: SessionFlooding {
                per_coefficient_bits: 40,
                max_revealed: 1 << 30,
            },
            query_rounding: 9,
        };
        assert!(p.validate().is_ok());
        let bad_rounding = CheetahParams {
            query_rounding: fusion_he::MAX_QUERY_ROUNDING_BITS + 1,
            ..p
        };
        assert!(matches!(
            bad_rounding.validate(),
            Err(SecureError::Mismatch(_))
        ));
        let bad_ot = CheetahParams {
            ot: OtConfig {
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
        let bad_flooding = CheetahParams {
            flooding: SessionFlooding {
                per_coefficient_bits: 129,
                ..p.flooding
            },
            ..p
        };
        assert!(matches!(
            bad_flooding.validate(),
            Err(SecureError::Mismatch(_))
        ));
    }

    #[test]
    fn names_parse() {
        assert_eq!("IKNP".parse::<OtKind>(), Ok(OtKind::Iknp));
        assert!("x".parse::<OtKind>().is_err());
        assert_eq!("auto".parse::<HeChoice>(), Ok(HeChoice::Auto));
        assert_eq!("auto".parse::<RoundingChoice>(), Ok(RoundingChoice::Auto));
        assert_eq!(
            "off".parse::<RoundingChoice>(),
            Ok(RoundingChoice::Fixed(0))
        );
        assert_eq!(
            " 12 ".parse::<RoundingChoice>(),
            Ok(RoundingChoice::Fixed(12))
        );
        assert!("129".parse::<RoundingChoice>().is_err());
        assert!("-1".parse::<RoundingChoice>().is_err());
        assert_eq!(
            "n8192".parse::<HeChoice>(),
            Ok(HeChoice::Fixed(Preset::N8192))
        );
    }
}
