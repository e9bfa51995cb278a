//! Gilboa's OT-based multiplication of a sender-held and a receiver-held
//! value over `Z_{2^l}`, on IKNP-style correlated OT: the multiplication
//! triples of ABY's arithmetic sharing (Demmler, Schneider, Zohner, "ABY – A
//! Framework for Efficient Mixed-Protocol Secure Two-Party Computation",
//! NDSS 2015, §III-B "Multiplication triples", after Gilboa, CRYPTO 1999).
//!
//! **Functionality.** The sender inputs `a_i ∈ Z_{2^l}`, the receiver
//! `b_i ∈ Z_{2^l}`; the sender gets `u_i`, uniformly random, the receiver
//! `v_i = a_i·b_i − u_i`, so that `u_i + v_i = a_i·b_i mod 2^l` exactly (no
//! error, no range assumption).
//!
//! **Construction.** Write `b = Σ_k 2^k·b_k`. Then
//! `a·b = Σ_k 2^k·(b_k·a) mod 2^l`, and bit `k` only needs
//! `b_k·a mod 2^{l−k}`: one **correlated OT of an `(l − k)`-bit string** with
//! correlation `a mod 2^{l−k}` and receiver choice `b_k`, as in ABY (`l` COTs
//! per product, `l(l+1)/2` correlation bits in total). Each COT is the
//! chosen-choice arithmetic COT of [`crate::acot`] on one ROT of the
//! engine's pool (with [`crate::Iknp`], IKNP extension: the receiver's
//! choice correction `e = b_k ⊕ c` is one bit, the sender's correction
//! `D = K'_0 − K'_1 + a mod 2^{l−k}` is `l − k` bits, where
//! `(K'_0, K'_1) = (K_e, K_{1⊕e})`). The sender keeps `s_k = K'_0`, the
//! receiver gets `t_k = K'_{b_k} + b_k·D = s_k + b_k·a`; then
//! `u = −Σ_k 2^k·s_k` and `v = Σ_k 2^k·t_k`.
//!
//! **What each party learns.** The sender sees the choice corrections
//! `e = b_k ⊕ c` with `c` the ROT's uniform choice bit unknown to it:
//! nothing about `b`. The receiver sees `D`, padded by the ROT key
//! `K_{1⊕c}` it does not hold: nothing about `a`. Each party's output is
//! uniformly random on its own. Semi-honest security.
//!
//! **Cost per product:** `l` ROTs (one direction), 2 flights, `l` bits
//! receiver→sender and `l(l+1)/2` bits sender→receiver (`l = 37`: 37 + 703
//! bits), plus the ROTs' generation (IKNP: 128 bits per ROT, receiver→sender).

use crate::{
    acot,
    bits::{BitReader, BitWriter},
    channel::Channel,
    ctx::{compute, mask},
    error::Result,
    pool::{RecvRots, SendRots},
};

/// Bits the sender sends per product: `Σ_{k<l} (l − k)`.
pub(crate) fn sender_bits(l: u32) -> usize {
    let l = l as usize;
    l * (l + 1) / 2
}

/// Sender's message: the corrections of every COT of every product (the
/// keys swapped by the receiver's corrections `e`), and its output shares.
fn sender_message(a: &[u64], e: &crate::Bits, l: u32, rots: &SendRots) -> (Vec<u64>, Vec<u8>) {
    let lu = l as usize;
    let mut wr = BitWriter::with_capacity(a.len() * sender_bits(l));
    let mut u = Vec::with_capacity(a.len());
    for (p, &ap) in a.iter().enumerate() {
        let mut acc = 0u64;
        for k in 0..l {
            let idx = p * lu + k as usize;
            let [k0, k1] = rots.0[idx];
            // e is public to the sender; the swap is branch-free anyway.
            let sw = 0u128.wrapping_sub(u128::from(e.get(idx)));
            let d = (k0 ^ k1) & sw;
            let width = l - k;
            let (s, corr) = acot::sender([k0 ^ d, k1 ^ d], ap & mask(width), width);
            wr.push(corr, width);
            acc = acc.wrapping_sub(s.wrapping_shl(k));
        }
        u.push(acc & mask(l));
    }
    (u, wr.into_bytes())
}

/// Receiver's output from the sender's corrections.
fn receiver_output(b: &[u64], bytes: &[u8], l: u32, rots: &RecvRots) -> Result<Vec<u64>> {
    let lu = l as usize;
    let mut rd = BitReader::new(bytes, b.len() * sender_bits(l), "Gilboa COT corrections")?;
    let mut v = Vec::with_capacity(b.len());
    for (p, &bp) in b.iter().enumerate() {
        let mut acc = 0u64;
        for k in 0..l {
            let idx = p * lu + k as usize;
            let bit = ((bp >> k) & 1) as u8;
            let width = l - k;
            let t = acot::receiver(rots.keys[idx], bit, rd.read(width), width);
            acc = acc.wrapping_add(t.wrapping_shl(k));
        }
        v.push(acc & mask(l));
    }
    Ok(v)
}

/// Sender side of `a.len()` products with `l * a.len()` sender ROTs.
pub(crate) async fn send(
    ch: &mut Channel,
    a: Vec<u64>,
    l: u32,
    rots: SendRots,
) -> Result<Vec<u64>> {
    let n = a.len() * l as usize;
    let bytes = ch.exchange(&[], n.div_ceil(8)).await?;
    let e = BitReader::new(&bytes, n, "Gilboa choice corrections")?.read_bits(n);
    let (u, msg) = compute(move || sender_message(&a, &e, l, &rots)).await?;
    ch.exchange(&msg, 0).await?;
    Ok(u)
}

/// Receiver side of `b.len()` products with `l * b.len()` receiver ROTs.
pub(crate) async fn receive(
    ch: &mut Channel,
    b: Vec<u64>,
    l: u32,
    rots: RecvRots,
) -> Result<Vec<u64>> {
    let lu = l as usize;
    let n = b.len() * lu;
    let mut w = BitWriter::with_capacity(n);
    for (p, &bp) in b.iter().enumerate() {
        for k in 0..lu {
            w.push(((bp >> k) & 1) ^ u64::from(rots.choices[p * lu + k]), 1);
        }
    }
    ch.exchange(&w.into_bytes(), 0).await?;
    let bytes = ch
        .exchange(&[], (b.len() * sender_bits(l)).div_ceil(8))
        .await?;
    compute(move || receiver_output(&b, &bytes, l, &rots)).await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::fake_rots;
    use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn products_reconstruct_exactly_on_random_and_edge_inputs() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        for l in [2u32, 13, 37, 64] {
            let m = mask(l);
            let half = 1u64 << (l - 1);
            let edges = [0u64, 1, m, half, half - 1, half + 1, 2, m - 1];
            let mut a: Vec<u64> = Vec::new();
            let mut b: Vec<u64> = Vec::new();
            for &x in &edges {
                for &y in &edges {
                    a.push(x);
                    b.push(y);
                }
            }
            for _ in 0..200 {
                a.push(rng.random::<u64>() & m);
                b.push(rng.random::<u64>() & m);
            }
            let n = a.len() * l as usize;
            let (s, r) = fake_rots(n, &mut rng);
            let e = crate::Bits::from_fn(n, |i| {
                let (p, k) = (i / l as usize, i % l as usize);
                (((b[p] >> k) & 1) as u8 ^ r.choices[i]) == 1
            });
            let (u, msg) = sender_message(&a, &e, l, &s);
            let v = receiver_output(&b, &msg, l, &r).unwrap();
            for p in 0..a.len() {
                assert_eq!(
                    u[p].wrapping_add(v[p]) & m,
                    a[p].wrapping_mul(b[p]) & m,
                    "l = {l}, {} · {}",
                    a[p],
                    b[p]
                );
                assert!(u[p] <= m && v[p] <= m);
            }
            assert!(matches!(
                receiver_output(&b, &msg[1..], l, &r),
                Err(crate::Error::Malformed { .. })
            ));
        }
    }
}
