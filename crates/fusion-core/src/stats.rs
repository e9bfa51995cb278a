//! A one-sided Clopper-Pearson lower confidence bound on the model's accuracy.
//!
//! Fusion's accuracy check (paper section IV, Fig. 3) accepts when at least
//! `ceil(delta T)` of the `T` public samples are right. That is a statement
//! about `T` samples, not about the model. If the public samples are drawn
//! from the same distribution as the queries, the number correct is
//! `X ~ Binomial(T, p)` for the model's true accuracy `p`, and the exact
//! one-sided Clopper-Pearson bound `p_L` satisfies `P(p >= p_L) >= c` for
//! confidence `c` (docs/DESIGN.md section 2, "report the accuracy check as a
//! statistical test").
//!
//! `p_L` is the `p` solving `P(X >= x | p) = 1 - c`, i.e. the `(1 - c)`
//! quantile of `Beta(x, T - x + 1)`; `p_L = 0` for `x = 0` and
//! `p_L = (1 - c)^(1/T)` for `x = T`. We evaluate the binomial tail as the
//! regularized incomplete beta function `I_p(x, T - x + 1)` (Lanczos
//! log-gamma and Lentz's continued fraction) and solve by bisection to
//! `1e-14`; the result is accurate to about `1e-12` for `T` up to `10^6`.
//! It is a reported statistic only: the accept/abort decision is the exact
//! rational comparison in [`crate::verify`].
//!
//! Example: 95 of 100 right gives `p_L = 0.8977` at 95% confidence; 100 of
//! 100 gives `0.05^(1/100) = 0.9705`.

use serde::Serialize;

use crate::Error;

/// A confidence level in `(0, 1)`; default 0.95.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Confidence(f64);

impl Confidence {
    /// Fails unless `0 < level < 1`.
    pub fn new(level: f64) -> Result<Self, Error> {
        if level > 0.0 && level < 1.0 {
            Ok(Confidence(level))
        } else {
            Err(Error::InvalidParameter {
                name: "confidence",
                reason: format!("{level} is outside (0, 1)"),
            })
        }
    }

    /// The level `c`.
    pub fn level(self) -> f64 {
        self.0
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Confidence(0.95)
    }
}

/// The one-sided Clopper-Pearson lower bound on a success probability after
/// `successes` of `trials` (`successes <= trials`, `trials >= 1`) at
/// confidence `confidence`.
pub fn clopper_pearson_lower(successes: u64, trials: u64, confidence: Confidence) -> f64 {
    assert!(
        trials >= 1 && successes <= trials,
        "need 0 <= successes <= trials, trials >= 1"
    );
    let alpha = 1.0 - confidence.level();
    if successes == 0 {
        return 0.0;
    }
    if successes == trials {
        return alpha.powf(1.0 / trials as f64);
    }
    let a = successes as f64;
    let b = (trials - successes + 1) as f64;
    // P(X >= x | p) = I_p(x, n - x + 1) is increasing in p.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while hi - lo > 1e-14 {
        let mid = 0.5 * (lo + hi);
        if reg_inc_beta(a, b, mid) < alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// `ln Gamma(x)` for `x > 0` (Lanczos, g = 7, 9 terms; relative error ~1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularized incomplete beta function `I_x(a, b)`, `a, b > 0`.
fn reg_inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The continued fraction for the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=1_000_000u32 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// Two-sided 95% Clopper-Pearson interval for `x` successes in `n` trials
/// (each side at 97.5%; `[0, hi]` for `x = 0`, `[lo, 1]` for `x = n`).
pub fn clopper_pearson_interval95(x: u64, n: u64) -> (f64, f64) {
    let c = Confidence::new(0.975).unwrap_or_default();
    let lo = if x == 0 {
        0.0
    } else {
        clopper_pearson_lower(x, n, c)
    };
    let hi = if x >= n {
        1.0
    } else {
        1.0 - clopper_pearson_lower(n - x, n, c)
    };
    (lo, hi)
}

/// `ln C(n, k)` in floating point (`-inf` for `k > n`).
pub fn ln_binom(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    let k = k.min(n - k);
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

/// `P(X > s)` for `X ~ Hypergeometric(n, w, t)`: more than `s` wrong among
/// `t` drawn without replacement from `n` of which `w` are wrong (the
/// false-abort probability of a public set of `t` held-out samples with
/// slack `s`).
pub fn hypergeometric_tail(n: u64, w: u64, t: u64, s: u64) -> f64 {
    let total = ln_binom(n, t);
    // `+ 0.0` turns the empty sum's -0.0 into 0.0.
    ((s + 1)..=t.min(w))
        .map(|x| (ln_binom(w, x) + ln_binom(n - w, t - x) - total).exp())
        .sum::<f64>()
        + 0.0
}

/// `P(X > s)` for `X ~ Binomial(t, q)` (fresh samples at error rate `q`).
pub fn binomial_tail(t: u64, q: f64, s: u64) -> f64 {
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return if s < t { 1.0 } else { 0.0 };
    }
    ((s + 1)..=t)
        .map(|x| (ln_binom(t, x) + x as f64 * q.ln() + (t - x) as f64 * (1.0 - q).ln()).exp())
        .sum::<f64>()
        + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(x: u64, n: u64, c: f64) -> f64 {
        clopper_pearson_lower(x, n, Confidence::new(c).unwrap())
    }

    #[test]
    fn known_values() {
        // Reference values from exact rational bisection of the binomial tail.
        let cases = [
            (95, 100, 0.95, 0.897_746_622_356_725_5),
            (50, 100, 0.95, 0.413_621_714_630_911_74),
            (1, 10, 0.90, 0.010_480_741_793_785_607),
            (99, 100, 0.99, 0.935_457_267_951_418_4),
            (9, 10, 0.95, 0.605_836_697_563_495_2),
        ];
        for (x, n, c, want) in cases {
            let got = cp(x, n, c);
            assert!(
                (got - want).abs() < 1e-10,
                "{x}/{n} at {c}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn all_correct_gives_alpha_to_the_one_over_n() {
        assert!((cp(100, 100, 0.95) - 0.05f64.powf(0.01)).abs() < 1e-15);
        assert!((cp(100, 100, 0.95) - 0.970_486_950_392_960_1).abs() < 1e-12);
        assert_eq!(cp(0, 100, 0.95), 0.0);
    }

    #[test]
    fn bound_is_below_the_point_estimate_and_monotone_in_confidence() {
        for (x, n) in [
            (1u64, 2u64),
            (7, 10),
            (95, 100),
            (9_000, 10_000),
            (999_000, 1_000_000),
        ] {
            let mut prev = 1.0;
            for c in [0.5, 0.8, 0.9, 0.95, 0.99, 0.999] {
                let b = cp(x, n, c);
                assert!(b < x as f64 / n as f64 + 1e-12, "{x}/{n} at {c}: {b}");
                assert!(b <= prev, "{x}/{n}: not monotone at {c}");
                prev = b;
            }
        }
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut f = 1.0f64;
        for n in 1..30u32 {
            f *= f64::from(n);
            assert!((ln_gamma(f64::from(n) + 1.0) - f.ln()).abs() < 1e-12 * f.ln().max(1.0));
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-14);
    }

    #[test]
    fn confidence_is_validated() {
        assert!(Confidence::new(0.0).is_err());
        assert!(Confidence::new(1.0).is_err());
        assert!(Confidence::new(f64::NAN).is_err());
        assert_eq!(Confidence::default().level(), 0.95);
    }

    #[test]
    fn tails_match_hand_computed_values() {
        // Binomial(3, 0.5): P(X > 1) = 4/8.
        assert!((binomial_tail(3, 0.5, 1) - 0.5).abs() < 1e-12);
        assert_eq!(binomial_tail(3, 0.0, 0), 0.0);
        assert_eq!(binomial_tail(3, 1.0, 2), 1.0);
        // Hypergeometric(n = 5, w = 2, t = 2): P(X > 0) = 1 - C(3,2)/C(5,2) = 0.7.
        assert!((hypergeometric_tail(5, 2, 2, 0) - 0.7).abs() < 1e-12);
        assert_eq!(hypergeometric_tail(5, 2, 2, 2), 0.0);
        assert!((ln_binom(10, 3) - 120f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn the_95_interval_brackets_the_rate_and_closes_at_the_ends() {
        let (lo, hi) = clopper_pearson_interval95(50, 100);
        assert!(lo < 0.5 && 0.5 < hi && hi - lo < 0.25);
        assert_eq!(clopper_pearson_interval95(0, 10).0, 0.0);
        assert_eq!(clopper_pearson_interval95(10, 10).1, 1.0);
    }
}
