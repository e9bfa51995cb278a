//! HomBN: batch normalisation / per-channel scaling on additive shares
//! (Cheetah, Sec. 4.3, "HomBN").
//!
//! **Computes** `Y[n][c][i][j] = scale[c] X[n][c][i][j] + shift[c]` in `Z_{2^l}` (an
//! inference-time batch norm folded into a per-channel affine map, at the
//! fixed-point scale the caller chose) for a shared `X[batch][channels][h][w]`;
//! the server holds `scale` and `shift`; `Y` comes out shared.
//!
//! **Encoding.** The layer is the canonical *depthwise* `1 x 1` convolution over
//! the flattened spatial axis: a polynomial holds `cb` channels of `nb` images and
//! the kernel polynomial holds the `cb` scales on its "diagonal", so each product
//! yields `cb nb (h w)_b` results and only the `ceil(channels / cb)` diagonal kernel
//! blocks are ever multiplied (with `cb = 1`, a whole polynomial of one channel is
//! multiplied by a constant). With `cb^2 nb (h w)_b <= N` no term of one channel
//! reaches another's results (see [`crate::plan`]).
//!
//! **Learns**: as in [`crate::linear`].

use crate::encoding::Geometry;
use crate::error::HeError;

/// The public shape of a batch-norm / per-channel scaling layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchNormShape {
    /// Images in the batch.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

impl BatchNormShape {
    /// Per-channel scaling of `[batch][channels][height][width]`.
    pub fn new(batch: usize, channels: usize, height: usize, width: usize) -> Self {
        BatchNormShape {
            batch,
            channels,
            height,
            width,
        }
    }

    /// Elements of the input (and output) tensor.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Whether the tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn geometry(&self) -> Result<Geometry, HeError> {
        if self.is_empty() {
            return Err(HeError::InvalidShape(format!(
                "empty dimension in {self:?}"
            )));
        }
        Ok(Geometry {
            batch: self.batch,
            channels: self.channels,
            height: 1,
            width: self.height * self.width,
            filters: self.channels,
            kernel_h: 1,
            kernel_w: 1,
            depthwise: true,
            taps: 1,
        })
    }
}
