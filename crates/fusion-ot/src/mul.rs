//! Elementwise product of two additively shared vectors over `Z_{2^l}`, with
//! Beaver triples generated from random OT in the same flight (Gilboa's
//! OT-based multiplication, Gilboa 1999; as used for `F_Mult` in CrypTFlow2 /
//! SiRNN, here on random-choice arithmetic COT).
//!
//! Triple `c = a·b`: each party picks `a_i` at random and takes `b_i` as the
//! `l` choice bits of `l` of its receiver ROTs. The cross term `a_i·b_{1-i}`
//! is `Σ_k 2^k·b_{1-i,k}·a_i`; bit `k` is one arithmetic COT over
//! `Z_{2^{l-k}}` ([`crate::acot`]) with correlation `a_i mod 2^{l-k}` whose
//! receiver choice is the peer's ROT choice — no receiver message is needed,
//! so the corrections (`Σ_k (l - k) = l(l+1)/2` bits) go out in the same
//! flight as the Beaver openings `ε_i = x_i - a_i`, `δ_i = y_i - b_i`. Then
//! `x·y = c + ε·b + δ·a + ε·δ`.
//!
//! Exact (no error, no range assumption). Learns: `ε, δ` (uniformly padded)
//! and corrections masked by unknown keys: nothing. Cost per product: 1
//! flight, `2l` ROTs (`l` per direction), `l(l+1) + 4l` bits (both directions
//! together; `l = 37`: 1554 bits).

use rand::rngs::ChaCha20Rng;

use crate::{
    acot,
    bits::{BitReader, BitWriter},
    channel::Channel,
    ctx::{Ctx, compute, fork, mask},
    error::Result,
    pool::{RotCount, Rots},
};

/// ROTs for `n` products.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    RotCount::both(n * ctx.ring.bits() as usize)
}

/// Bits we send (and receive) for one product.
fn msg_bits(l: u32) -> usize {
    let l = l as usize;
    l * (l + 1) / 2 + 2 * l
}

/// Shares of `x_i · y_i`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    y: &[u64],
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    let n = x.len();
    let ring = ctx.ring;
    let l = ring.bits();
    let lu = l as usize;
    let s = rots.take_send(n * lu)?;
    let r = rots.take_recv(n * lu)?;
    let mut trng = fork(rng);
    let (x, y) = (x.to_vec(), y.to_vec());
    let (msg, a, b, cross, x, y, r) = compute(move || {
        let mut wr = BitWriter::with_capacity(n * msg_bits(l));
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        let mut cross = Vec::with_capacity(n);
        for e in 0..n {
            let ae = ring.random(&mut trng);
            let be = (0..lu).fold(0u64, |acc, k| acc | (u64::from(r.choices[e * lu + k]) << k));
            let mut cs = 0u64;
            for k in 0..l {
                let width = l - k;
                let (k0, d) = acot::sender(s.0[e * lu + k as usize], ae & mask(width), width);
                wr.push(d, width);
                cs = cs.wrapping_sub(k0.wrapping_shl(k));
            }
            wr.push(ring.sub(x[e], ae), l);
            wr.push(ring.sub(y[e], be), l);
            a.push(ae);
            b.push(be);
            cross.push(ring.reduce(cs));
        }
        (wr.into_bytes(), a, b, cross, x, y, r)
    })
    .await?;
    let len = n * msg_bits(l);
    let bytes = ch.exchange(&msg, len.div_ceil(8)).await?;
    let p0 = ctx.p0();
    compute(move || {
        let mut rd = BitReader::new(&bytes, len, "multiplication message")?;
        let mut out = Vec::with_capacity(n);
        for e in 0..n {
            let mut cr = 0u64;
            for k in 0..l {
                let width = l - k;
                let idx = e * lu + k as usize;
                let v = acot::receiver(r.keys[idx], r.choices[idx], rd.read(width), width);
                cr = cr.wrapping_add(v.wrapping_shl(k));
            }
            let c = ring.add(ring.add(ring.mul(a[e], b[e]), cross[e]), ring.reduce(cr));
            let eps = ring.add(ring.sub(x[e], a[e]), rd.read(l));
            let del = ring.add(ring.sub(y[e], b[e]), rd.read(l));
            let mut z = ring.add(c, ring.add(ring.mul(eps, b[e]), ring.mul(del, a[e])));
            if p0 {
                z = ring.add(z, ring.mul(eps, del));
            }
            out.push(z);
        }
        Ok(out)
    })
    .await?
}
