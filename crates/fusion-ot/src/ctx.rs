//! Shared context of the protocols: role, ring, block size, and the helper that
//! runs CPU-heavy message computation on the worker pool instead of the async
//! runtime.

use fusion_core::ring::Ring;
use rand::{SeedableRng, rngs::ChaCha20Rng};

use crate::error::{Error, Result};

/// Which party we are. The server (`P0`) holds the model, the client (`P1`) the
/// inputs; in the protocols the roles only decide who adds public constants
/// and which half of a batch each party serves as OT sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Party `P0`.
    Server,
    /// Party `P1`.
    Client,
}

impl Role {
    /// Whether this is `P0` (the server).
    pub const fn is_p0(self) -> bool {
        matches!(self, Role::Server)
    }

    /// The other party.
    pub const fn peer(self) -> Role {
        match self {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        }
    }
}

/// What a protocol step needs to know besides its inputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub role: Role,
    pub ring: Ring,
    /// Millionaires' block size `m`.
    pub m: u32,
}

impl Ctx {
    pub(crate) const fn p0(&self) -> bool {
        self.role.is_p0()
    }

    /// In batches split between the parties, elements `0..first_half(n)` have
    /// `P0` as OT sender and the rest `P1`.
    pub(crate) const fn first_half(n: usize) -> usize {
        n.div_ceil(2)
    }

    /// The range of a batch of `n` in which we are the OT sender.
    pub(crate) fn my_sender_range(&self, n: usize) -> std::ops::Range<usize> {
        let h = Self::first_half(n);
        if self.p0() { 0..h } else { h..n }
    }

    /// The range of a batch of `n` in which we are the OT receiver.
    pub(crate) fn my_receiver_range(&self, n: usize) -> std::ops::Range<usize> {
        let h = Self::first_half(n);
        if self.p0() { h..n } else { 0..h }
    }
}

/// What a prime-field protocol step needs to know besides its inputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldCtx {
    pub role: Role,
    pub field: fusion_core::field::PrimeField,
    /// Millionaires' block size `m`.
    pub m: u32,
}

impl FieldCtx {
    pub(crate) const fn p0(&self) -> bool {
        self.role.is_p0()
    }

    /// `ceil(log2 p)`: every canonical element is below `2^w`.
    pub(crate) fn w(&self) -> u32 {
        self.field.bits()
    }

    /// `v mod p` for `v < 2^w` (at most one subtraction, since `2^w < 2p`),
    /// without branching on `v` (a received share).
    pub(crate) fn reduce_once(&self, v: u64) -> u64 {
        let t = v.wrapping_sub(self.field.modulus());
        let keep = 0u64.wrapping_sub(t >> 63);
        (v & keep) | (t & !keep)
    }

    /// `(p - 1) / 2`: the largest "positive" element.
    pub(crate) fn half(&self) -> u64 {
        (self.field.modulus() - 1) / 2
    }
}

/// `2^k - 1` for `k <= 64`.
#[inline]
pub(crate) const fn mask(k: u32) -> u64 {
    if k >= 64 { u64::MAX } else { (1u64 << k) - 1 }
}

/// Derives a fresh, independent RNG for one protocol step.
pub(crate) fn fork(rng: &mut ChaCha20Rng) -> ChaCha20Rng {
    ChaCha20Rng::from_rng(rng)
}

/// Runs `f` on the rayon worker pool (CryProt's `spawn_compute`) so that message
/// computation on large batches never blocks the async runtime.
pub(crate) async fn compute<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    cryprot_core::tokio_rayon::spawn_compute(f)
        .await
        .map_err(|_| Error::ComputePanic)
}
