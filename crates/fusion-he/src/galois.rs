//! Galois automorphisms and key switching for response packing ([`crate::pack`]).
//!
//! **Computes.** The automorphisms `tau_g: a(X) -> a(X^g)` of `R_q = Z_q[X]/(X^N + 1)`
//! for the odd elements `g_k = N / 2^k + 1` (`k = 0 .. levels - 1`), and key
//! switching from `tau_g(s)` back to the client's secret `s`, so that the server can
//! apply `tau_g` to a ciphertext under `s` and get a ciphertext under `s` again.
//!
//! * **Automorphisms in evaluation form.** `tau_g(a)` evaluated at a root `w` of
//!   `X^N + 1` is `a(w^g)`, and `w^g` is again such a root, so in `tfhe-ntt`'s
//!   evaluation order `tau_g` is a fixed permutation of the evaluations, the same
//!   for every prime. The packing tables find each slot's root as a power `psi^e` of one
//!   primitive `2N`-th root (from the transform of `X`) and stores the permutations
//!   and the evaluations of the monomials `X^(2^k)` the packing multiplies by.
//! * **Gadget: RNS digits.** The primes of `q` are cut into contiguous groups
//!   (`HeParams::key_switch_digits` of them; one prime each at `N = 4096`, three at
//!   `N = 8192`); the digit of `a` for group `G` is its centred residue
//!   `d_G = [a]_{Q_G}` modulo `Q_G = prod_{i in G} p_i`, and the gadget vector is
//!   the CRT basis `g_G = (q / Q_G) [(q / Q_G)^{-1}]_{Q_G}`, so `sum_G d_G g_G = a mod q`
//!   and `g_G mod p_j` is `1` for `j in G`, `0` otherwise. No special modulus: it
//!   would have to come out of the 109 bits that the flooding needs (see
//!   [`crate::noise`]).
//! * **Keys** (client, once at setup, [`GaloisKeys`]): for every `g_k` and group `G`,
//!   an RLWE sample `(b, a) = (-a s + e + g_G tau_g(s), a)` with `a` expanded from
//!   one 32-byte seed and `e` from the centred binomial distribution. On the wire
//!   only the `b` polynomials travel ([`crate::GaloisKeyMsg`]).
//! * **Key switching** (server): `KS(b, a) = (b + sum_G d_G k_{G,0}, sum_G d_G k_{G,1})`,
//!   whose phase under `s` is `b + a tau_g(s) + sum_G d_G e_G`: the input's phase under
//!   `tau_g(s)` plus the **key-switching noise** `sum_G d_G e_G`, at most
//!   `sum_G (Q_G - 1)/2 * eta * N` per coefficient in the worst case. It runs in
//!   evaluation form: `L` inverse transforms
//!   of `a`, one forward transform per digit and prime outside its group (a digit
//!   is already known in evaluation form modulo the primes of its own group), and
//!   `2 L` pointwise products per digit.
//!
//! **Learns.** The Galois keys are RLWE samples under `s` of multiples of
//! `tau_g(s)`: publishing them is the usual circular-security assumption of every
//! FHE library that rotates (SEAL, fhe.rs, SPU's Cheetah). The server learns
//! nothing else; the client learns nothing from the server here.

use crate::arith::{inv_mod, pow_mod};
use crate::automorphism::PackTables;
pub use crate::keys::GaloisKeys;
use crate::keys::key_stream;
use crate::params::HeParams;
use crate::poly;

/// The key-switching key of one level, prepared for the server: per digit `G`,
/// `(b, a)` in evaluation form, scaled by `N^{-1}` modulo the primes outside `G` and
/// unscaled modulo the primes of `G` (see [`key_switch`]).
#[derive(Debug, Clone)]
pub(crate) struct KsKey {
    pub(crate) b: Vec<Vec<u64>>,
    pub(crate) a: Vec<Vec<u64>>,
}

/// The Galois keys prepared for the server.
#[derive(Debug, Clone)]
pub(crate) struct PreparedGaloisKeys {
    pub(crate) levels: Vec<KsKey>,
}

impl PreparedGaloisKeys {
    pub(crate) fn new(gk: &GaloisKeys) -> Self {
        let params = &gk.params;
        let p = &params.inner;
        let n = p.n;
        let stride = p.primes.len() * n;
        let digits = p.ks_groups.len();
        let levels = (0..p.packing_levels)
            .map(|k| {
                let mut bs = Vec::with_capacity(digits);
                let mut as_ = Vec::with_capacity(digits);
                for (d, group) in p.ks_groups.iter().enumerate() {
                    let mut b = gk.b[(k as usize * digits + d) * stride..][..stride].to_vec();
                    let mut a = vec![0u64; stride];
                    poly::expand_uniform(params, &gk.seed, key_stream(k, d), &mut a);
                    for (i, plan) in p.plans.iter().enumerate() {
                        if !group.contains(&i) {
                            plan.normalize(&mut b[i * n..(i + 1) * n]);
                            plan.normalize(&mut a[i * n..(i + 1) * n]);
                        }
                    }
                    bs.push(b);
                    as_.push(a);
                }
                KsKey { b: bs, a: as_ }
            })
            .collect();
        PreparedGaloisKeys { levels }
    }
}

/// Scratch buffers of one key switch.
pub(crate) struct KsScratch {
    coeffs: Vec<u64>,
    digit: Vec<u64>,
}

impl KsScratch {
    pub(crate) fn new(params: &HeParams) -> Self {
        let n = params.degree();
        KsScratch {
            coeffs: vec![0u64; params.primes().len() * n],
            digit: vec![0u64; n],
        }
    }
}

/// Key switching of the `a` part `a_eval` (evaluation form scaled by `N^{-1}`, as
/// every ciphertext of the packing): adds `sum_G d_G k_{G,0}` to `out_b` and writes
/// `sum_G d_G k_{G,1}` into `out_a` (same form).
pub(crate) fn key_switch(
    params: &HeParams,
    tables: &PackTables,
    key: &KsKey,
    a_eval: &[u64],
    out_b: &mut [u64],
    out_a: &mut [u64],
    scratch: &mut KsScratch,
) {
    key_switch_with(
        params,
        &params.inner.ks_groups,
        &tables.garners,
        key,
        a_eval,
        out_b,
        out_a,
        scratch,
    );
}

/// [`key_switch`] with an explicit gadget: the prime `groups` of the digits and
/// their Garner compositions (`None` for one-prime groups). The SIMD layers
/// ([`crate::simd`]) use it with their own gadget; the packing passes the
/// parameters' own.
#[allow(clippy::too_many_arguments)]
pub(crate) fn key_switch_with(
    params: &HeParams,
    groups: &[std::ops::Range<usize>],
    garners: &[Option<crate::arith::Garner>],
    key: &KsKey,
    a_eval: &[u64],
    out_b: &mut [u64],
    out_a: &mut [u64],
    scratch: &mut KsScratch,
) {
    let p = &params.inner;
    let n = p.n;
    out_a.fill(0);
    // Coefficients of a (exact residues: the N^{-1} scaling cancels the inverse
    // transform's factor N).
    scratch.coeffs.copy_from_slice(a_eval);
    poly::inv(params, &mut scratch.coeffs);
    let mut res = [0u64; 3];
    for (d, group) in groups.iter().enumerate() {
        for (j, plan) in p.plans.iter().enumerate() {
            let (ob, oa) = (
                &mut out_b[j * n..(j + 1) * n],
                &mut out_a[j * n..(j + 1) * n],
            );
            let (kb, ka) = (&key.b[d][j * n..(j + 1) * n], &key.a[d][j * n..(j + 1) * n]);
            if group.contains(&j) {
                // The digit is a modulo p_j: its N^{-1}-scaled evaluations are a's own.
                let src = &a_eval[j * n..(j + 1) * n];
                plan.mul_accumulate(ob, src, kb);
                plan.mul_accumulate(oa, src, ka);
                continue;
            }
            let q = p.primes[j];
            match &garners[d] {
                None => {
                    let i = group.start;
                    let pi = p.primes[i];
                    let half = pi / 2;
                    let src = &scratch.coeffs[i * n..(i + 1) * n];
                    if pi < 4 * q && q < 1 << 60 {
                        crate::arith::centred_mod_slice(&mut scratch.digit, src, pi, q);
                    } else {
                        let one = p.ones[j];
                        let pi_mod_q = pi % q;
                        for (o, &c) in scratch.digit.iter_mut().zip(src) {
                            let r = one.mul(c, q);
                            *o = if c <= half {
                                r
                            } else if r >= pi_mod_q {
                                r - pi_mod_q
                            } else {
                                r + q - pi_mod_q
                            };
                        }
                    }
                }
                Some(garner) => {
                    let qq = q as i128;
                    for t in 0..n {
                        for (r, i) in res.iter_mut().zip(group.clone()) {
                            *r = scratch.coeffs[i * n + t];
                        }
                        let v = garner.compose_centered(&res[..group.len()]);
                        scratch.digit[t] = v.rem_euclid(qq) as u64;
                    }
                }
            }
            plan.fwd(&mut scratch.digit);
            plan.mul_accumulate(ob, &scratch.digit, kb);
            plan.mul_accumulate(oa, &scratch.digit, ka);
        }
    }
}

/// `2^{-k} mod p_i` for every prime (the packing's pre-scaling).
pub(crate) fn inv_pow2(params: &HeParams, k: u32) -> Vec<u64> {
    params
        .primes()
        .iter()
        .map(|&q| inv_mod(pow_mod(2, k as u64, q), q))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::arith::mul_mod;
    use crate::automorphism::{automorphism_coeffs, galois_element};
    use crate::keys::SecretKey;
    use crate::params::{ParamsBuilder, Preset, ks_noise_per_switch};
    use fusion_core::ring::Ring;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    fn small_params(levels: u32) -> HeParams {
        ParamsBuilder::new(Ring::new(16).unwrap(), 10, vec![30, 30])
            .reply_packing(levels)
            .build_unchecked()
    }

    /// `|x|` of the centred integer with residues `r` modulo `primes` (exact CRT).
    pub(crate) fn crt_centered_abs(r: &[u64], primes: &[u64]) -> f64 {
        use num_bigint::BigUint;
        use num_traits::ToPrimitive;
        let q: BigUint = primes.iter().map(|&p| BigUint::from(p)).product();
        let mut x = BigUint::from(0u8);
        for (&ri, &p) in r.iter().zip(primes) {
            let qs = &q / p;
            let inv = inv_mod((&qs % p).to_u64().unwrap_or(0), p);
            x += qs * BigUint::from(mul_mod(ri, inv, p));
        }
        let x = x % &q;
        let half = &q >> 1u8;
        let m = if x > half { &q - x } else { x };
        m.to_f64().unwrap_or(f64::INFINITY)
    }

    fn reduce(v: &[i64], params: &HeParams) -> Vec<u64> {
        let n = params.degree();
        let mut out = vec![0u64; params.primes().len() * n];
        for (i, &q) in params.primes().iter().enumerate() {
            for j in 0..n {
                out[i * n + j] = v[j].rem_euclid(q as i64) as u64;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The evaluation-form automorphism equals the naive signed permutation of
        /// the coefficients, for every level and random polynomials.
        #[test]
        fn eval_automorphism_matches_naive_permutation(seed in any::<u64>(), k in 0u32..10) {
            let params = small_params(10);
            let n = params.degree();
            let tables = {
                let p = &params.inner;
                PackTables::build(p.n, &p.primes, &p.plans, p.packing_levels, &p.ks_groups)
            };
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let a: Vec<i64> = (0..n).map(|_| (rng.next_u64() % 2001) as i64 - 1000).collect();
            let want = reduce(&automorphism_coeffs(&a, galois_element(n, k)), &params);
            let mut ev = reduce(&a, &params);
            poly::fwd(&params, &mut ev);
            let mut out = vec![0u64; ev.len()];
            tables.automorphism(k as usize, &ev, &mut out);
            poly::normalize(&params, &mut out);
            poly::inv(&params, &mut out);
            prop_assert_eq!(out, want);
        }

        /// Multiplying by the tabulated monomials equals the negacyclic shift.
        #[test]
        fn eval_monomials_match_negacyclic_shift(seed in any::<u64>(), k in 0u32..10, m in -3000i64..3000) {
            let params = small_params(10);
            let n = params.degree();
            let tables = {
                let p = &params.inner;
                PackTables::build(p.n, &p.primes, &p.plans, p.packing_levels, &p.ks_groups)
            };
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let a: Vec<i64> = (0..n).map(|_| (rng.next_u64() % 2001) as i64 - 1000).collect();
            let shift = |a: &[i64], m: i64| -> Vec<i64> {
                let mut out = vec![0i64; n];
                for (j, &c) in a.iter().enumerate() {
                    let e = (j as i64 + m).rem_euclid(2 * n as i64) as usize;
                    if e < n { out[e] += c } else { out[e - n] -= c }
                }
                out
            };
            let mut ev = reduce(&a, &params);
            poly::fwd(&params, &mut ev);
            poly::normalize(&params, &mut ev);
            let mut x = ev.clone();
            tables.mul_monomial(&params.inner.plans, k as usize, &mut x);
            poly::inv(&params, &mut x);
            prop_assert_eq!(x, reduce(&shift(&a, 1 << k), &params));
            let ones = vec![1u64; params.primes().len()];
            let c = tables.scaled_monomial(params.primes(), m, &ones);
            let mut y = ev.clone();
            for (i, plan) in params.inner.plans.iter().enumerate() {
                plan.mul_assign_normalize(&mut y[i * n..(i + 1) * n], &c[i * n..(i + 1) * n]);
            }
            poly::inv(&params, &mut y);
            prop_assert_eq!(y, reduce(&shift(&a, m), &params));
        }
    }

    /// Key switching a ciphertext under tau(s) gives one under s with the same
    /// phase up to the key-switching noise, which stays below its worst-case bound.
    #[test]
    fn key_switching_preserves_the_phase_within_the_bound() {
        for (params, label) in [
            (
                Preset::N4096
                    .builder(Ring::new(37).unwrap())
                    .reply_packing(7)
                    .build()
                    .unwrap(),
                "N4096",
            ),
            (
                Preset::N8192
                    .builder(Ring::new(64).unwrap())
                    .reply_packing(7)
                    .build()
                    .unwrap(),
                "N8192",
            ),
        ] {
            let n = params.degree();
            let stride = params.primes().len() * n;
            let mut rng = ChaCha20Rng::seed_from_u64(3);
            let sk = SecretKey::generate(&params, &mut rng);
            let gk = GaloisKeys::generate(&sk, &mut rng);
            let prepared = PreparedGaloisKeys::new(&gk);
            let tables = {
                let p = &params.inner;
                PackTables::build(p.n, &p.primes, &p.plans, p.packing_levels, &p.ks_groups)
            };
            let bound = ks_noise_per_switch(params.primes(), &params.inner.ks_groups, n);
            for k in [0usize, 3, 6] {
                let g = galois_element(n, k as u32);
                // A random "ciphertext" (b, a) under tau(s): phase b + a tau(s).
                let mut a = vec![0u64; stride];
                poly::expand_uniform(&params, &[k as u8; 32], 9, &mut a);
                poly::normalize(&params, &mut a);
                let mut b = vec![0u64; stride];
                poly::expand_uniform(&params, &[k as u8 + 1; 32], 9, &mut b);
                poly::normalize(&params, &mut b);
                let ts = automorphism_coeffs(sk.coeffs(), g);
                let mut ts_ev = reduce(&ts, &params);
                poly::fwd(&params, &mut ts_ev);
                let mut phase_in = b.clone();
                poly::mul_acc(&params, &mut phase_in, &a, &ts_ev);
                poly::inv(&params, &mut phase_in);
                let mut ob = b.clone();
                let mut oa = vec![0u64; stride];
                let mut scratch = KsScratch::new(&params);
                key_switch(
                    &params,
                    &tables,
                    &prepared.levels[k],
                    &a,
                    &mut ob,
                    &mut oa,
                    &mut scratch,
                );
                // phase under s: ob - oa (-s)... = ob + oa s.
                let mut phase_out = ob.clone();
                let mut neg_oa = oa.clone();
                for (i, &q) in params.primes().iter().enumerate() {
                    for x in &mut neg_oa[i * n..(i + 1) * n] {
                        *x = if *x == 0 { 0 } else { q - *x };
                    }
                }
                poly::mul_acc(&params, &mut phase_out, &neg_oa, sk.neg_s_ntt());
                poly::inv(&params, &mut phase_out);
                // Difference, centred, by exact CRT over all primes.
                let mut max = 0f64;
                for j in 0..n {
                    let diff: Vec<u64> = params
                        .primes()
                        .iter()
                        .enumerate()
                        .map(|(i, &q)| (phase_out[i * n + j] + q - phase_in[i * n + j]) % q)
                        .collect();
                    max = max.max(crt_centered_abs(&diff, params.primes()));
                }
                assert!(
                    max <= bound,
                    "{label} level {k}: 2^{:.1} > 2^{:.1}",
                    max.log2(),
                    bound.log2()
                );
                assert!(max > 0.0);
                println!(
                    "[ks] {label} level {k}: max |ks noise| 2^{:.1}, worst case 2^{:.1}",
                    max.log2(),
                    bound.log2()
                );
            }
        }
    }
}
