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
//!   sublinear in the number of OTs. A run's fixed cost is its PPRF: 248
//!   punctured trees, each needing one base OT per level (about 4000 base OTs
//!   for `2^22` OTs). The first run of an instance gets them from IKNP (128
//!   bits from the receiver per base OT); every later run takes them from
//!   random OTs the previous run generated beyond those asked for and set
//!   aside (Ferret's "bootstrapping", Yang et al., CCS 2020), derandomised
//!   with one bit per base OT. That is about 30% fewer bytes per run (0.415
//!   to 0.285 MB for `2^22` OTs in each direction). The set-aside OTs are
//!   used for nothing else, so each base OT is still used once.
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
use crate::pool::Batch;

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
    /// ROTs a run generates beyond the count asked for, for the flavour's
    /// own use (0 unless the flavour says otherwise). The engine sizes its
    /// largest runs so that the total is [`crate::OtConfig::max_rots`]: a
    /// power of two by default, on which CryProt's silent OT runs about 5%
    /// faster than on a few thousand OTs more.
    fn run_overhead() -> usize {
        0
    }
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

/// The sender half of a [`Silent`] instance: CryProt's sender plus the
/// random OTs set aside from the previous run as the next run's base OTs
/// (our sender key pairs; wiped when replaced or dropped, like every batch
/// of ROTs).
pub struct SilentSender {
    inner: SemiHonestSilentOtSender,
    base: Batch,
}

/// The receiver half of a [`Silent`] instance (see [`SilentSender`]; the
/// reserve holds our receiver keys and choice bits).
pub struct SilentReceiver {
    inner: SemiHonestSilentOtReceiver,
    base: Batch,
}

/// Random OTs every [`Silent`] run generates beyond those asked for and sets
/// aside as the next run's base OTs: enough for any run of up to
/// [`crate::MAX_CONFIG_SIZE`] OTs (plus the reserve itself), rounded up to a
/// multiple of 128 (4992 with CryProt's parameters: 248 PPRF trees of depth
/// up to 20).
fn silent_reserve() -> usize {
    static RESERVE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *RESERVE.get_or_init(|| {
        // The reserve is part of the run it must cover; 8192 bounds it.
        SemiHonestSilentOtSender::base_ots_needed(crate::MAX_CONFIG_SIZE + 8192)
            .next_multiple_of(128)
    })
}

/// Whether a [`Silent`] run of `total` OTs takes its base OTs from a reserve
/// of `have` (otherwise from IKNP): the same answer on both halves of an
/// instance, whose reserves mirror each other.
fn from_reserve(have: usize, total: usize) -> bool {
    have >= SemiHonestSilentOtSender::base_ots_needed(total)
}

impl OtFlavour for Silent {
    type Sender = SilentSender;
    type Receiver = SilentReceiver;
    const NAME: &'static str = "silent";
    const GRANULARITY: usize = 128;

    /// The reserve of base OTs for the next run (4992 OTs; see [`SilentSender`]).
    fn run_overhead() -> usize {
        silent_reserve()
    }

    fn sender(conn: Connection, _rng: &mut ChaCha20Rng) -> Self::Sender {
        SilentSender {
            inner: SemiHonestSilentOtSender::new(conn),
            base: Batch::default(),
        }
    }

    fn receiver(conn: Connection, _rng: &mut ChaCha20Rng) -> Self::Receiver {
        SilentReceiver {
            inner: SemiHonestSilentOtReceiver::new(conn),
            base: Batch::default(),
        }
    }

    /// The first run takes its PPRF base OTs from IKNP, every later run from
    /// the reserve the previous run set aside; each run sets aside a new
    /// reserve (see [`SilentSender`]). Both halves of an instance decide
    /// alike (on public counts and mirrored reserves).
    async fn send(s: &mut Self::Sender, count: usize) -> Result<Vec<[Block; 2]>> {
        let total = count + silent_reserve();
        let mut ots: Vec<[Block; 2]> = vec![[Block::ZERO; 2]; total];
        if !from_reserve(s.base.send.len(), total) {
            s.inner.send_into(&mut ots).await
        } else {
            s.inner
                .random_send_into_with_base(total, &s.base.send, &mut ots)
                .await
        }
        .map_err(|e| ot_err(Self::NAME, e))?;
        // The old reserve is wiped as it is dropped.
        s.base = Batch {
            send: ots.split_off(count),
            recv: Vec::new(),
            choices: Vec::new(),
        };
        Ok(ots)
    }

    async fn receive(
        r: &mut Self::Receiver,
        count: usize,
        _rng: &mut ChaCha20Rng,
    ) -> Result<(Vec<Block>, Vec<u8>)> {
        let total = count + silent_reserve();
        let mut ots: Vec<Block> = vec![Block::ZERO; total];
        let choices = if !from_reserve(r.base.recv.len(), total) {
            r.inner.rand_choice_receive_into(&mut ots).await
        } else {
            let base_choices: Vec<Choice> = r.base.choices.iter().map(|&c| c.into()).collect();
            r.inner
                .rand_choice_receive_into_with_base(&r.base.recv, &base_choices, &mut ots)
                .await
        }
        .map_err(|e| ot_err(Self::NAME, e))?;
        if ots.len() != total || choices.len() != total {
            return Err(Error::Malformed {
                what: "silent OT output",
                detail: "wrong number of OTs",
            });
        }
        let mut choices: Vec<u8> = choices.iter().map(|c| c.unwrap_u8()).collect();
        // The old reserve is wiped as it is dropped.
        r.base = Batch {
            send: Vec::new(),
            recv: ots.split_off(count),
            choices: choices.split_off(count),
        };
        Ok((ots, choices))
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
