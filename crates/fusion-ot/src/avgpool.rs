//! Average pooling and division by a public constant.
//!
//! The window sum is local (additive shares). Dividing by the window size `k`:
//!
//! - `k = 2^s`: one truncation by `s` bits ([`crate::truncate`], bounded
//!   signed mode): result `⌊sum / k⌋` or one less, for
//!   `|sum| < 2^{l-2}`.
//! - otherwise: multiply locally by the public `c = round(2^s / k)` and truncate
//!   by `s` bits. With `y = sum·c / 2^s` the result lies in `(y - 2, y]`, and
//!   `|y - sum/k| = |sum|·|c·k - 2^s| / (k·2^s) <= |sum| / 2^{s+1}`, so it is
//!   within `|sum| / 2^{s+1} + 2` of `sum / k`; requires `|sum·c| < 2^{l-2}`.
//!
//! Learns nothing beyond the output shares; cost: one truncation per output.

use fusion_core::ring::Ring;

use crate::error::{Result, param};

/// How to divide by `divisor` with `shift` extra bits: `(multiplier, shift)`.
pub(crate) fn divisor_plan(divisor: u64, shift: u32) -> Result<(u64, u32)> {
    if divisor == 0 {
        return Err(param("division by zero"));
    }
    if divisor.is_power_of_two() {
        return Ok((1, divisor.trailing_zeros()));
    }
    if shift >= 63 {
        return Err(param("division: shift must be below 63"));
    }
    let c = ((1u128 << shift) + u128::from(divisor) / 2) / u128::from(divisor);
    Ok((c as u64, shift))
}

/// Local window sums of the shares.
pub(crate) fn window_sums(ring: Ring, x: &[u64], windows: &[Vec<usize>]) -> Result<Vec<u64>> {
    windows
        .iter()
        .map(|w| {
            if w.is_empty() {
                return Err(param("average pool: empty window"));
            }
            w.iter().try_fold(0u64, |acc, &i| {
                x.get(i)
                    .map(|&v| ring.add(acc, v))
                    .ok_or_else(|| param(format!("average pool: index {i} out of range")))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisor_plan_uses_shifts_for_powers_of_two_and_rounds_otherwise() {
        assert_eq!(divisor_plan(4, 10).unwrap(), (1, 2));
        assert_eq!(divisor_plan(1, 10).unwrap(), (1, 0));
        assert_eq!(divisor_plan(3, 12).unwrap(), (1365, 12));
        assert_eq!(divisor_plan(9, 12).unwrap(), (455, 12));
        assert!(divisor_plan(0, 3).is_err());
    }
}
