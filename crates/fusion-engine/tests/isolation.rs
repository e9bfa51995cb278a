//! Session isolation against a malicious client: a real server
//! ([`SecureServer::serve_isolated`] over `fusion_net::Server` on 127.0.0.1)
//! is driven by clients that corrupt their own outgoing bytes at a chosen
//! stream and offset (a send filter installed on the client's connection, so
//! the corruption reaches every layer: the hello, the HE keys and
//! ciphertexts, the OT flights, CryProt's base OTs and PPRF messages). Every
//! such session must end (with an error, or with wrong but well-formed
//! results), never take the server down; afterwards an honest session must
//! run and match the fixed-point engine.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fusion_engine::backend::{PartySession, PreparedBackend, ProtocolFuture, SetupLink};
use fusion_engine::backends::cheetah::Cheetah;
use fusion_engine::backends::cheetah::config::CheetahConfig;
use fusion_engine::behaviour::Honest;
use fusion_engine::domain::Domain;
use fusion_engine::{
    Backend, ClientConfig, SecureClient, SecureError, SecureServer, ServedModel, ServerConfig,
};
use fusion_net::{Identity, NetConfig, Phase, Server, ServerPin};
use fusion_nn::data::{self, Part};
use fusion_nn::eval;
use fusion_nn::fixed::{FixedProgram, PublicProgram, argmax_signed};
use fusion_nn::model::Model;
use fusion_nn::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use tokio::sync::mpsc;

/// Bytes written per stream (keyed by the stream's id description).
type Written = Arc<Mutex<BTreeMap<String, u64>>>;

/// Records how many bytes each outgoing stream carries (no corruption).
struct Recorder(Written);

struct Count(String, Written);

impl cryprot_net::StreamMutator for Count {
    fn mutate(&self, offset: u64, bytes: &mut [u8]) {
        let mut m = self.1.lock().unwrap();
        let e = m.entry(self.0.clone()).or_default();
        *e = (*e).max(offset + bytes.len() as u64);
    }
}

impl cryprot_net::SendFilter for Recorder {
    fn on_open(&self, stream: &str) -> Option<Box<dyn cryprot_net::StreamMutator>> {
        self.0
            .lock()
            .unwrap()
            .entry(stream.to_string())
            .or_default();
        Some(Box::new(Count(stream.to_string(), self.0.clone())))
    }
}

/// Inverts `len` bytes of one stream from `at` on.
struct Corrupt {
    stream: String,
    at: u64,
    len: u64,
}

struct Flip {
    at: u64,
    len: u64,
}

impl cryprot_net::StreamMutator for Flip {
    fn mutate(&self, offset: u64, bytes: &mut [u8]) {
        for (i, b) in bytes.iter_mut().enumerate() {
            let pos = offset + i as u64;
            if pos >= self.at && pos < self.at + self.len {
                *b ^= 0xA5;
            }
        }
    }
}

impl cryprot_net::SendFilter for Corrupt {
    fn on_open(&self, stream: &str) -> Option<Box<dyn cryprot_net::StreamMutator>> {
        (stream == self.stream).then(|| {
            Box::new(Flip {
                at: self.at,
                len: self.len,
            }) as Box<dyn cryprot_net::StreamMutator>
        })
    }
}

fn net() -> NetConfig {
    NetConfig::default().with_timeouts(Duration::from_secs(5))
}

fn model() -> Model {
    Model::load(&data::data_dir().unwrap().join("models").join("bc-mlp")).unwrap()
}

/// Cheetah on the server, except that the setup of the first session
/// panics: a stand-in for a panic inside a dependency.
struct PanicsOnce {
    inner: Cheetah,
    armed: Arc<AtomicBool>,
}

struct PanicsOncePrepared {
    inner: Arc<dyn PreparedBackend>,
    armed: Arc<AtomicBool>,
}

impl Backend for PanicsOnce {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn summary(&self) -> &'static str {
        self.inner.summary()
    }
    fn serve(
        &self,
        program: &FixedProgram,
    ) -> Result<(Arc<dyn PreparedBackend>, String), SecureError> {
        let (inner, announcement) = self.inner.serve(program)?;
        let prepared = PanicsOncePrepared {
            inner,
            armed: self.armed.clone(),
        };
        Ok((Arc::new(prepared), announcement))
    }
    fn join(
        &self,
        program: &PublicProgram,
        announcement: &str,
    ) -> Result<Arc<dyn PreparedBackend>, SecureError> {
        self.inner.join(program, announcement)
    }
}

impl PreparedBackend for PanicsOncePrepared {
    fn domain(&self) -> Domain {
        self.inner.domain()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn stat_security(&self) -> Option<fusion_engine::statsec::SessionFlooding> {
        self.inner.stat_security()
    }
    fn estimate(
        &self,
        n: usize,
    ) -> fusion_engine::SecureResult<fusion_engine::estimate::CostEstimate> {
        self.inner.estimate(n)
    }
    fn open<'a>(&'a self, link: SetupLink<'a>) -> ProtocolFuture<'a, Box<dyn PartySession>> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("assertion failed in a dependency (simulated)");
        }
        self.inner.open(link)
    }
}

/// What the server reported for one session: the phase it had last entered
/// and its result.
type Outcome = (Phase, Result<u64, String>);

/// Starts a server on 127.0.0.1 serving sessions one at a time, each
/// isolated; reports every session's outcome.
async fn start_server(
    served: ServedModel,
    panic_first: bool,
) -> (SocketAddr, ServerPin, mpsc::UnboundedReceiver<Outcome>) {
    let identity = Identity::generate(&["localhost".to_string()]).unwrap();
    let pin = identity.pin();
    let mut cheetah = CheetahConfig::default();
    cheetah.ot.min_refill = 1 << 13;
    let config = ServerConfig {
        step_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let server = Arc::new(
        SecureServer::new(
            served,
            config,
            vec![Box::new(PanicsOnce {
                inner: Cheetah::new(cheetah),
                armed: Arc::new(AtomicBool::new(panic_first)),
            })],
            Arc::new(Honest),
        )
        .unwrap(),
    );
    let mut listener = Server::bind("127.0.0.1:0".parse().unwrap(), &identity, net()).unwrap();
    let addr = listener.local_addr();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        while let Ok(session) = listener.accept().await {
            let meter = session.meter().clone();
            let r = server.serve_isolated(session, &mut rng).await;
            let outcome = r.map(|s| s.samples).map_err(|e| e.to_string());
            if tx.send((meter.last_entered(), outcome)).is_err() {
                break;
            }
        }
    });
    (addr, pin, rx)
}

/// Runs one client session of one batch, its outgoing bytes passed through
/// `filter`; returns the logits (or the client's error).
async fn client_session(
    addr: SocketAddr,
    pin: &ServerPin,
    filter: Option<Arc<dyn cryprot_net::SendFilter>>,
    raw: &Tensor<f32>,
    seed: u64,
) -> Result<Vec<u64>, SecureError> {
    let mut session = fusion_net::connect(addr, pin, &net()).await?;
    if let Some(f) = filter {
        session.set_send_filter(f);
    }
    let mut cheetah = CheetahConfig::default();
    cheetah.ot.min_refill = 1 << 13;
    let backend = Cheetah::new(cheetah);
    let cc = ClientConfig {
        step_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut client = SecureClient::connect(session, cc, &backend, &mut rng).await?;
    let rows: Vec<Vec<f32>> = raw
        .data()
        .chunks(raw.len() / raw.batch())
        .map(|r| r.to_vec())
        .collect();
    let encoded = client.encode(&rows)?;
    let y = client.infer_encoded(encoded, raw.batch()).await?;
    client.finish().await?;
    Ok(y)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_corrupting_any_stream_ends_only_its_own_session() {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build_global();
    let model = model();
    let fixed = eval::default_fixed_point();
    let served = ServedModel::from_model(&model, fixed).unwrap();
    let program = served.program.clone();
    let raw = data::load(&data::data_dir().unwrap(), "breast-cancer", Part::Test)
        .unwrap()
        .head(4)
        .inputs;
    let (addr, pin, mut outcomes) = start_server(served, false).await;

    // An honest session, recording every stream the client writes to.
    let written: Written = Arc::default();
    let honest = client_session(
        addr,
        &pin,
        Some(Arc::new(Recorder(written.clone()))),
        &raw,
        1,
    )
    .await
    .unwrap();
    let (_, first) = outcomes.recv().await.unwrap();
    assert_eq!(first, Ok(4));
    let streams: Vec<(String, u64)> = written
        .lock()
        .unwrap()
        .iter()
        .filter(|&(_, &n)| n > 0)
        .map(|(s, &n)| (s.clone(), n))
        .collect();
    assert!(
        streams.len() >= 4,
        "expected the control, HE, OT and CryProt streams, saw {streams:?}"
    );

    // Corrupt each stream at its start, in its middle and at its end.
    let mut failed_in: BTreeMap<String, usize> = BTreeMap::new();
    let mut sessions = 0usize;
    for (stream, len) in &streams {
        let mut offsets = vec![0, len / 2, len.saturating_sub(8)];
        offsets.dedup();
        for at in offsets {
            let filter = Arc::new(Corrupt {
                stream: stream.clone(),
                at,
                len: 8,
            });
            let client = tokio::time::timeout(
                Duration::from_secs(60),
                client_session(addr, &pin, Some(filter), &raw, 2 + sessions as u64),
            )
            .await
            .expect("a corrupting client's session ends within its timeouts");
            let (phase, outcome) = tokio::time::timeout(Duration::from_secs(60), outcomes.recv())
                .await
                .expect("the server reports every session")
                .expect("the server is still running");
            sessions += 1;
            eprintln!(
                "stream {stream} byte {at}: server {} in {phase}; client {}",
                match &outcome {
                    Ok(n) => format!("served {n} samples"),
                    Err(e) => format!("ended the session ({e})"),
                },
                match &client {
                    Ok(_) => "finished".to_string(),
                    Err(e) => format!("failed ({e})"),
                }
            );
            if outcome.is_err() {
                *failed_in.entry(phase.to_string()).or_default() += 1;
            }
        }
    }
    eprintln!("{sessions} corrupted sessions; server-side failures by phase: {failed_in:?}");
    assert!(
        failed_in.get("setup").is_some_and(|&n| n > 0),
        "corrupting the set-up streams never reached a check"
    );

    // The server still serves an honest client, with the right results.
    let again = client_session(addr, &pin, None, &raw, 99).await.unwrap();
    let (_, last) = outcomes.recv().await.unwrap();
    assert_eq!(last, Ok(4));
    let ring = program.ring();
    let x = program
        .encode_input(&model.meta.preprocess.apply(&raw).unwrap())
        .unwrap();
    let reference = program.run(&x).unwrap();
    let classes = program.output_shape()[0];
    let want = argmax_signed(ring, &reference);
    for y in [honest, again] {
        let got = argmax_signed(ring, &Tensor::new(vec![raw.batch(), classes], y).unwrap());
        assert_eq!(got, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_while_serving_one_session_ends_only_that_session() {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build_global();
    let served = ServedModel::from_model(&model(), eval::default_fixed_point()).unwrap();
    let raw = data::load(&data::data_dir().unwrap(), "breast-cancer", Part::Test)
        .unwrap()
        .head(2)
        .inputs;
    let (addr, pin, mut outcomes) = start_server(served, true).await;
    let first = client_session(addr, &pin, None, &raw, 1).await;
    assert!(first.is_err(), "the first session cannot succeed");
    let (phase, outcome) = outcomes.recv().await.unwrap();
    let err = outcome.unwrap_err();
    assert!(
        err.contains("session panicked during setup")
            && err.contains("assertion failed in a dependency"),
        "{err}"
    );
    assert_eq!(phase, Phase::Setup);
    // The same server serves the next client.
    client_session(addr, &pin, None, &raw, 2).await.unwrap();
    assert_eq!(outcomes.recv().await.unwrap().1, Ok(2));
}
