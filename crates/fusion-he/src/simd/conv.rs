//! 2-D convolutions on batch-encoded ciphertexts: Gazelle's packed
//! convolution (Juvekar, Vaikuntanathan, Chandrakasan, USENIX Security 2018,
//! Sec. 5.3 "Convolution", the channel-packed variant of Fig. 7).
//!
//! **Computes.** `y[o] = sum_i W[o][i] * x[i]` (cross-correlation, zero
//! padding, strides) for every image of the batch. Each input channel,
//! zero-padded to `H_p x W_p`, is laid out row-major in a block of
//! `B = 2^ceil(log2(H_p W_p))` slots; a row of `N/2` slots holds `c_l = N/(2B)`
//! blocks. The client packs `c' = min(c_l, 2^ceil(log2 C_i))` distinct input
//! channels per row, repeated to fill it (Gazelle's replication), and both rows
//! of an input ciphertext hold the same channels; an output ciphertext holds
//! `2 c_l` output channels (`c_l` per row).
//!
//! * Kernel offsets: `rot(x, dy W_p + dx)` brings pixel `(y + dy, x + dx)` of
//!   every block to `(y, x)`, never across a block for a valid output
//!   position. Made once per input ciphertext by chains (`W_p` per kernel row,
//!   `1` per column): `(f_h - 1) popcount(W_p) + f_h (f_w - 1)` key switches.
//! * Channels: with the plaintext masks
//!   `M_{d,off}[j B + pos] = W[o_{j-d}][i_j][off]` at the valid (strided)
//!   output positions (`o_k` the output channel of block `k`, `i_j` the input
//!   channel of block `j`), `P_d = sum_{in cts} sum_off M_{d,off} rot(x, off)`
//!   and `y = sum_{d < c'} rot(P_d, d B)` (Gazelle's rotations by channel
//!   diagonals), evaluated by Horner's rule: `c' - 1` switches per output
//!   ciphertext.
//! * Strides: the stride-1 result is computed and only the strided positions
//!   carry weights (every slot is masked anyway).
//!
//! Analytic counts per image: switches
//! `ins ((f_h - 1) popcount(W_p) + f_h (f_w - 1)) + outs (c' - 1)`, products
//! `outs ins c' f_h f_w` (`ins = ceil(C_i / c_l)`, `outs = ceil(C_o / 2 c_l)`).
//! Images larger than half a ciphertext (`H_p W_p > N/2`) are refused (no
//! spatial tiling).
//!
//! **Learns.** As [`super::fc`].

use rayon::prelude::*;

use super::eval::{Ctx, Plaintexts};
use super::params::SimdParams;
use super::plan::{
    Circuit, ConvCircuit, EMPTY, SimdCounts, SimdLayer, SimdPlan, check_len, galois_for,
};
use crate::conv2d::Conv2dShape;
use crate::error::HeError;

fn offset_switches(c: &ConvCircuit) -> u64 {
    let s = &c.shape;
    ((s.kernel_h - 1) * c.wp.count_ones() as usize + s.kernel_h * (s.kernel_w - 1)) as u64
}

/// The plan of a convolution (see the module docs).
pub(crate) fn plan(params: &SimdParams, shape: Conv2dShape) -> Result<SimdPlan, HeError> {
    for (what, v) in [
        ("batch", shape.batch),
        ("in_channels", shape.in_channels),
        ("out_channels", shape.out_channels),
        ("height", shape.height),
        ("width", shape.width),
        ("kernel_h", shape.kernel_h),
        ("kernel_w", shape.kernel_w),
        ("stride_h", shape.stride_h),
        ("stride_w", shape.stride_w),
    ] {
        check_len(what, v)?;
    }
    let (pt, pb, pl, pr) = shape.pads();
    let (hp, wp) = (shape.height + pt + pb, shape.width + pl + pr);
    if hp < shape.kernel_h || wp < shape.kernel_w {
        return Err(HeError::InvalidShape(format!(
            "kernel larger than the padded input in {shape:?}"
        )));
    }
    let n = params.degree();
    let s = n / 2;
    let block = (hp * wp).next_power_of_two();
    if block > s {
        return Err(HeError::InvalidShape(format!(
            "padded image of {hp} x {wp} exceeds half a ciphertext ({s} slots); no spatial tiling"
        )));
    }
    let per_row = s / block;
    let distinct = per_row.min(shape.in_channels.next_power_of_two());
    let ins = if shape.in_channels > per_row {
        shape.in_channels.div_ceil(per_row)
    } else {
        1
    };
    let outs = shape.out_channels.div_ceil(2 * per_row);
    let c = ConvCircuit {
        shape,
        wp,
        block,
        per_row,
        distinct,
        ins,
        outs,
    };
    let (fh, fw) = (shape.kernel_h, shape.kernel_w);
    let ks = params.key_switch_noise();
    let depth = ((fh - 1) * wp.count_ones() as usize + (fw - 1)) as f64;
    let e = (ins * distinct * fh * fw) as f64
        * params.product_noise(params.fresh_noise() + depth * ks)
        + (distinct - 1) as f64 * ks;
    let noise = params.noise_budget(e)?;
    let mut amounts = Vec::new();
    if fh > 1 {
        amounts.push(wp);
    }
    if fw > 1 {
        amounts.push(1);
    }
    if distinct > 1 {
        amounts.push(block);
    }
    let galois = galois_for(params, &amounts, false);
    let (oh, ow) = (shape.out_height(), shape.out_width());
    let (ci, co, h, w) = (
        shape.in_channels,
        shape.out_channels,
        shape.height,
        shape.width,
    );
    let mut in_maps = Vec::with_capacity(shape.batch * ins);
    let mut out_maps = Vec::with_capacity(shape.batch * outs);
    for img in 0..shape.batch {
        for m in 0..ins {
            let mut map = vec![EMPTY; n];
            for rho in 0..2 {
                for k in 0..per_row {
                    let ch = m * per_row + k % distinct;
                    if ch >= ci {
                        continue;
                    }
                    for y in 0..h {
                        for x in 0..w {
                            let slot = rho * s + k * block + (y + pt) * wp + x + pl;
                            map[slot] = (((img * ci + ch) * h + y) * w + x) as u32;
                        }
                    }
                }
            }
            in_maps.push(map);
        }
        for g in 0..outs {
            let mut map = Vec::new();
            for rho in 0..2 {
                for k in 0..per_row {
                    let o = g * 2 * per_row + rho * per_row + k;
                    if o >= co {
                        continue;
                    }
                    for y in 0..oh {
                        for x in 0..ow {
                            let slot =
                                rho * s + k * block + y * shape.stride_h * wp + x * shape.stride_w;
                            map.push((slot as u32, (((img * co + o) * oh + y) * ow + x) as u32));
                        }
                    }
                }
            }
            out_maps.push(map);
        }
    }
    let b = shape.batch as u64;
    let counts = SimdCounts {
        input_cts: shape.batch * ins,
        output_cts: shape.batch * outs,
        rotations: b * (ins as u64 * offset_switches(&c) + outs as u64 * (distinct as u64 - 1)),
        plaintext_mults: b * (outs * ins * distinct * fh * fw) as u64,
    };
    Ok(SimdPlan {
        params: params.clone(),
        layer: SimdLayer::Conv2d(shape),
        in_maps,
        out_maps,
        circuit: Circuit::Conv(c),
        counts,
        noise,
        galois,
    })
}

/// The slots of mask `k = (((g ins + m) c' + d) f_h + dy) f_w + dx`.
fn mask(params: &SimdParams, c: &ConvCircuit, w: &[u64], k: usize) -> Vec<u64> {
    let sh = &c.shape;
    let (fh, fw) = (sh.kernel_h, sh.kernel_w);
    let dx = k % fw;
    let dy = k / fw % fh;
    let d = k / (fw * fh) % c.distinct;
    let m = k / (fw * fh * c.distinct) % c.ins;
    let g = k / (fw * fh * c.distinct * c.ins);
    let n = params.degree();
    let s = n / 2;
    let (oh, ow) = (sh.out_height(), sh.out_width());
    let mut out = vec![0u64; n];
    for rho in 0..2 {
        for j in 0..c.per_row {
            let i = m * c.per_row + j % c.distinct;
            let ok = (j + c.per_row - d) % c.per_row;
            let o = g * 2 * c.per_row + rho * c.per_row + ok;
            if i >= sh.in_channels || o >= sh.out_channels {
                continue;
            }
            let v = w[((o * sh.in_channels + i) * fh + dy) * fw + dx];
            for y in 0..oh {
                for x in 0..ow {
                    let pos = y * sh.stride_h * c.wp + x * sh.stride_w;
                    out[rho * s + j * c.block + pos] = v;
                }
            }
        }
    }
    out
}

/// The server's encoded convolution.
pub(crate) struct ConvWeights {
    w: Vec<u64>,
    cache: Plaintexts,
}

impl ConvWeights {
    pub(crate) fn new(params: &SimdParams, c: &ConvCircuit, w: Vec<u64>) -> Self {
        let count = c.outs * c.ins * c.distinct * c.shape.kernel_h * c.shape.kernel_w;
        let cache = Plaintexts::new(params, count, &|k| mask(params, c, &w, k));
        ConvWeights { w, cache }
    }
}

/// Runs the circuit on the working-form input ciphertexts (image-major).
pub(crate) fn eval(
    ctx: &Ctx<'_>,
    c: &ConvCircuit,
    cw: &ConvWeights,
    inputs: &[Vec<u64>],
) -> Result<Vec<Vec<u64>>, HeError> {
    let params = ctx.params;
    let (fh, fw) = (c.shape.kernel_h, c.shape.kernel_w);
    let len = ctx.ct_len();
    let slots = |k: usize| mask(params, c, &cw.w, k);
    let mut results = Vec::with_capacity(c.shape.batch * c.outs);
    for img in 0..c.shape.batch {
        // Kernel offsets of every input ciphertext: [m][dy * fw + dx].
        let rots: Vec<Vec<Vec<u64>>> = (0..c.ins)
            .into_par_iter()
            .map(|m| -> Result<Vec<Vec<u64>>, HeError> {
                let x = &inputs[img * c.ins + m];
                let mut out: Vec<Vec<u64>> = Vec::with_capacity(fh * fw);
                let mut row = x.clone();
                for dy in 0..fh {
                    if dy > 0 {
                        row = ctx.rotate(c.wp, &row)?;
                    }
                    out.push(row.clone());
                    for _ in 1..fw {
                        let next = ctx.rotate(1, out.last().map_or(&row, |v| v))?;
                        out.push(next);
                    }
                }
                Ok(out)
            })
            .collect::<Result<_, _>>()?;
        let outs: Vec<Vec<u64>> = (0..c.outs)
            .into_par_iter()
            .map(|g| -> Result<Vec<u64>, HeError> {
                let mut acc: Option<Vec<u64>> = None;
                for d in (0..c.distinct).rev() {
                    let mut pd = vec![0u64; len];
                    for (m, rm) in rots.iter().enumerate() {
                        for (off, ct) in rm.iter().enumerate() {
                            let k = ((g * c.ins + m) * c.distinct + d) * fh * fw + off;
                            ctx.mul_acc(&mut pd, ct, &cw.cache.get(params, k, &slots));
                        }
                    }
                    acc = Some(match acc {
                        None => pd,
                        Some(a) => {
                            let mut r = ctx.rotate(c.block, &a)?;
                            ctx.add(&mut r, &pd);
                            r
                        }
                    });
                }
                acc.ok_or_else(|| HeError::Internal("empty convolution".into()))
            })
            .collect::<Result<_, _>>()?;
        results.extend(outs);
    }
    Ok(results)
}
