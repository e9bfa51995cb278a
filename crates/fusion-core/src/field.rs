//! Prime fields `Z_p`: the share domain of backends that work modulo a prime
//! (CrypTFlow2's SCI_HE, DELPHI), beside the ring `Z_{2^l}` of [`crate::ring`].
//!
//! [`PrimeField`] is the one validated type for such a modulus, shared by the
//! HE crate (SIMD plaintext modulus), the OT crate (field comparisons and
//! truncation) and the engine (its `Domain::Field`). The modulus is a public
//! parameter; the arithmetic here is on secret shares, so it never branches
//! on its operands (reductions are by `%` on `u128`, or by a masked
//! conditional subtraction).

use rand::{CryptoRng, Rng};

use crate::Error;
use crate::ring::Ring;

/// An odd prime modulus `p < 2^62`, checked at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrimeField {
    p: u64,
}

/// Deterministic Miller-Rabin for 64-bit integers (these bases are exact
/// below `2^64`). Public input only (the modulus is a public parameter).
pub fn is_prime(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for q in BASES {
        if n.is_multiple_of(q) {
            return n == q;
        }
    }
    let mul = |a: u64, b: u64| ((u128::from(a) * u128::from(b)) % u128::from(n)) as u64;
    let pow = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mul(r, b);
            }
            b = mul(b, b);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'witness: for a in BASES {
        let mut x = pow(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

impl PrimeField {
    /// The field `Z_p`; `p` must be an odd prime below `2^62`.
    pub fn new(p: u64) -> Result<Self, Error> {
        if !(3..1 << 62).contains(&p) || !is_prime(p) {
            return Err(Error::InvalidParameter {
                name: "prime modulus",
                reason: format!("{p} is not an odd prime below 2^62"),
            });
        }
        Ok(PrimeField { p })
    }

    /// The smallest prime `p >= lower` with `p = 1 (mod m)` (NTT-friendly
    /// plaintext moduli: `m = 2N` for SIMD encoding in `Z_p[X]/(X^N + 1)`);
    /// `None` if there is none below `2^62`.
    pub fn ntt_friendly(lower: u64, m: u64) -> Option<Self> {
        if m == 0 {
            return None;
        }
        let mut p = lower.div_ceil(m).checked_mul(m)?.checked_add(1)?;
        while p < 1 << 62 {
            if let Ok(f) = PrimeField::new(p) {
                return Some(f);
            }
            p = p.checked_add(m)?;
        }
        None
    }

    /// The modulus.
    pub fn modulus(self) -> u64 {
        self.p
    }

    /// Bits of the modulus (`ceil(log2 p)`).
    pub fn bits(self) -> u32 {
        64 - (self.p - 1).leading_zeros()
    }

    /// Whether `v` is a canonical element (`v < p`).
    pub fn contains(self, v: u64) -> bool {
        v < self.p
    }

    /// `v mod p` for any `u64`.
    pub fn reduce(self, v: u64) -> u64 {
        v % self.p
    }

    /// `a + b` for canonical `a, b`.
    pub fn add(self, a: u64, b: u64) -> u64 {
        let s = a + b; // < 2^63: no overflow
        let t = s.wrapping_sub(self.p);
        // Select without branching on the (secret) operands.
        let mask = 0u64.wrapping_sub(t >> 63);
        (s & mask) | (t & !mask)
    }

    /// `a - b` for canonical `a, b`.
    pub fn sub(self, a: u64, b: u64) -> u64 {
        self.add(a, self.neg(b))
    }

    /// `-a` for canonical `a`.
    pub fn neg(self, a: u64) -> u64 {
        // p - a, or 0 when a = 0, without a branch.
        let t = self.p - a;
        let nonzero = 0u64.wrapping_sub(u64::from(a != 0));
        t & nonzero
    }

    /// `a * b`.
    pub fn mul(self, a: u64, b: u64) -> u64 {
        ((u128::from(a) * u128::from(b)) % u128::from(self.p)) as u64
    }

    /// `a^e` (public exponent).
    pub fn pow(self, mut a: u64, mut e: u64) -> u64 {
        let mut r = 1u64;
        a = self.reduce(a);
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, a);
            }
            a = self.mul(a, a);
            e >>= 1;
        }
        r
    }

    /// `a^{-1}` for `a != 0` (Fermat; public or secret `a`, constant
    /// sequence of operations for a fixed `p`).
    pub fn inv(self, a: u64) -> u64 {
        self.pow(a, self.p - 2)
    }

    /// The field element of the signed integer `s`.
    pub fn from_signed(self, s: i64) -> u64 {
        i128::from(s).rem_euclid(i128::from(self.p)) as u64
    }

    /// The centred representative of canonical `u`: `u` if `u <= p/2`,
    /// else `u - p` (so in `(-p/2, p/2)`, `p` being odd).
    pub fn to_signed(self, u: u64) -> i64 {
        // p < 2^62, so both casts are exact.
        let v = u as i64;
        let gt = i64::from(u > self.p / 2);
        v - gt * self.p as i64
    }

    /// A uniformly random element.
    pub fn random<R: Rng + CryptoRng + ?Sized>(self, rng: &mut R) -> u64 {
        crate::mix::uniform_below(rng, self.p)
    }

    /// Whether `Z_p` holds the signed values of `Z_{2^l}` (`p > 2^l`), so
    /// that the embedding commutes with the program's integer linear maps
    /// while every true value satisfies `|x| < 2^(l-1)`.
    pub fn holds(self, ring: Ring) -> bool {
        ring.bits() < 62 && self.p > 1u64 << ring.bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    #[test]
    fn primality_is_checked() {
        assert!(PrimeField::new((1 << 61) - 1).is_ok());
        assert!(PrimeField::new(1 << 40).is_err());
        assert!(PrimeField::new(1_000_000_007 * 3).is_err());
        assert!(PrimeField::new(2).is_err());
        assert!(PrimeField::new(1 << 62).is_err());
    }

    #[test]
    fn ntt_friendly_primes_are_one_mod_2n() {
        let f = PrimeField::ntt_friendly(1 << 40, 2 * 8192).expect("prime");
        assert_eq!(f.modulus() % 16384, 1);
        assert!(f.modulus() > 1 << 40);
        assert!(f.bits() == 41);
        assert!(PrimeField::ntt_friendly(1 << 62, 2).is_none());
    }

    #[test]
    fn arithmetic_matches_big_integers_on_random_and_edge_values() {
        let f = PrimeField::new((1 << 61) - 1).expect("p");
        let p = i128::from(f.modulus());
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut vals = vec![0, 1, f.modulus() - 1, f.modulus() / 2, f.modulus() / 2 + 1];
        vals.extend((0..200).map(|_| f.random(&mut rng)));
        for &a in &vals {
            assert_eq!(i128::from(f.neg(a)), (-i128::from(a)).rem_euclid(p));
            assert_eq!(f.from_signed(f.to_signed(a)), a);
            assert!(i128::from(f.to_signed(a)).abs() <= p / 2);
            for &b in vals.iter().take(20) {
                let (x, y) = (i128::from(a), i128::from(b));
                assert_eq!(i128::from(f.add(a, b)), (x + y).rem_euclid(p));
                assert_eq!(i128::from(f.sub(a, b)), (x - y).rem_euclid(p));
                assert_eq!(i128::from(f.mul(a, b)), (x * y).rem_euclid(p));
            }
            if a != 0 {
                assert_eq!(f.mul(a, f.inv(a)), 1);
            }
        }
    }

    #[test]
    fn a_field_holds_a_ring_only_if_it_is_larger() {
        let ring = Ring::new(37).expect("ring");
        assert!(!PrimeField::new(1_000_000_007).expect("p").holds(ring));
        assert!(PrimeField::new((1 << 61) - 1).expect("p").holds(ring));
    }
}
