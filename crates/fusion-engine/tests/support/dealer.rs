//! `dealer`: an **insecure** reference backend for tests, written only
//! against fusion-engine's public seam ([`fusion_engine::backend`]).
//!
//! A trusted dealer inside the test process holds the server's program. For
//! every linear and non-linear call both parties hand it their shares; it
//! reconstructs the values, applies the plaintext fixed-point interpreter's
//! semantics ([`fusion_nn::fixed::Step::apply`] for linear steps, the op
//! itself for non-linear ones) and hands each party a fresh random share of
//! the result. Shares live in `Z_p` for a 61-bit Mersenne prime, so the
//! session driver's field path (local steps mod `p`, embedding of the
//! client's input, reconstruction) is exercised end to end. The output stage
//! sends the server's share over the session's real QUIC connection.
//!
//! It proves that a backend needs nothing beyond the public traits, and it
//! is the simplest template for a new backend. It is never offered by
//! `fusion serve` (it lives in the tests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fusion_core::ring::Ring;
use fusion_engine::backend::{
    Backend, LinearCall, LinearLayers, NonLinearLayers, OutputStage, PartySession, PreparedBackend,
    Preprocessing, ProtocolFuture, SetupLink,
};
use fusion_engine::domain::{Domain, PrimeField};
use fusion_engine::schedule::NonLinearOp;
use fusion_engine::{SecureError, SecureResult};
use fusion_net::{MsgReceiver, MsgSender};
use fusion_nn::fixed::{FixedProgram, PublicProgram};
use fusion_nn::tensor::RingTensor;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use tokio::sync::oneshot;

/// `2^61 - 1`.
pub const PRIME: u64 = (1 << 61) - 1;

/// The first party's deposit for a call.
struct Waiting {
    server: bool,
    share: Vec<u64>,
    reply: oneshot::Sender<Vec<u64>>,
}

/// The trusted dealer of one test (shared by both parties).
pub struct Dealer {
    /// The program the server serves, with its coefficients (set by the
    /// server's [`Backend::serve`], so a cheating server's replacement model
    /// is what the dealer computes).
    program: Mutex<Option<Arc<FixedProgram>>>,
    domain: Domain,
    waiting: Mutex<HashMap<u64, Waiting>>,
    rng: Mutex<ChaCha20Rng>,
}

impl Dealer {
    fn program(&self) -> SecureResult<Arc<FixedProgram>> {
        self.program
            .lock()
            .expect("lock")
            .clone()
            .ok_or_else(|| SecureError::Config("the server has not prepared the dealer".into()))
    }

    /// A dealer for programs over `ring`.
    pub fn new(ring: Ring, seed: u64) -> Arc<Self> {
        let field = PrimeField::new(PRIME).expect("prime");
        let domain = Domain::field(field, ring).expect("field holds the ring");
        Arc::new(Dealer {
            program: Mutex::new(None),
            domain,
            waiting: Mutex::new(HashMap::new()),
            rng: Mutex::new(ChaCha20Rng::seed_from_u64(seed)),
        })
    }

    /// Both parties call this with the same `id`; the second caller computes
    /// `f` on the reconstructed program values and both get fresh shares.
    async fn meet(
        &self,
        id: u64,
        server: bool,
        share: Vec<u64>,
        f: impl FnOnce(&[u64]) -> SecureResult<Vec<u64>>,
    ) -> SecureResult<Vec<u64>> {
        let deposited = {
            let mut w = self.waiting.lock().expect("lock");
            match w.remove(&id) {
                Some(other) => Ok(other),
                None => {
                    let (tx, rx) = oneshot::channel();
                    w.insert(
                        id,
                        Waiting {
                            server,
                            share: share.clone(),
                            reply: tx,
                        },
                    );
                    Err(rx)
                }
            }
        };
        let other = match deposited {
            Ok(other) => other,
            Err(rx) => {
                return rx
                    .await
                    .map_err(|_| SecureError::Task("the dealer's peer vanished".into()));
            }
        };
        if other.server == server || other.share.len() != share.len() {
            return Err(SecureError::Malformed(format!(
                "dealer call {id} mismatched"
            )));
        }
        let d = self.domain;
        let values = d.reconstruct(&share, &other.share);
        let y = f(&values)?;
        let (mine, theirs): (Vec<u64>, Vec<u64>) = {
            let mut rng = self.rng.lock().expect("lock");
            y.iter()
                .map(|&v| {
                    let r = d.random(&mut *rng);
                    (r, d.sub(d.from_program(v), r))
                })
                .unzip()
        };
        other
            .reply
            .send(theirs)
            .map_err(|_| SecureError::Task("the dealer's peer vanished".into()))?;
        Ok(mine)
    }
}

/// The op on reconstructed values (the interpreter's exact semantics).
fn nonlinear(ring: Ring, op: &NonLinearOp, x: &[u64], n: usize) -> Vec<u64> {
    let relu = |v: u64| if ring.msb(v) { 0 } else { v };
    match op {
        NonLinearOp::Relu { .. } => x.iter().map(|&v| relu(v)).collect(),
        NonLinearOp::ReluTruncate { bits, .. } => x
            .iter()
            .map(|&v| relu(ring.shift_right_signed(v, *bits)))
            .collect(),
        NonLinearOp::Truncate { bits, .. } => x
            .iter()
            .map(|&v| ring.shift_right_signed(v, *bits))
            .collect(),
        NonLinearOp::Square => x.iter().map(|&v| ring.mul(v, v)).collect(),
        NonLinearOp::MaxPool { .. } => op
            .batch_windows(n)
            .unwrap_or_default()
            .iter()
            .map(|w| {
                w.iter()
                    .map(|&i| x[i])
                    .max_by_key(|&v| ring.to_signed(v))
                    .unwrap_or(0)
            })
            .collect(),
    }
}

/// The backend (one value per party, sharing the dealer).
pub struct DealerBackend {
    dealer: Arc<Dealer>,
}

impl DealerBackend {
    /// The backend of one party of a test.
    pub fn new(dealer: Arc<Dealer>) -> Self {
        DealerBackend { dealer }
    }
}

impl Backend for DealerBackend {
    fn name(&self) -> &'static str {
        "dealer"
    }

    fn summary(&self) -> &'static str {
        "INSECURE trusted-dealer reference (tests only), shares in Z_p"
    }

    fn serve(&self, program: &FixedProgram) -> SecureResult<(Arc<dyn PreparedBackend>, String)> {
        *self.dealer.program.lock().expect("lock") = Some(Arc::new(program.clone()));
        let prepared = Prepared {
            dealer: self.dealer.clone(),
            server: true,
        };
        Ok((Arc::new(prepared), format!("{{\"p\":{PRIME}}}")))
    }

    fn join(
        &self,
        _: &PublicProgram,
        announcement: &str,
    ) -> SecureResult<Arc<dyn PreparedBackend>> {
        let v: serde_json::Value = serde_json::from_str(announcement)
            .map_err(|e| SecureError::Malformed(format!("dealer parameters: {e}")))?;
        if v["p"].as_u64() != Some(PRIME) {
            return Err(SecureError::Mismatch(format!("dealer prime {}", v["p"])));
        }
        Ok(Arc::new(Prepared {
            dealer: self.dealer.clone(),
            server: false,
        }))
    }
}

struct Prepared {
    dealer: Arc<Dealer>,
    server: bool,
}

impl PreparedBackend for Prepared {
    fn domain(&self) -> Domain {
        self.dealer.domain
    }

    fn describe(&self) -> String {
        format!("dealer (Z_p, p = {PRIME})")
    }

    /// No HE, no flooded coefficients.
    fn stat_security(&self) -> Option<fusion_engine::statsec::SessionFlooding> {
        None
    }

    /// The dealer moves shares inside the test process: the only traffic
    /// is the output stage (the server's share, 8 bytes per value).
    fn estimate(&self, n: usize) -> SecureResult<fusion_engine::estimate::CostEstimate> {
        let p = self.dealer.program()?;
        let out: usize = p.output_shape().iter().product();
        Ok(fusion_engine::estimate::CostEstimate {
            backend: "dealer",
            n,
            steps: Vec::new(),
            output: fusion_engine::estimate::Traffic {
                client_to_server: 0,
                server_to_client: 8 * (n * out) as u64,
            },
            setup_note: "no setup traffic".into(),
        })
    }

    fn open<'a>(&'a self, link: SetupLink<'a>) -> ProtocolFuture<'a, Box<dyn PartySession>> {
        Box::pin(async move {
            let (tx, rx) = link.session.channel::<Vec<u64>, Vec<u64>>().await?;
            let party: Box<dyn PartySession> = Box::new(Party {
                dealer: self.dealer.clone(),
                server: self.server,
                calls: 0,
                tx,
                rx,
            });
            Ok(party)
        })
    }
}

struct Party {
    dealer: Arc<Dealer>,
    server: bool,
    calls: u64,
    tx: MsgSender<Vec<u64>>,
    rx: MsgReceiver<Vec<u64>>,
}

impl Party {
    fn next_id(&mut self) -> u64 {
        self.calls += 1;
        self.calls
    }
}

impl LinearLayers for Party {
    fn linear(&mut self, call: LinearCall, x: Vec<u64>) -> ProtocolFuture<'_, Vec<u64>> {
        let id = self.next_id();
        Box::pin(async move {
            let p = self.dealer.program()?;
            self.dealer
                .meet(id, self.server, x, |v| {
                    let s = &p.steps[call.step];
                    let mut shape = vec![call.n];
                    shape.extend_from_slice(p.value_shape(s.inputs[0]));
                    let t = RingTensor::new(shape, v.to_vec())?;
                    Ok(s.apply(p.ring(), &[&t])?.into_data())
                })
                .await
        })
    }
}

impl NonLinearLayers for Party {
    fn nonlinear<'a>(
        &'a mut self,
        op: &'a NonLinearOp,
        x: Vec<u64>,
        n: usize,
    ) -> ProtocolFuture<'a, Vec<u64>> {
        let id = self.next_id();
        Box::pin(async move {
            let ring = self.dealer.domain.program_ring();
            self.dealer
                .meet(id, self.server, x, |v| Ok(nonlinear(ring, op, v, n)))
                .await
        })
    }
}

impl Preprocessing for Party {}

impl OutputStage for Party {
    fn reveal(&mut self, y: Vec<u64>, _: usize) -> ProtocolFuture<'_, Option<Vec<u64>>> {
        Box::pin(async move {
            if self.server {
                self.tx.send(&y).await?;
                return Ok(None);
            }
            let theirs = self.rx.recv().await?;
            let d = self.dealer.domain;
            if theirs.len() != y.len() || theirs.iter().any(|&v| !d.contains(v)) {
                return Err(SecureError::Malformed("output share".into()));
            }
            Ok(Some(d.reconstruct(&y, &theirs)))
        })
    }
}

impl PartySession for Party {}
