//! Linear extrapolation of measured batches: `cost(n) = a + b n`.
//!
//! A secure batch of `n` samples costs a fixed part `a` (round trips, per-batch
//! messages, OT generation barriers) plus a part `b n` that grows with the samples (HE
//! ciphertexts and OT traffic per sample). Fitting time and bytes on two (or
//! more) measured batch sizes by least squares and evaluating at the paper's
//! `N = RB + T` is how `fusion-bench tables` fills cells too large to run on a
//! small machine; such cells are marked *extrapolated*. With a single measured
//! batch size the fit goes through the origin (`a = 0`, `b = cost / n`).

use serde::{Deserialize, Serialize};

/// `y = intercept + slope * n`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    /// `a`: the fixed part.
    pub intercept: f64,
    /// `b`: the cost per sample.
    pub slope: f64,
}

impl LinearFit {
    /// Least-squares fit of `(n, y)` points; `None` without points. One
    /// distinct `n` gives the proportional fit through the origin (mean `y / n`).
    pub fn fit(points: &[(f64, f64)]) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        let k = points.len() as f64;
        let mx = points.iter().map(|p| p.0).sum::<f64>() / k;
        let my = points.iter().map(|p| p.1).sum::<f64>() / k;
        let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
        if sxx <= f64::EPSILON * mx.abs().max(1.0) {
            if mx <= 0.0 {
                return None;
            }
            return Some(LinearFit {
                intercept: 0.0,
                slope: my / mx,
            });
        }
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = sxy / sxx;
        Some(LinearFit {
            intercept: my - slope * mx,
            slope,
        })
    }

    /// The fitted cost of `n` samples.
    pub fn at(&self, n: f64) -> f64 {
        self.intercept + self.slope * n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_points_give_the_line_through_them() {
        let f = LinearFit::fit(&[(8.0, 3.0), (32.0, 9.0)]).expect("fit");
        assert!((f.slope - 0.25).abs() < 1e-12);
        assert!((f.intercept - 1.0).abs() < 1e-12);
        assert!((f.at(1000.0) - 251.0).abs() < 1e-9);
    }

    #[test]
    fn least_squares_recovers_an_exact_line_from_many_points() {
        let pts: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 9.0]
            .iter()
            .map(|&n| (n, 5.0 + 2.5 * n))
            .collect();
        let f = LinearFit::fit(&pts).expect("fit");
        assert!((f.slope - 2.5).abs() < 1e-9 && (f.intercept - 5.0).abs() < 1e-9);
    }

    #[test]
    fn one_batch_size_is_proportional_and_no_points_is_none() {
        let f = LinearFit::fit(&[(4.0, 10.0), (4.0, 14.0)]).expect("fit");
        assert_eq!(f.intercept, 0.0);
        assert!((f.slope - 3.0).abs() < 1e-12);
        assert!((f.at(10.0) - 30.0).abs() < 1e-12);
        assert!(LinearFit::fit(&[]).is_none());
        assert!(LinearFit::fit(&[(0.0, 1.0)]).is_none());
    }
}
