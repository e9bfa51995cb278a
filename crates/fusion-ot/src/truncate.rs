//! Truncation by `f` bits with a one-bit error, one flight (Cheetah, ePrint
//! 2022/207, §5.2 "truncation with known most significant bit" and its
//! application to bounded inputs).
//!
//! For `x = x0 + x1 mod 2^l` read as unsigned, write `x_i = h_i·2^f + r_i`. Then
//! `floor(x / 2^f) = h0 + h1 - W·2^{l-f} + C`, with the wrap bit
//! `W = 1{x0 + x1 >= 2^l}` and the carry `C = 1{r0 + r1 >= 2^f}`.
//! If `msb(x) = 0` is known, `W = msb(x0) ∨ msb(x1)`. This protocol computes
//! shares of `W` exactly and drops `C`: the output is
//! `floor(x / 2^f) - C`, so it is **exact or one less** (`C ∈ {0, 1}`).
//!
//! Two entry points:
//!
//! - *known non-negative* (`offset = false`): requires `0 <= x < 2^{l-1}`
//!   (e.g. a ReLU output); result `∈ {⌊x/2^f⌋ - 1, ⌊x/2^f⌋}`.
//! - *bounded signed* (`offset = true`): requires `-2^{l-2} <= x < 2^{l-2}`;
//!   `P0` adds `2^{l-2}` (making the MSB known to be 0), truncates, and
//!   subtracts `2^{l-2-f}`; result `∈ {⌊x/2^f⌋ - 1, ⌊x/2^f⌋}` (floor = arithmetic
//!   shift right). Outside the range the output is wrong by about `2^{l-f}`.
//!
//! `W·2^{l-f} mod 2^l` only depends on `W mod 2^f`, so the arithmetic shares of
//! `W = α + β - α·β` (`α`, `β` the parties' MSBs) are computed mod `2^f`: the
//! ACOT sender (first half of the batch `P0`, second half `P1`) sends
//! `D = K0 - K1 + α` (f bits) for the product `α·c` with the receiver's ROT
//! choice `c`, and the receiver publishes `δ = β ⊕ c`; then
//! `α·β = α·δ + (1 - 2δ)·(α·c)` is linear in the shares. Both messages are
//! independent, so they share one flight.
//!
//! Learns: `δ` (uniform) and a correction masked by an unknown key: nothing.
//! Cost per element: 1 flight, 1 ROT, `f + 1` bits (both directions together).

use crate::{
    acot,
    bits::{BitReader, BitWriter},
    channel::Channel,
    ctx::{Ctx, compute, mask},
    error::{Result, param},
    pool::{RotCount, Rots},
};

/// ROTs for `n` truncations.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    RotCount::new(ctx.my_sender_range(n).len(), ctx.my_receiver_range(n).len())
}

/// Checks `shift` for the chosen mode.
pub(crate) fn check_shift(ctx: &Ctx, shift: u32, offset: bool) -> Result<()> {
    let l = ctx.ring.bits();
    let max = if offset {
        l.saturating_sub(2)
    } else {
        l.saturating_sub(1)
    };
    if shift > max {
        return Err(param(format!(
            "truncation by {shift} bits in Z_2^{l} needs shift <= {max} ({})",
            if offset {
                "bounded signed input"
            } else {
                "non-negative input"
            }
        )));
    }
    Ok(())
}

/// Shares of `x >> shift` (see the module docs for the error and range).
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    shift: u32,
    offset: bool,
    rots: &mut Rots,
) -> Result<Vec<u64>> {
    check_shift(ctx, shift, offset)?;
    let n = x.len();
    let ring = ctx.ring;
    let l = ring.bits();
    let f = shift;
    if f == 0 {
        return Ok(x.to_vec());
    }
    let p0 = ctx.p0();
    let (mine, theirs) = (ctx.my_sender_range(n), ctx.my_receiver_range(n));
    let s = rots.take_send(mine.len())?;
    let r = rots.take_recv(theirs.len())?;
    let xs: Vec<u64> = if offset && p0 {
        x.iter().map(|&v| ring.add(v, 1u64 << (l - 2))).collect()
    } else {
        x.to_vec()
    };
    let (msg, xs, s, r, mine, theirs) = compute(move || {
        let mut wr = BitWriter::with_capacity(mine.len() * f as usize + theirs.len());
        for (k, i) in mine.clone().enumerate() {
            let alpha = (xs[i] >> (l - 1)) & 1;
            wr.push(acot::sender(s.0[k], alpha, f).1, f);
        }
        for (k, i) in theirs.clone().enumerate() {
            let beta = ((xs[i] >> (l - 1)) & 1) as u8;
            wr.push(u64::from(beta ^ r.choices[k]), 1);
        }
        (wr.into_bytes(), xs, s, r, mine, theirs)
    })
    .await?;
    let len = theirs.len() * f as usize + mine.len();
    let bytes = ch.exchange(&msg, len.div_ceil(8)).await?;
    compute(move || {
        let mut rd = BitReader::new(&bytes, len, "truncation message")?;
        let mf = mask(f);
        let mut prod = vec![0u64; n];
        for (k, i) in theirs.clone().enumerate() {
            let beta = ((xs[i] >> (l - 1)) & 1) as u8;
            let c = r.choices[k];
            let delta = beta ^ c;
            let ac = acot::receiver(r.keys[k], c, rd.read(f), f);
            prod[i] = if delta == 1 {
                ac.wrapping_neg() & mf
            } else {
                ac
            };
        }
        for (k, i) in mine.clone().enumerate() {
            let alpha = (xs[i] >> (l - 1)) & 1;
            let delta = rd.read(1);
            let (k0, _) = acot::sender(s.0[k], 0, f);
            let ac = k0.wrapping_neg() & mf; // our share of α·c
            let t = if delta == 1 { ac.wrapping_neg() } else { ac };
            prod[i] = (alpha * delta).wrapping_add(t) & mf;
        }
        let sub = if offset && p0 { 1u64 << (l - 2 - f) } else { 0 };
        Ok(xs
            .iter()
            .zip(&prod)
            .map(|(&xi, &pi)| {
                let own = (xi >> (l - 1)) & 1;
                let w = own.wrapping_sub(pi) & mf;
                ring.sub(ring.sub(xi >> f, w.wrapping_shl(l - f)), sub)
            })
            .collect())
    })
    .await?
}
