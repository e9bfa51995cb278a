//! Parameters of the SIMD (batch-encoded) BFV layers: ring degree, RNS
//! ciphertext modulus `q`, plaintext prime `p = 1 mod 2N`, flooding parameter;
//! presets, a validating builder and the worst-case noise budget.
//!
//! # Security and source of the presets
//!
//! The ciphertext side is the crate's own ([`crate::params`]): the same RNS
//! primes and the HomomorphicEncryption.org *Homomorphic Encryption Security
//! Standard* (Albrecht et al., Nov 2018), Table 1, ternary secret, `sigma ~ 3.2`
//! (CBD with `eta = 21`), 128-bit classical security:
//!
//! * [`SimdPreset::N4096`]: `N = 4096`, primes of 37, 36, 36 bits, `log2 q = 108.99 <= 109`.
//! * [`SimdPreset::N8192`]: `N = 8192`, primes of 37, 37, 36, 36, 36, 36 bits,
//!   `log2 q = 217.99 <= 218`. The default for the engine's `p > 2^37`
//!   (CrypTFlow2's SCI_HE uses `N = 8192` as well).
//!
//! The plaintext prime defaults to `PrimeField::ntt_friendly(2^37, 2N)`, the
//! smallest prime `p >= 2^37` with `p = 1 mod 2N` (at `N = 8192`:
//! `p = 2^37 + 34 * 2^14 + 1 = 137439510529`, 38 bits). Any such prime with `p < 2^54`, coprime to `q`,
//! is accepted if the noise budget below permits.
//!
//! # Noise budget (worst case, all randomness)
//!
//! Units: the modulus `q`. A ciphertext's phase is `(q/p) m + E` (BFV with
//! `round(q m / p)` encoding, so plaintext products need no `q mod p`
//! correction: `(q/p) m w = (q/p) [m w]_p mod q`), and decryption after the
//! reply's modulus switch is exact iff `|E| < q/(2p) - (2^(k_a - k_b) + N) eps q / 2^k_a`
//! (`eps = 1/2 + 2^-48`, the rounding of the switch; `k_a`, `k_b` the reply's
//! bit widths above nothing: `a` travels modulo `2^k_a`, `b` modulo `2^k_b`).
//!
//! * fresh input: `|e| <= eta + 1` (client's CBD error, its rounding and the
//!   server's share's rounding, `1/2` each);
//! * one key switch (rotation) adds at most `B_ks = sum_i (q_i - 1)/2 * eta * N`
//!   (one digit per RNS prime, no special modulus; automorphisms keep norms);
//! * a plaintext product multiplies by at most `N (p - 1)/2` (centred weights);
//! * the mask adds `1/2`, the re-randomisation `nu = (2N + 1) eta`.
//!
//! Each layer plan ([`super::plan`]) sums these along its own circuit into
//! `E_det`; the flooding is uniform in `[-2^beta, 2^beta)` with
//! `beta = ceil(log2 E_det) + lambda`, so that for every fixed noise
//! `|x| <= E_det` the statistical distance between `F` and `x + F` is at most
//! `E_det / 2^(beta + 1) <= 2^-(lambda + 1)` per revealed coefficient
//! ([`SimdNoise::flood_security_bits`]), and the plan is refused unless
//! `E_det + 2^beta` stays below the threshold ([`SimdNoise::margin_bits`]).
//! The builder checks the smallest layer (one product of a fresh ciphertext,
//! the per-channel affine layer); plans check their own circuits. At
//! `N = 4096` the default `p > 2^37` does not fit even that (see
//! [`SimdPreset::N4096`]); nothing with rotations fits `N = 4096` at 40 bits.

use std::ops::Range;
use std::sync::Arc;

use fusion_core::field::PrimeField;
use fusion_core::ring::Ring;

use super::encoder::BatchEncoder;
use crate::arith::{Garner, ScaleToPow2, Shoup, inv_mod, mul_mod};
use crate::automorphism::PackTables;
use crate::error::HeError;
use crate::noise::EPS_SWITCH;
use crate::params::{CBD_ETA, HeParams, ParamsBuilder, SecurityLevel};

/// Named SIMD parameter sets (128-bit security, see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SimdPreset {
    /// `N = 4096`, `log2 q = 108.99`. Too small for `p > 2^37` with 40-bit
    /// flooding (a single plaintext product of a fresh ciphertext already
    /// needs `log2 q >= 2 log2 p + 57`); usable for primes up to about `2^25`
    /// in layers without rotations. The builder says so when it refuses.
    N4096,
    /// `N = 8192`, `log2 q = 217.99`: the default for `p > 2^37`.
    N8192,
}

impl SimdPreset {
    /// The builder of this preset with the default plaintext prime
    /// `PrimeField::ntt_friendly(2^37, 2N)` and 40-bit flooding.
    pub fn builder(self) -> SimdParamsBuilder {
        let (log_n, bits) = match self {
            SimdPreset::N4096 => (12, vec![37, 36, 36]),
            SimdPreset::N8192 => (13, vec![37, 37, 36, 36, 36, 36]),
        };
        SimdParamsBuilder::new(log_n, bits)
    }

    /// This preset with the defaults.
    pub fn params(self) -> Result<SimdParams, HeError> {
        self.builder().build()
    }

    /// The ring degree.
    pub fn degree(self) -> usize {
        match self {
            SimdPreset::N4096 => 4096,
            SimdPreset::N8192 => 8192,
        }
    }
}

/// A validating builder for [`SimdParams`].
#[derive(Debug, Clone)]
pub struct SimdParamsBuilder {
    log_n: u32,
    prime_bits: Vec<u32>,
    field: Option<PrimeField>,
    security: SecurityLevel,
    stat_sec_bits: u32,
}

impl SimdParamsBuilder {
    /// Degree `2^log_n`, RNS primes of the given sizes (the largest unused
    /// primes `= 1 mod 2N` below `2^bits`, as [`ParamsBuilder`]).
    pub fn new(log_n: u32, prime_bits: Vec<u32>) -> Self {
        SimdParamsBuilder {
            log_n,
            prime_bits,
            field: None,
            security: SecurityLevel::Bits128,
            stat_sec_bits: 40,
        }
    }

    /// The plaintext prime (default `PrimeField::ntt_friendly(2^37, 2N)`).
    pub fn field(mut self, field: PrimeField) -> Self {
        self.field = Some(field);
        self
    }

    /// Lattice security level (default 128).
    pub fn security(mut self, level: SecurityLevel) -> Self {
        self.security = level;
        self
    }

    /// Statistical security of the flooding per revealed coefficient (default
    /// 40, in `20..=128`).
    pub fn stat_sec_bits(mut self, bits: u32) -> Self {
        self.stat_sec_bits = bits;
        self
    }

    /// Validates and precomputes.
    pub fn build(self) -> Result<SimdParams, HeError> {
        self.build_with(true)
    }

    fn build_with(self, checks: bool) -> Result<SimdParams, HeError> {
        let bad = |s: String| Err(HeError::InvalidParams(s));
        if !(20..=128).contains(&self.stat_sec_bits) {
            return bad(format!(
                "statistical security {} is outside 20..=128",
                self.stat_sec_bits
            ));
        }
        // The ciphertext side: the crate's parameters (their t = 2^l side is unused).
        let ring = Ring::new(1).map_err(|e| HeError::Internal(e.to_string()))?;
        let builder =
            ParamsBuilder::new(ring, self.log_n, self.prime_bits.clone()).security(self.security);
        let he = builder.build()?;
        let n = he.degree();
        let field = match self.field {
            Some(f) => f,
            None => PrimeField::ntt_friendly(1 << 37, 2 * n as u64)
                .ok_or_else(|| HeError::Internal("no default plaintext prime".into()))?,
        };
        let p = field.modulus();
        if p % (2 * n as u64) != 1 {
            return bad(format!("plaintext prime {p} is not 1 mod 2N = {}", 2 * n));
        }
        if he.primes().contains(&p) {
            return bad(format!("plaintext prime {p} divides q"));
        }
        let p_bits = field.bits();
        if p_bits > 54 {
            return bad(format!(
                "plaintext prime of {p_bits} bits; at most 54 supported"
            ));
        }
        let kb = p_bits + 5;
        let ka = kb + self.log_n;
        if ka + p_bits > 127 {
            return bad(format!(
                "reply width k_a = {ka} too large for p of {p_bits} bits"
            ));
        }
        let primes = he.primes().to_vec();
        let groups: Vec<Range<usize>> = (0..primes.len()).map(|i| i..i + 1).collect();
        let tables = PackTables::build(n, &primes, &he.inner.plans, 0, &groups);
        let encoder = BatchEncoder::new(field, n)?;
        let q_mod_p = primes.iter().fold(1u64, |acc, &qi| mul_mod(acc, qi % p, p));
        let neg_p_inv = primes
            .iter()
            .map(|&qi| Shoup::new(qi - inv_mod(p % qi, qi), qi))
            .collect();
        // Decryption: a'' s exactly, |a'' s| <= N 2^(k_a - 1).
        let need = self.log_n as f64 + ka as f64 + 1.0;
        let mut dec_primes = 0;
        let mut acc = 0f64;
        for &qi in &primes {
            dec_primes += 1;
            acc += (qi as f64).log2();
            if acc > need {
                break;
            }
        }
        if acc <= need || acc >= 126.0 || dec_primes > 3 {
            return bad(format!(
                "cannot decrypt exactly: need at most three leading primes above 2^{need:.0}"
            ));
        }
        let garner_dec = Garner::new(&primes[..dec_primes]);
        let ks_bound = primes
            .iter()
            .map(|&qi| (qi - 1) as f64 / 2.0 * CBD_ETA as f64 * n as f64)
            .sum();
        let params = SimdParams {
            inner: Arc::new(SimdInner {
                scale_a: ScaleToPow2::new(&primes, ka),
                scale_b: ScaleToPow2::new(&primes, kb),
                he,
                field,
                stat_sec_bits: self.stat_sec_bits,
                ka,
                kb,
                groups,
                garners: vec![None; primes.len()],
                tables,
                encoder,
                q_mod_p,
                neg_p_inv,
                dec_primes,
                garner_dec,
                ks_bound,
            }),
        };
        if checks {
            // The smallest layer: one product of a fresh ciphertext (per-channel
            // affine); layers with rotations check their own depth when planned.
            let e = params.product_noise(params.fresh_noise());
            if let Err(e) = params.noise_budget(e) {
                return bad(format!(
                    "p = {p} ({p_bits} bits) does not fit N = {n}, log2 q = {:.1} with {}-bit \
                     flooding even for one plaintext product ({e}); use SimdPreset::N8192 or a \
                     smaller prime",
                    params.log2_q(),
                    self.stat_sec_bits
                ));
            }
        }
        Ok(params)
    }
}

#[derive(Debug)]
pub(crate) struct SimdInner {
    /// The ciphertext side: primes, transforms, samplers (ring unused).
    pub(crate) he: HeParams,
    pub(crate) field: PrimeField,
    pub(crate) stat_sec_bits: u32,
    pub(crate) ka: u32,
    pub(crate) kb: u32,
    /// Key-switching gadget: one RNS prime per digit.
    pub(crate) groups: Vec<Range<usize>>,
    pub(crate) garners: Vec<Option<Garner>>,
    /// Evaluation-order tables (automorphism permutations).
    pub(crate) tables: PackTables,
    pub(crate) encoder: BatchEncoder,
    /// `q mod p`.
    pub(crate) q_mod_p: u64,
    /// `-p^{-1} mod q_i`.
    pub(crate) neg_p_inv: Vec<Shoup>,
    pub(crate) dec_primes: usize,
    pub(crate) garner_dec: Garner,
    pub(crate) scale_a: ScaleToPow2,
    pub(crate) scale_b: ScaleToPow2,
    /// Worst-case noise of one key switch (modulus `q`).
    pub(crate) ks_bound: f64,
}

/// Validated SIMD parameters (cheap to clone). Build with [`SimdPreset`] or
/// [`SimdParamsBuilder`].
#[derive(Debug, Clone)]
pub struct SimdParams {
    pub(crate) inner: Arc<SimdInner>,
}

impl PartialEq for SimdParams {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

impl Eq for SimdParams {}

/// The flooding and margin of one layer (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct SimdNoise {
    /// `log2 E_det`: the worst-case noise before flooding (layer, mask, re-randomisation), modulus `q`.
    pub noise_log2: f64,
    /// `beta`: the flooding is uniform in `[-2^beta, 2^beta)`.
    pub flood_bits: u32,
    /// `log2` of the decryption threshold at modulus `q`, after the switch's rounding.
    pub threshold_log2: f64,
    /// `log2 threshold - log2(E_det + 2^beta)`: positive, so decryption cannot fail.
    pub margin_bits: f64,
}

impl SimdNoise {
    /// Bits of statistical security per revealed coefficient:
    /// `-log2(E_det / 2^(beta + 1))`.
    pub fn flood_security_bits(&self) -> f64 {
        self.flood_bits as f64 + 1.0 - self.noise_log2
    }
}

impl SimdParams {
    /// The ring degree `N` (= the number of slots).
    pub fn degree(&self) -> usize {
        self.inner.he.degree()
    }

    /// Slots per row, `N / 2` (rotations act on both rows at once).
    pub fn row_len(&self) -> usize {
        self.degree() / 2
    }

    /// The plaintext field `Z_p`.
    pub fn field(&self) -> PrimeField {
        self.inner.field
    }

    /// The RNS primes of `q`.
    pub fn primes(&self) -> &[u64] {
        self.inner.he.primes()
    }

    /// `log2 q`.
    pub fn log2_q(&self) -> f64 {
        self.inner.he.log2_q()
    }

    /// Statistical security of the flooding, per revealed coefficient.
    pub fn stat_sec_bits(&self) -> u32 {
        self.inner.stat_sec_bits
    }

    /// `k_a`: reply `a` polynomials travel modulo `2^k_a`.
    pub fn reply_a_bits(&self) -> u32 {
        self.inner.ka
    }

    /// `k_b`: reply `b` polynomials travel modulo `2^k_b`.
    pub fn reply_b_bits(&self) -> u32 {
        self.inner.kb
    }

    /// The batch encoder.
    pub fn encoder(&self) -> &BatchEncoder {
        &self.inner.encoder
    }

    /// Digits of the key-switching gadget (one per RNS prime).
    pub fn key_switch_digits(&self) -> usize {
        self.inner.groups.len()
    }

    /// Bytes of one polynomial modulo `q` on the wire.
    pub fn poly_bytes(&self) -> usize {
        self.inner.he.poly_bytes()
    }

    /// Bytes of one reply ciphertext (`N (k_a + k_b)` bits).
    pub fn reply_ct_bytes(&self) -> usize {
        let n = self.degree();
        (n * self.inner.ka as usize).div_ceil(8) + (n * self.inner.kb as usize).div_ceil(8)
    }

    /// The security statement of these parameters.
    pub fn security_note(&self) -> String {
        format!(
            "SIMD BFV: {}; plaintext prime p = {} ({} bits); flooding at {} bits per revealed coefficient",
            self.inner
                .he
                .security_note()
                .split(':')
                .next()
                .unwrap_or(""),
            self.field().modulus(),
            self.field().bits(),
            self.stat_sec_bits()
        )
    }

    /// Canonical description checked by both parties: tag, `log2 N`, `lambda`,
    /// `k_a`, `k_b`, the primes of `q`, `p`.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut v = vec![
            0x53,
            self.degree().trailing_zeros() as u8,
            self.inner.stat_sec_bits as u8,
            self.inner.ka as u8,
            self.inner.kb as u8,
            self.primes().len() as u8,
        ];
        for q in self.primes() {
            v.extend_from_slice(&q.to_le_bytes());
        }
        v.extend_from_slice(&self.field().modulus().to_le_bytes());
        v
    }

    /// `eta + 1`: the worst-case noise of an input ciphertext after the
    /// server added its share.
    pub fn fresh_noise(&self) -> f64 {
        CBD_ETA as f64 + 1.0
    }

    /// `B_ks`: the worst-case noise one key switch adds.
    pub fn key_switch_noise(&self) -> f64 {
        self.inner.ks_bound
    }

    /// Worst-case noise of a plaintext product of a ciphertext with noise
    /// `input`: `N (p - 1)/2 input`.
    pub fn product_noise(&self, input: f64) -> f64 {
        self.degree() as f64 * ((self.field().modulus() - 1) / 2) as f64 * input
    }

    /// The flooding and margin for a layer whose result ciphertexts carry
    /// worst-case noise `layer` (modulus `q`), or an error if it does not fit.
    pub fn noise_budget(&self, layer: f64) -> Result<SimdNoise, HeError> {
        let n = self.degree() as f64;
        let eta = CBD_ETA as f64;
        let p = self.field().modulus() as f64;
        let (ka, kb) = (self.inner.ka as f64, self.inner.kb as f64);
        let log2_q = self.log2_q();
        let e = layer + 0.5 + (2.0 * n + 1.0) * eta;
        let noise_log2 = e.log2();
        // q/(2p) - (2^(ka-kb) + N) eps q / 2^ka, in log2.
        let thr_units = 1.0 / (2.0 * p) - (2f64.powf(ka - kb) + n) * EPS_SWITCH * 2f64.powf(-ka);
        if thr_units <= 0.0 {
            return Err(HeError::InvalidParams(
                "the reply's modulus switch leaves no room".into(),
            ));
        }
        let threshold_log2 = log2_q + thr_units.log2();
        let flood_bits = noise_log2.ceil() as u32 + self.stat_sec_bits();
        let total = e + 2f64.powi(flood_bits as i32);
        let margin_bits = threshold_log2 - total.log2();
        if margin_bits <= 0.0 {
            return Err(HeError::InvalidParams(format!(
                "worst-case noise 2^{noise_log2:.1} with flooding 2^{flood_bits} exceeds the \
                 decryption threshold 2^{threshold_log2:.1}"
            )));
        }
        Ok(SimdNoise {
            noise_log2,
            flood_bits,
            threshold_log2,
            margin_bits,
        })
    }

    pub(crate) fn he(&self) -> &HeParams {
        &self.inner.he
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n8192_preset_takes_the_default_prime_and_n4096_refuses_it() {
        let p = SimdPreset::N8192.params().unwrap();
        let f = p.field();
        assert!(f.modulus() > 1 << 37 && f.modulus() % 16384 == 1);
        assert!(f.holds(Ring::new(37).unwrap()));
        assert_eq!(p.degree(), 8192);
        assert!(p.log2_q() <= 218.0);
        let budget = p
            .noise_budget(
                p.product_noise(p.fresh_noise() + p.key_switch_noise()) + p.key_switch_noise(),
            )
            .unwrap();
        assert!(budget.margin_bits > 10.0, "{budget:?}");
        assert!(budget.flood_security_bits() >= 41.0 - 1e-9);
        let err = SimdPreset::N4096.params().unwrap_err();
        assert!(err.to_string().contains("N8192"), "{err}");
        // A small prime fits N = 4096 for products without rotations only.
        let small = PrimeField::ntt_friendly(1 << 20, 8192).unwrap();
        let p4 = SimdPreset::N4096.builder().field(small).build().unwrap();
        let rotated = p4.product_noise(p4.fresh_noise() + p4.key_switch_noise());
        assert!(p4.noise_budget(rotated).is_err());
    }

    #[test]
    fn builder_rejects_bad_primes_and_statistical_parameters() {
        let not_ntt = PrimeField::new((1 << 61) - 1).unwrap();
        assert!(SimdPreset::N8192.builder().field(not_ntt).build().is_err());
        assert!(
            SimdPreset::N8192
                .builder()
                .stat_sec_bits(10)
                .build()
                .is_err()
        );
        let big = PrimeField::ntt_friendly(1 << 56, 16384).unwrap();
        assert!(SimdPreset::N8192.builder().field(big).build().is_err());
        // Larger flooding still fits N = 8192 at the default prime.
        assert!(
            SimdPreset::N8192
                .builder()
                .stat_sec_bits(80)
                .build()
                .is_ok()
        );
    }
}
