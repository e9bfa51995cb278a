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
//! **The comparison skips the bits the truncation drops, and one more.** The
//! DReLU reads the window of bits `d .. l` of the shares, `d = min(f + 1, l - 2)`
//! ([`drelu`], narrow windows): a comparison on `l - 1 - d` bits instead of `l - 1`
//! (`l = 37, f = 12`: 23 bits instead of 36). The dropped bits' carry can only
//! turn `DReLU(x)` to 0 for `0 <= x < 2^d`, and can only turn it to 1 for the
//! `2^d` most negative ring elements. For `0 <= x < 2^f` the exact output
//! `⌊x/2^f⌋` is 0 anyway; for `2^f <= x < 2^(f+1)` it is 1, and 0 is the
//! one-bit error the truncation may make there in any case. So the extra bit
//! costs nothing in the error contract below, and saves one bit of the
//! comparison (about 9 bits per element at `m = 3`).
//!
//! Hence, for every `x ∈ Z_{2^l}` with `x >= -2^{l-1} + 2^d` (signed; every
//! value the engine's range contract `|x| < 2^{l-2}` allows): the output is `0`
//! if `x < 0`, and `⌊x/2^f⌋` or `⌊x/2^f⌋ - 1` if `x >= 0` (Cheetah's one-bit
//! error; in particular `0 <= x < 2^f` can give `-1` or `0`).
//!
//! **The multiplexer runs on `k = l + 1 - f` bits** (for `f >= 3`). Where
//! `DReLU(x) = 1`, the truncation `t` lies in `[-1, 2^{l-1-f})`, so `DReLU(x)·t`
//! fits in `k` signed bits with room to spare: each party reduces its share of
//! `t` mod `2^k`, the multiplexer ([`mux`]) selects in `Z_{2^k}`, `P0` adds
//! `2^{k-2}` to make the selected value lie in `[0, 2^{k-1})` (most significant
//! bit known to be 0), [`extend`] lifts it to `Z_{2^l}` exactly, and `P0`
//! subtracts `2^{k-2}` again. The multiplexer's `2(k + 1)` bits plus the
//! extension's `l - k + 1` replace the full multiplexer's `2(l + 1)`: 66
//! instead of 76 bits at `l = 37, f = 12`, for one more flight. The output is
//! the same as with the full multiplexer, for every input.
//!
//! **Inputs of known width compute in a smaller ring** (`work_bits`). When
//! the caller knows `x` fits in `b` signed bits (`|x| < 2^{b-1}`, from a
//! public magnitude bound), each party reduces its share mod `2^w`, `w = b +
//! 1`: that is a sharing of the same signed value in `Z_{2^w}`, and it meets
//! `Z_{2^w}`'s range contract `|x| < 2^{w-2}`. The comparison, the truncation
//! and the multiplexer then run in `Z_{2^w}` (`w - 1 - d` compared bits, a
//! multiplexer on `w + 1 - f` bits), and the extension lifts the result to
//! `Z_{2^l}` as above, now by `l - w + f` bits. The output contract is the
//! one above, for every `x` of the announced width; outside it the result is
//! unspecified (it still reveals nothing). At `l = 37, f = 12` and `b = 30`
//! this compares 17 bits instead of 23.
//!
//! Learns: nothing beyond the output share. Cost per element: a DReLU on
//! `l - 1 - d` bits, the multiplexer on `k` bits, the extension, and `f + 1`
//! bits and 1 ROT for the truncation; 8 flights (`l = 37, f = 12, m = 4`).

use fusion_core::ring::Ring;
use rand::rngs::ChaCha20Rng;

use crate::{
    channel::Channel,
    ctx::{Ctx, fork, mask},
    drelu::{self, Window},
    error::{Result, param},
    extend, mux,
    pool::{RotCount, Rots},
    truncate,
};

/// The DReLU window of a fused ReLU-truncation by `f`: bits
/// `min(f + 1, l - 2) .. l`.
pub(crate) fn window(ctx: &Ctx, f: u32) -> Window {
    let l = ctx.ring.bits();
    Window {
        width: l,
        drop: (f + 1).min(l.saturating_sub(2)),
    }
}

/// The multiplexer's width `k = l + 1 - f` of a fused ReLU-truncation by
/// `f`, if it is narrower than the ring by at least 2 bits (`f >= 3`; below
/// that the extension would cost as much as it saves).
pub(crate) fn narrow_width(ctx: &Ctx, f: u32) -> Option<u32> {
    let l = ctx.ring.bits();
    (f >= 3 && f < l).then(|| l + 1 - f)
}

/// The width `w` of the smaller ring `Z_{2^w}` a fused ReLU-truncation by
/// `f` of inputs known to fit in `input_bits` signed bits computes in:
/// `w = input_bits + 1` (whose range contract `|x| < 2^{w-2}` those inputs
/// meet), if it is narrower than the ring and leaves the multiplexer
/// narrower than `Z_{2^w}` (`3 <= f <= w - 3`); `None`: the whole ring.
pub(crate) fn work_bits(ctx: &Ctx, f: u32, input_bits: Option<u32>) -> Option<u32> {
    let w = input_bits?.checked_add(1)?;
    (w < ctx.ring.bits() && f >= 3 && f + 3 <= w).then_some(w)
}

/// The context the comparison, truncation and multiplexer run in: the ring
/// of [`work_bits`], or `ctx` itself.
fn work_ctx(ctx: &Ctx, f: u32, input_bits: Option<u32>) -> Result<Ctx> {
    Ok(match work_bits(ctx, f, input_bits) {
        Some(w) => Ctx {
            ring: Ring::new(w).map_err(|e| param(e.to_string()))?,
            ..*ctx
        },
        None => *ctx,
    })
}

/// ROTs for `n` fused ReLU-truncations by `f` of inputs of `input_bits`
/// signed bits (`None`: any ring element the contract allows).
pub(crate) fn cost(ctx: &Ctx, n: usize, f: u32, input_bits: Option<u32>) -> RotCount {
    let Ok(work) = work_ctx(ctx, f, input_bits) else {
        return RotCount::default();
    };
    let extension = match narrow_width(&work, f) {
        Some(_) => extend::cost(ctx, n),
        None => RotCount::default(),
    };
    drelu::cost(&work, n, window(&work, f)) + truncate::cost(&work, n) + mux::cost(n) + extension
}

/// Shares of `ReLU(x) >> f` (see the module docs for the error), for inputs
/// known to fit in `input_bits` signed bits (`None`: any ring element the
/// contract allows; see [`work_bits`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    ch: &mut Channel,
    side: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    f: u32,
    input_bits: Option<u32>,
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    truncate::check_shift(ctx, f, false)?;
    let work = work_ctx(ctx, f, input_bits)?;
    // A share reduced mod 2^w shares the same (narrow) signed value in Z_2^w.
    let reduced: Vec<u64>;
    let x = if work.ring == ctx.ring {
        x
    } else {
        reduced = x.iter().map(|&v| work.ring.reduce(v)).collect();
        &reduced
    };
    let n = x.len();
    // The truncation's few ROTs come first (a small copy); DReLU and the
    // multiplexer then take theirs from `rots` in place.
    let mut rots_t = rots.split_off(truncate::cost(&work, n))?;
    let mut rng_d = fork(rng);
    let (d, t) = tokio::try_join!(
        drelu::run(ch, &work, x, window(&work, f), rots, &mut rng_d),
        truncate::run(side, &work, x, f, false, &mut rots_t)
    )?;
    // `narrow_width` is `None` only in the caller's own ring (`work_bits`
    // picks a smaller ring only with `3 <= f <= w - 3`).
    let Some(k) = narrow_width(&work, f) else {
        return mux::run(ch, ctx, &d, &t, rots).await;
    };
    let narrow = Ctx {
        ring: Ring::new(k).map_err(|e| param(e.to_string()))?,
        ..*ctx
    };
    let tk: Vec<u64> = t.iter().map(|&v| v & mask(k)).collect();
    let mut y = mux::run(ch, &narrow, &d, &tk, rots).await?;
    let offset = 1u64 << (k - 2);
    if ctx.p0() {
        for v in &mut y {
            *v = v.wrapping_add(offset) & mask(k);
        }
    }
    let mut z = extend::run(ch, ctx, &y, k, rots).await?;
    if ctx.p0() {
        for v in &mut z {
            *v = ctx.ring.sub(*v, offset);
        }
    }
    Ok(z)
}
