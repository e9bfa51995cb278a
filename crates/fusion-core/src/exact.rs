//! Exact integer helpers shared by [`crate::search`] and [`crate::security`]:
//! binomial coefficients, `log2` of big integers for display, and certified
//! lower bounds in a truncated binary floating point.

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};

/// `C(n, k)` exactly (0 when `k > n`).
pub(crate) fn binom(n: u64, k: u64) -> BigUint {
    if k > n {
        return BigUint::zero();
    }
    let k = k.min(n - k);
    let mut acc = BigUint::one();
    // After step m, acc = C(n - k + m, m): every division is exact.
    for m in 1..=k {
        acc *= n - k + m;
        acc /= m;
    }
    acc
}

/// `C(n, k) >= target`, for `n >= k`, without computing the full product
/// when the partial products already reach it. Exact.
pub(crate) fn binom_at_least(n: u64, k: u64, target: &BigUint) -> bool {
    if k > n {
        return target.is_zero();
    }
    let k = k.min(n - k);
    let mut acc = BigUint::one();
    for m in 1..=k {
        acc *= n - k + m;
        acc /= m;
        // C(n-k+m, m) is non-decreasing in m (each further factor
        // (n-k+m+1)/(m+1) is >= 1 because n >= k): once it reaches the target
        // the final value does too.
        if &acc >= target {
            return true;
        }
    }
    &acc >= target
}

/// `log2(x)` to about 15 significant digits (`-inf` for 0). Display only.
pub(crate) fn log2_big(x: &BigUint) -> f64 {
    let bits = x.bits();
    if bits == 0 {
        return f64::NEG_INFINITY;
    }
    if bits <= 64 {
        return x.to_u64().map_or(f64::NAN, |v| (v as f64).log2());
    }
    let shift = bits - 64;
    let top = (x >> shift).to_u64().map_or(f64::NAN, |v| v as f64);
    top.log2() + shift as f64
}

/// Significant bits kept by [`LowerFloat`].
const PREC: u64 = 160;

/// A non-negative number `mant * 2^exp` that is a *lower bound* on the value
/// it stands for: every operation truncates (rounds towards zero), so a chain
/// of products of lower bounds stays a lower bound. Used to prove inequalities
/// of the form `value > 2^-lambda` without computing huge exact powers.
#[derive(Debug, Clone)]
pub(crate) struct LowerFloat {
    mant: BigUint,
    exp: i64,
}

impl LowerFloat {
    /// A lower bound on `num / den` (`den > 0`).
    pub(crate) fn from_ratio(num: &BigUint, den: &BigUint) -> Self {
        // Scale so that the quotient has about PREC bits.
        let shift = PREC as i64 + den.bits() as i64 - num.bits() as i64;
        let mant = if shift >= 0 {
            (num << shift as u64) / den
        } else {
            num / (den << (-shift) as u64)
        };
        LowerFloat { mant, exp: -shift }.normalized()
    }

    /// The exact integer `v`.
    pub(crate) fn from_u64(v: u64) -> Self {
        LowerFloat {
            mant: BigUint::from(v),
            exp: 0,
        }
    }

    fn normalized(mut self) -> Self {
        let bits = self.mant.bits();
        if bits > PREC {
            let drop = bits - PREC;
            self.mant >>= drop;
            self.exp += drop as i64;
        }
        self
    }

    /// A lower bound on `self * other`.
    pub(crate) fn mul(&self, other: &Self) -> Self {
        LowerFloat {
            mant: &self.mant * &other.mant,
            exp: self.exp + other.exp,
        }
        .normalized()
    }

    /// A lower bound on `self^e`.
    pub(crate) fn pow(&self, mut e: u64) -> Self {
        let mut base = self.clone();
        let mut acc = LowerFloat::from_u64(1);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.mul(&base);
            }
            e >>= 1;
            if e > 0 {
                base = base.mul(&base);
            }
        }
        acc
    }

    /// Whether the bounded value is certainly `> 2^-lambda`: true only if the
    /// lower bound itself exceeds `2^-lambda`.
    pub(crate) fn exceeds_pow2_neg(&self, lambda: u32) -> bool {
        if self.mant.is_zero() {
            return false;
        }
        // mant * 2^exp > 2^-lambda  <=>  mant > 2^(-lambda - exp)
        let e = -i64::from(lambda) - self.exp;
        if e < 0 {
            true
        } else {
            self.mant > (BigUint::one() << e as u64)
        }
    }
}

/// A non-negative number `mant * 2^exp` that is an *upper bound* on the value
/// it stands for: every operation rounds away from zero. The mirror image of
/// [`LowerFloat`], used to prove `value <= p` for an exact rational `p`.
#[derive(Debug, Clone)]
pub(crate) struct UpperFloat {
    mant: BigUint,
    exp: i64,
}

impl UpperFloat {
    /// An upper bound on `num / den` (`den > 0`).
    pub(crate) fn from_ratio(num: &BigUint, den: &BigUint) -> Self {
        let shift = PREC as i64 + den.bits() as i64 - num.bits() as i64;
        let (n, d) = if shift >= 0 {
            (num << shift as u64, den.clone())
        } else {
            (num.clone(), den << (-shift) as u64)
        };
        let (q, r) = n.div_rem(&d);
        let mant = if r.is_zero() { q } else { q + 1u32 };
        UpperFloat { mant, exp: -shift }.normalized()
    }

    fn normalized(mut self) -> Self {
        let bits = self.mant.bits();
        if bits > PREC {
            let drop = bits - PREC;
            let lost = self.mant.trailing_zeros().is_none_or(|tz| tz < drop);
            self.mant >>= drop;
            if lost {
                self.mant += 1u32;
            }
            self.exp += drop as i64;
        }
        self
    }

    /// An upper bound on `self * other`.
    pub(crate) fn mul(&self, other: &Self) -> Self {
        UpperFloat {
            mant: &self.mant * &other.mant,
            exp: self.exp + other.exp,
        }
        .normalized()
    }

    /// An upper bound on `self^e`.
    pub(crate) fn pow(&self, mut e: u64) -> Self {
        let mut base = self.clone();
        let mut acc = UpperFloat {
            mant: BigUint::one(),
            exp: 0,
        };
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.mul(&base);
            }
            e >>= 1;
            if e > 0 {
                base = base.mul(&base);
            }
        }
        acc
    }

    /// Whether the bounded value is certainly `<= num / den`: true if the
    /// upper bound itself is.
    pub(crate) fn at_most(&self, num: &BigUint, den: &BigUint) -> bool {
        // mant * 2^exp * den <= num
        if self.exp >= 0 {
            (&self.mant * den) << self.exp as u64 <= *num
        } else {
            &self.mant * den <= num << (-self.exp) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomials_match_pascal() {
        let mut row = vec![BigUint::one()];
        for n in 0u64..60 {
            for (k, v) in row.iter().enumerate() {
                assert_eq!(&binom(n, k as u64), v, "C({n},{k})");
            }
            assert!(binom(n, n + 1).is_zero());
            let mut next = vec![BigUint::one(); row.len() + 1];
            for k in 1..row.len() {
                next[k] = &row[k - 1] + &row[k];
            }
            row = next;
        }
    }

    #[test]
    fn binom_at_least_agrees_with_binom() {
        for n in 0u64..40 {
            for k in 0..=n + 1 {
                let c = binom(n, k);
                for t in [
                    c.clone(),
                    &c + 1u32,
                    if c.is_zero() { c.clone() } else { &c - 1u32 },
                ] {
                    assert_eq!(binom_at_least(n, k, &t), c >= t, "C({n},{k}) vs {t}");
                }
            }
        }
    }

    #[test]
    fn log2_of_big_numbers() {
        assert_eq!(log2_big(&BigUint::from(1024u32)), 10.0);
        let big = BigUint::one() << 1000u32;
        assert!((log2_big(&big) - 1000.0).abs() < 1e-12);
        assert!((log2_big(&(big * 3u32)) - (1000.0 + 3f64.log2())).abs() < 1e-12);
    }

    #[test]
    fn lower_float_is_a_lower_bound() {
        // (2/3)^50 vs 2^-30: (2/3)^50 = 2^-29.2 > 2^-30, but not > 2^-29.
        let x = LowerFloat::from_ratio(&BigUint::from(2u32), &BigUint::from(3u32)).pow(50);
        assert!(x.exceeds_pow2_neg(30));
        assert!(!x.exceeds_pow2_neg(29));
        // Exact powers of two are never claimed to exceed themselves.
        let half = LowerFloat::from_ratio(&BigUint::from(1u32), &BigUint::from(2u32));
        assert!(!half.pow(40).exceeds_pow2_neg(40));
        assert!(half.pow(40).exceeds_pow2_neg(41));
        assert!(LowerFloat::from_u64(3).exceeds_pow2_neg(0));
        assert!(!LowerFloat::from_u64(0).exceeds_pow2_neg(0));
    }

    #[test]
    fn upper_float_is_an_upper_bound() {
        let big = |v: u64| BigUint::from(v);
        // (2/3)^50 = 2^-29.25: at most 2^-29, not at most 2^-30.
        let x = UpperFloat::from_ratio(&big(2), &big(3)).pow(50);
        assert!(x.at_most(&big(1), &(BigUint::one() << 29u32)));
        assert!(!x.at_most(&big(1), &(BigUint::one() << 30u32)));
        // Exact values stay exact: (1/2)^40 <= 2^-40.
        let half = UpperFloat::from_ratio(&big(1), &big(2)).pow(40);
        assert!(half.at_most(&big(1), &(BigUint::one() << 40u32)));
        // It is >= the exact (2/3)^50 = 2^50 / 3^50, and tight to 2^-100.
        let num = BigUint::one() << 50u32;
        let den = num_traits::pow(big(3), 50);
        let tight = (BigUint::one() << 100u32) + 1u32;
        assert!(x.at_most(&(&num * &tight), &(&den << 100u32)));
        assert!(!UpperFloat::from_ratio(&(&num + 1u32), &den).at_most(&num, &den));
        // Big integers round up.
        let b = (BigUint::one() << 300u32) + 1u32;
        let ub = UpperFloat::from_ratio(&b, &big(1));
        assert!(!ub.at_most(&(BigUint::one() << 300u32), &big(1)));
        assert!(ub.at_most(&((&b << 150u32) + &b), &(BigUint::one() << 150u32)));
    }
}
