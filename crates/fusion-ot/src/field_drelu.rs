//! DReLU over a prime field: XOR shares of `1{x ≤ (p-1)/2}` for an
//! additively shared `x = x_0 + x_1 mod p`, i.e. of `1{x >= 0}` for the
//! centred representative of `x` (CrypTFlow2, ePrint 2020/1002, §4.2,
//! "DReLU for general `Z_n`", Algorithm 3; SCI's `NonLinear/relu-field.h`).
//!
//! **Comparisons used.** Write `a` for the share of the element's KK13
//! receiver `R` and `b` for the sender `S`'s share (`R = P0` for the first
//! half of a batch, `P1` for the second; the formulas are symmetric), both in
//! `[0, p)`, `h = (p-1)/2`. Over the integers `a + b ∈ [0, 2p-2]`, and with
//!
//! - `c_1 = 1{a + b > h}`, `c_2 = 1{a + b > p - 1}` (the wrap of `x_0 + x_1`),
//!   `c_3 = 1{a + b > p + h}`,
//!
//! `x` is negative (`x > h`) iff `(c_1 ∧ ¬c_2) ∨ c_3`; since
//! `c_3 ≤ c_2 ≤ c_1` this is `c_1 ⊕ c_2 ⊕ c_3`. `S` knows which of `c_1`,
//! `c_3` is constant: if `b ≤ h` then `c_3 = 0` and `c_1 = 1{a > h - b}`; if
//! `b > h` then `c_1 = 1` and `c_3 = 1{a > p + h - b}`. In both cases
//! `c_1 ⊕ c_3 = 1{b > h} ⊕ 1{a > (h - b) mod p}`. So DReLU takes **two**
//! `⌈log2 p⌉`-bit comparisons of `R`'s `a` against `S`'s thresholds
//! `v_wrap = p - 1 - b` and `v_half = (h - b) mod p`, which share their leaf
//! OTs ([`crate::field_millionaires`]):
//!
//! `DReLU(x) = 1 ⊕ 1{b > h} ⊕ 1{a > p-1-b} ⊕ 1{a > (h-b) mod p}`
//!
//! (`P0` adds the constant 1, `S` its local bit `1{b > h}`). Exact for every
//! `x ∈ Z_p`; no range assumption.
//!
//! **Comparison with SCI** (`NonLinear/drelu-field.h`): SCI also runs two
//! comparisons that share their leaf KKOTs (Bob's digits against Alice's
//! two thresholds, on `⌈log2 p⌉ + 1` bits, with `(p-1)/2` added to both
//! sides), always with Alice as KK13 sender, and then combines the wrap and
//! the half-way bit with a further 1-of-4 KKOT (`256 + 4` bits, 2 more
//! flights). Here the XOR identity above needs no combination step, the
//! comparisons are on `⌈log2 p⌉` bits, and the sender role alternates
//! between the halves of a batch (both directions carry equal load).
//!
//! **Learns:** nothing beyond the output share. **Cost** (`p` of `w` bits,
//! `m = 4`): the comparison of [`crate::field_millionaires`] with two
//! `w`-bit thresholds: `q = ceil(w/4)` KK13 OTs (`256q` bits), tables of
//! `16·4` bits per full block (`16·2` for block 0), `2(q-1)` AND nodes
//! (2 IKNP ROTs each) and their openings; 6 flights for `w = 38`. Measured
//! for the 38-bit `p` (`benches/field.rs`): 3212 protocol bits and 18 IKNP
//! ROTs per direction per element, i.e. 7820 bits per element on the wire
//! with the IKNP traffic (`2·18·128`), equal to the analytic formula.

use rand::rngs::ChaCha20Rng;

use crate::{
    bits::Bits,
    channel::Channel,
    ctx::FieldCtx,
    error::Result,
    field_millionaires::{self, Plan},
    kk13::{Kk13Receiver, Kk13Sender},
    pool::{RotCount, Rots},
};

/// The comparison DReLU runs.
pub(crate) fn plan(ctx: &FieldCtx) -> Plan {
    Plan::new(&[ctx.w(), ctx.w()], ctx.m)
}

/// ROTs for `n` DReLUs.
pub(crate) fn cost(ctx: &FieldCtx, n: usize) -> RotCount {
    plan(ctx).cost(n)
}

/// Our thresholds as a possible sender: `p - 1 - b`, `(h - b) mod p`.
pub(crate) fn thresholds(ctx: &FieldCtx, x: &[u64]) -> Vec<u64> {
    let f = ctx.field;
    let h = ctx.half();
    x.iter()
        .flat_map(|&b| [f.modulus() - 1 - b, f.sub(h, b)])
        .collect()
}

/// Shares of `1{x >= 0}` (centred).
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &FieldCtx,
    kk: (&mut Kk13Sender, &mut Kk13Receiver),
    x: &[u64],
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Bits> {
    let c = field_millionaires::run(
        ch,
        ctx.p0(),
        x.len().div_ceil(2),
        &plan(ctx),
        kk,
        x,
        &thresholds(ctx, x),
        rots,
        rng,
    )
    .await?;
    Ok(output(ctx, x, &c[0], &c[1]))
}

/// Our DReLU share from the wrap and half-way comparison shares of a batch
/// (`P0` receiving for the first half).
pub(crate) fn output(ctx: &FieldCtx, x: &[u64], wrap: &Bits, halfway: &Bits) -> Bits {
    let n = x.len();
    let h = ctx.half();
    let half = n.div_ceil(2);
    let p0 = ctx.p0();
    Bits::from_fn(n, |i| {
        let sender = if p0 { i >= half } else { i < half };
        // b > h, branch-free in b: (h - b) wraps.
        let big = (h.wrapping_sub(x[i]) >> 63) == 1;
        wrap.get(i) ^ halfway.get(i) ^ (sender & big) ^ p0
    })
}
