//! The `delphi` backend's cost estimate ([`crate::estimate`]), and the
//! garbled-circuit part shared with the `aby` backend.

use std::collections::HashSet;

use fusion_core::ring::Ring;
use fusion_he::{HeParams, PlanOptions};
use fusion_nn::fixed::{PublicProgram, ValueId};

use super::gc;
use crate::backends::cheetah::he::plans;
use crate::error::{SecureError, SecureResult};
use crate::estimate::{CostEstimate, StepCost, Traffic, gc_step, packed_bytes};
use crate::schedule::{Action, ActionKind, NonLinearOp, Schedule};

/// AND gates of the garbled circuit of `op` on `elems` input elements of a
/// pass of `n` samples (`gc.rs`). Element-wise ops are counted on a
/// one-element circuit and scaled; max pool by its closed form (`l - 1` per
/// input for the share addition, `2l(k - 1)` per window of `k` for the
/// comparisons and multiplexers, `l - 1` per output for the mask).
pub fn and_gates(op: &NonLinearOp, ring: Ring, n: usize, elems: usize) -> SecureResult<u64> {
    let l = u64::from(ring.bits());
    match op {
        NonLinearOp::MaxPool { windows, .. } => {
            let per_sample: u64 = windows
                .iter()
                .map(|w| 2 * l * (w.len().max(1) as u64 - 1) + (l - 1))
                .sum();
            Ok(elems as u64 * (l - 1) + n as u64 * per_sample)
        }
        _ => {
            let one = gc::build(op, ring, 1, 1, 0, false)?;
            Ok(one.circuit.and_count() as u64 * elems as u64)
        }
    }
}

/// The garbled non-linear steps of a schedule and the values whose client
/// share is known offline (outputs of linear actions), shared by `delphi`
/// and `aby`: one [`StepCost`] for the non-linear action `a`.
pub fn nonlinear_step(
    program: &PublicProgram,
    known: &HashSet<ValueId>,
    a: &Action,
    op: &NonLinearOp,
    n: usize,
) -> SecureResult<StepCost> {
    let ring = program.ring();
    let v = *a
        .inputs
        .first()
        .ok_or_else(|| SecureError::Config(format!("step {} has no input", a.step)))?;
    let elems = n * program.value_shape(v).iter().product::<usize>();
    let outputs = n * program.value_shape(a.output).iter().product::<usize>();
    let ands = and_gates(op, ring, n, elems)?;
    let (offline, online, flights) =
        gc_step(ands, elems, outputs, ring.bits(), !known.contains(&v));
    Ok(StepCost {
        step: a.step,
        name: program.steps[a.step].name.clone(),
        op: op.tag().into(),
        offline,
        online,
        flights,
    })
}

/// The linear actions' online part in `delphi` and `aby`: the client opens
/// its masked share (`⌈len·l/8⌉` bytes), the server answers nothing.
pub fn masked_linear_online(program: &PublicProgram, a: &Action, n: usize) -> Traffic {
    let elems = n * program.value_shape(a.inputs[0]).iter().product::<usize>();
    Traffic {
        client_to_server: packed_bytes(elems, program.ring().bits()),
        server_to_client: 0,
    }
}

/// The output stage of `delphi` and `aby`: the server's packed share.
pub fn output(program: &PublicProgram, schedule: &Schedule, n: usize) -> Traffic {
    let out = n * program
        .value_shape(schedule.output)
        .iter()
        .product::<usize>();
    Traffic {
        client_to_server: 0,
        server_to_client: packed_bytes(out, program.ring().bits()),
    }
}

/// The estimate for one pass of `n` samples of `program`.
pub fn estimate(
    program: &PublicProgram,
    params: &HeParams,
    opts: &PlanOptions,
    n: usize,
) -> SecureResult<CostEstimate> {
    let schedule = Schedule::new(program)?;
    let plans = plans(params, opts, program, n)?;
    let mut known = HashSet::new();
    let mut steps = Vec::new();
    for a in &schedule.actions {
        match &a.kind {
            ActionKind::Local => {}
            ActionKind::Linear => {
                let name = program.steps[a.step].name.clone();
                let plan =
                    plans.get(a.step).cloned().flatten().ok_or_else(|| {
                        SecureError::Config(format!("no HE plan for step `{name}`"))
                    })?;
                known.insert(a.output);
                steps.push(StepCost {
                    step: a.step,
                    name,
                    op: "linear".into(),
                    offline: Traffic {
                        client_to_server: plan.bytes_up() as u64,
                        server_to_client: plan.bytes_down() as u64,
                    },
                    online: masked_linear_online(program, a, n),
                    flights: 1,
                });
            }
            ActionKind::NonLinear(op) => steps.push(nonlinear_step(program, &known, a, op, n)?),
        }
    }
    Ok(CostEstimate {
        backend: super::NAME,
        n,
        steps,
        output: output(program, &schedule, n),
        setup_note: "setup (not included): the client's public key and the IKNP base OTs".into(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_max_pool_gate_formula_matches_the_built_circuit() {
        let ring = Ring::new(12).expect("ring");
        let windows = vec![vec![0, 1, 2, 3], vec![2, 3], vec![4, 5, 6]];
        let op = NonLinearOp::MaxPool {
            windows: Arc::new(windows),
            in_len: 7,
            input_bits: None,
            stages: None,
        };
        for n in [1, 3] {
            let built = gc::build(&op, ring, n, 7 * n, 0, true).expect("build");
            assert_eq!(
                and_gates(&op, ring, n, 7 * n).expect("formula"),
                built.circuit.and_count() as u64
            );
        }
    }

    #[test]
    fn element_wise_gate_counts_scale_with_the_elements() {
        let ring = Ring::new(16).expect("ring");
        for op in [
            NonLinearOp::Relu { input_bits: None },
            NonLinearOp::ReluTruncate {
                bits: 4,
                input_bits: None,
            },
            NonLinearOp::Square,
        ] {
            let built = gc::build(&op, ring, 5, 10, 0, false).expect("build");
            assert_eq!(
                and_gates(&op, ring, 5, 10).expect("count"),
                built.circuit.and_count() as u64
            );
        }
    }
}
