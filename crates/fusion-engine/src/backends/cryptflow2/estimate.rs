//! The `cryptflow2` backend's cost estimate ([`crate::estimate`]): SIMD HE
//! layers from fusion-he's plans (exact message sizes), field non-linear
//! layers from fusion-ot's cost formulas ([`fusion_ot::FieldCosts`]),
//! IKNP generation at 128 bits per ROT.

use fusion_he::simd::SimdParams;
use fusion_nn::fixed::PublicProgram;
use fusion_ot::{FieldCosts, FieldOtConfig};

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
                let (bits, rots, flights) = match op {
                    NonLinearOp::Relu => costs.relu(elems),
                    NonLinearOp::ReluTruncate { bits } => {
                        let (b1, r1, f1) = costs.relu(elems);
                        let (b2, r2, f2) = costs.truncate(elems, *bits);
                        (b1 + b2, r1 + r2, f1 + f2)
                    }
                    NonLinearOp::Truncate { bits, .. } => costs.truncate(elems, *bits),
                    NonLinearOp::MaxPool { windows, .. } => maxpool_levels(
                        windows.iter().map(Vec::len),
                    )
                    .iter()
                    .fold((0, 0, 0), |(b, r, f), &pairs| {
                        let (b1, r1, f1) = costs.relu(pairs as usize * n);
                        (b + b1, r + r1, f + f1)
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
                    offline: Traffic::balanced_bits(rots * IKNP_BITS_PER_ROT),
                    online: Traffic::balanced_bits(bits),
                    flights,
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
