//! Fused ReLU and truncation: shares of `DReLU(x) · (⌊x/2^f⌋ - C)`, the
//! Cheetah-style "ReLU then truncate" of a fixed-point layer output
//! (Cheetah, ePrint 2022/207, §5.2, truncation with known MSB).
//!
//! The truncation of `x` assuming `msb(x) = 0` ([`crate::truncate`],
//! non-negative mode) runs *concurrently* with the DReLU comparison, on its own
//! stream, so it adds no flight; the multiplexer then selects it. Where
//! `DReLU(x) = 1` the assumption holds, and where it is 0 the wrong truncation
//! is multiplied by 0. Hence, **for every `x ∈ Z_{2^l}`** (no range
//! assumption): the output is `0` if `x < 0`, and `⌊x/2^f⌋` or `⌊x/2^f⌋ - 1` if
//! `x >= 0` (Cheetah's one-bit error; in particular `x = 0` can give `-1`).
//!
//! Learns: nothing beyond the output share. Cost per element: ReLU plus
//! `f + 1` bits and 1 ROT; 7 flights (`l = 37, m = 4`), as for ReLU alone.

use rand::rngs::ChaCha20Rng;

use crate::{
    channel::Channel,
    ctx::{Ctx, fork},
    drelu,
    error::Result,
    mux,
    pool::{RotCount, Rots},
    truncate,
};

/// ROTs for `n` fused ReLU-truncations.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    drelu::cost(ctx, n) + truncate::cost(ctx, n) + mux::cost(n)
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
        drelu::run(ch, ctx, x, rots, &mut rng_d),
        truncate::run(side, ctx, x, f, false, &mut rots_t)
    )?;
    mux::run(ch, ctx, &d, &t, rots).await
}
