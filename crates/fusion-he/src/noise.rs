//! Noise analysis, flooding and the server-privacy argument.
//!
//! # What the reply must hide
//!
//! The server's result ciphertext before any treatment is `(b, a) = sum_c (b_c, a_c) * W_c`.
//! Its `a` part is `sum_c a_c W_c` where the client knows every `a_c` (they come
//! from the client's seed): from it the client could solve for the weights. Its
//! noise `E = sum_c W_c (e_c + eps_c + r_c)` is a linear function of the weights and of
//! the client's own encryption noise (`e_c` its CBD noise, `eps_c` the encoding's
//! randomised rounding, `r_c` the query rounding of [`crate::query_rounding`],
//! zero when `d = 0`), which the client knows as well. Both must go.
//!
//! # What we do: re-randomisation, noise flooding, then modulus switching
//!
//! 1. **Re-randomise** with an encryption of zero under the client's public key:
//!    add `(u pk0 + e0, u pk1 + e1)` with fresh ternary `u` and CBD `e0, e1`. The new
//!    `a' = a + u pk1 + e1` is, by decision-RLWE with secret `u` (the client knows `s`
//!    and `pk`, but not `u`), indistinguishable from uniform, whatever `a` was. The
//!    phase gains `nu = u e_pk + e0 + e1 s`, which depends on `u`.
//! 2. **Flood** the coefficients that are sent with `F` uniform in `[-2^beta, 2^beta)`
//!    (at modulus `q`). For any fixed `x` with `|x| <= B` the statistical distance
//!    between `F` and `F + x` is at most `B / 2^(beta+1)`. We take `x = E + nu`, so
//!    after flooding the phase `q/t * z + E + nu + F` is statistically close to
//!    `q/t * z + F` (which the simulator can sample from the output share `z` alone)
//!    and independent of `u`, which makes step 1's RLWE argument applicable.
//!    Coefficients that are not sent carry nothing: their `b` part never leaves the
//!    server and `a'` is pseudorandom on its own.
//! 3. **Switch modulus** (compression): `a'` goes to `2^(l + k_a)`, the sent `b'`
//!    coefficients to `2^(l + k_b)`. This is a public deterministic function of the
//!    flooded ciphertext, so it reveals nothing more. The mask `r` is subtracted
//!    after the switch as `2^k_b r`, exactly (no rounding error).
//!
//! Modulus switching alone is *not* enough: it is a deterministic rounding, so the
//! rounded value still depends on `E`; it only acts like flooding with noise of
//! size `q / q'`, which must itself fit below the decryption threshold. The
//! statistical guarantee comes from step 2.
//!
//! **Statistical parameter.** Per sent coefficient the distance is at most
//! `Pr[|E + nu| > E_stat] + E_stat / 2^(beta+1)`, and we require both terms to be at
//! most `2^-(lambda+1)` with `lambda` = [`HeParams::stat_sec_bits`] (default 40). `E_stat`
//! is a high-probability bound (all noise terms are independent, zero-mean and
//! sub-Gaussian: CBD(eta) has variance proxy `eta/2`, each randomised rounding error
//! `1/4`, the query rounding's `2^(2d)/4`) for weights bounded by `2^weight_bits`, the bound the server's weights
//! actually meet (the server checks this before answering and refuses otherwise:
//! [`HeError::InsufficientFlooding`]). Over a whole reply the distances add up: a reply
//! with `k` sent coefficients is within `k 2^-lambda` of the simulation, i.e.
//! `lambda - log2 k` bits (about 28 bits for a full `N = 4096` ciphertext at `lambda = 40`).
//! Raise `lambda` in the builder, or use [`crate::Preset::N8192`], if a per-session
//! bound is wanted: [`SessionFlooding`] below. The flooding width `beta` depends only on public data (parameters
//! and layer geometry, assuming worst-case weights `|w| <= 2^(l-1)`), never on the weights.
//!
//! **Per session** ([`SessionFlooding`]). A session reveals the flooded `b`
//! coefficients of every reply it receives ([`crate::LinearPlan::revealed_coefficients`]
//! per layer call, computable from the public plan). The flooding noises of
//! different coefficients are independent, so a hybrid argument over the `M`
//! revealed coefficients (replace one flooded coefficient by its simulation at a
//! time; the tail events `|E + nu| > E_stat` are handled by a union bound)
//! gives: the statistical distance between the client's whole view of the
//! flooded coefficients of the session and its simulation from the output
//! shares alone is at most `M 2^-lambda_c`, where `lambda_c` is the
//! per-coefficient parameter above (each coefficient contributes its two terms
//! of at most `2^-(lambda_c+1)` each). A session that reveals at most `M`
//! coefficients therefore has `lambda_c - log2 M` bits of statistical security.
//! The bound covers the flooded `b` coefficients only; the `a` parts are
//! pseudorandom under decision-RLWE (a computational, not a statistical, term),
//! and the session's other messages (OT) have their own security arguments.
//! [`SessionFlooding::for_session`] picks `lambda_c = sigma + ceil(log2 M)` for a
//! per-session target `sigma`; the server must then refuse to reveal more than
//! `M` coefficients in the session.
//!
//! **Response packing** ([`crate::pack`]) keeps this argument: each result
//! ciphertext is re-randomised before the merges, the flooding is added to the
//! sent coefficients of the merged ciphertext and covers exactly the same
//! `E + nu` per result, and the key-switching noise the merges add is a function of
//! the re-randomised (pseudorandom) `a` parts and of the client's own key noise
//! only, so it needs no flooding; [`crate::pack`] has the two hybrids.
//!
//! **Threat model.** As in Cheetah, server privacy is argued against a semi-honest
//! client: the bound on `E` assumes the client's encryption noise is fresh CBD
//! noise. A client that crafted its ciphertexts' noise could make `E` exceed the
//! flooding's reach; Fusion's setting (malicious server, semi-honest client) does
//! not require more.
//!
//! # Decryption never fails
//!
//! After the switch the client computes, modulo `2^(l+k_a)`, the phase
//! `2^(k_a-k_b) b'' + a'' s = 2^k_a z + eta` with
//! `|eta| <= (E_det + nu_det + 2^beta) 2^(l+k_a)/q + 2^(k_a-k_b) eps + ||s||_1 eps`,
//! `eps = 1/2 + 2^-48` the rounding error of the switch (packed replies add the
//! worst-case key-switching noise `K_s` of [`crate::pack`] to `E_det`), and decryption is exact iff
//! `|eta| < 2^(k_a-1)`. With deterministic worst cases `|e| <= eta_cbd = 21`,
//! randomised rounding errors `< 1` on each side, the query rounding's `|r| < 2^d`
//! (a term present only when `d > 0`), `||s||_1 <= N`, every weight
//! `|w| <= 2^(l-1)`, `||u||_1 <= N`, we get `E_det = F (eta_cbd + 2 + 2^d) 2^(l-1)`,
//! `nu_det = (2N+1) eta_cbd`, and `beta` is the largest integer that keeps the sum
//! below the threshold. `F` is the number of non-zero weight-polynomial
//! coefficients summed into one output coefficient (all filters of a block, all
//! channel blocks: [`NoiseAnalysis::noise_fan_in`]). This is a worst case over *all*
//! randomness, not a high-probability bound: decryption cannot fail.

//!
//! # Measured margins
//!
//! `cargo test -p fusion-he --lib measured_noise -- --nocapture` measures every
//! result's noise (fixed-point weights `|w| <= 2^15` unless stated) and checks it
//! against the bounds. Units: modulus `q` before flooding, `2^(l+k_a)` after.
//!
//! | preset, layer | max \|E\| measured | high-prob. bound | worst case | threshold | room (bits) |
//! |---|---|---|---|---|---|
//! | N4096 l37, FC 784->16 | 2^23.1 | 2^25.0 | 2^51.1 | 2^70.7 | 47.6 |
//! | N4096 l37, conv 5x5, 8->8 | 2^22.2 | 2^24.0 | 2^49.2 | 2^70.7 | 48.5 |
//! | N4096 l37, batch norm | 2^18.8 | 2^20.6 | 2^42.1 | 2^70.7 | 51.9 |
//! | N8192 l64, FC 300->8, full-range weights | 2^70.4 | 2^72.6 | 2^77.3 | 2^152.7 | 82.3 |
//! | N4096 l37, FC 784->16, queries rounded by `2^12`, \|w\| <= 2^10 | 2^27.2 | 2^29.2 | 2^58.6 | 2^70.7 | 43.5 |
//! | N4096 l37, conv 5x5, 8->8, queries rounded by `2^12`, \|w\| <= 2^10 | 2^26.0 | 2^28.3 | 2^56.7 | 2^70.7 | 44.7 |
//! | N8192 l64, FC 300->8, full-range weights, queries rounded by `2^20` | 2^87.4 | 2^89.8 | 2^92.8 | 2^152.7 | 65.3 |
//! | N8192 l37, FC 300->8, queries rounded by `2^90`, \|w\| <= 2^10 | 2^104.6 | 2^106.8 | 2^135.8 | 2^179.7 | 75.1 |
//!
//! (The rounded rows' flooding reaches 40.3, 40.6, 41.0 and 41.0 bits at their weights:
//! the query rounding spends the flooding's headroom, which is what the server's
//! choice of `d` measures.)
//!
//! The flooding then fills the room: after switching, the worst-case total is
//! `2^13.46` against the threshold `2^14` (N4096; `2^14.46` vs `2^15` for N8192),
//! a guaranteed margin of 0.54 bits for every layer type, and the largest
//! measured value is `2^13.16` (`2^14.13`), 0.84 bits below the threshold.
//!
//! With response packing at the default depth (the measured maximum includes the
//! key-switching noise; its worst case `K_s` counts in the bound):
//!
//! | preset, layer | max \|E\| measured | worst case (incl. `K_s`) | threshold | margin after switching |
//! |---|---|---|---|---|
//! | N4096 l37, FC 784->128 b16, 128 -> 1 ct (depth 7) | 2^51.5 | 2^65.8 | 2^70.7 | 0.48 bits (measured 0.84) |
//! | N4096 l37, conv 4x4 -> 1x1, 8 -> 1 ct (depth 3) | 2^47.3 | 2^57.8 | 2^70.7 | 0.54 bits (measured 0.85) |
//! | N4096 l37, per-feature scaling, 16 -> 4 cts (depth 2) | 2^46.3 | 2^55.7 | 2^70.7 | 0.54 bits (measured 0.83) |
//! | N8192 l64, FC 256->64 b32 full-range weights, 64 -> 1 ct (depth 6) | 2^123.4 | 2^137.1 | 2^152.7 | 0.54 bits (measured 0.83) |
//!
//! The flooding width stays `2^70` (`2^152`), so the flooding's statistical
//! security is unchanged by packing.

use fusion_core::ring::Ring;

use crate::error::HeError;
use crate::params::{CBD_ETA, HeParams, Preset};

/// Rounding error bound of the RNS modulus switch (see `arith::ScaleToPow2`).
pub(crate) const EPS_SWITCH: f64 = 0.5 + 1.0 / (1u64 << 48) as f64;

/// The noise budget of one layer's replies.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseAnalysis {
    /// `F`: non-zero weight-polynomial coefficients summed into one output coefficient.
    pub noise_fan_in: usize,
    /// `beta`: the flooding noise is uniform in `[-2^beta, 2^beta)` (at modulus `q`).
    pub flood_bits: u32,
    /// `log2` of the worst-case noise before flooding, `E_det + nu_det` (modulus `q` units),
    /// for any weights in the ring.
    pub layer_noise_log2: f64,
    /// `log2` of the decryption threshold expressed at modulus `q`, after subtracting
    /// the modulus-switching error.
    pub threshold_log2: f64,
    /// Bits between the threshold and the worst-case layer noise, before flooding:
    /// the room the layer leaves for flooding.
    pub room_bits: f64,
    /// Bits between the threshold and the worst-case total noise (layer, flooding and
    /// modulus switching): strictly positive, so decryption cannot fail.
    pub margin_bits: f64,
}

impl NoiseAnalysis {
    /// Analyses a layer whose output coefficients sum at most `noise_fan_in`
    /// weight-polynomial coefficients.
    pub fn new(params: &HeParams, noise_fan_in: usize) -> Result<Self, HeError> {
        Self::with_extra_noise(params, noise_fan_in, 0.0)
    }

    /// [`NoiseAnalysis::new`] with a further worst-case noise term `extra` (at modulus
    /// `q`) that needs no flooding: the key-switching noise of response packing
    /// ([`crate::pack`]). It counts towards [`NoiseAnalysis::layer_noise_log2`] and
    /// shrinks the room left for the flooding.
    pub fn with_extra_noise(
        params: &HeParams,
        noise_fan_in: usize,
        extra: f64,
    ) -> Result<Self, HeError> {
        let p = &params.inner;
        let l = p.ring.bits() as f64;
        let n = p.n as f64;
        let eta = CBD_ETA as f64;
        let k_a = p.k_a as f64;
        let k_b = p.k_b as f64;
        // In units of the a-modulus 2^(l + k_a).
        let thr_a = 2f64.powf(k_a - 1.0);
        let fixed_a = (2f64.powf(k_a - k_b) + n) * EPS_SWITCH;
        if fixed_a >= thr_a {
            return Err(HeError::InvalidParams(
                "modulus-switching error exceeds the threshold".into(),
            ));
        }
        let scale_log2 = p.log2_q - (l + k_a); // log2(q / q_a)
        let threshold_log2 = scale_log2 + (thr_a - fixed_a).log2();
        let nu_det = (2.0 * n + 1.0) * eta;
        let e_det = noise_fan_in.max(1) as f64
            * (eta + 2.0 + query_rounding_bound(params))
            * 2f64.powf(l - 1.0)
            + nu_det
            + extra.max(0.0);
        let layer_noise_log2 = e_det.log2();
        let room = 2f64.powf(threshold_log2) - e_det;
        if room <= 1.0 {
            return Err(HeError::InvalidParams(format!(
                "layer noise 2^{layer_noise_log2:.1} reaches the decryption threshold 2^{threshold_log2:.1}"
            )));
        }
        let flood_bits = (room * (1.0 - 1e-9)).log2().floor();
        if flood_bits < 1.0 {
            return Err(HeError::InvalidParams("no room for flooding".into()));
        }
        let flood_bits = flood_bits as u32;
        let total_a = (e_det + 2f64.powi(flood_bits as i32)) * 2f64.powf(-scale_log2) + fixed_a;
        Ok(NoiseAnalysis {
            noise_fan_in,
            flood_bits,
            layer_noise_log2,
            threshold_log2,
            room_bits: threshold_log2 - layer_noise_log2,
            margin_bits: (k_a - 1.0) - total_a.log2(),
        })
    }

    /// The analysis of a layer whose plans, at **any** batch size, sum at most
    /// `max_noise_fan_in` weight-polynomial coefficients into one output
    /// coefficient ([`crate::LinearPlan::max_noise_fan_in`]), with the
    /// worst-case key-switching noise of the parameters' deepest reply
    /// packing: a bound for every plan of the layer, which a server can check
    /// once for its weights before it announces parameters.
    pub fn any_batch(params: &HeParams, max_noise_fan_in: usize) -> Result<Self, HeError> {
        let levels = params.reply_packing_levels();
        let extra = if levels == 0 {
            0.0
        } else {
            let per = crate::params::ks_noise_per_switch(
                params.primes(),
                &params.inner.ks_groups,
                params.degree(),
            );
            crate::params::ks_noise_tree(per, levels)
        };
        Self::with_extra_noise(params, max_noise_fan_in, extra)
    }

    /// `log2 E_stat`: a bound on `|E + nu|` that fails with probability at most
    /// `2^-(lambda+1)` per coefficient, for weights `|w| <= 2^weight_bits`.
    pub fn stat_noise_log2(&self, params: &HeParams, weight_bits: u32) -> f64 {
        let lambda = params.stat_sec_bits() as f64;
        let eta = CBD_ETA as f64;
        let n = params.degree() as f64;
        let proxy =
            (eta / 2.0 + 0.5 + query_rounding_proxy(params)) * self.noise_fan_in.max(1) as f64;
        let tail = (2.0 * std::f64::consts::LN_2 * (lambda + 2.0)).sqrt();
        let e_stat = tail * proxy.sqrt() * 2f64.powi(weight_bits as i32) + (2.0 * n + 1.0) * eta;
        e_stat.log2()
    }

    /// Achieved statistical security (bits) per sent coefficient for weights
    /// bounded by `2^weight_bits`: `-log2(2^-(lambda+1) + E_stat / 2^(beta+1))`.
    pub fn flood_security_bits(&self, params: &HeParams, weight_bits: u32) -> f64 {
        let lambda = params.stat_sec_bits() as f64;
        let d = 2f64.powf(-(lambda + 1.0))
            + 2f64.powf(self.stat_noise_log2(params, weight_bits) - (self.flood_bits as f64 + 1.0));
        -d.log2()
    }

    /// Checks the flooding against the parameters' statistical security for the
    /// given weight bound.
    pub fn check_flooding(&self, params: &HeParams, weight_bits: u32) -> Result<f64, HeError> {
        let achieved = self.flood_security_bits(params, weight_bits);
        if achieved + 1e-9 < params.stat_sec_bits() as f64 {
            return Err(HeError::InsufficientFlooding {
                achieved,
                required: params.stat_sec_bits(),
                weight_bits,
                noise_fan_in: self.noise_fan_in,
            });
        }
        Ok(achieved)
    }
}

/// Worst-case `|r|` of the query rounding ([`crate::query_rounding`]): `2^d`
/// (`|r| < 2^d`), `0` without rounding.
fn query_rounding_bound(params: &HeParams) -> f64 {
    match params.query_rounding_bits() {
        0 => 0.0,
        d => 2f64.powi(d as i32),
    }
}

/// Variance proxy of the query rounding's error per coefficient: `2^(2d) / 4`
/// (Hoeffding: zero mean, values in an interval of length `2^d`), `0` without
/// rounding.
fn query_rounding_proxy(params: &HeParams) -> f64 {
    match params.query_rounding_bits() {
        0 => 0.0,
        d => 2f64.powi(2 * d as i32) / 4.0,
    }
}

/// Largest cap on the flooded coefficients one session may reveal
/// ([`SessionFlooding::max_revealed`]): `2^48`.
pub const MAX_REVEALED_COEFFICIENTS: u64 = 1 << 48;

/// Largest per-coefficient statistical parameter the parameter builder accepts.
pub const MAX_STAT_SEC_BITS: u32 = 128;

/// Smallest per-coefficient statistical parameter the parameter builder accepts.
pub const MIN_STAT_SEC_BITS: u32 = 20;

/// The statistical security of the flooding over a whole session (see the
/// module docs, "Per session"): the per-coefficient parameter `lambda_c`
/// ([`HeParams::stat_sec_bits`]) and the cap `M` on the flooded coefficients
/// the session may reveal. The client's whole view of the session's flooded
/// coefficients is within statistical distance `M 2^-lambda_c` of its
/// simulation, i.e. [`SessionFlooding::per_session_bits`] `= lambda_c - log2 M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionFlooding {
    /// `lambda_c`: statistical security per revealed coefficient (bits).
    pub per_coefficient_bits: u32,
    /// `M`: the most flooded coefficients a session may reveal (the session
    /// ends at the cap).
    pub max_revealed: u64,
}

impl SessionFlooding {
    /// The per-coefficient parameter that gives `session_bits` over a session
    /// revealing at most `max_revealed` coefficients: `lambda_c = session_bits
    /// + ceil(log2 max_revealed)`. Fails if `lambda_c` leaves
    /// [`MIN_STAT_SEC_BITS`]`..=`[`MAX_STAT_SEC_BITS`] or the cap leaves
    /// `1..=`[`MAX_REVEALED_COEFFICIENTS`].
    pub fn for_session(session_bits: u32, max_revealed: u64) -> Result<Self, HeError> {
        if !(1..=MAX_REVEALED_COEFFICIENTS).contains(&max_revealed) {
            return Err(HeError::InvalidParams(format!(
                "a session cap of {max_revealed} revealed coefficients is outside 1..=2^48"
            )));
        }
        let log_cap = 64 - (max_revealed - 1).leading_zeros();
        let s = SessionFlooding {
            per_coefficient_bits: session_bits.saturating_add(log_cap),
            max_revealed,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks both fields' ranges.
    pub fn validate(&self) -> Result<(), HeError> {
        if !(MIN_STAT_SEC_BITS..=MAX_STAT_SEC_BITS).contains(&self.per_coefficient_bits) {
            return Err(HeError::InvalidParams(format!(
                "statistical security of {} bits per coefficient is outside \
                 {MIN_STAT_SEC_BITS}..={MAX_STAT_SEC_BITS}",
                self.per_coefficient_bits
            )));
        }
        if !(1..=MAX_REVEALED_COEFFICIENTS).contains(&self.max_revealed) {
            return Err(HeError::InvalidParams(format!(
                "a session cap of {} revealed coefficients is outside 1..=2^48",
                self.max_revealed
            )));
        }
        Ok(())
    }

    /// `lambda_c - log2 M`: the statistical security of the whole session
    /// (bits; negative if the bound is vacuous).
    pub fn per_session_bits(&self) -> f64 {
        self.per_coefficient_bits as f64 - (self.max_revealed as f64).log2()
    }
}

/// The smallest `b` with `|w| <= 2^b` for all signed representatives `w` of `weights`.
pub fn weight_bits(params: &HeParams, weights: impl IntoIterator<Item = u64>) -> u32 {
    let ring = params.ring();
    let max = weights
        .into_iter()
        .map(|w| ring.to_signed(w).unsigned_abs())
        .max()
        .unwrap_or(0);
    if max <= 1 {
        0
    } else {
        64 - (max - 1).leading_zeros()
    }
}

impl Preset {
    /// The smallest preset whose flooding reaches the default 40 bits for weights
    /// `|w| <= 2^weight_bits` in layers whose output coefficients sum at most
    /// `noise_fan_in` weight-polynomial coefficients (see [`crate::noise`]), or an
    /// error if none does.
    pub fn smallest_for(
        ring: Ring,
        weight_bits: u32,
        noise_fan_in: usize,
    ) -> Result<Preset, HeError> {
        let mut last = None;
        for preset in [Preset::N4096, Preset::N8192] {
            let Ok(params) = preset.params(ring) else {
                continue;
            };
            match NoiseAnalysis::new(&params, noise_fan_in)
                .and_then(|a| a.check_flooding(&params, weight_bits))
            {
                Ok(_) => return Ok(preset),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            HeError::InvalidParams(format!("no preset supports l = {}", ring.bits()))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Preset;
    use fusion_core::ring::Ring;

    #[test]
    fn presets_leave_forty_bits_for_fixed_point_weights() {
        // N = 4096, l = 37: a 3136-input FC with 2^16-bounded weights.
        let p = Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
        let a = NoiseAnalysis::new(&p, 8 * 3136).unwrap();
        assert!(a.margin_bits > 0.0, "{a:?}");
        assert!(a.check_flooding(&p, 16).unwrap() >= 40.0);
        // Full-range weights do not fit N = 4096 at 40 bits ...
        assert!(matches!(
            a.check_flooding(&p, 36),
            Err(HeError::InsufficientFlooding { .. })
        ));
        // ... but N = 8192 takes them, for l = 37 and l = 64.
        for l in [37, 64] {
            let p = Preset::N8192.params(Ring::new(l).unwrap()).unwrap();
            let a = NoiseAnalysis::new(&p, 8 * 3136).unwrap();
            assert!(a.margin_bits > 0.0);
            assert!(a.check_flooding(&p, l - 1).unwrap() >= 40.0, "l {l}: {a:?}");
        }
    }

    #[test]
    fn weight_bits_bounds_the_signed_representatives() {
        let p = Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
        let r = p.ring();
        assert_eq!(weight_bits(&p, [0, 1, r.from_signed(-1)]), 0);
        assert_eq!(weight_bits(&p, [2]), 1);
        assert_eq!(weight_bits(&p, [3]), 2);
        assert_eq!(weight_bits(&p, [r.from_signed(-4096)]), 12);
        assert_eq!(weight_bits(&p, [r.from_signed(-4097)]), 13);
        assert_eq!(weight_bits(&p, [1 << 36]), 36);
    }
}
