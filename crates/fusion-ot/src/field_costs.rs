//! Public cost formulas of the prime-field protocols, without a session:
//! what [`crate::FieldOtEngine`]'s methods send for a batch of `n`
//! elements, computed from the same plans the protocols run (the engine's
//! `*_cost` methods delegate here; `tests/field.rs` and `benches/field.rs`
//! check the formulas against the metered runs).
//!
//! Each method returns a [`FieldCost`]: protocol bits on the wire (both
//! directions, without framing and call headers), IKNP random OTs consumed
//! per direction (their generation adds 128 bits each, on CryProt's streams)
//! and flights.

use fusion_core::field::PrimeField;

use crate::ctx::{FieldCtx, Role};
use crate::field_engine::FieldOtConfig;
use crate::field_millionaires::Plan;
use crate::{field_drelu, field_relu_truncate, field_truncate};

/// The cost of one protocol call on a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldCost {
    /// Protocol bits on the wire, both directions.
    pub bits: u64,
    /// IKNP ROTs consumed per direction.
    pub rots_per_direction: u64,
    /// Flights (sequential one-way messages), over all runs of the batch.
    pub flights: u64,
}

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

    /// Protocol runs a batch of `n` is split into (each repeats the flights).
    fn runs(&self, n: usize) -> u64 {
        n.div_ceil(self.config.chunk.max(1)).max(1) as u64
    }

    /// Flights of one comparison: the leaf OTs (2) and the AND tree.
    fn comparison_flights(plan: &Plan) -> u64 {
        2 + plan.tree_levels() as u64
    }

    /// Bits of `n` multiplexers (choice corrections and two `η`-bit
    /// messages per element, in both directions).
    fn mux_bits(&self, n: usize) -> usize {
        let eta = self.field.bits() as usize;
        2 * 8 * n.div_ceil(8) + 2 * 8 * (n * 2 * eta).div_ceil(8)
    }

    /// [`crate::FieldOtEngine::millionaires`] on `bits`-bit inputs.
    pub fn millionaires(&self, n: usize, bits: u32) -> FieldCost {
        let plan = Plan::new(&[bits], self.config.block_bits);
        FieldCost {
            bits: plan.wire_bits(n, n) as u64,
            rots_per_direction: plan.cost(n).send as u64,
            flights: Self::comparison_flights(&plan) * self.runs(n),
        }
    }

    /// [`crate::FieldOtEngine::drelu`].
    pub fn drelu(&self, n: usize) -> FieldCost {
        let plan = field_drelu::plan(&self.ctx());
        FieldCost {
            bits: plan.wire_bits(n, n.div_ceil(2)) as u64,
            rots_per_direction: plan.cost(n).send as u64,
            flights: Self::comparison_flights(&plan) * self.runs(n),
        }
    }

    /// [`crate::FieldOtEngine::relu`]: DReLU and the multiplexer (2 more
    /// flights and 1 more ROT per direction per element).
    pub fn relu(&self, n: usize) -> FieldCost {
        let d = self.drelu(n);
        FieldCost {
            bits: d.bits + self.mux_bits(n) as u64,
            rots_per_direction: d.rots_per_direction + n as u64,
            flights: d.flights + 2 * self.runs(n),
        }
    }

    /// [`crate::FieldOtEngine::truncate`] by `shift` (nothing for 0).
    pub fn truncate(&self, n: usize, shift: u32) -> FieldCost {
        if shift == 0 || n == 0 {
            return FieldCost::default();
        }
        let ctx = self.ctx();
        let plan = field_truncate::plan(&ctx, shift);
        FieldCost {
            bits: (plan.wire_bits(n, n.div_ceil(2)) + field_truncate::combine_wire_bits(&ctx, n))
                as u64,
            rots_per_direction: plan.cost(n).send as u64,
            flights: (Self::comparison_flights(&plan) + 2) * self.runs(n),
        }
    }

    /// [`crate::FieldOtEngine::relu_truncate`] by `shift` (ReLU for 0).
    pub fn relu_truncate(&self, n: usize, shift: u32) -> FieldCost {
        if shift == 0 {
            return self.relu(n);
        }
        let ctx = self.ctx();
        let plan = field_relu_truncate::plan(&ctx, shift);
        FieldCost {
            bits: (plan.wire_bits(n, n.div_ceil(2))
                + field_truncate::combine_wire_bits(&ctx, n)
                + self.mux_bits(n)) as u64,
            rots_per_direction: plan.cost(n).send as u64 + n as u64,
            flights: (Self::comparison_flights(&plan) + 4) * self.runs(n),
        }
    }
}
