//! Public cost formulas of the prime-field protocols, without a session:
//! what [`crate::FieldOtEngine`]'s methods send for a batch of `n`
//! elements (the same plans the protocols run, so both agree exactly; the
//! engine's `*_cost` methods and the tests in `tests/field.rs` check the
//! formulas against the metered runs).

use fusion_core::field::PrimeField;

use crate::ctx::{FieldCtx, Role};
use crate::field_engine::FieldOtConfig;
use crate::{field_drelu, field_millionaires, field_truncate, kk13};

/// The cost formulas for one field and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldCosts {
    field: PrimeField,
    config: FieldOtConfig,
}

impl FieldCosts {
    /// The formulas for `field` and `config`.
    pub fn new(field: PrimeField, config: FieldOtConfig) -> Self {
        FieldCosts { field, config }
    }

    fn ctx(&self) -> FieldCtx {
        FieldCtx {
            role: Role::Server,
            field: self.field,
            m: self.config.block_bits,
        }
    }

    /// Runs a batch of `n` is split into (each repeats the flights).
    fn runs(&self, n: usize) -> u32 {
        u32::try_from(n.div_ceil(self.config.chunk.max(1)).max(1)).unwrap_or(u32::MAX)
    }

    /// Flights of one run of a comparison plan.
    fn comparison_flights(plan: &field_millionaires::Plan) -> u32 {
        2 + plan.tree_levels() as u32
    }

    /// [`crate::FieldOtEngine::drelu`] on `n` elements: protocol bits on
    /// the wire (both directions, without framing and call headers), IKNP
    /// ROTs consumed (both directions together) and flights.
    pub fn drelu(&self, n: usize) -> (u64, u64, u32) {
        let plan = field_drelu::plan(&self.ctx());
        let rots = plan.cost(n);
        (
            plan.wire_bits(n, n.div_ceil(2)) as u64,
            (rots.send + rots.recv) as u64,
            Self::comparison_flights(&plan) * self.runs(n),
        )
    }

    /// [`crate::FieldOtEngine::relu`]: DReLU and the multiplexer (2 more
    /// flights, 2 ROTs and `2(1 + 2η)` bits per element).
    pub fn relu(&self, n: usize) -> (u64, u64, u32) {
        let (b, r, f) = self.drelu(n);
        let eta = self.field.bits() as usize;
        let mux_bits = 2 * 8 * n.div_ceil(8) + 2 * 8 * (n * 2 * eta).div_ceil(8);
        (b + mux_bits as u64, r + 2 * n as u64, f + 2 * self.runs(n))
    }

    /// [`crate::FieldOtEngine::truncate`] by `shift` (nothing for 0).
    pub fn truncate(&self, n: usize, shift: u32) -> (u64, u64, u32) {
        if shift == 0 || n == 0 {
            return (0, 0, 0);
        }
        let plan = field_truncate::plan(&self.ctx(), shift);
        let h = n.div_ceil(2);
        let eta = self.field.bits() as usize;
        let kk = 8 * (kk13::matrix_bytes(h) + kk13::matrix_bytes(n - h))
            + 8 * ((h * 8 * eta).div_ceil(8) + ((n - h) * 8 * eta).div_ceil(8));
        let rots = plan.cost(n);
        (
            (plan.wire_bits(n, h) + kk) as u64,
            (rots.send + rots.recv) as u64,
            (Self::comparison_flights(&plan) + 2) * self.runs(n),
        )
    }
}
