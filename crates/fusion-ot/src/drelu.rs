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

use rand::rngs::ChaCha20Rng;

use crate::{
    bits::Bits,
    channel::Channel,
    ctx::{Ctx, mask},
    error::Result,
    millionaires::{self, Plan},
    pool::{RotCount, Rots},
};

/// The comparison this DReLU runs.
pub(crate) fn plan(ctx: &Ctx) -> Plan {
    Plan::new(ctx.ring.bits() - 1, ctx.m, None)
}

/// ROTs for `n` DReLUs.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    plan(ctx).cost(ctx, n)
}

/// Our comparison inputs: `x'_0` for `P0`, `2^{l-1} - 1 - x'_1` for `P1`.
pub(crate) fn comparison_inputs(ctx: &Ctx, x: &[u64]) -> Vec<u64> {
    let low = mask(ctx.ring.bits() - 1);
    if ctx.p0() {
        x.iter().map(|&v| v & low).collect()
    } else {
        x.iter().map(|&v| !v & low).collect()
    }
}

/// Our DReLU share from our input share and our carry share.
pub(crate) fn output(ctx: &Ctx, x: &[u64], carry: &Bits) -> Bits {
    let l = ctx.ring.bits();
    let p0 = ctx.p0();
    Bits::from_fn(x.len(), |i| {
        ((x[i] >> (l - 1)) & 1 == 1) ^ carry.get(i) ^ p0
    })
}

/// Shares of `1{x >= 0}`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Bits> {
    let (carry, _) =
        millionaires::run(ch, ctx, &plan(ctx), comparison_inputs(ctx, x), rots, rng).await?;
    Ok(output(ctx, x, &carry))
}
