//! The `cryptflow2` backend's cost estimate ([`crate::estimate`]): SIMD HE
//! layers from fusion-he's plans (exact message sizes), field non-linear
//! layers from fusion-ot's cost formulas ([`fusion_ot::FieldCosts`]),
//! IKNP generation at 128 bits per ROT.

use fusion_he::simd::SimdParams;
use fusion_nn::fixed::PublicProgram;
use fusion_ot::{FieldCost, FieldCosts, FieldOtConfig};

use super::linear::plans;
use crate::error::{SecureError, SecureResult};
use crate::estimate::{CostEstimate, IKNP_BITS_PER_ROT, StepCost, Traffic, maxpool_levels};
use crate::schedule::{ActionKind, NonLinearOp, Schedule};

/// Frame header bytes per message.
const FRAME: u64 = fusion_net::message::HEADER_BYTES as u64;

/// The estimate for one pass of `n` samples of `program`.
pub fn estimate(
    program: &PublicProgram,
    params: &SimdParams,
    ot: FieldOtConfig,
    n: usize,
) -> SecureResult<CostEstimate> {
    let schedule = Schedule::new(program)?;
    let plans = plans(params, program, n)?;
    let costs = FieldCosts::new(params.field(), ot);
    let mut steps = Vec::new();
    for a in &schedule.actions {
        let name = program.steps[a.step].name.clone();
        match &a.kind {
            ActionKind::Local => {}
            ActionKind::Linear => {
                let plan = plans.get(a.step).cloned().flatten().ok_or_else(|| {
                    SecureError::Config(format!("no SIMD plan for step `{name}`"))
                })?;
                steps.push(StepCost {
                    step: a.step,
                    name,
                    op: "linear".into(),
                    offline: Traffic::default(),
                    online: Traffic {
                        client_to_server: plan.query_bytes_len() as u64 + FRAME,
                        server_to_client: plan.reply_bytes_len() as u64 + FRAME,
                    },
                    flights: 2,
                });
            }
            ActionKind::NonLinear(op) => {
                let elems = n * program.value_shape(a.inputs[0]).iter().product::<usize>();
                let c = match op {
                    NonLinearOp::Relu { .. } => costs.relu(elems),
                    NonLinearOp::ReluTruncate { bits, .. } => costs.relu_truncate(elems, *bits),
                    NonLinearOp::Truncate { bits, .. } => costs.truncate(elems, *bits),
                    NonLinearOp::MaxPool { .. } => op
                        .pool_stages()
                        .into_iter()
                        .flat_map(|(windows, _)| maxpool_levels(windows.iter().map(Vec::len)))
                        .fold(FieldCost::default(), |t, pairs| {
                            let c = costs.relu(pairs as usize * n);
                            FieldCost {
                                bits: t.bits + c.bits,
                                rots_per_direction: t.rots_per_direction + c.rots_per_direction,
                                flights: t.flights + c.flights,
                            }
                        }),
                    NonLinearOp::Square => {
                        return Err(SecureError::Config(
                            "cryptflow2 has no square protocol".into(),
                        ));
                    }
                };
                steps.push(StepCost {
                    step: a.step,
                    name,
                    op: op.tag().into(),
                    offline: Traffic::balanced_bits(2 * c.rots_per_direction * IKNP_BITS_PER_ROT),
                    online: Traffic::balanced_bits(c.bits),
                    flights: u32::try_from(c.flights).unwrap_or(u32::MAX),
                });
            }
        }
    }
    let out = n * program
        .value_shape(schedule.output)
        .iter()
        .product::<usize>();
    Ok(CostEstimate {
        backend: super::NAME,
        n,
        steps,
        output: Traffic {
            client_to_server: 0,
            server_to_client: 8 * out as u64,
        },
        setup_note: "setup (not included): the client's public key and Galois keys, the IKNP base OTs and the KK13 base OTs".into(),
    })
}
