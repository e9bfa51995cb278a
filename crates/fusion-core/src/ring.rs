//! The ring `Z_{2^l}` of additive secret shares and the fixed-point encoding on it.
//!
//! Every layer of the two-party engine works on values of `Z_{2^l}`, `1 <= l <= 64`,
//! stored in the low `l` bits of a `u64`. A real number `x` is encoded at scale `f`
//! as `round(x * 2^f) mod 2^l`; the signed interpretation of a ring element is the
//! representative in `[-2^(l-1), 2^(l-1))`.
//!
//! A value `v` is *additively shared* between the two parties as `(v0, v1)` with
//! `v0 + v1 = v mod 2^l`; [`Ring::share`] draws `v0` uniformly, so each share alone
//! is independent of `v`.
//!
//! Both the HE linear layers (`fusion-he`) and the OT non-linear layers
//! (`fusion-ot`) speak this type, so one engine can pass shares between them.

use rand::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

/// A bit width that is not in `1..=64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring bit width {0} is outside 1..=64")]
pub struct BadRingWidth(pub u32);

/// The ring `Z_{2^l}`, `1 <= l <= 64`; elements are `u64` with bits above `l` clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Ring {
    bits: u32,
}

impl TryFrom<u32> for Ring {
    type Error = BadRingWidth;

    fn try_from(bits: u32) -> Result<Self, Self::Error> {
        Ring::new(bits)
    }
}

impl From<Ring> for u32 {
    fn from(r: Ring) -> u32 {
        r.bits
    }
}

impl Ring {
    /// `Z_{2^bits}`; `bits` must be in `1..=64`.
    pub const fn new(bits: u32) -> Result<Self, BadRingWidth> {
        if bits == 0 || bits > 64 {
            Err(BadRingWidth(bits))
        } else {
            Ok(Ring { bits })
        }
    }

    /// The bit width `l`.
    pub const fn bits(self) -> u32 {
        self.bits
    }

    /// `2^l - 1`.
    pub const fn mask(self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// Reduces an arbitrary `u64` modulo `2^l`.
    #[inline]
    pub const fn reduce(self, x: u64) -> u64 {
        x & self.mask()
    }

    /// Whether `x` is a canonical element (no bits above `l`).
    #[inline]
    pub const fn contains(self, x: u64) -> bool {
        x & !self.mask() == 0
    }

    /// `a + b mod 2^l`.
    #[inline]
    pub const fn add(self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_add(b))
    }

    /// `a - b mod 2^l`.
    #[inline]
    pub const fn sub(self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_sub(b))
    }

    /// `-a mod 2^l`.
    #[inline]
    pub const fn neg(self, a: u64) -> u64 {
        self.reduce(a.wrapping_neg())
    }

    /// `a * b mod 2^l`.
    #[inline]
    pub const fn mul(self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_mul(b))
    }

    /// The most significant bit (bit `l - 1`): 1 exactly for negative signed values.
    #[inline]
    pub const fn msb(self, x: u64) -> bool {
        (x >> (self.bits - 1)) & 1 == 1
    }

    /// The signed representative of `x` in `[-2^(l-1), 2^(l-1))`.
    #[inline]
    pub const fn to_signed(self, x: u64) -> i64 {
        let x = self.reduce(x);
        if self.bits == 64 {
            x as i64
        } else if self.msb(x) {
            // Sign-extend: x - 2^l, computed without overflowing at l = 63.
            (x | !self.mask()) as i64
        } else {
            x as i64
        }
    }

    /// `v mod 2^l` for a signed `v`.
    #[inline]
    pub const fn from_signed(self, v: i64) -> u64 {
        self.reduce(v as u64)
    }

    /// A uniformly random element.
    pub fn random<R: Rng + CryptoRng + ?Sized>(self, rng: &mut R) -> u64 {
        self.reduce(rng.next_u64())
    }

    /// Splits `x` into two additive shares `(x0, x1)`, `x0` uniform.
    pub fn share<R: Rng + CryptoRng + ?Sized>(self, x: u64, rng: &mut R) -> (u64, u64) {
        let x0 = self.random(rng);
        (x0, self.sub(x, x0))
    }

    /// `x0 + x1 mod 2^l`.
    #[inline]
    pub const fn reconstruct(self, x0: u64, x1: u64) -> u64 {
        self.add(x0, x1)
    }

    /// Arithmetic shift right of the signed value by `k` bits (floor division by
    /// `2^k`), reduced back into the ring: the exact truncation that secure
    /// truncation protocols approximate.
    #[inline]
    pub const fn shift_right_signed(self, x: u64, k: u32) -> u64 {
        self.from_signed(self.to_signed(x) >> k)
    }
}

/// Parameters of a fixed-point encoding: ring `Z_{2^l}` and `f` fractional bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FixedPoint {
    /// The ring the encoded values live in.
    pub ring: Ring,
    /// The number of fractional bits `f` (the scale is `2^f`).
    pub frac_bits: u32,
}

/// Fixed-point parameters that cannot work (`f` must leave room for a sign and
/// one integer bit after a product at scale `2f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "fixed point with {frac_bits} fractional bits needs a ring wider than {ring_bits} bits (at least 2f + 2)"
)]
pub struct BadFixedPoint {
    /// The requested fractional bits.
    pub frac_bits: u32,
    /// The ring's bit width.
    pub ring_bits: u32,
}

impl FixedPoint {
    /// Fixed point with `frac_bits` fractional bits in `ring`; products at scale
    /// `2f` must fit, so `2f + 2 <= l` is required.
    pub const fn new(ring: Ring, frac_bits: u32) -> Result<Self, BadFixedPoint> {
        if 2 * frac_bits + 2 > ring.bits() {
            Err(BadFixedPoint {
                frac_bits,
                ring_bits: ring.bits(),
            })
        } else {
            Ok(FixedPoint { ring, frac_bits })
        }
    }

    /// `round(x * 2^scale_bits) mod 2^l`, saturating at the signed range.
    pub fn encode_at(self, x: f64, scale_bits: u32) -> u64 {
        let scaled = (x * (2f64).powi(scale_bits as i32)).round();
        let half = (2f64).powi(self.ring.bits() as i32 - 1);
        let clamped = scaled.clamp(-half, half - 1.0);
        self.ring.from_signed(clamped as i64)
    }

    /// `round(x * 2^f) mod 2^l`, saturating at the signed range.
    pub fn encode(self, x: f64) -> u64 {
        self.encode_at(x, self.frac_bits)
    }

    /// The real number a ring element at scale `2^scale_bits` stands for.
    pub fn decode_at(self, v: u64, scale_bits: u32) -> f64 {
        self.ring.to_signed(v) as f64 / (2f64).powi(scale_bits as i32)
    }

    /// The real number a ring element at scale `2^f` stands for.
    pub fn decode(self, v: u64) -> f64 {
        self.decode_at(v, self.frac_bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn ring_rejects_widths_outside_1_to_64() {
        assert_eq!(Ring::new(0), Err(BadRingWidth(0)));
        assert_eq!(Ring::new(65), Err(BadRingWidth(65)));
        assert!(Ring::new(1).is_ok() && Ring::new(64).is_ok());
    }

    #[test]
    fn signed_round_trip_at_the_edges() {
        for bits in [1u32, 2, 37, 41, 63, 64] {
            let r = Ring::new(bits).unwrap();
            let lo = if bits == 64 {
                i64::MIN
            } else {
                -(1i64 << (bits - 1))
            };
            let hi = if bits == 64 {
                i64::MAX
            } else {
                (1i64 << (bits - 1)) - 1
            };
            for v in [lo, lo + 1, -1, 0, 1, hi - 1, hi] {
                if v < lo || v > hi {
                    continue;
                }
                assert_eq!(r.to_signed(r.from_signed(v)), v, "bits {bits} v {v}");
            }
            assert!(r.msb(r.from_signed(lo)));
            // The largest value is non-negative, so its msb is clear (for
            // l = 1 that value is 0).
            assert!(!r.msb(r.from_signed(hi)));
        }
    }

    #[test]
    fn shares_reconstruct_and_wrap() {
        let r = Ring::new(37).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for x in [0, 1, r.mask(), r.from_signed(-5), 1 << 36] {
            let (a, b) = r.share(x, &mut rng);
            assert!(r.contains(a) && r.contains(b));
            assert_eq!(r.reconstruct(a, b), x);
        }
    }

    #[test]
    fn shift_right_signed_is_floor_division() {
        let r = Ring::new(37).unwrap();
        for v in [-9i64, -8, -1, 0, 1, 7, 8, 1 << 30, -(1 << 30)] {
            assert_eq!(
                r.to_signed(r.shift_right_signed(r.from_signed(v), 2)),
                v.div_euclid(4)
            );
        }
    }

    #[test]
    fn fixed_point_encodes_and_decodes() {
        let fp = FixedPoint::new(Ring::new(37).unwrap(), 12).unwrap();
        for x in [0.0, 1.0, -1.0, 0.5, -3.25, 1000.125] {
            assert_eq!(fp.decode(fp.encode(x)), x);
        }
        assert!((fp.decode(fp.encode(0.1)) - 0.1).abs() <= 0.5 / 4096.0);
        // Saturation instead of wrap-around for out-of-range reals.
        assert_eq!(fp.encode(1e30), r_max(fp.ring));
        assert!(FixedPoint::new(Ring::new(20).unwrap(), 10).is_err());
    }

    fn r_max(r: Ring) -> u64 {
        r.mask() >> 1
    }
}
