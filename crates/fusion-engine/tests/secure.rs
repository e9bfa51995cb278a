//! The secure two-party engine against the plaintext fixed-point interpreter:
//! both parties in one test over `fusion_net::local_pair` (real QUIC + TLS on
//! 127.0.0.1), fixed seeds.
//!
//! For every network: the reconstructed outputs are within the worst-case
//! deviation bound of the reference ([`fusion_engine::bound`]) and the
//! argmax agrees wherever the reference's margin exceeds twice the bound
//! (here: every sample). Plus sessions with several batches and chunks, the
//! IKNP flavour and `l = 64`, the cheat modes, and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use fusion_core::engine::{FusionParams, run_fusion};
use fusion_core::mix::Labeled;
use fusion_core::ring::{FixedPoint, Ring};
use fusion_engine::backends::aby::{Aby, AbyConfig};
use fusion_engine::backends::cheetah::Cheetah;
use fusion_engine::backends::cheetah::config::{CheetahConfig, CheetahParams, OtKind};
use fusion_engine::backends::cryptflow2::{Cryptflow2, Cryptflow2Config};
use fusion_engine::backends::delphi::{Delphi, DelphiConfig};
use fusion_engine::behaviour::{Honest, ServerBehaviour};
use fusion_engine::bound::deviation_bound;
use fusion_engine::cheats::{LowQuality, RandomOutputs, Tamper, Targeted};
use fusion_engine::statsec::StatSecTarget;
use fusion_engine::wire::{ClientHello, ClientMsg, ServerMsg};
use fusion_engine::{
    Backend, ClientConfig, ClientPolicy, SecureClient, SecureError, SecureServer, ServedModel,
    ServerConfig, SessionEnd, SessionSummary,
};
use fusion_net::Phase;
use fusion_net::{NetConfig, local_pair};
use fusion_nn::data::{self, Part};
use fusion_nn::fixed::{FixedProgram, argmax_signed};
use fusion_nn::graph::GraphBuilder;
use fusion_nn::model::{Model, ModelMeta, Preprocess};
use std::sync::Arc;

mod support;
use fusion_nn::tensor::{RingTensor, Tensor};
use fusion_nn::{eval, zoo};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use support::dealer::{Dealer, DealerBackend};

fn rayon_threads() {
    // OT receivers block a rayon worker while waiting for the network; both
    // parties (and concurrently running tests) share this process's pool.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build_global();
}

fn net() -> NetConfig {
    NetConfig::default().with_timeouts(Duration::from_secs(120))
}

/// Which backend a test runs.
#[derive(Clone)]
enum Kind {
    /// Cheetah with this configuration.
    Cheetah(CheetahConfig),
    /// DELPHI with this configuration.
    Delphi(DelphiConfig),
    /// ABY with this configuration.
    Aby(AbyConfig),
    /// CrypTFlow2 (SCI_HE) with this configuration.
    Cryptflow2(Cryptflow2Config),
    /// The trusted-dealer reference backend (tests/support/dealer.rs).
    Dealer,
}

/// Cheetah with small OT refills (keeps tiny sessions fast).
fn cheetah() -> Kind {
    let mut c = CheetahConfig::default();
    c.ot.min_refill = 1 << 13;
    Kind::Cheetah(c)
}

/// DELPHI with small OT refills (keeps tiny sessions fast).
fn delphi() -> Kind {
    let mut c = DelphiConfig::default();
    c.ot.min_refill = 1 << 13;
    Kind::Delphi(c)
}

/// ABY with small OT refills (keeps tiny sessions fast).
fn aby() -> Kind {
    let mut c = AbyConfig::default();
    c.ot.min_refill = 1 << 13;
    Kind::Aby(c)
}

/// CrypTFlow2 with its defaults.
fn cryptflow2() -> Kind {
    Kind::Cryptflow2(Cryptflow2Config::default())
}

/// Every backend the agreement tests run.
fn kinds() -> [Kind; 5] {
    [cheetah(), delphi(), aby(), cryptflow2(), Kind::Dealer]
}

/// The backends with a square protocol (all but cryptflow2, which refuses
/// such models: `cryptflow2_refuses_a_model_with_square_activations`).
fn kinds_with_square() -> Vec<Kind> {
    kinds()
        .into_iter()
        .filter(|k| !matches!(k, Kind::Cryptflow2(_)))
        .collect()
}

/// The server's and the client's backend of `kind` for `served`.
fn backends(kind: &Kind, served: &ServedModel) -> (Box<dyn Backend>, Box<dyn Backend>) {
    match kind {
        Kind::Cheetah(c) => (
            Box::new(Cheetah::new(c.clone())),
            Box::new(Cheetah::new(c.clone())),
        ),
        Kind::Delphi(c) => (
            Box::new(Delphi::new(c.clone())),
            Box::new(Delphi::new(c.clone())),
        ),
        Kind::Aby(c) => (Box::new(Aby::new(c.clone())), Box::new(Aby::new(c.clone()))),
        Kind::Cryptflow2(c) => (
            Box::new(Cryptflow2::new(c.clone())),
            Box::new(Cryptflow2::new(c.clone())),
        ),
        Kind::Dealer => {
            let dealer = Dealer::new(served.program.ring(), 77);
            (
                Box::new(DealerBackend::new(dealer.clone())),
                Box::new(DealerBackend::new(dealer)),
            )
        }
    }
}

fn load(name: &str) -> Model {
    Model::load(&data::data_dir().unwrap().join("models").join(name)).unwrap()
}

struct Run {
    outputs: Vec<Vec<u64>>,
    end: SessionEnd,
    summary: SessionSummary,
}

/// Runs each batch of `batches` (encoded inputs) through one secure session.
async fn secure_run(
    served: ServedModel,
    kind: &Kind,
    behaviour: Arc<dyn ServerBehaviour>,
    sc: ServerConfig,
    cc: ClientConfig,
    batches: Vec<RingTensor>,
) -> Result<Run, SecureError> {
    rayon_threads();
    let (sb, cb) = backends(kind, &served);
    let server = SecureServer::new(served, sc, vec![sb], behaviour)?;
    let (s, c) = local_pair(&net()).await?;
    let mut srng = ChaCha20Rng::seed_from_u64(11);
    let mut crng = ChaCha20Rng::seed_from_u64(12);
    let client = async move {
        let mut client = SecureClient::connect(c, cc, cb.as_ref(), &mut crng).await?;
        let mut outputs = Vec::new();
        for x in batches {
            let n = x.batch();
            outputs.push(client.infer_encoded(x.into_data(), n).await?);
            let stats = client.last_batch().expect("stats");
            assert_eq!(stats.samples, n);
            assert!(stats.bytes_sent > 0 && stats.bytes_received > 0);
            check_step_figures(&client, stats);
        }
        let end = client.finish().await?;
        Ok::<_, SecureError>((outputs, end))
    };
    let (served, client) = tokio::join!(server.serve(s, &mut srng), client);
    if let Err(e) = &served {
        eprintln!("server: {e}");
    }
    let (outputs, end) = client?;
    Ok(Run {
        outputs,
        end,
        summary: served?,
    })
}

/// A batch's per-step figures: one entry per schedule action, named after its
/// program step and kind, whose bytes fit in the batch's and add up to the
/// linear and non-linear phases'.
fn check_step_figures(client: &SecureClient, stats: &fusion_engine::BatchStats) {
    let program = client.program();
    let actions = &client.schedule().actions;
    assert_eq!(stats.steps.len(), actions.len(), "{:?}", stats.steps);
    for a in actions {
        let name = &program.steps[a.step].name;
        let listed = stats
            .steps
            .iter()
            .filter(|s| &s.name == name && s.kind == a.kind.tag())
            .count();
        assert_eq!(listed, 1, "step `{name}` ({})", a.kind.tag());
    }
    let sent: u64 = stats.steps.iter().map(|s| s.bytes_sent).sum();
    let received: u64 = stats.steps.iter().map(|s| s.bytes_received).sum();
    assert!(sent <= stats.bytes_sent && received <= stats.bytes_received);
    // The linear and non-linear phases are entered only inside the driver's
    // steps, so their traffic is exactly that of the steps of their kinds.
    for (phase, is_kind) in [
        (Phase::Linear, (|k: &str| k == "linear") as fn(&str) -> bool),
        (Phase::NonLinear, |k: &str| k != "linear" && k != "local"),
    ] {
        let (s, r) = stats
            .steps
            .iter()
            .filter(|s| is_kind(&s.kind))
            .fold((0, 0), |(a, b), s| (a + s.bytes_sent, b + s.bytes_received));
        let p = stats.phases.iter().find(|p| p.name == phase);
        let want = p.map_or((0, 0), |p| (p.bytes_sent, p.bytes_received));
        assert_eq!((s, r), want, "{phase}: {:?}", stats.steps);
    }
    let seconds: f64 = stats.steps.iter().map(|s| s.seconds).sum();
    assert!(
        seconds <= stats.seconds + 1e-3,
        "{seconds} > {}",
        stats.seconds
    );
}

/// Checks secure outputs against the reference for encoded inputs `x`;
/// returns the largest deviation in units of the output's last bit.
fn check_against_reference(program: &FixedProgram, x: &RingTensor, y: &[u64]) -> u64 {
    let ring = program.ring();
    let all = program.run_all(x).expect("reference");
    let max_abs: Vec<u64> = all
        .iter()
        .map(|t| {
            t.data()
                .iter()
                .map(|&v| ring.to_signed(v).unsigned_abs())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let bound = deviation_bound(program, &max_abs)[program.output()];
    let reference = all.last().expect("output");
    assert_eq!(reference.len(), y.len());
    let mut worst = 0;
    for (&a, &b) in reference.data().iter().zip(y) {
        let dev = (ring.to_signed(a) - ring.to_signed(b)).unsigned_abs();
        worst = worst.max(dev);
        assert!(dev <= bound, "deviation {dev} above the bound {bound}");
    }
    let classes = program.output_shape()[0];
    let ref_arg = argmax_signed(ring, reference);
    let got = Tensor::new(vec![x.batch(), classes], y.to_vec()).unwrap();
    let sec_arg = argmax_signed(ring, &got);
    for (i, row) in reference.data().chunks(classes).enumerate() {
        let mut s: Vec<i64> = row.iter().map(|&v| ring.to_signed(v)).collect();
        s.sort_unstable();
        let margin = (s[classes - 1] - s[classes - 2]).unsigned_abs();
        if margin > 2 * bound {
            assert_eq!(ref_arg[i], sec_arg[i], "sample {i}: argmax differs");
        }
    }
    eprintln!(
        "max deviation {worst} (bound {bound}) units of 2^-{}",
        program.output_scale()
    );
    worst
}

fn encoded(model: &Model, program: &FixedProgram, raw: &Tensor<f32>) -> RingTensor {
    program
        .encode_input(&model.meta.preprocess.apply(raw).unwrap())
        .unwrap()
}

/// One batch `x` through an honest session with the default configurations,
/// checked against the fixed-point engine.
async fn honest_run_checked(served: ServedModel, kind: &Kind, x: &RingTensor) -> Run {
    let program = served.program.clone();
    let run = secure_run(
        served,
        kind,
        Arc::new(Honest),
        ServerConfig::default(),
        ClientConfig::default(),
        vec![x.clone()],
    )
    .await
    .unwrap();
    check_against_reference(&program, x, &run.outputs[0]);
    run
}

async fn check_model(model: &Model, raw: Tensor<f32>, fixed: FixedPoint, kind: &Kind) {
    let served = ServedModel::from_model(model, fixed).unwrap();
    let x = encoded(model, &served.program, &raw);
    let run = honest_run_checked(served, kind, &x).await;
    assert_eq!(run.end.batches, 1);
    assert_eq!(run.summary.samples, raw.batch() as u64);
}

fn test_samples(dataset: &str, n: usize) -> Tensor<f32> {
    data::load(&data::data_dir().unwrap(), dataset, Part::Test)
        .unwrap()
        .head(n)
        .inputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bc_mlp_matches_the_fixed_point_engine_on_held_out_patients() {
    let model = load("bc-mlp");
    for kind in kinds() {
        check_model(
            &model,
            test_samples("breast-cancer", 40),
            eval::default_fixed_point(),
            &kind,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mnist_cnn_matches_the_fixed_point_engine_on_test_images() {
    let model = load("mnist-cnn");
    for kind in kinds() {
        check_model(
            &model,
            test_samples("mnist", 3),
            eval::default_fixed_point(),
            &kind,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zoo_mlp_mnist_matches_the_fixed_point_engine() {
    let model = zoo::build("mlp-mnist", 5).unwrap();
    let x = zoo::synthetic_inputs("mlp-mnist", 6, 3).unwrap();
    for kind in kinds() {
        check_model(&model, x.clone(), eval::default_fixed_point(), &kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn announced_magnitude_bounds_narrow_the_fused_relu_truncations_and_match_the_fixed_point_engine()
 {
    use fusion_engine::schedule::{ActionKind, NonLinearOp, Schedule};
    let model = zoo::build("mlp-mnist", 5).unwrap();
    let raw = zoo::synthetic_inputs("mlp-mnist", 6, 3).unwrap();
    let fixed = eval::default_fixed_point();
    let program = ServedModel::from_model(&model, fixed).unwrap().program;
    // Both fused ReLU-truncations follow a layer whose bound is announced
    // (the logits' is over the contract, so nothing after them is).
    let bits = fusion_engine::server::announced_value_bits(&program, Some(1.0));
    let schedule = Schedule::with_bounds(&program.public(), &bits).unwrap();
    let narrowed: Vec<u32> = schedule
        .actions
        .iter()
        .filter_map(|a| match a.kind {
            ActionKind::NonLinear(NonLinearOp::ReluTruncate { input_bits, .. }) => input_bits,
            _ => None,
        })
        .collect();
    assert_eq!(narrowed.len(), 2, "{bits:?}");
    assert!(narrowed.iter().all(|&k| k < 35), "{narrowed:?}");
    let x = encoded(&model, &program, &raw);
    // The other backends ignore the widths (one of them checks that the
    // schedule with bounds still runs there).
    for kind in [cheetah(), cryptflow2(), Kind::Dealer] {
        let mut bytes = Vec::new();
        for input_bound in [None, Some(1.0)] {
            let mut served = ServedModel::from_model(&model, fixed).unwrap();
            served.input_bound = input_bound;
            let run = honest_run_checked(served, &kind, &x).await;
            let nonlinear = run.summary.report.phase(Phase::NonLinear).expect("phase");
            bytes.push(nonlinear.counters.bytes_total());
        }
        // The cheetah backend computes the narrowed steps in a smaller ring.
        if matches!(kind, Kind::Cheetah(_)) {
            assert!(bytes[1] < bytes[0], "non-linear bytes {bytes:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reply_packing_is_announced_used_and_matches_the_fixed_point_engine() {
    let model = zoo::build("mlp-mnist", 5).unwrap();
    let x = zoo::synthetic_inputs("mlp-mnist", 6, 4).unwrap();
    let mut config = CheetahConfig::minimise_bytes();
    config.ot.min_refill = 1 << 13;
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let (_, announcement) = Cheetah::new(config.clone()).serve(&served.program).unwrap();
    let announced: CheetahParams = serde_json::from_str(&announcement).unwrap();
    assert!(announced.reply_packing > 0);
    let params = announced.he_params(served.program.ring()).unwrap();
    assert_eq!(params.reply_packing_levels(), announced.reply_packing);
    let plans = fusion_engine::backends::cheetah::he::plans(
        &params,
        &announced.plan,
        &served.program.public(),
        4,
    )
    .unwrap();
    assert!(
        plans
            .iter()
            .flatten()
            .flat_map(|p| p.parts())
            .any(|p| p.packing().is_some())
    );
    check_model(
        &model,
        x,
        eval::default_fixed_point(),
        &Kind::Cheetah(config),
    )
    .await;
}

/// A small network with every op class: unfolded batch norm (channel affine),
/// max pool with padding, 2x2 and 3x3 average pools (power-of-two and
/// multiply-then-truncate division), a residual add, a square, global average
/// pool.
fn every_op_model() -> Model {
    let mut g = GraphBuilder::new(vec![2, 8, 8]);
    let x = g.input();
    let c1 = g.conv2d("conv1", x, 4, 3, 1, 1);
    let r1 = g.relu("relu1", c1);
    let bn = g.batch_norm("bn", r1); // after a ReLU: not folded
    let mp = g.max_pool("maxpool", bn, 3, 1, 1); // [4, 8, 8]
    let c2 = g.conv2d("conv2", mp, 4, 3, 1, 1);
    let add = g.add("add", c2, mp);
    let sq = g.square("square", add);
    let ap = g.avg_pool("avgpool", sq, 2, 2, 0); // [4, 4, 4]
    let ap3 = g.avg_pool("avgpool3", ap, 3, 1, 1); // 9-window: multiply + truncate
    let r2 = g.relu("relu2", ap3);
    let gp = g.global_avg_pool("gap", r2); // [4]
    g.dense("fc", gp, 3);
    let graph = g.finish().unwrap();
    let meta = ModelMeta {
        name: "every-op".into(),
        description: String::new(),
        dataset: None,
        classes: 3,
        preprocess: Preprocess::Identity,
        training: None,
        evaluation: None,
    };
    let mut m = Model::init(meta, graph, 21).unwrap();
    // Keep the square's input O(1) and the batch norm non-trivial.
    for (name, t) in m.params.0.iter_mut() {
        let f = if name.starts_with("bn.") { 0.7 } else { 0.5 };
        t.data_mut().iter_mut().for_each(|v| *v *= f);
        if name == "bn.running_var" {
            t.data_mut().iter_mut().for_each(|v| *v = 1.3);
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_op_class_matches_the_fixed_point_engine() {
    let model = every_op_model();
    let program = fusion_nn::fixed::lower(&model, eval::default_fixed_point()).unwrap();
    let tags: Vec<&str> = program.steps.iter().map(|s| s.op.tag()).collect();
    for t in [
        "channel_affine",
        "max_pool",
        "add",
        "square",
        "sum_pool",
        "mul_const",
        "global_sum_pool",
    ] {
        assert!(tags.contains(&t), "{t} missing from {tags:?}");
    }
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let data: Vec<f32> = (0..3 * 128)
        .map(|_| (fusion_nn::util::normal(&mut rng) * 0.8) as f32)
        .collect();
    let x = Tensor::new(vec![3, 2, 8, 8], data).unwrap();
    for kind in kinds_with_square() {
        check_model(&model, x.clone(), eval::default_fixed_point(), &kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn iknp_flavour_and_a_64_bit_ring_match_the_fixed_point_engine() {
    let model = zoo::build("mlp-bc", 7).unwrap();
    let x = zoo::synthetic_inputs("mlp-bc", 8, 4).unwrap();
    let fixed = FixedPoint::new(Ring::new(64).unwrap(), 20).unwrap();
    let Kind::Cheetah(mut c) = cheetah() else {
        unreachable!()
    };
    c.ot_flavour = OtKind::Iknp;
    check_model(&model, x, fixed, &Kind::Cheetah(c)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_session_serves_several_batches_in_chunks() {
    let model = load("bc-mlp");
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let program = served.program.clone();
    let raw = test_samples("breast-cancer", 12);
    let x1 = encoded(&model, &program, &raw.slice_batch(0..7));
    let x2 = encoded(&model, &program, &raw.slice_batch(7..12));
    let sc = ServerConfig {
        chunk: 3,
        ..ServerConfig::default()
    };
    for kind in kinds() {
        let run = secure_run(
            served.clone(),
            &kind,
            Arc::new(Honest),
            sc.clone(),
            ClientConfig::default(),
            vec![x1.clone(), x2.clone()],
        )
        .await
        .unwrap();
        check_against_reference(&program, &x1, &run.outputs[0]);
        check_against_reference(&program, &x2, &run.outputs[1]);
        assert_eq!((run.end.batches, run.end.samples), (2, 12));
    }
    // Cheetah: the server's own meter came back, with traffic in every phase
    // that has some, and a preprocessing phase (the pass's ROT generation: no
    // traffic here, the ROTs of setup's first refill cover these batches).
    let run = secure_run(
        served,
        &cheetah(),
        Arc::new(Honest),
        sc,
        ClientConfig::default(),
        vec![x1],
    )
    .await
    .unwrap();
    assert!(run.end.report.phase(Phase::Preprocessing).is_some());
    for phase in [Phase::Setup, Phase::Linear, Phase::NonLinear, Phase::Output] {
        let p = run
            .end
            .report
            .phase(phase)
            .unwrap_or_else(|| panic!("{phase} missing: {:?}", run.end.report.phases));
        assert!(p.counters.bytes_total() > 0, "{phase}");
    }
}

/// Runs Fusion over the secure engine against a server with `behaviour`.
async fn fusion_against(
    kind: &Kind,
    behaviour: Arc<dyn ServerBehaviour>,
) -> fusion_core::verify::Report {
    rayon_threads();
    let model = load("bc-mlp");
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let (sb, cb) = backends(kind, &served);
    let server = SecureServer::new(served, ServerConfig::default(), vec![sb], behaviour).unwrap();
    let test = data::load(&data::data_dir().unwrap(), "breast-cancer", Part::Test).unwrap();
    let rows: Vec<Vec<f32>> = (0..test.len())
        .map(|i| test.inputs.sample(i).to_vec())
        .collect();
    let queries = rows[100..104].to_vec();
    let public: Vec<Labeled<Vec<f32>>> = rows[..100]
        .iter()
        .zip(&test.labels)
        .map(|(s, &l)| Labeled::new(s.clone(), l))
        .collect();
    let (s, c) = local_pair(&net()).await.unwrap();
    let mut srng = ChaCha20Rng::seed_from_u64(31);
    let mut crng = ChaCha20Rng::seed_from_u64(32);
    let client = async move {
        let mut client = SecureClient::connect(c, ClientConfig::default(), cb.as_ref(), &mut crng)
            .await
            .unwrap();
        let params = FusionParams::new(2, "0.95".parse().unwrap());
        let report = run_fusion(&mut client, &queries, &public, &params, &mut crng)
            .await
            .unwrap();
        client.finish().await.unwrap();
        report
    };
    let (served, report) = tokio::join!(server.serve(s, &mut srng), client);
    served.unwrap();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fusion_accepts_the_honest_server_and_catches_every_cheat_mode() {
    let announced = ServedModel::from_model(&load("bc-mlp"), eval::default_fixed_point()).unwrap();
    let weak = ServedModel::from_model(&load("bc-mlp-weak"), eval::default_fixed_point()).unwrap();
    for kind in kinds() {
        let honest = fusion_against(&kind, Arc::new(Honest)).await;
        assert!(honest.accepted(), "{honest}");
        let cheats: [Arc<dyn ServerBehaviour>; 3] = [
            Arc::new(LowQuality::new(weak.clone(), &announced).unwrap()),
            Arc::new(Tamper::new(30, 0, 2).unwrap()),
            Arc::new(RandomOutputs),
        ];
        for cheat in cheats {
            let name = cheat.name();
            let r = fusion_against(&kind, cheat).await;
            assert!(!r.accepted(), "{name}: {r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampering_forces_the_target_label_at_exactly_k_positions() {
    let model = load("bc-mlp");
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let program = served.program.clone();
    let x = encoded(&model, &program, &test_samples("breast-cancer", 20));
    let reference = argmax_signed(program.ring(), &program.run(&x).unwrap());
    let run = secure_run(
        served,
        &cheetah(),
        Arc::new(Tamper::new(5, 1, 2).unwrap()),
        ServerConfig::default(),
        ClientConfig::default(),
        vec![x.clone()],
    )
    .await
    .unwrap();
    let got = argmax_signed(
        program.ring(),
        &Tensor::new(vec![20, 2], run.outputs[0].clone()).unwrap(),
    );
    let ring = program.ring();
    let reference_y = program.run(&x).unwrap();
    let mut shifted = 0;
    for i in 0..20 {
        let d = ring.to_signed(ring.sub(run.outputs[0][2 * i + 1], reference_y.data()[2 * i + 1]));
        if d > 1 << 30 {
            shifted += 1;
            assert_eq!(got[i], 1);
        } else {
            assert_eq!(got[i], reference[i]);
        }
    }
    assert_eq!(shifted, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn targeted_cheat_relabels_the_source_class_in_a_secure_session() {
    let model = load("mnist-cnn");
    let fixed = eval::default_fixed_point();
    let served = ServedModel::from_model(&model, fixed).unwrap();
    let program = served.program.clone();
    let x = encoded(&model, &program, &test_samples("mnist", 4));
    let honest = argmax_signed(program.ring(), &program.run(&x).unwrap());
    // Relabel the first image's class; the others keep theirs unless they
    // share it.
    let (from, to) = (honest[0], (honest[0] + 1) % 10);
    let cheat = Targeted::new(&model, fixed, from, to).unwrap();
    let run = secure_run(
        served,
        &cheetah(),
        Arc::new(cheat),
        ServerConfig::default(),
        ClientConfig::default(),
        vec![x],
    )
    .await
    .unwrap();
    let got = argmax_signed(
        program.ring(),
        &Tensor::new(vec![4, 10], run.outputs[0].clone()).unwrap(),
    );
    for i in 0..4 {
        let want = if honest[i] == from { to } else { honest[i] };
        assert_eq!(got[i], want, "sample {i}: honest {}", honest[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_refuses_a_model_that_does_not_fit_its_samples() {
    rayon_threads();
    let served = ServedModel::from_model(&load("bc-mlp"), eval::default_fixed_point()).unwrap();
    let (sb, cb) = backends(&cheetah(), &served);
    let server =
        SecureServer::new(served, ServerConfig::default(), vec![sb], Arc::new(Honest)).unwrap();
    let (s, c) = local_pair(&net()).await.unwrap();
    let mut srng = ChaCha20Rng::seed_from_u64(1);
    let mut crng = ChaCha20Rng::seed_from_u64(2);
    let cc = ClientConfig {
        policy: ClientPolicy {
            input_len: Some(784),
            ..ClientPolicy::default()
        },
        ..ClientConfig::default()
    };
    let (served, client) = tokio::join!(
        server.serve(s, &mut srng),
        SecureClient::connect(c, cc, cb.as_ref(), &mut crng)
    );
    let err = client.expect_err("must refuse");
    assert!(matches!(err, SecureError::Mismatch(_)), "{err}");
    assert!(err.to_string().contains("784"), "{err}");
    // The server notices the client leaving and ends the session with an error.
    assert!(served.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_refuses_another_protocol_version_and_survives_a_vanishing_client() {
    rayon_threads();
    let served = ServedModel::from_model(&load("bc-mlp"), eval::default_fixed_point()).unwrap();
    let (sb, _) = backends(&cheetah(), &served);
    let server =
        SecureServer::new(served, ServerConfig::default(), vec![sb], Arc::new(Honest)).unwrap();
    let mut srng = ChaCha20Rng::seed_from_u64(1);
    // Another version: refused with a reason.
    let (s, mut c) = local_pair(&net()).await.unwrap();
    let client = async move {
        let (mut tx, mut rx) = c.channel::<ClientMsg, ServerMsg>().await.unwrap();
        let mut hello = ClientHello::new(16, "cheetah");
        hello.version = 99;
        tx.send(&ClientMsg::Hello(hello)).await.unwrap();
        let reply = rx.recv().await.unwrap();
        c.close();
        reply
    };
    let (served, reply) = tokio::join!(server.serve(s, &mut srng), client);
    assert!(
        matches!(served, Err(SecureError::Mismatch(_))),
        "{served:?}"
    );
    assert!(
        matches!(&reply, ServerMsg::Refused { reason } if reason.contains("version 99")),
        "{reply:?}"
    );
    // A client that vanishes after the hello: the server's session fails, it
    // does not hang.
    let (s, mut c) = local_pair(&net()).await.unwrap();
    let client = async move {
        let (mut tx, mut rx) = c.channel::<ClientMsg, ServerMsg>().await.unwrap();
        tx.send(&ClientMsg::Hello(ClientHello::new(16, "cheetah")))
            .await
            .unwrap();
        let _ = rx.recv().await.unwrap();
        c.close();
    };
    let (served, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(server.serve(s, &mut srng), client)
    })
    .await
    .expect("the server gives up on a vanished client");
    assert!(served.is_err());
}

/// LeNet (max pools) on two test images: too slow for the dev profile.
#[cfg_attr(debug_assertions, ignore = "release only: cargo test --release")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lenet_matches_the_fixed_point_engine_on_two_test_images() {
    let model = load("lenet");
    check_model(
        &model,
        test_samples("mnist", 2),
        eval::default_fixed_point(),
        &cheetah(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zoo_timit_dnn_squares_match_the_fixed_point_engine() {
    // Seeds whose values stay well inside Z_2^37 (three square activations can
    // overflow it for other seeds; the bench then refuses l = 37).
    let model = zoo::build("timit-dnn", 5).unwrap();
    let raw = zoo::synthetic_inputs("timit-dnn", 6, 2).unwrap();
    let fixed = eval::default_fixed_point();
    let program = fusion_nn::fixed::lower(&model, fixed).unwrap();
    let (_, trace) = program
        .run_traced(&encoded(&model, &program, &raw))
        .unwrap();
    assert!(trace.iter().all(|s| s.bits_used + 2 < 37), "{trace:?}");
    for kind in kinds_with_square() {
        check_model(&model, raw.clone(), fixed, &kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_refuses_a_backend_it_does_not_offer_and_names_its_own() {
    rayon_threads();
    let served = ServedModel::from_model(&load("bc-mlp"), eval::default_fixed_point()).unwrap();
    let (sb, _) = backends(&cheetah(), &served);
    let (_, cb) = backends(&Kind::Dealer, &served);
    let server =
        SecureServer::new(served, ServerConfig::default(), vec![sb], Arc::new(Honest)).unwrap();
    let (s, c) = local_pair(&net()).await.unwrap();
    let mut srng = ChaCha20Rng::seed_from_u64(1);
    let mut crng = ChaCha20Rng::seed_from_u64(2);
    let (served, client) = tokio::join!(
        server.serve(s, &mut srng),
        SecureClient::connect(c, ClientConfig::default(), cb.as_ref(), &mut crng)
    );
    let err = client.expect_err("must refuse");
    assert!(
        matches!(&err, SecureError::BackendUnavailable { requested, offered }
            if requested == "dealer" && offered == "cheetah"),
        "{err}"
    );
    assert!(err.is_mismatch());
    assert!(matches!(
        served,
        Err(SecureError::BackendUnavailable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_refuses_a_sample_outside_the_announced_input_box() {
    rayon_threads();
    let model = load("bc-mlp");
    let mut served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    served.input_bound = Some(12.0);
    let (sb, cb) = backends(&cheetah(), &served);
    let server =
        SecureServer::new(served, ServerConfig::default(), vec![sb], Arc::new(Honest)).unwrap();
    // bc-mlp's range is proven for this box.
    let range = server.range().expect("a box is announced").unwrap();
    assert!(range.proven(), "{}", range.summary());
    let (s, c) = local_pair(&net()).await.unwrap();
    let mut srng = ChaCha20Rng::seed_from_u64(1);
    let mut crng = ChaCha20Rng::seed_from_u64(2);
    let raw = test_samples("breast-cancer", 2);
    let width = raw.shape()[1];
    let rows: Vec<Vec<f32>> = raw.data().chunks(width).map(<[f32]>::to_vec).collect();
    let client = async move {
        let client =
            SecureClient::connect(c, ClientConfig::default(), cb.as_ref(), &mut crng).await?;
        assert_eq!(client.server_hello().model.input_bound, Some(12.0));
        // Held-out patients lie inside the box.
        assert!(client.encode(&rows).is_ok());
        // One feature a million times too large does not.
        let mut outlier = rows.clone();
        outlier[1][3] *= 1.0e6;
        let err = client.encode(&outlier).expect_err("outside the box");
        client.finish().await?;
        Ok::<_, SecureError>(err)
    };
    let (served, client) = tokio::join!(server.serve(s, &mut srng), client);
    let err = client.unwrap();
    assert!(matches!(err, SecureError::Config(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("sample 1 value 3"), "{text}");
    assert!(text.contains("|x| <= 12"), "{text}");
    served.unwrap();
}

/// Flooded coefficients one pass reveals per sample: one per output value of
/// every linear step.
fn revealed_per_sample(program: &FixedProgram) -> u64 {
    program
        .public()
        .steps
        .iter()
        .filter(|s| s.op.class() == fusion_nn::fixed::OpClass::Linear)
        .map(|s| s.shape.iter().product::<usize>() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_ends_with_a_typed_error_at_its_cap_on_revealed_coefficients() {
    rayon_threads();
    let model = load("bc-mlp");
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let program = served.program.clone();
    let raw = test_samples("breast-cancer", 3);
    let x1 = encoded(&model, &program, &raw.slice_batch(0..2));
    let x2 = encoded(&model, &program, &raw.slice_batch(2..3));
    // The cap admits exactly the first batch (two samples).
    let cap = 2 * revealed_per_sample(&program);
    let target = StatSecTarget::PerCoefficient {
        bits: 40,
        max_revealed: cap,
    };
    let kinds = [
        match cheetah() {
            Kind::Cheetah(c) => Kind::Cheetah(CheetahConfig {
                stat_sec: target,
                ..c
            }),
            _ => unreachable!(),
        },
        match delphi() {
            Kind::Delphi(c) => Kind::Delphi(DelphiConfig {
                stat_sec: target,
                ..c
            }),
            _ => unreachable!(),
        },
    ];
    for kind in kinds {
        let (sb, cb) = backends(&kind, &served);
        let server = SecureServer::new(
            served.clone(),
            ServerConfig::default(),
            vec![sb],
            Arc::new(Honest),
        )
        .unwrap();
        let (s, c) = local_pair(&net()).await.unwrap();
        let mut srng = ChaCha20Rng::seed_from_u64(21);
        let mut crng = ChaCha20Rng::seed_from_u64(22);
        let (x1, x2) = (x1.clone(), x2.clone());
        let client = async move {
            let mut client =
                SecureClient::connect(c, ClientConfig::default(), cb.as_ref(), &mut crng)
                    .await
                    .unwrap();
            let announced = client.server_hello().stat_sec.expect("announced");
            assert_eq!(announced.max_revealed, cap);
            assert_eq!(announced.per_coefficient_bits, 40);
            let first = client.infer_encoded(x1.clone().into_data(), 2).await;
            let second = client.infer_encoded(x2.into_data(), 1).await;
            (x1, first, second)
        };
        let (served_result, (x1, first, second)) = tokio::join!(server.serve(s, &mut srng), client);
        let y = first.expect("the first batch fits the cap");
        check_against_reference(&program, &x1, &y);
        match second {
            Err(SecureError::RevealCapReached {
                cap: c,
                revealed,
                needed,
            }) => {
                assert_eq!((c, revealed), (cap, cap));
                assert!(needed > 0);
            }
            other => panic!("client: {other:?}"),
        }
        match served_result {
            Err(e @ SecureError::RevealCapReached { .. }) => {
                assert!(e.to_string().contains(&format!("cap of {cap}")), "{e}")
            }
            other => panic!("server: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_session_forty_bits_run_on_n8192_and_a_client_demanding_more_refuses() {
    rayon_threads();
    let model = load("bc-mlp");
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let program = served.program.clone();
    let x = encoded(&model, &program, &test_samples("breast-cancer", 2));
    let mut config = match cheetah() {
        Kind::Cheetah(c) => c,
        _ => unreachable!(),
    };
    config.stat_sec = StatSecTarget::default_per_session();
    let kind = Kind::Cheetah(config);
    let (sb, _) = backends(&kind, &served);
    let server = SecureServer::new(
        served.clone(),
        ServerConfig::default(),
        vec![sb],
        Arc::new(Honest),
    )
    .unwrap();
    let described = &server.backend_descriptions()[0].1;
    assert!(described.contains("HE n8192"), "{described}");
    assert!(
        described.contains("70 bits per revealed HE coefficient"),
        "{described}"
    );
    // A client that requires 40 bits per session runs; outputs are exact.
    let policy = |bits| ClientConfig {
        policy: ClientPolicy {
            min_stat_sec_bits: Some(bits),
            ..ClientPolicy::default()
        },
        ..ClientConfig::default()
    };
    let run = secure_run(
        served.clone(),
        &kind,
        Arc::new(Honest),
        ServerConfig::default(),
        policy(40),
        vec![x],
    )
    .await
    .unwrap();
    assert_eq!(run.end.samples, 2);
    // One that requires 41 refuses at the hello, before any key or sample.
    let (_, cb) = backends(&kind, &served);
    let (s, c) = local_pair(&net()).await.unwrap();
    let mut srng = ChaCha20Rng::seed_from_u64(31);
    let mut crng = ChaCha20Rng::seed_from_u64(32);
    let (served_result, client) = tokio::join!(
        server.serve(s, &mut srng),
        SecureClient::connect(c, policy(41), cb.as_ref(), &mut crng)
    );
    match client {
        Err(SecureError::Mismatch(m)) => {
            assert!(
                m.contains("40.0 bits per session") && m.contains("41"),
                "{m}"
            )
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(served_result.is_err());
}

#[test]
fn cryptflow2_refuses_a_model_with_square_activations() {
    let model = zoo::build("timit-dnn", 5).unwrap();
    let program = fusion_nn::fixed::lower(&model, eval::default_fixed_point()).unwrap();
    let err = Cryptflow2::new(Cryptflow2Config::default())
        .serve(&program)
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("no square protocol"), "{err}");
}
