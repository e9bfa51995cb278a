//! DReLU: XOR shares of `1{x >= 0}` for an additively shared `x ∈ Z_{2^l}`
//! (signed interpretation), CrypTFlow2 (ePrint 2020/1002) §4.1, Algorithm 2.
//!
//! With `x = x0 + x1 mod 2^l` and `x'_i = x_i mod 2^{l-1}`:
//! `msb(x) = msb(x0) ⊕ msb(x1) ⊕ carry`, where
//! `carry = 1{x'_0 + x'_1 >= 2^{l-1}} = 1{x'_0 > 2^{l-1} - 1 - x'_1}` is one
//! `(l-1)`-bit millionaires' comparison ([`crate::millionaires`]) with `P0`
//! holding `a = x'_0` and `P1` holding `b = 2^{l-1} - 1 - x'_1`. Then
//! `DReLU(x) = 1 ⊕ msb(x)`: `P0` outputs `1 ⊕ msb(x0) ⊕ carry_0`, `P1`
//! outputs `msb(x1) ⊕ carry_1`.
//!
//! Exact for every `x ∈ Z_{2^l}` (no range assumption): `DReLU(x) = 1` iff
//! `x < 2^{l-1}` as an unsigned ring element.
//!
//! Learns: nothing beyond the output share. Cost: one millionaires' comparison
//! on `l - 1` bits (`l = 37, m = 4`: 6 flights, 52 ROTs, 348 bits; `l = 64`:
//! 6 flights, 93 ROTs, 625 bits).
//!
//! # Narrow windows: fewer compared bits for bounded inputs
//!
//! The comparison may read only a window of the shares: bits
//! `d .. w` (`d` = `drop`, `w` = `width`). Each party reduces its share modulo
//! `2^w` and shifts it right by `d`, both locally; the reduced shares
//! `v_i = (x_i mod 2^w) >> d` satisfy
//! `v_0 + v_1 = ((x mod 2^w) >> d) - c (mod 2^{w-d})` with a carry
//! `c ∈ {0, 1}` from the dropped bits, and the protocol above runs on them in
//! `Z_{2^{w-d}}` (one comparison on `w - d - 1` bits). The result is `DReLU(x)`
//! for every `x` in `[-2^{w-1} + 2^d, 2^{w-1})` (signed), except that
//! `0 <= x < 2^d` may give 0:
//!
//! * for `0 <= x < 2^{w-1}`, `(x mod 2^w) >> d = ⌊x/2^d⌋ < 2^{w-d-1}`, and
//!   subtracting `c` sets the top bit only if `⌊x/2^d⌋ = 0`;
//! * for `-2^{w-1} <= x < 0`, `(x mod 2^w) >> d >= 2^{w-d-1}`, and subtracting
//!   `c` clears the top bit only if it equals `2^{w-d-1}`, i.e.
//!   `x < -2^{w-1} + 2^d`.
//!
//! This is the ring-narrowing of CrypTFlow2/SIRNN-style bit-width reduction
//! applied to the comparison only (the outputs stay in `Z_{2^l}`). Two uses:
//! a fused ReLU-truncation by `f` may drop `d = f + 1` bits, because there
//! `0 <= x < 2^(f+1)` has `⌊x/2^f⌋ <= 1` and an output of 0 is within the
//! truncation's one-bit error ([`crate::relu_truncate`]); and a
//! comparison of values known to fit in `k` signed bits needs `w = k` only
//! ([`crate::OtEngine::max_pool_bounded`]). The full window `w = l, d = 0` is
//! the exact protocol above.

use rand::rngs::ChaCha20Rng;

use crate::{
    bits::Bits,
    channel::Channel,
    ctx::{Ctx, mask},
    error::{Result, param},
    millionaires::{self, Plan},
    pool::{RotCount, Rots},
};

/// The bits `drop .. width` of the shares that the comparison reads (see the
/// module docs for what each window computes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Shares are reduced modulo `2^width`.
    pub width: u32,
    /// Low bits dropped after the reduction.
    pub drop: u32,
}

impl Window {
    /// The whole ring: exact for every element.
    pub(crate) fn full(ctx: &Ctx) -> Window {
        Window {
            width: ctx.ring.bits(),
            drop: 0,
        }
    }

    /// A validated window: `2 <= width - drop`, `width <= l`.
    pub(crate) fn new(ctx: &Ctx, width: u32, drop: u32) -> Result<Window> {
        if width > ctx.ring.bits() || drop.saturating_add(2) > width {
            return Err(param(format!(
                "DReLU window: width {width}, drop {drop} (need drop + 2 <= width <= {})",
                ctx.ring.bits()
            )));
        }
        Ok(Window { width, drop })
    }

    /// Bits of the reduced shares (`width - drop`).
    fn bits(&self) -> u32 {
        self.width - self.drop
    }

    /// Our reduced share `(x mod 2^width) >> drop`.
    fn reduce(&self, v: u64) -> u64 {
        (v & mask(self.width)) >> self.drop
    }
}

/// The comparison this DReLU runs.
pub(crate) fn plan(ctx: &Ctx, win: Window) -> Plan {
    Plan::new(win.bits() - 1, ctx.m, None)
}

/// ROTs for `n` DReLUs.
pub(crate) fn cost(ctx: &Ctx, n: usize, win: Window) -> RotCount {
    plan(ctx, win).cost(ctx, n)
}

/// Our comparison inputs: `v'_0` for `P0`, `2^{k-1} - 1 - v'_1` for `P1`,
/// where `v'_i` is the reduced share without its top bit and `k` its width.
pub(crate) fn comparison_inputs(ctx: &Ctx, x: &[u64], win: Window) -> Vec<u64> {
    let low = mask(win.bits() - 1);
    if ctx.p0() {
        x.iter().map(|&v| win.reduce(v) & low).collect()
    } else {
        x.iter().map(|&v| !win.reduce(v) & low).collect()
    }
}

/// Our DReLU share from our input share and our carry share.
pub(crate) fn output(ctx: &Ctx, x: &[u64], win: Window, carry: &Bits) -> Bits {
    let top = win.bits() - 1;
    let p0 = ctx.p0();
    Bits::from_fn(x.len(), |i| {
        ((win.reduce(x[i]) >> top) & 1 == 1) ^ carry.get(i) ^ p0
    })
}

/// Shares of `1{x >= 0}`, read through `win`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    win: Window,
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Bits> {
    let (carry, _) = millionaires::run(
        ch,
        ctx,
        &plan(ctx, win),
        comparison_inputs(ctx, x, win),
        rots,
        rng,
    )
    .await?;
    Ok(output(ctx, x, win, &carry))
}
