//! Query compression: the client's `b` polynomials travel rounded to
//! multiples of `2^d`.
//!
//! **What it computes.** A query ciphertext is `(b, a)` with `b = -a s + Δ m +
//! e (mod q)` and `a` expanded from a public seed ([`crate::Query`]), so only
//! `b` is sent. Its low bits are mostly noise already, so the client sends
//! every coefficient of `b`, read as an integer `x ∈ [0, q)`, **randomly
//! rounded** to a multiple of `2^d`: `x' = ⌊x / 2^d⌋ + [u < x mod 2^d]` for a
//! fresh uniform `u ∈ [0, 2^d)`, in `⌈log2(⌊(q - 1) / 2^d⌋ + 2)⌉` bits
//! instead of the `L` residues' `Σ ⌈log2 p_i⌉` (`d` bits fewer per
//! coefficient). The server uses `2^d x'` in place of `x`: the ciphertext
//! `(2^d x', a)` encrypts the same `m` with the noise `e + r`, where `r = 2^d
//! x' - x` is zero-mean (`E[x'] = x / 2^d`), independent across coefficients
//! given `b` (fresh `u`) and `|r| < 2^d`. This is the "drop the low bits of the
//! query" compression of the performance notes; `d = 0` sends `x` exactly.
//!
//! **What it costs.** The extra noise enters the layer's result multiplied by
//! the weights, like the encryption noise `e`, so the noise analysis
//! ([`crate::noise`]) counts it in both bounds: in the worst case (`|r| <
//! 2^d`, decryption never fails) and in the high-probability bound the
//! flooding must cover (variance proxy `2^(2d) / 4` per coefficient,
//! Hoeffding's for a zero-mean variable in an interval of length `2^d`). The
//! server picks `d` so that every layer's flooding still reaches the
//! statistical security it announces.
//!
//! **What each party learns.** Nothing new. The server sees `x'`, a function
//! of `b` and of the client's coins; `b` is pseudorandom (decision-RLWE), and
//! so is `x'`. The client already knew its own noise `e`; it now also knows
//! `r`, and the flooding covers `W (e + r)` exactly as it covered `W e`.
//!
//! **Arithmetic.** `x` is composed from its residues with Garner's mixed-radix
//! algorithm into little-endian 64-bit limbs; the server reduces `2^d x'` back
//! to residues limb by limb ([`crate::params`]' tables of `2^(64 j) mod p_i`).

use rand::{CryptoRng, Rng};

use crate::arith::{Shoup, inv_mod, mul_mod, reduce_once};

/// Largest `d` the parameter builder accepts.
pub const MAX_QUERY_ROUNDING_BITS: u32 = 128;

/// The precomputed rounding of one parameter set.
#[derive(Debug, Clone)]
pub(crate) struct QueryRounding {
    /// `d`.
    pub(crate) bits: u32,
    /// Bits of one rounded coefficient on the wire.
    pub(crate) wire_bits: u32,
    /// Limbs of one coefficient in memory.
    pub(crate) limbs: usize,
    /// The largest valid rounded coefficient, `⌊(q - 1) / 2^d⌋ + [d > 0]` (limbs).
    pub(crate) max: Vec<u64>,
    /// `(p_0 ... p_{i-1})^{-1} mod p_i` (index 0 unused).
    inv_prefix: Vec<Shoup>,
    /// `p_j mod p_i` for `j < i`, row `i`.
    p_mod: Vec<Vec<Shoup>>,
    /// `1` prepared for reductions modulo `p_i`.
    ones: Vec<Shoup>,
}

impl QueryRounding {
    /// The rounding by `2^bits` for the RNS `primes`, with `limbs` 64-bit limbs
    /// per coefficient (enough for `q + 2^bits`).
    pub(crate) fn new(primes: &[u64], bits: u32, limbs: usize) -> Self {
        let mut inv_prefix = Vec::with_capacity(primes.len());
        let mut p_mod = Vec::with_capacity(primes.len());
        for (i, &p) in primes.iter().enumerate() {
            let prefix = primes[..i]
                .iter()
                .fold(1u64, |a, &pj| mul_mod(a, pj % p, p));
            inv_prefix.push(Shoup::new(if i == 0 { 1 } else { inv_mod(prefix, p) }, p));
            p_mod.push(
                primes[..i]
                    .iter()
                    .map(|&pj| Shoup::new(pj % p, p))
                    .collect(),
            );
        }
        // q - 1, then shifted by d, plus one if rounding up is possible.
        let mut q = vec![0u64; limbs];
        q[0] = 1;
        for &p in primes {
            mul_small(&mut q, p, 0);
        }
        sub_one(&mut q);
        shr(&mut q, bits);
        if bits > 0 {
            add_small(&mut q, 1);
        }
        let wire_bits = bit_len(&q);
        QueryRounding {
            bits,
            wire_bits,
            limbs,
            max: q,
            inv_prefix,
            p_mod,
            ones: primes.iter().map(|&p| Shoup::new(1, p)).collect(),
        }
    }

    /// Rounds one polynomial: `res` holds its coefficients' residues (block
    /// `i` of `N` values modulo `primes[i]`), `out` receives `N` rounded
    /// coefficients of [`QueryRounding::limbs`] limbs each.
    pub(crate) fn round<R: Rng + CryptoRng + ?Sized>(
        &self,
        primes: &[u64],
        res: &[u64],
        rng: &mut R,
        out: &mut [u64],
    ) {
        let n = res.len() / primes.len();
        let mut digits = vec![0u64; primes.len()];
        let words = self.bits.div_ceil(64) as usize;
        let (mut low, mut u) = ([0u64; MAX_LIMBS], [0u64; MAX_LIMBS]);
        for (j, x) in out.chunks_exact_mut(self.limbs).enumerate() {
            self.compose(primes, |i| res[i * n + j], &mut digits, x);
            if self.bits > 0 {
                // low = x mod 2^d, u uniform in [0, 2^d), x = floor(x / 2^d) + [u < low].
                low[..words].copy_from_slice(&x[..words]);
                keep_low_bits(&mut low[..words], self.bits);
                for w in &mut u[..words] {
                    *w = rng.next_u64();
                }
                keep_low_bits(&mut u[..words], self.bits);
                shr(x, self.bits);
                add_small(x, borrow(&u[..words], &low[..words]));
            }
        }
        digits.fill(0);
        low.fill(0);
    }

    /// Garner's mixed-radix composition of the residues `r(i)` into `x`
    /// (limbs): digits `v_i` with `x = v_0 + p_0 (v_1 + p_1 (v_2 + ...))`.
    fn compose(&self, primes: &[u64], r: impl Fn(usize) -> u64, v: &mut [u64], x: &mut [u64]) {
        for (i, &p) in primes.iter().enumerate() {
            // The value of the digits so far, modulo p (Horner from the top).
            let mut t = 0u64;
            for j in (0..i).rev() {
                t = reduce_once(
                    self.p_mod[i][j].mul_ct(t, p) + self.ones[i].mul_ct(v[j], p),
                    p,
                );
            }
            let d = reduce_once(r(i) + p - t, p);
            v[i] = self.inv_prefix[i].mul_ct(d, p);
        }
        x.fill(0);
        let last = primes.len() - 1;
        x[0] = v[last];
        for i in (0..last).rev() {
            mul_small(x, primes[i], v[i]);
        }
    }

    /// Whether the rounded coefficient `x` (limbs) is at most the largest valid one.
    pub(crate) fn in_range(&self, x: &[u64]) -> bool {
        for (a, b) in x.iter().zip(&self.max).rev() {
            if a != b {
                return a < b;
            }
        }
        true
    }

    /// The residues modulo `primes[i]` of `2^d x` for the rounded coefficient
    /// `x` (limbs), with `pow2_64[i][k] = 2^(64 k) mod p_i`.
    pub(crate) fn lift(&self, x: &[u64], primes: &[u64], pow2_64: &[Vec<Shoup>], out: &mut [u64]) {
        let mut y = [0u64; MAX_LIMBS];
        let y = &mut y[..self.limbs];
        y.copy_from_slice(x);
        shl(y, self.bits);
        for (i, &p) in primes.iter().enumerate() {
            let mut acc = 0u64;
            for (k, &limb) in y.iter().enumerate() {
                acc = reduce_once(acc + pow2_64[i][k].mul_ct(limb, p), p);
            }
            out[i] = acc;
        }
    }
}

/// Most limbs of one coefficient (16 primes of at most 61 bits, plus `d`).
pub(crate) const MAX_LIMBS: usize = 17;

/// `x = x * m + c` (limbs, the result must fit).
fn mul_small(x: &mut [u64], m: u64, c: u64) {
    let mut carry = c as u128;
    for limb in x.iter_mut() {
        let v = *limb as u128 * m as u128 + carry;
        *limb = v as u64;
        carry = v >> 64;
    }
}

/// `x += c` (limbs, the result must fit).
fn add_small(x: &mut [u64], c: u64) {
    let mut carry = c;
    for limb in x.iter_mut() {
        let (v, o) = limb.overflowing_add(carry);
        *limb = v;
        carry = u64::from(o);
    }
}

/// `x -= 1` for `x > 0`.
fn sub_one(x: &mut [u64]) {
    for limb in x.iter_mut() {
        let (v, borrow) = limb.overflowing_sub(1);
        *limb = v;
        if !borrow {
            return;
        }
    }
}

/// `x >>= s` (bits shifted out are lost).
fn shr(x: &mut [u64], s: u32) {
    let (words, bits) = ((s / 64) as usize, s % 64);
    for k in 0..x.len() {
        let lo = x.get(k + words).copied().unwrap_or(0);
        let hi = x.get(k + words + 1).copied().unwrap_or(0);
        x[k] = if bits == 0 {
            lo
        } else {
            (lo >> bits) | (hi << (64 - bits))
        };
    }
}

/// `x <<= s` (the result must fit).
fn shl(x: &mut [u64], s: u32) {
    let (words, bits) = ((s / 64) as usize, s % 64);
    for k in (0..x.len()).rev() {
        let at = |i: usize| if i < x.len() { x[i] } else { 0 };
        let hi = k.checked_sub(words).map_or(0, at);
        let lo = k.checked_sub(words + 1).map_or(0, at);
        x[k] = if bits == 0 {
            hi
        } else {
            (hi << bits) | (lo >> (64 - bits))
        };
    }
}

/// Clears every bit of `x` (limbs) from bit `bits` up.
fn keep_low_bits(x: &mut [u64], bits: u32) {
    for (k, limb) in x.iter_mut().enumerate() {
        let from = 64 * k as u32;
        *limb &= match bits.saturating_sub(from) {
            0 => 0,
            b if b >= 64 => u64::MAX,
            b => (1u64 << b) - 1,
        };
    }
}

/// `1` if `a < b` (limbs of equal length), else `0`: the borrow of `a - b`,
/// without a branch on the values.
fn borrow(a: &[u64], b: &[u64]) -> u64 {
    let mut borrow = 0u64;
    for (&x, &y) in a.iter().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (_, b2) = d.overflowing_sub(borrow);
        borrow = u64::from(b1) | u64::from(b2);
    }
    borrow
}

/// Bits of the integer `x` (limbs).
fn bit_len(x: &[u64]) -> u32 {
    x.iter()
        .enumerate()
        .rev()
        .find(|(_, l)| **l != 0)
        .map_or(0, |(k, l)| 64 * k as u32 + 64 - l.leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    fn primes() -> &'static [u64] {
        static P: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
        P.get_or_init(|| {
            crate::Preset::N4096
                .params(fusion_core::ring::Ring::new(37).unwrap())
                .unwrap()
                .primes()
                .to_vec()
        })
    }

    fn to_u128(x: &[u64]) -> u128 {
        x[0] as u128 | (x[1] as u128) << 64
    }

    fn q() -> u128 {
        primes().iter().map(|&p| p as u128).product()
    }

    #[test]
    fn the_largest_rounded_value_and_its_width() {
        for d in [0u32, 1, 7, 13, 40, 64, 65, 100] {
            let qr = QueryRounding::new(primes(), d, 3);
            let want = ((q() - 1) >> d) + u128::from(d > 0);
            assert_eq!(to_u128(&qr.max), want, "d = {d}");
            assert_eq!(qr.wire_bits, 128 - want.leading_zeros(), "d = {d}");
        }
    }

    proptest! {
        #[test]
        fn composition_recovers_the_integer(x in 0u128..u128::MAX) {
            let x = x % q();
            let qr = QueryRounding::new(primes(), 0, 3);
            let mut v = [0u64; 3];
            let mut out = [0u64; 3];
            qr.compose(primes(), |i| (x % primes()[i] as u128) as u64, &mut v, &mut out);
            prop_assert_eq!(to_u128(&out), x);
            prop_assert_eq!(out[2], 0);
        }

        #[test]
        fn rounding_then_lifting_moves_by_less_than_two_to_the_d(
            x in 0u128..u128::MAX, d in 0u32..=100, seed in any::<u64>()
        ) {
            let x = x % q();
            let qr = QueryRounding::new(primes(), d, 3);
            let res: Vec<u64> = primes().iter().map(|&p| (x % p as u128) as u64).collect();
            let mut rounded = [0u64; 3];
            qr.round(primes(), &res, &mut ChaCha20Rng::seed_from_u64(seed), &mut rounded);
            prop_assert!(qr.in_range(&rounded));
            let y = to_u128(&rounded) << d;
            let lo = x.saturating_sub((1u128 << d) - 1);
            prop_assert!(y >= lo && y < x + (1u128 << d), "x {x} y {y}");
            // The lift's residues are those of 2^d x'.
            let pow2: Vec<Vec<Shoup>> = primes()
                .iter()
                .map(|&p| (0..3).map(|k| Shoup::new(crate::arith::pow2_mod(64 * k, p), p)).collect())
                .collect();
            let mut back = [0u64; 3];
            qr.lift(&rounded, primes(), &pow2, &mut back);
            for (i, &p) in primes().iter().enumerate() {
                prop_assert_eq!(back[i] as u128, y % p as u128);
            }
        }
    }

    #[test]
    fn rounding_is_unbiased() {
        // A value halfway between multiples of 2^d rounds up about half the
        // time, one a quarter of the way up about a quarter of the time; with
        // one-limb and two-limb coins.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for d in [8u32, 70] {
            let qr = QueryRounding::new(primes(), d, 3);
            let base = 12345u128 >> (d - 8);
            for (low, want) in [(1u128 << (d - 1), 0.5), (1 << (d - 2), 0.25), (0, 0.0)] {
                let x = (base << d) + low;
                let res: Vec<u64> = primes().iter().map(|&p| (x % p as u128) as u64).collect();
                let trials = 20000;
                let mut up = 0;
                for _ in 0..trials {
                    let mut r = [0u64; 3];
                    qr.round(primes(), &res, &mut rng, &mut r);
                    up += usize::from(to_u128(&r) == base + 1);
                }
                let f = up as f64 / trials as f64;
                assert!((f - want).abs() < 0.02, "d {d}, low {low}: {f}");
            }
        }
    }

    #[test]
    fn shifts_cross_limb_boundaries() {
        let v = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        for s in [0u32, 1, 63, 64, 65, 100] {
            let mut x = [v as u64, (v >> 64) as u64, 0];
            shr(&mut x, s);
            assert_eq!(to_u128(&x), v >> s, "shr {s}");
            let small = v >> 100;
            let mut y = [small as u64, (small >> 64) as u64, 0];
            shl(&mut y, s);
            assert_eq!(to_u128(&y), small << s, "shl {s}");
            let mut z = [v as u64, (v >> 64) as u64, 0];
            keep_low_bits(&mut z, s);
            assert_eq!(
                to_u128(&z),
                if s == 0 {
                    0
                } else {
                    v & (u128::MAX >> (128 - s))
                }
            );
        }
        assert_eq!(borrow(&[5, 1], &[6, 1]), 1);
        assert_eq!(borrow(&[7, 1], &[6, 1]), 0);
        assert_eq!(borrow(&[6, 1], &[6, 1]), 0);
        assert_eq!(borrow(&[u64::MAX, 0], &[0, 1]), 1);
    }
}
