//! [`SecureOracle`]: the model-extraction attacker's oracle as the real
//! service: every batch of attacker queries is one Fusion run (mix `B`
//! copies of each query with `T` labelled public samples, secure two-party
//! inference, verify) against a `fusion` server in this process over QUIC on
//! 127.0.0.1.
//!
//! What the attacker gets per batch is what `fusion query` would print on
//! accept: the logits of its queries (copy 0 of each, verified against the
//! other copies), with the server in `label` output mode only their
//! classes (the argmax computed on shares, `fusion_engine::output_mode`), in
//! `reverse-sigmoid` mode the perturbed probabilities computed on shares
//! (`fusion_engine::reverse_sigmoid`). A run the checks reject is an oracle error (an honest
//! server is never expected to be rejected at these thresholds; the
//! experiment stops rather than feed unverified outputs to the attack).
//!
//! Counting: `queries_used` counts attacker rows; `rows_evaluated` counts
//! every row the server evaluated, `R B + T` per batch. The public samples
//! are `T` labelled test samples of the model's data set (the caller picks
//! them; the attacker is assumed to hold them, as any Fusion client holds its
//! public samples).
//!
//! `server_labels` (the experimenter measuring the service's utility, not
//! counted as attacker queries) uses the fixed-point engine in the clear:
//! the secure engine reproduces it up to the one-bit truncation error per
//! truncation ([`fusion_attacks::oracle::truncation_bound`]), and running
//! thousands of evaluation images through 2PC would only measure that again.
//!
//! Inputs are preprocessed model inputs (the attack's space), encoded with
//! the program's fixed point exactly as the plaintext oracle encodes them.

use std::sync::Arc;

use fusion_attacks::oracle::{OracleAnswer, PlaintextOracle, ReverseSigmoidOutput, Truncation};
use fusion_attacks::{AttackError, Oracle};
use fusion_core::Threshold;
use fusion_core::engine::{Engine, FusionParams, Output, run_fusion};
use fusion_core::mix::Labeled;
use fusion_engine::behaviour::Honest;
use fusion_engine::{
    Backend, ClientConfig, OutputMode, SecureClient, SecureError, SecureServer, ServedModel,
    ServerConfig,
};
use fusion_net::{NetConfig, local_pair};
use fusion_nn::fixed::PublicProgram;
use fusion_nn::{Model, eval};
use rand::rngs::ChaCha20Rng;
use rand::{Rng, SeedableRng};

/// An engine over encoded inputs (program values): Fusion's mix-and-check
/// runs on them as on raw samples.
struct Encoded<'a>(&'a mut SecureClient);

impl Engine<Vec<u64>> for Encoded<'_> {
    type Error = SecureError;

    async fn infer(&mut self, batch: &[Vec<u64>]) -> Result<Vec<Output>, SecureError> {
        let x: Vec<u64> = batch.iter().flatten().copied().collect();
        let y = self.0.infer_encoded(x, batch.len()).await?;
        self.0
            .decode(&y)
            .into_iter()
            .map(|s| Output::new(s).map_err(|e| SecureError::Malformed(e.to_string())))
            .collect()
    }
}

/// A server task serving one session (see [`local_server`]).
pub(crate) type ServerTask = tokio::task::JoinHandle<Result<(), SecureError>>;

/// An honest server for `model` (default fixed point, `backend`, output
/// `mode`) on 127.0.0.1, serving one session as a task on the current
/// runtime; returns the client's end of the connection and the task.
pub(crate) async fn local_server(
    model: &Model,
    backend: Box<dyn Backend>,
    mode: OutputMode,
    mut rng: ChaCha20Rng,
) -> Result<(fusion_net::Session, ServerTask), SecureError> {
    let served = ServedModel::from_model(model, eval::default_fixed_point())?;
    let mut server = SecureServer::new(
        served,
        ServerConfig::default(),
        vec![backend],
        Arc::new(Honest),
    )?;
    server.set_output_mode(mode)?;
    let (s, c) = local_pair(&NetConfig::default()).await?;
    let task = tokio::spawn(async move { server.serve(s, &mut rng).await.map(|_| ()) });
    Ok((c, task))
}

/// The service as a Fusion client sees it (see the module docs).
pub struct SecureOracle {
    rt: tokio::runtime::Runtime,
    client: Option<SecureClient>,
    server: Option<ServerTask>,
    program: PublicProgram,
    public: Vec<Labeled<Vec<u64>>>,
    params: FusionParams,
    rng: ChaCha20Rng,
    clear: Box<dyn Oracle>,
    backend: String,
    mode: OutputMode,
    queries: u64,
    rows: u64,
}

impl std::fmt::Debug for SecureOracle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureOracle")
            .field("backend", &self.backend)
            .field("public", &self.public.len())
            .field("queries", &self.queries)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

fn oracle_err(e: impl std::fmt::Display) -> AttackError {
    AttackError::Oracle(e.to_string())
}

impl SecureOracle {
    /// Starts a server for `model` on 127.0.0.1 with `server_backend`,
    /// connects a client with `client_backend` (the same name), and keeps the
    /// session for every batch. `public` are preprocessed labelled samples;
    /// `threshold` is Fusion's accuracy threshold. All randomness (both
    /// parties, the mixing) comes from `rng`.
    pub fn start<G: Rng + ?Sized>(
        model: &Model,
        server_backend: Box<dyn Backend>,
        client_backend: Box<dyn Backend>,
        public: &[(Vec<f64>, usize)],
        threshold: Threshold,
        mode: OutputMode,
        rng: &mut G,
    ) -> Result<Self, AttackError> {
        let backend = server_backend.name().to_string();
        let rt = crate::common::runtime().map_err(oracle_err)?;
        let srng = ChaCha20Rng::seed_from_u64(rng.next_u64());
        let mut crng = ChaCha20Rng::seed_from_u64(rng.next_u64());
        let (client, server) = rt.block_on(async {
            let (c, server) = local_server(model, server_backend, mode, srng)
                .await
                .map_err(oracle_err)?;
            let client = SecureClient::connect(
                c,
                ClientConfig::default(),
                client_backend.as_ref(),
                &mut crng,
            )
            .await
            .map_err(oracle_err)?;
            Ok::<_, AttackError>((client, server))
        })?;
        let program = client.program().clone();
        let in_len: usize = program.input_shape.iter().product();
        let fp = program.fixed;
        let mut encoded = Vec::with_capacity(public.len());
        for (row, label) in public {
            if row.len() != in_len {
                return Err(AttackError::BadParameter(format!(
                    "public sample of width {}, the model takes {in_len}",
                    row.len()
                )));
            }
            encoded.push(Labeled::new(
                row.iter().map(|&v| fp.encode(v)).collect(),
                *label,
            ));
        }
        let classes = model.meta.classes;
        let plain = PlaintextOracle::new(model, Truncation::Floor)?;
        // The service's utility in reverse-sigmoid mode is the argmax of the
        // perturbed output the client sees.
        let clear: Box<dyn Oracle> = match mode.reverse_sigmoid().map_err(oracle_err)? {
            Some(rs) => Box::new(ReverseSigmoidOutput::fixed_point(plain, rs)?),
            None => Box::new(plain),
        };
        Ok(SecureOracle {
            rt,
            client: Some(client),
            server: Some(server),
            program,
            public: encoded,
            params: FusionParams::new(classes, threshold),
            rng: ChaCha20Rng::seed_from_u64(rng.next_u64()),
            clear,
            backend,
            mode,
            queries: 0,
            rows: 0,
        })
    }
}

impl Drop for SecureOracle {
    /// Ends the session with a goodbye and waits (bounded) for the server.
    fn drop(&mut self) {
        let (client, server) = (self.client.take(), self.server.take());
        let limit = std::time::Duration::from_secs(10);
        self.rt.block_on(async {
            if let Some(c) = client {
                let _ = tokio::time::timeout(limit, c.finish()).await;
            }
            if let Some(s) = server {
                let abort = s.abort_handle();
                if tokio::time::timeout(limit, s).await.is_err() {
                    abort.abort();
                }
            }
        });
    }
}

impl Oracle for SecureOracle {
    fn name(&self) -> String {
        match self.mode {
            OutputMode::Logits => format!("secure-{}", self.backend),
            _ => format!("secure-{}-{}", self.backend, self.mode),
        }
    }

    fn input_len(&self) -> usize {
        self.program.input_shape.iter().product()
    }

    fn classes(&self) -> usize {
        self.params.classes
    }

    fn returns_scores(&self) -> bool {
        self.mode != OutputMode::Label
    }

    fn input_resolution(&self) -> f64 {
        (2f64).powi(-(self.program.fixed.frac_bits as i32))
    }

    fn query(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer, AttackError> {
        if rows.is_empty() {
            return Ok(OracleAnswer::Logits(Vec::new()));
        }
        let len = self.input_len();
        if let Some(r) = rows.iter().find(|r| r.len() != len) {
            return Err(AttackError::BadParameter(format!(
                "query row of width {}, the model takes {len}",
                r.len()
            )));
        }
        let fp = self.program.fixed;
        let queries: Vec<Vec<u64>> = rows
            .iter()
            .map(|r| r.iter().map(|&v| fp.encode(v)).collect())
            .collect();
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| oracle_err("the session has ended"))?;
        let report = self
            .rt
            .block_on(run_fusion(
                &mut Encoded(client),
                &queries,
                &self.public,
                &self.params,
                &mut self.rng,
            ))
            .map_err(oracle_err)?;
        self.queries += rows.len() as u64;
        self.rows += report.parameters.total;
        match report.outputs() {
            Some(outputs) if self.mode == OutputMode::Logits => Ok(OracleAnswer::Logits(
                outputs.iter().map(|o| o.scores().to_vec()).collect(),
            )),
            Some(outputs) if self.mode.name() == "reverse-sigmoid" => Ok(
                OracleAnswer::Probabilities(outputs.iter().map(|o| o.scores().to_vec()).collect()),
            ),
            Some(outputs) => Ok(OracleAnswer::Labels(
                outputs.iter().map(Output::label).collect(),
            )),
            None => Err(oracle_err(format!(
                "Fusion rejected the service's answers:\n{report}"
            ))),
        }
    }

    fn server_labels(&mut self, rows: &[Vec<f64>]) -> Result<Vec<usize>, AttackError> {
        self.clear.server_labels(rows)
    }

    fn queries_used(&self) -> u64 {
        self.queries
    }

    fn rows_evaluated(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_attacks::oracle::{rows_of, truncation_bound};
    use fusion_nn::data::{self, Part};
    use std::path::PathBuf;

    fn data_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
    }

    /// The secure oracle (real Fusion runs over QUIC) and the plaintext
    /// fixed-point oracle answer the same rows with the same labels, except
    /// where the plaintext margin is within twice the truncation bound, and
    /// with logits within the bound; the counters separate attacker rows from
    /// evaluated rows.
    #[test]
    fn secure_and_plaintext_oracles_agree_within_the_truncation_bound() {
        let model = Model::load(&data_dir().join("models/bc-mlp")).expect("model");
        let test = data::load(&data_dir(), "breast-cancer", Part::Test).expect("data");
        let x = model
            .meta
            .preprocess
            .apply(&test.inputs)
            .expect("preprocess");
        let rows = rows_of(&x);
        let public: Vec<(Vec<f64>, usize)> = rows
            .iter()
            .take(100)
            .cloned()
            .zip(test.labels.iter().copied())
            .collect();
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        // Queries: held-out rows, the same rows scaled (off the data
        // manifold, as attack queries are), and one all-zero row.
        let mut queries: Vec<Vec<f64>> = rows[100..].to_vec();
        queries.extend(
            rows[..6]
                .iter()
                .map(|r| r.iter().map(|v| 2.5 * v).collect()),
        );
        queries.push(vec![0.0; rows[0].len()]);
        let backend = || crate::backend::build_one("cheetah", Default::default()).expect("backend");
        let mut secure = SecureOracle::start(
            &model,
            backend(),
            backend(),
            &public,
            "0.9".parse().expect("threshold"),
            OutputMode::Logits,
            &mut rng,
        )
        .expect("start");
        let mut clear = PlaintextOracle::new(&model, Truncation::Floor).expect("plaintext");
        let bound = truncation_bound(clear.program()).expect("bound");
        let got = secure.query(&queries).expect("secure answers");
        let want = clear.query(&queries).expect("plaintext answers");
        let (got, want) = (
            got.logits().expect("logits"),
            want.logits().expect("logits"),
        );
        assert_eq!(got.len(), queries.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let worst = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst <= bound + 1e-9, "row {i}: {worst} > bound {bound}");
            let (lg, lw) = (
                fusion_attacks::dense::argmax(g),
                fusion_attacks::dense::argmax(w),
            );
            let mut sorted = w.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let margin = sorted[0] - sorted.get(1).copied().unwrap_or(f64::NEG_INFINITY);
            assert!(
                lg == lw || margin <= 2.0 * bound,
                "row {i}: {lg} vs {lw}, margin {margin}"
            );
        }
        assert_eq!(secure.queries_used(), queries.len() as u64);
        assert!(
            secure.rows_evaluated() > 2 * queries.len() as u64 + 100,
            "{} rows for {} queries",
            secure.rows_evaluated(),
            queries.len()
        );
    }
}
