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
//! `W·2^{l-f} mod 2^l` only depends on `W mod 2^f`, so the arithmetic shares
//! of `W` are computed mod `2^f` ([`crate::wrap`]).
//!
//! Learns: `δ` (uniform) and a correction masked by an unknown key: nothing.
//! Cost per element: 1 flight, 1 ROT, `f + 1` bits (both directions together).

use crate::{
    channel::Channel,
    ctx::Ctx,
    error::{Result, param},
    pool::{RotCount, Rots},
    wrap,
};

/// ROTs for `n` truncations.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    wrap::cost(ctx, n)
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
    let ring = ctx.ring;
    let l = ring.bits();
    let f = shift;
    if f == 0 {
        return Ok(x.to_vec());
    }
    let p0 = ctx.p0();
    let xs: Vec<u64> = if offset && p0 {
        x.iter().map(|&v| ring.add(v, 1u64 << (l - 2))).collect()
    } else {
        x.to_vec()
    };
    let msbs = xs.iter().map(|&v| (v >> (l - 1)) & 1).collect();
    let w = wrap::or_shares(ch, ctx, msbs, f, rots, "truncation message").await?;
    let sub = if offset && p0 { 1u64 << (l - 2 - f) } else { 0 };
    Ok(xs
        .iter()
        .zip(&w)
        .map(|(&xi, &wi)| ring.sub(ring.sub(xi >> f, wi.wrapping_shl(l - f)), sub))
        .collect())
}
