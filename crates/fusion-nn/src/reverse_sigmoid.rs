//! Lee et al.'s reverse-sigmoid output perturbation, in `f64` and as the
//! fixed-point pipeline the secure output stage computes on shares.
//!
//! **The defence** (Lee, Edwards, Molloy, Su, "Defending against NN model
//! stealing attacks using deceptive perturbations", IEEE S&P Workshops 2019;
//! Fusion, Dong et al., NDSS 2023, eq. (9)-(10)): with `y = softmax(z)` the
//! probabilities of the logits `z`, `s` the sigmoid and `s^-1` the logit,
//!
//! ```text
//! r(y)  = beta (s(gamma s^-1(y)) - 1/2)
//! y_hat = alpha (y - r(y)),      alpha = 1 / sum_i (y_i - r(y_i))
//! ```
//!
//! with `y` clipped to `[2^-f, 1 - 2^-f]` before `s^-1` (`f` the program's
//! fractional bits). `s(gamma s^-1(y)) = y^gamma / (y^gamma + (1-y)^gamma)`,
//! written `h(y)` below. We accept `0 <= beta <= 1` and `0 < gamma <= 1`: then
//! every `g(y) = y - r(y)` is positive (for `y <= 1/2`, `h(y) <= 1/2`; for
//! `y > 1/2`, `g >= y - beta/2 > 0`), so the normaliser exists, and
//! [`ReverseSigmoidTables::new`] bounds `sum_i g(y_i)` away from zero (see
//! [`ReverseSigmoid::norm_bounds`]). Top-1 is **not** always preserved: a
//! confident top class keeps its rank, a low-confidence one may lose it to a
//! class with a tiny probability (`g` is not monotone for `gamma < 1`); the
//! paper reports the server's accuracy dropping from 98.53% to 96.78% on MNIST
//! with the defence.
//!
//! **The fixed-point pipeline** ([`ReverseSigmoidTables::apply_fixed`]) uses
//! only max, subtraction, sums and clipped piecewise-linear functions
//! ([`crate::piecewise`]), which a two-party engine evaluates with its max,
//! ReLU and truncation protocols. Per sample of `k` logits `z` (scale `s_L`):
//!
//! 1. `m = max_i z_i`, `d_i = z_i - m <= 0`;
//! 2. `e_i = exp(d_i)` (table `exp_logit`, domain `[-D, 0]`,
//!    `exp(-D) = 2^-(f+1)`), and `d'_i = max(d_i, -D)` (the table's first
//!    ReLU gives it for free);
//! 3. `S = sum_i e_i`, `L = ln S` (table `ln_sum` on `[1, k]`);
//! 4. `y_i = exp(d'_i - L)` (table `exp_logit` again): the softmax, without a
//!    division;
//! 5. `g_i = g(y_i)` and `l_i = ln g(y_i)` (table `perturb`: two functions of
//!    one knot set, domain `[2^-f, 1 - 2^-f]`, so the clip is built in);
//! 6. `G = sum_i g_i`, `LG = ln G` (table `ln_norm` on the bounds of `G`);
//! 7. `y_hat_i = exp(l_i - LG)` (table `exp_frac`): the normalisation, again
//!    without a division.
//!
//! Every table is fitted to a chord error of `2^-(min(f, 12) - 1)`; the
//! pipeline's measured error against [`ReverseSigmoid::apply_f64`] is in
//! `docs/SECURITY.md` and checked by this module's tests.

use crate::error::{NnError, Result};
use crate::piecewise::{Piecewise, RealFn, Tolerance};

/// The defence's parameters, validated (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReverseSigmoid {
    beta: f64,
    gamma: f64,
}

/// The default `beta` (our choice; the papers do not fix one).
pub const DEFAULT_BETA: f64 = 0.7;
/// The default `gamma` (our choice; the papers do not fix one).
pub const DEFAULT_GAMMA: f64 = 0.5;

impl Default for ReverseSigmoid {
    fn default() -> Self {
        ReverseSigmoid {
            beta: DEFAULT_BETA,
            gamma: DEFAULT_GAMMA,
        }
    }
}

impl ReverseSigmoid {
    /// The defence with `0 <= beta <= 1` and `0 < gamma <= 1`.
    pub fn new(beta: f64, gamma: f64) -> Result<Self> {
        if !(beta.is_finite() && (0.0..=1.0).contains(&beta)) {
            return Err(NnError::InvalidArgument(format!(
                "reverse sigmoid: beta = {beta}, it must be in [0, 1]"
            )));
        }
        if !(gamma.is_finite() && gamma > 0.0 && gamma <= 1.0) {
            return Err(NnError::InvalidArgument(format!(
                "reverse sigmoid: gamma = {gamma}, it must be in (0, 1]"
            )));
        }
        Ok(ReverseSigmoid { beta, gamma })
    }

    /// `beta`.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// `gamma`.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// `h(y) = s(gamma s^-1(y))` for `y` in `(0, 1)`.
    pub fn h(&self, y: f64) -> f64 {
        let (a, b) = (y.powf(self.gamma), (1.0 - y).powf(self.gamma));
        a / (a + b)
    }

    /// `g(y) = y - beta (h(y) - 1/2)` with `y` clipped to
    /// `[2^-frac, 1 - 2^-frac]`.
    pub fn perturb(&self, y: f64, frac: u32) -> f64 {
        let lo = (-(frac as f64)).exp2();
        let y = y.clamp(lo, 1.0 - lo);
        y - self.beta * (self.h(y) - 0.5)
    }

    /// The defended output of one sample's logits: softmax, [`Self::perturb`],
    /// normalised to sum to one.
    pub fn apply_f64(&self, logits: &[f64], frac: u32) -> Vec<f64> {
        let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = logits.iter().map(|&z| (z - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let g: Vec<f64> = e.iter().map(|&v| self.perturb(v / s, frac)).collect();
        let total: f64 = g.iter().sum();
        g.iter().map(|&v| v / total).collect()
    }

    /// Bounds `[lo, hi]` on `sum_i g(y_i)` over every probability vector of
    /// `classes` entries (clipped at `2^-frac`).
    ///
    /// `sum_i g(y_i) = sum_i clip(y_i) - beta (sum_i h(y_i) - k/2)`. Upper:
    /// `h >= 0` and the clipped `y` sum to at most `1 + k 2^-frac`. Lower:
    /// `h` is concave on `[0, 1/2]` for `gamma <= 1`, so by Jensen `sum_i h`
    /// is at most `k h(1/k)` when every `y_i <= 1/2`, and at most
    /// `max_{y_1 >= 1/2} h(y_1) + (k-1) h((1-y_1)/(k-1))` when one exceeds
    /// `1/2` (maximised on a grid of 4097 points, plus the largest slope of
    /// the expression times the grid step); clipping adds at most
    /// `k h(2^-frac)`.
    pub fn norm_bounds(&self, classes: usize, frac: u32) -> (f64, f64) {
        let k = classes as f64;
        let clip = (-(frac as f64)).exp2();
        let hi = 1.0 + k * clip + self.beta * k / 2.0;
        let mut u = k * self.h(1.0 / k);
        if classes > 1 {
            let grid = 4096;
            let term = |y1: f64| self.h(y1) + (k - 1.0) * self.h((1.0 - y1) / (k - 1.0));
            let mut best = f64::NEG_INFINITY;
            let mut slope: f64 = 0.0;
            let mut prev = term(0.5);
            for i in 0..=grid {
                let y1 = (0.5 + 0.5 * i as f64 / grid as f64).min(1.0 - clip);
                let v = term(y1);
                best = best.max(v);
                slope = slope.max((v - prev).abs());
                prev = v;
            }
            u = u.max(best + slope);
        }
        u += k * self.h(clip);
        let lo = 1.0 - self.beta * (u - k / 2.0);
        (lo, hi)
    }
}

/// The fixed-point tables of the defence for one output width (see the
/// module docs): both parties build the same tables from public parameters.
#[derive(Debug, Clone)]
pub struct ReverseSigmoidTables {
    rs: ReverseSigmoid,
    classes: usize,
    logit_scale: u32,
    frac: u32,
    exp_logit: Piecewise,
    ln_sum: Piecewise,
    perturb: Piecewise,
    ln_norm: Piecewise,
    exp_frac: Piecewise,
}

/// Extra fractional bits of the pipeline's internal probabilities over the
/// output's (see [`ReverseSigmoidTables::new`]).
pub const PROB_EXTRA: u32 = 4;

/// Relative error of the `exp` table of the softmax where `exp` is small.
pub const EXP_REL: f64 = 1.0 / 128.0;

/// The five tables, by name (for reports).
pub const TABLES: [&str; 5] = ["exp_logit", "ln_sum", "perturb", "ln_norm", "exp_frac"];

impl ReverseSigmoidTables {
    /// The tables for `classes` logits at scale `logit_scale`, outputs at
    /// `frac` fractional bits, every sum kept below `2^(ring_bits - 2)` in
    /// absolute value.
    pub fn new(
        rs: ReverseSigmoid,
        classes: usize,
        logit_scale: u32,
        frac: u32,
        ring_bits: u32,
    ) -> Result<Self> {
        let bad = |m: String| NnError::InvalidArgument(format!("reverse sigmoid: {m}"));
        if classes < 2 {
            return Err(bad(format!(
                "needs at least two classes, the model has {classes}"
            )));
        }
        if !(4..=24).contains(&frac) || logit_scale > 30 || ring_bits > 64 {
            return Err(bad(format!(
                "fixed point with {frac} fractional bits, logits at scale {logit_scale}, a {ring_bits}-bit ring"
            )));
        }
        let k = classes as f64;
        let eps = (-(frac.min(12) as f64 - 1.0)).exp2();
        let d = ((frac + 1) as f64 * std::f64::consts::LN_2).min(16.0);
        let (g_lo, g_hi) = rs.norm_bounds(classes, frac);
        let margin = 0.05;
        if g_lo - margin < 0.25 {
            return Err(bad(format!(
                "beta = {}, gamma = {} with {classes} classes: the normaliser's sum may come as low as {g_lo:.3}; choose a smaller beta",
                rs.beta, rs.gamma
            )));
        }
        let clip = (-(frac as f64)).exp2();
        // The smallest g on the clipped domain, for ln g's range.
        let g_min = (0..=4096)
            .map(|i| rs.perturb(clip + (1.0 - 2.0 * clip) * i as f64 / 4096.0, frac))
            .fold(f64::INFINITY, f64::min)
            .min(rs.perturb(clip, frac));
        let fit = |fs: &[RealFn<'_>],
                   lo: f64,
                   hi: f64,
                   inp: u32,
                   out: u32,
                   max_abs: f64,
                   rel: f64| {
            // Headroom: |sum| < 2^(ring - 2) with one bit to spare.
            let bits = (max_abs + 1.0).log2().ceil() as i64;
            let room = ring_bits as i64 - 3 - out as i64 - bits;
            let shift = room.min(16);
            if shift < 6 {
                return Err(bad(format!(
                    "a {ring_bits}-bit ring leaves {shift} bits of slope precision at scale {out}"
                )));
            }
            let tol = Tolerance { abs: eps, rel };
            let p = Piecewise::fit(fs, lo, hi, inp, out, shift as u32, tol)?;
            if p.max_abs_sum() >= 1u128 << (ring_bits - 2) {
                return Err(bad(format!(
                    "a table's sums reach {} bits in a {ring_bits}-bit ring",
                    128 - p.max_abs_sum().leading_zeros()
                )));
            }
            Ok(p)
        };
        let exp = |x: f64| x.exp();
        let ln = |x: f64| x.ln();
        let g = |y: f64| rs.perturb(y, frac);
        let lg = |y: f64| rs.perturb(y, frac).ln();
        // Probabilities (and g) carry PROB_EXTRA more bits than the output:
        // g is steep near 0 (like y^gamma), so one unit of 2^-f in y would
        // move it by up to gamma 2^(f(1-gamma)) units.
        let p = frac + PROB_EXTRA;
        // Relative accuracy for exp where it is small: tiny probabilities
        // feed g's steep part.
        let exp_logit = fit(&[&exp], -d, 0.0, logit_scale, p, 1.0, EXP_REL)?;
        let ln_sum = fit(&[&ln], 1.0, k, p, logit_scale, k.ln(), 0.0)?;
        let perturb = fit(
            &[&g, &lg],
            clip,
            1.0 - clip,
            p,
            p,
            (1.0 + rs.beta).max(g_min.ln().abs()),
            0.0,
        )?;
        let ln_norm = fit(
            &[&ln],
            g_lo - margin,
            g_hi + margin,
            p,
            p,
            (g_lo - margin).ln().abs().max((g_hi + margin).ln()),
            0.0,
        )?;
        let exp_frac = fit(&[&exp], -d, 0.0, p, frac, 1.0, 0.0)?;
        Ok(ReverseSigmoidTables {
            rs,
            classes,
            logit_scale,
            frac,
            exp_logit,
            ln_sum,
            perturb,
            ln_norm,
            exp_frac,
        })
    }

    /// The tables for `classes` outputs of `program` (its output scale, its
    /// fractional bits and ring).
    pub fn for_program(
        rs: ReverseSigmoid,
        classes: usize,
        program: &crate::fixed::FixedProgram,
    ) -> Result<Self> {
        Self::new(
            rs,
            classes,
            program.output_scale(),
            program.fixed.frac_bits,
            program.ring().bits(),
        )
    }

    /// The parameters.
    pub fn params(&self) -> ReverseSigmoid {
        self.rs
    }

    /// Classes per sample.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Scale of the input logits.
    pub fn logit_scale(&self) -> u32 {
        self.logit_scale
    }

    /// Fractional bits of the outputs.
    pub fn frac(&self) -> u32 {
        self.frac
    }

    /// `exp` on `[-D, 0]`, logits' scale in, `frac` out.
    pub fn exp_logit(&self) -> &Piecewise {
        &self.exp_logit
    }

    /// `ln` on `[1, k]`, `frac` in, logits' scale out.
    pub fn ln_sum(&self) -> &Piecewise {
        &self.ln_sum
    }

    /// `g` and `ln g` on `[2^-f, 1 - 2^-f]`.
    pub fn perturb(&self) -> &Piecewise {
        &self.perturb
    }

    /// `ln` on the normaliser's bounds.
    pub fn ln_norm(&self) -> &Piecewise {
        &self.ln_norm
    }

    /// `exp` on `[-D, 0]`, `frac` in and out.
    pub fn exp_frac(&self) -> &Piecewise {
        &self.exp_frac
    }

    /// ReLUs per sample the secure stage evaluates (one per knot and input).
    pub fn relus_per_sample(&self) -> usize {
        let k = self.classes;
        k * (2 * self.exp_logit.knots().len()
            + self.perturb.knots().len()
            + self.exp_frac.knots().len())
            + self.ln_sum.knots().len()
            + self.ln_norm.knots().len()
    }

    /// The pipeline on one sample's logits (signed integers at the logits'
    /// scale), with exact floors: the defended outputs at `frac` bits.
    pub fn apply_fixed(&self, z: &[i64]) -> Vec<i64> {
        let m = z.iter().copied().max().unwrap_or(0);
        let d: Vec<i64> = z.iter().map(|&v| v - m).collect();
        let t0 = self.exp_logit.knots()[0];
        let e: Vec<i64> = d.iter().map(|&v| self.exp_logit.eval(0, v)).collect();
        let s: i64 = e.iter().sum();
        let l = self.ln_sum.eval(0, s);
        let y: Vec<i64> = d
            .iter()
            .map(|&v| self.exp_logit.eval(0, v.max(t0) - l))
            .collect();
        let g: Vec<i64> = y.iter().map(|&v| self.perturb.eval(0, v)).collect();
        let lg: Vec<i64> = y.iter().map(|&v| self.perturb.eval(1, v)).collect();
        let total: i64 = g.iter().sum();
        let ln_total = self.ln_norm.eval(0, total);
        lg.iter()
            .map(|&v| self.exp_frac.eval(0, v - ln_total))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tables(k: usize) -> ReverseSigmoidTables {
        ReverseSigmoidTables::new(ReverseSigmoid::default(), k, 12, 12, 37).expect("tables")
    }

    #[test]
    fn parameters_out_of_range_are_refused() {
        for (b, g) in [
            (-0.1, 0.5),
            (1.1, 0.5),
            (0.5, 0.0),
            (0.5, 1.5),
            (f64::NAN, 0.5),
        ] {
            assert!(ReverseSigmoid::new(b, g).is_err(), "({b}, {g})");
        }
        assert!(ReverseSigmoid::new(0.0, 1.0).is_ok());
        let rs = ReverseSigmoid::default();
        assert!(ReverseSigmoidTables::new(rs, 1, 12, 12, 37).is_err());
        assert!(
            ReverseSigmoidTables::new(rs, 10, 12, 12, 20).is_err(),
            "a ring too narrow"
        );
    }

    #[test]
    fn with_two_classes_the_defence_keeps_the_label_and_sums_to_one() {
        let rs = ReverseSigmoid::default();
        for z in [[0.3, -0.2], [-4.0, 2.0], [1.0, 1.0001]] {
            let y = rs.apply_f64(&z, 12);
            assert!((y[0] + y[1] - 1.0).abs() < 1e-12);
            assert_eq!(y[0] > y[1], z[0] > z[1], "{z:?} -> {y:?}");
        }
    }

    proptest! {
        #[test]
        fn the_normaliser_bounds_hold_on_random_probability_vectors(
            k in 2usize..12,
            w in proptest::collection::vec(0.0f64..1.0, 12),
            p in 0.5f64..8.0,
            beta in 0.0f64..1.0,
            gamma in 0.05f64..1.0,
        ) {
            let rs = ReverseSigmoid::new(beta, gamma).expect("params");
            let raw: Vec<f64> = w[..k].iter().map(|v| v.powf(p)).collect();
            let s: f64 = raw.iter().sum::<f64>().max(1e-300);
            let total: f64 = raw.iter().map(|v| rs.perturb(v / s, 12)).sum();
            let (lo, hi) = rs.norm_bounds(k, 12);
            prop_assert!(total >= lo - 1e-9 && total <= hi + 1e-9, "{lo} <= {total} <= {hi}");
        }

        #[test]
        fn the_fixed_point_pipeline_is_close_to_the_f64_defence(
            z in proptest::collection::vec(-12.0f64..12.0, 10),
        ) {
            let t = tables(10);
            let zi: Vec<i64> = z.iter().map(|v| (v * 4096.0).round() as i64).collect();
            let zq: Vec<f64> = zi.iter().map(|&v| v as f64 / 4096.0).collect();
            let want = t.params().apply_f64(&zq, 12);
            let got = t.apply_fixed(&zi);
            for (g, w) in got.iter().zip(&want) {
                let e = (*g as f64 / 4096.0 - w).abs();
                prop_assert!(e < 0.01, "{got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn ten_class_tables_cost_a_bounded_number_of_relus() {
        let t = tables(10);
        let n = t.relus_per_sample();
        assert!(n > 100 && n < 3000, "{n} ReLUs per sample");
    }
}

#[cfg(test)]
mod measured {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// The documented error of the fixed-point pipeline against the f64
    /// defence (docs/SECURITY.md), over 20,000 seeded random logit vectors of
    /// ten classes with spreads from 0.5 to 24.
    #[test]
    fn the_pipelines_error_against_f64_stays_below_the_documented_bound() {
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(7);
        for (beta, gamma) in [(0.7, 0.5), (0.3, 0.2), (1.0, 1.0), (0.0, 0.5)] {
            let rs = ReverseSigmoid::new(beta, gamma).expect("params");
            let t = ReverseSigmoidTables::new(rs, 10, 12, 12, 37).expect("tables");
            let mut worst: f64 = 0.0;
            let mut flips = 0;
            for i in 0..20_000 {
                let spread = 0.5 + 23.5 * (i % 100) as f64 / 100.0;
                let z: Vec<i64> = (0..10)
                    .map(|_| (rng.random_range(-spread..spread) * 4096.0).round() as i64)
                    .collect();
                let zq: Vec<f64> = z.iter().map(|&v| v as f64 / 4096.0).collect();
                let want = rs.apply_f64(&zq, 12);
                let got: Vec<f64> = t
                    .apply_fixed(&z)
                    .iter()
                    .map(|&v| v as f64 / 4096.0)
                    .collect();
                for (g, w) in got.iter().zip(&want) {
                    worst = worst.max((g - w).abs());
                }
                let am = |v: &[f64]| (0..v.len()).fold(0, |b, j| if v[j] > v[b] { j } else { b });
                if am(&got) != am(&want) {
                    flips += 1;
                }
            }
            let g = |y: f64| rs.perturb(y, 12);
            let lg = |y: f64| rs.perturb(y, 12).ln();
            eprintln!(
                "perturb table error {:?}",
                t.perturb().max_error(&[&g, &lg], 1 << 16)
            );
            eprintln!(
                "beta {beta} gamma {gamma}: knots {:?}, {} ReLUs per sample, max |y_hat - f64| {worst:.5}, argmax differs on {flips} of 20000",
                [
                    t.exp_logit().knots().len(),
                    t.ln_sum().knots().len(),
                    t.perturb().knots().len(),
                    t.ln_norm().knots().len(),
                    t.exp_frac().knots().len()
                ],
                t.relus_per_sample()
            );
            assert!(worst < 0.004, "beta {beta} gamma {gamma}: {worst}");
        }
    }
}
