//! The session driver: one pass of the shared [`Schedule`] over a chunk, for
//! either party.
//!
//! Both parties walk the same schedule on a chunk of `n` samples with the
//! same backend calls in the same order; only their shares differ. Every
//! value is additively shared in the backend's [`Domain`]; the client's share
//! of the input is its encoded input and the server's share is zero. Per
//! chunk:
//!
//! 1. **Preprocessing** ([`crate::backend::Preprocessing`]): the backend's
//!    input-independent work for this pass (phase
//!    [`Phase::Preprocessing`]).
//! 2. Per action of the schedule:
//!    * **Linear** ([`crate::backend::LinearLayers`], phase [`Phase::Linear`]):
//!      the driver tells the backend whether this party's input share is
//!      known to be zero (the server's, until the first linear layer).
//!    * **Local** ([`Domain::apply_local`], phase [`Phase::Local`]): each party
//!      applies the public linear map to its own share; no messages.
//!    * **Non-linear** ([`crate::backend::NonLinearLayers`], phase
//!      [`Phase::NonLinear`]).
//! 3. **Output** ([`crate::backend::OutputStage`], phase [`Phase::Output`]):
//!    the server's behaviour hook may alter its output share first
//!    ([`crate::behaviour`]), then the backend reveals the output to the
//!    client.
//!
//! The driver bounds every call by the step timeout, charges it to its phase
//! and labels it with its step's name and kind ([`Meter::step`]: the meter
//! measures bytes, rounds and time, per phase and per step; protocol code
//! does not), checks
//! the lengths the backend returns, and drops values after their last use.
//!
//! What each party learns here: nothing but what the backend's protocols
//! reveal (see each backend's docs).

use std::time::Duration;

use fusion_net::{Meter, Phase};
use fusion_nn::fixed::PublicProgram;

use crate::backend::{LinearCall, PartySession, PassPlan};
use crate::config::{Progress, ProgressFn};
use crate::domain::Domain;
use crate::error::{SecureError, SecureResult};
use crate::schedule::{ActionKind, Schedule};

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

/// Everything one pass over a chunk needs.
pub(crate) struct Pass<'a> {
    pub program: &'a PublicProgram,
    pub schedule: &'a Schedule,
    pub domain: Domain,
    pub backend: &'a mut dyn PartySession,
    pub meter: &'a Meter,
    pub timeout: Duration,
    /// This party's input share is zero (the server).
    pub input_is_zero: bool,
    pub progress: Option<&'a ProgressFn>,
    /// Steps done before this pass and in the whole batch (progress reports).
    pub progress_base: usize,
    pub progress_total: usize,
    /// A deviating client's hook and the chunk's first batch position
    /// (`None` for honest parties; see [`crate::behaviour::ClientDeviation`]).
    pub deviation: Option<(&'a dyn crate::behaviour::ClientDeviation, usize)>,
}

impl Pass<'_> {
    /// Runs preprocessing and the schedule on this party's share `input` of a
    /// chunk of `n` samples; returns this party's share of the output (not
    /// yet revealed).
    pub(crate) async fn run(self, input: Vec<u64>, n: usize) -> SecureResult<Vec<u64>> {
        let n_values = self.program.steps.len() + 1;
        let in_len: usize = self.program.input_shape.iter().product();
        if input.len() != n * in_len {
            return Err(SecureError::Config(format!(
                "input share of {} values for {n} samples of {in_len}",
                input.len()
            )));
        }
        let schedule = self.schedule;
        {
            let _phase = self.meter.phase(Phase::Preprocessing);
            let plan = PassPlan {
                program: self.program,
                schedule,
                n,
                deviation: self.deviation,
            };
            timed(
                self.timeout,
                || "preprocessing".into(),
                self.backend.preprocess(plan),
            )
            .await?;
        }
        let mut values: Vec<Option<Vec<u64>>> = vec![None; n_values];
        // Whether this party's share of a value is known to be zero.
        let mut zero = vec![false; n_values];
        zero[0] = self.input_is_zero;
        values[0] = Some(input);
        for (a, action) in schedule.actions.iter().enumerate() {
            let step = &self.program.steps[action.step];
            let what = || format!("running step `{}` ({})", step.name, action.kind.tag());
            let take = |values: &mut Vec<Option<Vec<u64>>>, v: usize, last_use: bool| {
                let x = if last_use {
                    values[v].take()
                } else {
                    values[v].clone()
                };
                x.ok_or_else(|| SecureError::Config(format!("value {v} is not available")))
            };
            let dead = &schedule.drop_after[a];
            let (name, tag) = (&step.name, action.kind.tag());
            let out = match &action.kind {
                ActionKind::Linear => {
                    let _step = self.meter.step(Phase::Linear, name, tag);
                    let v = action.inputs[0];
                    let mut x = take(&mut values, v, dead.contains(&v))?;
                    if let Some((d, start)) = self.deviation {
                        d.before_step(action.step, &mut x, start, n, &self.domain);
                    }
                    let call = LinearCall {
                        step: action.step,
                        n,
                        input_is_zero: action.inputs.iter().all(|&v| zero[v]),
                    };
                    timed(self.timeout, what, self.backend.linear(call, x)).await?
                }
                ActionKind::Local => {
                    let _step = self.meter.step(Phase::Local, name, tag);
                    zero[action.output] = action.inputs.iter().all(|&v| zero[v]);
                    let ins: Vec<&[u64]> = action
                        .inputs
                        .iter()
                        .map(|&v| {
                            values[v].as_deref().ok_or_else(|| {
                                SecureError::Config(format!("value {v} is not available"))
                            })
                        })
                        .collect::<SecureResult<_>>()?;
                    self.domain
                        .apply_local(self.program, action.step, &ins, n)?
                }
                ActionKind::NonLinear(op) => {
                    let _step = self.meter.step(Phase::NonLinear, name, tag);
                    let v = action.inputs[0];
                    let mut x = take(&mut values, v, dead.contains(&v))?;
                    if let Some((d, start)) = self.deviation {
                        d.before_step(action.step, &mut x, start, n, &self.domain);
                    }
                    timed(self.timeout, what, self.backend.nonlinear(op, x, n)).await?
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
            for &v in dead {
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

/// Reveals a chunk's output through the backend's output stage (phase
/// [`Phase::Output`]).
pub(crate) async fn reveal(
    backend: &mut dyn PartySession,
    meter: &Meter,
    timeout: Duration,
    y: Vec<u64>,
    n: usize,
) -> SecureResult<Option<Vec<u64>>> {
    let _phase = meter.phase(Phase::Output);
    timed(
        timeout,
        || "revealing the output".into(),
        backend.reveal(y, n),
    )
    .await
}

fn step_len(program: &PublicProgram, v: usize) -> usize {
    program.value_shape(v).iter().product()
}
