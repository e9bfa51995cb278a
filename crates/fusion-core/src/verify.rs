//! Fusion's checks (paper section IV-A, Fig. 3, step 3) and the run report.
//!
//! After un-shuffling the engine's outputs the client
//!
//! 1. **checks accuracy**: at least `ceil(delta T)` of the `T` public samples
//!    must get their known label (an exact rational comparison
//!    `correct / T >= delta`, [`crate::Threshold::is_met`]);
//! 2. **checks consistency**: all `B` copies of every query must agree. By
//!    default only the class labels are compared ([`Consistency::Labels`]):
//!    two-party engines with probabilistic truncation give copies of the same
//!    input slightly different scores, so comparing whole outputs
//!    ([`Consistency::ExactOutputs`], [`Consistency::OutputsWithin`]) is only
//!    sound for engines with deterministic fixed-point arithmetic. With label
//!    comparison the guarantee is about labels: a server may change scores as
//!    long as no argmax moves.
//!
//! It accepts with one output per query (copy 0's output) only if both pass,
//! and otherwise aborts, listing every reason that applies. An abort tells the
//! server that it was caught: one bit of selective-failure leakage per session
//! (docs/DESIGN.md section 6).
//!
//! The accuracy figure is also turned into a statistical statement about the
//! model ([`crate::stats::clopper_pearson_lower`]): what "at least 95 of 100
//! public samples right" certifies about its true accuracy. The [`Report`]
//! collects parameters, verdict, accuracy, that bound and the cheating
//! probability bounds of [`crate::security`], and renders for humans
//! ([`std::fmt::Display`]) and as JSON ([`Report::to_json`]).

use std::fmt;

use num_rational::Ratio;
use serde::Serialize;

use crate::Threshold;
use crate::mix::Unmixed;
use crate::output::Output;
use crate::security::{self, Layout};
use crate::stats::{Confidence, clopper_pearson_lower};

/// What the checks need from an engine output.
pub trait Prediction {
    /// The predicted class index.
    fn label(&self) -> usize;
    /// The decoded scores (logits).
    fn scores(&self) -> &[f64];
}

/// How copies of a query are compared.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Same class label (default).
    #[default]
    Labels,
    /// Bit-identical scores (`NaN` never equals anything).
    ExactOutputs,
    /// Scores equal up to an absolute tolerance per entry.
    OutputsWithin(f64),
    /// Labels, with near ties allowed for: `bound` is a proven bound on how
    /// far an honest engine's scores can be from the plaintext fixed-point
    /// engine's (per entry, in score units). A query's label is verified
    /// only if all copies give it **and** every copy's margin (best score
    /// minus second best) is at least `2 * bound`; otherwise, if all copies'
    /// scores agree within `2 * bound` of copy 0's entry by entry, the query
    /// is a **tie** (accepted, but no label is verified); anything else is
    /// inconsistent. Honest copies always agree within `2 * bound`, so near
    /// ties never abort an honest run, and a verified label then equals the
    /// fixed-point engine's argmax (module docs).
    NearTies {
        /// The per-entry error bound of one copy.
        bound: f64,
    },
}

impl Consistency {
    fn agree<O: Prediction>(self, a: &O, b: &O) -> bool {
        match self {
            Consistency::Labels => a.label() == b.label(),
            Consistency::ExactOutputs => a.scores() == b.scores(),
            Consistency::OutputsWithin(tol) => within(a, b, tol),
            Consistency::NearTies { bound } => within(a, b, 2.0 * bound),
        }
    }

    /// How the copies of one query come out.
    fn classify<O: Prediction>(self, copies: &[O]) -> QueryCheck {
        let Some((first, rest)) = copies.split_first() else {
            return QueryCheck::Inconsistent;
        };
        let agree = rest.iter().all(|c| self.agree(first, c));
        match self {
            Consistency::NearTies { bound } => {
                let same_label = rest.iter().all(|c| c.label() == first.label());
                let clear = copies.iter().all(|c| margin(c.scores()) >= 2.0 * bound);
                if same_label && clear && agree {
                    QueryCheck::Verified
                } else if agree {
                    QueryCheck::Tie
                } else {
                    QueryCheck::Inconsistent
                }
            }
            _ if agree => QueryCheck::Verified,
            _ => QueryCheck::Inconsistent,
        }
    }
}

/// Scores of equal length equal up to `tol` per entry (`NaN` never is).
fn within<O: Prediction>(a: &O, b: &O, tol: f64) -> bool {
    a.scores().len() == b.scores().len()
        && a.scores()
            .iter()
            .zip(b.scores())
            .all(|(x, y)| (x - y).abs() <= tol)
}

/// Best score minus the second best (`+inf` with one score, `NaN`-safe:
/// a `NaN` anywhere gives `NaN`, which compares below everything).
fn margin(scores: &[f64]) -> f64 {
    if scores.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let (mut best, mut second) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &v in scores {
        if v > best {
            second = best;
            best = v;
        } else if v > second {
            second = v;
        }
    }
    best - second
}

/// The outcome of one query's copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryCheck {
    Verified,
    Tie,
    Inconsistent,
}

/// Settings of the checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckConfig {
    /// The accuracy threshold `delta`.
    pub threshold: Threshold,
    /// How copies are compared.
    pub consistency: Consistency,
    /// Confidence of the reported accuracy lower bound.
    pub confidence: Confidence,
}

impl CheckConfig {
    /// Label consistency and 95% confidence.
    pub fn new(threshold: Threshold) -> Self {
        CheckConfig {
            threshold,
            consistency: Consistency::Labels,
            confidence: Confidence::default(),
        }
    }
}

/// The accuracy check's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccuracyCheck {
    /// Public samples classified correctly.
    pub correct: u64,
    /// `T`.
    pub total: u64,
    /// `ceil(delta T)`: the fewest correct answers that pass.
    pub required: u64,
    /// `delta`.
    pub threshold: Threshold,
    /// Whether `correct / total >= delta` (exact).
    pub passed: bool,
    /// Confidence of `lower_bound`.
    pub confidence: Confidence,
    /// One-sided Clopper-Pearson lower bound on the model's true accuracy.
    pub lower_bound: f64,
}

impl AccuracyCheck {
    /// `correct / total`, exactly.
    pub fn accuracy(&self) -> Ratio<u64> {
        Ratio::new(self.correct, self.total)
    }

    /// `correct / total` for display.
    pub fn accuracy_f64(&self) -> f64 {
        self.correct as f64 / self.total as f64
    }
}

/// Why the client aborted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AbortReason {
    /// Fewer than `ceil(delta T)` public samples were right.
    AccuracyBelowThreshold {
        /// Public samples classified correctly.
        correct: u64,
        /// `T`.
        total: u64,
        /// `ceil(delta T)`.
        required: u64,
        /// `delta`.
        threshold: Threshold,
    },
    /// The copies of these queries (indices, ascending) disagree.
    InconsistentQueries {
        /// The query indices.
        queries: Vec<usize>,
    },
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::AccuracyBelowThreshold {
                correct,
                total,
                required,
                threshold,
            } => write!(
                f,
                "accuracy {correct}/{total} is below the threshold {threshold} (needs >= {required})"
            ),
            AbortReason::InconsistentQueries { queries } => {
                let list: Vec<String> = queries.iter().map(usize::to_string).collect();
                write!(
                    f,
                    "copies disagree for {} query(ies): {}",
                    queries.len(),
                    list.join(", ")
                )
            }
        }
    }
}

/// The outcome of the checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict<O> {
    /// Both checks passed: one output per query (copy 0's), in query order.
    Accept {
        /// The outputs.
        outputs: Vec<O>,
        /// Queries (indices into `outputs`) that are near ties under
        /// [`Consistency::NearTies`]: accepted, but their label is **not**
        /// verified. Always empty under the other rules.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ties: Vec<usize>,
    },
    /// At least one check failed; every failing check is listed.
    Abort {
        /// The reasons.
        reasons: Vec<AbortReason>,
    },
}

impl<O> Verdict<O> {
    /// Whether the client accepted.
    pub fn is_accept(&self) -> bool {
        matches!(self, Verdict::Accept { .. })
    }
}

/// Verdict and accuracy figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification<O> {
    /// Accept or abort.
    pub verdict: Verdict<O>,
    /// The accuracy check's figures (computed even when consistency fails).
    pub accuracy: AccuracyCheck,
}

/// Runs both checks on the un-shuffled outputs.
pub fn verify<O: Prediction>(unmixed: Unmixed<O>, config: &CheckConfig) -> Verification<O> {
    let total = unmixed.public.len() as u64;
    let correct = unmixed
        .public
        .iter()
        .filter(|(o, label)| o.label() == *label)
        .count() as u64;
    let passed = config.threshold.is_met(correct, total);
    let required = config.threshold.min_correct(total);
    let lower_bound = if total == 0 {
        0.0
    } else {
        clopper_pearson_lower(correct, total, config.confidence)
    };
    let accuracy = AccuracyCheck {
        correct,
        total,
        required,
        threshold: config.threshold,
        passed,
        confidence: config.confidence,
        lower_bound,
    };

    let checks: Vec<QueryCheck> = unmixed
        .queries
        .iter()
        .map(|copies| config.consistency.classify(copies))
        .collect();
    let of = |want: QueryCheck| -> Vec<usize> {
        checks
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == want)
            .map(|(q, _)| q)
            .collect()
    };
    let inconsistent = of(QueryCheck::Inconsistent);
    let ties = of(QueryCheck::Tie);

    let mut reasons = Vec::new();
    if !passed {
        reasons.push(AbortReason::AccuracyBelowThreshold {
            correct,
            total,
            required,
            threshold: config.threshold,
        });
    }
    if !inconsistent.is_empty() {
        reasons.push(AbortReason::InconsistentQueries {
            queries: inconsistent,
        });
    }
    let verdict = if reasons.is_empty() {
        Verdict::Accept {
            outputs: unmixed
                .queries
                .into_iter()
                .filter_map(|c| c.into_iter().next())
                .collect(),
            ties,
        }
    } else {
        Verdict::Abort { reasons }
    };
    Verification { verdict, accuracy }
}

/// The batch parameters a report describes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReportParameters {
    /// `R`.
    pub queries: u64,
    /// `B`.
    pub copies: u64,
    /// `T`.
    pub public: u64,
    /// `N = RB + T`.
    pub total: u64,
    /// Number of classes.
    pub classes: usize,
    /// The security target `2^-lambda`.
    pub lambda: u32,
    /// `delta`.
    pub threshold: Threshold,
    /// `s = T - ceil(delta T)`.
    pub slack: u64,
}

/// The cheating-probability bounds for a batch (log2 values, for display;
/// `meets_target` is decided exactly).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SecurityFigures {
    /// `log2` of the paper's `R / C(N, B)`.
    pub log2_paper_bound: f64,
    /// `log2` of the exact `max_i C(R,i) / C(N, iB)`.
    pub log2_exact_group_bound: f64,
    /// `log2` of the slack-aware `max_k P(k)`.
    pub log2_slack_bound: f64,
    /// The number of corrupted positions `k` attaining the slack-aware bound.
    pub worst_corrupted: u64,
    /// Whether the slack-aware bound is `<= 2^-lambda` (exact).
    pub meets_target: bool,
    /// What the bounds cover: [`BOUND_SCOPE`]. A server that deviates the same
    /// way on every sample of a kind (a substitute model, a targeted
    /// misclassification) makes all copies agree; only the public-accuracy
    /// check stands against it (docs/SECURITY.md).
    pub bound_scope: &'static str,
}

/// The scope of the cheating bounds (the JSON key `bound_scope`): they bound
/// the probability that corrupting chosen *positions* of the shuffled batch
/// goes undetected (the paper's Theorem, section IV-C). They say nothing
/// about input-dependent deviations that treat all copies alike.
pub const BOUND_SCOPE: &str = "position-based tampering";

/// The scope under [`Consistency::NearTies`]: a partly tampered query whose
/// copies stay within `2E` of each other is a tie, not an abort, so the
/// bounds only cover tampering that moves some score by more than `2E`
/// (and `E` is the server's announced bound, which the client cannot check).
pub const BOUND_SCOPE_NEAR_TIES: &str = "position-based tampering that moves a score by more than 2E (near ties allowed; E announced by the server, unchecked)";

impl SecurityFigures {
    /// Computes the three bounds for `layout` with slack `s`.
    pub fn compute(layout: Layout, slack: u64, lambda: u32) -> Self {
        let paper = security::paper_bound(layout);
        let groups = security::exact_group_bound(layout);
        let worst = security::slack_bound(layout, slack);
        SecurityFigures {
            log2_paper_bound: paper.log2(),
            log2_exact_group_bound: groups.probability.log2(),
            log2_slack_bound: worst.probability.log2(),
            worst_corrupted: worst.corrupted,
            meets_target: worst.probability.is_at_most_pow2_neg(lambda),
            bound_scope: BOUND_SCOPE,
        }
    }
}

/// Everything a Fusion run established.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The batch parameters.
    pub parameters: ReportParameters,
    /// Accept (with the outputs) or abort (with the reasons).
    pub verdict: Verdict<Output>,
    /// The accuracy check and the Clopper-Pearson bound.
    pub accuracy: AccuracyCheck,
    /// The cheating-probability bounds.
    pub security: SecurityFigures,
}

impl Report {
    /// Whether the client accepted.
    pub fn accepted(&self) -> bool {
        self.verdict.is_accept()
    }

    /// The accepted outputs, one per query (`None` on abort).
    pub fn outputs(&self) -> Option<&[Output]> {
        match &self.verdict {
            Verdict::Accept { outputs, .. } => Some(outputs),
            Verdict::Abort { .. } => None,
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with finite floats cannot fail; non-finite
        // scores become `null`.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.parameters;
        let a = &self.accuracy;
        let s = &self.security;
        match &self.verdict {
            Verdict::Accept { outputs, ties } if ties.is_empty() => writeln!(
                f,
                "Fusion verdict: ACCEPT ({} query outputs verified)",
                outputs.len()
            )?,
            Verdict::Accept { outputs, ties } => writeln!(
                f,
                "Fusion verdict: ACCEPT ({} query labels verified, {} near ties without a \
                 verified label)",
                outputs.len() - ties.len(),
                ties.len()
            )?,
            Verdict::Abort { .. } => writeln!(
                f,
                "Fusion verdict: ABORT (cheating detected or the model misses the threshold)"
            )?,
        }
        writeln!(
            f,
            "  batch      R = {} queries x B = {} copies + T = {} public = N = {} samples ({} classes)",
            p.queries, p.copies, p.public, p.total, p.classes
        )?;
        writeln!(
            f,
            "  accuracy   {}/{} = {:.4} on public samples (threshold {} needs >= {}): {}",
            a.correct,
            a.total,
            a.accuracy_f64(),
            a.threshold,
            a.required,
            if a.passed { "pass" } else { "FAIL" }
        )?;
        writeln!(
            f,
            "  model      true accuracy >= {:.4} with {}% confidence (one-sided Clopper-Pearson)",
            a.lower_bound,
            a.confidence.level() * 100.0
        )?;
        writeln!(
            f,
            "  cheating   undetected-corruption probability <= 2^{:.2} (slack-aware, s = {}, \
             worst k = {}); paper bound 2^{:.2}, exact group bound 2^{:.2}; target 2^-{} {}\n  \
             scope      {} only: a deviation applied alike to every copy (a substitute model, \
             one class relabelled) is caught only by the public-accuracy check",
            s.log2_slack_bound,
            p.slack,
            s.worst_corrupted,
            s.log2_paper_bound,
            s.log2_exact_group_bound,
            p.lambda,
            if s.meets_target { "met" } else { "NOT met" },
            s.bound_scope
        )?;
        match &self.verdict {
            Verdict::Accept { outputs, ties } => {
                const SHOWN: usize = 32;
                let labels: Vec<String> = outputs
                    .iter()
                    .enumerate()
                    .take(SHOWN)
                    .map(|(q, o)| {
                        if ties.contains(&q) {
                            "tie".to_string()
                        } else {
                            o.label().to_string()
                        }
                    })
                    .collect();
                let more = if outputs.len() > SHOWN {
                    format!(" ... ({} more; see the JSON report)", outputs.len() - SHOWN)
                } else {
                    String::new()
                };
                write!(f, "  labels     {}{more}", labels.join(" "))
            }
            Verdict::Abort { reasons } => {
                for r in reasons {
                    writeln!(f, "  reason     {r}")?;
                }
                write!(
                    f,
                    "  note       the abort itself tells the server it was caught (one bit)"
                )
            }
        }
    }
}

impl Prediction for Output {
    fn label(&self) -> usize {
        Output::label(self)
    }

    fn scores(&self) -> &[f64] {
        Output::scores(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(label_scores: &[f64]) -> Output {
        Output::new(label_scores.to_vec()).unwrap()
    }

    fn unmixed(queries: Vec<Vec<Output>>, public: Vec<(Output, usize)>) -> Unmixed<Output> {
        Unmixed { queries, public }
    }

    fn cfg(delta: &str) -> CheckConfig {
        CheckConfig::new(delta.parse().unwrap())
    }

    #[test]
    fn honest_outputs_are_accepted_with_one_output_per_query() {
        let a = out(&[1.0, 0.0]);
        let b = out(&[0.0, 1.0]);
        let u = unmixed(
            vec![vec![a.clone(), a.clone()], vec![b.clone(), b.clone()]],
            vec![(a.clone(), 0), (b.clone(), 1)],
        );
        let v = verify(u, &cfg("1"));
        assert_eq!(
            v.verdict,
            Verdict::Accept {
                outputs: vec![a, b],
                ties: vec![]
            }
        );
        assert_eq!(
            (v.accuracy.correct, v.accuracy.total, v.accuracy.required),
            (2, 2, 2)
        );
    }

    #[test]
    fn accuracy_below_threshold_aborts_with_figures() {
        let a = out(&[1.0, 0.0]);
        let public: Vec<(Output, usize)> = (0..20)
            .map(|i| (a.clone(), if i < 18 { 0 } else { 1 }))
            .collect();
        let q = vec![vec![a.clone(), a.clone()]];
        // 18/20 = 0.9 < 0.95
        let v = verify(unmixed(q.clone(), public.clone()), &cfg("0.95"));
        assert_eq!(
            v.verdict,
            Verdict::Abort {
                reasons: vec![AbortReason::AccuracyBelowThreshold {
                    correct: 18,
                    total: 20,
                    required: 19,
                    threshold: "0.95".parse().unwrap()
                }]
            }
        );
        // 18/20 = 0.9 passes exactly at 0.9.
        assert!(verify(unmixed(q, public), &cfg("0.9")).verdict.is_accept());
    }

    #[test]
    fn near_ties_are_accepted_without_a_verified_label_and_wide_gaps_still_abort() {
        let mut c = cfg("0.5");
        c.consistency = Consistency::NearTies { bound: 0.1 };
        let public = vec![(out(&[1.0, 0.0]), 0)];
        let q = vec![
            // Clear: same label, margins 1.0 >= 0.2.
            vec![out(&[1.0, 0.0]), out(&[1.05, 0.0])],
            // Labels differ, scores within 0.2: a tie, not an abort.
            vec![out(&[0.55, 0.5]), out(&[0.45, 0.52])],
            // Same label but a margin of 0.15 < 0.2: a tie as well.
            vec![out(&[0.65, 0.5]), out(&[0.66, 0.5])],
            // Same label, clear margins, but copies 0.3 apart: inconsistent.
            vec![out(&[1.0, 0.0]), out(&[1.3, 0.0])],
        ];
        let v = verify(unmixed(q.clone(), public.clone()), &c);
        assert_eq!(
            v.verdict,
            Verdict::Abort {
                reasons: vec![AbortReason::InconsistentQueries { queries: vec![3] }]
            }
        );
        let v = verify(unmixed(q[..3].to_vec(), public.clone()), &c);
        let Verdict::Accept { outputs, ties } = v.verdict else {
            panic!("aborted")
        };
        assert_eq!((outputs.len(), ties), (3, vec![1, 2]));
        // Labels alone: the second query aborts, the third is a verified label.
        let v = verify(unmixed(q[..3].to_vec(), public), &cfg("0.5"));
        assert_eq!(
            v.verdict,
            Verdict::Abort {
                reasons: vec![AbortReason::InconsistentQueries { queries: vec![1] }]
            }
        );
    }

    #[test]
    fn a_nan_score_is_never_a_verified_label_under_near_ties() {
        let mut c = cfg("0.5");
        c.consistency = Consistency::NearTies { bound: 0.1 };
        let nan = Output::new(vec![f64::NAN, 0.0]);
        if let Ok(nan) = nan {
            let q = vec![vec![nan.clone(), nan]];
            let v = verify(unmixed(q, vec![(out(&[1.0, 0.0]), 0)]), &c);
            assert!(!matches!(v.verdict, Verdict::Accept { ref ties, .. } if ties.is_empty()));
        }
        assert!(margin(&[f64::NAN, 1.0]).is_nan());
        assert_eq!(margin(&[3.0]), f64::INFINITY);
        assert_eq!(margin(&[1.0, 3.0, 2.5]), 0.5);
    }

    #[test]
    fn inconsistent_copies_are_listed_and_both_reasons_can_apply() {
        let a = out(&[1.0, 0.0]);
        let b = out(&[0.0, 1.0]);
        let q = vec![
            vec![a.clone(), a.clone(), a.clone()],
            vec![a.clone(), b.clone(), a.clone()],
            vec![b.clone(), b.clone(), b.clone()],
            vec![b.clone(), b.clone(), a.clone()],
        ];
        let v = verify(unmixed(q, vec![(a.clone(), 1)]), &cfg("1"));
        let Verdict::Abort { reasons } = v.verdict else {
            panic!("accepted")
        };
        assert_eq!(reasons.len(), 2);
        assert!(matches!(
            reasons[0],
            AbortReason::AccuracyBelowThreshold { correct: 0, .. }
        ));
        assert_eq!(
            reasons[1],
            AbortReason::InconsistentQueries {
                queries: vec![1, 3]
            }
        );
    }

    #[test]
    fn whole_output_comparison_is_optional() {
        let a = out(&[1.0, 0.0]);
        let a2 = out(&[1.0 + 1e-9, 0.0]);
        let q = vec![vec![a.clone(), a2.clone()]];
        let public = vec![(a.clone(), 0)];
        let mut c = cfg("1");
        assert!(
            verify(unmixed(q.clone(), public.clone()), &c)
                .verdict
                .is_accept()
        );
        c.consistency = Consistency::ExactOutputs;
        assert!(
            !verify(unmixed(q.clone(), public.clone()), &c)
                .verdict
                .is_accept()
        );
        c.consistency = Consistency::OutputsWithin(1e-6);
        assert!(verify(unmixed(q, public), &c).verdict.is_accept());
    }

    #[test]
    fn report_renders_for_humans_and_json() {
        let a = out(&[0.2, 0.9]);
        let u = unmixed(vec![vec![a.clone(), a.clone()]], vec![(a.clone(), 1); 100]);
        let v = verify(u, &cfg("0.95"));
        let layout = Layout::new(1, 2, 100).unwrap();
        let report = Report {
            parameters: ReportParameters {
                queries: 1,
                copies: 2,
                public: 100,
                total: 102,
                classes: 2,
                lambda: 40,
                threshold: "0.95".parse().unwrap(),
                slack: 5,
            },
            verdict: v.verdict,
            accuracy: v.accuracy,
            security: SecurityFigures::compute(layout, 5, 40),
        };
        let text = report.to_string();
        assert!(text.contains("ACCEPT"), "{text}");
        assert!(text.contains("100/100"), "{text}");
        assert!(text.contains("0.9705"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["verdict"]["verdict"], "accept");
        assert_eq!(json["verdict"]["outputs"][0]["label"], 1);
        assert_eq!(json["parameters"]["threshold"], 0.95);
        assert_eq!(json["accuracy"]["correct"], 100);
        assert!(json["security"]["log2_slack_bound"].as_f64().unwrap() < -5.0);
        assert_eq!(json["security"]["meets_target"], false);
    }
}
