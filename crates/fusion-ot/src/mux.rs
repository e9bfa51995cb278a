//! Multiplexer: additive shares of `b·x` for an XOR-shared bit `b` and an
//! additively shared `x ∈ Z_{2^l}` (the functionality of CrypTFlow2's
//! `F_MUX`, ePrint 2020/1002 §2.2, built here in one flight).
//!
//! Each party's receiver ROT gives it a random bit `c_i`; `c = c0 ⊕ c1` is a
//! random bit nobody knows. In one flight each party sends
//!
//! - `d_i = b_i ⊕ c_i` (so `d = b ⊕ c` becomes public: one-time padded by `c`),
//! - `D_i = K0 - K1 + (1 - 2c_i)·x_i` on its sender ROT (an arithmetic COT,
//!   [`crate::acot`], whose receiver choice is the peer's `c_{1-i}`).
//!
//! Since `(c0 ⊕ c1)·y = c_i·y + c_{1-i}·(1 - 2c_i)·y`, each party gets a share
//! `s_i` of `c·x` locally, and `b·x = d·x + (1 - 2d)·(c·x)` is linear in it.
//!
//! Learns: `d = b ⊕ c` (uniform) and ACOT corrections masked by unknown keys:
//! nothing. Cost per element: 1 flight, 2 ROTs (one per direction),
//! `2(l + 1)` bits (both directions together).

use crate::{
    acot,
    bits::{BitReader, BitWriter, Bits},
    channel::Channel,
    ctx::{Ctx, compute},
    error::Result,
    pool::{RotCount, Rots},
};

/// ROTs for `n` multiplexers.
pub(crate) const fn cost(n: usize) -> RotCount {
    RotCount::both(n)
}

/// Shares of `b_i · x_i`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    b: &Bits,
    x: &[u64],
    rots: &mut Rots,
) -> Result<Vec<u64>> {
    let n = x.len();
    let ring = ctx.ring;
    let l = ring.bits();
    let s = rots.take_send(n)?;
    let r = rots.take_recv(n)?;
    let (b, x) = (b.clone(), x.to_vec());
    let (msg, b, x, s, r) = compute(move || {
        let mut wr = BitWriter::with_capacity(n * (l as usize + 1));
        for i in 0..n {
            wr.push(u64::from(b.get_u8(i) ^ r.choices[i]), 1);
        }
        for i in 0..n {
            let c = r.choices[i];
            let y = acot::select(c, ring.neg(x[i])) | acot::select(c ^ 1, x[i]);
            wr.push(acot::sender(s.0[i], y, l).1, l);
        }
        (wr.into_bytes(), b, x, s, r)
    })
    .await?;
    let len = n * (l as usize + 1);
    let bytes = ch.exchange(&msg, len.div_ceil(8)).await?;
    compute(move || {
        let mut rd = BitReader::new(&bytes, len, "multiplexer message")?;
        let d_peer = rd.read_bits(n);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let c = r.choices[i];
            let d = (b.get_u8(i) ^ c) ^ d_peer.get_u8(i);
            let (k0, _) = acot::sender(s.0[i], 0, l);
            // Share of c·x: c_i·x_i (local) - K0 (our ACOT as sender) + K_c + c_i·D_peer (as receiver).
            let share = ring.add(
                ring.sub(acot::select(c, x[i]), k0),
                acot::receiver(r.keys[i], c, rd.read(l), l),
            );
            // b·x = d·x + (1 - 2d)·(c·x); d is public.
            let dx = if d == 1 { x[i] } else { 0 };
            let sc = if d == 1 { ring.neg(share) } else { share };
            out.push(ring.add(dx, sc));
        }
        Ok(out)
    })
    .await?
}
