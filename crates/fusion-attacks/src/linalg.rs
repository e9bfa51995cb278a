//! Small dense least squares (normal equations, Gaussian elimination with
//! partial pivoting and a tiny ridge), enough for A2's output-layer fits.

use crate::error::{AttackError, Result};

/// Solves `min_x ||A x - y||^2 + ridge ||x||^2` for every right-hand side:
/// `a` is `[m][n]`, `ys` is `[r][m]`; returns `[r][n]`.
#[allow(clippy::needless_range_loop)] // index-parallel matrices
pub fn least_squares(a: &[Vec<f64>], ys: &[Vec<f64>], ridge: f64) -> Result<Vec<Vec<f64>>> {
    let n = a.first().map_or(0, Vec::len);
    if n == 0 || a.len() < n {
        return Err(AttackError::BadParameter(format!(
            "least squares with {} equations and {n} unknowns",
            a.len()
        )));
    }
    let mut g = vec![vec![0f64; n]; n];
    for row in a {
        for i in 0..n {
            if row[i] == 0.0 {
                continue;
            }
            for j in i..n {
                g[i][j] += row[i] * row[j];
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            g[i][j] = g[j][i];
        }
        g[i][i] += ridge;
    }
    let rhs: Vec<Vec<f64>> = ys
        .iter()
        .map(|y| {
            (0..n)
                .map(|j| a.iter().zip(y).map(|(r, v)| r[j] * v).sum())
                .collect()
        })
        .collect();
    solve(g, rhs)
}

/// Solves `G x = b` for every `b` (Gaussian elimination, partial pivoting).
#[allow(clippy::needless_range_loop)] // index-parallel matrices
fn solve(mut g: Vec<Vec<f64>>, mut bs: Vec<Vec<f64>>) -> Result<Vec<Vec<f64>>> {
    let n = g.len();
    for col in 0..n {
        let p = (col..n)
            .max_by(|&i, &j| g[i][col].abs().total_cmp(&g[j][col].abs()))
            .unwrap_or(col);
        if g[p][col].abs() < 1e-300 {
            return Err(AttackError::Oracle(
                "singular system in the least-squares fit".into(),
            ));
        }
        g.swap(col, p);
        bs.iter_mut().for_each(|b| b.swap(col, p));
        for r in col + 1..n {
            let f = g[r][col] / g[col][col];
            if f == 0.0 {
                continue;
            }
            for c in col..n {
                g[r][c] -= f * g[col][c];
            }
            bs.iter_mut().for_each(|b| b[r] -= f * b[col]);
        }
    }
    for b in bs.iter_mut() {
        for r in (0..n).rev() {
            let s: f64 = (r + 1..n).map(|c| g[r][c] * b[c]).sum();
            b[r] = (b[r] - s) / g[r][r];
        }
    }
    Ok(bs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_an_exact_linear_map() -> Result<()> {
        let a: Vec<Vec<f64>> = (0..10)
            .map(|i| vec![1.0, i as f64, (i * i) as f64 % 7.0])
            .collect();
        let x = [0.5, -2.0, 3.0];
        let y: Vec<f64> = a
            .iter()
            .map(|r| r.iter().zip(&x).map(|(p, q)| p * q).sum())
            .collect();
        let s = least_squares(&a, &[y], 0.0)?;
        for (u, v) in s[0].iter().zip(&x) {
            assert!((u - v).abs() < 1e-9, "{u} vs {v}");
        }
        Ok(())
    }
}
