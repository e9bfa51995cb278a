//! ReLU: additive shares of `max(x, 0) = DReLU(x)·x` — [`crate::drelu`]
//! followed by [`crate::mux`] (CrypTFlow2, ePrint 2020/1002, §4.1).
//!
//! Exact for every `x ∈ Z_{2^l}` (signed interpretation) with the full
//! DReLU window; with a narrow one ([`drelu`], narrow windows), exact on the window's
//! range (the multiplexer always works on the whole `x`). Learns nothing
//! beyond the output share. Cost per element (`l = 37, m = 4`): 7 flights,
//! 54 ROTs, `348 + 76 = 424` bits (both directions together); `l = 64`:
//! 7 flights, 95 ROTs, `625 + 130 = 755` bits.

use rand::rngs::ChaCha20Rng;

use crate::{
    bits::Bits,
    channel::Channel,
    ctx::Ctx,
    drelu::{self, Window},
    error::Result,
    mux,
    pool::{RotCount, Rots},
};

/// ROTs for `n` ReLUs.
pub(crate) fn cost(ctx: &Ctx, n: usize, win: Window) -> RotCount {
    drelu::cost(ctx, n, win) + mux::cost(n)
}

/// Shares of `max(x, 0)` and of the DReLU bits, the sign read through `win`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    win: Window,
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<(Vec<u64>, Bits)> {
    let d = drelu::run(ch, ctx, x, win, rots, rng).await?;
    let y = mux::run(ch, ctx, &d, x, rots).await?;
    Ok((y, d))
}
