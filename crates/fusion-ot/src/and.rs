//! AND of XOR-shared bits with Beaver triples (GMW).
//!
//! For `z_j = x ∧ y_j` with a triple `(a, b_j, c_j)`: both parties open
//! `d = x ⊕ a` and `e_j = y_j ⊕ b_j`, then
//! `z_j = c_j ⊕ d·b_j ⊕ e_j·a ⊕ d·e_j` (the last term added by `P0` only).
//! `d` and `e_j` are one-time-padded by the uniformly random `a`, `b_j`, so the
//! openings reveal nothing.
//!
//! Cost: one flight; per position `1 + k` bits each way and 2 ROTs (one per
//! direction) for `k <= 64` ANDs sharing `x` (see [`crate::triples`]).

use crate::{
    bits::{BitReader, Bits, bits_to_bytes},
    channel::Channel,
    ctx::Ctx,
    error::Result,
    pool::RotCount,
    pool::Rots,
    triples::{self, Triples},
};

/// Our opening message for one AND group: `d ‖ e_1 ‖ ... ‖ e_k`.
pub(crate) fn open(x: &Bits, ys: &[&Bits], t: &Triples) -> Vec<Bits> {
    let mut out = Vec::with_capacity(1 + ys.len());
    out.push(x.xor(&t.a));
    for (j, y) in ys.iter().enumerate() {
        out.push(y.xor(&t.b[j]));
    }
    out
}

/// The shares of `x ∧ y_j` from both parties' openings.
pub(crate) fn finish(p0: bool, t: &Triples, mine: &[Bits], theirs: &[Bits]) -> Vec<Bits> {
    let d = mine[0].xor(&theirs[0]);
    (1..mine.len())
        .map(|j| {
            let e = mine[j].xor(&theirs[j]);
            let mut z = t.c[j - 1].xor(&d.and(&t.b[j - 1]));
            z.xor_assign(&e.and(&t.a));
            if p0 {
                z.xor_assign(&d.and(&e));
            }
            z
        })
        .collect()
}

/// ROTs for `n` ANDs.
pub(crate) const fn cost(n: usize) -> RotCount {
    RotCount::both(n)
}

/// Shares of `x ∧ y` for XOR-shared bit vectors of equal length.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    x: &Bits,
    y: &Bits,
    rots: &mut Rots,
) -> Result<Bits> {
    let n = x.len();
    let s = rots.take_send(n)?;
    let r = rots.take_recv(n)?;
    let t = triples::from_rots(&s, &r, 0, n, 1);
    let mine = open(x, &[y], &t);
    let msg = bits_to_bytes(&Bits::concat(&[&mine[0], &mine[1]]));
    let bytes = ch.exchange(&msg, (2 * n).div_ceil(8)).await?;
    let mut rd = BitReader::new(&bytes, 2 * n, "AND openings")?;
    let theirs = [rd.read_bits(n), rd.read_bits(n)];
    let mut z = finish(ctx.p0(), &t, &mine, &theirs);
    Ok(z.remove(0))
}
