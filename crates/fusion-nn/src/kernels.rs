//! Compute kernels shared by the engines and the trainer: im2col / col2im,
//! matrix products (f32 through `ndarray`/`matrixmultiply`, `Z_{2^64}` wrapping
//! products of our own), and window reductions for pooling.
//!
//! Everything here is deterministic: parallel products split the *output* rows
//! into chunks whose size depends only on the matrix shape (never on the number
//! of threads), so every output element is computed by one sequential loop in
//! one fixed order. Results are bitwise reproducible on a given CPU (the f32 SIMD
//! kernel is chosen at run time, so another CPU may differ in the last bits).

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Geometry of a square-kernel window operation (convolution or pooling) on one
/// `[C, H, W]` sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Input channels.
    pub c: usize,
    /// Input rows.
    pub h: usize,
    /// Input columns.
    pub w: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on each side.
    pub pad: usize,
    /// Output rows.
    pub ho: usize,
    /// Output columns.
    pub wo: usize,
}

impl Window {
    /// The geometry, or `None` if the window does not fit.
    pub fn new(c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Option<Self> {
        let ho = crate::graph::window_out(h, k, stride, pad)?;
        let wo = crate::graph::window_out(w, k, stride, pad)?;
        Some(Window {
            c,
            h,
            w,
            k,
            stride,
            pad,
            ho,
            wo,
        })
    }

    /// Rows of the im2col matrix: `C k k`.
    pub fn patch_len(&self) -> usize {
        self.c * self.k * self.k
    }

    /// Output positions per channel: `Ho Wo`.
    pub fn out_positions(&self) -> usize {
        self.ho * self.wo
    }

    /// Elements of one input sample.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Input coordinate for output coordinate `o` and kernel offset `i`, if in bounds.
    #[inline]
    pub fn coord(&self, o: usize, i: usize, size: usize) -> Option<usize> {
        let p = o * self.stride + i;
        if p < self.pad || p - self.pad >= size {
            None
        } else {
            Some(p - self.pad)
        }
    }
}

/// im2col of one sample: `out[(c k + ki) k + kj][oh Wo + ow] = x[c][oh s + ki - p][ow s + kj - p]`
/// (zero outside the input). `x` has `C H W` elements, `out` `patch_len * out_positions`.
pub fn im2col<T: Copy + Default>(g: &Window, x: &[T], out: &mut [T]) {
    debug_assert_eq!(x.len(), g.in_len());
    debug_assert_eq!(out.len(), g.patch_len() * g.out_positions());
    let np = g.out_positions();
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.k {
            for kj in 0..g.k {
                let row = (c * g.k + ki) * g.k + kj;
                let dst = &mut out[row * np..(row + 1) * np];
                for oh in 0..g.ho {
                    let seg = &mut dst[oh * g.wo..(oh + 1) * g.wo];
                    match g.coord(oh, ki, g.h) {
                        None => seg.fill(T::default()),
                        Some(ih) => {
                            let src = &plane[ih * g.w..(ih + 1) * g.w];
                            if g.stride == 1 && kj >= g.pad && g.wo + kj - g.pad <= g.w {
                                seg.copy_from_slice(&src[kj - g.pad..kj - g.pad + g.wo]);
                            } else {
                                for (ow, d) in seg.iter_mut().enumerate() {
                                    *d = g.coord(ow, kj, g.w).map_or(T::default(), |iw| src[iw]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `cols` back to the input
/// position it was read from (`dx` must be zeroed by the caller or hold a sum).
pub fn col2im(g: &Window, cols: &[f32], dx: &mut [f32]) {
    let np = g.out_positions();
    for c in 0..g.c {
        for ki in 0..g.k {
            for kj in 0..g.k {
                let row = (c * g.k + ki) * g.k + kj;
                let src = &cols[row * np..(row + 1) * np];
                for oh in 0..g.ho {
                    let Some(ih) = g.coord(oh, ki, g.h) else {
                        continue;
                    };
                    let base = (c * g.h + ih) * g.w;
                    for ow in 0..g.wo {
                        if let Some(iw) = g.coord(ow, kj, g.w) {
                            dx[base + iw] += src[oh * g.wo + ow];
                        }
                    }
                }
            }
        }
    }
}

/// Reduces every window of one `[C, H, W]` sample with `f` over its in-bounds
/// positions (padding positions are skipped: for a sum that is zero padding, for a
/// max it is "padding never wins"). `out` has `C Ho Wo` elements. Every window
/// has at least one in-bounds position when `2 pad <= k` (checked by the graph).
pub fn window_reduce<T: Copy>(g: &Window, x: &[T], out: &mut [T], f: impl Fn(T, T) -> T) {
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                let mut acc: Option<T> = None;
                for ki in 0..g.k {
                    let Some(ih) = g.coord(oh, ki, g.h) else {
                        continue;
                    };
                    for kj in 0..g.k {
                        let Some(iw) = g.coord(ow, kj, g.w) else {
                            continue;
                        };
                        let v = plane[ih * g.w + iw];
                        acc = Some(match acc {
                            None => v,
                            Some(a) => f(a, v),
                        });
                    }
                }
                if let Some(a) = acc {
                    out[(c * g.ho + oh) * g.wo + ow] = a;
                }
            }
        }
    }
}

/// Calls `f(output index, input index)` for every in-bounds (window, position)
/// pair, in the order [`window_reduce`] visits them.
pub fn window_for_each(g: &Window, mut f: impl FnMut(usize, usize)) {
    for c in 0..g.c {
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                let o = (c * g.ho + oh) * g.wo + ow;
                for ki in 0..g.k {
                    let Some(ih) = g.coord(oh, ki, g.h) else {
                        continue;
                    };
                    for kj in 0..g.k {
                        let Some(iw) = g.coord(ow, kj, g.w) else {
                            continue;
                        };
                        f(o, (c * g.h + ih) * g.w + iw);
                    }
                }
            }
        }
    }
}

/// Rows per parallel chunk for an `m x n` output with inner dimension `k`: a
/// function of the shape only, so results do not depend on the thread count.
fn chunk_rows(m: usize, k: usize, n: usize) -> usize {
    if m.saturating_mul(k).saturating_mul(n) < (1 << 18) {
        m.max(1)
    } else {
        m.div_ceil(8).max(4)
    }
}

/// `c = a b + beta c` in f32 (`beta` 0 or 1), parallel over row chunks of `c`.
/// Views may have any strides (transposes are free).
pub fn gemm_f32(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    let rows = chunk_rows(m, k, n);
    if rows >= m {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, beta, &mut c);
        return;
    }
    let pairs: Vec<_> = a
        .axis_chunks_iter(Axis(0), rows)
        .zip(c.axis_chunks_iter_mut(Axis(0), rows))
        .collect();
    pairs.into_par_iter().for_each(|(a, mut c)| {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, beta, &mut c);
    });
}

/// `c += a b` over `Z_{2^64}` (wrapping), `a` is `m x k`, `b` is `k x n`, `c` is
/// `m x n`, all row-major. Reducing the result mod `2^l` gives the product in
/// `Z_{2^l}` for any `l <= 64`.
pub fn gemm_u64(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    debug_assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    for i in 0..m {
        let crow = &mut c[i * n..(i + 1) * n];
        let arow = &a[i * k..(i + 1) * k];
        for (p, &aip) in arow.iter().enumerate() {
            if aip == 0 {
                continue;
            }
            let brow = &b[p * n..(p + 1) * n];
            for (cv, &bv) in crow.iter_mut().zip(brow) {
                *cv = cv.wrapping_add(aip.wrapping_mul(bv));
            }
        }
    }
}

/// Wrapping dot product over `Z_{2^64}`.
pub fn dot_u64(a: &[u64], b: &[u64]) -> u64 {
    let mut acc = [0u64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..4 {
            acc[j] = acc[j].wrapping_add(x[j].wrapping_mul(y[j]));
        }
    }
    let mut s = acc[0]
        .wrapping_add(acc[1])
        .wrapping_add(acc[2].wrapping_add(acc[3]));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s = s.wrapping_add(x.wrapping_mul(*y));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Direct-loop convolution of one sample (the reference).
    fn conv_naive(g: &Window, x: &[f64], w: &[f64], co: usize) -> Vec<f64> {
        let mut y = vec![0.0; co * g.ho * g.wo];
        for o in 0..co {
            for oh in 0..g.ho {
                for ow in 0..g.wo {
                    let mut s = 0.0;
                    for c in 0..g.c {
                        for ki in 0..g.k {
                            for kj in 0..g.k {
                                let ih = (oh * g.stride + ki) as isize - g.pad as isize;
                                let iw = (ow * g.stride + kj) as isize - g.pad as isize;
                                if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                    continue;
                                }
                                s += w[((o * g.c + c) * g.k + ki) * g.k + kj]
                                    * x[(c * g.h + ih as usize) * g.w + iw as usize];
                            }
                        }
                    }
                    y[(o * g.ho + oh) * g.wo + ow] = s;
                }
            }
        }
        y
    }

    fn geometry() -> impl Strategy<Value = (Window, usize)> {
        (
            1usize..4,
            1usize..9,
            1usize..9,
            1usize..5,
            1usize..4,
            0usize..3,
            1usize..4,
        )
            .prop_filter_map("window must fit", |(c, h, w, k, s, p, co)| {
                Window::new(c, h, w, k, s, p).map(|g| (g, co))
            })
    }

    proptest! {
        #[test]
        fn im2col_gemm_matches_direct_convolution((g, co) in geometry(), seed in any::<u64>()) {
            let mut r = seed;
            let mut next = || { r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((r >> 33) % 201) as i64 - 100 };
            let x: Vec<i64> = (0..g.in_len()).map(|_| next()).collect();
            let w: Vec<i64> = (0..co * g.patch_len()).map(|_| next()).collect();
            let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let wf: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            let want = conv_naive(&g, &xf, &wf, co);

            // Ring path.
            let xu: Vec<u64> = x.iter().map(|&v| v as u64).collect();
            let wu: Vec<u64> = w.iter().map(|&v| v as u64).collect();
            let mut cols = vec![0u64; g.patch_len() * g.out_positions()];
            im2col(&g, &xu, &mut cols);
            let mut y = vec![0u64; co * g.out_positions()];
            gemm_u64(co, g.patch_len(), g.out_positions(), &wu, &cols, &mut y);
            let got: Vec<f64> = y.iter().map(|&v| v as i64 as f64).collect();
            prop_assert_eq!(&got, &want);

            // f32 path (small integers: exact).
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let mut cols = vec![0f32; g.patch_len() * g.out_positions()];
            im2col(&g, &x32, &mut cols);
            let mut y = vec![0f32; co * g.out_positions()];
            gemm_f32(
                ArrayView2::from_shape((co, g.patch_len()), &w32).expect("shape"),
                ArrayView2::from_shape((g.patch_len(), g.out_positions()), &cols).expect("shape"),
                0.0,
                ArrayViewMut2::from_shape((co, g.out_positions()), &mut y).expect("shape"),
            );
            let got: Vec<f64> = y.iter().map(|&v| v as f64).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn col2im_is_the_adjoint_of_im2col((g, _co) in geometry(), seed in any::<u64>()) {
            // <im2col(x), y> == <x, col2im(y)> for integer-valued vectors.
            let mut r = seed | 1;
            let mut next = || { r ^= r << 13; r ^= r >> 7; r ^= r << 17; ((r % 21) as f32) - 10.0 };
            let x: Vec<f32> = (0..g.in_len()).map(|_| next()).collect();
            let y: Vec<f32> = (0..g.patch_len() * g.out_positions()).map(|_| next()).collect();
            let mut cols = vec![0f32; y.len()];
            im2col(&g, &x, &mut cols);
            let mut dx = vec![0f32; x.len()];
            col2im(&g, &y, &mut dx);
            let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            prop_assert_eq!(lhs, rhs);
        }

        #[test]
        fn window_reduce_matches_naive_max_and_sum((g, _co) in geometry(), seed in any::<u64>()) {
            prop_assume!(2 * g.pad <= g.k);
            let mut r = seed | 1;
            let mut next = || { r ^= r << 13; r ^= r >> 7; r ^= r << 17; (r % 1000) as i64 - 500 };
            let x: Vec<i64> = (0..g.in_len()).map(|_| next()).collect();
            let mut mx = vec![0i64; g.c * g.out_positions()];
            let mut sm = vec![0i64; g.c * g.out_positions()];
            window_reduce(&g, &x, &mut mx, |a, b| a.max(b));
            window_reduce(&g, &x, &mut sm, |a, b| a + b);
            for c in 0..g.c {
                for oh in 0..g.ho {
                    for ow in 0..g.wo {
                        let mut best = i64::MIN;
                        let mut sum = 0;
                        for ki in 0..g.k {
                            for kj in 0..g.k {
                                let ih = (oh * g.stride + ki) as isize - g.pad as isize;
                                let iw = (ow * g.stride + kj) as isize - g.pad as isize;
                                if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize { continue; }
                                let v = x[(c * g.h + ih as usize) * g.w + iw as usize];
                                best = best.max(v);
                                sum += v;
                            }
                        }
                        let o = (c * g.ho + oh) * g.wo + ow;
                        prop_assert_eq!(mx[o], best);
                        prop_assert_eq!(sm[o], sum);
                    }
                }
            }
        }
    }

    #[test]
    fn parallel_gemm_equals_single_call() {
        let (m, k, n) = (70, 90, 50);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729) % 17) as f32 * 0.1 - 0.8)
            .collect();
        let av = ArrayView2::from_shape((m, k), &a).expect("shape");
        let bv = ArrayView2::from_shape((k, n), &b).expect("shape");
        let mut c1 = vec![0f32; m * n];
        gemm_f32(
            av,
            bv,
            0.0,
            ArrayViewMut2::from_shape((m, n), &mut c1).expect("shape"),
        );
        let mut c2 = ndarray::Array2::<f32>::zeros((m, n));
        ndarray::linalg::general_mat_mul(1.0, &av, &bv, 0.0, &mut c2);
        assert_eq!(c1, c2.into_raw_vec_and_offset().0);
    }

    #[test]
    fn dot_u64_wraps() {
        let a = [u64::MAX, 2, 3, 4, 5];
        let b = [2u64, 3, 4, 5, 6];
        assert_eq!(
            dot_u64(&a, &b),
            (2u64.wrapping_neg()).wrapping_add(6 + 12 + 20 + 30)
        );
    }
}
