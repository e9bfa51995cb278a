//! Elementwise square of an additively shared vector over `Z_{2^l}` (the
//! square activation of the TIMIT network), with a Beaver square pair
//! `(a, a²)` generated from random OT in the same flight.
//!
//! `a = a_s + a_r`: the OT sender of the element (first half of the batch
//! `P0`, second half `P1`) picks `a_s` at random; the receiver's `a_r` has its
//! low `l - 1` bits given by its ROT choices. `a² = a_s² + a_r² + 2·a_s·a_r`,
//! and `2·a_s·a_r mod 2^l` only needs `a_s·a_r mod 2^{l-1}`: `l - 1`
//! arithmetic COTs over `Z_{2^{l-1-k}}` ([`crate::acot`], Gilboa), whose
//! corrections (`l(l-1)/2` bits) travel in the same flight as the opening
//! `ε_i = x_i - a_i`. Then `x² = a² + 2ε·a + ε²`.
//!
//! Exact. Learns nothing beyond the output share. Cost per element: 1 flight,
//! `l - 1` ROTs, `l(l-1)/2 + 2l` bits (both directions together; `l = 37`:
//! 740 bits).

use rand::rngs::ChaCha20Rng;

use crate::{
    acot,
    bits::{BitReader, BitWriter},
    channel::Channel,
    ctx::{Ctx, compute, fork, mask},
    error::Result,
    pool::{RotCount, Rots},
};

/// ROTs for `n` squares.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    let k = ctx.ring.bits() as usize - 1;
    RotCount::new(
        ctx.my_sender_range(n).len() * k,
        ctx.my_receiver_range(n).len() * k,
    )
}

/// Shares of `x_i²`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    x: &[u64],
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    let n = x.len();
    let ring = ctx.ring;
    let l = ring.bits();
    let h = l - 1; // the cross term lives in Z_{2^{l-1}}
    let hu = h as usize;
    let corr_bits = hu * (hu + 1) / 2;
    let (mine, theirs) = (ctx.my_sender_range(n), ctx.my_receiver_range(n));
    let s = rots.take_send(mine.len() * hu)?;
    let r = rots.take_recv(theirs.len() * hu)?;
    let mut trng = fork(rng);
    let x = x.to_vec();
    let (msg, a, cross, x, r, mine, theirs) = compute(move || {
        let mut wr = BitWriter::with_capacity(mine.len() * corr_bits + n * l as usize);
        let mut a = vec![0u64; n];
        let mut cross = vec![0u64; n];
        for (e, i) in mine.clone().enumerate() {
            let ae = ring.random(&mut trng);
            let mut cs = 0u64;
            for k in 0..h {
                let width = h - k;
                let (k0, d) = acot::sender(s.0[e * hu + k as usize], ae & mask(width), width);
                wr.push(d, width);
                cs = cs.wrapping_sub(k0.wrapping_shl(k));
            }
            a[i] = ae;
            cross[i] = cs & mask(h);
        }
        for (e, i) in theirs.clone().enumerate() {
            let low = (0..hu).fold(0u64, |acc, k| acc | (u64::from(r.choices[e * hu + k]) << k));
            let top = ring.random(&mut trng) & !mask(h);
            a[i] = ring.reduce(low | top);
        }
        for i in 0..n {
            wr.push(ring.sub(x[i], a[i]), l);
        }
        (wr.into_bytes(), a, cross, x, r, mine, theirs)
    })
    .await?;
    let len = theirs.len() * corr_bits + n * l as usize;
    let bytes = ch.exchange(&msg, len.div_ceil(8)).await?;
    let p0 = ctx.p0();
    compute(move || {
        let mut rd = BitReader::new(&bytes, len, "square message")?;
        let mut cross = cross;
        for (e, i) in theirs.clone().enumerate() {
            let mut cr = 0u64;
            for k in 0..h {
                let width = h - k;
                let idx = e * hu + k as usize;
                let v = acot::receiver(r.keys[idx], r.choices[idx], rd.read(width), width);
                cr = cr.wrapping_add(v.wrapping_shl(k));
            }
            cross[i] = cr & mask(h);
        }
        let _ = &mine;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let sq = ring.add(ring.mul(a[i], a[i]), ring.mul(2, cross[i]));
            let eps = ring.add(ring.sub(x[i], a[i]), rd.read(l));
            let mut z = ring.add(sq, ring.mul(ring.mul(2, eps), a[i]));
            if p0 {
                z = ring.add(z, ring.mul(eps, eps));
            }
            out.push(z);
        }
        Ok(out)
    })
    .await?
}
