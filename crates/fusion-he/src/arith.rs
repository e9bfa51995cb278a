//! Word-level modular arithmetic: Shoup multiplication by constants, 2-adic
//! inverses, Garner CRT composition and the RNS-to-power-of-two modulus switch.
//!
//! All moduli here are the RNS primes `p_i < 2^62` of the ciphertext modulus
//! `q = prod p_i`, or powers of two `2^k`, `k <= 127`.

/// `a * b mod p` through a 128-bit product (slow path, for precomputation).
#[inline]
pub(crate) fn mul_mod(a: u64, b: u64, p: u64) -> u64 {
    ((a as u128 * b as u128) % p as u128) as u64
}

/// `a^e mod p`.
pub(crate) fn pow_mod(mut a: u64, mut e: u64, p: u64) -> u64 {
    let mut r = 1 % p;
    a %= p;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, a, p);
        }
        a = mul_mod(a, a, p);
        e >>= 1;
    }
    r
}

/// `a^{-1} mod p` for a prime `p` and `a != 0 mod p`.
pub(crate) fn inv_mod(a: u64, p: u64) -> u64 {
    pow_mod(a, p - 2, p)
}

/// `2^k mod p`.
pub(crate) fn pow2_mod(k: u32, p: u64) -> u64 {
    pow_mod(2, k as u64, p)
}

/// A constant `w < p` prepared for Shoup multiplication modulo `p < 2^63`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shoup {
    w: u64,
    w_shoup: u64,
}

impl Shoup {
    /// Prepares `w mod p`.
    pub(crate) fn new(w: u64, p: u64) -> Self {
        let w = w % p;
        let w_shoup = (((w as u128) << 64) / p as u128) as u64;
        Shoup { w, w_shoup }
    }

    /// `a * w mod p` for any `a < 2^64`, fully reduced.
    #[inline]
    pub(crate) fn mul(self, a: u64, p: u64) -> u64 {
        let q = ((a as u128 * self.w_shoup as u128) >> 64) as u64;
        let r = a.wrapping_mul(self.w).wrapping_sub(q.wrapping_mul(p));
        if r >= p { r - p } else { r }
    }

    /// [`Shoup::mul`] without a branch on `a` or the result (for secret `a`).
    #[inline]
    pub(crate) fn mul_ct(self, a: u64, p: u64) -> u64 {
        let q = ((a as u128 * self.w_shoup as u128) >> 64) as u64;
        reduce_once(a.wrapping_mul(self.w).wrapping_sub(q.wrapping_mul(p)), p)
    }
}

/// `v mod p` for `v < 2p` (`p < 2^63`), without a branch on `v`: the
/// subtraction's borrow becomes a mask that adds `p` back. Used wherever `v`
/// may depend on a secret key or on noise.
///
/// The mask passes through [`black_box`](std::hint::black_box): without it
/// LLVM recognises the pattern as a select and x86's cmov conversion turns
/// it back into a conditional jump (seen in the dudect bench).
#[inline]
pub(crate) fn reduce_once(v: u64, p: u64) -> u64 {
    let (d, borrow) = v.overflowing_sub(p);
    let mask = std::hint::black_box(0u64.wrapping_sub(u64::from(borrow)));
    d.wrapping_add(p & mask)
}

/// `c mod p` for a small signed `c` (`|c| < p`), without a branch on `c`: the
/// sign bit, spread over the word (through the same barrier as
/// [`reduce_once`]), selects whether `p` is added.
#[inline]
pub(crate) fn signed_residue(c: i64, p: u64) -> u64 {
    let neg = std::hint::black_box((c >> 63) as u64);
    (c as u64).wrapping_add(p & neg)
}

/// `(x + c) mod p` for `x < p` and a small signed `c` (`|c| < p`), without a
/// branch on either.
#[inline]
pub(crate) fn add_signed_mod(x: u64, c: i64, p: u64) -> u64 {
    reduce_once(x + signed_residue(c, p), p)
}

/// The inverse of an odd `a` modulo `2^128` (Newton iteration).
pub(crate) fn inv_2adic(a: u64) -> u128 {
    debug_assert!(a & 1 == 1);
    let a = a as u128;
    let mut x = a; // correct modulo 2^3
    for _ in 0..6 {
        x = x.wrapping_mul(2u128.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

/// `a = a + b mod q` elementwise (`a, b < q < 2^63`), vectorised for the CPU at
/// hand (runtime dispatch through `pulp`).
pub(crate) fn add_mod_slice(a: &mut [u64], b: &[u64], q: u64) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for (x, &y) in a.iter_mut().zip(b) {
                let v = *x + y;
                *x = v.min(v.wrapping_sub(q));
            }
        },
    )
}

/// `a = a - b mod q` elementwise (`a, b < q < 2^63`), vectorised.
pub(crate) fn sub_mod_slice(a: &mut [u64], b: &[u64], q: u64) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for (x, &y) in a.iter_mut().zip(b) {
                let d = x.wrapping_sub(y);
                *x = d.min(d.wrapping_add(q));
            }
        },
    )
}

/// `a = a - b` modulo each RNS prime of `params` (`L * N` residues each).
pub(crate) fn sub_mod_slice_rns(params: &crate::params::HeParams, a: &mut [u64], b: &[u64]) {
    let n = params.degree();
    for ((&q, x), y) in params
        .primes()
        .iter()
        .zip(a.chunks_exact_mut(n))
        .zip(b.chunks_exact(n))
    {
        sub_mod_slice(x, y, q);
    }
}

/// The centred residues `c` or `c - p` (`c < p`, `c > p/2` negative) of `src`,
/// reduced modulo `q` into `dst`; needs `p < 4q` (vectorised).
pub(crate) fn centred_mod_slice(dst: &mut [u64], src: &[u64], p: u64, q: u64) {
    debug_assert!(p < 4 * q && q < 1 << 60);
    let half = p / 2;
    let shift = 4 * q - p;
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for (o, &c) in dst.iter_mut().zip(src) {
                // c (< 2q) or c + 4q - p (< 4q), then conditional subtractions of 2q and q.
                let v = if c <= half { c } else { c + shift };
                let v = v.min(v.wrapping_sub(2 * q));
                *o = v.min(v.wrapping_sub(q));
            }
        },
    )
}

/// `2^k - 1` as a `u128` mask, `k <= 128`.
#[inline]
pub(crate) const fn mask128(k: u32) -> u128 {
    if k >= 128 {
        u128::MAX
    } else {
        (1u128 << k) - 1
    }
}

/// Constants to switch a value given by its residues modulo the RNS primes
/// `p_0, ..., p_{L-1}` (an integer `x` in `[0, q)`) to `round(2^k * x / q) mod 2^k`.
///
/// With `y_i = [x_i * (q/p_i)^{-1}]_{p_i}` we have `x = sum_i y_i q/p_i - v q` for
/// an integer `v`, so `2^k x / q = sum_i y_i 2^k / p_i - v 2^k`, and the last term
/// vanishes modulo `2^k`. Each `y_i 2^k / p_i` splits exactly into
/// `int_i + rem_i / p_i` with `rem_i = x_i * ((q/p_i)^{-1} 2^k mod p_i) mod p_i`
/// and `int_i = -rem_i * p_i^{-1} mod 2^k` (because `p_i int_i = y_i 2^k - rem_i`).
/// The fractional parts are summed in `f64`; the rounding is exact unless the
/// true value lies within `2^-48` of a half-integer, so the rounding error is
/// at most `1/2 + 2^-48` in absolute value (see [`crate::noise`]).
#[derive(Debug, Clone)]
pub(crate) struct ScaleToPow2 {
    k: u32,
    c: Vec<Shoup>,
    neg_pinv: Vec<u128>,
    inv_p: Vec<f64>,
}

impl ScaleToPow2 {
    pub(crate) fn new(primes: &[u64], k: u32) -> Self {
        assert!((1..=127).contains(&k));
        let mut c = Vec::with_capacity(primes.len());
        let mut neg_pinv = Vec::with_capacity(primes.len());
        let mut inv_p = Vec::with_capacity(primes.len());
        for (i, &p) in primes.iter().enumerate() {
            let mut q_star = 1u64;
            for (j, &pj) in primes.iter().enumerate() {
                if j != i {
                    q_star = mul_mod(q_star, pj % p, p);
                }
            }
            let q_tilde = inv_mod(q_star, p);
            c.push(Shoup::new(mul_mod(q_tilde, pow2_mod(k, p), p), p));
            neg_pinv.push(inv_2adic(p).wrapping_neg() & mask128(k));
            inv_p.push(1.0 / p as f64);
        }
        ScaleToPow2 {
            k,
            c,
            neg_pinv,
            inv_p,
        }
    }

    /// `round(2^k x / q) mod 2^k` for the integer `x` with residues `res[i] = x mod p_i`.
    #[inline]
    pub(crate) fn apply(&self, res: impl Iterator<Item = u64>, primes: &[u64]) -> u128 {
        let mut frac = 0f64;
        if self.k <= 64 {
            // Everything modulo 2^64 is enough.
            let mut int = 0u64;
            for (i, x) in res.enumerate() {
                let rem = self.c[i].mul(x, primes[i]);
                int = int.wrapping_add(rem.wrapping_mul(self.neg_pinv[i] as u64));
                frac += rem as f64 * self.inv_p[i];
            }
            // frac >= 0; truncation of frac + 1/2 is round-half-up.
            let r = (frac + 0.5) as u64;
            return (int.wrapping_add(r) as u128) & mask128(self.k);
        }
        let mut int = 0u128;
        for (i, x) in res.enumerate() {
            let rem = self.c[i].mul(x, primes[i]);
            int = int.wrapping_add((rem as u128).wrapping_mul(self.neg_pinv[i]));
            frac += rem as f64 * self.inv_p[i];
        }
        let r = (frac + 0.5) as u64 as u128;
        int.wrapping_add(r) & mask128(self.k)
    }
}

/// Garner CRT composition for up to three primes whose product is below `2^127`.
#[derive(Debug, Clone)]
pub(crate) struct Garner {
    primes: Vec<u64>,
    /// `p0^{-1} mod p1`.
    inv01: Shoup,
    /// `(p0 p1)^{-1} mod p2`.
    inv012: Shoup,
    /// `2^64 mod p2` (reduction of a 128-bit value modulo p2).
    two64_p2: Shoup,
    one_p1: Shoup,
    one_p2: Shoup,
    product: u128,
}

impl Garner {
    pub(crate) fn new(primes: &[u64]) -> Self {
        assert!(!primes.is_empty() && primes.len() <= 3);
        let product = primes.iter().fold(1u128, |acc, &p| acc * p as u128);
        let p1 = primes.get(1).copied().unwrap_or(3);
        let p2 = primes.get(2).copied().unwrap_or(3);
        let inv01 = if primes.len() >= 2 {
            Shoup::new(inv_mod(primes[0] % p1, p1), p1)
        } else {
            Shoup::new(0, p1)
        };
        let inv012 = if primes.len() == 3 {
            let p01 = mul_mod(primes[0] % p2, primes[1] % p2, p2);
            Shoup::new(inv_mod(p01, p2), p2)
        } else {
            Shoup::new(0, p2)
        };
        Garner {
            primes: primes.to_vec(),
            inv01,
            inv012,
            two64_p2: Shoup::new(pow2_mod(64, p2), p2),
            one_p1: Shoup::new(1, p1),
            one_p2: Shoup::new(1, p2),
            product,
        }
    }

    /// The product of the primes.
    #[cfg(test)]
    pub(crate) fn product(&self) -> u128 {
        self.product
    }

    /// The integer in `[0, prod p_i)` with the given (reduced) residues.
    #[inline]
    pub(crate) fn compose(&self, r: &[u64]) -> u128 {
        let p = &self.primes;
        if p.len() == 1 {
            return r[0] as u128;
        }
        let r0 = self.one_p1.mul(r[0], p[1]);
        let d = if r[1] >= r0 {
            r[1] - r0
        } else {
            r[1] + p[1] - r0
        };
        let v1 = self.inv01.mul(d, p[1]);
        let x01 = r[0] as u128 + p[0] as u128 * v1 as u128;
        if p.len() == 2 {
            return x01;
        }
        let q = p[2];
        let lo = self.one_p2.mul(x01 as u64, q);
        let hi = self.two64_p2.mul((x01 >> 64) as u64, q);
        let mut x01_mod = lo + hi;
        if x01_mod >= q {
            x01_mod -= q;
        }
        let d2 = if r[2] >= x01_mod {
            r[2] - x01_mod
        } else {
            r[2] + q - x01_mod
        };
        let v2 = self.inv012.mul(d2, q);
        x01 + (p[0] as u128 * p[1] as u128) * v2 as u128
    }

    /// The centred representative in `(-P/2, P/2]` of the composed integer, as `i128`.
    #[inline]
    pub(crate) fn compose_centered(&self, r: &[u64]) -> i128 {
        let x = self.compose(r);
        if x > self.product / 2 {
            x as i128 - self.product as i128
        } else {
            x as i128
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_free_reductions_match_the_former_branching_forms() {
        let primes = [P[0], P[1], (1 << 30) - 35, (1u64 << 61) - 1, 3];
        for &p in &primes {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for k in 0..10_000u64 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let v = match k {
                    0 => 0,
                    1 => p - 1,
                    2 => p,
                    3 => 2 * p - 1,
                    _ => x % (2 * p),
                };
                assert_eq!(reduce_once(v, p), if v >= p { v - p } else { v });
                let c = ((x >> 7) % 43) as i64 - 21;
                let c = if p <= 21 { c % p as i64 } else { c };
                let old = if c >= 0 {
                    c as u64
                } else {
                    p - c.unsigned_abs()
                };
                assert_eq!(signed_residue(c, p), old);
                let y = (x >> 3) % p;
                let old_add = {
                    let v = y + old;
                    if v >= p { v - p } else { v }
                };
                assert_eq!(add_signed_mod(y, c, p), old_add);
            }
        }
    }

    #[test]
    fn slice_helpers_match_scalar_arithmetic() {
        let (p, q) = (P[0], P[1]);
        let a: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % q)
            .collect();
        let b: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x2545_f491_4f6c_dd1d) % q)
            .collect();
        let mut s = a.clone();
        add_mod_slice(&mut s, &b, q);
        let mut d = a.clone();
        sub_mod_slice(&mut d, &b, q);
        for i in 0..a.len() {
            assert_eq!(s[i], (a[i] + b[i]) % q);
            assert_eq!(d[i], (a[i] + q - b[i]) % q);
        }
        let c: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % p)
            .chain([0, p / 2, p / 2 + 1, p - 1])
            .collect();
        // Digits of a 37-bit prime modulo a 36-bit one and the other way round.
        for (p, q) in [(p, q), (q, p), (P[2], P[1])] {
            let mut o = vec![0u64; c.len()];
            let c: Vec<u64> = c.iter().map(|&x| x % p).collect();
            centred_mod_slice(&mut o, &c, p, q);
            for (i, &x) in c.iter().enumerate() {
                let centred = if x <= p / 2 {
                    x as i128
                } else {
                    x as i128 - p as i128
                };
                assert_eq!(
                    o[i] as i128,
                    centred.rem_euclid(q as i128),
                    "p {p} q {q} x {x}"
                );
            }
        }
    }

    const P: [u64; 3] = [137438822401, 68719230977, 68719403009];

    #[test]
    fn shoup_matches_slow_multiplication() {
        for &p in &P {
            for w in [0u64, 1, 2, p - 1, p / 3, 123456789] {
                let s = Shoup::new(w, p);
                for a in [0u64, 1, p - 1, p, 2 * p + 5, u64::MAX, u64::MAX / 3] {
                    assert_eq!(s.mul(a, p), mul_mod(a % p, w % p, p), "p {p} w {w} a {a}");
                    assert_eq!(s.mul_ct(a, p), s.mul(a, p), "p {p} w {w} a {a}");
                }
            }
        }
    }

    #[test]
    fn two_adic_inverse_is_an_inverse() {
        for &p in &P {
            assert_eq!(inv_2adic(p).wrapping_mul(p as u128), 1);
        }
    }

    #[test]
    fn garner_recovers_small_integers() {
        let g = Garner::new(&P);
        for x in [0u128, 1, 12345678901234567890123456789u128, g.product() - 1] {
            let r: Vec<u64> = P.iter().map(|&p| (x % p as u128) as u64).collect();
            assert_eq!(g.compose(&r), x);
        }
        let g2 = Garner::new(&P[..2]);
        let x = g2.product() - 7;
        let r: Vec<u64> = P[..2].iter().map(|&p| (x % p as u128) as u64).collect();
        assert_eq!(g2.compose_centered(&r), -7);
    }

    #[test]
    fn scale_to_pow2_rounds_like_exact_arithmetic() {
        // Two primes so that the exact value fits u128 arithmetic in the check.
        let primes = &P[..2];
        let q = primes[0] as u128 * primes[1] as u128;
        for k in [1u32, 20, 52, 60] {
            let s = ScaleToPow2::new(primes, k);
            for x in [0u128, 1, q / 2, q / 2 + 1, q - 1, q / 3, 987654321987654321] {
                let res = primes.iter().map(|&p| (x % p as u128) as u64);
                let got = s.apply(res, primes);
                // exact: round(2^k x / q) with x < 2^73, k <= 60 => fits in u128 below 2^133? use split
                let num = x << k.min(50);
                let rest = k - k.min(50);
                let mut quo = num / q;
                let mut rem = num % q;
                for _ in 0..rest {
                    quo <<= 1;
                    rem <<= 1;
                    if rem >= q {
                        quo += 1;
                        rem -= q;
                    }
                }
                if 2 * rem >= q {
                    quo += 1;
                }
                let want = quo & mask128(k);
                assert_eq!(got, want, "k {k} x {x}");
            }
        }
    }

    use num_bigint::BigUint;
    use proptest::prelude::*;

    fn primes(count: usize) -> Vec<u64> {
        let mut v = Vec::new();
        let mut hi = (1u64 << 37) - 1;
        while v.len() < count {
            let p =
                tfhe_ntt::prime::largest_prime_in_arithmetic_progression64(8192, 1, 1 << 35, hi)
                    .unwrap();
            v.push(p);
            hi = p - 1;
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn garner_matches_big_integer_crt(count in 1usize..=3, seed in any::<u64>()) {
            let ps = primes(count);
            let q: BigUint = ps.iter().map(|&p| BigUint::from(p)).product();
            let x = BigUint::from(seed) * BigUint::from(seed.rotate_left(17) | 1) % &q;
            let res: Vec<u64> = ps.iter().map(|&p| (&x % p).to_u64_digits().first().copied().unwrap_or(0)).collect();
            let g = Garner::new(&ps);
            prop_assert_eq!(BigUint::from(g.compose(&res)), x);
        }

        #[test]
        fn scale_to_pow2_matches_exact_rounding(count in 1usize..=6, k in 1u32..=120, a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
            let ps = primes(count);
            let q: BigUint = ps.iter().map(|&p| BigUint::from(p)).product();
            let x = ((BigUint::from(a) << 128u32) + (BigUint::from(b) << 64u32) + BigUint::from(c)) % &q;
            let res: Vec<u64> = ps.iter().map(|&p| (&x % p).to_u64_digits().first().copied().unwrap_or(0)).collect();
            let s = ScaleToPow2::new(&ps, k);
            let got = s.apply(res.iter().copied(), &ps);
            // round(2^k x / q) mod 2^k, exactly.
            let num = (x << k) + (&q >> 1u32);
            let want = (num / &q) % (BigUint::from(1u8) << k);
            let got = BigUint::from(got);
            // Exact except within 2^-48 of a half-integer (never hit by random inputs).
            prop_assert_eq!(got, want);
        }
    }
}
