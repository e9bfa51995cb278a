//! Layer plans: the canonical convolution every linear layer reduces to, its
//! blocking into polynomials (Cheetah's coefficient encoding, generalised to a
//! batch of images and several filters per polynomial), and the planner that picks
//! the blocking.
//!
//! # The canonical problem
//!
//! Every layer is reduced to a batched, stride-1, unpadded 2-D cross-correlation
//! ([`Geometry`]): input `X[n][c][h][w]`, kernel `K[m][c][kh][kw]`, output
//! `Y[n][m][i][j] = sum_{c,a,b} X[n][c][i+a][j+b] K[m][c][a][b]`, all in `Z_{2^l}`.
//! A fully connected layer is the case `h = w = kh = kw = 1`; batch norm is the
//! depthwise case (`K[m][c] = 0` for `m != c`); strides and padding are removed by a
//! public rearrangement of the input (see [`crate::conv2d`]).
//!
//! # The encoding (Cheetah, Sec. 4, generalised)
//!
//! A [`Blocking`] cuts the problem into blocks of `nb` images, `cb` channels,
//! `hb x wb` spatial tiles (overlapping by `kh - 1`, `kw - 1`) and `mb` filters,
//! with `nb * mb * cb * hb * wb <= N`. With `S = cb hb wb` and
//! `O = (cb - 1) hb wb + (kh - 1) wb + (kw - 1)`:
//!
//! * input block (client): `X[beta][c][u][v]` at `X^(beta S + c hb wb + u wb + v)`;
//! * kernel block (server): `K[mu][c][a][b]` at `X^(mu nb S + O - c hb wb - a wb - b)`;
//! * the product holds `Y[beta][mu][i][j]` (`i <= hb - kh`, `j <= wb - kw`) at
//!   `X^(mu nb S + beta S + O + i wb + j)`.
//!
//! *Why no other term lands there.* A product term of `X[beta'][c][u][v]` and
//! `K[mu'][c'][a][b]` sits at `(beta' - beta) S + (mu' - mu) nb S + (c - c') hb wb +
//! (u - a - i) wb + (v - b - j)` from the target; `|v - b - j| < wb` forces
//! `v = b + j`, then `|u - a - i| < hb` forces `u = a + i`, `|c - c'| < cb` forces
//! `c = c'`, and `|beta' - beta| < nb` forces `beta' = beta, mu' = mu`. Exponents reach
//! at most `nb mb S - 1 + O < N + O`, so the terms that wrap around `X^N = -1` land
//! below `O`, under every target. With `nb = mb = 1` this is Cheetah's HomConv; with
//! `hb = wb = kh = kw = 1`, `nb = 1` it is Cheetah's HomFC; `nb > 1` batches samples
//! (a matrix product) and `mb > 1` packs several filters per reply. No rotations.
//!
//! Per block triple the server multiplies one input ciphertext by one kernel
//! polynomial and sums over channel blocks; each output ciphertext carries
//! `nb mb th tw` results (`th = hb - kh + 1`, `tw = wb - kw + 1`).
//!
//! **Learns.** The encoding is public: both parties derive it from the public
//! plan ([`crate::plan`]); it decides where values sit, never what they are.

use crate::error::HeError;

/// The canonical batched, stride-1, unpadded convolution (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels (filters).
    pub filters: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Depthwise: `filters == channels` and filter `m` only reads channel `m`.
    pub depthwise: bool,
    /// Upper bound on non-zero kernel entries per filter (for the noise analysis).
    pub taps: usize,
}

impl Geometry {
    /// Output height `height - kernel_h + 1`.
    pub fn out_h(&self) -> usize {
        self.height + 1 - self.kernel_h
    }

    /// Output width `width - kernel_w + 1`.
    pub fn out_w(&self) -> usize {
        self.width + 1 - self.kernel_w
    }

    /// Checks that the dimensions are non-empty, fit `N` and do not overflow.
    pub(crate) fn validate(&self, n: usize) -> Result<(), HeError> {
        let bad = |s: String| Err(HeError::InvalidShape(s));
        if self.batch == 0 || self.channels == 0 || self.filters == 0 {
            return bad(format!("empty dimension in {self:?}"));
        }
        if self.kernel_h == 0
            || self.kernel_w == 0
            || self.kernel_h > self.height
            || self.kernel_w > self.width
        {
            return bad(format!(
                "kernel {}x{} does not fit {}x{}",
                self.kernel_h, self.kernel_w, self.height, self.width
            ));
        }
        if self.depthwise && self.filters != self.channels {
            return bad("depthwise layer needs as many filters as channels".into());
        }
        if self.kernel_h * self.kernel_w > n {
            return bad(format!(
                "kernel {}x{} exceeds N = {n}",
                self.kernel_h, self.kernel_w
            ));
        }
        let big = [
            self.batch,
            self.channels,
            self.height,
            self.width,
            self.filters,
        ];
        if big.iter().any(|&d| d > 1 << 24)
            || big
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_none()
        {
            return bad("dimensions too large".into());
        }
        Ok(())
    }
}

/// How a [`Geometry`] is cut into polynomials (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Blocking {
    /// Images per polynomial (`nb`).
    pub images: usize,
    /// Channels per polynomial (`cb`).
    pub channels: usize,
    /// Filters per kernel polynomial (`mb`).
    pub filters: usize,
    /// Tile height (`hb`).
    pub height: usize,
    /// Tile width (`wb`).
    pub width: usize,
}

/// Block counts of a blocking: tiles, blocks and ciphertexts per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) nblk: usize,
    pub(crate) cblk: usize,
    pub(crate) mblk: usize,
    pub(crate) th: usize,
    pub(crate) tw: usize,
    pub(crate) n_th: usize,
    pub(crate) n_tw: usize,
    pub(crate) in_cts: usize,
    pub(crate) out_cts: usize,
}

impl Counts {
    pub(crate) fn new(g: &Geometry, b: &Blocking) -> Self {
        let th = b.height + 1 - g.kernel_h;
        let tw = b.width + 1 - g.kernel_w;
        let nblk = g.batch.div_ceil(b.images);
        let cblk = g.channels.div_ceil(b.channels);
        let mblk = g.filters.div_ceil(b.filters);
        let n_th = g.out_h().div_ceil(th);
        let n_tw = g.out_w().div_ceil(tw);
        Counts {
            nblk,
            cblk,
            mblk,
            th,
            tw,
            n_th,
            n_tw,
            in_cts: nblk * cblk * n_th * n_tw,
            out_cts: nblk * mblk * n_th * n_tw,
        }
    }
}

/// A geometry cut by a blocking: where every input value, kernel entry and
/// result sits in the polynomials (the index maps of the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) geom: Geometry,
    pub(crate) blk: Blocking,
    pub(crate) counts: Counts,
}

impl Layout {
    /// Stride (largest power of two dividing every difference) and offset of the
    /// result coefficients, from the coefficients themselves.
    pub(crate) fn scan_stride(&self, n: usize) -> (usize, usize) {
        let mut first = None;
        let mut tz = usize::BITS;
        for ct in 0..self.counts.out_cts {
            self.for_each_output(ct, |coef, _| match first {
                None => first = Some(coef),
                Some(f) => {
                    let d = coef.abs_diff(f);
                    if d > 0 {
                        tz = tz.min(d.trailing_zeros());
                    }
                }
            });
        }
        let stride = if tz >= n.trailing_zeros() { n } else { 1 << tz };
        (stride, first.unwrap_or(0) % stride)
    }

    /// `(nblk, cblk, ti, tj)` of input ciphertext `ct`.
    pub(crate) fn in_index(&self, ct: usize) -> (usize, usize, usize, usize) {
        let c = &self.counts;
        let tj = ct % c.n_tw;
        let r = ct / c.n_tw;
        let ti = r % c.n_th;
        let r = r / c.n_th;
        (r / c.cblk, r % c.cblk, ti, tj)
    }

    /// Input ciphertext index of `(nblk, cblk, ti, tj)`.
    pub(crate) fn in_ct(&self, nblk: usize, cblk: usize, ti: usize, tj: usize) -> usize {
        let c = &self.counts;
        ((nblk * c.cblk + cblk) * c.n_th + ti) * c.n_tw + tj
    }

    /// `(nblk, mblk, ti, tj)` of output ciphertext `ct`.
    pub(crate) fn out_index(&self, ct: usize) -> (usize, usize, usize, usize) {
        let c = &self.counts;
        let tj = ct % c.n_tw;
        let r = ct / c.n_tw;
        let ti = r % c.n_th;
        let r = r / c.n_th;
        (r / c.mblk, r % c.mblk, ti, tj)
    }

    /// Writes the `N` plaintext coefficients of input ciphertext `ct` from the
    /// canonical input `xc` (zeros elsewhere).
    pub(crate) fn encode_input(&self, xc: &[u64], ct: usize, out: &mut [u64]) {
        let g = &self.geom;
        let b = &self.blk;
        let (nblk, cblk, ti, tj) = self.in_index(ct);
        out.fill(0);
        let hw = b.height * b.width;
        let s = b.channels * hw;
        let col0 = tj * self.counts.tw;
        let ncols = b.width.min(g.width - col0);
        for beta in 0..b.images {
            let img = nblk * b.images + beta;
            if img >= g.batch {
                break;
            }
            for c in 0..b.channels {
                let ch = cblk * b.channels + c;
                if ch >= g.channels {
                    break;
                }
                for u in 0..b.height {
                    let row = ti * self.counts.th + u;
                    if row >= g.height {
                        break;
                    }
                    let src = ((img * g.channels + ch) * g.height + row) * g.width + col0;
                    let dst = beta * s + c * hw + u * b.width;
                    out[dst..dst + ncols].copy_from_slice(&xc[src..src + ncols]);
                }
            }
        }
    }

    /// Writes kernel polynomial `(mblk, cblk)` from the canonical kernel
    /// `K[m][c][kh][kw]` (dense) or the per-channel scales (depthwise).
    /// Returns `false` if the polynomial is zero.
    pub(crate) fn encode_kernel(
        &self,
        kernel: &[u64],
        mblk: usize,
        cblk: usize,
        out: &mut [u64],
    ) -> bool {
        let g = &self.geom;
        let b = &self.blk;
        out.fill(0);
        let hw = b.height * b.width;
        let s = b.channels * hw;
        let o = (b.channels - 1) * hw + (g.kernel_h - 1) * b.width + (g.kernel_w - 1);
        let mut nonzero = false;
        for mu in 0..b.filters {
            let f = mblk * b.filters + mu;
            if f >= g.filters {
                break;
            }
            for c in 0..b.channels {
                let ch = cblk * b.channels + c;
                if ch >= g.channels {
                    break;
                }
                if g.depthwise && ch != f {
                    continue;
                }
                for a in 0..g.kernel_h {
                    for bb in 0..g.kernel_w {
                        let v = if g.depthwise {
                            kernel[f]
                        } else {
                            kernel[((f * g.channels + ch) * g.kernel_h + a) * g.kernel_w + bb]
                        };
                        let idx = mu * b.images * s + o - c * hw - a * b.width - bb;
                        out[idx] = v;
                        nonzero |= v != 0;
                    }
                }
            }
        }
        nonzero
    }

    /// Whether kernel polynomial `(mblk, cblk)` can be non-zero (depthwise layers
    /// only pair a filter block with the channel block holding the same indices).
    pub(crate) fn kernel_block_used(&self, mblk: usize, cblk: usize) -> bool {
        if !self.geom.depthwise {
            return true;
        }
        let b = &self.blk;
        let (f0, f1) = (
            mblk * b.filters,
            ((mblk + 1) * b.filters).min(self.geom.filters),
        );
        let (c0, c1) = (
            cblk * b.channels,
            ((cblk + 1) * b.channels).min(self.geom.channels),
        );
        f0 < c1 && c0 < f1
    }

    pub(crate) fn out_count(&self, ct: usize) -> usize {
        let g = &self.geom;
        let b = &self.blk;
        let c = &self.counts;
        let (nblk, mblk, ti, tj) = self.out_index(ct);
        let imgs = b.images.min(g.batch - nblk * b.images);
        let fils = b.filters.min(g.filters - mblk * b.filters);
        let rows = c.th.min(g.out_h() - ti * c.th);
        let cols = c.tw.min(g.out_w() - tj * c.tw);
        imgs * fils * rows * cols
    }

    /// Calls `f(coefficient, output index)` for every result carried by output
    /// ciphertext `ct`, in wire order.
    pub(crate) fn for_each_output(&self, ct: usize, mut f: impl FnMut(usize, usize)) {
        let g = &self.geom;
        let b = &self.blk;
        let c = &self.counts;
        let (nblk, mblk, ti, tj) = self.out_index(ct);
        let hw = b.height * b.width;
        let s = b.channels * hw;
        let o = (b.channels - 1) * hw + (g.kernel_h - 1) * b.width + (g.kernel_w - 1);
        let (ho, wo) = (g.out_h(), g.out_w());
        for mu in 0..b.filters {
            let fil = mblk * b.filters + mu;
            if fil >= g.filters {
                break;
            }
            for beta in 0..b.images {
                let img = nblk * b.images + beta;
                if img >= g.batch {
                    break;
                }
                for i in 0..c.th {
                    let row = ti * c.th + i;
                    if row >= ho {
                        break;
                    }
                    for j in 0..c.tw {
                        let col = tj * c.tw + j;
                        if col >= wo {
                            break;
                        }
                        let coef = mu * b.images * s + beta * s + o + i * b.width + j;
                        let idx = ((img * g.filters + fil) * ho + row) * wo + col;
                        f(coef, idx);
                    }
                }
            }
        }
    }
}
