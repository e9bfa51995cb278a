//! End-to-end checks of the oracles and both attacks on the shipped models.

use fusion_attacks::carlini::{self, CarliniConfig};
use fusion_attacks::dense::DenseNet;
use fusion_attacks::jbda::{self, JbdaConfig};
use fusion_attacks::oracle::{
    F64Oracle, LabelOnly, OracleAnswer, Perturbation, PlaintextOracle, ReverseSigmoidOutput,
    Truncation, floor_or_one_less, rows_of, truncation_bound,
};
use fusion_attacks::{AttackError, Oracle};
use fusion_nn::Model;
use fusion_nn::data::{self, Part, Split};
use fusion_nn::reverse_sigmoid::ReverseSigmoid;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

fn load(name: &str) -> (Model, Split) {
    let dir = data::data_dir().expect("data dir");
    let model = Model::load(&dir.join("models").join(name)).expect("model");
    let ds = model.meta.dataset.clone().expect("dataset");
    let split = data::load(&dir, &ds, Part::Test).expect("test split");
    (model, split)
}

fn preprocessed(model: &Model, split: &Split) -> Vec<Vec<f64>> {
    rows_of(
        &model
            .meta
            .preprocess
            .apply(&split.inputs)
            .expect("preprocess"),
    )
}

#[test]
fn plaintext_oracles_agree_within_the_truncation_bound() {
    let (model, split) = load("bc-mlp");
    let rows = preprocessed(&model, &split);
    let mut floor = PlaintextOracle::new(&model, Truncation::Floor).expect("oracle");
    let mut noisy = PlaintextOracle::new(&model, floor_or_one_less(7)).expect("oracle");
    let bound = truncation_bound(floor.program()).expect("bound");
    assert!(bound > 0.0 && bound < 0.05, "bound {bound}");
    let a = floor.query(&rows).expect("query");
    let b = noisy.query(&rows).expect("query");
    let (la, lb) = (a.logits().expect("logits"), b.logits().expect("logits"));
    let mut worst = 0f64;
    let mut differs = false;
    for (x, y) in la.iter().zip(lb) {
        for (p, q) in x.iter().zip(y) {
            worst = worst.max((p - q).abs());
            differs |= p != q;
        }
    }
    assert!(differs, "the truncation model changed nothing");
    assert!(worst <= bound, "logits differ by {worst} > bound {bound}");
    // Labels agree wherever the floor run's margin exceeds twice the bound (all of this split).
    for (x, y) in la.iter().zip(lb) {
        let mut s = x.clone();
        s.sort_by(|p, q| q.total_cmp(p));
        assert!(s[0] - s[1] > 2.0 * bound, "margin too small for this check");
        assert_eq!(
            fusion_attacks::dense::argmax(x),
            fusion_attacks::dense::argmax(y)
        );
    }
    assert_eq!(floor.queries_used(), rows.len() as u64);
    assert_eq!(noisy.rows_evaluated(), rows.len() as u64);
}

#[test]
fn plaintext_and_f64_oracles_give_identical_labels_on_bc_mlp() {
    let (model, split) = load("bc-mlp");
    let rows = preprocessed(&model, &split);
    let mut fixed = PlaintextOracle::new(&model, floor_or_one_less(3)).expect("oracle");
    let mut exact = F64Oracle::new(&model).expect("oracle");
    let a = fixed.query(&rows).expect("query");
    let b = exact.query(&rows).expect("query");
    assert_eq!(a.labels(), b.labels());
    let worst = a
        .logits()
        .expect("logits")
        .iter()
        .zip(b.logits().expect("logits"))
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0f64, f64::max);
    // data/models/README.md: max logit error 0.0027 on this split (floor truncation).
    assert!(worst < 0.01, "fixed vs f64 logits differ by {worst}");
}

#[test]
fn carlini_recovers_bc_mlp_first_layer_from_the_f64_oracle() {
    let (model, split) = load("bc-mlp");
    let truth = DenseNet::from_model(&model).expect("dense");
    let mut oracle = F64Oracle::new(&model).expect("oracle");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ex = carlini::extract(
        &mut oracle,
        truth.hidden()[0],
        &CarliniConfig::new(200_000),
        &mut rng,
    )
    .expect("extract");
    let err = carlini::weight_errors(&ex.network, &truth).expect("errors");
    eprintln!(
        "neurons {} critical {} queries {} errors {err:?}",
        ex.neurons_found, ex.critical_points, ex.queries_used
    );
    assert_eq!(ex.neurons_found, 16);
    assert!(err[0] < 1e-6 && err[1] < 1e-6, "layer errors {err:?}");
    let rows = preprocessed(&model, &split);
    let acc = carlini::accuracy(&ex.network, &rows, &split.labels);
    let server = carlini::accuracy(&truth, &rows, &split.labels);
    assert_eq!(acc, server);
}

#[test]
fn carlini_is_refused_on_label_only_output_and_conv_models() {
    let (model, _) = load("bc-mlp");
    let mut oracle = LabelOnly(F64Oracle::new(&model).expect("oracle"));
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let r = carlini::extract(&mut oracle, 16, &CarliniConfig::new(10_000), &mut rng);
    assert!(matches!(r, Err(AttackError::Unsupported(_))), "{r:?}");
    let mut oracle = F64Oracle::new(&model).expect("oracle");
    let r = carlini::extract(&mut oracle, 16, &CarliniConfig::new(0), &mut rng);
    assert!(matches!(r, Err(AttackError::BadParameter(_))), "{r:?}");
    let (cnn, _) = load("mnist-cnn-weak");
    assert!(matches!(
        DenseNet::from_model(&cnn),
        Err(AttackError::Unsupported(_))
    ));
    assert!(matches!(
        F64Oracle::new(&cnn),
        Err(AttackError::Unsupported(_))
    ));
}

#[test]
fn jbda_augmentation_improves_the_substitute_over_the_seeds_alone() {
    let (model, split) = load("mnist-cnn");
    let x = model
        .meta
        .preprocess
        .apply(&split.inputs)
        .expect("preprocess");
    let k = 50;
    let seeds = x.slice_batch(0..k);
    let eval = x.slice_batch(k..2050);
    let labels = &split.labels[k..2050];
    let mut cfg = JbdaConfig::new(k as u64);
    cfg.hidden = vec![100];
    let run = |cfg: &JbdaConfig| {
        let mut oracle = PlaintextOracle::new(&model, floor_or_one_less(5)).expect("oracle");
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let s = jbda::run(&mut oracle, &seeds, cfg, &mut rng).expect("jbda");
        assert!(s.queries_used <= cfg.budget);
        (
            jbda::accuracy(&s.model, &eval, labels).expect("accuracy"),
            s,
        )
    };
    let (seed_only, s0) = run(&cfg);
    assert_eq!(s0.rounds, 0);
    cfg.budget = 800;
    let (augmented, s1) = run(&cfg);
    assert_eq!(s1.queries_used, 800);
    assert!(s1.rounds >= 4);
    eprintln!("seed-only {seed_only}, augmented {augmented}");
    assert!(
        augmented > seed_only + 0.02,
        "seed-only {seed_only}, augmented {augmented}"
    );
    // deterministic
    let (again, _) = run(&cfg);
    assert_eq!(again, augmented);
}

#[test]
fn jbda_rejects_a_zero_budget() {
    let (model, split) = load("bc-mlp");
    let x = model
        .meta
        .preprocess
        .apply(&split.inputs)
        .expect("preprocess");
    let mut oracle = F64Oracle::new(&model).expect("oracle");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let r = jbda::run(
        &mut oracle,
        &x.slice_batch(0..10),
        &JbdaConfig::new(0),
        &mut rng,
    );
    assert!(matches!(r, Err(AttackError::BadParameter(_))), "{r:?}");
}

#[test]
fn carlini_recovers_bc_mlp_from_the_fixed_point_oracle_to_a_few_percent() {
    let (model, _) = load("bc-mlp");
    let truth = DenseNet::from_model(&model).expect("dense");
    let mut oracle = PlaintextOracle::new(&model, floor_or_one_less(2)).expect("oracle");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ex =
        carlini::extract(&mut oracle, 16, &CarliniConfig::new(100_000), &mut rng).expect("extract");
    let err = carlini::weight_errors(&ex.network, &truth).expect("errors");
    assert_eq!(ex.neurons_found, 16);
    // Quantised outputs (f = 12, one-bit truncation noise) limit precision:
    // a few percent, against ~1e-9 from the f64 oracle.
    assert!(err[0] < 0.2 && err[1] < 0.2, "layer errors {err:?}");
    assert!(
        err[0] > 1e-4,
        "implausibly exact from a quantised oracle: {err:?}"
    );
}

#[test]
fn the_reverse_sigmoid_oracle_returns_perturbed_probabilities_and_counts_only_attacker_rows() {
    let (model, split) = load("mnist-cnn");
    let rows: Vec<Vec<f64>> = preprocessed(&model, &split).into_iter().take(20).collect();
    let plain = PlaintextOracle::new(&model, Truncation::Floor).expect("oracle");
    let rs = ReverseSigmoid::default();
    let mut logits = PlaintextOracle::new(&model, Truncation::Floor).expect("oracle");
    let want = logits.query(&rows).expect("logits");
    let mut o = ReverseSigmoidOutput::fixed_point(plain, rs).expect("wrapper");
    let OracleAnswer::Probabilities(got) = o.query(&rows).expect("query") else {
        panic!("probabilities expected");
    };
    assert_eq!(o.queries_used(), 20);
    for (g, l) in got.iter().zip(want.logits().expect("logits")) {
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 0.01, "{g:?}");
        assert!(g.iter().all(|&v| (0.0..=1.0).contains(&v)), "{g:?}");
        // Against the f64 defence of the same logits.
        for (a, b) in g.iter().zip(rs.apply_f64(l, 12)) {
            assert!((a - b).abs() < 0.004, "{g:?}");
        }
    }
    let labels = o.server_labels(&rows).expect("labels");
    assert_eq!(labels, OracleAnswer::Probabilities(got).labels());
    assert_eq!(
        o.queries_used(),
        20,
        "the service's utility is not an attacker query"
    );
    // A label-only oracle cannot be wrapped.
    let label = LabelOnly(PlaintextOracle::new(&model, Truncation::Floor).expect("oracle"));
    assert!(ReverseSigmoidOutput::new(label, Perturbation::F64(rs, 12)).is_err());
}
