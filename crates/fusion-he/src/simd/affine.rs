//! Per-channel affine layers (batch norm at inference) on batch-encoded
//! ciphertexts: one slot-wise plaintext product per ciphertext, no rotations
//! (the SIMD counterpart of Cheetah's HomBN and of SCI_HE's element-wise
//! product).
//!
//! **Computes.** `y[b][c][h][w] = scale[c] x[b][c][h][w]` (the shift is added
//! to the server's share). The input tensor fills the slots densely in its
//! flat order; the plaintext of each ciphertext holds the scale of every
//! slot's channel. Analytic counts: `ceil(len / N)` ciphertexts each way, as
//! many products, no switches.
//!
//! **Learns.** As [`super::fc`].

use super::eval::{Ctx, Plaintexts};
use super::params::SimdParams;
use super::plan::{Circuit, EMPTY, SimdCounts, SimdLayer, SimdPlan, check_len};
use super::rotation::GaloisSet;
use crate::batchnorm::BatchNormShape;
use crate::error::HeError;

/// The plan of a per-channel affine layer.
pub(crate) fn plan(params: &SimdParams, shape: BatchNormShape) -> Result<SimdPlan, HeError> {
    for (what, v) in [
        ("batch", shape.batch),
        ("channels", shape.channels),
        ("height", shape.height),
        ("width", shape.width),
    ] {
        check_len(what, v)?;
    }
    let n = params.degree();
    let total = shape.batch * shape.channels * shape.height * shape.width;
    let cts = total.div_ceil(n);
    let in_maps: Vec<Vec<u32>> = (0..cts)
        .map(|c| {
            (0..n)
                .map(|s| {
                    let i = c * n + s;
                    if i < total { i as u32 } else { EMPTY }
                })
                .collect()
        })
        .collect();
    let out_maps = (0..cts)
        .map(|c| {
            (0..n)
                .filter(|s| c * n + s < total)
                .map(|s| (s as u32, (c * n + s) as u32))
                .collect()
        })
        .collect();
    let noise = params.noise_budget(params.product_noise(params.fresh_noise()))?;
    Ok(SimdPlan {
        params: params.clone(),
        layer: SimdLayer::Affine(shape),
        in_maps,
        out_maps,
        circuit: Circuit::Affine,
        counts: SimdCounts {
            input_cts: cts,
            output_cts: cts,
            rotations: 0,
            plaintext_mults: cts as u64,
        },
        noise,
        galois: GaloisSet::from_elements(n, Vec::new())?,
    })
}

fn scales(params: &SimdParams, shape: &BatchNormShape, scale: &[u64], c: usize) -> Vec<u64> {
    let n = params.degree();
    let hw = shape.height * shape.width;
    let total = shape.batch * shape.channels * hw;
    (0..n)
        .map(|s| {
            let i = c * n + s;
            if i < total {
                scale[i / hw % shape.channels]
            } else {
                0
            }
        })
        .collect()
}

/// The server's encoded affine layer.
pub(crate) struct AffineWeights {
    shape: BatchNormShape,
    scale: Vec<u64>,
    cache: Plaintexts,
}

impl AffineWeights {
    pub(crate) fn new(
        params: &SimdParams,
        shape: BatchNormShape,
        scale: Vec<u64>,
        cts: usize,
    ) -> Self {
        let cache = Plaintexts::new(params, cts, &|c| scales(params, &shape, &scale, c));
        AffineWeights {
            shape,
            scale,
            cache,
        }
    }
}

/// One product per ciphertext.
pub(crate) fn eval(
    ctx: &Ctx<'_>,
    aw: &AffineWeights,
    inputs: &[Vec<u64>],
) -> Result<Vec<Vec<u64>>, HeError> {
    let params = ctx.params;
    let slots = |c: usize| scales(params, &aw.shape, &aw.scale, c);
    Ok(inputs
        .iter()
        .enumerate()
        .map(|(c, x)| {
            let mut acc = vec![0u64; x.len()];
            ctx.mul_acc(&mut acc, x, &aw.cache.get(params, c, &slots));
            acc
        })
        .collect())
}
