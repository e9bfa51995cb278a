//! The OT engine of a session, whichever flavour the server announced.
//!
//! [`fusion_ot::OtEngine`] is generic over its OT flavour; the flavour is a
//! run-time choice here (announced by the server, [`OtKind`]), so [`AnyOt`]
//! dispatches to one of the two instantiations. Both parties call the same
//! methods in the same order (the schedule fixes it).

use cryprot_net::Connection;
use fusion_core::ring::Ring;
use fusion_ot::{Iknp, OtConfig, OtEngine, Role, Silent, Stats};
use rand::{CryptoRng, Rng};

use super::config::OtKind;

/// An OT engine of either flavour.
#[derive(Debug)]
pub enum AnyOt {
    /// Silent OT.
    Silent(Box<OtEngine<Silent>>),
    /// IKNP.
    Iknp(Box<OtEngine<Iknp>>),
}

macro_rules! dispatch {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            AnyOt::Silent($e) => $body,
            AnyOt::Iknp($e) => $body,
        }
    };
}

impl AnyOt {
    /// Sets up the engine of flavour `kind` on `conn` (both parties, same
    /// `kind`, `ring` and `config`; `config.parallel_ot` may differ).
    pub async fn setup<R: Rng + CryptoRng + ?Sized>(
        kind: OtKind,
        conn: Connection,
        role: Role,
        ring: Ring,
        config: OtConfig,
        rng: &mut R,
    ) -> fusion_ot::Result<Self> {
        Ok(match kind {
            OtKind::Silent => AnyOt::Silent(Box::new(
                OtEngine::<Silent>::setup_with(conn, role, ring, config, rng).await?,
            )),
            OtKind::Iknp => AnyOt::Iknp(Box::new(
                OtEngine::<Iknp>::setup_with(conn, role, ring, config, rng).await?,
            )),
        })
    }

    /// The flavour's name.
    pub fn flavour(&self) -> &'static str {
        dispatch!(self, e => e.flavour())
    }

    /// The engine's counters.
    pub fn stats(&self) -> Stats {
        dispatch!(self, e => e.stats())
    }

    /// See [`OtEngine::fence`].
    pub async fn fence(&mut self) -> fusion_ot::Result<()> {
        dispatch!(self, e => e.fence().await)
    }

    /// See [`OtEngine::relu`].
    pub async fn relu(&mut self, x: &[u64]) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.relu(x).await)
    }

    /// See [`OtEngine::relu_truncate`].
    pub async fn relu_truncate(&mut self, x: &[u64], bits: u32) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.relu_truncate(x, bits).await)
    }

    /// See [`OtEngine::truncate`].
    pub async fn truncate(&mut self, x: &[u64], bits: u32) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.truncate(x, bits).await)
    }

    /// See [`OtEngine::truncate_nonneg`].
    pub async fn truncate_nonneg(&mut self, x: &[u64], bits: u32) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.truncate_nonneg(x, bits).await)
    }

    /// See [`OtEngine::truncate_exact`].
    pub async fn truncate_exact(&mut self, x: &[u64], bits: u32) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.truncate_exact(x, bits).await)
    }

    /// See [`OtEngine::max_pool`].
    pub async fn max_pool(
        &mut self,
        x: &[u64],
        windows: &[Vec<usize>],
    ) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.max_pool(x, windows).await)
    }

    /// See [`OtEngine::square`].
    pub async fn square(&mut self, x: &[u64]) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.square(x).await)
    }
}
