//! Truncation over a prime field: additive shares in `Z_p` of
//! `⌊x / 2^f⌋` (floor, i.e. arithmetic shift right) of the centred
//! representative of a shared `x`, **exactly**, for every
//! `x ∈ [-K, (p-1)/2]` with `K = 2^f·⌊h / 2^f⌋`, `h = (p-1)/2` (all but the
//! fewer than `2^f` most negative elements; with `p > 2^37` this covers every
//! `|x| < 2^36` at `f <= 36`).
//!
//! **Construction** (ours, after the division protocol of CrypTFlow2,
//! ePrint 2020/1002, §5, Algorithm 5 / Theorem 5.1, which corrects the local
//! division of the shares by the wrap bit and a comparison of the
//! remainders; SCI_HE truncates field shares the same way):
//!
//! 1. Shift into `[0, p)`: `P0` adds `K`, so `z = x + K ∈ [0, p)` as an
//!    integer, and `⌊x/2^f⌋ = ⌊z/2^f⌋ - K/2^f` because `2^f | K`.
//! 2. With `a` the share of the element's KK13 receiver `R` and `b` the
//!    sender `S`'s (`P0` is `R` for the first half of a batch), `z = a + b -
//!    w·p` with the wrap `w = 1{a > p - 1 - b}`. If `w = 0`, `⌊z/2^f⌋ =
//!    ⌊a/2^f⌋ + ⌊b/2^f⌋ + c` with the carry `c = 1{a mod 2^f > 2^f - 1 - (b mod
//!    2^f)}`; if `w = 1`, the same with `b - p` in place of `b`
//!    (`⌊(b-p)/2^f⌋` and `(b - p) mod 2^f` are `S`'s to compute), carry `c'`.
//!    The three comparisons run as one [`crate::field_millionaires`] call
//!    with thresholds `p-1-b` (`⌈log2 p⌉` bits), `2^f-1-(b mod 2^f)` and
//!    `2^f-1-((b-p) mod 2^f)` (`f` bits), which share their leaf OTs.
//! 3. So `⌊z/2^f⌋ = ⌊a/2^f⌋ + ⌊b/2^f⌋ + g(w, c, c')` with
//!    `g = (1-w)·c + w·(δ + c')`, `δ = ⌊(b-p)/2^f⌋ - ⌊b/2^f⌋` known to `S`.
//!    The bits are XOR-shared; one 1-of-8 chosen-message KK13 OT of
//!    `η = ⌈log2 p⌉`-bit messages converts `g` to additive shares: `S`
//!    offers `g(k ⊕ (w_S, c_S, c'_S)) + ρ` for each `k < 8`, `R` chooses with
//!    `(w_R, c_R, c'_R)`, and `S` keeps `-ρ`.
//!
//! **Error:** none inside the range (exact floor). Outside it (`x < -K`)
//! the result is off by about `p/2^f`.
//!
//! **Learns:** nothing beyond the output share. **Cost** per element:
//! the comparison (`⌈w/4⌉` KK13 OTs for `p` of `w` bits; tables for three
//! thresholds in the low `f` bits; AND trees for one `w`-bit and two `f`-bit
//! comparisons, 2 IKNP ROTs per node) plus one 1-of-8 KK13 OT
//! (`256 + 8η` bits); flights: `2 + ⌈log2⌈w/4⌉⌉ + 2` (8 for a 38-bit `p`).
//! Measured for the 38-bit `p`, `f = 12` (`benches/field.rs`): 3622
//! protocol bits and 13 IKNP ROTs per direction, 6950 bits per element on
//! the wire in all.

use rand::rngs::ChaCha20Rng;

use crate::{
    bits::Bits,
    channel::Channel,
    ctx::{FieldCtx, mask},
    error::{Error, Result, param},
    field_millionaires::{self, Plan},
    kk13::{self, Kk13Receiver, Kk13Sender, Table},
    pool::{RotCount, Rots},
};

/// Checks the shift: `1 <= f < ⌈log2 p⌉ - 1`.
pub(crate) fn check_shift(ctx: &FieldCtx, f: u32) -> Result<()> {
    if f + 1 >= ctx.w() {
        return Err(param(format!(
            "field truncation needs shift < {} for a {}-bit prime",
            ctx.w() - 1,
            ctx.w()
        )));
    }
    Ok(())
}

/// `K = 2^f·⌊h/2^f⌋`.
pub(crate) fn offset(ctx: &FieldCtx, f: u32) -> u64 {
    (ctx.half() >> f) << f
}

/// The comparison truncation by `f` runs.
pub(crate) fn plan(ctx: &FieldCtx, f: u32) -> Plan {
    Plan::new(&[ctx.w(), f, f], ctx.m)
}

/// ROTs for `n` truncations.
pub(crate) fn cost(ctx: &FieldCtx, n: usize, f: u32) -> RotCount {
    plan(ctx, f).cost(n)
}

/// The sender's truncation thresholds for its share `b` of `z`: the wrap
/// `p - 1 - b` and the two carries `2^f - 1 - (b mod 2^f)`,
/// `2^f - 1 - ((b - p) mod 2^f)`.
pub(crate) fn thresholds(ctx: &FieldCtx, b: u64, f: u32) -> [u64; 3] {
    let p = ctx.field.modulus();
    let mf = mask(f);
    [p - 1 - b, mf - (b & mf), mf - (b.wrapping_sub(p) & mf)]
}

/// Shares of `⌊z / 2^f⌋` for the integer `z = z_0 + z_1 - w·p ∈ [0, p)`, from
/// our share `z` and the XOR-shared wrap `w` and carries `c`, `c'` (step 3:
/// one 1-of-8 KK13 OT per element, `P0` receiving for the first half).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn combine(
    ch: &mut Channel,
    ctx: &FieldCtx,
    kk: (&mut Kk13Sender, &mut Kk13Receiver),
    z: &[u64],
    f: u32,
    bits: [&Bits; 3],
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    let n = z.len();
    let fld = ctx.field;
    let p = fld.modulus();
    let h = n.div_ceil(2);
    let (recv, send) = if ctx.p0() { (0..h, h..n) } else { (h..n, 0..h) };
    let [cw, cc, cp] = bits;
    let choices: Vec<u8> = recv
        .clone()
        .map(|i| cw.get_u8(i) | (cc.get_u8(i) << 1) | (cp.get_u8(i) << 2))
        .collect();
    let shape = Table { n: 8, t: ctx.w() };
    let mut msgs = Vec::with_capacity(send.len() * 8);
    let mut rho = Vec::with_capacity(send.len());
    for i in send.clone() {
        let b = z[i];
        let q = b >> f;
        // δ = ⌊(b - p)/2^f⌋ - ⌊b/2^f⌋ ∈ [-(p >> f) - 1, -1] (p < 2^62, so no
        // overflow), as the field element p - |δ| (|δ| < p since f >= 1).
        let delta = fld.neg((q as i64 - ((b as i64 - p as i64) >> f)) as u64);
        let r = fld.random(rng);
        let mine = (cw.get_u8(i), cc.get_u8(i), cp.get_u8(i));
        for k in 0..8u8 {
            let w = u64::from((k & 1) ^ mine.0);
            let c = u64::from(((k >> 1) & 1) ^ mine.1);
            let c2 = u64::from(((k >> 2) & 1) ^ mine.2);
            // g = (1-w)·c + w·(δ + c'), branch-free.
            let g = fld.add((w ^ 1) * c, w.wrapping_neg() & fld.add(delta, c2));
            msgs.push(fld.add(g, r));
        }
        rho.push(r);
    }
    let (snd, rcv) = kk;
    let got = kk13::both_ways(
        ch,
        snd,
        rcv,
        choices,
        &vec![shape; recv.len()],
        &vec![shape; send.len()],
        &msgs,
    )
    .await?;
    if got.len() != recv.len() {
        return Err(Error::Internal("field truncation: OT output count"));
    }
    Ok((0..n)
        .map(|i| {
            let q = z[i] >> f;
            if recv.contains(&i) {
                fld.add(q, ctx.reduce_once(got[i - recv.start]))
            } else {
                fld.sub(q, rho[i - send.start])
            }
        })
        .collect())
}

/// Bits on the wire of [`combine`] for a batch of `n` (both directions).
pub(crate) fn combine_wire_bits(ctx: &FieldCtx, n: usize) -> usize {
    let h = n.div_ceil(2);
    let eta = ctx.w() as usize;
    8 * (kk13::matrix_bytes(h) + kk13::matrix_bytes(n - h))
        + 8 * ((h * 8 * eta).div_ceil(8) + ((n - h) * 8 * eta).div_ceil(8))
}

/// Shares of `⌊x / 2^f⌋`, `f >= 1`.
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
    let fld = ctx.field;
    let k_off = offset(ctx, f);
    let z: Vec<u64> = if ctx.p0() {
        x.iter().map(|&v| fld.add(v, k_off)).collect()
    } else {
        x.to_vec()
    };
    let th: Vec<u64> = z.iter().flat_map(|&b| thresholds(ctx, b, f)).collect();
    let (snd, rcv) = kk;
    let c = field_millionaires::run(
        ch,
        ctx.p0(),
        n.div_ceil(2),
        &plan(ctx, f),
        (&mut *snd, &mut *rcv),
        &z,
        &th,
        rots,
        rng,
    )
    .await?;
    let mut y = combine(ch, ctx, (snd, rcv), &z, f, [&c[0], &c[1], &c[2]], rng).await?;
    if ctx.p0() {
        let k_q = k_off >> f;
        y.iter_mut().for_each(|v| *v = fld.sub(*v, k_q));
    }
    Ok(y)
}
