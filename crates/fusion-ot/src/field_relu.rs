//! ReLU over a prime field: additive shares in `Z_p` of `max(x, 0)` for the
//! centred representative of `x` — [`crate::field_drelu`] followed by
//! [`crate::field_mux`] (CrypTFlow2, ePrint 2020/1002, §4.2; SCI's
//! `relu-field.h`).
//!
//! Exact for every `x ∈ Z_p`. **Learns:** nothing beyond the output share.
//! **Cost:** DReLU's plus the multiplexer's: `flights(DReLU) + 2` flights,
//! `2` more ROTs and `2(1 + 2η)` more bits per element. Measured for the
//! 38-bit `p` (`benches/field.rs`): 8 flights, 3366 protocol bits and 19
//! IKNP ROTs per direction, **8230 bits per ReLU** on the wire in all.
//! CrypTFlow2 states `< (3/2)·λ·(η+1) + 31·η` bits for ReLU over `Z_n`
//! (8666 for `λ = 128`, `η = 38`); see
//! `field_relu_bits_per_element_stay_below_cryptflow2s_bound`.

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
