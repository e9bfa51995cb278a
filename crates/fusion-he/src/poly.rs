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

use crate::arith::{reduce_once, signed_residue};
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
            *x = reduce_once(*x + y, p);
        }
    }
}

/// Writes the residues of small signed coefficients (`|c| < min p_i`) into `out`,
/// without a branch on the coefficients (they are secret key or noise).
pub(crate) fn small_to_rns(params: &HeParams, coeffs: &[i64], out: &mut [u64]) {
    let n = params.inner.n;
    for (&p, block) in params.inner.primes.iter().zip(out.chunks_exact_mut(n)) {
        for (o, &c) in block.iter_mut().zip(coeffs) {
            debug_assert!(c.unsigned_abs() < p);
            *o = signed_residue(c, p);
        }
    }
}

/// `n` coefficients uniform in `{-1, 0, 1}`, with no branch or index on a
/// sampled value.
///
/// Each random byte `b < 255` gives `b mod 3 - 1` (`255 = 3 * 85` is rejected
/// so that the residue is uniform). The rejection is on uniform public-size
/// bytes and is independent of the values kept: the output is a sequence of
/// i.i.d. uniform ternary values whichever bytes were rejected, so the number
/// of words drawn (the only thing the rejections change) carries no
/// information about it. Every byte is written unconditionally at the next
/// free position, which advances by the acceptance bit (no branch); the
/// bytes of the last word past `n` are dropped, as before, so the output is
/// bit-identical to the former branching sampler's for the same stream.
pub(crate) fn sample_ternary<R: Rng + CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<i64> {
    let mut out = vec![0i64; n + 8];
    let mut len = 0usize;
    while len < n {
        let word = rng.next_u64();
        for byte in word.to_le_bytes() {
            out[len] = i64::from(byte % 3) - 1;
            len += usize::from(byte != 255);
        }
    }
    out[n..].fill(0);
    out.truncate(n);
    out
}

/// One sample of the centred binomial distribution with parameter [`CBD_ETA`]
/// (already branch-free: two population counts of uniform bits).
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

    /// The ternary sampler before it was made branch-free.
    fn branching_ternary(rng: &mut ChaCha20Rng, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let word = rng.next_u64();
            for byte in word.to_le_bytes() {
                if byte < 255 && out.len() < n {
                    out.push((byte % 3) as i64 - 1);
                }
            }
        }
        out
    }

    #[test]
    fn ternary_sampler_is_bit_identical_to_the_former_branching_sampler() {
        for (seed, n) in (0..40u64).zip([1usize, 7, 8, 9, 1000, 1024, 4096, 30000].iter().cycle()) {
            let mut a = ChaCha20Rng::seed_from_u64(seed);
            let mut b = ChaCha20Rng::seed_from_u64(seed);
            assert_eq!(sample_ternary(&mut a, *n), branching_ternary(&mut b, *n));
            // Both consumed the same words: the streams stay in step.
            assert_eq!(a.next_u64(), b.next_u64(), "seed {seed} n {n}");
        }
    }

    #[test]
    fn small_to_rns_is_bit_identical_to_the_former_branching_lift() {
        let params = small_params();
        let n = params.degree();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut c = sample_cbd(&mut rng, n);
        c[..43]
            .iter_mut()
            .zip(-21i64..=21)
            .for_each(|(x, v)| *x = v);
        let mut got = vec![0u64; params.primes().len() * n];
        small_to_rns(&params, &c, &mut got);
        for (i, &p) in params.primes().iter().enumerate() {
            for (j, &x) in c.iter().enumerate() {
                let want = if x >= 0 {
                    x as u64
                } else {
                    p - x.unsigned_abs()
                };
                assert_eq!(got[i * n + j], want);
            }
        }
    }

    /// Pearson's chi-square statistic of `counts` against `probs`.
    fn chi_square(counts: &[usize], probs: &[f64]) -> f64 {
        let total: usize = counts.iter().sum();
        counts
            .iter()
            .zip(probs)
            .map(|(&c, &p)| {
                let e = p * total as f64;
                (c as f64 - e).powi(2) / e
            })
            .sum()
    }

    #[test]
    fn ternary_and_cbd_samples_follow_their_distributions_under_fixed_seeds() {
        let mut rng = ChaCha20Rng::seed_from_u64(2024);
        let t = sample_ternary(&mut rng, 300_000);
        let mut counts = [0usize; 3];
        for &x in &t {
            counts[(x + 1) as usize] += 1;
        }
        // 2 degrees of freedom: P(chi2 > 13.8) = 0.001.
        let chi = chi_square(&counts, &[1.0 / 3.0; 3]);
        assert!(chi < 13.8, "ternary chi-square {chi}, counts {counts:?}");

        let eta = CBD_ETA as usize;
        let e = sample_cbd(&mut rng, 300_000);
        assert!(
            e.iter().all(|&x| x.unsigned_abs() as usize <= eta),
            "support"
        );
        let mean = e.iter().sum::<i64>() as f64 / e.len() as f64;
        let var = e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / e.len() as f64;
        assert!(mean.abs() < 0.02, "cbd mean {mean}");
        assert!(
            (var - CBD_ETA as f64 / 2.0).abs() < 0.15,
            "cbd variance {var}"
        );
        // The difference of two Binomial(eta, 1/2) is Binomial(2 eta, 1/2) - eta;
        // pool the tails below 5 expected samples.
        let mut pmf = vec![0.0f64; 2 * eta + 1];
        let mut c = 1.0f64;
        for (k, p) in pmf.iter_mut().enumerate() {
            *p = c / 2f64.powi(2 * eta as i32);
            c = c * (2 * eta - k) as f64 / (k + 1) as f64;
        }
        let mut counts = vec![0usize; 2 * eta + 1];
        for &x in &e {
            counts[(x + eta as i64) as usize] += 1;
        }
        let keep: Vec<usize> = (0..pmf.len())
            .filter(|&k| pmf[k] * 300_000.0 >= 5.0)
            .collect();
        let (lo, hi) = (keep[0], *keep.last().expect("bins"));
        let mut pc: Vec<usize> = vec![counts[..=lo].iter().sum()];
        let mut pp: Vec<f64> = vec![pmf[..=lo].iter().sum()];
        for k in lo + 1..hi {
            pc.push(counts[k]);
            pp.push(pmf[k]);
        }
        pc.push(counts[hi..].iter().sum());
        pp.push(pmf[hi..].iter().sum());
        // At most 30 degrees of freedom: P(chi2 > 59.7) = 0.001.
        let chi = chi_square(&pc, &pp);
        assert!(
            pc.len() <= 31 && chi < 59.7,
            "cbd chi-square {chi} over {} bins",
            pc.len()
        );
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
