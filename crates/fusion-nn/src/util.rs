//! Small deterministic helpers on a seeded RNG (stable across `rand` versions:
//! they only use `next_u64` of ChaCha20).

use rand::Rng;

/// A uniform `f64` in `[0, 1)` from 53 random bits.
pub fn uniform01<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal sample (Box-Muller).
pub fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = 1.0 - uniform01(rng); // (0, 1]
    let u2 = uniform01(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniform integer in `0..n` (`n > 0`), unbiased (Lemire's method).
pub fn below<R: Rng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    debug_assert!(n > 0);
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = (rng.next_u64() as u128) * (n as u128);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Fisher-Yates shuffle.
pub fn shuffle<T, R: Rng + ?Sized>(rng: &mut R, xs: &mut [T]) {
    for i in (1..xs.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        xs.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn normal_has_unit_variance_and_shuffle_is_a_permutation() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let n = 20000;
        let xs: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        let mut p: Vec<usize> = (0..100).collect();
        shuffle(&mut rng, &mut p);
        assert_ne!(p, (0..100).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
        assert!((0..1000).all(|_| below(&mut rng, 7) < 7));
    }
}
