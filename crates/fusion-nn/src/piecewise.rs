//! Piecewise-linear functions in fixed point, in the one form a two-party
//! engine evaluates with ReLUs alone.
//!
//! A continuous piecewise-linear function with knots `t_0 < ... < t_J`,
//! constant below `t_0` and above `t_J`, is
//!
//! ```text
//! p(x) = c + sum_j s_j ReLU(x - t_j)
//! ```
//!
//! with `s_j` the change of slope at `t_j` (the slopes sum to zero, so `p` is
//! flat above `t_J`: the function is **clipped** to its domain). In fixed
//! point, with `X = x 2^in` and knots on that grid, every `ReLU(X - T_j)` is
//! an exact integer; the weighted sum with integer slopes `S_j` and constant
//! `C` is exact too, and one arithmetic shift right by `shift` bits brings it
//! to the output scale:
//!
//! ```text
//! P(X) = floor((C + sum_j S_j ReLU(X - T_j)) / 2^shift)
//! ```
//!
//! On secret shares this is one ReLU call over `J + 1` values per input, a
//! local weighted sum with public integers and one truncation
//! (`fusion-engine`'s reverse-sigmoid output stage). Several functions of the
//! same input share the knots (and so the ReLUs): one [`Piecewise`] holds one
//! knot set and one [`PiecewiseOutput`] per function.
//!
//! [`Piecewise::fit`] places knots greedily so that the chord of every function
//! on every segment stays within a target error, then quantises the slopes
//! with error diffusion (each knot's value is rounded against the value the
//! quantised slopes actually reach, so rounding errors do not accumulate).
//! [`Piecewise::max_error`] then measures the real error of the fixed-point
//! evaluation against the `f64` functions; that measured figure, not the
//! target, is what the docs quote.

use crate::error::{NnError, Result};

/// One function of a [`Piecewise`]: its constant and slope changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiecewiseOutput {
    /// `C`, at scale `out + shift`.
    pub constant: i64,
    /// `S_j` for knot `j`, in units of `2^(out + shift - in)`.
    pub slopes: Vec<i64>,
}

/// Piecewise-linear functions of one fixed-point input on one knot set (see
/// the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Piecewise {
    in_scale: u32,
    out_scale: u32,
    shift: u32,
    knots: Vec<i64>,
    outputs: Vec<PiecewiseOutput>,
}

/// The real functions a [`Piecewise`] approximates (evaluated on `[lo, hi]`).
pub type RealFn<'a> = &'a dyn Fn(f64) -> f64;

/// How far a chord may be from the function at `x`: `abs`, or where the
/// function is small and `rel > 0`, `rel |f(x)|` (but never below half a unit
/// of the output scale, which no fixed-point output can beat).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute error.
    pub abs: f64,
    /// Relative error (`0`: absolute only).
    pub rel: f64,
}

impl Tolerance {
    /// An absolute error only.
    pub fn abs(eps: f64) -> Self {
        Tolerance { abs: eps, rel: 0.0 }
    }

    /// The allowed error where the function's value is `v`, outputs at
    /// `out_scale` bits.
    fn at(self, v: f64, out_scale: u32) -> f64 {
        if self.rel > 0.0 {
            let floor = (-(out_scale as f64) - 1.0).exp2();
            self.abs.min((self.rel * v.abs()).max(floor))
        } else {
            self.abs
        }
    }
}

impl Piecewise {
    /// Fits the functions `fs` on `[lo, hi]` (real numbers): input at scale
    /// `in_scale` bits, outputs at `out_scale` bits, sums shifted right by
    /// `shift` bits; chords within `tol` of every function (before
    /// quantisation). Outside `[lo, hi]` each output is the function's value
    /// at the nearer end.
    pub fn fit(
        fs: &[RealFn<'_>],
        lo: f64,
        hi: f64,
        in_scale: u32,
        out_scale: u32,
        shift: u32,
        tol: Tolerance,
    ) -> Result<Piecewise> {
        let eps = tol.abs;
        fn bad<T>(m: String) -> Result<T> {
            Err(NnError::InvalidArgument(m))
        }
        if fs.is_empty() {
            return bad("a piecewise-linear fit needs at least one function".into());
        }
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return bad(format!("piecewise-linear fit on [{lo}, {hi}]"));
        }
        if !(eps.is_finite() && eps > 0.0 && tol.rel.is_finite() && tol.rel >= 0.0) {
            return bad(format!("piecewise-linear target error {tol:?}"));
        }
        if in_scale > 40 || out_scale > 40 || shift > 40 || out_scale + shift > 52 {
            return bad(format!(
                "piecewise-linear scales in {in_scale}, out {out_scale}, shift {shift}"
            ));
        }
        let q = (in_scale as f64).exp2();
        let (a, b) = ((lo * q).ceil() as i64, (hi * q).floor() as i64);
        if a >= b {
            return bad(format!(
                "[{lo}, {hi}] holds fewer than two points at scale 2^-{in_scale}"
            ));
        }
        let real = |x: i64| x as f64 / q;
        // The chord from knot `t` to `u` is within eps of every function.
        let chord_ok = |t: i64, u: i64| {
            let (xt, xu) = (real(t), real(u));
            // Evenly spaced points, and geometrically spaced ones near both
            // ends (where a steep function's chord error peaks).
            let steps = ((u - t) as usize).min(64);
            let even = (1..steps).map(|i| i as f64 / steps as f64);
            let ends = (1..24).flat_map(|j| {
                let w = (-(j as f64)).exp2();
                [w, 1.0 - w]
            });
            let points: Vec<f64> = even.chain(ends).collect();
            fs.iter().all(|f| {
                let (ft, fu) = (f(xt), f(xu));
                points.iter().all(|&w| {
                    // Only grid points matter: the input is on the grid.
                    let x = ((xt + (xu - xt) * w) * q).round() / q;
                    let line = ft + (fu - ft) * (x - xt) / (xu - xt);
                    let v = f(x);
                    (v - line).abs() <= tol.at(v, out_scale)
                })
            })
        };
        let mut knots = vec![a];
        let mut t = a;
        while t < b {
            // Grow the segment by doubling, then bisect its end.
            let mut good = t + 1;
            let mut step = 1i64;
            let mut bad_end = None;
            loop {
                let cand = (t + step).min(b);
                if chord_ok(t, cand) {
                    good = cand;
                    if cand == b {
                        break;
                    }
                    step *= 2;
                } else {
                    bad_end = Some(cand);
                    break;
                }
            }
            if let Some(mut hi_end) = bad_end {
                while hi_end - good > 1 {
                    let mid = good + (hi_end - good) / 2;
                    if chord_ok(t, mid) {
                        good = mid;
                    } else {
                        hi_end = mid;
                    }
                }
            }
            knots.push(good);
            t = good;
            if knots.len() > 4096 {
                return bad(format!(
                    "piecewise-linear fit on [{lo}, {hi}] needs more than 4096 knots for error {tol:?}"
                ));
            }
        }
        let p_scale = ((out_scale + shift) as f64).exp2();
        let outputs = fs
            .iter()
            .map(|f| {
                let target = |x: i64| (f(real(x)) * p_scale).round();
                let constant = target(knots[0]);
                if constant.abs() > 2f64.powi(62) {
                    return bad(format!(
                        "piecewise-linear value {} out of range",
                        f(real(knots[0]))
                    ));
                }
                let constant = constant as i64;
                let mut acc = i128::from(constant);
                let mut cum = Vec::with_capacity(knots.len() - 1);
                for w in knots.windows(2) {
                    let dx = i128::from(w[1] - w[0]);
                    let want = target(w[1]);
                    let sigma = ((want - acc as f64) / dx as f64).round();
                    if !sigma.is_finite() || sigma.abs() > 2f64.powi(50) {
                        return bad(format!(
                            "piecewise-linear slope out of range at {}",
                            real(w[0])
                        ));
                    }
                    let sigma = sigma as i64;
                    acc += i128::from(sigma) * dx;
                    cum.push(sigma);
                }
                // Slope changes; the last knot flattens the function.
                let mut slopes = Vec::with_capacity(knots.len());
                let mut prev = 0i64;
                for &s in &cum {
                    slopes.push(s - prev);
                    prev = s;
                }
                slopes.push(-prev);
                Ok(PiecewiseOutput { constant, slopes })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Piecewise {
            in_scale,
            out_scale,
            shift,
            knots,
            outputs,
        })
    }

    /// The knots `T_j` (at the input scale).
    pub fn knots(&self) -> &[i64] {
        &self.knots
    }

    /// The functions' constants and slopes.
    pub fn outputs(&self) -> &[PiecewiseOutput] {
        &self.outputs
    }

    /// Input scale bits.
    pub fn in_scale(&self) -> u32 {
        self.in_scale
    }

    /// Output scale bits.
    pub fn out_scale(&self) -> u32 {
        self.out_scale
    }

    /// Bits of the final shift right.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// `C + sum_j S_j ReLU(X - T_j)` of output `k` at input `x` (before the
    /// shift), exactly.
    pub fn sum(&self, k: usize, x: i64) -> i128 {
        let o = &self.outputs[k];
        let mut acc = i128::from(o.constant);
        for (&t, &s) in self.knots.iter().zip(&o.slopes) {
            let r = i128::from(x) - i128::from(t);
            if r > 0 {
                acc += i128::from(s) * r;
            }
        }
        acc
    }

    /// Output `k` at input `x`: [`Piecewise::sum`] shifted right (floor).
    pub fn eval(&self, k: usize, x: i64) -> i64 {
        (self.sum(k, x) >> self.shift) as i64
    }

    /// The largest `|sum|` over all inputs (the sum is flat outside the
    /// knots, so its extremes are at knots), for range checks.
    pub fn max_abs_sum(&self) -> u128 {
        (0..self.outputs.len())
            .flat_map(|k| {
                self.knots
                    .iter()
                    .map(move |&t| self.sum(k, t).unsigned_abs())
            })
            .max()
            .unwrap_or(0)
    }

    /// The largest `|P_k(X)/2^out - f_k(clip(x))|` over `samples` evenly
    /// spaced inputs covering the knots (every grid point if fewer), per
    /// output: the measured error of the fixed-point evaluation.
    pub fn max_error(&self, fs: &[RealFn<'_>], samples: usize) -> Vec<f64> {
        let (a, b) = (self.knots[0], *self.knots.last().unwrap_or(&0));
        let q = (self.in_scale as f64).exp2();
        let oq = (self.out_scale as f64).exp2();
        let span = (b - a) as u64;
        let step = (span / samples.max(1) as u64).max(1) as i64;
        let mut err = vec![0f64; self.outputs.len()];
        let mut x = a;
        loop {
            for (k, f) in fs.iter().enumerate().take(err.len()) {
                let e = (self.eval(k, x) as f64 / oq - f(x as f64 / q)).abs();
                err[k] = err[k].max(e);
            }
            if x >= b {
                break;
            }
            x = (x + step).min(b);
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_linear_function_is_fitted_exactly_with_two_knots() {
        let f = |x: f64| 0.5 * x + 1.0;
        let p = Piecewise::fit(&[&f], -2.0, 2.0, 8, 8, 10, Tolerance::abs(1e-6)).expect("fit");
        assert_eq!(p.knots(), &[-512, 512]);
        for x in [-600i64, -512, 0, 100, 512, 900] {
            let want = f((x.clamp(-512, 512)) as f64 / 256.0) * 256.0;
            assert_eq!(p.eval(0, x) as f64, want, "x = {x}");
        }
    }

    #[test]
    fn exp_is_clipped_outside_its_domain_and_within_the_measured_error() {
        let f = |x: f64| x.exp();
        let p = Piecewise::fit(&[&f], -8.0, 0.0, 12, 12, 16, Tolerance::abs(2f64.powi(-11)))
            .expect("fit");
        let err = p.max_error(&[&f], 1 << 16)[0];
        assert!(err < 2f64.powi(-10), "error {err}");
        // Flat beyond both ends.
        assert_eq!(p.eval(0, -1 << 20), p.eval(0, -8 << 12));
        assert_eq!(p.eval(0, 5 << 12), p.eval(0, 0));
        assert!(p.knots().len() < 64, "{} knots", p.knots().len());
    }

    #[test]
    fn a_relative_tolerance_keeps_small_values_accurate() {
        let f = |x: f64| x.exp();
        let tol = Tolerance {
            abs: 2f64.powi(-11),
            rel: 2f64.powi(-7),
        };
        let p = Piecewise::fit(&[&f], -9.0, 0.0, 12, 16, 16, tol).expect("fit");
        let q = 4096.0;
        for x in [-8.5f64, -6.0, -4.0] {
            let got = p.eval(0, (x * q) as i64) as f64 / 65536.0;
            let want = f((x * q).trunc() / q);
            assert!(
                (got - want).abs() <= want * 2f64.powi(-6) + 2f64.powi(-16),
                "{x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn several_functions_share_one_knot_set() {
        let (f, g) = (|x: f64| x.ln(), |x: f64| 1.0 / x);
        let p =
            Piecewise::fit(&[&f, &g], 1.0, 10.0, 12, 12, 16, Tolerance::abs(1e-3)).expect("fit");
        let err = p.max_error(&[&f, &g], 1 << 16);
        assert_eq!(err.len(), 2);
        assert!(err.iter().all(|&e| e < 2e-3), "{err:?}");
    }

    #[test]
    fn bad_domains_and_targets_are_refused() {
        let f = |x: f64| x;
        assert!(Piecewise::fit(&[&f], 1.0, 1.0, 8, 8, 8, Tolerance::abs(1e-3)).is_err());
        assert!(Piecewise::fit(&[&f], 0.0, 1.0, 8, 8, 8, Tolerance::abs(0.0)).is_err());
        assert!(Piecewise::fit(&[], 0.0, 1.0, 8, 8, 8, Tolerance::abs(1e-3)).is_err());
        assert!(Piecewise::fit(&[&f], 0.0, 1e-4, 8, 8, 8, Tolerance::abs(1e-3)).is_err());
    }

    proptest! {
        #[test]
        fn the_sum_is_flat_outside_the_knots_and_extremes_are_at_knots(
            x in -100_000i64..100_000,
        ) {
            let f = |v: f64| (3.0 * v).sin() + v * v;
            let p = Piecewise::fit(&[&f], -1.5, 2.0, 10, 10, 12, Tolerance::abs(1e-3)).expect("fit");
            let s = p.sum(0, x).unsigned_abs();
            prop_assert!(s <= p.max_abs_sum());
            let (a, b) = (p.knots()[0], *p.knots().last().expect("knots"));
            prop_assert_eq!(p.sum(0, x), p.sum(0, x.clamp(a, b)));
        }
    }
}
