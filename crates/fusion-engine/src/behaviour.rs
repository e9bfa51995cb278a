//! The server's behaviour hook: how tests, demos and experiments make a
//! server misbehave without a single branch in the production server.
//!
//! [`crate::SecureServer`] takes an `Arc<dyn ServerBehaviour>`; the default,
//! [`Honest`], follows the protocol. A behaviour may
//!
//! * **replace the model** the server runs ([`ServerBehaviour::replacement`]),
//!   while the hello still announces the honest model's name (a cheating
//!   server serving a cheaper or weaker model), and
//! * **alter the server's output shares** of each batch
//!   ([`ServerBehaviour::begin_batch`] returns an [`OutputAlteration`] that
//!   sees every chunk's share before the output stage reveals it).
//!
//! That is the paper's adversary on the outputs (section IV: a chosen value at
//! chosen positions, or any model the server prefers); Fusion's checks on the
//! client are what catch it. The cheat modes of the command-line tools are
//! in [`crate::cheats`].
//!
//! The other direction, a **malicious client**, has its hook here too:
//! [`ClientDeviation`] sees the client's own share of every value before a
//! linear or non-linear step consumes it and may change it (MUSE's
//! share-shifting attack, Lehmkuhl et al., USENIX Security 2021). An honest
//! [`crate::SecureClient`] has none; attacks install one with
//! [`crate::SecureClient::set_deviation`]. The server has no code path that
//! knows about it: it cannot tell a shifted share from an honest one, which
//! is the point of the attack.

use std::fmt;

use rand::rngs::ChaCha20Rng;

use crate::domain::Domain;
use crate::server::ServedModel;

/// A client that deviates from the protocol by changing its own shares (see
/// the module docs). Attack and test code only.
pub trait ClientDeviation: Send + Sync + fmt::Debug {
    /// Called before program step `step` consumes the client's share `x` of
    /// its input (`m` samples starting at batch position `start`, batch-major,
    /// in `domain`); may change it in place.
    fn before_step(&self, step: usize, x: &mut [u64], start: usize, m: usize, domain: &Domain);

    /// Called on the client's share `y` of the program's output (`m x
    /// classes`, batch-major, in `domain`; chunk starting at batch position
    /// `start`) before the output mode's stage runs on it (the secure argmax
    /// in label mode) and the output is revealed; may change it in place.
    /// Default: leaves it alone.
    fn before_output(&self, y: &mut [u64], start: usize, m: usize, domain: &Domain) {
        let _ = (y, start, m, domain);
    }
}

/// How the server behaves (see the module docs).
pub trait ServerBehaviour: Send + Sync + fmt::Debug {
    /// A short name for logs (`honest`, `tamper:10:0`, ...).
    fn name(&self) -> String;

    /// The model the server runs instead of the announced one (it must have
    /// the announced model's input shape and classes). Default: none.
    fn replacement(&self) -> Option<&ServedModel> {
        None
    }

    /// Called at the start of every batch of `n` samples with `classes`
    /// outputs each; returns how this batch's output shares are altered.
    /// Default: not at all.
    fn begin_batch(
        &self,
        n: usize,
        classes: usize,
        rng: &mut ChaCha20Rng,
    ) -> Option<Box<dyn OutputAlteration>> {
        let _ = (n, classes, rng);
        None
    }
}

/// Alters the server's output shares of one batch.
pub trait OutputAlteration: Send {
    /// Alters the share `y` (`m x classes`, batch-major, in `domain`) of the
    /// chunk of `m` samples that starts at batch position `start`.
    fn alter(
        &mut self,
        y: &mut [u64],
        start: usize,
        m: usize,
        domain: &Domain,
        rng: &mut ChaCha20Rng,
    );
}

/// Follows the protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct Honest;

impl ServerBehaviour for Honest {
    fn name(&self) -> String {
        "honest".into()
    }
}
