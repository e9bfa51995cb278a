//! The reverse-sigmoid output stage: Lee et al.'s output perturbation
//! computed on the shares, so that the client receives only the perturbed
//! probabilities `y_hat` (issue 15 item 2; Fusion, Dong et al., NDSS 2023,
//! §VII, eq. (9)-(10)).
//!
//! **What it computes.** For each sample's shared logits `z` it runs the
//! fixed-point pipeline of [`fusion_nn::reverse_sigmoid`] (softmax, `g(y) = y -
//! beta (s(gamma s^-1(y)) - 1/2)` with `y` clipped to `[2^-f, 1 - 2^-f]`,
//! normalisation), step by step on shares:
//!
//! * `max` by the backend's max pool ([`NonLinearOp::MaxPool`], one window of
//!   `k` entries; exact);
//! * each of the five clipped piecewise-linear tables ([`Piecewise`]) by one
//!   [`NonLinearOp::Relu`] over `ReLU(x - T_j)` for every input and knot (the
//!   client subtracts the public knots from its share), a local sum with the
//!   public integer slopes (the client adds the constant) and one signed
//!   [`NonLinearOp::Truncate`] by the table's shift;
//! * sums, differences and the clip `max(d, -D)` (the first knot's ReLU
//!   output plus `-D`) locally.
//!
//! [`crate::output_mode::ShareStage::run`] checks the input, enters the
//! output phase and passes the stage's plan to the backend's preprocessing
//! before [`ReverseSigmoidStage`]'s own computation. Only the backends'
//! existing protocols run, so every backend computes the
//! stage unchanged (as the secure argmax of [`crate::output_mode`]); nothing
//! is divided on shares (softmax and normaliser go through `ln` and `exp`).
//!
//! **Accuracy.** The ring backends' truncation is exact or one less
//! (fusion-ot `truncate`), the field and garbled-circuit ones exact, so the
//! revealed `y_hat` differ from [`ReverseSigmoidTables::apply_fixed`] by a few
//! units in the last place carried through the tables' slopes; this
//! module's tests bound the difference, and the pipeline's error against the
//! `f64` defence is measured in `docs/SECURITY.md`.
//!
//! **Range.** Every table's sum stays below `2^(l-2)` in absolute value (the
//! signed truncation's precondition; checked when the tables are built), the
//! inputs of the ReLUs are differences of small values and knots, and
//! `d_i = z_i - max z` needs the logits within the engine's own range
//! (`|z| < 2^(l-2)`), as the argmax does.
//!
//! **Cost.** Per sample, one max pool of `k` entries and
//! [`ReverseSigmoidTables::relus_per_sample`] ReLUs (about 1,300 for ten
//! classes at `f = 12`) plus `5k + 2` truncations, in 13 rounds of non-linear
//! protocols. Metered under [`fusion_net::Phase::Output`].
//!
//! # What each party learns
//!
//! * **Server**: nothing (only the backends' protocols run).
//! * **Client**: `y_hat` of each sample, at the program's fractional bits;
//!   no logits, no softmax values (the stage reveals nothing before the
//!   backend's output stage opens `y_hat`). A test decodes the client's view.
//!
//! A malicious server can reveal anything; the client checks that every
//! revealed value lies in `[0, 1]` up to a small slack
//! ([`check_probabilities`]) and Fusion's mix-and-check verifies the labels
//! (argmax of `y_hat`).

use std::sync::Arc;
use std::time::Duration;

use fusion_core::ring::FixedPoint;

use fusion_nn::fixed::{PublicOp, PublicProgram, PublicStep};
use fusion_nn::piecewise::Piecewise;
use fusion_nn::reverse_sigmoid::{ReverseSigmoid, ReverseSigmoidTables};

use crate::backend::PartySession;
use crate::domain::Domain;
use crate::driver::timed;
use crate::error::{SecureError, SecureResult};
use crate::schedule::{Action, ActionKind, NonLinearOp, Schedule, TruncMode};

/// The stage for one output width (see the module docs).
#[derive(Debug, Clone)]
pub struct ReverseSigmoidStage {
    tables: ReverseSigmoidTables,
    program: PublicProgram,
    schedule: Schedule,
}

/// Builds the stage's public program and schedule, one step per action.
struct Builder {
    k: usize,
    steps: Vec<PublicStep>,
    actions: Vec<Action>,
}

impl Builder {
    /// Appends a step reading `inputs` and producing `width` values per
    /// sample; returns its value id.
    fn push(&mut self, name: &str, kind: ActionKind, inputs: Vec<usize>, width: usize) -> usize {
        let step = self.steps.len();
        let op = match &kind {
            ActionKind::NonLinear(NonLinearOp::Relu { .. }) => PublicOp::Relu,
            ActionKind::NonLinear(NonLinearOp::Truncate { bits, .. }) => {
                PublicOp::Truncate { bits: *bits }
            }
            ActionKind::NonLinear(NonLinearOp::MaxPool { .. }) => PublicOp::MaxPool {
                kernel: self.k,
                stride: self.k,
                padding: 0,
            },
            _ => PublicOp::Add,
        };
        self.steps.push(PublicStep {
            name: format!("reverse_sigmoid.{name}"),
            op,
            inputs: inputs.clone(),
            shape: vec![width],
            scale: 0,
        });
        self.actions.push(Action {
            kind,
            step,
            output: step + 1,
            inputs,
        });
        step + 1
    }

    /// One table on `per` inputs per sample: local differences, ReLU, local
    /// sums (`outs` functions), truncation. Returns the truncation's value.
    fn table(&mut self, name: &str, p: &Piecewise, input: usize, per: usize, outs: usize) -> usize {
        let j = p.knots().len();
        let diff = self.push(
            &format!("{name}.diff"),
            ActionKind::Local,
            vec![input],
            per * j,
        );
        let relu = self.push(
            &format!("{name}.relu"),
            ActionKind::NonLinear(NonLinearOp::Relu { input_bits: None }),
            vec![diff],
            per * j,
        );
        let sum = self.push(
            &format!("{name}.sum"),
            ActionKind::Local,
            vec![relu],
            per * outs,
        );
        self.push(
            &format!("{name}.truncate"),
            ActionKind::NonLinear(trunc(p)),
            vec![sum],
            per * outs,
        )
    }
}

/// The signed truncation of a table's sums.
fn trunc(p: &Piecewise) -> NonLinearOp {
    NonLinearOp::Truncate {
        bits: p.shift(),
        mode: TruncMode::Signed,
    }
}

impl ReverseSigmoidStage {
    /// The stage for `classes` logits at scale `logit_scale` of the program
    /// fixed point `fixed`, outputs at `fixed`'s fractional bits.
    pub fn new(
        fixed: FixedPoint,
        logit_scale: u32,
        classes: usize,
        params: ReverseSigmoid,
    ) -> SecureResult<Self> {
        let tables = ReverseSigmoidTables::new(
            params,
            classes,
            logit_scale,
            fixed.frac_bits,
            fixed.ring.bits(),
        )
        .map_err(|e| SecureError::Config(e.to_string()))?;
        let k = classes;
        let mut b = Builder {
            k,
            steps: Vec::new(),
            actions: Vec::new(),
        };
        let max = b.push(
            "max",
            ActionKind::NonLinear(NonLinearOp::MaxPool {
                windows: Arc::new(vec![(0..k).collect()]),
                in_len: k,
                input_bits: None,
                stages: None,
            }),
            vec![0],
            1,
        );
        // The tables' values, in the order `run` computes them.
        let diff = b.push("shift", ActionKind::Local, vec![0, max], k);
        let e = b.table("exp", tables.exp_logit(), diff, k, 1);
        let ln_s = b.table("ln_sum", tables.ln_sum(), e, 1, 1);
        let y = b.table("softmax", tables.exp_logit(), ln_s, k, 1);
        let g = b.table("perturb", tables.perturb(), y, k, 2);
        let ln_g = b.table("ln_norm", tables.ln_norm(), g, 1, 1);
        let out = b.table("normalise", tables.exp_frac(), ln_g, k, 1);
        let program = PublicProgram {
            fixed,
            input_shape: vec![k],
            steps: b.steps,
        };
        let schedule = Schedule {
            drop_after: vec![Vec::new(); b.actions.len()],
            actions: b.actions,
            output: out,
            fused: 0,
        };
        Ok(ReverseSigmoidStage {
            tables,
            program,
            schedule,
        })
    }

    /// The stage's public program and schedule (for estimates and tests).
    pub fn plan(&self) -> (&PublicProgram, &Schedule) {
        (&self.program, &self.schedule)
    }

    /// The fixed-point tables (the plaintext pipeline both parties share).
    pub fn tables(&self) -> &ReverseSigmoidTables {
        &self.tables
    }

    /// The stage's computation on this party's shares `y` (`n x classes`
    /// logits, in `domain`, already checked and preprocessed by
    /// [`crate::output_mode::ShareStage::run`]): its share of `y_hat`
    /// (`n x classes`, at the program's fractional bits).
    pub(crate) async fn compute(
        &self,
        backend: &mut dyn PartySession,
        timeout: Duration,
        domain: Domain,
        y: Vec<u64>,
        n: usize,
        adds_constants: bool,
    ) -> SecureResult<Vec<u64>> {
        let k = self.tables.classes();
        let mut run = Run {
            backend,
            domain,
            timeout,
            n,
            adds_constants,
        };
        let t = &self.tables;
        // 1. d_i = z_i - max z.
        let max_op = match &self.schedule.actions[0].kind {
            ActionKind::NonLinear(op) => op.clone(),
            _ => return Err(SecureError::Config("the reverse-sigmoid schedule".into())),
        };
        let m = run.op(&max_op, y.clone(), "max").await?;
        if m.len() != n {
            return Err(SecureError::Config(format!(
                "the reverse sigmoid's max gave {} values for {n} samples",
                m.len()
            )));
        }
        let d = minus_per_sample(domain, &y, &m, k);
        // 2. e_i = exp(d_i); the first knot's ReLU gives max(d_i, T_0) - T_0.
        let exp = t.exp_logit();
        let (relu, sums) = run.table(exp, &d, 1).await?;
        let e = run.truncate(exp, sums[0].clone()).await?;
        let j = exp.knots().len();
        let t0 = run.constant(exp.knots()[0]);
        let clipped: Vec<u64> = relu.chunks(j).map(|r| domain.add(r[0], t0)).collect();
        // 3. L = ln(sum_i e_i), at the logits' scale.
        let s: Vec<u64> = e.chunks(k).map(|row| sum(domain, row)).collect();
        let (_, sums) = run.table(t.ln_sum(), &s, 1).await?;
        let l = run.truncate(t.ln_sum(), sums[0].clone()).await?;
        // 4. y_i = exp(max(d_i, T_0) - L): the softmax.
        let u = minus_per_sample(domain, &clipped, &l, k);
        let (_, sums) = run.table(exp, &u, 1).await?;
        let probs = run.truncate(exp, sums[0].clone()).await?;
        // 5. g(y_i) and ln g(y_i), one knot set, one truncation.
        let (_, sums) = run.table(t.perturb(), &probs, 2).await?;
        let both: Vec<u64> = sums.concat();
        let both = run.truncate(t.perturb(), both).await?;
        let (g, ln_g) = both.split_at(n * k);
        // 6. LG = ln(sum_i g_i).
        let total: Vec<u64> = g.chunks(k).map(|row| sum(domain, row)).collect();
        let (_, sums) = run.table(t.ln_norm(), &total, 1).await?;
        let lg = run.truncate(t.ln_norm(), sums[0].clone()).await?;
        // 7. y_hat_i = exp(ln g_i - LG).
        let v = minus_per_sample(domain, ln_g, &lg, k);
        let (_, sums) = run.table(t.exp_frac(), &v, 1).await?;
        run.truncate(t.exp_frac(), sums[0].clone()).await
    }
}

/// `x_i - s` for every entry `x_i` of sample `j`'s row of `k` values, `s`
/// being `per_sample[j]`.
fn minus_per_sample(domain: Domain, x: &[u64], per_sample: &[u64], k: usize) -> Vec<u64> {
    x.chunks(k)
        .zip(per_sample)
        .flat_map(|(row, &s)| row.iter().map(move |&v| domain.sub(v, s)))
        .collect()
}

/// The sum of shares.
fn sum(domain: Domain, row: &[u64]) -> u64 {
    row.iter()
        .fold(domain.constant(0), |acc, &v| domain.add(acc, v))
}

/// One run of the stage: the backend and this party's role.
struct Run<'a> {
    backend: &'a mut dyn PartySession,
    domain: Domain,
    timeout: Duration,
    n: usize,
    adds_constants: bool,
}

impl Run<'_> {
    /// The public integer `v` on this party's share (`0` for the server).
    fn constant(&self, v: i64) -> u64 {
        self.domain
            .constant(if self.adds_constants { v } else { 0 })
    }

    /// One backend protocol, with the session's timeout.
    async fn op(&mut self, op: &NonLinearOp, x: Vec<u64>, what: &str) -> SecureResult<Vec<u64>> {
        let len = x.len();
        let out = timed(
            self.timeout,
            || format!("running the reverse sigmoid's {what}"),
            self.backend.nonlinear(op, x, self.n),
        )
        .await?;
        if what != "max" && out.len() != len {
            return Err(SecureError::Config(format!(
                "the reverse sigmoid's {what} gave {} values for {len}",
                out.len()
            )));
        }
        Ok(out)
    }

    /// `ReLU(x - T_j)` for every input and knot (input-major), and for each
    /// of the table's first `outs` functions the sums `C + sum_j S_j ReLU(..)`
    /// per input (not yet truncated).
    async fn table(
        &mut self,
        p: &Piecewise,
        x: &[u64],
        outs: usize,
    ) -> SecureResult<(Vec<u64>, Vec<Vec<u64>>)> {
        let domain = self.domain;
        let knots: Vec<u64> = p.knots().iter().map(|&t| self.constant(t)).collect();
        let mut diff = Vec::with_capacity(x.len() * knots.len());
        for &v in x {
            diff.extend(knots.iter().map(|&t| domain.sub(v, t)));
        }
        let relu = self
            .op(&NonLinearOp::Relu { input_bits: None }, diff, "ReLU")
            .await?;
        let j = knots.len();
        let sums = p.outputs()[..outs]
            .iter()
            .map(|o| {
                let c = self.constant(o.constant);
                relu.chunks(j)
                    .map(|r| {
                        r.iter()
                            .zip(&o.slopes)
                            .fold(c, |acc, (&v, &s)| domain.add(acc, domain.mul_signed(v, s)))
                    })
                    .collect()
            })
            .collect();
        Ok((relu, sums))
    }

    /// The table's signed truncation.
    async fn truncate(&mut self, p: &Piecewise, x: Vec<u64>) -> SecureResult<Vec<u64>> {
        self.op(&trunc(p), x, "truncation").await
    }
}

/// Checks that every revealed `y_hat` (ring elements at `frac` bits, the
/// first being sample `first`'s) lies in `[-2^-6, 1 + 2^-6]`; anything else
/// is malformed peer data naming the sample.
pub fn check_probabilities(
    revealed: &[u64],
    fixed: FixedPoint,
    classes: usize,
    first: usize,
) -> SecureResult<()> {
    let slack = 2f64.powi(-6);
    for (s, row) in revealed.chunks(classes.max(1)).enumerate() {
        if let Some(v) = row
            .iter()
            .map(|&v| fixed.decode(v))
            .find(|v| !(-slack..=1.0 + slack).contains(v))
        {
            return Err(SecureError::Malformed(format!(
                "reverse-sigmoid mode: sample {}'s revealed output {v} is not a probability",
                first + s
            )));
        }
    }
    Ok(())
}
