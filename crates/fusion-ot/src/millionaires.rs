//! Millionaires' comparison: XOR shares of `1{a > b}` for `P0`'s private `a`
//! and `P1`'s private `b`, both `w`-bit unsigned (CrypTFlow2, ePrint 2020/1002,
//! §3, Algorithm 1; the same protocol Cheetah uses, ePrint 2022/207, §5, on
//! silent OT).
//!
//! 1. **Leaves.** Split both inputs into `q = ceil(w/m)` blocks of `m` bits
//!    (LSB first; the top block may be shorter). For every block `j` compute
//!    shares of `lt_j`-style bits `gt_j = 1{a_j > b_j}` and `eq_j = 1{a_j = b_j}`
//!    with one 1-of-`2^m` OT of 2-bit messages ([`crate::one_of_n`]): the OT
//!    sender picks random output shares `s_gt, s_eq` and offers, for every
//!    possible value `k` of the receiver's block, `(gt(k) ⊕ s_gt, eq(k) ⊕ s_eq)`.
//!    Block 0's `eq` is never needed, so its messages are 1 bit.
//! 2. **AND tree.** Combine adjacent nodes (`hi`, `lo`) level by level:
//!    `gt = gt_hi ⊕ (eq_hi ∧ gt_lo)`, `eq = eq_hi ∧ eq_lo` (the XOR is an OR of
//!    disjoint events). The two ANDs share `eq_hi`, so one correlated triple
//!    pair (2 ROTs) serves both ([`crate::triples`], [`crate::and`]); `eq` is
//!    skipped for nodes that contain block 0. `ceil(log2 q)` flights.
//!
//! **Balancing.** The leaf OTs of the first half of a batch have `P0` as OT
//! sender and those of the second half `P1` (comparing `b < a` instead), so
//! both flights of the leaf stage and both OT directions carry equal load.
//!
//! **Split output** (for exact truncation): with a split bit `s`, the low `s`
//! bits and the high `w - s` bits are reduced separately and then combined, so
//! the protocol also outputs `1{a mod 2^s > b mod 2^s}` at no extra cost.
//!
//! **What each party learns:** its output share only; the OT receiver sends
//! `e = block ⊕ c` (uniform), the sender sends tables masked by keys the
//! receiver does not hold, and the AND openings are one-time padded.
//!
//! **Cost** (per comparison, `w` input bits, `q` blocks): `w + 2(q - 1)` ROTs
//! in total (`w` for the leaves, split evenly between the directions, and one
//! per direction per tree node); flights: `2 + ceil(log2 q)`; bits on the wire
//! (both directions together): `w + Σ_j 2^{m_j}·t_j + Σ_nodes (4 or 6)`.
//! For `w = 36, m = 4`: `36 + 16 + 8·32 + 4·6 + 4·4 = 348` bits.
//!
//! Constant time: the OT sender builds its tables with shifts and masks of its
//! secret block (no table lookups); the receiver extracts its slot by a shift.

use rand::rngs::ChaCha20Rng;

use crate::{
    and,
    bits::{BitReader, BitWriter, Bits, bits_to_bytes},
    channel::Channel,
    ctx::{Ctx, compute, fork, mask},
    error::{Error, Result},
    one_of_n::Layout,
    pool::{RecvRots, RotCount, Rots, SendRots},
    triples::{self, Triples},
};

/// One combination of the AND tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Comb {
    pub hi: usize,
    pub lo: usize,
    pub out: usize,
}

/// The public shape of a comparison: blocks and tree, from `(w, m, split)`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub width: u32,
    /// `(offset, bits)` of each leaf block, LSB first.
    pub blocks: Vec<(u32, u32)>,
    pub levels: Vec<Vec<Comb>>,
    pub root: Option<usize>,
    pub low_root: Option<usize>,
    /// Per node: whether its `eq` share is ever needed.
    pub need_eq: Vec<bool>,
    pub n_nodes: usize,
}

impl Plan {
    /// A plan for `width`-bit inputs, blocks of `m` bits, optionally also
    /// outputting the comparison of the low `split` bits (`0 < split < width`).
    pub(crate) fn new(width: u32, m: u32, split: Option<u32>) -> Plan {
        let bounds: Vec<(u32, u32)> = match split {
            Some(s) if s > 0 && s < width => vec![(0, s), (s, width)],
            _ => vec![(0, width)],
        };
        let mut blocks = Vec::new();
        let mut segs: Vec<Vec<usize>> = Vec::new();
        for (lo, hi) in bounds {
            let mut ids = Vec::new();
            let mut off = lo;
            while off < hi {
                let b = m.min(hi - off);
                ids.push(blocks.len());
                blocks.push((off, b));
                off += b;
            }
            segs.push(ids);
        }
        let mut lowest: Vec<usize> = (0..blocks.len()).collect();
        let mut n_nodes = blocks.len();
        let mut levels = Vec::new();
        while segs.iter().any(|s| s.len() > 1) {
            let mut level = Vec::new();
            for seg in segs.iter_mut().filter(|s| s.len() > 1) {
                let mut next = Vec::with_capacity(seg.len().div_ceil(2));
                for pair in seg.chunks(2) {
                    if let [lo, hi] = *pair {
                        let out = n_nodes;
                        n_nodes += 1;
                        lowest.push(lowest[lo]);
                        level.push(Comb { hi, lo, out });
                        next.push(out);
                    } else {
                        next.push(pair[0]);
                    }
                }
                *seg = next;
            }
            levels.push(level);
        }
        let (root, low_root) = if segs.len() == 2 {
            let (lo, hi) = (segs[0][0], segs[1][0]);
            let out = n_nodes;
            n_nodes += 1;
            lowest.push(lowest[lo]);
            levels.push(vec![Comb { hi, lo, out }]);
            (Some(out), Some(lo))
        } else {
            (segs[0].first().copied(), None)
        };
        let need_eq = lowest.iter().map(|&b| b > 0).collect();
        Plan {
            width,
            blocks,
            levels,
            root,
            low_root,
            need_eq,
            n_nodes,
        }
    }

    /// Number of AND-tree combinations.
    pub(crate) fn combos(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Leaf message width of block `j` (2 bits: `gt`, `eq`; 1 if `eq` unused).
    fn t(&self, j: usize) -> u32 {
        if self.need_eq[j] { 2 } else { 1 }
    }

    /// Bits of the leaf tables of one element.
    fn table_bits(&self) -> usize {
        self.blocks
            .iter()
            .enumerate()
            .map(|(j, &(_, b))| (1usize << b) * self.t(j) as usize)
            .sum()
    }

    /// ROTs we use for a batch of `n`.
    pub(crate) fn cost(&self, ctx: &Ctx, n: usize) -> RotCount {
        let w = self.width as usize;
        let c = self.combos() * n;
        RotCount::new(
            ctx.my_sender_range(n).len() * w + c,
            ctx.my_receiver_range(n).len() * w + c,
        )
    }

    /// Number of flights.
    #[cfg(test)]
    pub(crate) fn flights(&self) -> usize {
        if self.blocks.is_empty() {
            0
        } else {
            2 + self.levels.len()
        }
    }
}

/// Precomputed masks of one leaf block's table.
#[derive(Debug, Clone)]
struct Shape {
    t: u32,
    rep0: u128,
    rep1: u128,
    slot: u128,
    table_mask: u128,
    table_bits: u32,
    /// `masks[p][β]`: slots `k` with bit `p` of `k` equal to `β`.
    masks: Vec<[u128; 2]>,
}

impl Shape {
    fn new(bits: u32, t: u32) -> Result<Shape> {
        let layout = Layout::new(bits, t)?;
        if layout.words != 1 {
            return Err(Error::Param(
                "millionaires' block size must be at most 6 bits".into(),
            ));
        }
        let n = 1usize << bits;
        let mut rep0 = 0u128;
        for k in 0..n {
            rep0 |= 1u128 << (k as u32 * t);
        }
        let table_bits = n as u32 * t;
        Ok(Shape {
            t,
            rep0,
            rep1: if t == 2 { rep0 << 1 } else { 0 },
            slot: (1u128 << t) - 1,
            table_mask: if table_bits == 128 {
                u128::MAX
            } else {
                (1u128 << table_bits) - 1
            },
            table_bits,
            masks: layout.masks.iter().map(|m| [m[0][0], m[1][0]]).collect(),
        })
    }

    /// The unmasked table for the sender's block value `s`: `gt(k)` at bit
    /// `k·t`, `eq(k)` at bit `k·t + 1`. With `sender_is_a`, `gt(k) = 1{s > k}`,
    /// else `gt(k) = 1{k > s}`. Branch-free in `s` (shifts and masks only).
    #[inline]
    fn plain_table(&self, s: u64, sender_is_a: bool) -> u128 {
        let sh = self.t * s as u32; // < 128 since s < N and N·t <= 128
        let below = (1u128 << sh) - 1; // slots k < s
        let gt = if sender_is_a {
            below & self.rep0
        } else {
            self.rep0 & !(below | (self.slot << sh))
        };
        let eq = if self.t == 2 { 1u128 << (sh + 1) } else { 0 };
        gt | eq
    }
}

fn shapes(plan: &Plan) -> Result<Vec<Shape>> {
    plan.blocks
        .iter()
        .enumerate()
        .map(|(j, &(_, b))| Shape::new(b, plan.t(j)))
        .collect()
}

/// OT sender, leaf flight 2: tables for our `inputs` given the receiver's
/// corrections `e`; returns the table bytes and our leaf shares
/// (`gt`/`eq` bit of element `i`, block `j` at `i·q + j`).
fn leaf_sender(
    plan: &Plan,
    shapes: &[Shape],
    sender_is_a: bool,
    inputs: &[u64],
    e: &Bits,
    rots: &SendRots,
    rng: &mut ChaCha20Rng,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let q = plan.blocks.len();
    let w = plan.width as usize;
    let mut wr = BitWriter::with_capacity(inputs.len() * plan.table_bits());
    let s_gt = Bits::random(inputs.len() * q, rng);
    let s_eq = Bits::random(inputs.len() * q, rng);
    let mut gt = vec![0u8; inputs.len() * q];
    let mut eq = vec![0u8; inputs.len() * q];
    for (i, &x) in inputs.iter().enumerate() {
        for (j, (&(off, bits), sh)) in plan.blocks.iter().zip(shapes).enumerate() {
            let s = (x >> off) & mask(bits);
            let mut pad = 0u128;
            for p in 0..bits as usize {
                let idx = i * w + off as usize + p;
                let [k0, k1] = rots.0[idx];
                let sw = 0u128.wrapping_sub(u128::from(e.get(idx)));
                let d = (k0 ^ k1) & sw;
                pad ^= ((k0 ^ d) & sh.masks[p][0]) | ((k1 ^ d) & sh.masks[p][1]);
            }
            let g = s_gt.get_u8(i * q + j);
            let qb = if sh.t == 2 { s_eq.get_u8(i * q + j) } else { 0 };
            let share = (0u128.wrapping_sub(u128::from(g)) & sh.rep0)
                | (0u128.wrapping_sub(u128::from(qb)) & sh.rep1);
            let table = (sh.plain_table(s, sender_is_a) ^ share ^ pad) & sh.table_mask;
            wr.push_u128(table, sh.table_bits);
            gt[i * q + j] = g;
            eq[i * q + j] = qb;
        }
    }
    (wr.into_bytes(), gt, eq)
}

/// OT receiver, leaf flight 1: `e = bit ⊕ c` for every input bit.
fn leaf_receiver_corrections(plan: &Plan, inputs: &[u64], rots: &RecvRots) -> Bits {
    let w = plan.width as usize;
    Bits::from_fn(inputs.len() * w, |k| {
        let (i, bit) = (k / w, k % w);
        ((inputs[i] >> bit) & 1) as u8 ^ rots.choices[k] == 1
    })
}

/// OT receiver, after leaf flight 2: our leaf shares.
fn leaf_receiver_outputs(
    plan: &Plan,
    shapes: &[Shape],
    inputs: &[u64],
    tables: &[u8],
    rots: &RecvRots,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let q = plan.blocks.len();
    let w = plan.width as usize;
    let mut rd = BitReader::new(
        tables,
        inputs.len() * plan.table_bits(),
        "millionaires' leaf tables",
    )?;
    let mut gt = vec![0u8; inputs.len() * q];
    let mut eq = vec![0u8; inputs.len() * q];
    for (i, &x) in inputs.iter().enumerate() {
        for (j, (&(off, bits), sh)) in plan.blocks.iter().zip(shapes).enumerate() {
            let r = (x >> off) & mask(bits);
            let mut kx = 0u128;
            for p in 0..bits as usize {
                kx ^= rots.keys[i * w + off as usize + p];
            }
            let table = rd.read_u128(sh.table_bits);
            let v = ((table ^ kx) >> (sh.t * r as u32)) & sh.slot;
            gt[i * q + j] = (v & 1) as u8;
            eq[i * q + j] = ((v >> 1) & 1) as u8;
        }
    }
    Ok((gt, eq))
}

/// Runs the comparison on our inputs (`a` if we are `P0`, `b` if `P1`, each
/// `< 2^w`); returns shares of `1{a > b}` and, with a split, of
/// `1{a mod 2^s > b mod 2^s}`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    plan: &Plan,
    inputs: Vec<u64>,
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<(Bits, Option<Bits>)> {
    let n = inputs.len();
    if plan.blocks.is_empty() {
        return Ok((Bits::zeros(n), plan.low_root.map(|_| Bits::zeros(n))));
    }
    let w = plan.width as usize;
    let q = plan.blocks.len();
    let mine = ctx.my_sender_range(n);
    let theirs = ctx.my_receiver_range(n);
    let leaf_send = rots.take_send(mine.len() * w)?;
    let leaf_recv = rots.take_recv(theirs.len() * w)?;
    let combos = plan.combos();
    let tree_send = rots.take_send(combos * n)?;
    let tree_recv = rots.take_recv(combos * n)?;
    let shapes = shapes(plan)?;

    // Flight 1: corrections for the blocks where we are the OT receiver.
    let in_recv: Vec<u64> = inputs[theirs.clone()].to_vec();
    let plan_c = plan.clone();
    let (e_mine, in_recv, leaf_recv) = compute(move || {
        let e = leaf_receiver_corrections(&plan_c, &in_recv, &leaf_recv);
        (e, in_recv, leaf_recv)
    })
    .await?;
    let e_len = mine.len() * w;
    let bytes = ch
        .exchange(&bits_to_bytes(&e_mine), e_len.div_ceil(8))
        .await?;
    let e_peer =
        BitReader::new(&bytes, e_len, "millionaires' choice corrections")?.read_bits(e_len);

    // Flight 2: tables for the blocks where we are the OT sender. The AND-tree
    // triples are derived in the same compute task.
    let in_send: Vec<u64> = inputs[mine.clone()].to_vec();
    let (plan_c, shapes_c) = (plan.clone(), shapes.clone());
    let mut leaf_rng = fork(rng);
    let p0 = ctx.p0();
    let (tables, s_gt, s_eq, trip) = compute(move || {
        let (t, g, e) = leaf_sender(
            &plan_c,
            &shapes_c,
            p0,
            &in_send,
            &e_peer,
            &leaf_send,
            &mut leaf_rng,
        );
        let trip: Vec<Triples> = (0..combos)
            .map(|c| triples::from_rots(&tree_send, &tree_recv, c * n, n, 2))
            .collect();
        (t, g, e, trip)
    })
    .await?;
    let t_len = theirs.len() * plan.table_bits();
    let peer_tables = ch.exchange(&tables, t_len.div_ceil(8)).await?;
    let plan_c = plan.clone();
    let (r_gt, r_eq) = compute(move || {
        leaf_receiver_outputs(&plan_c, &shapes, &in_recv, &peer_tables, &leaf_recv)
    })
    .await??;

    // Assemble the leaf shares per block over the whole batch.
    let mut gt: Vec<Option<Bits>> = vec![None; plan.n_nodes];
    let mut eq: Vec<Option<Bits>> = vec![None; plan.n_nodes];
    let pick = |i: usize, j: usize, from_send: &[u8], from_recv: &[u8]| -> bool {
        if mine.contains(&i) {
            from_send[(i - mine.start) * q + j] == 1
        } else {
            from_recv[(i - theirs.start) * q + j] == 1
        }
    };
    for j in 0..q {
        gt[j] = Some(Bits::from_fn(n, |i| pick(i, j, &s_gt, &r_gt)));
        if plan.need_eq[j] {
            eq[j] = Some(Bits::from_fn(n, |i| pick(i, j, &s_eq, &r_eq)));
        }
    }

    // AND tree, one flight per level.
    let mut ci = 0;
    for level in &plan.levels {
        let mut mine_open: Vec<Vec<Bits>> = Vec::with_capacity(level.len());
        let mut msg = BitWriter::default();
        for c in level {
            let t = &trip[ci + mine_open.len()];
            let (Some(eq_hi), Some(gt_lo)) = (&eq[c.hi], &gt[c.lo]) else {
                return Err(Error::Internal("millionaires' tree node missing"));
            };
            let o = if plan.need_eq[c.out] {
                let Some(eq_lo) = &eq[c.lo] else {
                    return Err(Error::Internal("millionaires' eq share missing"));
                };
                and::open(eq_hi, &[gt_lo, eq_lo], t)
            } else {
                and::open(eq_hi, &[gt_lo], t)
            };
            for b in &o {
                msg.push_bits(b);
            }
            mine_open.push(o);
        }
        let total = msg.len();
        let bytes = ch.exchange(&msg.into_bytes(), total.div_ceil(8)).await?;
        let mut rd = BitReader::new(&bytes, total, "millionaires' AND openings")?;
        for (k, c) in level.iter().enumerate() {
            let t = &trip[ci + k];
            let theirs_open: Vec<Bits> =
                mine_open[k].iter().map(|b| rd.read_bits(b.len())).collect();
            let z = and::finish(ctx.p0(), t, &mine_open[k], &theirs_open);
            let Some(gt_hi) = &gt[c.hi] else {
                return Err(Error::Internal("millionaires' gt share missing"));
            };
            gt[c.out] = Some(gt_hi.xor(&z[0]));
            if plan.need_eq[c.out] {
                eq[c.out] = z.get(1).cloned();
            }
        }
        ci += level.len();
    }
    let get = |node: Option<usize>| -> Result<Option<Bits>> {
        match node {
            None => Ok(None),
            Some(k) => gt[k]
                .clone()
                .map(Some)
                .ok_or_else(|| Error::Internal("root share missing")),
        }
    };
    let root = get(plan.root)?.unwrap_or_else(|| Bits::zeros(n));
    Ok((root, get(plan.low_root)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_for_36_bits_has_9_blocks_and_depth_4() {
        let p = Plan::new(36, 4, None);
        assert_eq!(p.blocks.len(), 9);
        assert_eq!(p.levels.len(), 4);
        assert_eq!(p.combos(), 8);
        assert_eq!(p.flights(), 6);
        assert!(!p.need_eq[0] && p.need_eq[1]);
        assert!(!p.need_eq[p.root.unwrap()]);
    }

    #[test]
    fn split_plan_outputs_the_low_segment_root() {
        let p = Plan::new(37, 4, Some(12));
        assert_eq!(p.blocks[..3], [(0, 4), (4, 4), (8, 4)]);
        assert_eq!(p.blocks[3], (12, 4));
        assert_eq!(p.blocks.last(), Some(&(36, 1)));
        let lr = p.low_root.unwrap();
        assert!(!p.need_eq[lr]);
        assert_eq!(p.levels.last().unwrap().len(), 1);
    }

    #[test]
    fn plain_tables_compare_correctly() {
        for bits in 1..=6u32 {
            for t in [1u32, 2] {
                let sh = Shape::new(bits, t).unwrap();
                let n = 1u64 << bits;
                for s in 0..n {
                    for a_side in [true, false] {
                        let tab = sh.plain_table(s, a_side);
                        for k in 0..n {
                            let v = (tab >> (t as u64 * k)) & sh.slot;
                            let gt = if a_side { s > k } else { k > s };
                            assert_eq!(v & 1 == 1, gt, "bits {bits} t {t} s {s} k {k}");
                            if t == 2 {
                                assert_eq!((v >> 1) & 1 == 1, s == k);
                            }
                        }
                        assert_eq!(tab & !sh.table_mask, 0);
                    }
                }
            }
        }
    }
}
