//! Tests of the lowering, the interpreter and every row of the error-bound table.

use fusion_core::ring::{FixedPoint, Ring};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use super::*;
use crate::float;
use crate::graph::{Graph, GraphBuilder, ParamKind, param_key};
use crate::model::{Model, ModelMeta, Preprocess};
use crate::util::normal;

fn fp(l: u32, f: u32) -> FixedPoint {
    FixedPoint::new(Ring::new(l).expect("ring"), f).expect("fixed point")
}

/// A model around `graph`; a flatten is appended by the callers so the output is 1-D.
fn model(graph: Graph, seed: u64) -> Model {
    let classes = graph.output_shape().expect("shape")[0];
    let meta = ModelMeta {
        name: "t".into(),
        description: String::new(),
        dataset: None,
        classes,
        preprocess: Preprocess::Identity,
        training: None,
        evaluation: None,
    };
    let mut m = Model::init(meta, graph, seed).expect("init");
    // Non-zero biases so they are exercised.
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 99);
    for (name, t) in m.params.0.iter_mut() {
        if name.ends_with(".bias") {
            t.data_mut()
                .iter_mut()
                .for_each(|v| *v = (0.3 * normal(&mut rng)) as f32);
        }
    }
    m
}

fn input(shape: &[usize], n: usize, seed: u64, scale: f64) -> Tensor<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let len: usize = shape.iter().product::<usize>() * n;
    let mut s = vec![n];
    s.extend_from_slice(shape);
    Tensor::new(
        s,
        (0..len)
            .map(|_| (scale * normal(&mut rng)) as f32)
            .collect(),
    )
    .expect("input")
}

/// The fixed-point program's output for `x`, decoded, and the encoded input decoded.
fn run(m: &Model, fixed: FixedPoint, x: &Tensor<f32>) -> (FixedProgram, Vec<f64>, Vec<f64>) {
    let p = lower(m, fixed).expect("lower");
    let xe = p.encode_input(x).expect("encode");
    let y = p.run(&xe).expect("run");
    let s = p.output_scale();
    let dec = y.data().iter().map(|&v| fixed.decode_at(v, s)).collect();
    let xd = xe.data().iter().map(|&v| fixed.decode(v)).collect();
    (p, dec, xd)
}

fn u(fixed: FixedPoint) -> f64 {
    (2f64).powi(-(fixed.frac_bits as i32))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn encoding_error_within_bound(x in -1000.0f64..1000.0, l in prop::sample::select(vec![37u32, 41, 64]), f in 8u32..16) {
        let fixed = fp(l, f);
        prop_assert!((fixed.decode(fixed.encode(x)) - x).abs() <= u(fixed) / 2.0);
    }

    /// Dense: exact at 2f with the bound of the table; then truncation adds (-u, 0].
    #[test]
    fn dense_error_within_bound(seed in any::<u64>(), l in prop::sample::select(vec![37u32, 64]), truncate in any::<bool>()) {
        let fixed = fp(l, 12);
        let mut g = GraphBuilder::new(vec![20]);
        let x0 = g.input();
        let y = g.dense("fc", x0, 7);
        if truncate { g.flatten("out", y); }
        let m = model(g.finish().expect("graph"), seed);
        let x = input(&[20], 3, seed ^ 1, 2.0);
        let (p, got, xd) = run(&m, fixed, &x);
        prop_assert_eq!(p.output_scale(), if truncate { 12 } else { 24 });
        let w = m.param(1, ParamKind::Weight).expect("w").data();
        let b = m.param(1, ParamKind::Bias).expect("b").data();
        let uu = u(fixed);
        for i in 0..3 {
            for o in 0..7 {
                let xs = x.sample(i);
                let exact: f64 = (0..20).map(|j| w[o * 20 + j] as f64 * xs[j] as f64).sum::<f64>() + b[o] as f64;
                let wsum: f64 = (0..20).map(|j| (w[o * 20 + j] as f64).abs()).sum();
                let xsum: f64 = (0..20).map(|j| xd[i * 20 + j].abs()).sum();
                let bound = wsum * uu / 2.0 + uu / 2.0 * xsum + uu * uu / 2.0;
                let err = got[i * 7 + o] - exact;
                if truncate {
                    prop_assert!(err <= bound && err > -bound - uu, "err {} bound {}", err, bound);
                } else {
                    prop_assert!(err.abs() <= bound, "err {} bound {}", err, bound);
                }
            }
        }
    }

    /// Conv2d (stride and padding), truncated, against direct loops in f64.
    #[test]
    fn conv_error_within_bound(seed in any::<u64>(), stride in 1usize..3, pad in 0usize..2) {
        let fixed = fp(37, 12);
        let mut g = GraphBuilder::new(vec![2, 6, 6]);
        let x0 = g.input();
        let y = g.conv2d("conv", x0, 3, 3, stride, pad);
        g.flatten("out", y);
        let m = model(g.finish().expect("graph"), seed);
        let x = input(&[2, 6, 6], 2, seed ^ 2, 1.0);
        let (_, got, xd) = run(&m, fixed, &x);
        let w = m.param(1, ParamKind::Weight).expect("w").data();
        let b = m.param(1, ParamKind::Bias).expect("b").data();
        let ho = (6 + 2 * pad - 3) / stride + 1;
        let uu = u(fixed);
        for n in 0..2 {
            for o in 0..3 {
                for oh in 0..ho {
                    for ow in 0..ho {
                        let (mut exact, mut wsum, mut xsum) = (b[o] as f64, 0.0, 0.0);
                        for c in 0..2 {
                            for ki in 0..3 {
                                for kj in 0..3 {
                                    let ih = (oh * stride + ki) as isize - pad as isize;
                                    let iw = (ow * stride + kj) as isize - pad as isize;
                                    if ih < 0 || iw < 0 || ih >= 6 || iw >= 6 { continue; }
                                    let xi = ((n * 2 + c) * 6 + ih as usize) * 6 + iw as usize;
                                    let wv = w[((o * 2 + c) * 3 + ki) * 3 + kj] as f64;
                                    exact += wv * x.data()[xi] as f64;
                                    wsum += wv.abs();
                                    xsum += xd[xi].abs();
                                }
                            }
                        }
                        let bound = wsum * uu / 2.0 + uu / 2.0 * xsum + uu * uu / 2.0;
                        let err = got[((n * 3 + o) * ho + oh) * ho + ow] - exact;
                        prop_assert!(err <= bound && err > -bound - uu, "err {} bound {}", err, bound);
                    }
                }
            }
        }
    }

    /// Average pools: power-of-two windows (truncate log2 k^2), others (MulConst + truncate f),
    /// and the global average pool.
    #[test]
    fn average_pool_error_within_bound(seed in any::<u64>(), k in prop::sample::select(vec![2usize, 3, 4]), global in any::<bool>()) {
        let fixed = fp(37, 12);
        let (h, stride) = (if global { 7 } else { 6 }, if k == 4 { 2 } else { k });
        let mut g = GraphBuilder::new(vec![2, h, h]);
        let x0 = g.input();
        let y = if global { g.global_avg_pool("pool", x0) } else { g.avg_pool("pool", x0, k, stride, 0) };
        g.flatten("out", y);
        let m = model(g.finish().expect("graph"), seed);
        let x = input(&[2, h, h], 2, seed ^ 3, 3.0);
        let (p, got, _) = run(&m, fixed, &x);
        let count = if global { h * h } else { k * k };
        let uu = u(fixed);
        let rho = if count.is_power_of_two() {
            0.0
        } else {
            let c = ((4096.0 / count as f64).round()) as u64;
            let has = p.steps.iter().any(|s| s.op == FixedOp::MulConst { factor: c });
            prop_assert!(has, "MulConst {} missing", c);
            c as f64 * count as f64 / 4096.0 - 1.0
        };
        prop_assert!(rho.abs() <= count as f64 / 8192.0);
        let want = float::forward(&m, &x).expect("float");
        for (i, (&gv, &wv)) in got.iter().zip(want.data()).enumerate() {
            let bound = (1.0 + rho.abs()) * uu / 2.0 + rho.abs() * (wv as f64).abs() + uu + 1e-5;
            prop_assert!((gv - wv as f64).abs() <= bound, "elem {}: {} vs {} bound {}", i, gv, wv, bound);
        }
    }

    /// Square: |x̂² - x²| <= 2|x| e + e², then truncation.
    #[test]
    fn square_error_within_bound(seed in any::<u64>()) {
        let fixed = fp(37, 12);
        let mut g = GraphBuilder::new(vec![50]);
        let x0 = g.input();
        let y = g.square("sq", x0);
        g.flatten("out", y);
        let m = model(g.finish().expect("graph"), seed);
        let x = input(&[50], 2, seed ^ 4, 5.0);
        let (_, got, _) = run(&m, fixed, &x);
        let uu = u(fixed);
        for (i, &gv) in got.iter().enumerate() {
            let xv = x.data()[i] as f64;
            let e = uu / 2.0;
            let bound = 2.0 * xv.abs() * e + e * e;
            let err = gv - xv * xv;
            prop_assert!(err <= bound && err > -bound - uu, "err {} bound {}", err, bound);
        }
    }

    /// ReLU, max pool (with padding) and residual add do not amplify errors.
    #[test]
    fn relu_max_pool_add_error_within_bound(seed in any::<u64>()) {
        let fixed = fp(37, 12);
        let mut g = GraphBuilder::new(vec![2, 5, 5]);
        let x0 = g.input();
        let r = g.relu("relu", x0);
        let a = g.add("add", r, x0);
        let mp = g.max_pool("mp", a, 3, 2, 1);
        g.flatten("out", mp);
        let m = model(g.finish().expect("graph"), seed);
        let x = input(&[2, 5, 5], 3, seed ^ 5, 4.0);
        let (_, got, _) = run(&m, fixed, &x);
        let want = float::forward(&m, &x).expect("float");
        for (&gv, &wv) in got.iter().zip(want.data()) {
            // relu(x)+x: error <= u/2 + u/2; max keeps it.
            prop_assert!((gv - wv as f64).abs() <= u(fixed) + 1e-6);
        }
    }

    /// The reference truncation is the floor of the signed value, for l = 37 and 64.
    #[test]
    fn truncate_is_exact_floor(v in any::<i64>(), bits in 1u32..30, l in prop::sample::select(vec![37u32, 64])) {
        let ring = Ring::new(l).expect("ring");
        let v = ring.to_signed(ring.from_signed(v));
        let step = Step { name: "t".into(), op: FixedOp::Truncate { bits }, inputs: vec![0], shape: vec![1], scale: 0 };
        let x = RingTensor::new(vec![1, 1], vec![ring.from_signed(v)]).expect("t");
        let y = step.apply(ring, &[&x]).expect("apply");
        prop_assert_eq!(ring.to_signed(y.data()[0]), v.div_euclid(1i64 << bits));
    }
}

#[test]
fn batch_norm_after_conv_is_folded_and_elsewhere_is_a_channel_affine() {
    let mut g = GraphBuilder::new(vec![3, 8, 8]);
    let x = g.input();
    let c = g.conv2d("conv", x, 4, 3, 1, 1);
    let b = g.batch_norm("bn", c);
    let r = g.relu("relu", b);
    let b2 = g.batch_norm("bn2", r);
    let out = g.flatten("out", b2);
    let _ = out;
    let mut m = model(g.finish().expect("graph"), 5);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for bn in ["bn", "bn2"] {
        for (kind, lo, hi) in [
            (ParamKind::Gamma, 0.5, 1.5),
            (ParamKind::Beta, -0.5, 0.5),
            (ParamKind::RunningMean, -0.5, 0.5),
            (ParamKind::RunningVar, 0.3, 2.0),
        ] {
            let v: Vec<f32> = (0..4)
                .map(|_| (lo + (hi - lo) * crate::util::uniform01(&mut rng)) as f32)
                .collect();
            m.params
                .insert(param_key(bn, kind), Tensor::new(vec![4], v).expect("t"));
        }
    }
    let fixed = fp(37, 12);
    let x = input(&[3, 8, 8], 2, 7, 1.0);
    let (p, got, _) = run(&m, fixed, &x);
    let tags: Vec<&str> = p.steps.iter().map(|s| s.op.tag()).collect();
    assert_eq!(
        tags,
        [
            "conv2d",
            "truncate",
            "relu",
            "channel_affine",
            "truncate",
            "reshape"
        ]
    );
    let want = float::forward(&m, &x).expect("float");
    let max_err = got
        .iter()
        .zip(want.data())
        .map(|(a, b)| (a - *b as f64).abs())
        .fold(0.0, f64::max);
    assert!(max_err < 0.01, "max error {max_err}");
}

#[test]
fn conv_with_two_consumers_keeps_its_batch_norm_separate() {
    let mut g = GraphBuilder::new(vec![2, 4, 4]);
    let x = g.input();
    let c = g.conv2d("conv", x, 2, 3, 1, 1);
    let b = g.batch_norm("bn", c);
    let s = g.add("add", b, c);
    g.flatten("out", s);
    let m = model(g.finish().expect("graph"), 1);
    let p = lower(&m, fp(37, 12)).expect("lower");
    assert!(p.steps.iter().any(|s| s.op.tag() == "channel_affine"));
}

#[test]
fn program_structure_of_the_mnist_cnn() {
    let m = crate::zoo::build("cnn-mnist", 1).expect("zoo");
    let p = lower(&m, fp(37, 12)).expect("lower");
    let tags: Vec<&str> = p.steps.iter().map(|s| s.op.tag()).collect();
    assert_eq!(
        tags,
        [
            "conv2d", "truncate", "relu", "sum_pool",
            "truncate", // pool: truncate by log2(4) = 2
            "conv2d", "truncate", "relu", "sum_pool", "truncate", "reshape", "dense", "truncate",
            "relu", "dense", // output left at scale 2f
        ]
    );
    assert_eq!(p.steps[4].op, FixedOp::Truncate { bits: 2 });
    assert_eq!(p.output_scale(), 24);
    assert_eq!(p.class_counts(), (4, 3, 8));
    assert_eq!(p.steps[3].shape, vec![16, 12, 12]);
    p.validate().expect("valid");

    // Round trip through JSON, and the public view has the structure only.
    let back: FixedProgram =
        serde_json::from_str(&serde_json::to_string(&p).expect("ser")).expect("de");
    assert_eq!(back, p);
    let public = p.public();
    public
        .validate()
        .expect("public view is structurally valid");
    assert!(matches!(
        &public.steps[0].op,
        crate::fixed::PublicOp::Conv2d {
            out_channels: 16,
            ..
        }
    ));

    // A broken program is rejected.
    let mut bad = p.clone();
    bad.steps[2].inputs = vec![7];
    assert!(bad.validate().is_err());
    let mut bad = p.clone();
    bad.steps[11].shape = vec![99];
    assert!(bad.validate().is_err());
}

#[test]
fn run_all_exposes_every_value_and_trace_reports_headroom() {
    let m = crate::zoo::build("mlp-bc", 3).expect("zoo");
    let p = lower(&m, fp(37, 12)).expect("lower");
    let x = p
        .encode_input(&crate::zoo::synthetic_inputs("mlp-bc", 4, 5).expect("x"))
        .expect("enc");
    let all = p.run_all(&x).expect("all");
    assert_eq!(all.len(), p.steps.len() + 1);
    assert_eq!(all.last(), Some(&p.run(&x).expect("run")));
    for (i, s) in p.steps.iter().enumerate() {
        let ins: Vec<&RingTensor> = s.inputs.iter().map(|&v| &all[v]).collect();
        assert_eq!(s.apply(p.ring(), &ins).expect("apply"), all[i + 1]);
    }
    let (_, stats) = p.run_traced(&x).expect("trace");
    assert_eq!(stats.len(), p.steps.len());
    assert!(stats.iter().all(|s| s.bits_used < 37), "{stats:?}");
}

#[test]
fn zoo_nets_agree_with_float_at_l37_and_l64() {
    for (name, l, f, tol) in [
        ("mlp-bc", 37, 12, 0.01),
        ("mlp-bc", 64, 20, 1e-4),
        ("mlp-mnist", 37, 12, 0.02),
        ("cnn-mnist", 37, 12, 0.02),
        ("cnn-mnist", 64, 16, 0.002),
        ("cnn-cifar10", 37, 12, 0.02),
        ("lenet", 37, 12, 0.03),
    ] {
        let m = crate::zoo::build(name, 11).expect(name);
        let x = crate::zoo::synthetic_inputs(name, 12, 4).expect(name);
        let want = float::forward(&m, &x).expect("float");
        let got = lower(&m, fp(l, f))
            .expect("lower")
            .run_float(&x)
            .expect("run");
        let max_err = got
            .data()
            .iter()
            .zip(want.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            max_err < tol,
            "{name} l={l} f={f}: max logit error {max_err}"
        );
        assert_eq!(got.argmax_rows(), want.argmax_rows(), "{name} l={l}");
    }
}

#[test]
fn timit_dnn_squares_stay_in_range() {
    // 1845 -> 3 x [2000, x^2] -> 183: the squares' products at scale 2f must fit the
    // ring, and each square doubles the relative error, so f matters (weights of
    // std 0.013 are quantised to 2^-12 at f = 12).
    let m = crate::zoo::build("timit-dnn", 5).expect("timit");
    let x = crate::zoo::synthetic_inputs("timit-dnn", 6, 2).expect("x");
    let want = float::forward(&m, &x).expect("float");
    let rms = (want.data().iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
    for (l, f, rel) in [(37, 12, 0.1), (64, 20, 0.002)] {
        let p = lower(&m, fp(l, f)).expect("lower");
        let (y, stats) = p
            .run_traced(&p.encode_input(&x).expect("enc"))
            .expect("run");
        assert!(stats.iter().all(|s| s.bits_used < l), "{stats:?}");
        let got = p.decode_output(&y);
        let max_err = got
            .data()
            .iter()
            .zip(want.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        eprintln!(
            "timit-dnn l={l} f={f}: logit rms {rms}, max error {max_err}, bits {:?}",
            stats.iter().map(|s| s.bits_used).max()
        );
        assert!(
            max_err < rel * rms,
            "l={l} f={f}: max error {max_err}, rms {rms}"
        );
    }
}

#[test]
fn lowering_rejects_weights_that_do_not_fit() {
    let mut m = crate::zoo::build("mlp-bc", 1).expect("zoo");
    // Bias at scale 2f = 24 in a 37-bit ring: |b| must stay below 2^12.
    m.params.0.get_mut("fc1.bias").expect("b").data_mut()[0] = 5000.0;
    assert!(matches!(lower(&m, fp(37, 12)), Err(NnError::FixedPoint(_))));
    assert!(lower(&m, fp(64, 12)).is_ok());
}

/// ResNet50 with random calibrated weights: fixed point vs float on two inputs.
/// Heavy (2 x 4 GMACs in the ring): runs in release test builds only.
#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with cargo test --release")]
fn resnet50_fixed_point_agrees_with_float() {
    let m = crate::zoo::build("resnet50", 1).expect("resnet50");
    let x = crate::zoo::synthetic_inputs("resnet50", 2, 2).expect("x");
    let want = float::forward(&m, &x).expect("float");
    let p = lower(&m, fp(37, 12)).expect("lower");
    let (y, stats) = p
        .run_traced(&p.encode_input(&x).expect("enc"))
        .expect("run");
    let got = p.decode_output(&y);
    let max_bits = stats.iter().map(|s| s.bits_used).max().unwrap_or(0);
    let rms = (want.data().iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
    let max_err = got
        .data()
        .iter()
        .zip(want.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!(
        "resnet50: logit rms {rms}, max |fixed - float| {max_err}, max bits used {max_bits} of 37"
    );
    assert!(max_bits <= 36);
    assert!(
        max_err < 0.05 * rms.max(1.0),
        "max error {max_err} rms {rms}"
    );
    assert_eq!(got.argmax_rows(), want.argmax_rows());
}

#[test]
fn a_relu_before_a_max_pool_is_lowered_after_it_with_the_same_outputs() {
    let mut g = GraphBuilder::new(vec![2, 6, 6]);
    let x = g.input();
    let c = g.conv2d("conv", x, 3, 3, 1, 1);
    let r = g.relu("relu", c);
    let mp = g.max_pool("pool", r, 3, 2, 1);
    let f = g.flatten("f", mp);
    g.dense("fc", f, 4);
    let m = model(g.finish().expect("graph"), 11);
    let p = lower(&m, fp(37, 12)).expect("lower");
    let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["conv", "conv.trunc", "pool", "relu", "f", "fc"]);
    assert!(matches!(p.steps[2].op, FixedOp::MaxPool { .. }));
    assert_eq!(p.steps[3].op, FixedOp::Relu);
    assert_eq!(p.steps[3].shape, p.steps[2].shape);
    // The graph's order (ReLU, then pool), built by hand: the same outputs, exactly.
    let mut graph_order = p.clone();
    let (pool, relu) = (p.steps[2].clone(), p.steps[3].clone());
    graph_order.steps[2] = Step {
        shape: p.steps[1].shape.clone(),
        inputs: pool.inputs.clone(),
        ..relu
    };
    graph_order.steps[3] = Step {
        inputs: vec![3],
        ..pool
    };
    graph_order.validate().expect("valid");
    let xe = p.encode_input(&input(&[2, 6, 6], 5, 12, 2.0)).expect("enc");
    assert_eq!(p.run(&xe).expect("run"), graph_order.run(&xe).expect("run"));
    // A ReLU with another reader stays where it is.
    let mut g = GraphBuilder::new(vec![1, 4, 4]);
    let x = g.input();
    let r = g.relu("relu", x);
    let mp = g.max_pool("pool", r, 2, 2, 0);
    let a = g.avg_pool("avg", r, 2, 2, 0);
    let s = g.add("add", mp, a);
    g.flatten("f", s);
    let p = lower(&model(g.finish().expect("graph"), 3), fp(37, 12)).expect("lower");
    assert_eq!(p.steps[0].op, FixedOp::Relu);
}

#[test]
fn a_strided_one_by_one_conv_is_lowered_as_subsampling_with_the_same_outputs() {
    for (h, w, stride) in [(6, 6, 2), (7, 5, 2), (7, 8, 3)] {
        let mut g = GraphBuilder::new(vec![3, h, w]);
        let x = g.input();
        let c = g.conv2d("down", x, 4, 1, stride, 0);
        let f = g.flatten("f", c);
        g.dense("fc", f, 2);
        let m = model(g.finish().expect("graph"), 21);
        let p = lower(&m, fp(37, 12)).expect("lower");
        let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["down.subsample", "down", "down.trunc", "f", "fc"]);
        let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
        assert_eq!(
            p.steps[0].op,
            FixedOp::SumPool {
                kernel: 1,
                stride,
                padding: 0
            }
        );
        assert_eq!(p.steps[0].shape, [3, oh, ow]);
        let FixedOp::Conv2d(conv) = &p.steps[1].op else {
            panic!("step 1 is {:?}", p.steps[1].op);
        };
        assert_eq!((conv.in_height, conv.in_width, conv.stride), (oh, ow, 1));
        assert_eq!(p.steps[1].shape, [4, oh, ow]);
        // The strided convolution on the whole input, built by hand: the same
        // outputs, exactly.
        let mut direct = p.clone();
        direct.steps.remove(0);
        let FixedOp::Conv2d(d) = &mut direct.steps[0].op else {
            unreachable!()
        };
        (d.in_height, d.in_width, d.stride) = (h, w, stride);
        direct.steps[0].inputs = vec![0];
        for s in direct.steps.iter_mut().skip(1) {
            s.inputs.iter_mut().for_each(|v| *v -= 1);
        }
        direct.validate().expect("valid");
        let xe = p.encode_input(&input(&[3, h, w], 4, 22, 2.0)).expect("enc");
        assert_eq!(p.run(&xe).expect("run"), direct.run(&xe).expect("run"));
    }
    // Padded or larger kernels keep their stride.
    let mut g = GraphBuilder::new(vec![2, 6, 6]);
    let x = g.input();
    let c = g.conv2d("c", x, 2, 3, 2, 1);
    g.flatten("f", c);
    let p = lower(&model(g.finish().expect("graph"), 3), fp(37, 12)).expect("lower");
    assert!(matches!(&p.steps[0].op, FixedOp::Conv2d(c) if c.stride == 2));
}
