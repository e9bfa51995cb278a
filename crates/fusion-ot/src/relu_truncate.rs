//! Fused ReLU and truncation: shares of `DReLU(x) · (⌊x/2^f⌋ - C)`, the
//! Cheetah-style "ReLU then truncate" of a fixed-point layer output
//! (Cheetah, ePrint 2022/207, §5.2, truncation with known MSB).
//!
//! The truncation of `x` assuming `msb(x) = 0` ([`crate::truncate`],
//! non-negative mode) runs *concurrently* with the DReLU comparison, on its own
//! stream, so it adds no flight; the multiplexer then selects it. Where
//! `DReLU(x) = 1` the assumption holds, and where it is 0 the wrong truncation
//! is multiplied by 0.
//!
//! **The comparison skips the bits the truncation drops.** The DReLU reads the
//! window of bits `d .. l` of the shares, `d = min(f, l - 2)`
//! ([`drelu`], narrow windows): a comparison on `l - 1 - d` bits instead of `l - 1`
//! (`l = 37, f = 12`: 24 bits instead of 36, about a third fewer bits and
//! ROTs). The dropped bits' carry can only turn `DReLU(x)` to 0 for
//! `0 <= x < 2^d`, where the exact output `⌊x/2^f⌋` is 0 anyway, and can only
//! turn it to 1 for the `2^d` most negative ring elements.
//!
//! Hence, for every `x ∈ Z_{2^l}` with `x >= -2^{l-1} + 2^d` (signed; every
//! value the engine's range contract `|x| < 2^{l-2}` allows): the output is `0`
//! if `x < 0`, and `⌊x/2^f⌋` or `⌊x/2^f⌋ - 1` if `x >= 0` (Cheetah's one-bit
//! error; in particular `0 <= x < 2^f` can give `-1` or `0`).
//!
//! Learns: nothing beyond the output share. Cost per element: a DReLU on
//! `l - 1 - d` bits, the multiplexer, and `f + 1` bits and 1 ROT; 6 flights
//! (`l = 37, f = 12, m = 4`).

use rand::rngs::ChaCha20Rng;

use crate::{
    channel::Channel,
    ctx::{Ctx, fork},
    drelu::{self, Window},
    error::Result,
    mux,
    pool::{RotCount, Rots},
    truncate,
};

/// The DReLU window of a fused ReLU-truncation by `f`: bits
/// `min(f, l - 2) .. l`.
pub(crate) fn window(ctx: &Ctx, f: u32) -> Window {
    let l = ctx.ring.bits();
    Window {
        width: l,
        drop: f.min(l.saturating_sub(2)),
    }
}

/// ROTs for `n` fused ReLU-truncations by `f`.
pub(crate) fn cost(ctx: &Ctx, n: usize, f: u32) -> RotCount {
    drelu::cost(ctx, n, window(ctx, f)) + truncate::cost(ctx, n) + mux::cost(n)
}

/// Shares of `ReLU(x) >> f` (see the module docs for the error).
pub(crate) async fn run(
    ch: &mut Channel,
    side: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    f: u32,
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    truncate::check_shift(ctx, f, false)?;
    let n = x.len();
    // The truncation's few ROTs come first (a small copy); DReLU and the
    // multiplexer then take theirs from `rots` in place.
    let mut rots_t = rots.split_off(truncate::cost(ctx, n))?;
    let mut rng_d = fork(rng);
    let (d, t) = tokio::try_join!(
        drelu::run(ch, ctx, x, window(ctx, f), rots, &mut rng_d),
        truncate::run(side, ctx, x, f, false, &mut rots_t)
    )?;
    mux::run(ch, ctx, &d, &t, rots).await
}
