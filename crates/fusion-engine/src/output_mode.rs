//! Output modes and the secure argmax: what the client learns of each sample.
//!
//! The server chooses the mode ([`OutputMode`]) and announces it in the
//! handshake ([`crate::wire::ModelInfo::output_mode`]); both parties then walk
//! the same output stage after every chunk's pass (issue 15 item 2; the
//! paper's defence against model extraction by restricting the output,
//! Dong et al., NDSS 2023, §VII and Figure 7):
//!
//! * [`OutputMode::Logits`]: the backend's [`crate::backend::OutputStage`]
//!   reveals the program's output (the fixed-point logits) to the client.
//! * [`OutputMode::Label`]: a **secure argmax** ([`ArgmaxStage`]) runs on the
//!   shares first, then the output stage reveals only a one-hot vector per
//!   sample. The client learns the class, nothing else of the logits.
//! * [`OutputMode::ReverseSigmoid`]: the softmax and Lee et al.'s
//!   perturbation run on the shares ([`crate::reverse_sigmoid`]); the output
//!   stage reveals only the perturbed probabilities.
//!
//! [`ShareStage`] is the computation a mode runs on the shares before the
//! reveal (none in logits mode).
//!
//! # The secure argmax
//!
//! Written only in the backends' existing vocabulary ([`NonLinearOp::MaxPool`]
//! and [`NonLinearOp::Relu`], both exact) and local share arithmetic, so every
//! backend runs it unchanged. For a sample with shared outputs
//! `y_0 .. y_{k-1}` (`k` classes, ring elements at the output scale), one
//! **round** on a shared vector `x` computes the indicators of its maxima:
//!
//! * `m = max_i x_i` (one [`NonLinearOp::MaxPool`] with one window of all `k`
//!   entries; exact);
//! * `d_i = x_i - m <= 0` (local);
//! * `h_i = ReLU(d_i + 1) - ReLU(d_i)` (one [`NonLinearOp::Relu`] over `2k`
//!   values per sample; the `+1` is one unit added to the client's share):
//!   `1` for `d_i = 0`, `0` for `d_i <= -1`, exact in the ring.
//!
//! The stage runs two rounds:
//!
//! 1. on the logits `y`: `e_i = [y_i = max y]`, a 0/1 vector with a 1 at
//!    every top logit (several on an exact tie);
//! 2. **tie-break** on `t_i = k·e_i + (k-1-i)` (local; the public constant on
//!    the client's share): the `t_i` are distinct and in `[0, 2k)`, and the
//!    largest is at the lowest index among the top logits, so the second
//!    round's indicators are a one-hot vector of exactly the class
//!    [`fusion_core::engine::Output::label`] and the plaintext engine
//!    (`fusion_nn::fixed::argmax_signed`) choose: the lowest index of the top
//!    logits.
//!
//! The backend's output stage then reveals the one-hot vector.
//!
//! **Range precondition.** The max pool of the OT backends is exact for
//! inputs in `[-2^(l-2), 2^(l-2))` (fusion-ot `maxpool`; the garbled-circuit
//! and field backends compute the same comparisons on the same signed
//! values), ReLU is exact for every signed ring value (field backends: every
//! centred representative of `Z_p`, `p > 2^l`), and `d_i` lies in
//! `(-2^(l-1), 0]`. So the stage is exact whenever the logits satisfy the
//! engine's own range condition (`|y| < 2^(l-2)`, what
//! [`fusion_nn::calibrate::RangeAnalysis::proven`] proves); the second
//! round's values are below `2k`. The tie-break costs a round instead of
//! headroom: scaling the logits by `k` would need `log2 k` more bits than the
//! range analysis proves for shipped models (bc-mlp's proven logit bound
//! uses 35 of the 36 bits).
//!
//! **Cost.** Per sample, two max pools of `k` entries (`k - 1` pairwise
//! maxima each, `ceil(log2 k)` ReLU rounds) and two ReLU calls of `2k`
//! values: `6k - 2` ReLUs, against none in logits mode; the reveal is the
//! same `k` values. Metered under [`fusion_net::Phase::Output`].
//!
//! # What each party learns
//!
//! * **Server**: nothing new (the stage runs the backends' protocols, which
//!   reveal nothing to it).
//! * **Client**: in label mode, one index per sample (the one-hot vector, no
//!   logits, no margins, no ties: exactly one class is revealed even when the
//!   top logits are equal). In logits mode, the logits.
//!
//! A malicious server may reveal anything (it can skip the stage); the client
//! refuses a revealed vector that is not one-hot
//! ([`check_one_hot`]), and Fusion's mix-and-check verifies labels as in
//! logits mode.

use std::sync::Arc;
use std::time::Duration;

use fusion_core::ring::FixedPoint;
use fusion_net::{Meter, Phase};
use fusion_nn::fixed::{PublicOp, PublicProgram, PublicStep};
use serde::{Deserialize, Serialize};

use crate::backend::{PartySession, PassPlan};
use crate::domain::Domain;
use crate::driver::timed;
use crate::error::{SecureError, SecureResult};
use crate::reverse_sigmoid::ReverseSigmoidStage;
use crate::schedule::{Action, ActionKind, NonLinearOp, Schedule};
use fusion_nn::reverse_sigmoid::ReverseSigmoid;

/// What the client learns of each sample (chosen by the server, announced in
/// the handshake). See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputMode {
    /// The fixed-point logits of every class (default).
    #[default]
    Logits,
    /// Only the class (secure argmax on the shares; one-hot reveal).
    Label,
    /// Lee et al.'s reverse sigmoid of the softmax, computed on the shares
    /// ([`crate::reverse_sigmoid`]); parameters in thousandths.
    ReverseSigmoid {
        /// `beta`, in thousandths (`0..=1000`).
        beta_milli: u16,
        /// `gamma`, in thousandths (`1..=1000`).
        gamma_milli: u16,
    },
}

impl OutputMode {
    /// Every mode, in the order the command line lists them (reverse sigmoid
    /// with its default parameters).
    pub const ALL: [OutputMode; 3] = [
        OutputMode::Logits,
        OutputMode::Label,
        OutputMode::ReverseSigmoid {
            beta_milli: 700,
            gamma_milli: 500,
        },
    ];

    /// The mode's name on the command line and in reports (without
    /// parameters).
    pub fn name(self) -> &'static str {
        match self {
            OutputMode::Logits => "logits",
            OutputMode::Label => "label",
            OutputMode::ReverseSigmoid { .. } => "reverse-sigmoid",
        }
    }

    /// The reverse sigmoid's validated parameters, in that mode (an error
    /// for parameters out of range, e.g. announced by a peer).
    pub fn reverse_sigmoid(self) -> SecureResult<Option<ReverseSigmoid>> {
        match self {
            OutputMode::ReverseSigmoid {
                beta_milli,
                gamma_milli,
            } => ReverseSigmoid::new(
                f64::from(beta_milli) / 1000.0,
                f64::from(gamma_milli) / 1000.0,
            )
            .map(Some)
            .map_err(|e| SecureError::Config(e.to_string())),
            _ => Ok(None),
        }
    }

    /// The reverse-sigmoid mode of `params` (rounded to thousandths).
    pub fn from_reverse_sigmoid(params: ReverseSigmoid) -> Self {
        OutputMode::ReverseSigmoid {
            beta_milli: (params.beta() * 1000.0).round() as u16,
            gamma_milli: (params.gamma() * 1000.0).round() as u16,
        }
    }
}

impl std::fmt::Display for OutputMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputMode::ReverseSigmoid {
                beta_milli,
                gamma_milli,
            } => write!(
                f,
                "reverse-sigmoid:{},{}",
                f64::from(*beta_milli) / 1000.0,
                f64::from(*gamma_milli) / 1000.0
            ),
            m => f.write_str(m.name()),
        }
    }
}

impl std::str::FromStr for OutputMode {
    type Err = SecureError;

    /// `logits`, `label`, `reverse-sigmoid` (default `beta`, `gamma`) or
    /// `reverse-sigmoid:BETA,GAMMA`.
    fn from_str(s: &str) -> SecureResult<Self> {
        let usage = "use `logits`, `label`, `reverse-sigmoid` or `reverse-sigmoid:BETA,GAMMA`";
        match s {
            "logits" => Ok(OutputMode::Logits),
            "label" => Ok(OutputMode::Label),
            "reverse-sigmoid" => Ok(OutputMode::from_reverse_sigmoid(ReverseSigmoid::default())),
            other => {
                let Some(params) = other.strip_prefix("reverse-sigmoid:") else {
                    return Err(SecureError::Config(format!(
                        "unknown output mode `{other}` ({usage})"
                    )));
                };
                let parsed: Vec<f64> = params
                    .split(',')
                    .map(|v| v.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        SecureError::Config(format!("output mode `{other}`: {e} ({usage})"))
                    })?;
                let [beta, gamma] = parsed[..] else {
                    return Err(SecureError::Config(format!(
                        "output mode `{other}`: give two numbers, BETA,GAMMA"
                    )));
                };
                let rs = ReverseSigmoid::new(beta, gamma)
                    .map_err(|e| SecureError::Config(e.to_string()))?;
                let mode = OutputMode::from_reverse_sigmoid(rs);
                // Thousandths only: refuse what the handshake cannot carry.
                let back = mode.reverse_sigmoid()?.unwrap_or(rs);
                if (back.beta() - beta).abs() > 1e-9 || (back.gamma() - gamma).abs() > 1e-9 {
                    return Err(SecureError::Config(format!(
                        "output mode `{other}`: beta and gamma are carried in thousandths"
                    )));
                }
                mode.reverse_sigmoid()?;
                Ok(mode)
            }
        }
    }
}

/// The computation an output mode runs on the shares before the reveal.
#[derive(Debug, Clone)]
pub enum ShareStage {
    /// The secure argmax (label mode).
    Argmax(ArgmaxStage),
    /// The reverse sigmoid.
    ReverseSigmoid(Box<ReverseSigmoidStage>),
}

impl ShareStage {
    /// The stage of `mode` for `program`'s outputs (`classes` per sample);
    /// `None` in logits mode.
    pub fn for_mode(
        mode: OutputMode,
        program: &PublicProgram,
        classes: usize,
    ) -> SecureResult<Option<Self>> {
        Ok(match mode {
            OutputMode::Logits => None,
            OutputMode::Label => Some(ShareStage::Argmax(ArgmaxStage::new(
                program.fixed,
                classes,
            )?)),
            OutputMode::ReverseSigmoid { .. } => {
                let rs = mode.reverse_sigmoid()?.unwrap_or_default();
                Some(ShareStage::ReverseSigmoid(Box::new(
                    ReverseSigmoidStage::new(program.fixed, program.output_scale(), classes, rs)?,
                )))
            }
        })
    }

    /// The stage's public program and schedule.
    pub fn plan(&self) -> (&PublicProgram, &Schedule) {
        match self {
            ShareStage::Argmax(a) => a.plan(),
            ShareStage::ReverseSigmoid(r) => r.plan(),
        }
    }

    /// What the stage is called in errors.
    fn name(&self) -> &'static str {
        match self {
            ShareStage::Argmax(_) => "argmax",
            ShareStage::ReverseSigmoid(_) => "reverse sigmoid",
        }
    }

    /// Classes per sample.
    fn classes(&self) -> usize {
        match self {
            ShareStage::Argmax(a) => a.classes,
            ShareStage::ReverseSigmoid(r) => r.tables().classes(),
        }
    }

    /// Runs the stage on this party's shares `y` of `n` samples' outputs
    /// (`n x classes`, in `domain`) and returns its share of what the client
    /// is to learn (one-hot vectors; `y_hat`). `adds_constants` is `true` for
    /// exactly one party (the client). Both parties first pass the stage's
    /// plan to the backend's preprocessing. Phase [`Phase::Output`].
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        backend: &mut dyn PartySession,
        meter: &Meter,
        timeout: Duration,
        domain: Domain,
        y: Vec<u64>,
        n: usize,
        adds_constants: bool,
    ) -> SecureResult<Vec<u64>> {
        let (name, k) = (self.name(), self.classes());
        if y.len() != n * k {
            return Err(SecureError::Config(format!(
                "{name} of {} values for {n} samples of {k} classes",
                y.len()
            )));
        }
        let _phase = meter.phase(Phase::Output);
        let (program, schedule) = self.plan();
        timed(
            timeout,
            || format!("preprocessing the {name}"),
            backend.preprocess(PassPlan {
                program,
                schedule,
                n,
                deviation: None,
            }),
        )
        .await?;
        match self {
            ShareStage::Argmax(a) => {
                a.compute(backend, timeout, domain, y, n, adds_constants)
                    .await
            }
            ShareStage::ReverseSigmoid(r) => {
                r.compute(backend, timeout, domain, y, n, adds_constants)
                    .await
            }
        }
    }
}

/// The secure argmax of one output width (see the module docs): a small
/// public program whose schedule both parties walk, so that backends with a
/// preprocessing phase prepare it like any pass.
#[derive(Debug, Clone)]
pub struct ArgmaxStage {
    classes: usize,
    program: PublicProgram,
    schedule: Schedule,
}

impl ArgmaxStage {
    /// The stage for `classes` outputs in the program's fixed point `fixed`.
    pub fn new(fixed: FixedPoint, classes: usize) -> SecureResult<Self> {
        if classes < 2 {
            return Err(SecureError::Config(format!(
                "label mode needs at least two classes, the model has {classes}"
            )));
        }
        let k = classes;
        // Values: 0 logits [k]; per round r (r = 0, 1), starting at value
        // 4r: its max [1], the ReLU input [2k], the ReLU output [2k]; and the
        // tie-break input [k] between the rounds (value 4).
        let step = |name: &str, op: PublicOp, inputs: Vec<usize>, width: usize| PublicStep {
            name: name.into(),
            op,
            inputs,
            shape: vec![width],
            scale: 0,
        };
        // The public ops here only name the steps; the stage runs the
        // schedule's `NonLinearOp`s and its own local arithmetic.
        let pool = || PublicOp::MaxPool {
            kernel: k,
            stride: k,
            padding: 0,
        };
        let program = PublicProgram {
            fixed,
            input_shape: vec![k],
            steps: vec![
                step("argmax.max", pool(), vec![0], 1),
                step("argmax.diff", PublicOp::Add, vec![0, 1], 2 * k),
                step("argmax.relu", PublicOp::Relu, vec![2], 2 * k),
                step("argmax.tiebreak", PublicOp::Add, vec![3], k),
                step("argmax.tie_max", pool(), vec![4], 1),
                step("argmax.tie_diff", PublicOp::Add, vec![4, 5], 2 * k),
                step("argmax.tie_relu", PublicOp::Relu, vec![6], 2 * k),
            ],
        };
        let max_op = NonLinearOp::MaxPool {
            windows: Arc::new(vec![(0..k).collect()]),
            in_len: k,
            input_bits: None,
            stages: None,
        };
        let action = |kind, step: usize, inputs| Action {
            kind,
            step,
            output: step + 1,
            inputs,
        };
        let actions = vec![
            action(ActionKind::NonLinear(max_op.clone()), 0, vec![0]),
            action(ActionKind::Local, 1, vec![0, 1]),
            action(
                ActionKind::NonLinear(NonLinearOp::Relu { input_bits: None }),
                2,
                vec![2],
            ),
            action(ActionKind::Local, 3, vec![3]),
            action(ActionKind::NonLinear(max_op), 4, vec![4]),
            action(ActionKind::Local, 5, vec![4, 5]),
            action(
                ActionKind::NonLinear(NonLinearOp::Relu { input_bits: None }),
                6,
                vec![6],
            ),
        ];
        let schedule = Schedule {
            drop_after: vec![Vec::new(); actions.len()],
            actions,
            output: 7,
            fused: 0,
        };
        Ok(ArgmaxStage {
            classes,
            program,
            schedule,
        })
    }

    /// The stage's public program and schedule (for estimates and tests).
    pub fn plan(&self) -> (&PublicProgram, &Schedule) {
        (&self.program, &self.schedule)
    }

    /// The stage's computation on this party's shares `y` (`n x classes`,
    /// in `domain`, already checked and preprocessed by [`ShareStage::run`]):
    /// its share of the one-hot vectors.
    async fn compute(
        &self,
        backend: &mut dyn PartySession,
        timeout: Duration,
        domain: Domain,
        y: Vec<u64>,
        n: usize,
        adds_constants: bool,
    ) -> SecureResult<Vec<u64>> {
        let k = self.classes;
        let ops: Vec<&NonLinearOp> = self
            .schedule
            .actions
            .iter()
            .filter_map(|a| match &a.kind {
                ActionKind::NonLinear(op) => Some(op),
                _ => None,
            })
            .collect();
        let [max_a, relu_a, max_b, relu_b] = ops[..] else {
            return Err(SecureError::Config("the argmax schedule".into()));
        };
        let round = Round {
            k,
            n,
            domain,
            timeout,
            adds_constants,
        };
        // Round 1: the indicators of every maximal logit.
        let e = round.indicators(backend, max_a, relu_a, y).await?;
        // Tie-break: k e_i + (k - 1 - i), distinct, in [0, 2k).
        let constant = |c: usize| domain.from_program(if adds_constants { c as u64 } else { 0 });
        let t: Vec<u64> = e
            .iter()
            .enumerate()
            .map(|(j, &v)| domain.add(times(domain, v, k as u64), constant(k - 1 - j % k)))
            .collect();
        // Round 2: the one maximal tie-break value.
        round.indicators(backend, max_b, relu_b, t).await
    }
}

/// One round of the stage: the public sizes and this party's role.
struct Round {
    k: usize,
    n: usize,
    domain: Domain,
    timeout: Duration,
    adds_constants: bool,
}

impl Round {
    /// This party's shares of `[x_i = max_j x_j]` for each sample of `x`:
    /// `ReLU(d_i + 1) - ReLU(d_i)` with `d_i = x_i - max`.
    async fn indicators(
        &self,
        backend: &mut dyn PartySession,
        max_op: &NonLinearOp,
        relu_op: &NonLinearOp,
        x: Vec<u64>,
    ) -> SecureResult<Vec<u64>> {
        let (k, n, domain) = (self.k, self.n, self.domain);
        let m = timed(
            self.timeout,
            || "running the argmax's max".into(),
            backend.nonlinear(max_op, x.clone(), n),
        )
        .await?;
        if m.len() != n {
            return Err(SecureError::Config(format!(
                "the argmax's max gave {} values for {n} samples",
                m.len()
            )));
        }
        let one = domain.from_program(u64::from(self.adds_constants));
        let mut z = Vec::with_capacity(2 * n * k);
        for (row, &mx) in x.chunks(k).zip(&m) {
            let d: Vec<u64> = row.iter().map(|&v| domain.sub(v, mx)).collect();
            z.extend(d.iter().map(|&v| domain.add(v, one)));
            z.extend(d);
        }
        let r = timed(
            self.timeout,
            || "running the argmax's ReLU".into(),
            backend.nonlinear(relu_op, z, n),
        )
        .await?;
        if r.len() != 2 * n * k {
            return Err(SecureError::Config(format!(
                "the argmax's ReLU gave {} values for {n} samples",
                r.len()
            )));
        }
        Ok(r.chunks(2 * k)
            .flat_map(|c| (0..k).map(move |i| domain.sub(c[i], c[k + i])))
            .collect())
    }
}

/// `c·v` in the domain (double and add; `c` is public).
fn times(domain: Domain, v: u64, c: u64) -> u64 {
    let mut acc = domain.from_program(0);
    let mut base = v;
    let mut c = c;
    while c > 0 {
        if c & 1 == 1 {
            acc = domain.add(acc, base);
        }
        base = domain.add(base, base);
        c >>= 1;
    }
    acc
}

/// The class of each revealed one-hot vector (`n x classes` ring values, the
/// first being sample `first` of the batch); anything else is malformed peer
/// data naming the sample.
pub fn check_one_hot(revealed: &[u64], classes: usize, first: usize) -> SecureResult<Vec<usize>> {
    revealed
        .chunks(classes.max(1))
        .enumerate()
        .map(|(s, row)| {
            let ones: Vec<usize> = row
                .iter()
                .enumerate()
                .filter(|(_, v)| **v == 1)
                .map(|(i, _)| i)
                .collect();
            let others = row.iter().filter(|v| **v > 1).count();
            match (ones.as_slice(), others) {
                ([c], 0) => Ok(*c),
                _ => Err(SecureError::Malformed(format!(
                    "label mode: sample {}'s revealed output is not a one-hot vector ({} ones, {others} other non-zero values)",
                    first + s,
                    ones.len()
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_modes_parse_and_reverse_sigmoid_parameters_are_validated() {
        for m in OutputMode::ALL {
            assert_eq!(m.to_string().parse::<OutputMode>().expect("parse"), m);
        }
        assert_eq!(
            "reverse-sigmoid".parse::<OutputMode>().expect("parse"),
            OutputMode::ALL[2]
        );
        assert_eq!(
            "reverse-sigmoid:0.25,1"
                .parse::<OutputMode>()
                .expect("parse"),
            OutputMode::ReverseSigmoid {
                beta_milli: 250,
                gamma_milli: 1000
            }
        );
        for bad in [
            "reverse-sigmoid:",
            "reverse-sigmoid:0.5",
            "reverse-sigmoid:1.5,0.5",
            "reverse-sigmoid:0.5,0",
            "reverse-sigmoid:0.5,0.5,1",
            "reverse-sigmoid:0.0005,0.5",
            "probs",
        ] {
            assert!(bad.parse::<OutputMode>().is_err(), "{bad}");
        }
        // A peer's out-of-range parameters are an error, not a panic.
        let peer = OutputMode::ReverseSigmoid {
            beta_milli: 5000,
            gamma_milli: 0,
        };
        assert!(peer.reverse_sigmoid().is_err());
        assert_eq!(OutputMode::default(), OutputMode::Logits);
    }

    #[test]
    fn one_hot_check_names_the_bad_sample() {
        assert_eq!(
            check_one_hot(&[0, 1, 0, 1, 0, 0], 3, 0).expect("ok"),
            [1, 0]
        );
        for bad in [
            vec![0, 1, 0, 1, 1, 0],
            vec![0, 1, 0, 0, 0, 0],
            vec![0, 1, 0, 2, 1, 0],
        ] {
            let e = check_one_hot(&bad, 3, 4).unwrap_err();
            assert!(matches!(e, SecureError::Malformed(_)));
            assert!(e.to_string().contains("sample 5"), "{e}");
        }
    }
}
