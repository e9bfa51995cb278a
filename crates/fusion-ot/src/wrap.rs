//! The wrap bit of two private bits: additive shares modulo `2^w` of
//! `W = α ∨ β`, where `P0` holds the bit `α` and `P1` the bit `β` (one flight).
//!
//! This is the core of the known-MSB protocols (Cheetah, ePrint 2022/207,
//! §5.2): for shares `x0 + x1 = x mod 2^k` of an `x` whose most significant
//! bit is known to be 0, the sum `x0 + x1` wraps past `2^k` exactly when
//! `msb(x0) ∨ msb(x1)` ([`crate::truncate`] with `k = l`, [`crate::extend`]).
//!
//! `W = α + β - α·β`. The product is computed with an arithmetic COT
//! ([`crate::acot`]) modulo `2^w`: the ACOT sender (first half of the batch
//! `P0`, second half `P1`) sends `D = K0 - K1 + α` (`w` bits) for the product
//! `α·c` with the receiver's ROT choice `c`, and the receiver publishes
//! `δ = β ⊕ c`; then `α·β = α·δ + (1 - 2δ)·(α·c)` is linear in the shares.
//! Both messages are independent, so they share one flight.
//!
//! Learns: `δ` (uniform) and a correction masked by an unknown key: nothing.
//! Cost per element: 1 flight, 1 ROT, `w + 1` bits (both directions together).

use crate::{
    acot,
    bits::{BitReader, BitWriter},
    channel::Channel,
    ctx::{Ctx, compute, mask},
    error::Result,
    pool::{RotCount, Rots},
};

/// ROTs for `n` wrap bits.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    RotCount::new(ctx.my_sender_range(n).len(), ctx.my_receiver_range(n).len())
}

/// This party's shares modulo `2^w` (`1 <= w <= 64`) of `own_0 ∨ own_1` per
/// element, where `own` holds this party's bits (each 0 or 1). `what` names
/// the peer's message in errors.
pub(crate) async fn or_shares(
    ch: &mut Channel,
    ctx: &Ctx,
    own: Vec<u64>,
    w: u32,
    rots: &mut Rots,
    what: &'static str,
) -> Result<Vec<u64>> {
    let n = own.len();
    let (mine, theirs) = (ctx.my_sender_range(n), ctx.my_receiver_range(n));
    let s = rots.take_send(mine.len())?;
    let r = rots.take_recv(theirs.len())?;
    let (msg, own, s, r, mine, theirs) = compute(move || {
        let mut wr = BitWriter::with_capacity(mine.len() * w as usize + theirs.len());
        for (k, i) in mine.clone().enumerate() {
            wr.push(acot::sender(s.0[k], own[i], w).1, w);
        }
        for (k, i) in theirs.clone().enumerate() {
            wr.push(own[i] ^ u64::from(r.choices[k]), 1);
        }
        (wr.into_bytes(), own, s, r, mine, theirs)
    })
    .await?;
    let len = theirs.len() * w as usize + mine.len();
    let bytes = ch.exchange(&msg, len.div_ceil(8)).await?;
    compute(move || {
        let mut rd = BitReader::new(&bytes, len, what)?;
        let mw = mask(w);
        let mut prod = vec![0u64; n];
        for (k, i) in theirs.clone().enumerate() {
            let c = r.choices[k];
            let delta = (own[i] as u8) ^ c;
            let ac = acot::receiver(r.keys[k], c, rd.read(w), w);
            prod[i] = if delta == 1 {
                ac.wrapping_neg() & mw
            } else {
                ac
            };
        }
        for (k, i) in mine.clone().enumerate() {
            let delta = rd.read(1);
            let (k0, _) = acot::sender(s.0[k], 0, w);
            let ac = k0.wrapping_neg() & mw; // our share of α·c
            let t = if delta == 1 { ac.wrapping_neg() } else { ac };
            prod[i] = (own[i] * delta).wrapping_add(t) & mw;
        }
        Ok(own
            .iter()
            .zip(&prod)
            .map(|(&a, &p)| a.wrapping_sub(p) & mw)
            .collect())
    })
    .await?
}
