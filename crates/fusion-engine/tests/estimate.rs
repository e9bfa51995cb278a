//! Every backend's cost estimate ([`fusion_engine::estimate`]) against the
//! metered bytes of a real session (both parties in one test over
//! `fusion_net::local_pair`, real QUIC + TLS on 127.0.0.1, fixed seeds),
//! within ±25% (see [`check`] for exactly what is compared).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use fusion_engine::backends::aby::{Aby, AbyConfig};
use fusion_engine::backends::cheetah::Cheetah;
use fusion_engine::backends::cheetah::config::CheetahConfig;
use fusion_engine::backends::cryptflow2::{Cryptflow2, Cryptflow2Config};
use fusion_engine::backends::delphi::{Delphi, DelphiConfig};
use fusion_engine::behaviour::Honest;
use fusion_engine::estimate::CostEstimate;
use fusion_engine::{Backend, ClientConfig, SecureClient, SecureServer, ServedModel, ServerConfig};
use fusion_net::{MeterReport, NetConfig, Phase, local_pair};
use fusion_nn::data::{self, Part};
use fusion_nn::eval;
use fusion_nn::model::Model;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

fn rayon_threads() {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build_global();
}

fn load(name: &str) -> Model {
    Model::load(&data::data_dir().unwrap().join("models").join(name)).unwrap()
}

fn backend(name: &str) -> Box<dyn Backend> {
    match name {
        "cheetah" => Box::new(Cheetah::new(CheetahConfig::default())),
        "delphi" => Box::new(Delphi::new(DelphiConfig::default())),
        "aby" => Box::new(Aby::new(AbyConfig::default())),
        "cryptflow2" => Box::new(Cryptflow2::new(Cryptflow2Config::default())),
        other => panic!("no backend {other}"),
    }
}

/// One batch of `n` test samples of `dataset` through `model` with
/// `backend`: the server's and the client's meter reports and the server's
/// estimate.
async fn measure(
    model: &str,
    dataset: &str,
    n: usize,
    backend_name: &str,
) -> (MeterReport, MeterReport, CostEstimate) {
    rayon_threads();
    let model = load(model);
    let served = ServedModel::from_model(&model, eval::default_fixed_point()).unwrap();
    let program = served.program.clone();
    let raw = data::load(&data::data_dir().unwrap(), dataset, Part::Test)
        .unwrap()
        .head(n)
        .inputs;
    let x = program
        .encode_input(&model.meta.preprocess.apply(&raw).unwrap())
        .unwrap();
    let (prepared, _) = backend(backend_name).serve(&program).unwrap();
    let estimate = prepared.estimate(n).unwrap();
    let server = SecureServer::new(
        served,
        ServerConfig::default(),
        vec![backend(backend_name)],
        Arc::new(Honest),
    )
    .unwrap();
    let net = NetConfig::default().with_timeouts(Duration::from_secs(120));
    let (s, c) = local_pair(&net).await.unwrap();
    let mut srng = ChaCha20Rng::seed_from_u64(21);
    let mut crng = ChaCha20Rng::seed_from_u64(22);
    let cb = backend(backend_name);
    let client = async move {
        let mut client = SecureClient::connect(c, ClientConfig::default(), cb.as_ref(), &mut crng)
            .await
            .unwrap();
        let meter = client.meter();
        client.infer_encoded(x.into_data(), n).await.unwrap();
        client.finish().await.unwrap();
        meter.report()
    };
    let (summary, client) = tokio::join!(server.serve(s, &mut srng), client);
    (summary.unwrap().report, client, estimate)
}

/// Wire bytes a party sent in phase `p`. Each party's sends are charged to
/// the phase it is in when it sends; its receives to the phase it is in when
/// they arrive, which under load can still be the one before (a party that
/// lags its peer), so the pass's traffic is counted as what both sent.
fn sent_bytes(r: &MeterReport, p: Phase) -> u64 {
    r.phase(p).map_or(0, |p| p.counters.bytes_sent)
}

fn message_bytes(r: &MeterReport, p: Phase) -> u64 {
    r.phase(p).map_or(0, |p| {
        p.counters.message_bytes_sent + p.counters.message_bytes_received
    })
}

fn within(measured: u64, estimated: u64) -> bool {
    (estimated as f64 - measured as f64).abs() <= 0.25 * measured as f64
}

fn row(what: &str, label: &str, m: u64, e: u64) {
    eprintln!(
        "{what}: {label:>34} measured {m:>12} estimated {e:>12} ratio {:.3}",
        e as f64 / m.max(1) as f64
    );
}

/// Two checks. (1) The protocol messages of the linear and non-linear
/// phases (fusion-net's message bytes: exact payloads, charged to the phase
/// that sent them) against the estimate's online traffic of those steps.
/// (2) Everything on the wire during the pass (QUIC bytes of the
/// preprocessing, linear, non-linear and output phases, including OT
/// generation on CryProt's streams and transport overhead) against the
/// estimate's total.
fn check(what: &str, r: &MeterReport, client: &MeterReport, e: &CostEstimate) {
    if std::env::var_os("ESTIMATE_DEBUG").is_some() {
        eprintln!("{}", r.to_json());
        eprintln!("{}", serde_json::to_string_pretty(e).unwrap());
    }
    let lin = (message_bytes(r, Phase::Linear), e.linear().total());
    let non = (message_bytes(r, Phase::NonLinear), e.nonlinear().total());
    let pass = [
        Phase::Preprocessing,
        Phase::Linear,
        Phase::NonLinear,
        Phase::Output,
    ];
    let wire = (
        pass.iter()
            .map(|&p| sent_bytes(r, p) + sent_bytes(client, p))
            .sum::<u64>(),
        e.total().total(),
    );
    row(what, "linear messages", lin.0, lin.1);
    row(what, "non-linear messages", non.0, non.1);
    row(what, "pass on the wire (incl. OT gen.)", wire.0, wire.1);
    assert!(
        within(lin.0, lin.1),
        "{what}: linear messages off by more than 25%"
    );
    assert!(
        within(non.0, non.1),
        "{what}: non-linear messages off by more than 25%"
    );
    assert!(
        within(wire.0, wire.1),
        "{what}: the pass on the wire off by more than 25%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn estimates_are_within_a_quarter_of_the_measured_bytes_on_bc_mlp() {
    for b in ["cheetah", "delphi", "aby", "cryptflow2"] {
        let (r, c, e) = measure("bc-mlp", "breast-cancer", 8, b).await;
        check(&format!("bc-mlp x8 {b}"), &r, &c, &e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn estimates_are_within_a_quarter_of_the_measured_bytes_on_mnist_cnn() {
    for b in ["cheetah", "delphi", "aby", "cryptflow2"] {
        let (r, c, e) = measure("mnist-cnn", "mnist", 2, b).await;
        check(&format!("mnist-cnn x2 {b}"), &r, &c, &e);
    }
}
