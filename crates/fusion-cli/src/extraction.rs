//! `fusion experiment extraction`: model-extraction attacks against the
//! service, as a curious client would run them (crate `fusion-attacks`).
//!
//! * `--attack jbda` (A1, Papernot et al. 2017): seeds are the first `--seeds`
//!   test samples; the substitute's accuracy (`stolen_accuracy`) and the
//!   service's (`server_accuracy`) are measured on the **remaining** test
//!   samples; nothing from the training split is used.
//! * `--attack carlini` (A2, Carlini et al. 2020): one-hidden-layer fully
//!   connected ReLU networks only; needs scores. Accuracies are over the whole
//!   test split (the attack uses no data); `max_weight_error` is the largest
//!   per-layer `max|w_hat - w| / max|w|` after matching neurons.
//!
//! Oracles: `plaintext` (the fixed-point engine the secure engine reproduces,
//! with its floor-or-one-less truncation modelled by a seeded RNG) and `f64`
//! (the same fully connected network in f64; A2's reference), and `secure`:
//! every batch of attacker queries is one Fusion run (copies, `--public-count`
//! labelled public samples, secure inference with `--backend`, verification)
//! against a server in this process over QUIC on 127.0.0.1
//! ([`crate::secure_oracle::SecureOracle`]); its public samples are the first
//! `--public-count` test samples (for `jbda` these lie inside the seed set).
//! Defences: `none`; `label`: with `--oracle secure` the server runs in
//! `label` output mode (the argmax computed on shares, only the class
//! revealed), with the other oracles a wrapper returning the argmax only;
//! `reverse-sigmoid` (`--beta`, `--gamma`): with `--oracle secure` the
//! server's `reverse-sigmoid` output mode (computed on shares, only the
//! perturbed probabilities revealed), with `plaintext` the same fixed-point
//! pipeline in the clear, with `f64` the defence in f64. A1 trains on the
//! perturbed probabilities; A2 runs on them as its scores.
//!
//! Writes one JSON object per line and budget to `--json`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use fusion_attacks::carlini::{self, CarliniConfig};
use fusion_attacks::dense::DenseNet;
use fusion_attacks::jbda::{self, JbdaConfig};
use fusion_attacks::oracle::{
    F64Oracle, LabelOnly, Perturbation, PlaintextOracle, ReverseSigmoidOutput, Truncation, rows_of,
};
use fusion_attacks::{AttackError, Oracle};
use fusion_nn::Model;
use rand::Rng;
use rand::rngs::ChaCha20Rng;
use serde::Serialize;

use crate::common::{CliError, failure, os_rng, usage};
use crate::secure_oracle::SecureOracle;

/// The attack.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// A1: Jacobian-based dataset augmentation (substitute model).
    Jbda,
    /// A2: cryptanalytic extraction of a one-hidden-layer ReLU network.
    Carlini,
}

/// The service's defence (its output mode).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defence {
    /// Logits are returned.
    None,
    /// Only the argmax is returned (with `--oracle secure`: the server's label
    /// output mode, computed on shares).
    Label,
    /// Lee et al.'s reverse sigmoid of the probabilities (`--beta`,
    /// `--gamma`): with `--oracle secure` the server's `reverse-sigmoid`
    /// output mode, computed on shares.
    ReverseSigmoid,
}

/// The oracle the attack queries.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OracleKind {
    /// Fixed-point plaintext engine (floor-or-one-less truncations).
    Plaintext,
    /// The same fully connected network in f64.
    F64,
    /// Fusion runs (copies, public samples, checks) against a server in this
    /// process over QUIC on 127.0.0.1.
    Secure,
}

/// Arguments of `fusion experiment extraction`.
#[derive(clap::Args, Debug)]
pub struct ExtractionArgs {
    /// The attack.
    #[arg(long, value_enum)]
    attack: Attack,
    /// The service's output defence.
    #[arg(long, value_enum, default_value = "none")]
    defence: Defence,
    /// Model directory (default: data/models/mnist-cnn for jbda,
    /// data/models/bc-mlp for carlini).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Query budgets (attacker rows), comma separated; one run and JSON line each.
    #[arg(long, value_name = "N,...", value_delimiter = ',', required = true)]
    budget: Vec<u64>,
    /// Seed of the attack and of the oracle's truncation model (default: OS randomness).
    #[arg(long)]
    seed: Option<u64>,
    /// The oracle.
    #[arg(long, value_enum, default_value = "plaintext")]
    oracle: OracleKind,
    /// A1: number of seed samples (the first K test samples).
    #[arg(long, value_name = "K", default_value_t = 150)]
    seeds: usize,
    /// A1: training epochs per augmentation round.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Output file (JSON lines).
    #[arg(long, value_name = "OUT")]
    json: PathBuf,
    /// `--oracle secure`: the two-party backend (see `fusion backends`).
    #[arg(long, value_name = "NAME", default_value = "cheetah")]
    backend: String,
    /// `--oracle secure`: labelled public samples per Fusion run (the first T
    /// test samples).
    #[arg(long, value_name = "T", default_value_t = 100)]
    public_count: usize,
    /// `--oracle secure`: Fusion's accuracy threshold.
    #[arg(long, value_name = "DELTA", default_value = crate::query::DEFAULT_THRESHOLD)]
    threshold: fusion_core::Threshold,
    /// `--defence reverse-sigmoid`: beta, in [0, 1] (thousandths).
    #[arg(long, default_value_t = fusion_nn::reverse_sigmoid::DEFAULT_BETA)]
    beta: f64,
    /// `--defence reverse-sigmoid`: gamma, in (0, 1] (thousandths).
    #[arg(long, default_value_t = fusion_nn::reverse_sigmoid::DEFAULT_GAMMA)]
    gamma: f64,
}

/// One JSON line.
#[derive(Serialize, Debug)]
struct Row {
    attack: &'static str,
    defence: &'static str,
    oracle: String,
    model: String,
    budget: u64,
    queries_used: u64,
    rows_evaluated: u64,
    stolen_accuracy: f64,
    server_accuracy: f64,
    /// Fraction of evaluation samples where the stolen model and the service agree.
    agreement: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_weight_error: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_weight_errors: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    neurons_found: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    critical_points: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rounds: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seeds: Option<usize>,
    seed: Option<u64>,
    seconds: f64,
}

fn attack_err(e: AttackError) -> CliError {
    match e {
        AttackError::BadParameter(_) | AttackError::Unsupported(_) => usage(e),
        AttackError::Io(_) | AttackError::Oracle(_) | AttackError::Model(_) => failure(e),
    }
}

/// What `--oracle secure` needs besides the model.
struct SecureSetup<'a> {
    backend: &'a str,
    public: &'a [(Vec<f64>, usize)],
    threshold: fusion_core::Threshold,
}

fn make_oracle(
    kind: OracleKind,
    defence: Defence,
    mode: fusion_engine::OutputMode,
    model: &Model,
    secure: &SecureSetup<'_>,
    rng: &mut ChaCha20Rng,
) -> Result<Box<dyn Oracle>, CliError> {
    let rs = mode.reverse_sigmoid().map_err(usage)?;
    let base: Box<dyn Oracle> = match kind {
        OracleKind::Plaintext => {
            let plain = PlaintextOracle::new(
                model,
                Truncation::FloorOrOneLess(Box::new(fusion_core::mix::seeded_rng_for_experiments(
                    rng.next_u64(),
                ))),
            )
            .map_err(attack_err)?;
            if let Some(rs) = rs {
                // The same fixed-point pipeline the secure stage computes.
                return Ok(Box::new(
                    ReverseSigmoidOutput::fixed_point(plain, rs).map_err(attack_err)?,
                ));
            }
            Box::new(plain)
        }
        OracleKind::F64 => Box::new(F64Oracle::new(model).map_err(attack_err)?),
        OracleKind::Secure => {
            let cheetah = crate::backend::CheetahOptions::default();
            let server = crate::backend::build_one(secure.backend, cheetah.clone())?;
            let client = crate::backend::build_one(secure.backend, cheetah.clone())?;
            // The defences are the server's output mode on shares here, not
            // wrappers.
            return Ok(Box::new(
                SecureOracle::start(
                    model,
                    server,
                    client,
                    secure.public,
                    secure.threshold,
                    mode,
                    rng,
                )
                .map_err(attack_err)?,
            ));
        }
    };
    Ok(match (defence, rs) {
        (Defence::Label, _) => Box::new(LabelOnly(base)),
        (Defence::ReverseSigmoid, Some(rs)) => Box::new(
            ReverseSigmoidOutput::new(
                base,
                Perturbation::F64(rs, fusion_nn::eval::default_fixed_point().frac_bits),
            )
            .map_err(attack_err)?,
        ),
        _ => base,
    })
}

fn share(a: &[usize], b: &[usize]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// Runs `fusion experiment extraction`.
pub fn extraction(a: ExtractionArgs) -> Result<(), CliError> {
    let mode = match a.defence {
        Defence::None => fusion_engine::OutputMode::Logits,
        Defence::Label => fusion_engine::OutputMode::Label,
        Defence::ReverseSigmoid => {
            crate::common::parse_output_mode(&format!("reverse-sigmoid:{},{}", a.beta, a.gamma))
                .map_err(|e| usage(format!("--beta/--gamma: {e}")))?
        }
    };
    if a.budget.contains(&0) {
        return Err(usage("--budget: every budget must be positive"));
    }
    if a.defence == Defence::Label && a.attack == Attack::Carlini {
        return Err(usage(
            "--attack carlini needs scores: with --defence label the service returns labels only",
        ));
    }
    let default = match a.attack {
        Attack::Jbda => "mnist-cnn",
        Attack::Carlini => "bc-mlp",
    };
    let dir = crate::experiment::model_dir(&a.model, default)?;
    let model = Model::load(&dir).map_err(|e| usage(format!("{}: {e}", dir.display())))?;
    let test = crate::experiment::held_out(&model)?;
    let x = model.meta.preprocess.apply(&test.inputs).map_err(failure)?;
    let model_name = model.meta.name.clone();
    let truth = match a.attack {
        Attack::Carlini => {
            let t = DenseNet::from_model(&model).map_err(attack_err)?;
            if t.hidden().len() != 1 {
                return Err(usage(format!(
                    "--attack carlini supports one hidden layer; `{model_name}` has {} ({:?})",
                    t.hidden().len(),
                    t.hidden()
                )));
            }
            Some(t)
        }
        Attack::Jbda => None,
    };
    if a.attack == Attack::Jbda && (a.seeds == 0 || a.seeds >= test.len()) {
        return Err(usage(format!(
            "--seeds must be between 1 and {} (the test split has {} samples; the rest measure accuracy)",
            test.len().saturating_sub(1),
            test.len()
        )));
    }
    let public: Vec<(Vec<f64>, usize)> = if a.oracle == OracleKind::Secure {
        if a.public_count == 0 || a.public_count > test.len() {
            return Err(usage(format!(
                "--public-count must be between 1 and {} (the test split)",
                test.len()
            )));
        }
        rows_of(&x.slice_batch(0..a.public_count))
            .into_iter()
            .zip(test.labels.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    let secure = SecureSetup {
        backend: &a.backend,
        public: &public,
        threshold: a.threshold,
    };
    let mut out = std::fs::File::create(&a.json)
        .map_err(|e| failure(format!("{}: {e}", a.json.display())))?;
    for &budget in &a.budget {
        let mut rng = match a.seed {
            Some(s) => fusion_core::mix::seeded_rng_for_experiments(s),
            None => os_rng()?,
        };
        let mut oracle = make_oracle(a.oracle, a.defence, mode, &model, &secure, &mut rng)?;
        let start = Instant::now();
        let row = match a.attack {
            Attack::Jbda => {
                let seeds = x.slice_batch(0..a.seeds);
                let eval = x.slice_batch(a.seeds..x.batch());
                let labels = &test.labels[a.seeds..];
                let mut cfg = JbdaConfig::new(budget);
                cfg.epochs = a.epochs;
                let sub = jbda::run(&mut *oracle, &seeds, &cfg, &mut rng).map_err(attack_err)?;
                let server = oracle.server_labels(&rows_of(&eval)).map_err(attack_err)?;
                let stolen_pred = fusion_nn::float::forward(&sub.model, &eval)
                    .map_err(failure)?
                    .argmax_rows();
                Row {
                    attack: "jbda",
                    defence: defence_name(a.defence),
                    oracle: oracle.name(),
                    model: model_name.clone(),
                    budget,
                    queries_used: oracle.queries_used(),
                    rows_evaluated: oracle.rows_evaluated(),
                    stolen_accuracy: share(&stolen_pred, labels),
                    server_accuracy: share(&server, labels),
                    agreement: share(&stolen_pred, &server),
                    max_weight_error: None,
                    layer_weight_errors: None,
                    neurons_found: None,
                    critical_points: None,
                    rounds: Some(sub.rounds),
                    seeds: Some(a.seeds),
                    seed: a.seed,
                    seconds: start.elapsed().as_secs_f64(),
                }
            }
            Attack::Carlini => {
                let truth = truth.as_ref().ok_or_else(|| failure("no ground truth"))?;
                let cfg = CarliniConfig::new(budget);
                let ex = carlini::extract(&mut *oracle, truth.hidden()[0], &cfg, &mut rng)
                    .map_err(attack_err)?;
                let errors = carlini::weight_errors(&ex.network, truth).map_err(attack_err)?;
                let rows = rows_of(&x);
                let server = oracle.server_labels(&rows).map_err(attack_err)?;
                let stolen: Vec<usize> = rows
                    .iter()
                    .map(|r| fusion_attacks::dense::argmax(&ex.network.forward(r)))
                    .collect();
                Row {
                    attack: "carlini",
                    defence: defence_name(a.defence),
                    oracle: oracle.name(),
                    model: model_name.clone(),
                    budget,
                    queries_used: oracle.queries_used(),
                    rows_evaluated: oracle.rows_evaluated(),
                    stolen_accuracy: share(&stolen, &test.labels),
                    server_accuracy: share(&server, &test.labels),
                    agreement: share(&stolen, &server),
                    max_weight_error: Some(errors.iter().copied().fold(0.0, f64::max)),
                    layer_weight_errors: Some(errors),
                    neurons_found: Some(ex.neurons_found),
                    critical_points: Some(ex.critical_points),
                    rounds: None,
                    seeds: None,
                    seed: a.seed,
                    seconds: start.elapsed().as_secs_f64(),
                }
            }
        };
        let line = serde_json::to_string(&row).map_err(failure)?;
        println!("{line}");
        writeln!(out, "{line}").map_err(|e| failure(format!("{}: {e}", a.json.display())))?;
    }
    eprintln!("wrote {}", a.json.display());
    Ok(())
}

fn defence_name(d: Defence) -> &'static str {
    match d {
        Defence::None => "none",
        Defence::Label => "label",
        Defence::ReverseSigmoid => "reverse-sigmoid",
    }
}
