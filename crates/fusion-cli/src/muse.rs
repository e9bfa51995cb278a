//! `fusion attack muse`: a **malicious client** extracts the server's model
//! by shifting its own shares (the share-shifting attack of MUSE, Lehmkuhl,
//! Mishra, Srinivasan and Popa, USENIX Security 2021, section 3), against a
//! real `fusion serve` (`--server`) or one this command starts on 127.0.0.1
//! (`--local`).
//!
//! **What it does.** The client runs the ordinary secure protocol, except
//! that a [`ClientDeviation`] hook adds chosen offsets to the client's share
//! of two values, row by row, inside one batch:
//!
//! 1. *Last layer* `y = W2 h + b2`: adding `D e_j` to the client's share of `h`
//!    adds `D W2[:, j]` to the output, so `W2[:, j] = (y(D e_j) - y(0)) / D`.
//! 2. *All hidden units off*: adding `-C` to every pre-activation share makes
//!    every ReLU output 0, so the output is `b2`.
//! 3. *One hidden unit isolated*: adding `+C` to unit `j`'s pre-activation and
//!    `-C` to every other unit makes ReLU the identity on unit `j` and 0
//!    elsewhere, so `y = W2[:, j] (z_j + C) + b2` and `z_j = W1[j] x + b1[j]` is
//!    read off the class where `|W2[c, j]|` is largest. `x = 0` gives `b1[j]`;
//!    `x = s e_i` gives `W1[j, i] = (z_j(s e_i) - b1[j]) / s`.
//!
//! The server evaluates `1 + H + 1 + H (1 + D)` rows for a `D -> H -> K`
//! network (514 for bc-mlp) and cannot tell: shares are uniformly random to
//! it whatever the client adds. Label-only output would not stop step 1-3 by
//! itself only if the client could still see scores; with label output the
//! attack needs the label-only variants of MUSE and SEEK, which are not
//! implemented here.
//!
//! **Scope.** One-hidden-layer ReLU networks (`Dense -> [Truncate] -> ReLU ->
//! Dense`), on every backend whose shares live in the program's ring or a
//! field the hook can add to (the hook works in the backend's domain). Deeper
//! networks and convolutions (mnist-cnn) are not implemented: MUSE extracts
//! them layer by layer the same way, which is future work here.
//!
//! **Scoring.** The experiment reads the model file only to score the result:
//! `max_relative_error` = max over layers of `max|w_hat - w| / max|w|` (same
//! neuron order; no matching needed) for weights, and separately for biases.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use fusion_attacks::dense::{DenseLayer, DenseNet};
use fusion_engine::behaviour::ClientDeviation;
use fusion_engine::domain::Domain;
use fusion_engine::schedule::{ActionKind, NonLinearOp};
use fusion_engine::{ClientConfig, SecureClient};
use fusion_net::{NetConfig, ServerPin, connect_as};
use fusion_nn::Model;
use fusion_nn::fixed::{PublicOp, PublicProgram};
use serde::Serialize;

use crate::common::{CliError, failure, init_rayon, os_rng, runtime, usage};

/// Arguments of `fusion attack`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand, Debug)]
enum Which {
    /// MUSE share shifting: a malicious client recovers all weights and
    /// biases of a one-hidden-layer ReLU network (see docs/SECURITY.md).
    Muse(MuseArgs),
}

/// Arguments of `fusion attack muse`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["server", "local"])))]
pub struct MuseArgs {
    /// Attack a running `fusion serve` at this address.
    #[arg(long, value_name = "ADDR", requires = "server_cert")]
    server: Option<std::net::SocketAddr>,
    /// The server's certificate (PEM) to pin.
    #[arg(long, value_name = "FILE")]
    server_cert: Option<PathBuf>,
    /// Start a server for `--model` in this process on 127.0.0.1 and attack it.
    #[arg(long)]
    local: bool,
    /// The model (for `--local`: the one served; always: the one the
    /// result is scored against; the attack itself never reads it).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The backend to run (see `fusion backends`).
    #[arg(long, value_name = "NAME", default_value = "cheetah")]
    backend: String,
    /// Pre-activation shift C (real units): must exceed every |pre-activation|
    /// on the probe inputs, and keep C 2^scale inside the ReLU's input range.
    #[arg(long, value_name = "C", default_value_t = 256.0)]
    shift: f64,
    /// Probe input magnitude s (x = s e_i).
    #[arg(long, value_name = "S", default_value_t = 4.0)]
    probe: f64,
    /// Output file (JSON).
    #[arg(long, value_name = "OUT")]
    json: PathBuf,
}

/// Runs `fusion attack`.
pub fn run(args: Args) -> ExitCode {
    crate::common::init_logging("warn");
    let Which::Muse(a) = args.which;
    match muse(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("attack muse"),
    }
}

/// Where the attack shifts, read from the public program and schedule.
#[derive(Debug, Clone, Copy)]
struct Targets {
    /// Step of the action consuming the pre-activation (ReLU or fused ReLU-truncation).
    pre_step: usize,
    /// Scale (fractional bits) of the pre-activation.
    pre_scale: u32,
    /// Step of the last dense layer.
    last_step: usize,
    /// Scale of its input (the hidden activation).
    hidden_scale: u32,
    /// Input width, hidden width, classes.
    dims: (usize, usize, usize),
}

fn scale_of(program: &PublicProgram, value: usize) -> u32 {
    if value == 0 {
        program.fixed.frac_bits
    } else {
        program.steps[value - 1].scale
    }
}

fn targets(client: &SecureClient) -> Result<Targets, CliError> {
    let program = client.program();
    let schedule = client.schedule();
    let refuse = |why: &str| {
        usage(format!(
            "this MUSE attack supports one-hidden-layer ReLU networks (Dense -> ReLU -> Dense); the \
             served program {why}"
        ))
    };
    let dense: Vec<(usize, usize, usize)> = program
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s.op {
            PublicOp::Dense {
                in_features,
                out_features,
            } => Some((i, in_features, out_features)),
            _ => None,
        })
        .collect();
    if dense.len() != 2
        || program
            .steps
            .iter()
            .any(|s| matches!(s.op, PublicOp::Conv2d { .. }))
    {
        return Err(refuse(
            "does not have exactly two dense layers and no convolution",
        ));
    }
    let relus: Vec<_> = schedule
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a.kind,
                ActionKind::NonLinear(NonLinearOp::Relu | NonLinearOp::ReluTruncate { .. })
            )
        })
        .collect();
    let [relu] = relus.as_slice() else {
        return Err(refuse("does not have exactly one ReLU"));
    };
    let last = schedule
        .actions
        .iter()
        .rev()
        .find(|a| matches!(a.kind, ActionKind::Linear))
        .ok_or_else(|| refuse("has no linear step"))?;
    if last.step != dense[1].0 {
        return Err(refuse("does not end with its second dense layer"));
    }
    Ok(Targets {
        pre_step: relu.step,
        pre_scale: scale_of(program, relu.inputs[0]),
        last_step: last.step,
        hidden_scale: scale_of(program, last.inputs[0]),
        dims: (dense[0].1, dense[0].2, dense[1].2),
    })
}

/// One probe row: its input and how the client shifts its shares.
#[derive(Debug, Clone)]
enum Shift {
    None,
    /// Add `amount` to hidden unit `j` (last layer's input).
    Hidden(usize, f64),
    /// Add `-C` to every pre-activation.
    AllOff,
    /// Add `+C` to unit `j`'s pre-activation and `-C` to the others.
    Isolate(usize),
}

/// The deviation hook: per batch row, the shift to apply.
#[derive(Debug)]
struct Shifter {
    rows: Vec<Shift>,
    t: Targets,
    c: f64,
}

impl Shifter {
    fn add(&self, domain: &Domain, v: &mut u64, real: f64, scale: u32) {
        let units = (real * 2f64.powi(scale as i32)).round() as i64;
        let ring = domain.program_ring();
        let as_ring = ring.from_signed(units);
        *v = domain.add(*v, domain.from_program(as_ring));
    }
}

impl ClientDeviation for Shifter {
    fn before_step(&self, step: usize, x: &mut [u64], start: usize, m: usize, domain: &Domain) {
        let h = self.t.dims.1;
        if x.len() != m * h {
            return;
        }
        for r in 0..m {
            let Some(shift) = self.rows.get(start + r) else {
                continue;
            };
            let row = &mut x[r * h..(r + 1) * h];
            match (shift, step) {
                (Shift::Hidden(j, amount), s) if s == self.t.last_step => {
                    self.add(domain, &mut row[*j], *amount, self.t.hidden_scale);
                }
                (Shift::AllOff, s) if s == self.t.pre_step => {
                    for v in row.iter_mut() {
                        self.add(domain, v, -self.c, self.t.pre_scale);
                    }
                }
                (Shift::Isolate(j), s) if s == self.t.pre_step => {
                    for (k, v) in row.iter_mut().enumerate() {
                        let c = if k == *j { self.c } else { -self.c };
                        self.add(domain, v, c, self.t.pre_scale);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The JSON record.
#[derive(Debug, Serialize)]
struct MuseReport {
    attack: &'static str,
    model: String,
    backend: String,
    /// Input rows the server evaluated.
    queries: u64,
    /// Weights and biases recovered.
    parameters: u64,
    /// max over layers of max|w_hat - w| / max|w| (weights).
    max_relative_error: f64,
    /// Per layer (weights).
    layer_weight_errors: Vec<f64>,
    /// Per layer, biases: max|b_hat - b| / max|b|.
    layer_bias_errors: Vec<f64>,
    /// Agreement of the recovered network's labels with the model's on the test split.
    agreement: Option<f64>,
    shift: f64,
    probe: f64,
    seconds: f64,
    bytes: u64,
}

fn muse(a: MuseArgs) -> Result<(), CliError> {
    if !(a.shift > 0.0 && a.shift.is_finite() && a.probe > 0.0 && a.probe.is_finite()) {
        return Err(usage("--shift and --probe must be positive"));
    }
    let model = Model::load(&a.model).map_err(|e| usage(format!("{}: {e}", a.model.display())))?;
    let truth = DenseNet::from_model(&model).map_err(usage)?;
    init_rayon();
    let rt = runtime()?;
    let mut rng = os_rng()?;
    let backend = crate::backend::build_one(&a.backend, Default::default())?;
    let started = Instant::now();
    let (recovered, queries, bytes) = rt.block_on(async {
        let net = NetConfig::default();
        let (client_session, server_task) = if a.local {
            let backend = crate::backend::build_one(&a.backend, Default::default())?;
            let (c, task) = crate::secure_oracle::local_server(
                &model,
                backend,
                fusion_engine::OutputMode::Logits,
                os_rng()?,
            )
            .await
            .map_err(failure)?;
            (c, Some(task))
        } else {
            let addr = a.server.ok_or_else(|| usage("give --server or --local"))?;
            let cert = a
                .server_cert
                .as_ref()
                .ok_or_else(|| usage("--server needs --server-cert"))?;
            let pin = ServerPin::from_cert_file(cert).map_err(usage)?;
            (
                connect_as(addr, &pin, None, &net).await.map_err(failure)?,
                None,
            )
        };
        let mut client = SecureClient::connect(
            client_session,
            ClientConfig::default(),
            backend.as_ref(),
            &mut rng,
        )
        .await
        .map_err(failure)?;
        let result = attack(&mut client, a.shift, a.probe).await;
        let meter = client.meter();
        if result.is_ok() {
            let _ = client.finish().await;
        } else {
            // The session failed mid-protocol: close at once, so the server
            // sees the connection end rather than waiting for its timeout.
            client.close();
        }
        if let Some(t) = server_task {
            let abort = t.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(30), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let (net, queries) = result?;
        Ok::<_, CliError>((net, queries, meter.report().total.bytes_total()))
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let rel = |a: &[f64], b: &[f64]| {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            / scale.max(f64::MIN_POSITIVE)
    };
    let mut layer_weight_errors = Vec::new();
    let mut layer_bias_errors = Vec::new();
    for (r, t) in recovered.layers.iter().zip(&truth.layers) {
        let rw: Vec<f64> = r.weight.iter().flatten().copied().collect();
        let tw: Vec<f64> = t.weight.iter().flatten().copied().collect();
        layer_weight_errors.push(rel(&rw, &tw));
        layer_bias_errors.push(rel(&r.bias, &t.bias));
    }
    let agreement = crate::experiment::held_out(&model).ok().and_then(|test| {
        let x = model.meta.preprocess.apply(&test.inputs).ok()?;
        let rows = fusion_attacks::oracle::rows_of(&x);
        let same = rows
            .iter()
            .filter(|r| {
                fusion_attacks::dense::argmax(&recovered.forward(r))
                    == fusion_attacks::dense::argmax(&truth.forward(r))
            })
            .count();
        Some(same as f64 / rows.len().max(1) as f64)
    });
    let parameters = recovered
        .layers
        .iter()
        .map(|l| (l.weight.iter().map(Vec::len).sum::<usize>() + l.bias.len()) as u64)
        .sum();
    let report = MuseReport {
        attack: "muse-share-shifting",
        model: model.meta.name.clone(),
        backend: a.backend.clone(),
        queries,
        parameters,
        max_relative_error: layer_weight_errors.iter().copied().fold(0.0, f64::max),
        layer_weight_errors,
        layer_bias_errors,
        agreement,
        shift: a.shift,
        probe: a.probe,
        seconds,
        bytes,
    };
    let text = serde_json::to_string_pretty(&report).map_err(failure)?;
    println!("{text}");
    std::fs::write(&a.json, text).map_err(|e| failure(format!("{}: {e}", a.json.display())))?;
    eprintln!("fusion attack muse: wrote {}", a.json.display());
    Ok(())
}

/// Runs the probes in one batch and solves for the weights.
async fn attack(client: &mut SecureClient, c: f64, s: f64) -> Result<(DenseNet, u64), CliError> {
    if client.output_mode() != fusion_engine::OutputMode::Logits {
        return Err(usage(format!(
            "the server reveals only labels (output mode `{}`): this attack reads scores; the \
             label-only variant (SEEK) is not implemented",
            client.output_mode()
        )));
    }
    let t = targets(client)?;
    let (d, h, k) = t.dims;
    // Rows: 0 base; 1..=h hidden shifts; h+1 all off; then per unit j:
    // isolate at x = 0, then at x = s e_i for every i.
    let big = 256.0;
    let mut inputs: Vec<Vec<f64>> = Vec::new();
    let mut rows: Vec<Shift> = Vec::new();
    inputs.push(vec![0.0; d]);
    rows.push(Shift::None);
    for j in 0..h {
        inputs.push(vec![0.0; d]);
        rows.push(Shift::Hidden(j, big));
    }
    inputs.push(vec![0.0; d]);
    rows.push(Shift::AllOff);
    for j in 0..h {
        inputs.push(vec![0.0; d]);
        rows.push(Shift::Isolate(j));
        for i in 0..d {
            let mut x = vec![0.0; d];
            x[i] = s;
            inputs.push(x);
            rows.push(Shift::Isolate(j));
        }
    }
    let n = inputs.len();
    client.set_deviation(Arc::new(Shifter { rows, t, c }));
    let fp = client.program().fixed;
    let x: Vec<u64> = inputs.iter().flatten().map(|&v| fp.encode(v)).collect();
    let y = client.infer_encoded(x, n).await.map_err(failure)?;
    let y = client.decode(&y);
    // Last layer.
    let base = &y[0];
    let mut w2 = vec![vec![0.0; h]; k];
    for j in 0..h {
        for c in 0..k {
            w2[c][j] = (y[1 + j][c] - base[c]) / big;
        }
    }
    let b2 = y[1 + h].clone();
    // First layer.
    let mut w1 = vec![vec![0.0; d]; h];
    let mut b1 = vec![0.0; h];
    let first = 2 + h;
    for j in 0..h {
        let cls = (0..k)
            .max_by(|&a, &b| w2[a][j].abs().total_cmp(&w2[b][j].abs()))
            .unwrap_or(0);
        if w2[cls][j] == 0.0 {
            // A dead output column: unit j never reaches the output, so
            // nothing about it is observable (its weights do not matter).
            continue;
        }
        let z = |row: &[f64]| (row[cls] - b2[cls]) / w2[cls][j] - c;
        let at = first + j * (d + 1);
        b1[j] = z(&y[at]);
        for i in 0..d {
            w1[j][i] = (z(&y[at + 1 + i]) - b1[j]) / s;
        }
    }
    let net = DenseNet {
        layers: vec![
            DenseLayer {
                weight: w1,
                bias: b1,
            },
            DenseLayer {
                weight: w2,
                bias: b2,
            },
        ],
    };
    Ok((net, n as u64))
}
