//! Exact truncation: shares of `⌊x / 2^f⌋` (arithmetic shift right of the
//! signed value) for **every** `x ∈ Z_{2^l}`, with no error and no range
//! assumption (the "faithful truncation" of CrypTFlow2, ePrint 2020/1002, §5.1,
//! and SiRNN; computed here with a single comparison).
//!
//! `P0` adds `2^{l-1}`, mapping signed `x` to the unsigned `x_u = x + 2^{l-1}`
//! with the same order. With `x_{u,i} = h_i·2^f + r_i`:
//! `⌊x_u / 2^f⌋ = h0 + h1 - W·2^{l-f} + C`, `W = 1{x_{u,0} + x_{u,1} >= 2^l}`,
//! `C = 1{r0 + r1 >= 2^f}`. Both are comparisons between `a = x_{u,0}` and
//! `b = 2^l - 1 - x_{u,1}`: `W = 1{a > b}` on all `l` bits and
//! `C = 1{a mod 2^f > b mod 2^f}` on the low `f` bits, which one millionaires'
//! run with a split at bit `f` delivers together ([`crate::millionaires`]).
//! [`crate::b2a`] converts both bits in one more flight, and
//! `⌊x/2^f⌋ = ⌊x_u/2^f⌋ - 2^{l-1-f}`.
//!
//! Learns: nothing beyond the output share. Cost per element (`l = 37, f = 12,
//! m = 4`): one `l`-bit comparison (10 blocks, 361 bits) plus 2 B2As (78 bits);
//! 7 flights, 57 ROTs, 439 bits.

use rand::rngs::ChaCha20Rng;

use crate::{
    b2a,
    bits::Bits,
    channel::Channel,
    ctx::{Ctx, mask},
    error::{Result, param},
    millionaires::{self, Plan},
    pool::{RotCount, Rots},
};

/// The comparison of an exact truncation by `f`.
pub(crate) fn plan(ctx: &Ctx, f: u32) -> Plan {
    Plan::new(ctx.ring.bits(), ctx.m, Some(f))
}

/// ROTs for `n` exact truncations by `f`.
pub(crate) fn cost(ctx: &Ctx, n: usize, f: u32) -> RotCount {
    if f == 0 {
        RotCount::default()
    } else {
        plan(ctx, f).cost(ctx, n) + b2a::cost(ctx, 2 * n)
    }
}

/// Shares of `⌊x / 2^f⌋`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    f: u32,
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    let ring = ctx.ring;
    let l = ring.bits();
    if f >= l {
        return Err(param(format!(
            "exact truncation by {f} bits in Z_2^{l} needs shift < {l}"
        )));
    }
    if f == 0 {
        return Ok(x.to_vec());
    }
    let n = x.len();
    let half = 1u64 << (l - 1);
    let xu: Vec<u64> = if ctx.p0() {
        x.iter().map(|&v| ring.add(v, half)).collect()
    } else {
        x.to_vec()
    };
    let inputs: Vec<u64> = if ctx.p0() {
        xu.clone()
    } else {
        xu.iter().map(|&v| !v & mask(l)).collect()
    };
    let (w, c) = millionaires::run(ch, ctx, &plan(ctx, f), inputs, rots, rng).await?;
    let c = c.unwrap_or_else(|| Bits::zeros(n));
    let arith = b2a::run(ch, ctx, &Bits::concat(&[&w, &c]), rots, rng).await?;
    let sub = if ctx.p0() { 1u64 << (l - 1 - f) } else { 0 };
    Ok((0..n)
        .map(|i| {
            let v = ring.sub(xu[i] >> f, ring.mul(arith[i], 1u64 << (l - f)));
            ring.sub(ring.add(v, arith[n + i]), sub)
        })
        .collect())
}
