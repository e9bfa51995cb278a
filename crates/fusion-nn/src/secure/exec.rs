//! Executing a [`Schedule`] on one party's shares.
//!
//! Both parties walk the same schedule on a chunk of `n` samples. Every value
//! is additively shared in `Z_{2^l}`; the client's share of the input is its
//! encoded input and the server's share is zero. Per action:
//!
//! * **Linear** (HE): the client encrypts its share, the server adds its own
//!   share into the ciphertexts, multiplies by its encoded weights, masks, and
//!   replies; both end with shares of `W x + b` (fusion-he). The server passes
//!   no share at all while its share is known to be zero (the first layer).
//! * **Local**: each party applies the public linear map
//!   ([`crate::fixed::Step::apply`]) to its own share; no messages.
//! * **Non-linear** (OT): both call the same fusion-ot protocol on their shares.
//!
//! At the start of a pass both parties generate the pass's ROTs in one
//! refill (see [`super::ot`]). Before an HE layer that follows OT traffic,
//! and before the output is exchanged, both parties run an OT fence (one-byte flight), as fusion-ot
//! requires before switching to large transfers on other streams of the same
//! QUIC connection. Every action is bounded by the step timeout, and its time
//! and bytes are charged to the meter phase of its class.
//!
//! What each party learns here: nothing but uniformly random shares and RLWE
//! ciphertexts under the client's key (see [`super`]).

use std::sync::Arc;
use std::time::Duration;

use fusion_core::ring::Ring;
use fusion_he::{HeChannel, HeClient, HeServer, LinearPlan, ServerLinear};
use fusion_net::Meter;
use rand::rngs::ChaCha20Rng;

use super::config::{Progress, ProgressFn};
use super::error::{SecureError, SecureResult};
use super::ot::AnyOt;
use super::schedule::{ActionKind, Schedule, TruncMode, batch_windows};
use super::stats::{PHASE_LINEAR, PHASE_LOCAL, PHASE_NONLINEAR};
use crate::fixed::{FixedProgram, OpClass};
use crate::tensor::RingTensor;

/// The party-specific half of the linear layers.
pub(crate) enum LinearSide<'a> {
    /// The client: its key and the public plans of this chunk size.
    Client {
        /// HE client (secret key).
        he: &'a Arc<HeClient>,
        /// Plans per step.
        plans: &'a [Option<Arc<LinearPlan>>],
    },
    /// The server: the client's public key and the encoded layers.
    Server {
        /// HE server (client's public key).
        he: &'a Arc<HeServer>,
        /// Encoded layers per step.
        layers: &'a [Option<Arc<ServerLinear>>],
    },
}

/// Everything one pass over a chunk needs.
pub(crate) struct Pass<'a> {
    pub program: &'a FixedProgram,
    pub schedule: &'a Schedule,
    pub ot: &'a mut AnyOt,
    /// Whether OT traffic happened since the last fence.
    pub ot_dirty: &'a mut bool,
    pub he_channel: &'a mut HeChannel,
    pub linear: LinearSide<'a>,
    pub meter: &'a Meter,
    pub timeout: Duration,
    pub rng: &'a mut ChaCha20Rng,
    pub progress: Option<&'a ProgressFn>,
    /// Steps done before this pass and in the whole batch (progress reports).
    pub progress_base: usize,
    pub progress_total: usize,
}

/// Runs `fut` with the step timeout.
pub(crate) async fn timed<T, E: Into<SecureError>>(
    timeout: Duration,
    what: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> SecureResult<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(SecureError::Timeout {
            what: what(),
            after: timeout,
        }),
    }
}

/// Fences the OT streams if OT traffic happened since the last fence.
pub(crate) async fn fence_if_dirty(
    ot: &mut AnyOt,
    dirty: &mut bool,
    meter: &Meter,
    timeout: Duration,
) -> SecureResult<()> {
    if *dirty {
        let _phase = meter.phase(PHASE_NONLINEAR);
        timed(timeout, || "fencing the OT streams".into(), ot.fence()).await?;
        *dirty = false;
    }
    Ok(())
}

impl Pass<'_> {
    /// Runs the schedule on this party's share `input` of a chunk of `n`
    /// samples; returns this party's share of the output.
    pub(crate) async fn run(self, input: Vec<u64>, n: usize) -> SecureResult<Vec<u64>> {
        let ring = self.program.ring();
        let n_values = self.program.steps.len() + 1;
        let mut values: Vec<Option<Vec<u64>>> = vec![None; n_values];
        // Whether this party's share of a value is known to be zero.
        let mut zero = vec![false; n_values];
        zero[0] = matches!(self.linear, LinearSide::Server { .. });
        let in_len: usize = self.program.input_shape.iter().product();
        if input.len() != n * in_len {
            return Err(SecureError::Config(format!(
                "input share of {} values for {n} samples of {in_len}",
                input.len()
            )));
        }
        values[0] = Some(input);
        let schedule = self.schedule;
        reserve_rots(self.program, schedule, self.ot, n, self.meter, self.timeout).await?;
        *self.ot_dirty = true;
        for (a, action) in schedule.actions.iter().enumerate() {
            let step = &self.program.steps[action.step];
            let ins: Vec<&Vec<u64>> = action
                .inputs
                .iter()
                .map(|&v| {
                    values[v]
                        .as_ref()
                        .ok_or_else(|| SecureError::Config(format!("value {v} is not available")))
                })
                .collect::<SecureResult<_>>()?;
            let what = || format!("running step `{}` ({})", step.name, action.kind.tag());
            let phase = match action.kind.class() {
                OpClass::Linear => PHASE_LINEAR,
                OpClass::Local => PHASE_LOCAL,
                OpClass::NonLinear => PHASE_NONLINEAR,
            };
            let out = match &action.kind {
                ActionKind::Linear => {
                    fence_if_dirty(self.ot, self.ot_dirty, self.meter, self.timeout).await?;
                    let _phase = self.meter.phase(phase);
                    let x = ins[0].clone();
                    match &self.linear {
                        LinearSide::Client { he, plans } => {
                            let plan = plans[action.step].as_ref().ok_or_else(|| {
                                SecureError::Config(format!("no HE plan for step {}", action.step))
                            })?;
                            let (y, _) = timed(
                                self.timeout,
                                what,
                                fusion_he::client_layer(
                                    self.he_channel,
                                    he,
                                    plan,
                                    x,
                                    &mut *self.rng,
                                ),
                            )
                            .await?;
                            y
                        }
                        LinearSide::Server { he, layers } => {
                            let layer = layers[action.step].as_ref().ok_or_else(|| {
                                SecureError::Config(format!("no HE layer for step {}", action.step))
                            })?;
                            let share = (!action.inputs.iter().all(|&v| zero[v])).then_some(x);
                            let (y, _) = timed(
                                self.timeout,
                                what,
                                fusion_he::server_layer(
                                    self.he_channel,
                                    he,
                                    layer,
                                    share,
                                    &mut *self.rng,
                                ),
                            )
                            .await?;
                            y
                        }
                    }
                }
                ActionKind::Local => {
                    let _phase = self.meter.phase(phase);
                    zero[action.output] = action.inputs.iter().all(|&v| zero[v]);
                    apply_local(self.program, action.step, ring, &ins, n)?
                }
                kind => {
                    let _phase = self.meter.phase(phase);
                    *self.ot_dirty = true;
                    let ot = &mut *self.ot;
                    let x = ins[0].as_slice();
                    let t = self.timeout;
                    match kind {
                        ActionKind::Relu => timed(t, what, ot.relu(x)).await?,
                        ActionKind::ReluTruncate { bits } => {
                            timed(t, what, ot.relu_truncate(x, *bits)).await?
                        }
                        ActionKind::Truncate { bits, mode } => match mode {
                            TruncMode::Signed => timed(t, what, ot.truncate(x, *bits)).await?,
                            TruncMode::NonNeg => {
                                timed(t, what, ot.truncate_nonneg(x, *bits)).await?
                            }
                            TruncMode::Exact => timed(t, what, ot.truncate_exact(x, *bits)).await?,
                        },
                        ActionKind::MaxPool { windows, in_len } => {
                            let w = batch_windows(windows, *in_len, n);
                            timed(t, what, ot.max_pool(x, &w)).await?
                        }
                        ActionKind::Square => timed(t, what, ot.square(x)).await?,
                        ActionKind::Linear | ActionKind::Local => {
                            return Err(SecureError::Config("unreachable action".into()));
                        }
                    }
                }
            };
            let expected = n * step_len(self.program, action.output);
            if out.len() != expected {
                return Err(SecureError::Config(format!(
                    "step `{}` produced {} values, expected {expected}",
                    step.name,
                    out.len()
                )));
            }
            values[action.output] = Some(out);
            for &v in &schedule.drop_after[a] {
                values[v] = None;
            }
            if let Some(p) = self.progress {
                p(Progress {
                    done: self.progress_base + a + 1,
                    total: self.progress_total,
                });
            }
        }
        values[schedule.output]
            .take()
            .ok_or_else(|| SecureError::Config("the output was not computed".into()))
    }
}

/// Generates the ROTs of a whole pass over a chunk of `n` samples in one
/// refill (at most [`fusion_ot::OtConfig::max_rots`] per direction; the
/// protocol calls top up whatever is missing). Both parties compute the same
/// count from public sizes and mirrored pools. Charged to the non-linear phase.
async fn reserve_rots(
    program: &FixedProgram,
    schedule: &Schedule,
    ot: &mut AnyOt,
    n: usize,
    meter: &Meter,
    timeout: Duration,
) -> SecureResult<()> {
    let (mut send, mut recv) = (0usize, 0usize);
    for action in &schedule.actions {
        let elems = n * step_len(program, action.inputs.first().copied().unwrap_or(0));
        let sizes: Vec<usize> = match &action.kind {
            ActionKind::MaxPool { windows, .. } => {
                let one: Vec<usize> = windows.iter().map(Vec::len).collect();
                one.repeat(n)
            }
            _ => Vec::new(),
        };
        if let Some((s, r)) = ot.action_rots(&action.kind, elems, &sizes) {
            send = send.saturating_add(s);
            recv = recv.saturating_add(r);
        }
    }
    let (have_s, have_r) = ot.rots_available();
    let count = send
        .saturating_sub(have_s)
        .max(recv.saturating_sub(have_r))
        .min(ot.config().max_rots);
    if count > 0 {
        let _phase = meter.phase(PHASE_NONLINEAR);
        timed(
            timeout,
            || format!("generating {count} ROTs for the pass"),
            ot.preprocess_rots(count),
        )
        .await?;
    }
    Ok(())
}

fn step_len(program: &FixedProgram, v: usize) -> usize {
    program.value_shape(v).iter().product()
}

/// A local step on this party's share (the reference semantics of the public
/// linear map, which commutes with additive sharing).
fn apply_local(
    program: &FixedProgram,
    step: usize,
    ring: Ring,
    ins: &[&Vec<u64>],
    n: usize,
) -> SecureResult<Vec<u64>> {
    let s = &program.steps[step];
    let tensors: Vec<RingTensor> = s
        .inputs
        .iter()
        .zip(ins)
        .map(|(&v, x)| {
            let mut shape = vec![n];
            shape.extend_from_slice(program.value_shape(v));
            RingTensor::new(shape, (*x).clone())
        })
        .collect::<crate::Result<_>>()?;
    let refs: Vec<&RingTensor> = tensors.iter().collect();
    Ok(s.apply(ring, &refs)?.into_data())
}
