//! Fused ReLU and truncation over a prime field: additive shares in `Z_p` of
//! `⌊max(x, 0) / 2^f⌋` for the centred representative of a shared `x`,
//! **exactly, for every `x ∈ Z_p`**.
//!
//! SCI's field ReLU (`NonLinear/relu-field.h`) has no fused truncation (the
//! SCI_HE networks run ReLU and the division separately); this fusion is
//! ours. It rests on two observations:
//!
//! - DReLU ([`crate::field_drelu`]) already computes the wrap
//!   `w = 1{x_0 + x_1 >= p}` of the shares, and truncation
//!   ([`crate::field_truncate`]) needs exactly that wrap when it is run
//!   without the offset `K`.
//! - For `x >= 0` the integer `z = x_0 + x_1 - w·p` *is* `x`, so the
//!   truncation's conversion gives `⌊x/2^f⌋` exactly with no range
//!   assumption; for `x < 0` it gives something else, which the multiplexer
//!   by `DReLU(x)` zeroes: `⌊max(x,0)/2^f⌋ = DReLU(x)·⌊z/2^f⌋`.
//!
//! Steps: one [`crate::field_millionaires`] call with four thresholds
//! (wrap and half-way, `⌈log2 p⌉` bits; the two carries, `f` bits; shared
//! leaf OTs), the 1-of-8 KK13 conversion of `field_truncate`, then the
//! multiplexer [`crate::field_mux`] of `DReLU(x)` with `⌊z/2^f⌋`.
//!
//! **Learns:** nothing beyond the output share. **Cost** per element: the
//! DReLU comparison plus the two `f`-bit carry trees (2 IKNP ROTs per node)
//! and their table bits, one 1-of-8 KK13 OT (`256 + 8η` bits) and the
//! multiplexer (`2(1 + 2η)` bits, 2 ROTs); flights: `2 + ⌈log2⌈η/4⌉⌉ + 2 + 2`
//! (10 for a 38-bit `p`, against 16 for ReLU then truncation). Measured
//! for the 38-bit `p`, `f = 12` (`benches/field.rs`): 4102 protocol bits and
//! 23 IKNP ROTs per direction, 9990 bits per element in all (ReLU then
//! truncation: 8230 + 6950 = 15180).

use rand::rngs::ChaCha20Rng;

use crate::{
    channel::Channel,
    ctx::{FieldCtx, fork},
    error::Result,
    field_drelu,
    field_millionaires::{self, Plan},
    field_mux, field_truncate,
    kk13::{Kk13Receiver, Kk13Sender},
    pool::{RotCount, Rots},
};

/// The comparison: wrap, half-way, carry, carry'.
pub(crate) fn plan(ctx: &FieldCtx, f: u32) -> Plan {
    Plan::new(&[ctx.w(), ctx.w(), f, f], ctx.m)
}

/// ROTs for `n` fused ReLU-truncations.
pub(crate) fn cost(ctx: &FieldCtx, n: usize, f: u32) -> RotCount {
    plan(ctx, f).cost(n) + field_mux::cost(n)
}

/// Shares of `⌊max(x, 0) / 2^f⌋`, `f >= 1`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &FieldCtx,
    kk: (&mut Kk13Sender, &mut Kk13Receiver),
    x: &[u64],
    f: u32,
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    let n = x.len();
    let dr = field_drelu::thresholds(ctx, x);
    let th: Vec<u64> = x
        .iter()
        .enumerate()
        .flat_map(|(i, &b)| {
            let t = field_truncate::thresholds(ctx, b, f);
            [dr[2 * i], dr[2 * i + 1], t[1], t[2]]
        })
        .collect();
    let (snd, rcv) = kk;
    let half = n.div_ceil(2);
    let c = field_millionaires::run(
        ch,
        ctx.p0(),
        half,
        &plan(ctx, f),
        (&mut *snd, &mut *rcv),
        x,
        &th,
        rots,
        rng,
    )
    .await?;
    let d = field_drelu::output(ctx, x, &c[0], &c[1]);
    let mut crng = fork(rng);
    let t = field_truncate::combine(ch, ctx, (snd, rcv), x, f, [&c[0], &c[2], &c[3]], &mut crng)
        .await?;
    let mut mrng = fork(rng);
    field_mux::run(ch, ctx, &d, &t, rots, &mut mrng).await
}
