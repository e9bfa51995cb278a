//! The OT engine of a session, whichever flavour the server announced.
//!
//! [`fusion_ot::OtEngine`] is generic over its OT flavour; the flavour is a
//! run-time choice here (announced by the server, [`OtKind`]), so [`AnyOt`]
//! dispatches to one of the two instantiations. Both parties call the same
//! methods in the same order (the schedule fixes it).
//!
//! [`AnyOt::op_rots`] gives the ROTs a schedule action consumes (public
//! sizes only), so both parties can queue a whole pass's ROTs at its start
//! ([`AnyOt::schedule_rots`]), in runs as large as [`OtConfig::max_rots`]
//! allows (silent OT's communication grows sublinearly with the number of
//! ROTs, so a few large runs send fewer bytes than many small ones), and
//! generate them in the background while the pass's HE layers run.

use cryprot_net::Connection;
use fusion_core::ring::Ring;
use fusion_ot::{Iknp, OtConfig, OtEngine, Role, Silent, Stats};
use rand::{CryptoRng, Rng};

use super::config::OtKind;
use crate::schedule::{NonLinearOp, TruncMode};

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
        meter: &fusion_net::Meter,
        role: Role,
        ring: Ring,
        config: OtConfig,
        rng: &mut R,
    ) -> fusion_ot::Result<Self> {
        Ok(match kind {
            OtKind::Silent => AnyOt::Silent(Box::new(
                OtEngine::<Silent>::setup_on(conn, Some(meter), role, ring, config, rng).await?,
            )),
            OtKind::Iknp => AnyOt::Iknp(Box::new(
                OtEngine::<Iknp>::setup_on(conn, Some(meter), role, ring, config, rng).await?,
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

    /// See [`OtEngine::relu`].
    pub async fn relu(&mut self, x: &[u64]) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.relu(x).await)
    }

    /// See [`OtEngine::relu_truncate`] and, with `input_bits`,
    /// [`OtEngine::relu_truncate_bounded`].
    pub async fn relu_truncate(
        &mut self,
        x: &[u64],
        bits: u32,
        input_bits: Option<u32>,
    ) -> fusion_ot::Result<Vec<u64>> {
        match input_bits {
            Some(k) => dispatch!(self, e => e.relu_truncate_bounded(x, bits, k).await),
            None => dispatch!(self, e => e.relu_truncate(x, bits).await),
        }
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

    /// See [`OtEngine::max_pool_bounded`] (`input_bits` = `l - 1`: the
    /// range contract only, [`OtEngine::max_pool`]).
    pub async fn max_pool(
        &mut self,
        x: &[u64],
        windows: &[Vec<usize>],
        input_bits: u32,
    ) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.max_pool_bounded(x, windows, input_bits).await)
    }

    /// The signed input width `op`'s comparisons read
    /// ([`NonLinearOp::input_width`]; the ring width for ops without one).
    fn width(&self, op: &NonLinearOp) -> u32 {
        let l = dispatch!(self, e => e.ring().bits());
        op.input_width(l).unwrap_or(l)
    }

    /// See [`OtEngine::square`].
    pub async fn square(&mut self, x: &[u64]) -> fusion_ot::Result<Vec<u64>> {
        dispatch!(self, e => e.square(x).await)
    }

    /// See [`OtEngine::schedule_rots`].
    pub fn schedule_rots(&mut self, send: usize, recv: usize) -> fusion_ot::Result<()> {
        dispatch!(self, e => e.schedule_rots(send, recv))
    }

    /// ROTs (as sender, as receiver) the non-linear op `op` consumes on a
    /// chunk of `n` samples with `elems` input elements (public sizes only).
    pub fn op_rots(&self, op: &NonLinearOp, elems: usize, n: usize) -> (usize, usize) {
        match op {
            NonLinearOp::Relu { .. } => {
                let k = self.width(op);
                dispatch!(self, e => e.relu_bounded_rots(elems, k))
            }
            NonLinearOp::ReluTruncate { bits, input_bits } => match input_bits {
                Some(k) => dispatch!(self, e => e.relu_truncate_bounded_rots(elems, *bits, *k)),
                None => dispatch!(self, e => e.relu_truncate_rots(elems, *bits)),
            },
            NonLinearOp::Truncate { bits, mode } => match mode {
                TruncMode::Signed | TruncMode::NonNeg => {
                    dispatch!(self, e => e.truncate_rots(elems, *bits))
                }
                TruncMode::Exact => dispatch!(self, e => e.truncate_exact_rots(elems, *bits)),
            },
            NonLinearOp::MaxPool { .. } => {
                let k = self.width(op);
                op.pool_stages()
                    .into_iter()
                    .map(|(windows, _)| {
                        let one: Vec<usize> = windows.iter().map(Vec::len).collect();
                        dispatch!(self, e => e.max_pool_bounded_rots(&one.repeat(n), k))
                    })
                    .fold((0, 0), |(s, r), (a, b)| (s + a, r + b))
            }
            NonLinearOp::Square => dispatch!(self, e => e.square_rots(elems)),
        }
    }

    /// Runs the non-linear op `op` on this party's share `x` of `n` samples.
    pub async fn run(
        &mut self,
        op: &NonLinearOp,
        x: &[u64],
        n: usize,
    ) -> fusion_ot::Result<Vec<u64>> {
        match op {
            NonLinearOp::Relu { .. } => {
                let k = self.width(op);
                dispatch!(self, e => e.relu_bounded(x, k).await)
            }
            NonLinearOp::ReluTruncate { bits, input_bits } => {
                self.relu_truncate(x, *bits, *input_bits).await
            }
            NonLinearOp::Truncate { bits, mode } => match mode {
                TruncMode::Signed => self.truncate(x, *bits).await,
                TruncMode::NonNeg => self.truncate_nonneg(x, *bits).await,
                TruncMode::Exact => self.truncate_exact(x, *bits).await,
            },
            NonLinearOp::MaxPool { .. } => {
                let k = self.width(op);
                let mut v = x.to_vec();
                for (windows, in_len) in op.pool_stages() {
                    let w = crate::schedule::batch_windows(windows, in_len, n);
                    v = self.max_pool(&v, &w, k).await?;
                }
                Ok(v)
            }
            NonLinearOp::Square => self.square(x).await,
        }
    }
}
