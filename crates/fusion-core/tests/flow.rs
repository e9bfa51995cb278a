//! The whole Fusion flow (plan, mix, infer, unmix, verify) against an honest
//! plaintext engine and three adversarial ones.

use std::future::Future;

use fusion_core::engine::{Copies, Engine, FnEngine, FusionParams, Output, run_fusion};
use fusion_core::mix::{Labeled, uniform_below};
use fusion_core::security::{Layout, slack_probability};
use fusion_core::verify::{AbortReason, Verdict};
use fusion_core::{Error, Threshold};
use futures::executor::block_on;
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

/// The honest model: 3 classes, class 2 is never predicted.
fn model(x: &[f64]) -> Vec<f64> {
    vec![x[0], x[1], -1e9]
}

fn model_label(x: &[f64]) -> usize {
    if x[0] >= x[1] { 0 } else { 1 }
}

fn points(n: usize, rng: &mut ChaCha20Rng) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| vec![rng.random::<f64>(), rng.random::<f64>()])
        .collect()
}

/// Public samples labelled by the model itself: the honest model is perfect on
/// them (the worst case for the client in the analysis).
fn public(n: usize, rng: &mut ChaCha20Rng) -> Vec<Labeled<Vec<f64>>> {
    points(n, rng)
        .into_iter()
        .map(|x| Labeled {
            label: model_label(&x),
            sample: x,
        })
        .collect()
}

fn delta(s: &str) -> Threshold {
    s.parse().expect("valid threshold")
}

#[test]
fn honest_engine_is_accepted_with_the_right_outputs() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let queries = points(8, &mut rng);
    let public = public(100, &mut rng);
    let params = FusionParams::new(3, delta("0.95"));
    let mut engine = FnEngine(|x: &Vec<f64>| model(x));
    let report = block_on(run_fusion(
        &mut engine,
        &queries,
        &public,
        &params,
        &mut rng,
    ))
    .unwrap();
    assert!(report.accepted(), "{report}");
    // Plan: with delta = 0.95 and T = 100, R = 8 needs B = 10 (not the paper's 8).
    assert_eq!((report.parameters.copies, report.parameters.slack), (10, 5));
    assert!(report.security.meets_target);
    let outputs = report.outputs().unwrap();
    assert_eq!(outputs.len(), 8);
    for (q, o) in queries.iter().zip(outputs) {
        assert_eq!(o.label(), model_label(q));
        assert_eq!(o.scores(), model(q).as_slice());
    }
    assert_eq!(report.accuracy.correct, 100);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["verdict"]["verdict"], "accept");
}

#[test]
fn honest_runs_always_accept() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for _ in 0..50 {
        let queries = points(3, &mut rng);
        let public = public(20, &mut rng);
        let mut params = FusionParams::new(3, delta("0.9"));
        params.copies = Copies::Fixed(3);
        let report = block_on(run_fusion(
            &mut FnEngine(|x: &Vec<f64>| model(x)),
            &queries,
            &public,
            &params,
            &mut rng,
        ))
        .unwrap();
        assert!(report.accepted(), "{report}");
    }
}

#[test]
fn low_quality_model_aborts_on_accuracy() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let queries = points(8, &mut rng);
    let public = public(100, &mut rng);
    let params = FusionParams::new(3, delta("0.95"));
    // A cheap model: always class 0. Consistent, but about half the public
    // samples are wrong.
    let mut cheap = FnEngine(|_: &Vec<f64>| vec![1.0, 0.0, 0.0]);
    let report = block_on(run_fusion(&mut cheap, &queries, &public, &params, &mut rng)).unwrap();
    let correct = public.iter().filter(|p| p.label == 0).count() as u64;
    match &report.verdict {
        Verdict::Abort { reasons } => assert_eq!(
            reasons,
            &vec![AbortReason::AccuracyBelowThreshold {
                correct,
                total: 100,
                required: 95,
                threshold: delta("0.95")
            }]
        ),
        Verdict::Accept { .. } => panic!("accepted a bad model: {report}"),
    }
    assert!(report.accuracy.lower_bound < 0.7);
    assert!(report.to_string().contains("ABORT"));
}

#[test]
fn random_answers_fail_both_checks() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let queries = points(8, &mut rng);
    let public = public(100, &mut rng);
    let params = FusionParams::new(3, delta("0.95"));
    let mut noise = ChaCha20Rng::seed_from_u64(44);
    let mut random = FnEngine(move |_: &Vec<f64>| {
        let mut s = vec![0.0; 3];
        s[uniform_below(&mut noise, 3) as usize] = 1.0;
        s
    });
    let report = block_on(run_fusion(
        &mut random,
        &queries,
        &public,
        &params,
        &mut rng,
    ))
    .unwrap();
    let Verdict::Abort { reasons } = &report.verdict else {
        panic!("accepted noise")
    };
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        matches!(reasons[1], AbortReason::InconsistentQueries { ref queries } if !queries.is_empty())
    );
}

/// A server that runs the honest model, then overwrites the outputs at `k`
/// uniformly random positions with class 2 (which the honest model never
/// outputs). It cannot see which positions are copies or public samples.
struct CorruptK {
    k: usize,
    rng: ChaCha20Rng,
}

impl Engine<Vec<f64>> for CorruptK {
    type Error = Error;

    fn infer(
        &mut self,
        batch: &[Vec<f64>],
    ) -> impl Future<Output = Result<Vec<Output>, Error>> + Send {
        let mut out: Vec<Output> = batch
            .iter()
            .map(|x| Output::new(model(x)).expect("non-empty scores"))
            .collect();
        let mut idx: Vec<usize> = (0..batch.len()).collect();
        for i in 0..self.k {
            let j = i + uniform_below(&mut self.rng, (batch.len() - i) as u64) as usize;
            idx.swap(i, j);
            out[idx[i]] = Output::one_hot(2, 3).expect("2 < 3");
        }
        std::future::ready(Ok(out))
    }
}

#[test]
fn corrupting_k_random_positions_goes_undetected_at_the_predicted_rate() {
    // R = 2, B = 2, T = 3 (N = 7): small enough that cheating succeeds often.
    let runs = 20_000u64;
    let mut master = ChaCha20Rng::seed_from_u64(5);
    for (threshold, k) in [("2/3", 3usize), ("1/3", 4), ("1", 2), ("1/3", 3)] {
        let delta = delta(threshold);
        let mut params = FusionParams::new(3, delta);
        params.copies = Copies::Fixed(2);
        let mut undetected = 0u64;
        for _ in 0..runs {
            let queries = points(2, &mut master);
            let public = public(3, &mut master);
            let mut engine = CorruptK {
                k,
                rng: ChaCha20Rng::seed_from_u64(master.random()),
            };
            let mut client = ChaCha20Rng::seed_from_u64(master.random());
            let report = block_on(run_fusion(
                &mut engine,
                &queries,
                &public,
                &params,
                &mut client,
            ))
            .unwrap();
            if report
                .outputs()
                .is_some_and(|outs| outs.iter().any(|o| o.label() == 2))
            {
                undetected += 1;
            }
        }
        let s = delta.slack(3);
        let exact = slack_probability(Layout::new(2, 2, 3).unwrap(), s, k as u64).to_f64();
        let rate = undetected as f64 / runs as f64;
        let sigma = (exact * (1.0 - exact) / runs as f64).sqrt();
        eprintln!(
            "delta {threshold} (s = {s}), k = {k}: undetected {rate:.4}, formula {exact:.4}, \
             {:.2} sigma over {runs} runs",
            (rate - exact).abs() / sigma
        );
        assert!(
            (rate - exact).abs() <= 4.0 * sigma,
            "delta {threshold} (s = {s}), k = {k}: undetected {rate:.4} vs formula {exact:.4}"
        );
        assert!(exact > 0.0);
    }
}

#[test]
fn a_lucky_consistent_corruption_is_accepted() {
    // The plaintext engine sees the samples, so this "server" can hit exactly
    // the B copies of query 0: the event that a real server, which sees only
    // shares, hits by luck with probability at most the reported bound.
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let queries = points(8, &mut rng);
    let public = public(100, &mut rng);
    let params = FusionParams::new(3, delta("0.95"));
    let target = queries[0].clone();
    let mut lucky = FnEngine(move |x: &Vec<f64>| {
        if *x == target {
            vec![0.0, 0.0, 1.0]
        } else {
            model(x)
        }
    });
    let report = block_on(run_fusion(&mut lucky, &queries, &public, &params, &mut rng)).unwrap();
    assert!(report.accepted(), "{report}");
    let outputs = report.outputs().unwrap();
    assert_eq!(outputs[0].label(), 2, "the corrupted answer is accepted");
    for (q, o) in queries.iter().zip(outputs).skip(1) {
        assert_eq!(o.label(), model_label(q));
    }
    // What the bound is about: this luck has probability <= 2^-40.
    assert!(report.security.meets_target);
    assert!(report.security.log2_slack_bound <= -40.0);
}

struct Broken(usize, usize);

#[derive(Debug, thiserror::Error)]
#[error("link down")]
struct LinkDown;

impl Engine<Vec<f64>> for Broken {
    type Error = LinkDown;

    fn infer(
        &mut self,
        batch: &[Vec<f64>],
    ) -> impl Future<Output = Result<Vec<Output>, LinkDown>> + Send {
        let (drop, classes) = (self.0, self.1);
        let r = if classes == 0 {
            Err(LinkDown)
        } else {
            Ok((0..batch.len().saturating_sub(drop))
                .map(|_| Output::new(vec![0.5; classes]).expect("classes > 0"))
                .collect())
        };
        std::future::ready(r)
    }
}

#[test]
fn engine_failures_and_malformed_outputs_are_errors() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let queries = points(2, &mut rng);
    let public = public(10, &mut rng);
    let mut params = FusionParams::new(3, delta("0.9"));
    params.copies = Copies::Fixed(2);
    let run = |e: &mut Broken, rng: &mut ChaCha20Rng| {
        block_on(run_fusion(e, &queries, &public, &params, rng))
    };
    assert!(matches!(
        run(&mut Broken(1, 3), &mut rng),
        Err(Error::OutputCount {
            expected: 14,
            got: 13
        })
    ));
    assert!(matches!(
        run(&mut Broken(0, 2), &mut rng),
        Err(Error::MalformedOutput { .. })
    ));
    let err = run(&mut Broken(0, 0), &mut rng).unwrap_err();
    assert!(matches!(err, Error::Engine(_)));
    assert_eq!(err.to_string(), "the inference engine failed: link down");
    assert!(run(&mut Broken(0, 3), &mut rng).is_ok());
}

#[test]
fn invalid_inputs_are_rejected_before_inference() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let queries = points(2, &mut rng);
    let public = public(10, &mut rng);
    let params = FusionParams::new(3, delta("0.9"));
    let mut e = FnEngine(|x: &Vec<f64>| model(x));
    assert!(matches!(
        block_on(run_fusion(&mut e, &[], &public, &params, &mut rng)),
        Err(Error::NoQueries)
    ));
    assert!(matches!(
        block_on(run_fusion(&mut e, &queries, &[], &params, &mut rng)),
        Err(Error::NoPublicSamples)
    ));
    let mut p1 = params;
    p1.copies = Copies::Fixed(1);
    assert!(matches!(
        block_on(run_fusion(&mut e, &queries, &public, &p1, &mut rng)),
        Err(Error::TooFewCopies(1))
    ));
    let mut bad = public.clone();
    bad[3].label = 7;
    assert!(matches!(
        block_on(run_fusion(&mut e, &queries, &bad, &params, &mut rng)),
        Err(Error::LabelOutOfRange {
            index: 3,
            label: 7,
            classes: 3
        })
    ));
    // With only T = 10 public samples at 0.9 (s = 1) no B <= 40 reaches 2^-40
    // for R = 2: corrupting both queries' copies and 1 public sample leaves
    // only 9 positions untouched, which succeeds with probability
    // 10 / C(2B + 10, 9) > 2^-37.
    assert!(matches!(
        block_on(run_fusion(&mut e, &queries, &public, &params, &mut rng)),
        Err(Error::NoSecureCopies {
            queries: 2,
            public: 10,
            slack: 1,
            lambda: 40,
            max_copies: 40
        })
    ));
}

#[test]
fn near_ties_narrow_the_stated_scope_of_the_bound() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let queries = points(4, &mut rng);
    let public = public(100, &mut rng);
    let mut params = FusionParams::new(3, delta("0.95"));
    let mut engine = FnEngine(|x: &Vec<f64>| model(x));
    let plain = block_on(run_fusion(
        &mut engine,
        &queries,
        &public,
        &params,
        &mut rng,
    ))
    .unwrap();
    assert_eq!(plain.security.bound_scope, fusion_core::verify::BOUND_SCOPE);
    params.consistency = fusion_core::verify::Consistency::NearTies { bound: 1e-3 };
    let ties = block_on(run_fusion(
        &mut engine,
        &queries,
        &public,
        &params,
        &mut rng,
    ))
    .unwrap();
    assert!(ties.accepted(), "{ties}");
    assert_eq!(
        ties.security.bound_scope,
        fusion_core::verify::BOUND_SCOPE_NEAR_TIES
    );
    assert!(ties.to_string().contains("more than 2E"));
}
