//! Max pooling: the maximum of each window of a shared vector, as a tournament
//! of pairwise maxima `max(a, b) = b + ReLU(a - b)` (CrypTFlow2, ePrint
//! 2020/1002, §4.2 uses the same `ReLU`-based max).
//!
//! All pairs of all windows at one tournament level go through **one** batched
//! ReLU, so a window of `k` elements costs `ceil(log2 k)` ReLU rounds in total
//! (e.g. 2 for 2x2 pooling), whatever the number of windows.
//!
//! Range: `a - b` must not wrap, i.e. all inputs in `[-2^{l-2}, 2^{l-2})`;
//! then the result is exact. When the inputs are known to fit in `k < l - 1`
//! signed bits (e.g. the outputs of a truncation), `|a - b| < 2^k`, and the
//! ReLU's comparison reads only the `k + 1` low bits of the shares of `a - b`
//! ([`crate::drelu`], narrow windows): `k` compared bits instead of `l - 1`
//! ([`crate::OtEngine::max_pool_bounded`]). Learns nothing beyond the output
//! shares. Cost: `k - 1` ReLUs per window of `k`.

use crate::error::{Result, param};

/// The candidates of each window (indices into `x`).
pub(crate) fn gather(x: &[u64], windows: &[Vec<usize>]) -> Result<Vec<Vec<u64>>> {
    windows
        .iter()
        .map(|w| {
            if w.is_empty() {
                return Err(param("max pool: empty window"));
            }
            w.iter()
                .map(|&i| {
                    x.get(i)
                        .copied()
                        .ok_or_else(|| param(format!("max pool: index {i} out of range")))
                })
                .collect()
        })
        .collect()
}

/// The pairs `(a, b)` of one tournament level, window by window.
pub(crate) fn pairs(cands: &[Vec<u64>]) -> (Vec<u64>, Vec<u64>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for c in cands {
        for p in c.chunks_exact(2) {
            a.push(p[0]);
            b.push(p[1]);
        }
    }
    (a, b)
}

/// Replaces each pair by its maximum (in the order of [`pairs`]); an odd last
/// candidate moves up unchanged.
pub(crate) fn merge(cands: &mut [Vec<u64>], maxima: &[u64]) {
    let mut it = maxima.iter();
    for c in cands.iter_mut() {
        let mut next = Vec::with_capacity(c.len().div_ceil(2));
        for p in c.chunks(2) {
            if p.len() == 2 {
                next.push(it.next().copied().unwrap_or_default());
            } else {
                next.push(p[0]);
            }
        }
        *c = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tournament_helpers_compute_window_maxima_in_plaintext() {
        let x: Vec<u64> = vec![5, 1, 9, 3, 7, 2, 8];
        let windows = vec![vec![0, 1, 2, 3], vec![4, 5, 6], vec![6]];
        let mut c = gather(&x, &windows).unwrap();
        while c.iter().any(|w| w.len() > 1) {
            let (a, b) = pairs(&c);
            let m: Vec<u64> = a.iter().zip(&b).map(|(a, b)| *a.max(b)).collect();
            merge(&mut c, &m);
        }
        assert_eq!(c, vec![vec![9], vec![8], vec![8]]);
        assert!(gather(&x, &[vec![]]).is_err());
        assert!(gather(&x, &[vec![7]]).is_err());
    }
}
