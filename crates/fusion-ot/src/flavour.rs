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
//! libOTe). CryProt hashes the OT outputs with a
//! correlation-robust fixed-key AES hash, so the keys are pseudorandom 128-bit
//! strings that we may cut into slots. Randomness: IKNP is seeded from the
//! engine's RNG (and the receiver's random choices are drawn from it); CryProt's
//! silent OT draws its internal randomness (LPN noise, which determines the
//! receiver's choice bits, and its PPRF seeds) from the operating system via
//! `rand::make_rng` and cannot be seeded from outside.

use std::future::Future;

use cryprot_core::Block;
use cryprot_net::Connection;
use cryprot_ot::{
    RandChoiceRotReceiver, RotReceiver, RotSender,
    extension::{SemiHonestOtExtensionReceiver, SemiHonestOtExtensionSender},
    silent_ot::{SemiHonestSilentOtReceiver, SemiHonestSilentOtSender},
};
use rand::{SeedableRng, rngs::ChaCha20Rng, rngs::StdRng};
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

impl OtFlavour for Silent {
    type Sender = SemiHonestSilentOtSender;
    type Receiver = SemiHonestSilentOtReceiver;
    const NAME: &'static str = "silent";
    const GRANULARITY: usize = 128;

    fn sender(conn: Connection, _rng: &mut ChaCha20Rng) -> Self::Sender {
        SemiHonestSilentOtSender::new(conn)
    }

    fn receiver(conn: Connection, _rng: &mut ChaCha20Rng) -> Self::Receiver {
        SemiHonestSilentOtReceiver::new(conn)
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
        _rng: &mut ChaCha20Rng,
    ) -> Result<(Vec<Block>, Vec<u8>)> {
        let mut ots: Vec<Block> = vec![Block::ZERO; count];
        let choices = r
            .rand_choice_receive_into(&mut ots)
            .await
            .map_err(|e| ot_err(Self::NAME, e))?;
        if ots.len() != count || choices.len() != count {
            return Err(Error::Malformed {
                what: "silent OT output",
                detail: "wrong number of OTs",
            });
        }
        Ok((ots, choices.iter().map(|c| c.unwrap_u8()).collect()))
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
