//! Zero extension with known most significant bit: shares in `Z_{2^l}` of a
//! value `u` given as shares in `Z_{2^k}` (`k < l`), for `0 <= u < 2^{k-1}`
//! (SIRNN, Rathee et al., IEEE S&P 2021, §4.1 "zero extension", in the
//! known-MSB form of Cheetah, ePrint 2022/207, §5.2).
//!
//! For shares `a0 + a1 = u mod 2^k` read as integers in `[0, 2^k)`,
//! `a0 + a1 = u + W·2^k` with the wrap bit `W`, and since `msb(u) = 0`,
//! `W = msb(a0) ∨ msb(a1)`. [`crate::wrap`] gives shares of `W` modulo
//! `2^{l-k}` (all that `W·2^k mod 2^l` depends on), and each party outputs
//! `a_i - W_i·2^k mod 2^l`: exactly `u`, no error.
//!
//! Learns: what [`crate::wrap`] reveals, nothing. Cost per element: 1 flight,
//! 1 ROT, `l - k + 1` bits (both directions together).

use crate::{
    channel::Channel,
    ctx::Ctx,
    error::{Result, param},
    pool::{RotCount, Rots},
    wrap,
};

/// ROTs for `n` extensions.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    wrap::cost(ctx, n)
}

/// Shares in `ctx.ring` (`Z_{2^l}`) of the values shared in `Z_{2^k}` by `a`
/// (each `< 2^k`); exact for every shared value in `[0, 2^{k-1})`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    a: &[u64],
    k: u32,
    rots: &mut Rots,
) -> Result<Vec<u64>> {
    let ring = ctx.ring;
    let l = ring.bits();
    if k == 0 || k >= l {
        return Err(param(format!(
            "zero extension from Z_2^{k} to Z_2^{l} needs 1 <= k < l"
        )));
    }
    let msbs = a.iter().map(|&v| (v >> (k - 1)) & 1).collect();
    let w = wrap::or_shares(ch, ctx, msbs, l - k, rots, "extension message").await?;
    Ok(a.iter()
        .zip(&w)
        .map(|(&ai, &wi)| ring.sub(ai, wi << k))
        .collect())
}
