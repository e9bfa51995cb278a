//! Output modes end to end: label mode (secure argmax on the shares) for every
//! backend, against the plaintext fixed-point engine, both parties in one
//! test with fixed seeds over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use fusion_core::engine::{FusionParams, run_fusion};
use fusion_core::mix::Labeled;
use fusion_engine::backend::SetupLink;
use fusion_engine::backends::aby::{Aby, AbyConfig};
use fusion_engine::backends::cheetah::Cheetah;
use fusion_engine::backends::cheetah::config::CheetahConfig;
use fusion_engine::backends::cryptflow2::{Cryptflow2, Cryptflow2Config};
use fusion_engine::backends::delphi::{Delphi, DelphiConfig};
use fusion_engine::behaviour::{Honest, ServerBehaviour};
use fusion_engine::bound::deviation_bound;
use fusion_engine::cheats::{RandomOutputs, Tamper};
use fusion_engine::output_mode::{ArgmaxStage, ShareStage};
use fusion_engine::{
    Backend, ClientConfig, OutputMode, SecureClient, SecureError, SecureServer, ServedModel,
    ServerConfig,
};
use fusion_net::{NetConfig, Phase, local_pair};
use fusion_nn::data::{self, Part};
use fusion_nn::fixed::{FixedProgram, argmax_signed};
use fusion_nn::model::Model;
use fusion_nn::reverse_sigmoid::ReverseSigmoid;
use fusion_nn::tensor::{RingTensor, Tensor};
use fusion_nn::{eval, zoo};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

mod support;
use support::dealer::{Dealer, DealerBackend};

fn rayon_threads() {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build_global();
}

fn net() -> NetConfig {
    NetConfig::default().with_timeouts(Duration::from_secs(120))
}

#[derive(Clone)]
enum Kind {
    Cheetah(CheetahConfig),
    Delphi(DelphiConfig),
    Aby(AbyConfig),
    Cryptflow2(Cryptflow2Config),
    Dealer,
}

fn kinds() -> [Kind; 5] {
    let mut c = CheetahConfig::default();
    c.ot.min_refill = 1 << 13;
    let mut d = DelphiConfig::default();
    d.ot.min_refill = 1 << 13;
    let mut a = AbyConfig::default();
    a.ot.min_refill = 1 << 13;
    [
        Kind::Cheetah(c),
        Kind::Delphi(d),
        Kind::Aby(a),
        Kind::Cryptflow2(Cryptflow2Config::default()),
        Kind::Dealer,
    ]
}

fn backends(kind: &Kind, program: &FixedProgram) -> (Box<dyn Backend>, Box<dyn Backend>) {
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
            let dealer = Dealer::new(program.ring(), 77);
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

fn test_samples(dataset: &str, n: usize) -> Tensor<f32> {
    data::load(&data::data_dir().unwrap(), dataset, Part::Test)
        .unwrap()
        .head(n)
        .inputs
}

/// Runs `x` through one label-mode session; returns what the client was
/// revealed, the mode it saw, and the bytes of its output phase.
async fn label_session(
    served: ServedModel,
    kind: &Kind,
    x: RingTensor,
) -> Result<(Vec<u64>, OutputMode, u64), SecureError> {
    rayon_threads();
    let (sb, cb) = backends(kind, &served.program);
    let mut server =
        SecureServer::new(served, ServerConfig::default(), vec![sb], Arc::new(Honest))?;
    server.set_output_mode(OutputMode::Label)?;
    let (s, c) = local_pair(&net()).await?;
    let mut srng = ChaCha20Rng::seed_from_u64(41);
    let mut crng = ChaCha20Rng::seed_from_u64(42);
    let client = async move {
        let mut client =
            SecureClient::connect(c, ClientConfig::default(), cb.as_ref(), &mut crng).await?;
        let mode = client.output_mode();
        let n = x.batch();
        let y = client.infer_encoded(x.into_data(), n).await?;
        let out_bytes = client
            .last_batch()
            .and_then(|b| b.phases.iter().find(|p| p.name == Phase::Output))
            .map_or(0, |p| p.bytes_sent + p.bytes_received);
        client.finish().await?;
        Ok::<_, SecureError>((y, mode, out_bytes))
    };
    let (served, client) = tokio::join!(server.serve(s, &mut srng), client);
    served?;
    client
}

/// Label mode on `raw` samples of `model`: one-hot, the fixed-point engine's
/// argmax wherever the secure engine's error cannot flip it.
async fn check_label_mode(model: &Model, raw: Tensor<f32>, kind: &Kind, require_clear: bool) {
    let served = ServedModel::from_model(model, eval::default_fixed_point()).unwrap();
    let program = served.program.clone();
    let x = program
        .encode_input(&model.meta.preprocess.apply(&raw).unwrap())
        .unwrap();
    let (y, mode, out_bytes) = label_session(served, kind, x.clone()).await.unwrap();
    assert_eq!(
        mode,
        OutputMode::Label,
        "the client sees the announced mode"
    );
    assert!(
        out_bytes > 0,
        "the argmax is metered under the output phase"
    );
    let classes = program.output_shape()[0];
    let ring = program.ring();
    assert_eq!(y.len(), x.batch() * classes);
    // The client's whole view of the outputs: 0/1 with one 1 per sample.
    for row in y.chunks(classes) {
        assert!(row.iter().all(|&v| v <= 1), "not one-hot: {row:?}");
        assert_eq!(row.iter().filter(|&&v| v == 1).count(), 1, "{row:?}");
    }
    let all = program.run_all(&x).unwrap();
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
    let bound = deviation_bound(&program, &max_abs)[program.output()];
    let reference = all.last().unwrap();
    let ref_arg = argmax_signed(ring, reference);
    let mut compared = 0;
    for (i, (row, r)) in y
        .chunks(classes)
        .zip(reference.data().chunks(classes))
        .enumerate()
    {
        let got = row.iter().position(|&v| v == 1).unwrap();
        let mut s: Vec<i64> = r.iter().map(|&v| ring.to_signed(v)).collect();
        s.sort_unstable();
        if (s[classes - 1] - s[classes - 2]).unsigned_abs() > 2 * bound {
            assert_eq!(got, ref_arg[i], "sample {i}");
            compared += 1;
        }
    }
    // (mnist-cnn's proven deviation bound is loose: its samples may all be
    // within it; the one-hot checks above still hold.)
    assert!(
        !require_clear || compared > 0,
        "no sample had a clear margin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn label_mode_reveals_the_fixed_point_argmax_as_one_hot_on_bc_mlp_for_every_backend() {
    let model = load("bc-mlp");
    let mut raw = test_samples("breast-cancer", 8);
    // Edge inputs: an all-zero patient and one at the largest test values.
    let len = raw.sample_len();
    let mut data = raw.data().to_vec();
    data.extend(std::iter::repeat_n(0.0, len));
    let maxes: Vec<f32> = (0..len)
        .map(|j| {
            raw.data()
                .chunks(len)
                .map(|r| r[j])
                .fold(f32::MIN, f32::max)
        })
        .collect();
    data.extend(maxes);
    raw = Tensor::new(vec![10, len], data).unwrap();
    for kind in kinds() {
        check_label_mode(&model, raw.clone(), &kind, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn label_mode_reveals_the_fixed_point_argmax_as_one_hot_on_mnist_cnn_for_every_backend() {
    let model = load("mnist-cnn");
    for kind in kinds() {
        check_label_mode(&model, test_samples("mnist", 2), &kind, false).await;
    }
}

/// The plain argmax with the stage's tie rule (lowest index of the top).
fn plain_argmax(row: &[i64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Runs `stage` on random shares (from `rng`) of the chosen logits `rows`
/// over one `kind` session of `program`, both parties in this test; returns
/// the backend's name, what the server's reveal returned and what the client
/// was revealed.
async fn stage_on_shares(
    kind: &Kind,
    program: &FixedProgram,
    stage: &ShareStage,
    rows: &[Vec<i64>],
    rng: &mut ChaCha20Rng,
) -> (String, Option<Vec<u64>>, Vec<u64>) {
    let public = program.public();
    let ring = program.ring();
    let n = rows.len();
    let (sb, cb) = backends(kind, program);
    let (prepared_s, announcement) = sb.serve(program).unwrap();
    let prepared_c = cb.join(&public, &announcement).unwrap();
    let domain = prepared_c.domain();
    let (mut s, mut c) = local_pair(&net()).await.unwrap();
    let timeout = Duration::from_secs(120);
    let (ps, pc) = tokio::join!(
        prepared_s.open(SetupLink {
            session: &mut s,
            rng: ChaCha20Rng::seed_from_u64(51),
            timeout,
        }),
        prepared_c.open(SetupLink {
            session: &mut c,
            rng: ChaCha20Rng::seed_from_u64(52),
            timeout,
        })
    );
    let (mut ps, mut pc) = (ps.unwrap(), pc.unwrap());
    let (mut ys, mut yc) = (Vec::new(), Vec::new());
    for &v in rows.iter().flatten() {
        let r = domain.random(rng);
        ys.push(r);
        yc.push(domain.sub(domain.from_program(ring.from_signed(v)), r));
    }
    let (ms, mc) = (s.meter().clone(), c.meter().clone());
    let server = async {
        let h = stage
            .run(ps.as_mut(), &ms, timeout, domain, ys, n, false)
            .await?;
        ps.reveal(h, n).await
    };
    let client = async {
        let h = stage
            .run(pc.as_mut(), &mc, timeout, domain, yc, n, true)
            .await?;
        pc.reveal(h, n).await
    };
    let (rs, rc) = tokio::join!(server, client);
    let revealed = rc.unwrap().expect("the client learns the output");
    drop((ps, pc));
    s.close();
    c.close();
    (sb.name().to_string(), rs.unwrap(), revealed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_argmax_stage_reveals_exactly_one_class_on_ties_and_edge_values_for_every_backend() {
    rayon_threads();
    // A 10-class program, only for the backends' sessions; the stage runs on
    // crafted shares of chosen logits.
    let model = zoo::build("mlp-mnist", 5).unwrap();
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let program = served.program.clone();
    let k = 10usize;
    let big = (1i64 << 35) - 1; // the largest |y| of the engine's range at l = 37
    let rows: Vec<Vec<i64>> = vec![
        vec![5, 5, 3, 5, 0, 0, 0, 0, 0, 0], // tie at the top: class 0
        vec![-7; 10],                       // all equal: class 0
        vec![-9, -3, -3, -8, -3, -4, -5, -6, -7, -8], // tie of negatives: class 1
        vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // one ulp apart: class 9
        vec![big, -big, 0, big - 1, 0, 0, 0, 0, 0, big], // extremes, tie: class 0
        vec![
            -big,
            -big,
            -big,
            -big,
            -big,
            -big,
            -big,
            -big,
            -big + 1,
            -big,
        ], // class 8
    ];
    let expected: Vec<usize> = rows.iter().map(|r| plain_argmax(r)).collect();
    assert_eq!(expected, [0, 0, 1, 9, 0, 8]);
    let stage = ShareStage::Argmax(ArgmaxStage::new(program.fixed, k).unwrap());
    for kind in kinds() {
        // Random shares of the logits.
        let mut rng = ChaCha20Rng::seed_from_u64(53);
        let (_, server, revealed) = stage_on_shares(&kind, &program, &stage, &rows, &mut rng).await;
        assert_eq!(server, None);
        let got = fusion_engine::output_mode::check_one_hot(&revealed, k, 0).unwrap();
        assert_eq!(got, expected);
    }
}

/// Fusion over a `mode` session of bc-mlp against `behaviour`: the report,
/// or the client's refusal of a revealed output its mode does not allow.
async fn fusion_in_mode(
    kind: &Kind,
    mode: OutputMode,
    behaviour: Arc<dyn ServerBehaviour>,
) -> Result<fusion_core::verify::Report, String> {
    rayon_threads();
    let model = load("bc-mlp");
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let (sb, cb) = backends(kind, &served.program);
    let mut server =
        SecureServer::new(served, ServerConfig::default(), vec![sb], behaviour).unwrap();
    server.set_output_mode(mode).unwrap();
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
    let mut srng = ChaCha20Rng::seed_from_u64(61);
    let mut crng = ChaCha20Rng::seed_from_u64(62);
    let client = async move {
        let mut client = SecureClient::connect(c, ClientConfig::default(), cb.as_ref(), &mut crng)
            .await
            .unwrap();
        assert_eq!(client.output_mode(), mode);
        let params = FusionParams::new(2, "0.95".parse().unwrap());
        match run_fusion(&mut client, &queries, &public, &params, &mut crng).await {
            Ok(report) => {
                client.finish().await.unwrap();
                Ok(report)
            }
            Err(e) => {
                client.close();
                Err(e.to_string())
            }
        }
    };
    let (served, report) = tokio::join!(server.serve(s, &mut srng), client);
    if report.is_ok() {
        served.unwrap();
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fusion_in_label_mode_accepts_the_honest_server_and_catches_cheats() {
    let [cheetah, _, aby, _, dealer] = kinds();
    for kind in [cheetah, aby, dealer] {
        let honest = fusion_in_mode(&kind, OutputMode::Label, Arc::new(Honest))
            .await
            .unwrap();
        assert!(honest.accepted(), "{honest}");
        let cheats: [Arc<dyn ServerBehaviour>; 2] = [
            Arc::new(Tamper::new(30, 0, 2).unwrap()),
            Arc::new(RandomOutputs),
        ];
        for cheat in cheats {
            let name = cheat.name();
            // Detected: the verification rejects, or (random logits outside
            // the argmax's range) the client refuses a non-one-hot reveal.
            match fusion_in_mode(&kind, OutputMode::Label, cheat).await {
                Ok(r) => assert!(!r.accepted(), "{name}: {r}"),
                Err(e) => assert!(e.contains("not a one-hot vector"), "{name}: {e}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_sees_logits_mode_by_default() {
    rayon_threads();
    let model = load("bc-mlp");
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let kind = kinds()[4].clone();
    let (sb, cb) = backends(&kind, &served.program);
    let server =
        SecureServer::new(served, ServerConfig::default(), vec![sb], Arc::new(Honest)).unwrap();
    assert_eq!(server.output_mode(), OutputMode::Logits);
    let (s, c) = local_pair(&net()).await.unwrap();
    let mut srng = ChaCha20Rng::seed_from_u64(71);
    let mut crng = ChaCha20Rng::seed_from_u64(72);
    let client = async move {
        let client = SecureClient::connect(c, ClientConfig::default(), cb.as_ref(), &mut crng)
            .await
            .unwrap();
        let mode = client.output_mode();
        client.finish().await.unwrap();
        mode
    };
    let (served, mode) = tokio::join!(server.serve(s, &mut srng), client);
    served.unwrap();
    assert_eq!(mode, OutputMode::Logits);
}

/// The default reverse-sigmoid mode.
fn reverse_sigmoid() -> OutputMode {
    OutputMode::from_reverse_sigmoid(ReverseSigmoid::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reverse_sigmoid_stage_matches_the_fixed_point_pipeline_on_chosen_logits_for_every_backend()
 {
    rayon_threads();
    // A 10-class program for the backends' sessions; the stage runs on
    // crafted shares of chosen logits (at the program's output scale).
    let model = zoo::build("mlp-mnist", 5).unwrap();
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let program = served.program.clone();
    let public = program.public();
    let ring = program.ring();
    let k = 10usize;
    let scale = program.output_scale();
    let unit = 1i64 << scale;
    let big = (1i64 << 35) - 1;
    let mut rows: Vec<Vec<i64>> = vec![
        vec![0; 10],                                // uniform
        vec![20 * unit, 0, 0, 0, 0, 0, 0, 0, 0, 0], // one certain class
        vec![
            2 * unit,
            unit,
            0,
            -unit,
            3 * unit / 2,
            0,
            0,
            0,
            0,
            -5 * unit,
        ],
        vec![-7 * unit; 10],                             // equal negatives
        vec![big, -big, 0, big - 1, 0, 0, 0, 0, 0, big], // range extremes
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(81);
    for _ in 0..5 {
        rows.push(
            (0..k)
                .map(|_| rand::RngExt::random_range(&mut rng, -6 * unit..6 * unit))
                .collect(),
        );
    }
    let stage = ShareStage::for_mode(reverse_sigmoid(), &public, k)
        .unwrap()
        .expect("a stage");
    let ShareStage::ReverseSigmoid(rs_stage) = &stage else {
        panic!("the reverse-sigmoid stage");
    };
    let tables = rs_stage.tables().clone();
    let frac = program.fixed.frac_bits;
    let want: Vec<Vec<i64>> = rows.iter().map(|r| tables.apply_fixed(r)).collect();
    for kind in kinds() {
        let (name, server, revealed) =
            stage_on_shares(&kind, &program, &stage, &rows, &mut rng).await;
        assert_eq!(server, None, "the server learns nothing");
        // The client's whole view of the outputs: y_hat, probabilities.
        fusion_engine::reverse_sigmoid::check_probabilities(&revealed, program.fixed, k, 0)
            .unwrap();
        let mut worst = 0i64;
        for (i, (got, w)) in revealed.chunks(k).zip(&want).enumerate() {
            let got: Vec<i64> = got.iter().map(|&v| ring.to_signed(v)).collect();
            let dev = got.iter().zip(w).map(|(a, b)| (a - b).abs()).max().unwrap();
            worst = worst.max(dev);
            let total: i64 = got.iter().sum();
            assert!(
                (total - (1 << frac)).abs() < 1 << (frac - 5),
                "{}: sample {i} sums to {total}",
                name
            );
        }
        // Each truncation is exact or one less; through the tables' slopes
        // that moves y_hat by a few units of 2^-f (documented bound: 2^-6).
        assert!(
            worst < 1 << (frac - 6),
            "{}: y_hat {worst} units from the plaintext pipeline",
            name
        );
        eprintln!("{}: largest deviation {worst} units of 2^-{frac}", name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fusion_in_reverse_sigmoid_mode_accepts_the_honest_server_and_catches_cheats() {
    let [cheetah, _, _, _, dealer] = kinds();
    for kind in [cheetah, dealer] {
        let honest = fusion_in_mode(&kind, reverse_sigmoid(), Arc::new(Honest))
            .await
            .unwrap();
        assert!(honest.accepted(), "{honest}");
        // What the client receives are probabilities, not logits.
        for o in honest.outputs().unwrap() {
            let p = o.scores();
            assert!(p.iter().all(|&v| (-0.02..=1.02).contains(&v)), "{p:?}");
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 0.05, "{p:?}");
        }
        let cheats: [Arc<dyn ServerBehaviour>; 2] = [
            Arc::new(Tamper::new(30, 0, 2).unwrap()),
            Arc::new(RandomOutputs),
        ];
        for cheat in cheats {
            let name = cheat.name();
            match fusion_in_mode(&kind, reverse_sigmoid(), cheat).await {
                Ok(r) => assert!(!r.accepted(), "{name}: {r}"),
                Err(e) => assert!(e.contains("not a probability"), "{name}: {e}"),
            }
        }
    }
}
