//! Boolean to arithmetic: additive shares in `Z_{2^l}` of an XOR-shared bit `b`
//! (CrypTFlow2's `F_B2A`, ePrint 2020/1002 §2.2, built here in one flight).
//!
//! A random bit `c = c_s ⊕ c_r` is formed from a fresh random bit `c_s` of the
//! ACOT sender and the receiver's ROT choice `c_r`; one arithmetic COT
//! ([`crate::acot`], correlation `c_s`, choice `c_r`) gives shares of `c_s·c_r`
//! and thus of `c = c_s + c_r - 2c_s·c_r`. In the same flight both parties
//! publish `d = b ⊕ c` (their `b_i ⊕ c_i`); then `b = d + (1 - 2d)·c` is linear
//! in the shares of `c`. The first half of a batch has `P0` as ACOT sender, the
//! second half `P1`.
//!
//! Learns: `d` (uniform, padded by `c`) and one correction masked by a key the
//! receiver lacks: nothing. Cost per bit: 1 flight, 1 ROT, `l + 2` bits (both
//! directions together).

use rand::rngs::ChaCha20Rng;

use crate::{
    acot,
    bits::{BitReader, BitWriter, Bits},
    channel::Channel,
    ctx::{Ctx, compute, fork},
    error::Result,
    pool::{RotCount, Rots},
};

/// ROTs for `n` conversions.
pub(crate) fn cost(ctx: &Ctx, n: usize) -> RotCount {
    RotCount::new(ctx.my_sender_range(n).len(), ctx.my_receiver_range(n).len())
}

/// Additive shares of the bits `b`.
pub(crate) async fn run(
    ch: &mut Channel,
    ctx: &Ctx,
    b: &Bits,
    rots: &mut Rots,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>> {
    let n = b.len();
    let ring = ctx.ring;
    let l = ring.bits();
    let (mine, theirs) = (ctx.my_sender_range(n), ctx.my_receiver_range(n));
    let s = rots.take_send(mine.len())?;
    let r = rots.take_recv(theirs.len())?;
    let mut crng = fork(rng);
    let b = b.clone();
    let (msg, c_mine, b, s, r, mine, theirs) = compute(move || {
        let c_s = Bits::random(mine.len(), &mut crng);
        let mut wr = BitWriter::with_capacity(n + mine.len() * l as usize);
        for i in 0..n {
            let c = if mine.contains(&i) {
                c_s.get_u8(i - mine.start)
            } else {
                r.choices[i - theirs.start]
            };
            wr.push(u64::from(b.get_u8(i) ^ c), 1);
        }
        for (k, key) in s.0.iter().enumerate() {
            wr.push(acot::sender(*key, u64::from(c_s.get_u8(k)), l).1, l);
        }
        (wr.into_bytes(), c_s, b, s, r, mine, theirs)
    })
    .await?;
    let len = n + theirs.len() * l as usize;
    let bytes = ch.exchange(&msg, len.div_ceil(8)).await?;
    let p0 = ctx.p0();
    compute(move || {
        let mut rd = BitReader::new(&bytes, len, "B2A message")?;
        let d_peer = rd.read_bits(n);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (c_i, c_share) = if mine.contains(&i) {
                let k = i - mine.start;
                let c = c_mine.get_u8(k);
                let (k0, _) = acot::sender(s.0[k], 0, l);
                // our share of c_s·c_r is -K0, so c share = c_s + 2·K0
                (c, ring.add(u64::from(c), ring.mul(2, k0)))
            } else {
                let k = i - theirs.start;
                let c = r.choices[k];
                let prod = acot::receiver(r.keys[k], c, rd.read(l), l);
                (c, ring.sub(u64::from(c), ring.mul(2, prod)))
            };
            let d = (b.get_u8(i) ^ c_i) ^ d_peer.get_u8(i);
            let base = if p0 && d == 1 { 1 } else { 0 };
            let sc = if d == 1 { ring.neg(c_share) } else { c_share };
            out.push(ring.add(base, sc));
        }
        Ok(out)
    })
    .await?
}
