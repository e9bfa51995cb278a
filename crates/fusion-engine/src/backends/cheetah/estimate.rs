//! The `cheetah` backend's cost estimate ([`crate::estimate`]): HE linear
//! layers from fusion-he's plans (exact ciphertext sizes), OT non-linear
//! layers from fusion-ot's cost formulas, ROT generation per flavour.

use fusion_he::{HeParams, PlanOptions};
use fusion_nn::fixed::PublicProgram;

use super::config::OtKind;
use super::he::plans;
use crate::error::{SecureError, SecureResult};
use crate::estimate::{
    CostEstimate, IKNP_BITS_PER_ROT, SILENT_BYTES_PER_ROT, StepCost, Traffic, ot_op,
};
use crate::schedule::{ActionKind, Schedule};

/// Traffic of generating `rots` random OTs of `flavour` (both directions
/// together, balanced: the engine generates them in both directions).
pub fn rot_generation(flavour: OtKind, rots: u64) -> Traffic {
    match flavour {
        OtKind::Silent => Traffic::balanced_bits((rots as f64 * SILENT_BYTES_PER_ROT * 8.0) as u64),
        OtKind::Iknp => Traffic::balanced_bits(rots * IKNP_BITS_PER_ROT),
    }
}

/// The estimate for one pass of `n` samples of `program`.
pub fn estimate(
    program: &PublicProgram,
    params: &HeParams,
    opts: &PlanOptions,
    flavour: OtKind,
    block_bits: u32,
    n: usize,
) -> SecureResult<CostEstimate> {
    let schedule = Schedule::new(program)?;
    let plans = plans(params, opts, program, n)?;
    let l = program.ring().bits();
    let mut steps = Vec::new();
    for a in &schedule.actions {
        let name = program.steps[a.step].name.clone();
        match &a.kind {
            ActionKind::Local => {}
            ActionKind::Linear => {
                let plan =
                    plans.get(a.step).cloned().flatten().ok_or_else(|| {
                        SecureError::Config(format!("no HE plan for step `{name}`"))
                    })?;
                steps.push(StepCost {
                    step: a.step,
                    name,
                    op: "linear".into(),
                    offline: Traffic::default(),
                    online: Traffic {
                        client_to_server: plan.bytes_up() as u64,
                        server_to_client: plan.bytes_down() as u64,
                    },
                    flights: 2,
                });
            }
            ActionKind::NonLinear(op) => {
                let elems = n * program.value_shape(a.inputs[0]).iter().product::<usize>();
                let (bits, rots, flights) = ot_op(op, elems, n, l, block_bits);
                steps.push(StepCost {
                    step: a.step,
                    name,
                    op: op.tag().into(),
                    offline: rot_generation(flavour, rots),
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
        setup_note: format!(
            "setup (not included): the client's public key{}, and the base OTs",
            if params.reply_packing_levels() > 0 {
                " and Galois keys"
            } else {
                ""
            }
        ),
    })
}
