//! Polynomials of `Z_q[X]/(X^N + 1)` in RNS form and the randomness they are built from.
//!
//! A polynomial modulo `q = p_0 ... p_{L-1}` is a `Vec<u64>` of `L * N` residues,
//! prime-major: the residues modulo `p_i` are `poly[i*N .. (i+1)*N]`. In the
//! *evaluation* (NTT) form each block holds the values of the polynomial at the
//! primitive `2N`-th roots of unity modulo `p_i` (in `tfhe-ntt`'s bit-reversed
//! order), so a ring product is a pointwise product. `tfhe-ntt`'s inverse
//! transform omits the factor `N^{-1}`; we fold it into one operand of every
//! product ([`HeParams`] keeps `N^{-1} mod p_i`).

use rand::rngs::ChaCha8Rng;
#[cfg(test)]
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};

use crate::params::{CBD_ETA, HeParams};

/// Forward transform of every residue block of `poly` (coefficients to evaluations).
pub(crate) fn fwd(params: &HeParams, poly: &mut [u64]) {
    let n = params.inner.n;
    for (plan, block) in params.inner.plans.iter().zip(poly.chunks_exact_mut(n)) {
        plan.fwd(block);
    }
}

/// Inverse transform of every residue block (evaluations to `N` times the coefficients).
pub(crate) fn inv(params: &HeParams, poly: &mut [u64]) {
    let n = params.inner.n;
    for (plan, block) in params.inner.plans.iter().zip(poly.chunks_exact_mut(n)) {
        plan.inv(block);
    }
}

/// Multiplies every residue block by `N^{-1}` (evaluation form, so that a later
/// product followed by [`inv`] yields exact coefficients).
pub(crate) fn normalize(params: &HeParams, poly: &mut [u64]) {
    let n = params.inner.n;
    for (plan, block) in params.inner.plans.iter().zip(poly.chunks_exact_mut(n)) {
        plan.normalize(block);
    }
}

/// `acc += lhs * rhs` pointwise, block by block (evaluation form).
#[inline]
pub(crate) fn mul_acc(params: &HeParams, acc: &mut [u64], lhs: &[u64], rhs: &[u64]) {
    let n = params.inner.n;
    for (((plan, a), l), r) in params
        .inner
        .plans
        .iter()
        .zip(acc.chunks_exact_mut(n))
        .zip(lhs.chunks_exact(n))
        .zip(rhs.chunks_exact(n))
    {
        plan.mul_accumulate(a, l, r);
    }
}

/// `acc += rhs` modulo each prime.
#[inline]
pub(crate) fn add_assign(params: &HeParams, acc: &mut [u64], rhs: &[u64]) {
    let n = params.inner.n;
    for ((&p, a), r) in params
        .inner
        .primes
        .iter()
        .zip(acc.chunks_exact_mut(n))
        .zip(rhs.chunks_exact(n))
    {
        for (x, &y) in a.iter_mut().zip(r) {
            let s = *x + y;
            *x = if s >= p { s - p } else { s };
        }
    }
}

/// Writes the residues of small signed coefficients (`|c| < min p_i`) into `out`.
pub(crate) fn small_to_rns(params: &HeParams, coeffs: &[i64], out: &mut [u64]) {
    let n = params.inner.n;
    for (&p, block) in params.inner.primes.iter().zip(out.chunks_exact_mut(n)) {
        for (o, &c) in block.iter_mut().zip(coeffs) {
            debug_assert!(c.unsigned_abs() < p);
            *o = if c >= 0 {
                c as u64
            } else {
                p - c.unsigned_abs()
            };
        }
    }
}

/// `n` coefficients uniform in `{-1, 0, 1}`.
pub(crate) fn sample_ternary<R: Rng + CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let word = rng.next_u64();
        for byte in word.to_le_bytes() {
            // 255 = 3 * 85: reject it so that byte % 3 is uniform.
            if byte < 255 && out.len() < n {
                out.push((byte % 3) as i64 - 1);
            }
        }
    }
    out
}

/// One sample of the centred binomial distribution with parameter [`CBD_ETA`].
#[inline]
pub(crate) fn cbd<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> i64 {
    const MASK: u64 = (1 << CBD_ETA) - 1;
    let x = rng.next_u64();
    (x & MASK).count_ones() as i64 - ((x >> CBD_ETA) & MASK).count_ones() as i64
}

/// `n` samples of the centred binomial distribution.
pub(crate) fn sample_cbd<R: Rng + CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<i64> {
    (0..n).map(|_| cbd(rng)).collect()
}

/// A uniformly random polynomial modulo `q`, in evaluation form, expanded from a
/// public 32-byte seed and a stream index (ChaCha8, rejection sampling per prime).
///
/// A uniform polynomial is uniform in either form, so we define the seeded `a`
/// directly in evaluation form and save the transform on both sides.
pub(crate) fn expand_uniform(params: &HeParams, seed: &[u8; 32], stream: u64, out: &mut [u64]) {
    let n = params.inner.n;
    let mut prg = ChaCha8Rng::from_seed(*seed);
    prg.set_stream(stream);
    for (i, (&p, block)) in params
        .inner
        .primes
        .iter()
        .zip(out.chunks_exact_mut(n))
        .enumerate()
    {
        let bits = params.residue_bits(i);
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        for o in block.iter_mut() {
            loop {
                let v = prg.next_u64() & mask;
                if v < p {
                    *o = v;
                    break;
                }
            }
        }
    }
}

/// Naive negacyclic product modulo `p` (test oracle).
#[cfg(test)]
pub(crate) fn naive_negacyclic(a: &[u64], b: &[u64], p: u64) -> Vec<u64> {
    let n = a.len();
    let mut out = vec![0u128; n];
    let pp = p as u128;
    for (i, &ai) in a.iter().enumerate() {
        for (j, &bj) in b.iter().enumerate() {
            let prod = ai as u128 * bj as u128 % pp;
            let k = i + j;
            if k < n {
                out[k] = (out[k] + prod) % pp;
            } else {
                out[k - n] = (out[k - n] + pp - prod) % pp;
            }
        }
    }
    out.into_iter().map(|x| x as u64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamsBuilder;
    use fusion_core::ring::Ring;
    use proptest::prelude::*;

    fn small_params() -> HeParams {
        // N = 1024 keeps the naive oracle fast (insecure, arithmetic only).
        ParamsBuilder::new(Ring::new(8).unwrap(), 10, vec![30, 30]).build_unchecked()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn ntt_product_matches_naive_negacyclic(seed in any::<u64>()) {
            let params = small_params();
            let n = params.degree();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let l = params.primes().len();
            let mut a = vec![0u64; l * n];
            let mut b = vec![0u64; l * n];
            for (i, &p) in params.primes().iter().enumerate() {
                for j in 0..n {
                    a[i * n + j] = rng.next_u64() % p;
                    b[i * n + j] = rng.next_u64() % p;
                }
            }
            let want: Vec<Vec<u64>> = params.primes().iter().enumerate()
                .map(|(i, &p)| naive_negacyclic(&a[i*n..(i+1)*n], &b[i*n..(i+1)*n], p)).collect();
            let mut fa = a.clone();
            let mut fb = b.clone();
            fwd(&params, &mut fa);
            fwd(&params, &mut fb);
            normalize(&params, &mut fb);
            let mut acc = vec![0u64; l * n];
            mul_acc(&params, &mut acc, &fa, &fb);
            inv(&params, &mut acc);
            for i in 0..l {
                prop_assert_eq!(&acc[i*n..(i+1)*n], &want[i][..]);
            }
            // fwd then inv then normalize is the identity.
            let mut rt = a.clone();
            fwd(&params, &mut rt);
            normalize(&params, &mut rt);
            inv(&params, &mut rt);
            prop_assert_eq!(rt, a);
        }
    }

    #[test]
    fn samplers_stay_in_range_and_are_centred() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let t = sample_ternary(&mut rng, 30000);
        assert!(t.iter().all(|&x| (-1..=1).contains(&x)));
        for v in -1..=1 {
            let c = t.iter().filter(|&&x| x == v).count();
            assert!((9000..11000).contains(&c), "ternary value {v} count {c}");
        }
        let e = sample_cbd(&mut rng, 30000);
        assert!(e.iter().all(|&x| x.abs() <= CBD_ETA as i64));
        let mean = e.iter().sum::<i64>() as f64 / e.len() as f64;
        let var = e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / e.len() as f64;
        assert!(
            mean.abs() < 0.1 && (var - CBD_ETA as f64 / 2.0).abs() < 0.5,
            "mean {mean} var {var}"
        );
    }

    #[test]
    fn seeded_expansion_is_deterministic_and_in_range() {
        let params = crate::params::Preset::N4096
            .params(Ring::new(37).unwrap())
            .unwrap();
        let n = params.degree();
        let l = params.primes().len();
        let mut a = vec![0u64; l * n];
        let mut b = vec![0u64; l * n];
        let mut c = vec![0u64; l * n];
        expand_uniform(&params, &[7; 32], 3, &mut a);
        expand_uniform(&params, &[7; 32], 3, &mut b);
        expand_uniform(&params, &[7; 32], 4, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for (i, &p) in params.primes().iter().enumerate() {
            assert!(a[i * n..(i + 1) * n].iter().all(|&x| x < p));
        }
    }
}
