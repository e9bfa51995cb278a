//! Average pooling on additive shares: a local operation, no cryptography.
//!
//! **Computes** the window sums `S[n][c][i][j] = sum_{a,b < k} Xpad[n][c][s i + a][s j + b]`
//! of a shared tensor `X[batch][channels][h][w]` (zero padding `pad` on every side,
//! as PyTorch's `AvgPool2d` with `count_include_pad`). A window sum is a public
//! linear map, so each party applies it to its own share and the results are
//! shares of `S`: `sum(x_c) + sum(x_s) = sum(x_c + x_s) mod 2^l`. No HE is needed and
//! nothing is exchanged; we provide it here so the engine has every linear layer in
//! one place.
//!
//! **The division by `k^2`** is not linear over `Z_{2^l}` and is left to the
//! engine: when `k^2 = 2^d` it is a truncation by `d` bits (the engine's
//! truncation protocol, which it runs after every multiplication anyway);
//! otherwise fold `1/k^2` into the next linear layer's weights, or multiply by the
//! fixed-point constant `round(2^f / k^2)` and truncate by `f`.
//!
//! **Learns**: nothing (no messages).

use fusion_core::ring::Ring;

use crate::error::HeError;

/// Shape of a pooling window over `[batch][channels][height][width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolShape {
    /// Images in the batch.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window size (square).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

impl PoolShape {
    /// Output height `(h + 2 pad - k) / s + 1`.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding).saturating_sub(self.kernel) / self.stride.max(1) + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding).saturating_sub(self.kernel) / self.stride.max(1) + 1
    }

    /// Elements of the input tensor.
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Elements of the output tensor.
    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_height() * self.out_width()
    }
}

/// Window sums of one party's share (see the module docs); the other party calls it
/// on its own share.
pub fn avg_pool_window_sum(
    ring: Ring,
    shape: &PoolShape,
    share: &[u64],
) -> Result<Vec<u64>, HeError> {
    if shape.kernel == 0
        || shape.stride == 0
        || shape.height + 2 * shape.padding < shape.kernel
        || shape.width + 2 * shape.padding < shape.kernel
    {
        return Err(HeError::InvalidShape(format!(
            "pooling window does not fit: {shape:?}"
        )));
    }
    if share.len() != shape.input_len() {
        return Err(HeError::InputLength {
            what: "pooling input",
            expected: shape.input_len(),
            found: share.len(),
        });
    }
    let (ho, wo) = (shape.out_height(), shape.out_width());
    let (h, w) = (shape.height as isize, shape.width as isize);
    let mut out = vec![0u64; shape.output_len()];
    for (plane, dst) in share
        .chunks_exact(shape.height * shape.width)
        .zip(out.chunks_exact_mut(ho * wo))
    {
        for i in 0..ho {
            for j in 0..wo {
                let mut acc = 0u64;
                for a in 0..shape.kernel {
                    let r = (i * shape.stride + a) as isize - shape.padding as isize;
                    if r < 0 || r >= h {
                        continue;
                    }
                    for b in 0..shape.kernel {
                        let c = (j * shape.stride + b) as isize - shape.padding as isize;
                        if c >= 0 && c < w {
                            acc = acc.wrapping_add(plane[(r * w + c) as usize]);
                        }
                    }
                }
                dst[i * wo + j] = ring.reduce(acc);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    #[test]
    fn window_sums_of_shares_are_shares_of_window_sums() {
        let ring = Ring::new(37).unwrap();
        let shape = PoolShape {
            batch: 2,
            channels: 3,
            height: 6,
            width: 5,
            kernel: 2,
            stride: 2,
            padding: 1,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let x: Vec<u64> = (0..shape.input_len())
            .map(|_| ring.random(&mut rng))
            .collect();
        let (x0, x1): (Vec<u64>, Vec<u64>) = x.iter().map(|&v| ring.share(v, &mut rng)).unzip();
        let s = avg_pool_window_sum(ring, &shape, &x).unwrap();
        let s0 = avg_pool_window_sum(ring, &shape, &x0).unwrap();
        let s1 = avg_pool_window_sum(ring, &shape, &x1).unwrap();
        for i in 0..s.len() {
            assert_eq!(ring.reconstruct(s0[i], s1[i]), s[i]);
        }
    }

    #[test]
    fn window_sum_by_hand() {
        let ring = Ring::new(8).unwrap();
        // 1 x 1 x 3 x 3, k = 2, s = 1, no padding.
        let shape = PoolShape {
            batch: 1,
            channels: 1,
            height: 3,
            width: 3,
            kernel: 2,
            stride: 1,
            padding: 0,
        };
        let x = [1, 2, 3, 4, 5, 6, 7, 8, 255];
        let s = avg_pool_window_sum(ring, &shape, &x).unwrap();
        assert_eq!(s, vec![12, 16, 24, (5 + 6 + 8 + 255) % 256]);
        assert!(avg_pool_window_sum(ring, &shape, &x[..8]).is_err());
    }
}
