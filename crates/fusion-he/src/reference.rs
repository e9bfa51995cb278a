//! Naive plaintext layers over `Z_{2^l}`: the oracle of the tests (and a
//! reference for the engine). Direct loops, no encoding, no cleverness.

use fusion_core::ring::Ring;

use crate::batchnorm::BatchNormShape;
use crate::conv2d::Conv2dShape;
use crate::fc::FcShape;

/// `Y = X W^T + bias` on `[batch][in]`, weights `[out][in]`.
pub fn fc(ring: Ring, s: &FcShape, x: &[u64], w: &[u64], bias: Option<&[u64]>) -> Vec<u64> {
    let mut y = vec![0u64; s.batch * s.out_features];
    for n in 0..s.batch {
        for o in 0..s.out_features {
            let mut acc = bias.map_or(0, |b| b[o]);
            for i in 0..s.in_features {
                acc = acc
                    .wrapping_add(w[o * s.in_features + i].wrapping_mul(x[n * s.in_features + i]));
            }
            y[n * s.out_features + o] = ring.reduce(acc);
        }
    }
    y
}

/// Convolution (cross-correlation) with zero padding and strides, NCHW / OIHW.
pub fn conv2d(ring: Ring, s: &Conv2dShape, x: &[u64], w: &[u64], bias: Option<&[u64]>) -> Vec<u64> {
    let (top, _, left, _) = s.pads();
    let (ho, wo) = (s.out_height(), s.out_width());
    let mut y = vec![0u64; s.batch * s.out_channels * ho * wo];
    for n in 0..s.batch {
        for m in 0..s.out_channels {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = bias.map_or(0, |b| b[m]);
                    for c in 0..s.in_channels {
                        for a in 0..s.kernel_h {
                            for b in 0..s.kernel_w {
                                let r = (i * s.stride_h + a) as isize - top as isize;
                                let col = (j * s.stride_w + b) as isize - left as isize;
                                if r < 0
                                    || col < 0
                                    || r >= s.height as isize
                                    || col >= s.width as isize
                                {
                                    continue;
                                }
                                let xv = x[((n * s.in_channels + c) * s.height + r as usize)
                                    * s.width
                                    + col as usize];
                                let wv =
                                    w[((m * s.in_channels + c) * s.kernel_h + a) * s.kernel_w + b];
                                acc = acc.wrapping_add(xv.wrapping_mul(wv));
                            }
                        }
                    }
                    y[((n * s.out_channels + m) * ho + i) * wo + j] = ring.reduce(acc);
                }
            }
        }
    }
    y
}

/// `Y[n][c][..] = scale[c] X[n][c][..] + shift[c]`.
pub fn batch_norm(
    ring: Ring,
    s: &BatchNormShape,
    x: &[u64],
    scale: &[u64],
    shift: Option<&[u64]>,
) -> Vec<u64> {
    let hw = s.height * s.width;
    x.iter()
        .enumerate()
        .map(|(idx, &v)| {
            let c = (idx / hw) % s.channels;
            ring.reduce(
                scale[c]
                    .wrapping_mul(v)
                    .wrapping_add(shift.map_or(0, |b| b[c])),
            )
        })
        .collect()
}
