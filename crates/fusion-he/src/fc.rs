//! HomFC: fully connected layers on additive shares, batched over samples
//! (Cheetah, Sec. 4.2, "HomFC", extended to matrix products).
//!
//! **Computes** `Y[n][o] = bias[o] + sum_i W[o][i] X[n][i]` in `Z_{2^l}` for a batch
//! `X[batch][in_features]` shared between client and server, weights
//! `W[out_features][in_features]` (row-major) and bias held by the server; `Y` comes
//! out shared.
//!
//! **Encoding.** The layer is the canonical convolution with `in_features`
//! channels, `1 x 1` images and kernels, and `out_features` filters (see
//! [`crate::plan`]): a block of `cb` inputs of `nb` samples forms one client
//! polynomial `sum_{beta,c} X[beta][c] X^(beta cb + c)`, a block of `mb x cb` weights one
//! server polynomial `sum_{mu,c} W[mu][c] X^(mu nb cb + cb - 1 - c)`, and their product
//! holds `Y[beta][mu]` at `X^(mu nb cb + beta cb + cb - 1)`, with `nb mb cb <= N`.
//! `nb = 1` is Cheetah's matrix-vector encoding; `nb > 1` amortises the reply's
//! `a` polynomial over many samples, which is what makes large batches cheap.
//!
//! **Learns**: as in [`crate::linear`].

use crate::encoding::Geometry;
use crate::error::HeError;

/// The public shape of a fully connected layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FcShape {
    /// Samples in the batch.
    pub batch: usize,
    /// Inputs per sample.
    pub in_features: usize,
    /// Outputs per sample.
    pub out_features: usize,
}

impl FcShape {
    /// A fully connected layer `in_features -> out_features` on `batch` samples.
    pub fn new(batch: usize, in_features: usize, out_features: usize) -> Self {
        FcShape {
            batch,
            in_features,
            out_features,
        }
    }

    pub(crate) fn geometry(&self) -> Result<Geometry, HeError> {
        if self.batch == 0 || self.in_features == 0 || self.out_features == 0 {
            return Err(HeError::InvalidShape(format!(
                "empty dimension in {self:?}"
            )));
        }
        Ok(Geometry {
            batch: self.batch,
            channels: self.in_features,
            height: 1,
            width: 1,
            filters: self.out_features,
            kernel_h: 1,
            kernel_w: 1,
            depthwise: false,
            taps: self.in_features,
        })
    }
}
