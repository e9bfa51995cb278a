//! OT flavours: where the random OTs come from.
//!
//! Every protocol in this crate consumes one resource only: **random OT with
//! random choice bits** (ROT). The sender gets two 128-bit keys `(k0, k1)`, the
//! receiver a uniformly random choice bit `c` and `k_c`; `k_{1-c}` is
//! pseudorandom to the receiver and `c` is hidden from the sender. Chosen
//! choices and chosen messages are obtained by derandomisation on top
//! (see [`crate::one_of_n`]), so a flavour only has to produce ROTs in bulk:
//!
//! - [`Silent`] (default): CryProt's semi-honest silent OT (Boyle et al.,
//!   BCG+19, with the expand-convolute code of RRT23) — communication is
//!   sublinear in the number of OTs.
//! - [`Iknp`]: CryProt's semi-honest IKNP OT extension (as in CrypTFlow2's
//!   SCI_OT) — the receiver sends 128 bits per OT.
//!
//! Both are semi-honest with 128-bit computational security: 128 base OTs
//! (Chou–Orlandi "simplest OT"), AES-128 correlation-robust hashing, and for
//! silent OT CryProt's LPN parameters (regular noise weight for 128-bit
//! security with the expand-convolute code's minimum-distance ratio 0.15, as in
//! libOTe). The OT outputs are hashed with CryProt's
//! correlation-robust fixed-key AES hash, so the keys are pseudorandom 128-bit
//! strings that we may cut into slots (for silent OT the sender's side of that
//! step is ours, [`SilentSender`], so that its expansion buffer can be reused
//! across runs). Randomness: IKNP is seeded from the engine's RNG (and the
//! receiver's random choices are drawn from it), and so is the silent-OT
//! sender's global offset `delta`; CryProt's silent OT draws the rest of its
//! internal randomness (LPN noise, which determines the receiver's choice bits,
//! and its PPRF seeds) from the operating system via `rand::make_rng` and
//! cannot be seeded from outside.

use std::future::Future;

use cryprot_core::{Block, aes_hash::FIXED_KEY_HASH};
use cryprot_net::Connection;
use cryprot_ot::{
    RandChoiceRotReceiver, RotReceiver, RotSender,
    extension::{SemiHonestOtExtensionReceiver, SemiHonestOtExtensionSender},
    silent_ot::{SemiHonestSilentOtReceiver, SemiHonestSilentOtSender},
};
use rand::{Rng, SeedableRng, rngs::ChaCha20Rng, rngs::StdRng};
use subtle::Choice;

use crate::error::{Error, Result};

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Silent {}
    impl Sealed for super::Iknp {}
}

/// A source of random OTs with random choice bits. Sealed: [`Silent`] or [`Iknp`].
pub trait OtFlavour: sealed::Sealed + Send + Sync + 'static {
    /// The sender half of one OT instance.
    type Sender: Send + 'static;
    /// The receiver half of one OT instance.
    type Receiver: Send + 'static;
    /// A short name for reports.
    const NAME: &'static str;
    /// OT counts are rounded up to a multiple of this.
    const GRANULARITY: usize;

    /// The sender of an instance on `conn`.
    fn sender(conn: Connection, rng: &mut ChaCha20Rng) -> Self::Sender;
    /// The receiver of an instance on `conn`.
    fn receiver(conn: Connection, rng: &mut ChaCha20Rng) -> Self::Receiver;
    /// `count` ROTs as sender: `count` key pairs.
    fn send(
        s: &mut Self::Sender,
        count: usize,
    ) -> impl Future<Output = Result<Vec<[Block; 2]>>> + Send;
    /// `count` ROTs as receiver: the keys `k_c` and the random choices `c`
    /// (`0`/`1`). `rng` supplies the choices where the flavour lets us choose.
    fn receive(
        r: &mut Self::Receiver,
        count: usize,
        rng: &mut ChaCha20Rng,
    ) -> impl Future<Output = Result<(Vec<Block>, Vec<u8>)>> + Send;
}

/// CryProt's semi-honest silent OT (the default flavour).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

/// CryProt's semi-honest IKNP OT extension.
#[derive(Debug, Clone, Copy, Default)]
pub struct Iknp;

fn ot_err(flavour: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Ot {
        flavour,
        source: Box::new(e),
    }
}

/// The sender half of a silent-OT instance, with the buffer its runs
/// expand into. The buffer (`2` blocks per ROT: the code length) is kept
/// between runs, so a run reuses memory the previous one already touched
/// instead of having fresh pages zeroed by the kernel; it is wiped after each
/// run.
pub struct SilentSender {
    inner: SemiHonestSilentOtSender,
    corr: Vec<Block>,
    rng: ChaCha20Rng,
}

/// The receiver half of a silent-OT instance, with its reused expansion
/// buffer (see [`SilentSender`]).
pub struct SilentReceiver {
    inner: SemiHonestSilentOtReceiver,
    buf: Vec<Block>,
}

/// Overwrites the whole allocation of a scratch buffer with zeros (the
/// expansion leaves secret correlations beyond the returned length too) and
/// leaves it empty, capacity kept.
fn wipe(buf: &mut Vec<Block>) {
    let cap = buf.capacity();
    buf.clear();
    buf.resize(cap, Block::ZERO);
    std::hint::black_box(buf.as_slice());
    buf.clear();
}

impl Drop for SilentSender {
    fn drop(&mut self) {
        wipe(&mut self.corr);
    }
}

impl Drop for SilentReceiver {
    fn drop(&mut self) {
        wipe(&mut self.buf);
    }
}

impl OtFlavour for Silent {
    type Sender = SilentSender;
    type Receiver = SilentReceiver;
    const NAME: &'static str = "silent";
    const GRANULARITY: usize = 128;

    fn sender(conn: Connection, rng: &mut ChaCha20Rng) -> Self::Sender {
        SilentSender {
            inner: SemiHonestSilentOtSender::new(conn),
            corr: Vec::new(),
            rng: ChaCha20Rng::from_rng(rng),
        }
    }

    fn receiver(conn: Connection, _rng: &mut ChaCha20Rng) -> Self::Receiver {
        SilentReceiver {
            inner: SemiHonestSilentOtReceiver::new(conn),
            buf: Vec::new(),
        }
    }

    /// Correlated OT with a fresh global offset `delta` into the reused
    /// buffer, then random OT by hashing: the receiver's block is
    /// `a = b ^ c delta` except in the least significant bit, which carries
    /// its choice `c` (CryProt's packed choice bits), so both sides clear that
    /// bit and hash with the correlation-robust fixed-key AES hash:
    /// `k0 = H(b')`, `k1 = H(b' ^ delta')` with `'` the cleared bit, and the
    /// receiver gets `H(a') = k_c` (CryProt's `random_receive_into`). This is
    /// the derivation CryProt's own `random_send` performs, on our buffer.
    async fn send(s: &mut Self::Sender, count: usize) -> Result<Vec<[Block; 2]>> {
        let delta =
            Block::from((u128::from(s.rng.next_u64()) << 64) | u128::from(s.rng.next_u64()));
        let need = SemiHonestSilentOtSender::ots_buf_size(count);
        s.corr.clear();
        s.corr.resize(need, Block::ZERO);
        let done = s
            .inner
            .correlated_send_into(count, delta, &mut s.corr)
            .await
            .map_err(|e| ot_err(Self::NAME, e));
        if let Err(e) = done {
            wipe(&mut s.corr);
            return Err(e);
        }
        if s.corr.len() < count {
            wipe(&mut s.corr);
            return Err(Error::Malformed {
                what: "silent OT output",
                detail: "wrong number of OTs",
            });
        }
        let masked_delta = delta & Block::MASK_LSB;
        let mut ots: Vec<[Block; 2]> = s.corr[..count]
            .iter()
            .map(|&b| {
                let m = b & Block::MASK_LSB;
                [m, m ^ masked_delta]
            })
            .collect();
        wipe(&mut s.corr);
        FIXED_KEY_HASH.cr_hash_slice_mut(ots.as_flattened_mut());
        Ok(ots)
    }

    async fn receive(
        r: &mut Self::Receiver,
        count: usize,
        _rng: &mut ChaCha20Rng,
    ) -> Result<(Vec<Block>, Vec<u8>)> {
        // CryProt reads the count from the buffer's length and grows it to
        // the code length itself.
        r.buf.clear();
        r.buf.resize(count, Block::ZERO);
        let choices = r.inner.rand_choice_receive_into(&mut r.buf).await;
        let choices = match choices {
            Ok(c) => c,
            Err(e) => {
                wipe(&mut r.buf);
                return Err(ot_err(Self::NAME, e));
            }
        };
        if r.buf.len() != count || choices.len() != count {
            wipe(&mut r.buf);
            return Err(Error::Malformed {
                what: "silent OT output",
                detail: "wrong number of OTs",
            });
        }
        let keys = r.buf.clone();
        wipe(&mut r.buf);
        Ok((keys, choices.iter().map(|c| c.unwrap_u8()).collect()))
    }
}

impl OtFlavour for Iknp {
    type Sender = SemiHonestOtExtensionSender;
    type Receiver = SemiHonestOtExtensionReceiver;
    const NAME: &'static str = "iknp";
    const GRANULARITY: usize = 128;

    fn sender(conn: Connection, rng: &mut ChaCha20Rng) -> Self::Sender {
        SemiHonestOtExtensionSender::new_with_rng(conn, StdRng::from_rng(rng))
    }

    fn receiver(conn: Connection, rng: &mut ChaCha20Rng) -> Self::Receiver {
        SemiHonestOtExtensionReceiver::new_with_rng(conn, StdRng::from_rng(rng))
    }

    async fn send(s: &mut Self::Sender, count: usize) -> Result<Vec<[Block; 2]>> {
        let mut ots: Vec<[Block; 2]> = vec![[Block::ZERO; 2]; count];
        s.send_into(&mut ots)
            .await
            .map_err(|e| ot_err(Self::NAME, e))?;
        Ok(ots)
    }

    async fn receive(
        r: &mut Self::Receiver,
        count: usize,
        rng: &mut ChaCha20Rng,
    ) -> Result<(Vec<Block>, Vec<u8>)> {
        let bits = crate::bits::Bits::random(count, rng);
        let choice_u8: Vec<u8> = (0..count).map(|i| bits.get_u8(i)).collect();
        let choices: Vec<Choice> = choice_u8.iter().map(|&c| Choice::from(c)).collect();
        let mut ots: Vec<Block> = vec![Block::ZERO; count];
        r.receive_into(&mut ots, &choices)
            .await
            .map_err(|e| ot_err(Self::NAME, e))?;
        Ok((ots, choice_u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `count` ROTs of `F` on a fresh local connection pair, `runs`
    /// times on the same instances.
    async fn rots<F: OtFlavour>(counts: &[usize]) -> Vec<(Vec<[Block; 2]>, Vec<Block>, Vec<u8>)> {
        let (c0, c1) = cryprot_net::testing::local_conn()
            .await
            .expect("connection");
        let mut r0 = ChaCha20Rng::seed_from_u64(1);
        let mut r1 = ChaCha20Rng::seed_from_u64(2);
        let mut s = F::sender(c0, &mut r0);
        let mut r = F::receiver(c1, &mut r1);
        let mut out = Vec::new();
        for &n in counts {
            let (keys, got) = tokio::join!(F::send(&mut s, n), F::receive(&mut r, n, &mut r1));
            let (k, c) = got.expect("receive");
            out.push((keys.expect("send"), k, c));
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn silent_rots_reusing_their_buffers_are_random_ots() {
        // Shrinking and growing runs on the same instances (the buffers are
        // reused, and wiped in between).
        let counts = [4096, 1024, 8192];
        for (n, (keys, k, c)) in counts.into_iter().zip(rots::<Silent>(&counts).await) {
            assert_eq!((keys.len(), k.len(), c.len()), (n, n, n));
            let ones = c.iter().filter(|&&b| b == 1).count();
            assert!(
                ones > keys.len() / 3 && ones < 2 * keys.len() / 3,
                "{ones} ones"
            );
            for ((pair, key), &choice) in keys.iter().zip(&k).zip(&c) {
                assert!(choice <= 1);
                assert_eq!(*key, pair[choice as usize]);
                assert_ne!(*key, pair[1 - choice as usize]);
            }
        }
    }
}
