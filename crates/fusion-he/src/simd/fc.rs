//! Fully connected layers on batch-encoded ciphertexts: the diagonal method of
//! Halevi and Shoup ("Algorithms in HElib", CRYPTO 2014, Sec. 4.3) in the
//! hybrid form of Gazelle (Juvekar, Vaikuntanathan, Chandrakasan, USENIX
//! Security 2018, Sec. 5.2 "Matrix-vector multiplication", Fig. 5).
//!
//! **Computes.** `y = W x` for `W` of `n_o x n_i` over `Z_p` and a batch of
//! vectors `x`. Let `P = 2^ceil(log2 n_i)` and `S = N/2` (the row length).
//!
//! * `P <= S`: the slots are cut into `N / P` blocks of `P`; every block holds
//!   one vector (zero-padded to `P`) and computes `R` rows of `W` (a power of
//!   two, `R <= P`) for it. With the generalised diagonals
//!   `d_j[t] = W[g R + (t mod R)][(t + j) mod P]` (`g` the block's row group),
//!   `y'[t] = sum_{j < R} d_j[t] x[(t + j) mod P]` needs the `R - 1` rotations
//!   of the input (made as a binary tree, one key switch each) and `R`
//!   plaintext products; then `log2(P / R)` rotate-and-add steps (by
//!   `P/2, ..., R`) leave row `g R + r` of the block in its slot `r`. This is
//!   Gazelle's hybrid: `R - 1 + log2(P/R)` rotations instead of `n_o - 1`
//!   (diagonal) or `n_o log2 n_i` (naive). Rotations act on whole rows: if a
//!   row holds blocks of different vectors (batching), a block must not read
//!   its neighbour, and each diagonal splits into the part read without wrap
//!   and the part read from `rot(x, j - P)` (a second tree rooted at
//!   `rot(x, S - P)`: `popcount(S - P) + R - 1` more switches and `R - 1` more
//!   products). A row that holds one vector only is filled with replicas of it
//!   and needs no split. The plan picks `R` for the fewest bytes, then the
//!   fewest key switches (or the other way round, [`FcObjective`]); the `(vector, row group)` tasks fill the blocks in
//!   order, and output ciphertexts whose blocks hold the same vectors share one
//!   input ciphertext and its rotations.
//! * `P > S` (`n_i > N/2`): `x` is cut into chunks of `S` columns, two per
//!   ciphertext (one per row). Per row group of `R = min(S, 2^ceil(log2 n_o))`
//!   rows and chunk pair, the same diagonals within each row, summed over the
//!   pairs, rotate-and-add by `S/2, ..., R`, and one row swap and add sums the
//!   two rows.
//!
//! Analytic counts (checked against the measured ones in the tests):
//! switches `sum_in [(R - 1) + wrap (popcount(S - P) + R - 1)] + out log2(P/R)`,
//! products `sum_out [R + wrap (R - 1)]`; chunked, with `K = P/S` chunks:
//! switches `B (K/2)(R - 1) + B G (log2(S/R) + 1)`, products `B G (K/2) R`
//! (`B` the batch, `G = ceil(n_o / R)`).
//!
//! **Learns.** Server: ciphertexts only. Client: only the masked slots
//! ([`super`] has the protocol and the flooding).

use std::collections::HashMap;

use rayon::prelude::*;

use super::eval::{Ctx, Plaintexts};
use super::params::SimdParams;
use super::plan::{
    Circuit, EMPTY, FcCircuit, SimdCounts, SimdLayer, SimdPlan, check_len, galois_for,
};
use crate::error::HeError;
use crate::fc::FcShape;

/// Per block: `(vector, row group)` of its task.
type Tasks = Vec<Option<(usize, usize)>>;

struct Layout {
    rows: usize,
    wrap: Vec<bool>,
    in_blocks: Vec<Vec<Option<usize>>>,
    outs: Vec<(usize, Tasks)>,
}

fn layout(shape: &FcShape, n: usize, block: usize, rows: usize) -> Layout {
    let (c, f) = (n / block, n / 2 / block);
    let g = shape.out_features.div_ceil(rows);
    let tasks = shape.batch * g;
    let out_cts = tasks.div_ceil(c);
    let mut index: HashMap<Vec<Option<usize>>, usize> = HashMap::new();
    let mut lay = Layout {
        rows,
        wrap: Vec::new(),
        in_blocks: Vec::new(),
        outs: Vec::with_capacity(out_cts),
    };
    for o in 0..out_cts {
        let blocks: Tasks = (0..c)
            .map(|b| {
                let k = o * c + b;
                (k < tasks).then_some((k / g, k % g))
            })
            .collect();
        let mut vecs: Vec<Option<usize>> = blocks.iter().map(|t| t.map(|t| t.0)).collect();
        let mut wrap = false;
        for row in vecs.chunks_mut(f) {
            let mut distinct: Vec<usize> = row.iter().flatten().copied().collect();
            distinct.sort_unstable();
            distinct.dedup();
            match distinct.len() {
                0 => {}
                1 => row.fill(Some(distinct[0])),
                _ => wrap = true,
            }
        }
        let wrap = wrap && rows >= 2;
        let next = index.len();
        let i = *index.entry(vecs.clone()).or_insert(next);
        if i == next {
            lay.in_blocks.push(vecs);
            lay.wrap.push(wrap);
        }
        lay.outs.push((i, blocks));
    }
    lay
}

fn layout_counts(lay: &Layout, n: usize, block: usize) -> SimdCounts {
    let r = lay.rows as u64;
    let hi_base = (n / 2 - block).count_ones() as u64;
    let h = (block / lay.rows).trailing_zeros() as u64;
    let rotations = lay
        .wrap
        .iter()
        .map(|&w| (r - 1) + u64::from(w) * (hi_base + r - 1))
        .sum::<u64>()
        + lay.outs.len() as u64 * h;
    let plaintext_mults = lay
        .outs
        .iter()
        .map(|(i, _)| r + u64::from(lay.wrap[*i]) * (r - 1))
        .sum();
    SimdCounts {
        input_cts: lay.in_blocks.len(),
        output_cts: lay.outs.len(),
        rotations,
        plaintext_mults,
    }
}

/// What the FC planner minimises first (the other breaks ties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FcObjective {
    /// Bytes on the wire (the default).
    #[default]
    Bytes,
    /// Key switches (time): e.g. FC 784 -> 128 at batch 128 with `N = 8192`
    /// does 2304 switches instead of 4144, for 4 times the upload.
    Rotations,
}

/// The plan of a fully connected layer (see the module docs).
pub(crate) fn plan(
    params: &SimdParams,
    shape: FcShape,
    objective: FcObjective,
) -> Result<SimdPlan, HeError> {
    check_len("batch", shape.batch)?;
    check_len("in_features", shape.in_features)?;
    check_len("out_features", shape.out_features)?;
    let n = params.degree();
    let s = n / 2;
    let (n_i, n_o, batch) = (shape.in_features, shape.out_features, shape.batch);
    let block = n_i.next_power_of_two();
    let ks = params.key_switch_noise();
    let fresh = params.fresh_noise();
    if block <= s {
        let query = params.poly_bytes();
        let reply = params.reply_ct_bytes();
        let mut best: Option<((u64, u64), Layout)> = None;
        let mut r = 1;
        while r <= block {
            let lay = layout(&shape, n, block, r);
            let c = layout_counts(&lay, n, block);
            let bytes = c.input_cts * query + c.output_cts * reply;
            let key = match objective {
                FcObjective::Bytes => (bytes as u64, c.rotations),
                FcObjective::Rotations => (c.rotations, bytes as u64),
            };
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, lay));
            }
            if r >= n_o.next_power_of_two() {
                break;
            }
            r *= 2;
        }
        let Some((_, lay)) = best else {
            return Err(HeError::Internal("no FC layout".into()));
        };
        let counts = layout_counts(&lay, n, block);
        let rows = lay.rows;
        let any_wrap = lay.wrap.iter().any(|&w| w);
        let log_r = rows.trailing_zeros() as f64;
        let hi_base = (s - block).count_ones() as f64;
        let mut e0 = rows as f64 * params.product_noise(fresh + log_r * ks);
        if any_wrap {
            e0 += (rows - 1) as f64 * params.product_noise(fresh + (hi_base + log_r) * ks);
        }
        let h = (block / rows).trailing_zeros() as i32;
        let e = 2f64.powi(h) * e0 + (2f64.powi(h) - 1.0) * ks;
        let noise = params.noise_budget(e)?;
        let mut amounts = vec![rows - 1];
        if any_wrap {
            amounts.push(s - block);
        }
        let mut sh = block / 2;
        while sh >= rows && sh > 0 {
            amounts.push(sh);
            sh /= 2;
        }
        let galois = galois_for(params, &amounts, false);
        let in_maps = lay
            .in_blocks
            .iter()
            .map(|blocks| {
                let mut m = vec![EMPTY; n];
                for (b, v) in blocks.iter().enumerate() {
                    if let Some(v) = v {
                        for t in 0..n_i {
                            m[b * block + t] = (v * n_i + t) as u32;
                        }
                    }
                }
                m
            })
            .collect();
        let mut patterns: Vec<Vec<Option<usize>>> = Vec::new();
        let mut pat_index: HashMap<Vec<Option<usize>>, usize> = HashMap::new();
        let mut out_maps = Vec::with_capacity(lay.outs.len());
        let mut outs = Vec::with_capacity(lay.outs.len());
        for (i, blocks) in &lay.outs {
            let pat: Vec<Option<usize>> = blocks.iter().map(|t| t.map(|t| t.1)).collect();
            let next = patterns.len();
            let k = *pat_index.entry(pat.clone()).or_insert(next);
            if k == next {
                patterns.push(pat);
            }
            outs.push((vec![*i], k));
            let mut m = Vec::new();
            for (b, t) in blocks.iter().enumerate() {
                if let Some((v, g)) = t {
                    for r in 0..rows {
                        let row = g * rows + r;
                        if row < n_o {
                            m.push(((b * block + r) as u32, (v * n_o + row) as u32));
                        }
                    }
                }
            }
            out_maps.push(m);
        }
        return Ok(SimdPlan {
            params: params.clone(),
            layer: SimdLayer::Fc(shape),
            in_maps,
            out_maps,
            circuit: Circuit::Fc(FcCircuit {
                n_i,
                n_o,
                block,
                rows,
                chunked: false,
                wrap: lay.wrap,
                outs,
                patterns,
            }),
            counts,
            noise,
            galois,
        });
    }
    // Chunked: K = P / S chunks, two per ciphertext.
    let k = block / s;
    let pairs = k / 2;
    let rows = n_o.next_power_of_two().min(s);
    let g = n_o.div_ceil(rows);
    let log_r = rows.trailing_zeros() as f64;
    let h = (s / rows).trailing_zeros() as i32;
    let e0 = (pairs * rows) as f64 * params.product_noise(fresh + log_r * ks);
    let e = 2.0 * (2f64.powi(h) * e0 + (2f64.powi(h) - 1.0) * ks) + ks;
    let noise = params.noise_budget(e)?;
    let mut amounts = vec![rows - 1];
    let mut sh = s / 2;
    while sh >= rows {
        amounts.push(sh);
        sh /= 2;
    }
    let galois = galois_for(params, &amounts, true);
    let mut in_maps = Vec::with_capacity(batch * pairs);
    for v in 0..batch {
        for m in 0..pairs {
            let mut map = vec![EMPTY; n];
            for rho in 0..2 {
                let c = 2 * m + rho;
                for t in 0..s {
                    let col = c * s + t;
                    if col < n_i {
                        map[rho * s + t] = (v * n_i + col) as u32;
                    }
                }
            }
            in_maps.push(map);
        }
    }
    let mut out_maps = Vec::with_capacity(batch * g);
    let mut outs = Vec::with_capacity(batch * g);
    for v in 0..batch {
        for gi in 0..g {
            outs.push(((0..pairs).map(|m| v * pairs + m).collect(), gi));
            out_maps.push(
                (0..rows)
                    .filter(|r| gi * rows + r < n_o)
                    .map(|r| (r as u32, (v * n_o + gi * rows + r) as u32))
                    .collect(),
            );
        }
    }
    let counts = SimdCounts {
        input_cts: batch * pairs,
        output_cts: batch * g,
        rotations: (batch * pairs * (rows - 1)) as u64 + (batch * g) as u64 * (h as u64 + 1),
        plaintext_mults: (batch * g * pairs * rows) as u64,
    };
    Ok(SimdPlan {
        params: params.clone(),
        layer: SimdLayer::Fc(shape),
        in_maps,
        out_maps,
        circuit: Circuit::Fc(FcCircuit {
            n_i,
            n_o,
            block,
            rows,
            chunked: true,
            wrap: vec![false; batch * pairs],
            outs,
            patterns: Vec::new(),
        }),
        counts,
        noise,
        galois,
    })
}

/// The server's encoded FC layer: the weights and the plaintext cache.
pub(crate) struct FcWeights {
    w: Vec<u64>,
    cache: Plaintexts,
}

/// The diagonal kinds the circuit uses: `0` whole (no wrap), `1` the part
/// read without wrap, `2` the part read from `rot(x, j - P)`.
fn kind_list(c: &FcCircuit) -> &'static [usize] {
    match (c.wrap.iter().any(|&w| w), c.wrap.iter().all(|&w| w)) {
        (false, _) => &[0],
        (true, true) => &[1, 2],
        (true, false) => &[0, 1, 2],
    }
}

fn kinds(c: &FcCircuit) -> usize {
    kind_list(c).len()
}

/// Index of `kind` in [`kind_list`].
fn kind_index(c: &FcCircuit, kind: usize) -> usize {
    kind_list(c).iter().position(|&k| k == kind).unwrap_or(0)
}

fn plaintext_count(c: &FcCircuit) -> usize {
    c.patterns.len() * c.rows * kinds(c)
}

/// The slots of plaintext `k` of the circuit.
fn diagonal(params: &SimdParams, c: &FcCircuit, w: &[u64], k: usize) -> Vec<u64> {
    let n = params.degree();
    let s = n / 2;
    let mut out = vec![0u64; n];
    let weight = |row: usize, col: usize| -> u64 {
        if row < c.n_o && col < c.n_i {
            w[row * c.n_i + col]
        } else {
            0
        }
    };
    let r = c.rows;
    if c.chunked {
        let pairs = c.block / s / 2;
        let j = k % r;
        let gm = k / r;
        let (g, m) = (gm / pairs, gm % pairs);
        for rho in 0..2 {
            let chunk = 2 * m + rho;
            for t in 0..s {
                out[rho * s + t] = weight(g * r + t % r, chunk * s + (t + j) % s);
            }
        }
        return out;
    }
    let nk = kinds(c);
    let kind = kind_list(c)[k % nk];
    let j = (k / nk) % r;
    let pat = &c.patterns[k / nk / r];
    let p = c.block;
    for (b, g) in pat.iter().enumerate() {
        let Some(g) = g else { continue };
        for t in 0..p {
            let wraps = t + j >= p;
            let take = match kind {
                0 => true,
                1 => !wraps,
                _ => wraps,
            };
            if take {
                out[b * p + t] = weight(g * r + t % r, (t + j) % p);
            }
        }
    }
    out
}

impl FcWeights {
    pub(crate) fn new(params: &SimdParams, c: &FcCircuit, w: Vec<u64>) -> Self {
        let count = if c.chunked {
            let pairs = c.block / params.row_len() / 2;
            c.n_o.div_ceil(c.rows) * pairs * c.rows
        } else {
            plaintext_count(c)
        };
        let cache = Plaintexts::new(params, count, &|k| diagonal(params, c, &w, k));
        FcWeights { w, cache }
    }
}

/// Runs the circuit on the working-form input ciphertexts.
pub(crate) fn eval(
    ctx: &Ctx<'_>,
    c: &FcCircuit,
    fw: &FcWeights,
    inputs: &[Vec<u64>],
) -> Result<Vec<Vec<u64>>, HeError> {
    let params = ctx.params;
    let s = params.row_len();
    let len = ctx.ct_len();
    let slots = |k: usize| diagonal(params, c, &fw.w, k);
    let r = c.rows;
    let mut results: Vec<Option<Vec<u64>>> = vec![None; c.outs.len()];
    if !c.chunked {
        let nk = kinds(c);
        let per_in: Vec<Vec<usize>> = (0..inputs.len())
            .map(|i| (0..c.outs.len()).filter(|&o| c.outs[o].0[0] == i).collect())
            .collect();
        let done: Vec<Vec<(usize, Vec<u64>)>> = per_in
            .par_iter()
            .enumerate()
            .map(|(i, outs)| -> Result<Vec<(usize, Vec<u64>)>, HeError> {
                let mut accs: Vec<Vec<u64>> = vec![vec![0u64; len]; outs.len()];
                let wrap = c.wrap[i];
                let lo_kind = kind_index(c, usize::from(wrap));
                let hi_kind = kind_index(c, 2);
                ctx.rotation_tree(&inputs[i], r, &mut |j, ct| {
                    for (acc, &o) in accs.iter_mut().zip(outs) {
                        let k = (c.outs[o].1 * r + j) * nk + lo_kind;
                        ctx.mul_acc(acc, ct, &fw.cache.get(params, k, &slots));
                    }
                    Ok(())
                })?;
                if wrap {
                    let base = ctx.rotate(s - c.block, &inputs[i])?;
                    ctx.rotation_tree(&base, r, &mut |j, ct| {
                        if j == 0 {
                            return Ok(());
                        }
                        for (acc, &o) in accs.iter_mut().zip(outs) {
                            let k = (c.outs[o].1 * r + j) * nk + hi_kind;
                            ctx.mul_acc(acc, ct, &fw.cache.get(params, k, &slots));
                        }
                        Ok(())
                    })?;
                }
                let mut out = Vec::with_capacity(outs.len());
                for (mut acc, &o) in accs.into_iter().zip(outs) {
                    let mut sh = c.block / 2;
                    while sh >= r {
                        let rot = ctx.rotate(sh, &acc)?;
                        ctx.add(&mut acc, &rot);
                        sh /= 2;
                    }
                    out.push((o, acc));
                }
                Ok(out)
            })
            .collect::<Result<_, _>>()?;
        for (o, ct) in done.into_iter().flatten() {
            results[o] = Some(ct);
        }
    } else {
        let pairs = c.block / s / 2;
        let g_count = c.n_o.div_ceil(r);
        let batch = inputs.len() / pairs;
        let done: Vec<Vec<Vec<u64>>> = (0..batch)
            .into_par_iter()
            .map(|v| -> Result<Vec<Vec<u64>>, HeError> {
                let mut accs: Vec<Vec<u64>> = vec![vec![0u64; len]; g_count];
                for m in 0..pairs {
                    ctx.rotation_tree(&inputs[v * pairs + m], r, &mut |j, ct| {
                        for (g, acc) in accs.iter_mut().enumerate() {
                            let k = (g * pairs + m) * r + j;
                            ctx.mul_acc(acc, ct, &fw.cache.get(params, k, &slots));
                        }
                        Ok(())
                    })?;
                }
                let n = params.degree();
                for acc in accs.iter_mut() {
                    let mut sh = s / 2;
                    while sh >= r {
                        let rot = ctx.rotate(sh, acc)?;
                        ctx.add(acc, &rot);
                        sh /= 2;
                    }
                    let sw = ctx.apply(super::rotation::swap_element(n), acc)?;
                    ctx.add(acc, &sw);
                }
                Ok(accs)
            })
            .collect::<Result<_, _>>()?;
        for (o, ct) in done.into_iter().flatten().enumerate() {
            results[o] = Some(ct);
        }
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| HeError::Internal("FC output not computed".into())))
        .collect()
}
