//! ReLU over a prime field: additive shares in `Z_p` of `max(x, 0)` for the
//! centred representative of `x` — [`crate::field_drelu`] followed by
//! [`crate::field_mux`] (CrypTFlow2, ePrint 2020/1002, §4.2; SCI's
//! `relu-field.h`).
//!
//! Exact for every `x ∈ Z_p`. **Learns:** nothing beyond the output share.
//! **Cost:** DReLU's plus the multiplexer's: `flights(DReLU) + 2` flights,
//! `2` more ROTs and `2(1 + 2η)` more bits per element.

use rand::rngs::ChaCha20Rng;

use crate::{
    bits::Bits,
    channel::Channel,
    ctx::{FieldCtx, fork},
    error::Result,
    field_drelu, field_mux,
    kk13::{Kk13Receiver, Kk13Sender},
    pool::{RotCount, Rots},
};

/// ROTs for `n` ReLUs.
pub(crate) fn cost(ctx: &FieldCtx, n: usize) -> RotCount {
    field_drelu::cost(ctx, n) + field_mux::cost(n)
}

/// Shares of `max(x, 0)` and of the DReLU bits.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &FieldCtx,
    kk: (&mut Kk13Sender, &mut Kk13Receiver),
    x: &[u64],
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<(Vec<u64>, Bits)> {
    let d = field_drelu::run(ch, ctx, kk, x, rots, rng).await?;
    let mut mrng = fork(rng);
    let y = field_mux::run(ch, ctx, &d, x, rots, &mut mrng).await?;
    Ok((y, d))
}
