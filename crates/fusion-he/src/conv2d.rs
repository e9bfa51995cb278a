//! HomConv: 2-D convolution on additive shares (Cheetah, Sec. 4.2, "HomConv").
//!
//! **Computes** `Y[n][m][i][j] = bias[m] + sum_{c,a,b} Xpad[n][c][s_h i + a][s_w j + b] K[m][c][a][b]`
//! in `Z_{2^l}` on a batch `X[n][c][h][w]` (NCHW, row-major) shared between client
//! and server, with weights `K[m][c][kh][kw]` (OIHW) and bias held by the server;
//! `Xpad` is `X` with zero padding. The output `Y[n][m][ho][wo]` comes out shared.
//!
//! **Reduction to the canonical problem** (public, applied by both parties to their
//! own shares, so it needs no cryptography): zero padding is added to both shares;
//! a stride `(s_h, s_w)` is removed by a space-to-depth rearrangement,
//! `X'[n][(c s_h + p) s_w + q][u][v] = Xpad[n][c][s_h u + p][s_w v + q]` and
//! `K'[m][(c s_h + p) s_w + q][a][b] = K[m][c][s_h a + p][s_w b + q]` (zero outside
//! the kernel), which turns the strided convolution into a stride-1 one with
//! `c s_h s_w` channels and a `ceil(kh/s_h) x ceil(kw/s_w)` kernel, without computing
//! the skipped outputs. Tensors larger than `N` are tiled (see [`crate::plan`]).
//!
//! **Learns**: as in [`crate::linear`]: the server nothing about the client's share;
//! the client only its output share.

use std::borrow::Cow;

use crate::encoding::Geometry;
use crate::error::HeError;

/// Zero padding of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding {
    /// No padding.
    Valid,
    /// TensorFlow's `SAME`: output `ceil(in / stride)`, the extra row/column at the
    /// bottom/right when the total is odd.
    Same,
    /// Explicit padding per side.
    Explicit {
        /// Rows above.
        top: usize,
        /// Rows below.
        bottom: usize,
        /// Columns left.
        left: usize,
        /// Columns right.
        right: usize,
    },
}

/// The public shape of a 2-D convolution layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero padding.
    pub padding: Padding,
}

impl Conv2dShape {
    /// A square-kernel, equal-stride convolution.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        in_channels: usize,
        height: usize,
        width: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
    ) -> Self {
        Conv2dShape {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: stride,
            stride_w: stride,
            padding,
        }
    }

    /// Padding `(top, bottom, left, right)`.
    pub fn pads(&self) -> (usize, usize, usize, usize) {
        match self.padding {
            Padding::Valid => (0, 0, 0, 0),
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => (top, bottom, left, right),
            Padding::Same => {
                let total = |size: usize, k: usize, s: usize| {
                    let s = s.max(1);
                    let out = size.div_ceil(s);
                    ((out.saturating_sub(1)) * s + k).saturating_sub(size)
                };
                let th = total(self.height, self.kernel_h, self.stride_h);
                let tw = total(self.width, self.kernel_w, self.stride_w);
                (th / 2, th - th / 2, tw / 2, tw - tw / 2)
            }
        }
    }

    fn check(&self) -> Result<(), HeError> {
        let (t, b, l, r) = self.pads();
        if self.batch == 0
            || self.in_channels == 0
            || self.out_channels == 0
            || self.height == 0
            || self.width == 0
        {
            return Err(HeError::InvalidShape(format!(
                "empty dimension in {self:?}"
            )));
        }
        if self.kernel_h == 0 || self.kernel_w == 0 || self.stride_h == 0 || self.stride_w == 0 {
            return Err(HeError::InvalidShape(format!(
                "zero kernel or stride in {self:?}"
            )));
        }
        if self.height + t + b < self.kernel_h || self.width + l + r < self.kernel_w {
            return Err(HeError::InvalidShape(format!(
                "kernel larger than the padded input in {self:?}"
            )));
        }
        if [
            self.height,
            self.width,
            t,
            b,
            l,
            r,
            self.kernel_h,
            self.kernel_w,
        ]
        .iter()
        .any(|&d| d > 1 << 20)
        {
            return Err(HeError::InvalidShape("dimension too large".into()));
        }
        Ok(())
    }

    /// Output height.
    pub fn out_height(&self) -> usize {
        let (t, b, _, _) = self.pads();
        (self.height + t + b).saturating_sub(self.kernel_h) / self.stride_h.max(1) + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        let (_, _, l, r) = self.pads();
        (self.width + l + r).saturating_sub(self.kernel_w) / self.stride_w.max(1) + 1
    }

    /// Elements of the input tensor `[batch][in_channels][height][width]`.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }

    /// Elements of the output tensor `[batch][out_channels][out_height][out_width]`.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_height() * self.out_width()
    }

    /// Elements of the weight tensor `[out_channels][in_channels][kernel_h][kernel_w]`.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel_h * self.kernel_w
    }

    fn kernel_canon(&self) -> (usize, usize) {
        (
            self.kernel_h.div_ceil(self.stride_h),
            self.kernel_w.div_ceil(self.stride_w),
        )
    }

    pub(crate) fn geometry(&self) -> Result<Geometry, HeError> {
        self.check()?;
        let (kh, kw) = self.kernel_canon();
        let (ho, wo) = (self.out_height(), self.out_width());
        Ok(Geometry {
            batch: self.batch,
            channels: self.in_channels * self.stride_h * self.stride_w,
            height: ho + kh - 1,
            width: wo + kw - 1,
            filters: self.out_channels,
            kernel_h: kh,
            kernel_w: kw,
            depthwise: false,
            taps: self.in_channels * self.kernel_h * self.kernel_w,
        })
    }

    fn is_identity(&self) -> bool {
        self.stride_h == 1 && self.stride_w == 1 && self.pads() == (0, 0, 0, 0)
    }

    /// The canonical input `X'` of a share (padding and space-to-depth).
    pub(crate) fn canonical_input<'a>(&self, x: &'a [u64]) -> Cow<'a, [u64]> {
        if self.is_identity() {
            return Cow::Borrowed(x);
        }
        let (top, _, left, _) = self.pads();
        let (sh, sw) = (self.stride_h, self.stride_w);
        let (kh, kw) = self.kernel_canon();
        let (hc, wc) = (self.out_height() + kh - 1, self.out_width() + kw - 1);
        let cc = self.in_channels * sh * sw;
        let mut out = vec![0u64; self.batch * cc * hc * wc];
        for n in 0..self.batch {
            for c in 0..self.in_channels {
                for p in 0..sh {
                    for q in 0..sw {
                        let c2 = (c * sh + p) * sw + q;
                        for u in 0..hc {
                            let row = (sh * u + p) as isize - top as isize;
                            if row < 0 || row >= self.height as isize {
                                continue;
                            }
                            let src_row = ((n * self.in_channels + c) * self.height + row as usize)
                                * self.width;
                            let dst_row = ((n * cc + c2) * hc + u) * wc;
                            for v in 0..wc {
                                let col = (sw * v + q) as isize - left as isize;
                                if col >= 0 && col < self.width as isize {
                                    out[dst_row + v] = x[src_row + col as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
        Cow::Owned(out)
    }

    /// The canonical kernel `K'` (space-to-depth of the strides).
    pub(crate) fn canonical_kernel(&self, w: &[u64]) -> Vec<u64> {
        let (sh, sw) = (self.stride_h, self.stride_w);
        if sh == 1 && sw == 1 {
            return w.to_vec();
        }
        let (kh, kw) = self.kernel_canon();
        let cc = self.in_channels * sh * sw;
        let mut out = vec![0u64; self.out_channels * cc * kh * kw];
        for m in 0..self.out_channels {
            for c in 0..self.in_channels {
                for a in 0..self.kernel_h {
                    for b in 0..self.kernel_w {
                        let c2 = (c * sh + a % sh) * sw + b % sw;
                        let dst = ((m * cc + c2) * kh + a / sh) * kw + b / sw;
                        out[dst] =
                            w[((m * self.in_channels + c) * self.kernel_h + a) * self.kernel_w + b];
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        let s = Conv2dShape::new(1, 32, 14, 14, 64, 5, 1, Padding::Same);
        assert_eq!(s.pads(), (2, 2, 2, 2));
        assert_eq!((s.out_height(), s.out_width()), (14, 14));
        let s = Conv2dShape::new(1, 3, 7, 8, 4, 3, 2, Padding::Same);
        assert_eq!((s.out_height(), s.out_width()), (4, 4));
        assert_eq!(s.pads(), (1, 1, 0, 1));
    }
}
