//! Multiplexer over a prime field: additive shares in `Z_p` of `b·x` for an
//! XOR-shared bit `b = b_0 ⊕ b_1` and `x = x_0 + x_1 mod p` (CrypTFlow2,
//! ePrint 2020/1002, §2.2, `F_MUX` from two `(2 choose 1)-OT_η`).
//!
//! Each party `P_i`, as OT sender, draws a random `ρ_i ∈ Z_p` and offers
//! `M_c = (b_i ⊕ c)·x_i + ρ_i` for `c ∈ {0, 1}`; the peer chooses with its bit
//! `b_{1-i}` and gets `b·x_i + ρ_i`. `P_i` outputs `-ρ_i` plus what it
//! received: the outputs sum to `b·x_0 + b·x_1 = b·x`. The two OTs run at
//! once, one per direction, on IKNP random OTs derandomised as in
//! [`crate::one_of_n`] (`m = 1`, `t = ⌈log2 p⌉`).
//!
//! **Learns:** nothing beyond the output share (the choice corrections are
//! padded by the random OT's choice bit; the other message by a key the
//! receiver lacks). **Cost** per element: 2 flights, 2 ROTs (one per
//! direction, 128 IKNP bits each), `2(1 + 2η)` bits of messages (`η =
//! ⌈log2 p⌉`), the same as SCI's two `(2 choose 1)-OT_η` minus IKNP's own
//! traffic.

use rand::rngs::ChaCha20Rng;

use crate::{
    bits::{BitReader, Bits, bits_to_bytes},
    channel::Channel,
    ctx::FieldCtx,
    error::Result,
    one_of_n::{self, Layout},
    pool::{RotCount, Rots},
};

/// ROTs for `n` multiplexers.
pub(crate) const fn cost(n: usize) -> RotCount {
    RotCount::both(n)
}

/// Shares of `b_i·x_i` in `Z_p`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &FieldCtx,
    b: &Bits,
    x: &[u64],
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    let n = x.len();
    let f = ctx.field;
    let eta = ctx.w();
    let layout = Layout::new(1, eta)?;
    let s = rots.take_send(n)?;
    let r = rots.take_recv(n)?;
    let idx: Vec<u64> = (0..n).map(|i| u64::from(b.get(i))).collect();
    let e = one_of_n::choice_corrections(&idx, 1, &r);
    let bytes = ch.exchange(&bits_to_bytes(&e), n.div_ceil(8)).await?;
    let e_peer = BitReader::new(&bytes, n, "field multiplexer corrections")?.read_bits(n);
    let rho: Vec<u64> = (0..n).map(|_| f.random(rng)).collect();
    let mut msgs = Vec::with_capacity(2 * n);
    for i in 0..n {
        let bi = u64::from(b.get(i));
        for c in 0..2u64 {
            // (b_i ⊕ c)·x_i + ρ_i, without branching on b_i.
            let sel = (bi ^ c).wrapping_neg() & x[i];
            msgs.push(f.add(sel, rho[i]));
        }
    }
    let tables = one_of_n::sender_tables(&layout, &msgs, &e_peer, &s);
    let theirs = ch
        .exchange(&tables, (n * layout.table_bits()).div_ceil(8))
        .await?;
    let got = one_of_n::receiver_outputs(&layout, &idx, &theirs, &r)?;
    // A received value >= p can only come from a misbehaving peer; reduce it
    // (received values are below 2^η < 2p).
    Ok((0..n)
        .map(|i| f.sub(ctx.reduce_once(got[i]), rho[i]))
        .collect())
}
