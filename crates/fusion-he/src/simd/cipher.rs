//! What both halves of the SIMD protocol share: the BFV encodings of slot
//! vectors into `R_q` (the message scaled by `q/p` and rounded, or a
//! plaintext lifted to centred residues) and the per-ciphertext randomness.
//!
//! **Computes.** For coefficients `c in [0, p)` of a slot vector's polynomial
//! ([`super::BatchEncoder`]): `round(q c / p)` modulo every RNS prime, with
//! `q c / p = floor + rho / p`, `rho = (q mod p) c mod p`,
//! `floor = -rho p^{-1} mod q_i`, rounded up iff `rho > p/2`, with no branch on
//! `c`; and the centred lift `c` or `c - p` of a plaintext. Ciphertexts on the
//! server side are `b || a`, `2 L N` residues in evaluation form scaled by
//! `N^{-1}` (so an inverse transform yields exact coefficients).
//!
//! **Learns.** Local arithmetic only.

use crate::arith::reduce_once;

use super::params::SimdParams;

/// Writes the residues of `round(q c_j / p)` for the `N` coefficients `coeffs`
/// (in `[0, p)`, secret) into `out` (coefficient form, `L * N`).
pub(crate) fn encode_scaled(params: &SimdParams, coeffs: &[u64], out: &mut [u64]) {
    let inner = &params.inner;
    let f = inner.field;
    let p = f.modulus();
    let half = p / 2;
    let primes = inner.he.primes();
    let n = coeffs.len();
    for (j, &c) in coeffs.iter().enumerate() {
        let rho = f.mul(inner.q_mod_p, c);
        // 1 iff rho > p/2, without a branch.
        let bump = half.wrapping_sub(rho) >> 63;
        for (i, &q) in primes.iter().enumerate() {
            let v = inner.neg_p_inv[i].mul_ct(rho, q) + bump;
            out[i * n + j] = reduce_once(v, q);
        }
    }
}

/// Writes the centred lift (`c` or `c - p`) of the plaintext coefficients
/// `coeffs` modulo every RNS prime into `out` (coefficient form, `L * N`).
pub(crate) fn lift_centred(params: &SimdParams, coeffs: &[u64], out: &mut [u64]) {
    let f = params.field();
    let primes = params.primes();
    let n = coeffs.len();
    for (i, &q) in primes.iter().enumerate() {
        for (o, &c) in out[i * n..(i + 1) * n].iter_mut().zip(coeffs) {
            *o = f.to_signed(c).rem_euclid(q as i64) as u64;
        }
    }
}

/// The plaintext of the slot vector `slots` in evaluation form (unscaled),
/// ready to multiply a working-form ciphertext.
pub(crate) fn plaintext(params: &SimdParams, slots: &[u64]) -> Vec<u64> {
    let he = params.he();
    let n = he.degree();
    let mut coeffs = vec![0u64; n];
    params.encoder().encode_into(slots, &mut coeffs);
    let mut out = vec![0u64; he.primes().len() * n];
    lift_centred(params, &coeffs, &mut out);
    crate::poly::fwd(he, &mut out);
    out
}

/// `acc += ct * pt` for a working-form ciphertext `ct` (`b || a`) and an
/// evaluation-form plaintext `pt`.
pub(crate) fn mul_plain_acc(params: &SimdParams, acc: &mut [u64], ct: &[u64], pt: &[u64]) {
    let he = params.he();
    let stride = pt.len();
    let (ab, aa) = acc.split_at_mut(stride);
    let (cb, ca) = ct.split_at(stride);
    crate::poly::mul_acc(he, ab, cb, pt);
    crate::poly::mul_acc(he, aa, ca, pt);
}

/// `acc += ct` for working-form ciphertexts.
pub(crate) fn add_ct(params: &SimdParams, acc: &mut [u64], ct: &[u64]) {
    let he = params.he();
    let stride = ct.len() / 2;
    let (ab, aa) = acc.split_at_mut(stride);
    crate::poly::add_assign(he, ab, &ct[..stride]);
    crate::poly::add_assign(he, aa, &ct[stride..]);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use crate::poly;
    use num_bigint::BigUint;
    use num_traits::ToPrimitive;

    /// Test oracle: the slots and the `log2` of the noise of a working-form
    /// ciphertext under `sk`, by exact CRT over the integers.
    pub(crate) fn decrypt_exact(
        params: &SimdParams,
        sk: &SecretKey,
        ct: &[u64],
    ) -> (Vec<u64>, f64) {
        let he = params.he();
        let n = he.degree();
        let stride = he.primes().len() * n;
        let mut ph = ct[..stride].to_vec();
        let mut s = vec![0u64; stride];
        poly::small_to_rns(he, sk.coeffs(), &mut s);
        poly::fwd(he, &mut s);
        poly::mul_acc(he, &mut ph, &ct[stride..], &s);
        poly::inv(he, &mut ph);
        let q: BigUint = he.primes().iter().map(|&x| BigUint::from(x)).product();
        let p = params.field().modulus();
        let pb = BigUint::from(p);
        let mut coeffs = vec![0u64; n];
        let mut max_noise = 0f64;
        for j in 0..n {
            let mut x = BigUint::from(0u8);
            for (i, &qi) in he.primes().iter().enumerate() {
                let qs = &q / qi;
                let inv = crate::arith::inv_mod((&qs % qi).to_u64().unwrap_or(0), qi);
                x += qs * BigUint::from(crate::arith::mul_mod(ph[i * n + j], inv, qi));
            }
            let x = x % &q;
            // m = round(p x / q) mod p; noise = x - q m / p (centred).
            let m = ((&x * &pb + (&q >> 1u8)) / &q) % &pb;
            let m_u = m.to_u64().unwrap_or(0);
            coeffs[j] = m_u;
            let qm = &q * BigUint::from(m_u);
            let xp = &x * &pb;
            let diff = if xp >= qm { &xp - &qm } else { &qm - &xp };
            let other = &(&q * &pb) - &diff;
            let diff = diff.min(other);
            let e = diff.to_f64().unwrap_or(f64::INFINITY) / p as f64;
            max_noise = max_noise.max(e);
        }
        (
            params.encoder().decode(&coeffs).expect("decode"),
            max_noise.log2(),
        )
    }
}
