//! RLWE parameters: ring degree, RNS ciphertext modulus, plaintext modulus `t = 2^l`,
//! reply moduli, statistical security of the flooding; presets and a validating builder.
//!
//! # Security estimate and its source
//!
//! The lattice security of every parameter set is read off the
//! HomomorphicEncryption.org *Homomorphic Encryption Security Standard*
//! (Albrecht et al., November 2018), Table 1, rows for a **ternary** secret
//! (uniform in `{-1, 0, 1}`) and error standard deviation `sigma ~ 3.2`, against
//! classical attacks:
//!
//! | N     | 128-bit | 192-bit | 256-bit |
//! |-------|---------|---------|---------|
//! | 1024  | 27      | 19      | 14      |
//! | 2048  | 54      | 37      | 29      |
//! | 4096  | 109     | 75      | 58      |
//! | 8192  | 218     | 152     | 118     |
//! | 16384 | 438     | 305     | 237     |
//! | 32768 | 881     | 611     | 476     |
//!
//! (maximal `log2 q`). We sample the secret uniformly ternary and the errors from
//! the centred binomial distribution with `eta = 21` (standard deviation
//! `sqrt(10.5) = 3.24 >= 3.2`, as fhe.rs does with its CBD). The builder rejects any
//! modulus above the table entry for the requested level.
//!
//! # Presets
//!
//! * [`Preset::N4096`]: `N = 4096`, three NTT primes of 37, 36 and 36 bits,
//!   `log2 q = 108.99 <= 109` (128-bit). The default for `l <= 41` with
//!   fixed-point weights (see [`crate::noise`] for the weight bound it supports).
//! * [`Preset::N8192`]: `N = 8192`, six primes of 37, 37, 36, 36, 36, 36 bits,
//!   `log2 q = 217.99 <= 218` (128-bit). Needed for `l = 64`, or for arbitrary
//!   (full-range) ring weights at any `l`.
//!
//! The primes are the largest primes `p = 1 mod 2N` below the stated powers of two;
//! below `2^50` `tfhe-ntt` uses its AVX-512 IFMA kernels where the CPU has them,
//! which makes three 36-bit primes cheaper than two 55-bit ones.

use std::sync::Arc;

use fusion_core::ring::Ring;
use tfhe_ntt::prime::largest_prime_in_arithmetic_progression64;
use tfhe_ntt::prime64::Plan;

use std::ops::Range;

use crate::arith::{Garner, ScaleToPow2, Shoup, inv_mod, pow2_mod};
use crate::automorphism::PackTables;
use crate::error::HeError;
use crate::query_rounding::{MAX_QUERY_ROUNDING_BITS, QueryRounding};

/// Parameter of the centred binomial error distribution (`|e| <= ETA`, variance `ETA / 2`).
pub const CBD_ETA: u32 = 21;

/// A good default for [`ParamsBuilder::reply_packing`]: merges up to 128 reply
/// ciphertexts into one (enough for the zoo's fully connected layers at batch
/// 1..=128), and costs `7 * digits` key polynomials at setup (1.17 MB at `N = 4096`,
/// 3.1 MB at `N = 8192`, see [`HeParams::galois_key_bytes`]). It fits
/// [`Preset::N4096`] up to `l = 38` (5 levels up to `l = 42`) and [`Preset::N8192`]
/// for every `l <= 64`; `mlp-mnist` at batch 128 needs only 5 levels (0.84 MB).
pub const DEFAULT_PACKING_LEVELS: u32 = 7;

/// Security level against classical attacks, per the HomomorphicEncryption.org standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityLevel {
    /// 128-bit classical security.
    Bits128,
    /// 192-bit classical security.
    Bits192,
    /// 256-bit classical security.
    Bits256,
}

impl SecurityLevel {
    /// The level in bits.
    pub fn bits(self) -> u32 {
        match self {
            SecurityLevel::Bits128 => 128,
            SecurityLevel::Bits192 => 192,
            SecurityLevel::Bits256 => 256,
        }
    }

    /// Maximal `log2 q` for ring degree `n` with a ternary secret
    /// (HomomorphicEncryption.org Security Standard, Nov 2018, Table 1), or `None`
    /// if the standard has no entry for `n`.
    pub fn max_log_q(self, n: usize) -> Option<u32> {
        let row = match n {
            1024 => [27, 19, 14],
            2048 => [54, 37, 29],
            4096 => [109, 75, 58],
            8192 => [218, 152, 118],
            16384 => [438, 305, 237],
            32768 => [881, 611, 476],
            _ => return None,
        };
        Some(match self {
            SecurityLevel::Bits128 => row[0],
            SecurityLevel::Bits192 => row[1],
            SecurityLevel::Bits256 => row[2],
        })
    }
}

/// Named parameter sets: the one HE preset type of the project.
///
/// On the wire (serde) a preset is its variant name (`"N4096"`, `"N8192"`); as
/// text ([`std::fmt::Display`], [`std::str::FromStr`]) it is `n4096` or `n8192`,
/// and parsing also accepts the bare degree (`4096`, `8192`), case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Preset {
    /// `N = 4096`, `q ~ 2^109` (primes of 37, 36, 36 bits); 128-bit security.
    N4096,
    /// `N = 8192`, `q ~ 2^218` (primes of 37, 37, 36, 36, 36, 36 bits); 128-bit security.
    N8192,
}

impl Preset {
    /// A builder initialised with this preset for the ring `Z_{2^l}`.
    pub fn builder(self, ring: Ring) -> ParamsBuilder {
        let (log_n, prime_bits) = match self {
            Preset::N4096 => (12, vec![37, 36, 36]),
            Preset::N8192 => (13, vec![37, 37, 36, 36, 36, 36]),
        };
        ParamsBuilder {
            ring,
            log_n,
            prime_bits,
            security: SecurityLevel::Bits128,
            stat_sec_bits: 40,
            reply_a_extra_bits: None,
            reply_b_extra_bits: None,
            packing_levels: 0,
            query_rounding_bits: 0,
        }
    }

    /// This preset's parameters for the ring `Z_{2^l}` with the defaults.
    pub fn params(self, ring: Ring) -> Result<HeParams, HeError> {
        self.builder(ring).build()
    }

    /// The ring degree.
    pub fn degree(self) -> usize {
        match self {
            Preset::N4096 => 4096,
            Preset::N8192 => 8192,
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::N4096 => "n4096",
            Preset::N8192 => "n8192",
        })
    }
}

impl std::str::FromStr for Preset {
    type Err = HeError;

    /// Parses `n4096`, `4096`, `n8192` or `8192` (case-insensitive, surrounding
    /// white space ignored).
    fn from_str(s: &str) -> Result<Self, HeError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "n4096" | "4096" => Ok(Preset::N4096),
            "n8192" | "8192" => Ok(Preset::N8192),
            other => Err(HeError::InvalidParams(format!(
                "unknown HE preset `{other}` (choices: n4096, 4096, n8192, 8192)"
            ))),
        }
    }
}

/// A validating builder for [`HeParams`].
#[derive(Debug, Clone)]
pub struct ParamsBuilder {
    ring: Ring,
    log_n: u32,
    prime_bits: Vec<u32>,
    security: SecurityLevel,
    stat_sec_bits: u32,
    reply_a_extra_bits: Option<u32>,
    reply_b_extra_bits: Option<u32>,
    packing_levels: u32,
    query_rounding_bits: u32,
}

impl ParamsBuilder {
    /// A builder for ring `Z_{2^l}`, degree `2^log_n` and RNS primes of the given bit sizes
    /// (each prime is the largest unused prime `= 1 mod 2N` below `2^bits`).
    pub fn new(ring: Ring, log_n: u32, prime_bits: Vec<u32>) -> Self {
        ParamsBuilder {
            ring,
            log_n,
            prime_bits,
            security: SecurityLevel::Bits128,
            stat_sec_bits: 40,
            reply_a_extra_bits: None,
            reply_b_extra_bits: None,
            packing_levels: 0,
            query_rounding_bits: 0,
        }
    }

    /// The lattice security level to enforce (default 128).
    pub fn security(mut self, level: SecurityLevel) -> Self {
        self.security = level;
        self
    }

    /// Statistical security parameter of the noise flooding, per reply coefficient
    /// (default 40; must be in `20..=128`).
    pub fn stat_sec_bits(mut self, bits: u32) -> Self {
        self.stat_sec_bits = bits;
        self
    }

    /// Extra bits `k_a` of the reply's `a` polynomial above `l`: it is sent modulo
    /// `2^(l + k_a)` (default `log2 N + 3`).
    pub fn reply_a_extra_bits(mut self, bits: u32) -> Self {
        self.reply_a_extra_bits = Some(bits);
        self
    }

    /// Extra bits `k_b` of the reply's `b` coefficients above `l`: they are sent modulo
    /// `2^(l + k_b)` (default 4).
    pub fn reply_b_extra_bits(mut self, bits: u32) -> Self {
        self.reply_b_extra_bits = Some(bits);
        self
    }

    /// Enables **response packing** ([`crate::pack`]) with up to `levels` merge levels:
    /// the server may merge up to `2^levels` reply ciphertexts into one with Galois
    /// automorphisms and key switching, and the client sends the `levels` Galois keys
    /// this needs once at setup ([`crate::GaloisKeyMsg`]). `0` (the default) disables
    /// packing: no Galois keys, replies as before. At most `log2 N`; the builder also
    /// refuses depths whose worst-case key-switching noise would eat into the
    /// flooding (see [`crate::pack`] and [`DEFAULT_PACKING_LEVELS`]).
    pub fn reply_packing(mut self, levels: u32) -> Self {
        self.packing_levels = levels;
        self
    }

    /// **Query compression** ([`crate::query_rounding`]): the client sends each
    /// coefficient of its queries' `b` polynomials randomly rounded to a
    /// multiple of `2^bits`, `bits` fewer bits per coefficient, at the price of
    /// extra noise (`|r| < 2^bits`) that the layers' noise analysis counts
    /// ([`crate::noise`]). `0` (the default) sends `b` exactly. At most
    /// [`MAX_QUERY_ROUNDING_BITS`]; whether a layer's flooding still reaches
    /// its statistical security is checked per layer, as for any parameters.
    pub fn query_rounding(mut self, bits: u32) -> Self {
        self.query_rounding_bits = bits;
        self
    }

    /// Validates and precomputes.
    pub fn build(self) -> Result<HeParams, HeError> {
        self.build_with(true)
    }

    /// Builds without the security-table and noise-room checks (tests of the
    /// arithmetic on small rings, and the fuzzing entry points, only).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn build_unchecked(self) -> HeParams {
        match self.build_with(false) {
            Ok(p) => p,
            Err(e) => panic!("unchecked build failed: {e}"),
        }
    }

    fn build_with(self, checks: bool) -> Result<HeParams, HeError> {
        let bad = |s: String| Err(HeError::InvalidParams(s));
        if !(10..=15).contains(&self.log_n) {
            return bad(format!("log2 N = {} is outside 10..=15", self.log_n));
        }
        let n = 1usize << self.log_n;
        if self.prime_bits.is_empty() || self.prime_bits.len() > 16 {
            return bad(format!(
                "{} RNS primes requested; need 1..=16",
                self.prime_bits.len()
            ));
        }
        for &b in &self.prime_bits {
            if b < self.log_n + 3 || b > 61 {
                return bad(format!(
                    "prime size {b} bits is outside {}..=61 (primes must be 1 mod 2N and below 2^61)",
                    self.log_n + 3
                ));
            }
        }
        if !(20..=128).contains(&self.stat_sec_bits) {
            return bad(format!(
                "statistical security {} is outside 20..=128",
                self.stat_sec_bits
            ));
        }
        let l = self.ring.bits();
        let k_a = self.reply_a_extra_bits.unwrap_or(self.log_n + 3);
        let k_b = self.reply_b_extra_bits.unwrap_or(4);
        if k_b == 0 || k_a < k_b {
            return bad(format!(
                "reply extra bits need 1 <= k_b <= k_a (got k_a = {k_a}, k_b = {k_b})"
            ));
        }
        if self.query_rounding_bits > MAX_QUERY_ROUNDING_BITS {
            return bad(format!(
                "query rounding by 2^{} exceeds 2^{MAX_QUERY_ROUNDING_BITS}",
                self.query_rounding_bits
            ));
        }
        if l + k_a > 120 {
            return bad(format!("l + k_a = {} exceeds 120 bits", l + k_a));
        }

        // Primes: the largest unused p = 1 mod 2N below 2^bits.
        let two_n = 2 * n as u64;
        let mut primes: Vec<u64> = Vec::with_capacity(self.prime_bits.len());
        for &b in &self.prime_bits {
            let lo = 1u64 << (b - 1);
            let mut hi = (1u64 << b) - 1;
            loop {
                let Some(p) = largest_prime_in_arithmetic_progression64(two_n, 1, lo, hi) else {
                    return bad(format!("no unused NTT prime of {b} bits for N = {n}"));
                };
                if primes.contains(&p) {
                    hi = p - 1;
                    continue;
                }
                primes.push(p);
                break;
            }
        }
        let log2_q: f64 = primes.iter().map(|&p| (p as f64).log2()).sum();
        if f64::from(self.query_rounding_bits + l + 2) > log2_q {
            return bad(format!(
                "query rounding by 2^{} leaves no room for t = 2^{l} below q = 2^{log2_q:.1}",
                self.query_rounding_bits
            ));
        }
        let Some(max_log_q) = self.security.max_log_q(n) else {
            return bad(format!("no security-standard entry for N = {n}"));
        };
        if checks && log2_q > max_log_q as f64 {
            return Err(HeError::InsecureModulus {
                n,
                log2_q,
                max_log_q,
                level: self.security.bits(),
            });
        }
        let mut plans = Vec::with_capacity(primes.len());
        for &p in &primes {
            match Plan::try_new(n, p) {
                Some(plan) => plans.push(plan),
                None => return bad(format!("tfhe-ntt cannot build a plan for N = {n}, p = {p}")),
            }
        }

        // Decryption multiplies the reply's `a` (|a| <= 2^(l+k_a-1)) by the ternary
        // secret exactly over the integers: needs a prime prefix with product > N 2^(l+k_a).
        let need = self.log_n as f64 + (l + k_a) as f64 + 1.0;
        let mut dec_primes = 0;
        let mut acc = 0f64;
        for &p in &primes {
            dec_primes += 1;
            acc += (p as f64).log2();
            if acc > need {
                break;
            }
        }
        if acc <= need || acc >= 126.0 || dec_primes > 3 {
            return bad(format!(
                "cannot decrypt exactly: need at most three leading primes with product above 2^{need:.0}"
            ));
        }

        // Basic noise room: the decryption threshold in q-units must exceed the
        // fixed noise terms with room for flooding (layers check the rest).
        if checks
            && (log2_q < (l + k_a) as f64 + 2.0
                || log2_q < l as f64 + 1.0 + self.stat_sec_bits as f64 + 20.0)
        {
            return bad(format!(
                "log2 q = {log2_q:.1} leaves no room for t = 2^{l} with {}-bit flooding",
                self.stat_sec_bits
            ));
        }

        let q_mod_2_64 = primes.iter().fold(1u64, |acc, &p| acc.wrapping_mul(p));
        let ones = primes.iter().map(|&p| Shoup::new(1, p)).collect();
        let neg_t_inv = primes
            .iter()
            .map(|&p| {
                let t_mod_p = pow2_mod(l, p);
                Shoup::new(p - inv_mod(t_mod_p, p), p)
            })
            .collect();
        let limbs = (log2_q / 64.0).ceil() as usize + 1;
        let pow2_64 = primes
            .iter()
            .map(|&p| {
                (0..limbs)
                    .map(|j| Shoup::new(pow2_mod(64 * j as u32, p), p))
                    .collect()
            })
            .collect();
        let n_inv = primes
            .iter()
            .map(|&p| Shoup::new(inv_mod(n as u64 % p, p), p))
            .collect();
        let query_rounding = QueryRounding::new(&primes, self.query_rounding_bits, limbs);
        let scale_a = ScaleToPow2::new(&primes, l + k_a);
        let scale_b = ScaleToPow2::new(&primes, l + k_b);
        let garner_dec = Garner::new(&primes[..dec_primes]);
        let ks_groups = if self.packing_levels == 0 {
            Vec::new()
        } else {
            if self.packing_levels > self.log_n {
                return bad(format!(
                    "{} packing levels exceed log2 N = {}",
                    self.packing_levels, self.log_n
                ));
            }
            match choose_digit_groups(&primes, n, self.packing_levels, log2_q - l as f64 - 1.0) {
                Some(g) => g,
                // Arithmetic tests on small rings: one digit per prime, no noise check.
                None if !checks => (0..primes.len()).map(|i| i..i + 1).collect(),
                None => {
                    let fits = (1..self.packing_levels)
                        .rev()
                        .find(|&k| {
                            choose_digit_groups(&primes, n, k, log2_q - l as f64 - 1.0).is_some()
                        })
                        .unwrap_or(0);
                    return bad(format!(
                        "{} packing levels: the worst-case key-switching noise does not fit the \
                         decryption threshold of these parameters (at most {fits} levels fit)",
                        self.packing_levels
                    ));
                }
            }
        };
        Ok(HeParams {
            inner: Arc::new(ParamsInner {
                ring: self.ring,
                n,
                log_n: self.log_n,
                primes,
                plans,
                log2_q,
                security: self.security,
                max_log_q,
                stat_sec_bits: self.stat_sec_bits,
                k_a,
                k_b,
                q_mod_2_64,
                ones,
                neg_t_inv,
                pow2_64,
                n_inv,
                scale_a,
                scale_b,
                dec_primes,
                garner_dec,
                packing_levels: self.packing_levels,
                query_rounding,
                ks_groups,
                pack_tables: std::sync::OnceLock::new(),
            }),
        })
    }
}

/// Worst-case key-switching noise (per coefficient, at modulus `q`) of one switch
/// with the gadget `groups`: `sum_G (Q_G - 1)/2 * eta * N`.
pub(crate) fn ks_noise_per_switch(primes: &[u64], groups: &[Range<usize>], n: usize) -> f64 {
    groups
        .iter()
        .map(|g| {
            let q: f64 = primes[g.clone()].iter().map(|&p| p as f64).product();
            (q - 1.0) / 2.0 * CBD_ETA as f64 * n as f64
        })
        .sum()
}

/// Worst-case key-switching noise after a merge tree of `depth` levels: every
/// level at most doubles both children's noise and adds one switch, so
/// `n_k <= 4 n_{k-1} + B`, i.e. `B (4^depth - 1) / 3` (see [`crate::pack`]).
pub(crate) fn ks_noise_tree(per_switch: f64, depth: u32) -> f64 {
    per_switch * (4f64.powi(depth as i32) - 1.0) / 3.0
}

/// The gadget for `levels` merge levels: the largest prime groups (fewest digits,
/// smallest keys) whose worst-case tree noise stays below `2^(threshold_log2 - 4)`,
/// a sixteenth of the decryption threshold at modulus `q`, so that packing leaves
/// the flooding's room essentially unchanged. Groups of up to three primes (Garner
/// composition below `2^126`).
pub(crate) fn choose_digit_groups(
    primes: &[u64],
    n: usize,
    levels: u32,
    threshold_log2: f64,
) -> Option<Vec<Range<usize>>> {
    let l = primes.len();
    for size in (1..=l.min(3)).rev() {
        let groups: Vec<Range<usize>> =
            (0..l).step_by(size).map(|s| s..(s + size).min(l)).collect();
        let fits_i128 = groups.iter().all(|g| {
            primes[g.clone()]
                .iter()
                .map(|&p| (p as f64).log2())
                .sum::<f64>()
                < 126.0
        });
        if !fits_i128 {
            continue;
        }
        let noise = ks_noise_tree(ks_noise_per_switch(primes, &groups, n), levels);
        if noise.log2() <= threshold_log2 - 4.0 {
            return Some(groups);
        }
    }
    None
}

/// The validated parameters and their precomputed tables.
#[derive(Debug)]
pub(crate) struct ParamsInner {
    pub(crate) ring: Ring,
    pub(crate) n: usize,
    pub(crate) log_n: u32,
    pub(crate) primes: Vec<u64>,
    pub(crate) plans: Vec<Plan>,
    pub(crate) log2_q: f64,
    pub(crate) security: SecurityLevel,
    pub(crate) max_log_q: u32,
    pub(crate) stat_sec_bits: u32,
    pub(crate) k_a: u32,
    pub(crate) k_b: u32,
    /// `q mod 2^64`.
    pub(crate) q_mod_2_64: u64,
    /// Shoup constants for reducing a `u64` modulo each prime.
    pub(crate) ones: Vec<Shoup>,
    /// `-t^{-1} mod p_i`.
    pub(crate) neg_t_inv: Vec<Shoup>,
    /// `2^(64 j) mod p_i` for the limbs of multi-word flooding noise.
    pub(crate) pow2_64: Vec<Vec<Shoup>>,
    /// `N^{-1} mod p_i`.
    pub(crate) n_inv: Vec<Shoup>,
    pub(crate) scale_a: ScaleToPow2,
    pub(crate) scale_b: ScaleToPow2,
    pub(crate) dec_primes: usize,
    pub(crate) garner_dec: Garner,
    /// Merge levels of response packing (0: off).
    pub(crate) packing_levels: u32,
    /// The queries' rounding ([`crate::query_rounding`]).
    pub(crate) query_rounding: QueryRounding,
    /// Key-switching gadget: contiguous groups of prime indices, one digit each.
    pub(crate) ks_groups: Vec<Range<usize>>,
    /// Automorphism and monomial tables of the packing (built on first use).
    pub(crate) pack_tables: std::sync::OnceLock<PackTables>,
}

/// Validated RLWE parameters with their precomputed tables (cheap to clone).
///
/// Build with [`Preset::params`] or [`ParamsBuilder`].
#[derive(Debug, Clone)]
pub struct HeParams {
    pub(crate) inner: Arc<ParamsInner>,
}

impl PartialEq for HeParams {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

impl Eq for HeParams {}

impl HeParams {
    /// The plaintext ring `Z_{2^l}` (`t = 2^l`).
    pub fn ring(&self) -> Ring {
        self.inner.ring
    }

    /// The ring degree `N`.
    pub fn degree(&self) -> usize {
        self.inner.n
    }

    /// The RNS primes of `q`.
    pub fn primes(&self) -> &[u64] {
        &self.inner.primes
    }

    /// `log2 q`.
    pub fn log2_q(&self) -> f64 {
        self.inner.log2_q
    }

    /// The enforced lattice security level.
    pub fn security(&self) -> SecurityLevel {
        self.inner.security
    }

    /// Statistical security parameter of the flooding (bits, per reply coefficient).
    pub fn stat_sec_bits(&self) -> u32 {
        self.inner.stat_sec_bits
    }

    /// `k_a`: the reply's `a` polynomial travels modulo `2^(l + k_a)`.
    pub fn reply_a_extra_bits(&self) -> u32 {
        self.inner.k_a
    }

    /// `k_b`: the reply's `b` coefficients travel modulo `2^(l + k_b)`.
    pub fn reply_b_extra_bits(&self) -> u32 {
        self.inner.k_b
    }

    /// Merge levels of response packing (`0`: packing off), see
    /// [`ParamsBuilder::reply_packing`].
    pub fn reply_packing_levels(&self) -> u32 {
        self.inner.packing_levels
    }

    /// `d`: the queries' `b` coefficients travel rounded to multiples of `2^d`
    /// ([`ParamsBuilder::query_rounding`]; `0`: exactly).
    pub fn query_rounding_bits(&self) -> u32 {
        self.inner.query_rounding.bits
    }

    /// Bits of one query coefficient on the wire: those of `⌊(q - 1) / 2^d⌋ + 1`
    /// (of `q - 1` for `d = 0`).
    pub fn query_coeff_bits(&self) -> u32 {
        self.inner.query_rounding.wire_bits
    }

    /// Bytes of one query `b` polynomial on the wire.
    pub fn query_poly_bytes(&self) -> usize {
        (self.query_coeff_bits() as usize * self.inner.n).div_ceil(8)
    }

    /// Digits of the key-switching gadget (one per group of RNS primes; `0` when
    /// packing is off).
    pub fn key_switch_digits(&self) -> usize {
        self.inner.ks_groups.len()
    }

    /// The packing's automorphism and monomial tables (built on first use).
    pub(crate) fn pack_tables(&self) -> &PackTables {
        self.inner.pack_tables.get_or_init(|| {
            let p = &self.inner;
            PackTables::build(p.n, &p.primes, &p.plans, p.packing_levels, &p.ks_groups)
        })
    }

    /// Bits per RNS residue of prime `i` on the wire.
    pub(crate) fn residue_bits(&self, i: usize) -> u32 {
        64 - self.inner.primes[i].leading_zeros()
    }

    /// Bytes of one polynomial modulo `q` on the wire (all residues bit-packed).
    pub fn poly_bytes(&self) -> usize {
        let bits: usize = (0..self.inner.primes.len())
            .map(|i| self.residue_bits(i) as usize)
            .sum();
        (bits * self.inner.n).div_ceil(8)
    }

    /// A one-line statement of the security estimate and its source.
    pub fn security_note(&self) -> String {
        format!(
            "N = {}, log2 q = {:.2} <= {}: {}-bit classical security for a ternary secret and \
             sigma >= 3.2 (HomomorphicEncryption.org Security Standard, Nov 2018, Table 1); \
             flooding at {} bits statistical security per reply coefficient",
            self.inner.n,
            self.inner.log2_q,
            self.inner.max_log_q,
            self.inner.security.bits(),
            self.inner.stat_sec_bits
        )
    }

    /// A canonical byte description used to check that both parties use the same
    /// parameters: `l, log2 N, k_a, k_b, stat, L, primes`, then the packing
    /// (only when on) and the query rounding `d` (only when `d > 0`).
    pub fn fingerprint(&self) -> Vec<u8> {
        let i = &self.inner;
        let mut v = Vec::with_capacity(8 + 8 * i.primes.len());
        v.push(i.ring.bits() as u8);
        v.push(i.log_n as u8);
        v.push(i.k_a as u8);
        v.push(i.k_b as u8);
        v.push(i.stat_sec_bits as u8);
        v.push(i.primes.len() as u8);
        for p in &i.primes {
            v.extend_from_slice(&p.to_le_bytes());
        }
        if i.packing_levels > 0 {
            // Only with packing on, so that the default fingerprint is unchanged.
            v.push(0x50);
            v.push(i.packing_levels as u8);
            v.push(i.ks_groups.len() as u8);
        }
        if i.query_rounding.bits > 0 {
            // Likewise only when the queries are rounded.
            v.push(0x51);
            v.push(i.query_rounding.bits as u8);
        }
        v
    }
}

#[cfg(test)]
mod tests;
