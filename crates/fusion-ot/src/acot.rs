//! Arithmetic correlated OT over `Z_{2^k}` from random OT.
//!
//! Functionality: the sender inputs `x ∈ Z_{2^k}`, the receiver a bit `b`; the
//! sender gets a uniformly random `r`, the receiver `r + b·x`. So `(-r, r + b·x)`
//! are additive shares of `b·x` (CrypTFlow2 §2.2 / Cheetah §2, "COT_k").
//!
//! From one ROT `(K0, K1)` / `(c, K_c)`, with `K_β` read as `k`-bit integers
//! (the low `k` bits of the correlation-robust-hashed key):
//!
//! - **random choice** (`b = c`, one flight, sender→receiver only): the sender
//!   sends `D = K0 - K1 + x`; sender output `r = K0`, receiver output
//!   `K_c + c·D = K0 + c·x`. This is what the protocols use internally: the
//!   receiver's choice bit *is* its share of a random bit, so the correction
//!   can travel in the same flight as everything else.
//! - **chosen choice** (two flights): the receiver first sends `e = b ⊕ c`; the
//!   sender uses `K'_β = K_{β⊕e}` in place of `K_β`.
//!
//! Security: `D` is masked by `K_{1-c}`, which the receiver does not know; the
//! sender sees only `e = b ⊕ c` with `c` uniform. Cost per instance: 1 ROT,
//! `k` bits sender→receiver (+ 1 bit receiver→sender for chosen choice).

use subtle::{Choice, ConditionallySelectable};

use crate::{
    bits::{BitReader, BitWriter, Bits, bits_to_bytes},
    channel::Channel,
    ctx::{compute, mask},
    error::Result,
    pool::{RecvRots, SendRots},
};

/// A key as a `k`-bit ring element.
#[inline]
pub(crate) fn key_val(key: u128, k: u32) -> u64 {
    (key as u64) & mask(k)
}

/// Random-choice ACOT, sender: returns `(r, D)` with `r = K0`, `D = K0 - K1 + x`
/// (mod `2^k`).
#[inline]
pub(crate) fn sender(keys: [u128; 2], x: u64, k: u32) -> (u64, u64) {
    let k0 = key_val(keys[0], k);
    let k1 = key_val(keys[1], k);
    (k0, k0.wrapping_sub(k1).wrapping_add(x) & mask(k))
}

/// Random-choice ACOT, receiver: `K_c + c·D` (mod `2^k`), i.e. `r + c·x`.
#[inline]
pub(crate) fn receiver(key: u128, c: u8, d: u64, k: u32) -> u64 {
    let cd = u64::conditional_select(&0, &d, Choice::from(c));
    key_val(key, k).wrapping_add(cd) & mask(k)
}

/// `c·v` for a secret bit `c`, branch-free.
#[inline]
pub(crate) fn select(c: u8, v: u64) -> u64 {
    u64::conditional_select(&0, &v, Choice::from(c))
}

/// Chosen-choice ACOT, sender side: returns `r` for each `x`.
pub(crate) async fn send(
    ch: &mut Channel,
    x: Vec<u64>,
    k: u32,
    rots: SendRots,
) -> Result<Vec<u64>> {
    let n = x.len();
    let bytes = ch.exchange(&[], n.div_ceil(8)).await?;
    let e = BitReader::new(&bytes, n, "COT choice corrections")?.read_bits(n);
    let (r, msg) = compute(move || {
        let mut wr = BitWriter::with_capacity(n * k as usize);
        let mut r = Vec::with_capacity(n);
        for i in 0..n {
            let [k0, k1] = rots.0[i];
            let sw = 0u128.wrapping_sub(u128::from(e.get(i)));
            let d = (k0 ^ k1) & sw;
            let (ri, di) = sender([k0 ^ d, k1 ^ d], x[i], k);
            r.push(ri);
            wr.push(di, k);
        }
        (r, wr.into_bytes())
    })
    .await?;
    ch.exchange(&msg, 0).await?;
    Ok(r)
}

/// Chosen-choice ACOT, receiver side: returns `r + b_i·x_i`.
pub(crate) async fn receive(ch: &mut Channel, b: Bits, k: u32, rots: RecvRots) -> Result<Vec<u64>> {
    let n = b.len();
    let e = Bits::from_fn(n, |i| b.get(i) ^ (rots.choices[i] == 1));
    ch.exchange(&bits_to_bytes(&e), 0).await?;
    let bytes = ch.exchange(&[], (n * k as usize).div_ceil(8)).await?;
    compute(move || {
        let mut rd = BitReader::new(&bytes, n * k as usize, "COT corrections")?;
        Ok((0..n)
            .map(|i| receiver(rots.keys[i], b.get_u8(i), rd.read(k), k))
            .collect())
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::fake_rots;
    use rand::{Rng, RngExt, SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn random_choice_acot_shares_c_times_x() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for k in [1u32, 13, 37, 64] {
            let (s, r) = fake_rots(200, &mut rng);
            for i in 0..200 {
                let x = rng.next_u64() & mask(k);
                let (r0, d) = sender(s.0[i], x, k);
                let r1 = receiver(r.keys[i], r.choices[i], d, k);
                let expect = if r.choices[i] == 1 { x } else { 0 };
                assert_eq!(r1.wrapping_sub(r0) & mask(k), expect);
            }
        }
        assert_eq!(select(1, 7), 7);
        assert_eq!(select(0, 7), 0);
        let _ = rng.random::<u8>();
    }
}
