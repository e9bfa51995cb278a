//! The seam between Fusion's mix-and-check and a two-party inference engine.
//!
//! Fusion (Dong et al., NDSS 2023, section IV, Fig. 3) runs on top of *any*
//! semi-honest secure-inference protocol. [`Engine`] is that protocol as the
//! client sees it: give it a batch of samples, get back the decoded outputs
//! that only the client learns. The real engine (Cheetah-style 2PC over QUIC)
//! implements it asynchronously; [`FnEngine`] wraps a plaintext closure for
//! tests and reference runs.
//!
//! [`run_fusion`] is the whole client flow: **plan** the number of copies,
//! **mix** (secret permutation), **infer** through the engine, **unmix** and
//! **verify**, returning a [`Report`]. What the server learns: the batch size
//! `N` and, if the client aborts, the fact that it was caught.
//!
//! ```
//! use fusion_core::engine::{FnEngine, FusionParams, run_fusion};
//! use fusion_core::mix::Labeled;
//! use rand::SeedableRng;
//!
//! // A plaintext "model": class 1 iff the first feature is positive.
//! let mut engine = FnEngine(|x: &Vec<f64>| vec![-x[0], x[0]]);
//! let queries = vec![vec![0.5, 1.0], vec![-2.0, 0.0]];
//! let public: Vec<Labeled<Vec<f64>>> = (0..100)
//!     .map(|i| {
//!         let x = f64::from(i) - 49.5;
//!         Labeled::new(vec![x, 0.0], usize::from(x > 0.0))
//!     })
//!     .collect();
//! let params = FusionParams::new(2, "0.95".parse()?);
//! let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(1);
//! let report =
//!     futures::executor::block_on(run_fusion(&mut engine, &queries, &public, &params, &mut rng))?;
//! assert!(report.accepted());
//! let labels: Vec<usize> = report.outputs().unwrap_or_default().iter().map(|o| o.label()).collect();
//! assert_eq!(labels, [1, 0]);
//! println!("{report}");
//! # Ok::<(), fusion_core::Error>(())
//! ```

use std::future::Future;

use rand::{CryptoRng, Rng};

use crate::Error;
use crate::Threshold;
use crate::mix::{Labeled, MixedBatch, Shaped};
use crate::search::DEFAULT_LAMBDA;
use crate::security::{self, Layout, WorstCase};
use crate::stats::Confidence;
use crate::verify::{
    CheckConfig, Consistency, Report, ReportParameters, SecurityFigures, Verdict, verify,
};

pub use crate::output::Output;

/// A two-party inference engine as the client sees it: it runs a batch
/// through the (semi-honest) protocol and returns the client's decoded
/// outputs, one per sample, in batch order.
pub trait Engine<S> {
    /// The engine's failure (network, protocol, ...).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Runs `batch` and returns one output per sample, in order.
    fn infer(
        &mut self,
        batch: &[S],
    ) -> impl Future<Output = Result<Vec<Output>, Self::Error>> + Send;
}

/// A plaintext engine from a closure computing a sample's scores: the
/// reference oracle for tests, and a "server" that is honest by construction.
#[derive(Debug, Clone)]
pub struct FnEngine<F>(pub F);

impl<S, F> Engine<S> for FnEngine<F>
where
    F: FnMut(&S) -> Vec<f64>,
{
    type Error = Error;

    fn infer(
        &mut self,
        batch: &[S],
    ) -> impl Future<Output = Result<Vec<Output>, Self::Error>> + Send {
        let result = batch
            .iter()
            .enumerate()
            .map(|(position, s)| {
                Output::new((self.0)(s)).map_err(|_| Error::MalformedOutput {
                    position,
                    reason: "the model returned no scores".into(),
                })
            })
            .collect();
        std::future::ready(result)
    }
}

/// How many copies `B` to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copies {
    /// The smallest `B >= 2` whose slack-aware bound with the given public
    /// samples is `<= 2^-lambda` ([`plan_copies`]).
    Auto,
    /// Exactly this `B` (the report says whether the target is met).
    Fixed(u64),
}

/// The client's settings for a Fusion run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionParams {
    /// Number of classes of the model's output.
    pub classes: usize,
    /// The accuracy threshold `delta`.
    pub threshold: Threshold,
    /// The security target `2^-lambda`.
    pub lambda: u32,
    /// How to choose `B`.
    pub copies: Copies,
    /// Largest `B` [`Copies::Auto`] may pick.
    pub max_copies: u64,
    /// How copies are compared.
    pub consistency: Consistency,
    /// Confidence of the reported accuracy bound.
    pub confidence: Confidence,
}

impl FusionParams {
    /// `classes` and `delta` with `lambda = 40`, automatic `B <= 40`, label
    /// consistency and 95% confidence.
    pub fn new(classes: usize, threshold: Threshold) -> Self {
        FusionParams {
            classes,
            threshold,
            lambda: DEFAULT_LAMBDA,
            copies: Copies::Auto,
            max_copies: u64::from(DEFAULT_LAMBDA),
            consistency: Consistency::Labels,
            confidence: Confidence::default(),
        }
    }
}

/// The smallest `B` in `2..=max_copies` whose slack-aware bound for `R`
/// queries and `T` public samples at threshold `delta` is `<= 2^-lambda`,
/// with the slack and the bound.
pub fn plan_copies(
    queries: u64,
    public: u64,
    threshold: Threshold,
    lambda: u32,
    max_copies: u64,
) -> Result<(u64, u64, WorstCase), Error> {
    let slack = threshold.slack(public);
    for b in 2..=max_copies {
        let worst = security::slack_bound(Layout::new(queries, b, public)?, slack);
        if worst.probability.is_at_most_pow2_neg(lambda) {
            return Ok((b, slack, worst));
        }
    }
    Err(Error::NoSecureCopies {
        queries,
        public,
        slack,
        lambda,
        max_copies,
    })
}

/// The whole client flow: plan `B`, mix the queries with the labelled public
/// samples under a permutation drawn from `rng`, run the batch through
/// `engine`, unmix, verify, and report. Engine failures and malformed outputs
/// (wrong count, wrong number of scores) are errors; a cheating server that
/// gets caught is an `Ok` report with an abort verdict.
pub async fn run_fusion<S, E, G>(
    engine: &mut E,
    queries: &[S],
    public: &[Labeled<S>],
    params: &FusionParams,
    rng: &mut G,
) -> Result<Report, Error>
where
    S: Shaped + Clone,
    E: Engine<S>,
    G: Rng + CryptoRng + ?Sized,
{
    // Reject bad inputs before planning, so their errors are not masked.
    crate::mix::validate(queries, public, params.classes)?;
    let r = queries.len() as u64;
    let t = public.len() as u64;
    // Plan.
    let (b, slack) = match params.copies {
        Copies::Auto => {
            let (b, s, _) = plan_copies(r, t, params.threshold, params.lambda, params.max_copies)?;
            (b, s)
        }
        Copies::Fixed(b) => (b, params.threshold.slack(t)),
    };
    let copies = usize::try_from(b).map_err(|_| Error::TooFewCopies(b))?;
    // Mix.
    let batch = MixedBatch::new(queries, public, copies, params.classes, rng)?;
    // Infer.
    let outputs = engine
        .infer(batch.samples())
        .await
        .map_err(|e| Error::Engine(Box::new(e)))?;
    if outputs.len() != batch.samples().len() {
        return Err(Error::OutputCount {
            expected: batch.samples().len(),
            got: outputs.len(),
        });
    }
    for (position, o) in outputs.iter().enumerate() {
        if o.scores().len() != params.classes {
            return Err(Error::MalformedOutput {
                position,
                reason: format!("{} scores for {} classes", o.scores().len(), params.classes),
            });
        }
    }
    // Unmix and verify.
    let unmixed = batch.unmix(outputs)?;
    let config = CheckConfig {
        threshold: params.threshold,
        consistency: params.consistency,
        confidence: params.confidence,
    };
    let verification = verify(unmixed, &config);
    let layout = Layout::new(r, b, t)?;
    Ok(Report {
        parameters: ReportParameters {
            queries: r,
            copies: b,
            public: t,
            total: layout.total(),
            classes: params.classes,
            lambda: params.lambda,
            threshold: params.threshold,
            slack,
        },
        verdict: match verification.verdict {
            Verdict::Accept { outputs, ties } => Verdict::Accept { outputs, ties },
            Verdict::Abort { reasons } => Verdict::Abort { reasons },
        },
        accuracy: verification.accuracy,
        security: {
            let mut s = SecurityFigures::compute(layout, slack, params.lambda);
            if matches!(params.consistency, Consistency::NearTies { .. }) {
                s.bound_scope = crate::verify::BOUND_SCOPE_NEAR_TIES;
            }
            s
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_is_argmax_with_lowest_index_on_ties() {
        assert_eq!(Output::new(vec![0.1, 0.7, 0.2]).unwrap().label(), 1);
        assert_eq!(Output::new(vec![0.5, 0.5, 0.2]).unwrap().label(), 0);
        assert_eq!(Output::new(vec![0.2, 0.9, 0.9]).unwrap().label(), 1);
        assert_eq!(Output::new(vec![f64::NAN, -3.0]).unwrap().label(), 1);
        assert_eq!(Output::new(vec![f64::NAN, f64::NAN]).unwrap().label(), 0);
        assert_eq!(Output::new(vec![-1.0]).unwrap().label(), 0);
        assert!(Output::new(vec![]).is_err());
        assert_eq!(Output::one_hot(2, 3).unwrap().scores(), &[0.0, 0.0, 1.0]);
        assert!(Output::one_hot(3, 3).is_err());
    }

    #[test]
    fn plan_copies_picks_the_smallest_secure_b() {
        let delta: Threshold = "0.95".parse().unwrap();
        let (b, s, w) = plan_copies(8, 100, delta, 40, 40).unwrap();
        assert_eq!((b, s), (10, 5));
        assert!(w.probability.is_at_most_pow2_neg(40));
        let (b, _, _) = plan_copies(8, 100, Threshold::ONE, 40, 40).unwrap();
        assert_eq!(b, 8);
        assert!(matches!(
            plan_copies(8, 100, delta, 40, 9),
            Err(Error::NoSecureCopies { max_copies: 9, .. })
        ));
    }
}
