//! Millionaires' comparisons for the prime-field path: XOR shares of
//! `1{u > v_k}` for `K` thresholds `v_k` held by one party (the *sender* `S`)
//! and one value `u` held by the other (the *receiver* `R`), each compared on
//! its low `w_k` bits (CrypTFlow2, ePrint 2020/1002, §3, Algorithm 1, with
//! `m = 4`-bit leaves by 1-of-16 KK13 OT as in SCI's `Millionaire/millionaire.h`).
//!
//! 1. **Leaves.** `u` is split into `m`-bit blocks (LSB first; blocks also
//!    end at every `w_k`, so a block is shorter where needed). For block `j`
//!    (`b_j` bits), `R` takes entry `u_j` of a 1-of-`2^{b_j}` chosen-message
//!    KK13 OT ([`crate::kk13`]) in which `S` offers, for every `x < 2^{b_j}`
//!    and every threshold `k` whose width covers the block,
//!    `(1{x > v_{k,j}} ⊕ g_{k,j}, 1{x = v_{k,j}} ⊕ e_{k,j})` with random output
//!    shares `g, e` (the `eq` bit is left out for block 0, whose `eq` is never
//!    used). All `K` comparisons share one OT per block, since `R`'s input is
//!    the same value `u` (SCI's `drelu-field.h` does the same for its two
//!    DReLU comparisons: one leaf KKOT with 4-bit messages).
//! 2. **AND tree** per threshold, levels run in lockstep (one flight per
//!    level): `gt = gt_hi ⊕ eq_hi ∧ gt_lo`, `eq = eq_hi ∧ eq_lo`. Each node's
//!    two ANDs share `eq_hi`, so one correlated pair of bit triples serves
//!    both. *Deviation from SCI*, whose `traverse_and_compute_ANDs`
//!    generates correlated triple pairs by 1-of-8 KKOT (`_8KKOT`: `256 + 16`
//!    bits per pair with its 256-bit code) and the single triples of the
//!    nodes containing leaf 0 by `_16KKOT_to_4OT`: here every node's triples
//!    (a correlated pair, or one triple where `eq` is not needed) cost 2 IKNP
//!    random OTs, one per direction (`2·128 = 256` bits of IKNP traffic,
//!    [`crate::triples`]) and no further message; a node's openings are
//!    `d, e_1 (, e_2)`: 2 or 3 bits per direction (SCI opens `e, f` per
//!    triple: 2 or 4).
//!
//! **Balancing.** In a batch of `n`, `P0` is the KK13 receiver for elements
//! `0..ceil(n/2)` and `P1` for the rest (the caller supplies, per element,
//! its value as a possible receiver and its thresholds as a possible sender).
//!
//! **What each party learns:** its output shares only (KK13 hides `u_j`
//! from `S` and the other table entries from `R`; the AND openings are
//! one-time padded by the triples).
//!
//! **Cost** per comparison batch element, `q` blocks, `c_k` tree nodes of
//! threshold `k`: `q` KK13 OTs (`256·q` bits `R → S`, `Σ_j 2^{b_j}·t_j` bits
//! `S → R` with `t_j = Σ_k (1 or 2)`), `Σ_k c_k` ROTs in each IKNP direction
//! (128 bits each) and `Σ_k Σ_nodes (4 or 6)` bits of AND openings;
//! flights: `2 + max_k ceil(log2 q_k)`.
//!
//! Measured (`benches/field.rs`, `n = 4096`): one 38-bit comparison costs
//! 2886 protocol bits and 9 IKNP ROTs per direction, 5182 bits per element
//! on the wire in all (IKNP traffic included), 6 flights.

use rand::rngs::ChaCha20Rng;
use subtle::ConstantTimeEq;

use crate::{
    and,
    bits::{BitReader, BitWriter, Bits},
    channel::Channel,
    ctx::mask,
    error::{Error, Result},
    kk13::{self, Kk13Receiver, Kk13Sender, Table},
    pool::{RotCount, Rots},
    triples::{self, Triples},
};

/// One combination of a tree: nodes `hi`, `lo` into `out` (node ids of that
/// tree; leaves are `0..q_k`).
#[derive(Debug, Clone, Copy)]
struct Comb {
    hi: usize,
    lo: usize,
    out: usize,
}

#[derive(Debug, Clone)]
struct Tree {
    /// Number of leaves (the first `q_k` blocks).
    leaves: usize,
    levels: Vec<Vec<Comb>>,
    root: usize,
    /// Per node: whether it contains leaf 0 (then its `eq` is never needed).
    has_leaf0: Vec<bool>,
    nodes: usize,
}

impl Tree {
    fn new(leaves: usize) -> Tree {
        let mut has_leaf0: Vec<bool> = (0..leaves).map(|j| j == 0).collect();
        let mut cur: Vec<usize> = (0..leaves).collect();
        let mut nodes = leaves;
        let mut levels = Vec::new();
        while cur.len() > 1 {
            let mut level = Vec::new();
            let mut next = Vec::new();
            for pair in cur.chunks(2) {
                if let [lo, hi] = *pair {
                    level.push(Comb { hi, lo, out: nodes });
                    has_leaf0.push(has_leaf0[lo]);
                    next.push(nodes);
                    nodes += 1;
                } else {
                    next.push(pair[0]);
                }
            }
            levels.push(level);
            cur = next;
        }
        Tree {
            leaves,
            levels,
            root: cur.first().copied().unwrap_or(0),
            has_leaf0,
            nodes,
        }
    }

    fn combos(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }
}

/// The public shape of a multi-threshold comparison.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `(offset, bits)` of each block, LSB first.
    blocks: Vec<(u32, u32)>,
    /// Per threshold, its width.
    widths: Vec<u32>,
    trees: Vec<Tree>,
}

impl Plan {
    /// Thresholds of widths `widths` (each `1..=62`), blocks of `m` bits.
    pub(crate) fn new(widths: &[u32], m: u32) -> Plan {
        let w = widths.iter().copied().max().unwrap_or(0);
        let mut cuts: Vec<u32> = (1..).map(|k| k * m).take_while(|&c| c < w).collect();
        cuts.extend(widths.iter().copied().filter(|&c| c > 0 && c < w));
        cuts.push(w);
        cuts.sort_unstable();
        cuts.dedup();
        let mut blocks = Vec::new();
        let mut off = 0;
        for c in cuts {
            if c > off {
                blocks.push((off, c - off));
                off = c;
            }
        }
        let trees = widths
            .iter()
            .map(|&wk| Tree::new(blocks.iter().filter(|&&(o, b)| o + b <= wk).count()))
            .collect();
        Plan {
            blocks,
            widths: widths.to_vec(),
            trees,
        }
    }

    fn k(&self) -> usize {
        self.widths.len()
    }

    /// Message bits of block `j`'s table entries.
    fn t(&self, j: usize) -> u32 {
        self.trees
            .iter()
            .filter(|t| j < t.leaves)
            .map(|_| if j == 0 { 1 } else { 2 })
            .sum()
    }

    fn combos(&self) -> usize {
        self.trees.iter().map(Tree::combos).sum()
    }

    /// ROTs a batch of `n` uses (per direction).
    pub(crate) fn cost(&self, n: usize) -> RotCount {
        RotCount::both(self.combos() * n)
    }

    /// Levels of the deepest AND tree.
    pub(crate) fn tree_levels(&self) -> usize {
        self.trees.iter().map(|t| t.levels.len()).max().unwrap_or(0)
    }

    /// Number of flights.
    #[cfg(test)]
    pub(crate) fn flights(&self) -> usize {
        2 + self.trees.iter().map(|t| t.levels.len()).max().unwrap_or(0)
    }

    /// Bits on the wire (both directions, protocol messages only, without
    /// call headers and framing) for a batch of `n` of which `P0` receives
    /// for the first `h`: KK13 matrices, tables and AND openings.
    pub(crate) fn wire_bits(&self, n: usize, h: usize) -> usize {
        let q = self.blocks.len();
        let per_table: usize = (0..q)
            .map(|j| (1usize << self.blocks[j].1) * self.t(j) as usize)
            .sum();
        let mut bits = 8 * (kk13::matrix_bytes(h * q) + kk13::matrix_bytes((n - h) * q));
        bits += 8 * ((h * per_table).div_ceil(8) + ((n - h) * per_table).div_ceil(8));
        let levels = self.trees.iter().map(|t| t.levels.len()).max().unwrap_or(0);
        for l in 0..levels {
            let mut per = 0;
            for t in &self.trees {
                if let Some(level) = t.levels.get(l) {
                    for c in level {
                        per += if t.has_leaf0[c.out] { 2 } else { 3 };
                    }
                }
            }
            bits += 2 * 8 * (per * n).div_ceil(8);
        }
        bits
    }

    fn shapes(&self, count: usize) -> Vec<Table> {
        let mut out = Vec::with_capacity(count * self.blocks.len());
        for _ in 0..count {
            for (j, &(_, b)) in self.blocks.iter().enumerate() {
                out.push(Table {
                    n: 1 << b,
                    t: self.t(j),
                });
            }
        }
        out
    }
}

/// The sender's table for one block: entry `x`, bit layout per covering
/// threshold `k`: `gt` then (unless block 0) `eq`. Branch-free in the
/// secret `v` (comparisons by subtraction and `subtle`).
fn entries(plan: &Plan, j: usize, v: &[u64], shares: &[(u8, u8)], out: &mut Vec<u64>) {
    let (off, b) = plan.blocks[j];
    for x in 0..(1u64 << b) {
        let mut e = 0u64;
        let mut pos = 0;
        for (k, t) in plan.trees.iter().enumerate() {
            if j >= t.leaves {
                continue;
            }
            let vb = (v[k] >> off) & mask(b);
            let gt = (vb.wrapping_sub(x) >> 63) & 1; // x > vb
            let eq = u64::from(x.ct_eq(&vb).unwrap_u8());
            e |= (gt ^ u64::from(shares[k].0)) << pos;
            pos += 1;
            if j > 0 {
                e |= (eq ^ u64::from(shares[k].1)) << pos;
                pos += 1;
            }
        }
        out.push(e);
    }
}

/// Runs the comparisons. `P0` is the KK13 receiver `R` for elements `0..h`
/// and `P1` for the rest (public). `u[i]` is our value for elements where we
/// are `R`, `v[i·K + k]` our thresholds where we are the sender (both
/// `< 2^{w_k}`); returns per threshold the shares of `1{u_R > v_{S,k}}`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    ch: &mut Channel,
    p0: bool,
    h: usize,
    plan: &Plan,
    kk: (&mut Kk13Sender, &mut Kk13Receiver),
    u: &[u64],
    v: &[u64],
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<Bits>> {
    let n = u.len();
    let kk_n = plan.k();
    if v.len() != n * kk_n {
        return Err(Error::Internal(
            "field millionaires: thresholds of wrong shape",
        ));
    }
    let q = plan.blocks.len();
    if h > n {
        return Err(Error::Internal(
            "field millionaires: split beyond the batch",
        ));
    }
    let (recv, send) = if p0 { (0..h, h..n) } else { (h..n, 0..h) };

    // Leaves: our choices, our tables with random output shares.
    let mut choices = Vec::with_capacity(recv.len() * q);
    for i in recv.clone() {
        for &(off, b) in &plan.blocks {
            choices.push(((u[i] >> off) & mask(b)) as u8);
        }
    }
    let mut msgs = Vec::new();
    let mut my_shares = vec![(0u8, 0u8); send.len() * q * kk_n];
    for (si, i) in send.clone().enumerate() {
        for j in 0..q {
            let base = (si * q + j) * kk_n;
            for k in 0..kk_n {
                my_shares[base + k] = (
                    rand::RngExt::random_range(rng, 0..2u8),
                    rand::RngExt::random_range(rng, 0..2u8),
                );
            }
            entries(
                plan,
                j,
                &v[i * kk_n..(i + 1) * kk_n],
                &my_shares[base..base + kk_n],
                &mut msgs,
            );
        }
    }
    let got = kk13::both_ways(
        ch,
        kk.0,
        kk.1,
        choices,
        &plan.shapes(recv.len()),
        &plan.shapes(send.len()),
        &msgs,
    )
    .await?;

    // Leaf shares per threshold and block, over the whole batch.
    let mut gt: Vec<Vec<Option<Bits>>> = plan.trees.iter().map(|t| vec![None; t.nodes]).collect();
    let mut eq: Vec<Vec<Option<Bits>>> = plan.trees.iter().map(|t| vec![None; t.nodes]).collect();
    for (k, t) in plan.trees.iter().enumerate() {
        for j in 0..t.leaves {
            // Bit position of threshold k inside block j's entries.
            let pos: u32 = plan.trees[..k]
                .iter()
                .filter(|t2| j < t2.leaves)
                .map(|_| if j == 0 { 1 } else { 2 })
                .sum();
            let pick = |i: usize, second: bool| -> bool {
                if recv.contains(&i) {
                    let e = got[(i - recv.start) * q + j];
                    (e >> (pos + u32::from(second))) & 1 == 1
                } else {
                    let s = my_shares[((i - send.start) * q + j) * kk_n + k];
                    (if second { s.1 } else { s.0 }) == 1
                }
            };
            gt[k][j] = Some(Bits::from_fn(n, |i| pick(i, false)));
            if j > 0 {
                eq[k][j] = Some(Bits::from_fn(n, |i| pick(i, true)));
            }
        }
    }

    // AND trees, levels in lockstep.
    let combos = plan.combos();
    let tsend = rots.take_send(combos * n)?;
    let trecv = rots.take_recv(combos * n)?;
    let trip: Vec<Triples> = (0..combos)
        .map(|c| triples::from_rots(&tsend, &trecv, c * n, n, 2))
        .collect();
    let mut ti = 0;
    let depth = plan.trees.iter().map(|t| t.levels.len()).max().unwrap_or(0);
    for l in 0..depth {
        let mut opened: Vec<(usize, Comb, usize, Vec<Bits>)> = Vec::new();
        let mut msg = BitWriter::default();
        for (k, t) in plan.trees.iter().enumerate() {
            let Some(level) = t.levels.get(l) else {
                continue;
            };
            for &c in level {
                let (Some(eq_hi), Some(gt_lo)) = (&eq[k][c.hi], &gt[k][c.lo]) else {
                    return Err(Error::Internal("field millionaires: tree node missing"));
                };
                let o = if t.has_leaf0[c.out] {
                    and::open(eq_hi, &[gt_lo], &trip[ti])
                } else {
                    let Some(eq_lo) = &eq[k][c.lo] else {
                        return Err(Error::Internal("field millionaires: eq missing"));
                    };
                    and::open(eq_hi, &[gt_lo, eq_lo], &trip[ti])
                };
                for b in &o {
                    msg.push_bits(b);
                }
                opened.push((k, c, ti, o));
                ti += 1;
            }
        }
        let total = msg.len();
        let bytes = ch.exchange(&msg.into_bytes(), total.div_ceil(8)).await?;
        let mut rd = BitReader::new(&bytes, total, "field millionaires' AND openings")?;
        for (k, c, tix, mine) in opened {
            let theirs: Vec<Bits> = mine.iter().map(|b| rd.read_bits(b.len())).collect();
            let z = and::finish(p0, &trip[tix], &mine, &theirs);
            let Some(gt_hi) = &gt[k][c.hi] else {
                return Err(Error::Internal("field millionaires: gt missing"));
            };
            gt[k][c.out] = Some(gt_hi.xor(&z[0]));
            eq[k][c.out] = z.get(1).cloned();
        }
    }
    plan.trees
        .iter()
        .enumerate()
        .map(|(k, t)| {
            if t.leaves == 0 {
                return Ok(Bits::zeros(n));
            }
            gt[k][t.root]
                .clone()
                .ok_or(Error::Internal("field millionaires: root missing"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_cuts_blocks_at_every_threshold_width() {
        let p = Plan::new(&[38, 12, 12], 4);
        assert_eq!(p.blocks.len(), 10);
        assert_eq!(p.blocks.last(), Some(&(36, 2)));
        assert_eq!(p.trees[0].leaves, 10);
        assert_eq!(p.trees[1].leaves, 3);
        assert_eq!(p.t(0), 3);
        assert_eq!(p.t(1), 6);
        assert_eq!(p.t(3), 2);
        let p = Plan::new(&[10, 6], 4);
        assert_eq!(p.blocks, vec![(0, 4), (4, 2), (6, 2), (8, 2)]);
        assert_eq!(p.trees[1].leaves, 2);
        assert_eq!(p.flights(), 4);
    }

    #[test]
    fn sender_tables_encode_gt_and_eq_for_every_entry() {
        let p = Plan::new(&[8, 8], 4);
        let v = [0x5au64, 0xa3];
        let sh = [(0u8, 0u8), (1, 1)];
        for j in 0..2 {
            let mut out = Vec::new();
            entries(&p, j, &v, &sh, &mut out);
            for x in 0..16u64 {
                let e = out[x as usize];
                let mut pos = 0;
                for k in 0..2 {
                    let vb = (v[k] >> (4 * j)) & 15;
                    assert_eq!((e >> pos) & 1, u64::from(x > vb) ^ u64::from(sh[k].0));
                    pos += 1;
                    if j > 0 {
                        assert_eq!((e >> pos) & 1, u64::from(x == vb) ^ u64::from(sh[k].1));
                        pos += 1;
                    }
                }
            }
        }
    }
}
