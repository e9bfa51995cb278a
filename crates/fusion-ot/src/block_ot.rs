//! Chosen-message 1-out-of-2 OT of 128-bit blocks (e.g. garbled-circuit wire
//! labels) from one random OT per transfer.
//!
//! **Construction** (Beaver's derandomisation of a random OT, as in
//! [`crate::one_of_n`] with `m = 1`, but with the whole 128-bit ROT key as the
//! pad instead of a `t <= 64`-bit slot of it):
//!
//! - Setup: one ROT per transfer; the sender holds `(K_0, K_1)`, the receiver
//!   a uniformly random `c` and `K_c`. CryProt hashes the OT outputs with a
//!   correlation-robust fixed-key AES hash, so the keys are pseudorandom
//!   128-bit strings, and each is used as a pad exactly once.
//! - Receiver with choice `b`: sends `e = b ⊕ c` (1 bit).
//! - Sender: sends `M_0 ⊕ K_e` and `M_1 ⊕ K_{1⊕e}` (256 bits).
//! - Receiver: `M_b = (row b) ⊕ K_c`, since `b ⊕ e = c`.
//!
//! **Security (semi-honest).** The sender sees `e = b ⊕ c` with `c` uniform
//! and hidden from it: nothing about `b`. The message the receiver did not
//! choose is padded with `K_{1⊕c}`, which the receiver does not hold and which
//! is pseudorandom to it. The receiver learns `M_b` only; the sender nothing.
//!
//! **Cost per transfer:** 1 ROT, 1 bit receiver→sender, 256 bits
//! sender→receiver, 2 flights. The receiver reads both rows and selects with a
//! mask (no memory access indexed by its secret choice).

use zeroize::Zeroize;

use crate::{
    bits::{BitReader, BitWriter, Bits},
    channel::Channel,
    ctx::compute,
    error::{Error, Result},
    pool::{RecvRots, SendRots},
};

/// Bytes of one sender row pair on the wire.
const PAIR_BYTES: usize = 32;

/// Sender, flight 2: both messages of each transfer padded with the ROT keys
/// re-ordered by the receiver's correction bits.
fn sender_rows(msgs: &[[u128; 2]], e: &Bits, rots: &SendRots) -> Vec<u8> {
    let mut out = Vec::with_capacity(msgs.len() * PAIR_BYTES);
    for (i, [m0, m1]) in msgs.iter().enumerate() {
        let [k0, k1] = rots.0[i];
        // e is public to the sender (the receiver sent it); swap branch-free anyway.
        let sw = 0u128.wrapping_sub(u128::from(e.get(i)));
        let d = (k0 ^ k1) & sw;
        out.extend_from_slice(&(m0 ^ k0 ^ d).to_le_bytes());
        out.extend_from_slice(&(m1 ^ k1 ^ d).to_le_bytes());
    }
    out
}

/// Receiver, after flight 2: unpads the chosen row of each transfer.
fn receiver_outputs(choices: &Bits, rows: &[u8], rots: &RecvRots) -> Result<Vec<u128>> {
    if rows.len() != choices.len() * PAIR_BYTES {
        return Err(Error::Malformed {
            what: "block OT rows",
            detail: "wrong message length",
        });
    }
    let mut out = Vec::with_capacity(choices.len());
    for (i, pair) in rows.chunks_exact(PAIR_BYTES).enumerate() {
        let mut w = [0u8; 16];
        w.copy_from_slice(&pair[..16]);
        let r0 = u128::from_le_bytes(w);
        w.copy_from_slice(&pair[16..]);
        let r1 = u128::from_le_bytes(w);
        let sel = 0u128.wrapping_sub(u128::from(choices.get(i)));
        out.push(((r0 & !sel) | (r1 & sel)) ^ rots.keys[i]);
    }
    Ok(out)
}

/// Sender side of `msgs.len()` chosen-message OTs of 128-bit blocks.
pub(crate) async fn send(ch: &mut Channel, msgs: Vec<[u128; 2]>, rots: SendRots) -> Result<()> {
    let n = msgs.len();
    let bytes = ch.exchange(&[], n.div_ceil(8)).await?;
    let e = BitReader::new(&bytes, n, "block OT choice corrections")?.read_bits(n);
    let out = compute(move || {
        let mut msgs = msgs;
        let rows = sender_rows(&msgs, &e, &rots);
        msgs.zeroize();
        rows
    })
    .await?;
    ch.exchange(&out, 0).await?;
    Ok(())
}

/// Receiver side: block `choices[i]` of transfer `i`.
pub(crate) async fn receive(ch: &mut Channel, choices: Bits, rots: RecvRots) -> Result<Vec<u128>> {
    let n = choices.len();
    let mut w = BitWriter::with_capacity(n);
    for i in 0..n {
        w.push(u64::from(choices.get_u8(i) ^ rots.choices[i]), 1);
    }
    let e = w.into_bytes();
    ch.exchange(&e, 0).await?;
    let rows = ch.exchange(&[], n * PAIR_BYTES).await?;
    compute(move || receiver_outputs(&choices, &rows, &rots)).await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::fake_rots;
    use rand::{Rng, SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn block_ot_message_computation_delivers_the_chosen_block_only() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let n = 200;
        let msgs: Vec<[u128; 2]> = (0..n)
            .map(|_| {
                let a = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
                let b = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
                [a, b]
            })
            .collect();
        let choices = Bits::random(n, &mut rng);
        let (s, r) = fake_rots(n, &mut rng);
        let e = Bits::from_fn(n, |i| (choices.get_u8(i) ^ r.choices[i]) == 1);
        let rows = sender_rows(&msgs, &e, &s);
        let out = receiver_outputs(&choices, &rows, &r).unwrap();
        for i in 0..n {
            let b = usize::from(choices.get_u8(i));
            assert_eq!(out[i], msgs[i][b], "transfer {i}");
            // The other row unpads to something else than the other message.
            assert_ne!(out[i], msgs[i][1 - b]);
        }
    }

    #[test]
    fn block_ot_receiver_rejects_rows_of_the_wrong_length() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let (_, r) = fake_rots(4, &mut rng);
        let choices = Bits::zeros(4);
        assert!(matches!(
            receiver_outputs(&choices, &[0u8; 4 * PAIR_BYTES - 1], &r),
            Err(Error::Malformed { .. })
        ));
    }
}
