//! The public plan of one SIMD layer call, derived by both parties from
//! public data: where every input and output value sits in the slots, the
//! homomorphic circuit the server runs, its cost and its noise.
//!
//! **Computes.** From the parameters and a layer shape
//! ([`SimdPlan::fc`], [`SimdPlan::conv2d`], [`SimdPlan::affine`]): the slot
//! maps of the input ciphertexts (which input element, if any, each slot
//! holds; replicas included) and of the output ciphertexts (which slot holds
//! which output element), the circuit ([`super::fc`], [`super::conv`],
//! [`super::affine`] have the methods), the Galois elements it rotates by,
//! the worst-case noise and flooding ([`super::SimdNoise`]) and the
//! [`SimdCounts`] predicted by the analytic formulas of each method.
//!
//! **Learns.** Public data only.

use super::params::{SimdNoise, SimdParams};
use super::rotation::GaloisSet;
use crate::batchnorm::BatchNormShape;
use crate::conv2d::Conv2dShape;
use crate::error::HeError;
use crate::fc::FcShape;

/// Marks an empty slot of an input map.
pub(crate) const EMPTY: u32 = u32::MAX;

/// A layer of the SIMD path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLayer {
    /// Fully connected, `batch` vectors: Halevi-Shoup diagonals, Gazelle's hybrid.
    Fc(FcShape),
    /// 2-D convolution: Gazelle's packed convolution.
    Conv2d(Conv2dShape),
    /// Per-channel affine map (batch norm): slot-wise products.
    Affine(BatchNormShape),
}

impl SimdLayer {
    /// Elements of the input tensor (batch-major, as the coefficient path).
    pub fn input_len(&self) -> usize {
        match self {
            SimdLayer::Fc(s) => s.batch * s.in_features,
            SimdLayer::Conv2d(s) => s.input_len(),
            SimdLayer::Affine(s) => s.batch * s.channels * s.height * s.width,
        }
    }

    /// Elements of the output tensor.
    pub fn output_len(&self) -> usize {
        match self {
            SimdLayer::Fc(s) => s.batch * s.out_features,
            SimdLayer::Conv2d(s) => s.output_len(),
            SimdLayer::Affine(s) => s.batch * s.channels * s.height * s.width,
        }
    }

    /// Output channels (bias length): features, channels.
    pub fn out_channels(&self) -> usize {
        match self {
            SimdLayer::Fc(s) => s.out_features,
            SimdLayer::Conv2d(s) => s.out_channels,
            SimdLayer::Affine(s) => s.channels,
        }
    }

    /// The output channel of output element `idx`.
    pub(crate) fn channel_of_output(&self, idx: usize) -> usize {
        match self {
            SimdLayer::Fc(s) => idx % s.out_features,
            SimdLayer::Conv2d(s) => idx / (s.out_height() * s.out_width()) % s.out_channels,
            SimdLayer::Affine(s) => idx / (s.height * s.width) % s.channels,
        }
    }
}

/// Ciphertexts each way and homomorphic operations of one layer call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimdCounts {
    /// Ciphertexts client -> server.
    pub input_cts: usize,
    /// Ciphertexts server -> client.
    pub output_cts: usize,
    /// Key switches (each a Galois automorphism: a rotation by a power of two
    /// or the row swap; a rotation by `k` costs `popcount(k)` of them).
    pub rotations: u64,
    /// Plaintext-ciphertext products.
    pub plaintext_mults: u64,
}

/// The circuit of a fully connected layer ([`super::fc`]).
#[derive(Debug, Clone)]
pub(crate) struct FcCircuit {
    pub(crate) n_i: usize,
    pub(crate) n_o: usize,
    /// Block length `P` (a power of two; `P = N/2` when chunked).
    pub(crate) block: usize,
    /// Rows per block `R`.
    pub(crate) rows: usize,
    /// Inputs longer than a row: chunks of `N/2` columns, two per ciphertext.
    pub(crate) chunked: bool,
    /// Per input ciphertext: whether a row mixes blocks of different vectors
    /// (then rotations must not cross blocks: the wrap-around diagonals).
    pub(crate) wrap: Vec<bool>,
    /// Per output ciphertext: its input ciphertexts and (non-chunked) the
    /// index of its group pattern, (chunked) its row group.
    pub(crate) outs: Vec<(Vec<usize>, usize)>,
    /// Non-chunked: per pattern, the row group of every block (`None`: unused).
    pub(crate) patterns: Vec<Vec<Option<usize>>>,
}

/// The circuit of a convolution ([`super::conv`]).
#[derive(Debug, Clone)]
pub(crate) struct ConvCircuit {
    pub(crate) shape: Conv2dShape,
    /// Padded width `W_p` (row stride) and the channel block length `B`.
    pub(crate) wp: usize,
    pub(crate) block: usize,
    /// Channel blocks per row `c_l` and distinct input channels per row `c'`.
    pub(crate) per_row: usize,
    pub(crate) distinct: usize,
    /// Input and output ciphertexts per image.
    pub(crate) ins: usize,
    pub(crate) outs: usize,
}

/// A layer's circuit.
#[derive(Debug, Clone)]
pub(crate) enum Circuit {
    Fc(FcCircuit),
    Conv(ConvCircuit),
    Affine,
}

/// The plan of one SIMD layer call (see the module docs).
#[derive(Debug, Clone)]
pub struct SimdPlan {
    pub(crate) params: SimdParams,
    pub(crate) layer: SimdLayer,
    /// Per input ciphertext, per slot: the input element it holds or [`EMPTY`].
    pub(crate) in_maps: Vec<Vec<u32>>,
    /// Per output ciphertext: `(slot, output element)` pairs.
    pub(crate) out_maps: Vec<Vec<(u32, u32)>>,
    pub(crate) circuit: Circuit,
    pub(crate) counts: SimdCounts,
    pub(crate) noise: SimdNoise,
    pub(crate) galois: GaloisSet,
}

impl SimdPlan {
    /// A fully connected layer.
    pub fn fc(params: &SimdParams, shape: FcShape) -> Result<Self, HeError> {
        super::fc::plan(params, shape, super::fc::FcObjective::Bytes)
    }

    /// A fully connected layer planned for `objective` (fewest bytes or
    /// fewest key switches first).
    pub fn fc_with(
        params: &SimdParams,
        shape: FcShape,
        objective: super::fc::FcObjective,
    ) -> Result<Self, HeError> {
        super::fc::plan(params, shape, objective)
    }

    /// A convolution (spatial size `(H + pads) (W + pads) <= N / 2`).
    pub fn conv2d(params: &SimdParams, shape: Conv2dShape) -> Result<Self, HeError> {
        super::conv::plan(params, shape)
    }

    /// A per-channel affine layer (batch norm).
    pub fn affine(params: &SimdParams, shape: BatchNormShape) -> Result<Self, HeError> {
        super::affine::plan(params, shape)
    }

    /// The parameters.
    pub fn params(&self) -> &SimdParams {
        &self.params
    }

    /// The layer.
    pub fn layer(&self) -> &SimdLayer {
        &self.layer
    }

    /// Input ciphertexts (client -> server).
    pub fn input_cts(&self) -> usize {
        self.in_maps.len()
    }

    /// Output ciphertexts (server -> client).
    pub fn output_cts(&self) -> usize {
        self.out_maps.len()
    }

    /// The counts predicted by the method's analytic formulas.
    pub fn analytic_counts(&self) -> SimdCounts {
        self.counts
    }

    /// The worst-case noise and flooding of this layer.
    pub fn noise(&self) -> &SimdNoise {
        &self.noise
    }

    /// The Galois elements the server needs keys for.
    pub fn galois_elements(&self) -> &GaloisSet {
        &self.galois
    }

    /// Flooded coefficients this call reveals to the client (`N` per reply ciphertext).
    pub fn revealed_coefficients(&self) -> u64 {
        (self.output_cts() * self.params.degree()) as u64
    }

    /// Bytes of the query message.
    pub fn query_bytes_len(&self) -> usize {
        super::wire::query_len(self)
    }

    /// Bytes of the reply message.
    pub fn reply_bytes_len(&self) -> usize {
        super::wire::reply_len(self)
    }
}

/// The Galois set of the power-of-two rotations used to rotate by every
/// amount in `amounts` (binary expansion), plus the swap if asked.
pub(crate) fn galois_for(params: &SimdParams, amounts: &[usize], swap: bool) -> GaloisSet {
    let n = params.degree();
    let mut bits = 0usize;
    for &a in amounts {
        bits |= a % (n / 2);
    }
    let mut e: Vec<u32> = (0..usize::BITS)
        .filter(|t| bits >> t & 1 == 1)
        .map(|t| super::rotation::rotation_element(n, 1 << t))
        .collect();
    if swap {
        e.push(super::rotation::swap_element(n));
    }
    GaloisSet::from_elements(n, e).unwrap_or_else(|_| GaloisSet::power_of_two_rotations(n, swap))
}

/// Checks a shape dimension bound shared by the planners.
pub(crate) fn check_len(what: &str, v: usize) -> Result<(), HeError> {
    if v == 0 || v > 1 << 24 {
        return Err(HeError::InvalidShape(format!(
            "{what} = {v} is outside 1..=2^24"
        )));
    }
    Ok(())
}
