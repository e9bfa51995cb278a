//! The accuracy threshold `delta` as an exact rational in `(0, 1]`.
//!
//! The client accepts a batch only if at least `ceil(delta * T)` of the `T`
//! public samples are classified correctly. The server may therefore corrupt
//! up to `s = T - ceil(delta * T)` public samples "for free" (docs/DESIGN.md
//! section 2): [`Threshold::slack`]. Everything here is exact: `"0.95"` parses
//! to `19/20`, never to the nearest `f64`.

use std::fmt;
use std::str::FromStr;

use num_integer::Integer;
use serde::{Serialize, Serializer};

use crate::Error;

/// An accuracy threshold `delta = numer/denom` with `0 < delta <= 1`, kept in
/// lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Threshold {
    numer: u64,
    denom: u64,
}

impl Threshold {
    /// `delta = 1`: every public sample must be correct (the paper's analysis).
    pub const ONE: Threshold = Threshold { numer: 1, denom: 1 };

    /// `numer / denom`; fails unless `0 < numer/denom <= 1`.
    pub fn new(numer: u64, denom: u64) -> Result<Self, Error> {
        if denom == 0 {
            return Err(bad(format!("{numer}/{denom} has a zero denominator")));
        }
        if numer == 0 || numer > denom {
            return Err(bad(format!("{numer}/{denom} is outside (0, 1]")));
        }
        let g = numer.gcd(&denom);
        Ok(Threshold {
            numer: numer / g,
            denom: denom / g,
        })
    }

    /// The numerator in lowest terms.
    pub const fn numer(self) -> u64 {
        self.numer
    }

    /// The denominator in lowest terms.
    pub const fn denom(self) -> u64 {
        self.denom
    }

    /// The nearest `f64` (for display only; decisions use the exact value).
    pub fn to_f64(self) -> f64 {
        self.numer as f64 / self.denom as f64
    }

    /// `ceil(delta * total)`: the fewest correct answers that pass.
    pub fn min_correct(self, total: u64) -> u64 {
        let p = u128::from(self.numer) * u128::from(total);
        let d = u128::from(self.denom);
        // <= total because delta <= 1, so the cast cannot truncate.
        p.div_ceil(d) as u64
    }

    /// `s = T - ceil(delta * T)`: how many public samples a server may corrupt
    /// and still pass the accuracy check (when the honest model is perfect on them).
    pub fn slack(self, public: u64) -> u64 {
        public - self.min_correct(public)
    }

    /// Whether `correct / total >= delta`, exactly. `total = 0` never passes.
    pub fn is_met(self, correct: u64, total: u64) -> bool {
        total > 0
            && correct <= total
            && u128::from(correct) * u128::from(self.denom)
                >= u128::from(self.numer) * u128::from(total)
    }
}

fn bad(reason: String) -> Error {
    Error::InvalidParameter {
        name: "threshold",
        reason,
    }
}

impl FromStr for Threshold {
    type Err = Error;

    /// Parses a decimal (`"0.95"`, `"1"`, `".9"`, `"1.000"`) or a fraction
    /// (`"19/20"`) exactly; at most 18 digits after the point.
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        if let Some((n, d)) = t.split_once('/') {
            let n = parse_digits(n.trim(), s)?;
            let d = parse_digits(d.trim(), s)?;
            return Threshold::new(n, d);
        }
        let (int, frac) = match t.split_once('.') {
            Some((i, f)) => (i, f),
            None => (t, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad(format!("{s:?} is not a number")));
        }
        if frac.len() > 18 {
            return Err(bad(format!("{s:?} has more than 18 decimal digits")));
        }
        let int_v = if int.is_empty() {
            0
        } else {
            parse_digits(int, s)?
        };
        let frac_v = if frac.is_empty() {
            0
        } else {
            parse_digits(frac, s)?
        };
        if int_v > 1 {
            return Err(bad(format!("{s} is outside (0, 1]")));
        }
        let denom = 10u64.pow(frac.len() as u32);
        let numer = int_v
            .checked_mul(denom)
            .and_then(|v| v.checked_add(frac_v))
            .ok_or_else(|| bad(format!("{s} is outside (0, 1]")))?;
        Threshold::new(numer, denom).map_err(|_| bad(format!("{s} is outside (0, 1]")))
    }
}

fn parse_digits(d: &str, whole: &str) -> Result<u64, Error> {
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "{whole:?} is not a decimal number or a fraction a/b"
        )));
    }
    d.parse::<u64>()
        .map_err(|_| bad(format!("{whole:?} has too many digits")))
}

impl fmt::Display for Threshold {
    /// The exact decimal when it terminates (`0.95`), otherwise `numer/denom`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = self.denom;
        let (mut twos, mut fives) = (0u32, 0u32);
        while d.is_multiple_of(2) {
            d /= 2;
            twos += 1;
        }
        while d.is_multiple_of(5) {
            d /= 5;
            fives += 1;
        }
        if d != 1 || twos.max(fives) > 18 {
            return write!(f, "{}/{}", self.numer, self.denom);
        }
        let digits = twos.max(fives);
        if digits == 0 {
            return write!(f, "{}", self.numer);
        }
        let scale = 10u128.pow(digits);
        let scaled = u128::from(self.numer) * scale / u128::from(self.denom);
        let int = scaled / scale;
        let frac = scaled % scale;
        let frac = format!("{frac:0width$}", width = digits as usize);
        write!(f, "{int}.{}", frac.trim_end_matches('0'))
    }
}

impl Serialize for Threshold {
    /// As the JSON number nearest to `delta` (the exact value is `numer/denom`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.to_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_parse_exactly() {
        let t: Threshold = "0.95".parse().unwrap();
        assert_eq!((t.numer(), t.denom()), (19, 20));
        assert_eq!("1".parse::<Threshold>().unwrap(), Threshold::ONE);
        assert_eq!("1.000".parse::<Threshold>().unwrap(), Threshold::ONE);
        assert_eq!(
            ".5".parse::<Threshold>().unwrap(),
            Threshold::new(1, 2).unwrap()
        );
        assert_eq!("19/20".parse::<Threshold>().unwrap(), t);
        let tiny: Threshold = "0.000000000000000001".parse().unwrap();
        assert_eq!((tiny.numer(), tiny.denom()), (1, 1_000_000_000_000_000_000));
    }

    #[test]
    fn out_of_range_and_garbage_are_rejected() {
        for s in [
            "0", "0.0", "1.01", "2", "-0.5", "", ".", "abc", "0.9x", "1e-3", "3/2", "1/0", "0/5",
        ] {
            assert!(s.parse::<Threshold>().is_err(), "{s:?} accepted");
        }
        assert!(Threshold::new(0, 1).is_err());
        assert!(Threshold::new(5, 4).is_err());
        assert!(Threshold::new(1, 0).is_err());
    }

    #[test]
    fn slack_is_t_minus_ceil_delta_t() {
        let t: Threshold = "0.95".parse().unwrap();
        assert_eq!(t.slack(100), 5);
        assert_eq!(t.min_correct(100), 95);
        assert_eq!(t.slack(101), 5); // ceil(95.95) = 96
        assert_eq!(t.slack(1), 0);
        assert_eq!(Threshold::ONE.slack(1000), 0);
        let third = Threshold::new(1, 3).unwrap();
        assert_eq!(third.min_correct(10), 4);
        assert_eq!(third.slack(10), 6);
    }

    #[test]
    fn is_met_compares_exactly() {
        let t: Threshold = "0.95".parse().unwrap();
        assert!(t.is_met(95, 100));
        assert!(!t.is_met(94, 100));
        assert!(t.is_met(19, 20));
        assert!(!t.is_met(0, 0));
        assert!(Threshold::ONE.is_met(7, 7));
        assert!(!Threshold::ONE.is_met(6, 7));
    }

    #[test]
    fn display_is_exact() {
        assert_eq!("0.95".parse::<Threshold>().unwrap().to_string(), "0.95");
        assert_eq!("1".parse::<Threshold>().unwrap().to_string(), "1");
        assert_eq!("0.125".parse::<Threshold>().unwrap().to_string(), "0.125");
        assert_eq!(Threshold::new(2, 3).unwrap().to_string(), "2/3");
    }
}
