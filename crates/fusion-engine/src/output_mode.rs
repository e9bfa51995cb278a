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
//!
//! # The secure argmax
//!
//! Written only in the backends' existing vocabulary ([`NonLinearOp::MaxPool`]
//! and [`NonLinearOp::Relu`], both exact) and local share arithmetic, so every
//! backend runs it unchanged. For a sample with shared outputs
//! `y_0 .. y_{k-1}` (`k` classes, ring elements at the output scale):
//!
//! 1. **Tie-break** (local): `y'_i = k·y_i + (k-1-i)`; the public constant is
//!    added to the client's share only. Distinct `y'` for every `i`, and
//!    `y'_i > y'_j` iff `y_i > y_j`, or `y_i = y_j` and `i < j`: the lowest
//!    index of the top logits wins, as in [`fusion_core::Output::label`].
//! 2. **Max** (one [`NonLinearOp::MaxPool`] with one window of all `k`
//!    entries): `m = max_i y'_i`, exact.
//! 3. **Differences** (local): `d_i = y'_i - m <= 0`, exactly one `d_i = 0`.
//! 4. **Indicator** (one [`NonLinearOp::Relu`] over `2k` values per sample):
//!    `h_i = ReLU(d_i + 1) - ReLU(d_i)`, which is `1` for `d_i = 0` and `0`
//!    for `d_i <= -1`, exact in the ring (the `+1` is one unit added to the
//!    client's share).
//! 5. The backend's output stage reveals `h` (a one-hot vector) to the client.
//!
//! **Range precondition.** The max pool of the OT backends is exact for
//! inputs in `[-2^(l-2), 2^(l-2))` (fusion-ot `maxpool`), ReLU is exact for
//! every signed ring value (field backends: every centred representative of
//! `Z_p`, `p > 2^l`), so the stage is exact when `k·|y_i| + k <= 2^(l-2)`,
//! which holds when the logits need at most [`label_mode_max_bits`] bits
//! with their sign: `l - 1 - bitlen(k)` (`l = 37`: 34 bits for two classes,
//! 32 for ten, against the engine's own 36).
//! [`crate::SecureServer::set_output_mode`] checks this against the range
//! analysis when the model announces an input box
//! ([`fusion_nn::calibrate::RangeAnalysis`]) and refuses label mode if the
//! logits' proven bound leaves no room. The garbled-circuit backends compute
//! the same ops on the same ring values.
//!
//! **Cost.** Per sample, `k - 1` pairwise maxima (the max pool's ReLU-based
//! tournament, `ceil(log2 k)` rounds) and `2k` ReLUs in one call, plus the
//! reveal of `k` values as in logits mode; metered under
//! [`fusion_net::Phase::Output`].
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

use fusion_net::{Meter, Phase};
use fusion_core::ring::FixedPoint;
use fusion_nn::fixed::{PublicOp, PublicProgram, PublicStep};
use serde::{Deserialize, Serialize};

use crate::backend::{PartySession, PassPlan};
use crate::domain::Domain;
use crate::driver::timed;
use crate::error::{SecureError, SecureResult};
use crate::schedule::{Action, ActionKind, NonLinearOp, Schedule};

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
}

impl OutputMode {
    /// Every mode, in the order the command line lists them.
    pub const ALL: [OutputMode; 2] = [OutputMode::Logits, OutputMode::Label];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            OutputMode::Logits => "logits",
            OutputMode::Label => "label",
        }
    }
}

impl std::fmt::Display for OutputMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for OutputMode {
    type Err = SecureError;

    fn from_str(s: &str) -> SecureResult<Self> {
        match s {
            "logits" => Ok(OutputMode::Logits),
            "label" => Ok(OutputMode::Label),
            "reverse-sigmoid" => Err(SecureError::Config(
                "output mode `reverse-sigmoid` is not implemented yet (use `logits` or `label`)"
                    .into(),
            )),
            other => Err(SecureError::Config(format!(
                "unknown output mode `{other}` (use `logits` or `label`)"
            ))),
        }
    }
}

/// Bits the logits may need (with sign) for the argmax stage of `classes`
/// classes in ring `l` to be exact: `k·|y| + k <= 2^(l-2)` holds when
/// `|y| < 2^(b-1)` with `b` returned here (see the module docs).
pub fn label_mode_max_bits(ring_bits: u32, classes: usize) -> u32 {
    let k = classes.max(2) as u64;
    // ceil(log2 (k + 1)) bits for the factor and the offset.
    let extra = 64 - k.leading_zeros();
    (ring_bits - 1).saturating_sub(extra)
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

/// Value ids of the stage's program.
const LOGITS: usize = 0;
const MAX: usize = 1;
const SHIFTED: usize = 2;
const INDICATORS: usize = 3;

impl ArgmaxStage {
    /// The stage for `classes` outputs in the program's fixed point `fixed`.
    pub fn new(fixed: FixedPoint, classes: usize) -> SecureResult<Self> {
        if classes < 2 {
            return Err(SecureError::Config(format!(
                "label mode needs at least two classes, the model has {classes}"
            )));
        }
        let step = |name: &str, op: PublicOp, inputs: Vec<usize>, width: usize| PublicStep {
            name: name.into(),
            op,
            inputs,
            shape: vec![width],
            scale: 0,
        };
        let program = PublicProgram {
            fixed,
            input_shape: vec![classes],
            steps: vec![
                // The public op here only names the step; the stage runs the
                // schedule's `NonLinearOp`s.
                step(
                    "argmax.max",
                    PublicOp::MaxPool {
                        kernel: classes,
                        stride: classes,
                        padding: 0,
                    },
                    vec![LOGITS],
                    1,
                ),
                step("argmax.shift", PublicOp::Add, vec![LOGITS, MAX], 2 * classes),
                step("argmax.relu", PublicOp::Relu, vec![SHIFTED], 2 * classes),
            ],
        };
        let window: Vec<usize> = (0..classes).collect();
        let action = |kind, step, output, inputs| Action {
            kind,
            step,
            output,
            inputs,
        };
        let actions = vec![
            action(
                ActionKind::NonLinear(NonLinearOp::MaxPool {
                    windows: Arc::new(vec![window]),
                    in_len: classes,
                }),
                0,
                MAX,
                vec![LOGITS],
            ),
            action(ActionKind::Local, 1, SHIFTED, vec![LOGITS, MAX]),
            action(
                ActionKind::NonLinear(NonLinearOp::Relu),
                2,
                INDICATORS,
                vec![SHIFTED],
            ),
        ];
        let schedule = Schedule {
            drop_after: vec![Vec::new(); actions.len()],
            actions,
            output: INDICATORS,
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

    /// Runs the stage on this party's shares `y` (`n x classes`, in
    /// `domain`) and returns its share of the one-hot vectors. `adds_constants`
    /// is `true` for exactly one party (the client). Phase
    /// [`Phase::Output`].
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
        let k = self.classes;
        if y.len() != n * k {
            return Err(SecureError::Config(format!(
                "argmax of {} values for {n} samples of {k} classes",
                y.len()
            )));
        }
        let _phase = meter.phase(Phase::Output);
        let plan = PassPlan {
            program: &self.program,
            schedule: &self.schedule,
            n,
        };
        timed(
            timeout,
            || "preprocessing the argmax".into(),
            backend.preprocess(plan),
        )
        .await?;
        let one = domain.from_program(1);
        let zero = domain.from_program(0);
        let constant = |c: u64| if adds_constants { domain.from_program(c) } else { zero };
        // 1. y'_i = k y_i + (k - 1 - i).
        let shifted: Vec<u64> = y
            .iter()
            .enumerate()
            .map(|(j, &v)| {
                let i = (j % k) as u64;
                domain.add(times(domain, v, k as u64), constant(k as u64 - 1 - i))
            })
            .collect();
        // 2. m = max_i y'_i.
        let [max_action, _, relu_action] = &self.schedule.actions[..] else {
            return Err(SecureError::Config("argmax schedule".into()));
        };
        let ActionKind::NonLinear(max_op) = &max_action.kind else {
            return Err(SecureError::Config("argmax schedule".into()));
        };
        let m = timed(
            timeout,
            || "running the argmax's max".into(),
            backend.nonlinear(max_op, shifted.clone(), n),
        )
        .await?;
        if m.len() != n {
            return Err(SecureError::Config(format!(
                "the argmax's max gave {} values for {n} samples",
                m.len()
            )));
        }
        // 3. d_i = y'_i - m; the ReLU's input per sample is [d + 1, d].
        let mut z = Vec::with_capacity(2 * n * k);
        for (s, row) in shifted.chunks(k).enumerate() {
            let d: Vec<u64> = row.iter().map(|&v| domain.sub(v, m[s])).collect();
            z.extend(d.iter().map(|&v| {
                if adds_constants {
                    domain.add(v, one)
                } else {
                    v
                }
            }));
            z.extend(d);
        }
        // 4. h_i = ReLU(d_i + 1) - ReLU(d_i).
        let ActionKind::NonLinear(relu_op) = &relu_action.kind else {
            return Err(SecureError::Config("argmax schedule".into()));
        };
        let r = timed(
            timeout,
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
    fn output_modes_parse_and_reverse_sigmoid_is_refused() {
        for m in OutputMode::ALL {
            assert_eq!(m.name().parse::<OutputMode>().expect("parse"), m);
        }
        let e = "reverse-sigmoid".parse::<OutputMode>().unwrap_err();
        assert!(e.to_string().contains("not implemented yet"), "{e}");
        assert!("probs".parse::<OutputMode>().is_err());
        assert_eq!(OutputMode::default(), OutputMode::Logits);
    }

    #[test]
    fn one_hot_check_names_the_bad_sample() {
        assert_eq!(check_one_hot(&[0, 1, 0, 1, 0, 0], 3, 0).expect("ok"), [1, 0]);
        for bad in [vec![0, 1, 0, 1, 1, 0], vec![0, 1, 0, 0, 0, 0], vec![0, 1, 0, 2, 1, 0]] {
            let e = check_one_hot(&bad, 3, 4).unwrap_err();
            assert!(matches!(e, SecureError::Malformed(_)));
            assert!(e.to_string().contains("sample 5"), "{e}");
        }
    }

    #[test]
    fn label_mode_bits_leave_room_for_the_tie_break() {
        // l = 37, 10 classes: 10 |y| + 10 <= 2^35 needs |y| < 2^31.
        assert_eq!(label_mode_max_bits(37, 10), 32);
        assert_eq!(label_mode_max_bits(37, 2), 34);
        for (l, k) in [(37u32, 10usize), (37, 2), (64, 1000)] {
            let b = label_mode_max_bits(l, k);
            let y = (1u128 << (b - 1)) - 1;
            assert!(k as u128 * y + k as u128 <= 1u128 << (l - 2));
        }
    }
}
