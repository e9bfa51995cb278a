//! `fusion attack muse`: a **malicious client** extracts the server's model
//! by shifting its own shares (the share-shifting attack of MUSE, Lehmkuhl,
//! Mishra, Srinivasan and Popa, USENIX Security 2021, section 3), against a
//! real `fusion serve` (`--server`) or one this command starts on 127.0.0.1
//! (`--local`).
//!
//! **What it does.** The client runs the ordinary secure protocol, except
//! that a [`ClientDeviation`](fusion_engine::behaviour::ClientDeviation) hook ([`shifts::Shifter`]) adds chosen offsets
//! to the client's share of values inside the network, row by row. Three
//! settings of a ReLU's input do all the work: `-c` on every unit makes
//! every output 0 ("off"); `+c` on chosen units and `-c` on the rest passes
//! `z + c` on those units only ("isolate"); `+C` on every unit, taken off
//! again at the next step the client sees, makes the ReLU the identity. The
//! layers are recovered last to first:
//!
//! 1. *Last layer* `y = W h + b`: every ReLU off makes its input 0; adding
//!    `D e_j` to the client's share of it gives `W[:, j] = (y - b) / D`.
//! 2. *Each hidden layer `l`*, once the layers after it are known: the
//!    blocks before it are off, so its input is exactly what the client adds
//!    (an impulse `s e_i`; for the first layer the real input `s e_i`); its
//!    ReLU isolates a group `G` of units; the later ReLUs are the identity.
//!    Then `y - y0 = M[:, G] (z_G + c)`, where `M` is the known linear map
//!    from this ReLU's output to the logits ([`chain::Net::downstream`] on the
//!    recovered layers) and `y0` the same row with this ReLU off. Least
//!    squares gives `z_G`, the pre-activations: the biases at zero input,
//!    and for a dense layer `W[G, i] = (z_G(s e_i) - b_G) / s`. A stride-1
//!    convolution needs one impulse per input channel: output unit
//!    `(o, p - u, q - v)` of an impulse at `(ch, p, q)` is
//!    `b[o] + s W[o, ch, u, v]`. Groups hold at most `--group` units (and no
//!    more than there are classes) whose columns of `M` are far enough from
//!    each other's span (units pooled into the same value never share a
//!    group).
//!
//! The server evaluates every probe row as an ordinary sample and cannot
//! tell: shares are uniformly random to it whatever the client adds.
//!
//! **Label-only servers** (output mode `label`): the client also shifts its
//! share of the logits before the secure argmax, and reads every logit
//! difference `z_c - z_0` by binary search, one comparison per row
//! ([`labels`]). The method above then runs unchanged on the differences;
//! the last layer comes out as `W_c - W_0` (labels fix nothing more).
//!
//! **Scope.** Chains of dense or stride-1 convolution layers, each followed
//! by ReLU and optionally a non-overlapping average pool, ending in a linear
//! layer (bc-mlp and mnist-cnn among the shipped models), on every backend:
//! `cheetah` and `cryptflow2` take the client's shares online; `delphi` and
//! `aby` fix the client's share of a ReLU's input in preprocessing (its
//! garbled-circuit input labels, fetched by OT), so there the hook shifts
//! that share when it is fixed ([`fusion_engine::backend::PassPlan`]), as
//! MUSE's attack on DELPHI chooses its preprocessing inputs, and the online
//! share the client feeds matches it.
//!
//! **Scoring.** The experiment reads the model file only to score the result:
//! `max_relative_error` = max over layers of `max|w_hat - w| / max|w|` (same
//! neuron order; no matching needed) for weights, and separately for biases.

mod chain;
mod labels;
mod shifts;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use fusion_engine::{ClientConfig, SecureClient};
use fusion_net::{NetConfig, ServerPin, connect_as};
use fusion_nn::Model;
use serde::Serialize;

use chain::{Kind, Layer, Net};
use shifts::{Probe, Relu, Shifter};

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
    /// biases of a ReLU network layer by layer (see docs/SECURITY.md).
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
    /// Client certificate (PEM) for a server with `--client-ca`.
    #[arg(
        long,
        value_name = "FILE",
        requires = "client_key",
        requires = "server"
    )]
    client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
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
    /// With `--local`: what the server reveals, `logits` or `label` (only
    /// the class; the attack then reads logit differences one comparison
    /// per row). A `--server` announces its own mode.
    #[arg(long, value_name = "MODE", default_value = "logits", value_parser = crate::common::parse_output_mode)]
    output_mode: fusion_engine::OutputMode,
    /// Isolating shift c (real units): must exceed every |pre-activation|
    /// on the probe inputs.
    #[arg(long, value_name = "C", default_value_t = 128.0)]
    shift: f64,
    /// Identity shift C (real units): must exceed every |pre-activation| of
    /// the layers after the one being read, and keep C 2^scale inside the
    /// ReLU's input range.
    #[arg(long, value_name = "C", default_value_t = 1024.0)]
    identity_shift: f64,
    /// Probe input magnitude s (x = s e_i): larger reads the weights above
    /// the noise of the server's truncations; `s |w| + |b|` must stay below
    /// the isolating shift.
    #[arg(long, value_name = "S", default_value_t = 32.0)]
    probe: f64,
    /// Hidden units read per probe row (at most the number of classes).
    #[arg(long, value_name = "G", default_value_t = 8)]
    group: usize,
    /// Reference and calibration rows per group of units, averaged (the
    /// server's truncations add noise to every reading).
    #[arg(long, value_name = "R", default_value_t = 4)]
    repeats: usize,
    /// Probe rows per batch (at most the server's batch limit).
    #[arg(long, value_name = "N", default_value_t = 256)]
    chunk: usize,
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

/// The JSON record.
#[derive(Debug, Serialize)]
struct MuseReport {
    attack: &'static str,
    model: String,
    backend: String,
    /// What the server revealed (`logits` or `label`).
    output_mode: String,
    /// What the errors compare.
    scored: &'static str,
    /// Input rows the server evaluated.
    queries: u64,
    /// Weights and biases recovered.
    parameters: u64,
    /// Weights and biases that never reach the scores (a unit whose
    /// outgoing weights are all zero), left at 0.
    unobservable: u64,
    /// max over layers of max|w_hat - w| / max|w| (weights).
    max_relative_error: f64,
    /// Per layer (weights).
    layer_weight_errors: Vec<f64>,
    /// Per layer, biases: max|b_hat - b| / max|b|.
    layer_bias_errors: Vec<f64>,
    /// Agreement of the recovered network's labels with the model's on the test split.
    agreement: Option<f64>,
    shift: f64,
    identity_shift: f64,
    probe: f64,
    group: usize,
    repeats: usize,
    seconds: f64,
    bytes: u64,
}

fn muse(a: MuseArgs) -> Result<(), CliError> {
    let positive = |v: f64| v > 0.0 && v.is_finite();
    if !(positive(a.shift) && positive(a.identity_shift) && positive(a.probe)) {
        return Err(usage(
            "--shift, --identity-shift and --probe must be positive",
        ));
    }
    if a.group == 0 || a.chunk == 0 || a.repeats == 0 {
        return Err(usage("--group, --chunk and --repeats must be at least 1"));
    }
    let model = Model::load(&a.model).map_err(|e| usage(format!("{}: {e}", a.model.display())))?;
    let mut truth = Net::from_model(&model).map_err(usage)?;
    let client_id =
        crate::common::client_identity(a.client_cert.as_deref(), a.client_key.as_deref())?;
    let knobs = Knobs {
        c: a.shift,
        identity: a.identity_shift,
        s: a.probe,
        big: 256.0,
        group: a.group,
        chunk: a.chunk,
        repeats: a.repeats,
    };
    init_rayon();
    let rt = runtime()?;
    let mut rng = os_rng()?;
    let backend = crate::backend::build_one(&a.backend, Default::default())?;
    let started = Instant::now();
    let (recovered, queries, unobservable, bytes, mode) = rt.block_on(async {
        let net = NetConfig::default();
        let (client_session, server_task) = if a.local {
            let backend = crate::backend::build_one(&a.backend, Default::default())?;
            let (c, task) =
                crate::secure_oracle::local_server(&model, backend, a.output_mode, os_rng()?)
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
                connect_as(addr, &pin, client_id.as_ref(), &net)
                    .await
                    .map_err(failure)?,
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
        let result = attack(&mut client, knobs).await;
        let meter = client.meter();
        let mode = client.output_mode();
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
        let (net, queries, unobservable) = result?;
        Ok::<_, CliError>((
            net,
            queries,
            unobservable,
            meter.report().total.bytes_total(),
            mode,
        ))
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let rel = |a: &[f64], b: &[f64]| {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            / scale.max(f64::MIN_POSITIVE)
    };
    // Labels fix the logits only up to a common offset: a label-only attack
    // reads the last layer as differences from class 0, and is scored
    // against the model's last layer in that form (the same classifier).
    let scored = if mode == fusion_engine::OutputMode::Label {
        truth.last.subtract_first_row();
        "every layer; the last as differences from class 0 (W_c - W_0, b_c - b_0): labels \
         determine nothing more"
    } else {
        "every layer as served"
    };
    let mut layer_weight_errors = Vec::new();
    let mut layer_bias_errors = Vec::new();
    if recovered.layers().count() != truth.layers().count()
        || recovered
            .layers()
            .zip(truth.layers())
            .any(|(r, t)| r.kind != t.kind)
    {
        return Err(failure(
            "the served network's layers differ from the model file's (is --model the served \
             model?)",
        ));
    }
    for (r, t) in recovered.layers().zip(truth.layers()) {
        layer_weight_errors.push(rel(&r.weight, &t.weight));
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
    let total: u64 = recovered
        .layers()
        .map(|l| (l.weight.len() + l.bias.len()) as u64)
        .sum();
    let parameters = total - unobservable;
    let report = MuseReport {
        attack: "muse-share-shifting",
        model: model.meta.name.clone(),
        backend: a.backend.clone(),
        output_mode: mode.to_string(),
        scored,
        queries,
        parameters,
        unobservable,
        max_relative_error: layer_weight_errors.iter().copied().fold(0.0, f64::max),
        layer_weight_errors,
        layer_bias_errors,
        agreement,
        shift: a.shift,
        identity_shift: a.identity_shift,
        probe: a.probe,
        group: a.group,
        repeats: a.repeats,
        seconds,
        bytes,
    };
    let text = serde_json::to_string_pretty(&report).map_err(failure)?;
    println!("{text}");
    std::fs::write(&a.json, text).map_err(|e| failure(format!("{}: {e}", a.json.display())))?;
    eprintln!("fusion attack muse: wrote {}", a.json.display());
    Ok(())
}

/// The attack's constants.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    /// Isolating shift `c`.
    c: f64,
    /// Identity shift `C`.
    identity: f64,
    /// Probe magnitude `s`.
    s: f64,
    /// Last-layer impulse `D`.
    big: f64,
    /// Units per probe row.
    group: usize,
    /// Rows per batch.
    chunk: usize,
    /// Reference and calibration rows per group.
    repeats: usize,
}

/// Runs probe rows (in batches of at most `chunk`) and returns their logits.
async fn run_probes(
    client: &mut SecureClient,
    steps: &Arc<shifts::Steps>,
    probes: Vec<Probe>,
    k: &Knobs,
    what: &str,
    rows_so_far: &mut u64,
) -> Result<Vec<Vec<f64>>, CliError> {
    let in_len = client.input_len();
    let fp = client.program().fixed;
    let mut out = Vec::with_capacity(probes.len());
    let total = probes.len();
    for chunk in probes.chunks(k.chunk.max(1)) {
        let mut x = vec![0.0; chunk.len() * in_len];
        for (r, p) in chunk.iter().enumerate() {
            if let Some((0, i, amount)) = p.impulse {
                x[r * in_len + i] = amount;
            }
        }
        client.set_deviation(Arc::new(Shifter {
            steps: steps.clone(),
            rows: chunk.to_vec(),
            c: k.c,
            identity: k.identity,
        }));
        let encoded: Vec<u64> = x.iter().map(|&v| fp.encode(v)).collect();
        let y = client
            .infer_encoded(encoded, chunk.len())
            .await
            .map_err(|e| match e {
                q @ fusion_engine::SecureError::QuotaExceeded(_) => CliError::Quota(format!(
                    "the server refused a batch of {} rows after {rows_so_far}: {q}",
                    chunk.len()
                )),
                e => failure(e),
            })?;
        out.extend(client.decode(&y));
        *rows_so_far += chunk.len() as u64;
        eprintln!(
            "fusion attack muse: {what}: {} of {total} rows ({} in all)",
            out.len(),
            rows_so_far
        );
    }
    Ok(out)
}

/// The logits of each probe row: revealed by a scores server, or read as
/// differences from class 0 through a label-only one ([`labels`]).
async fn read(
    client: &mut SecureClient,
    steps: &Arc<shifts::Steps>,
    probes: Vec<Probe>,
    k: &Knobs,
    what: &str,
    rows_so_far: &mut u64,
) -> Result<Vec<Vec<f64>>, CliError> {
    match client.output_mode() {
        fusion_engine::OutputMode::Label => {
            labels::differences(client, steps, probes, k, what, rows_so_far).await
        }
        _ => run_probes(client, steps, probes, k, what, rows_so_far).await,
    }
}

/// Splits `units` into groups of at most `size` whose columns of `m` (the
/// logits per unit) are well apart: each column keeps at least a third of
/// its length outside the span of the group's earlier columns. Units whose
/// column is zero never reach the logits and are returned apart.
fn groups(
    units: &[usize],
    m: impl Fn(usize) -> Vec<f64>,
    size: usize,
) -> (Vec<Vec<usize>>, Vec<usize>) {
    const MIN_RESIDUAL_SQ: f64 = 1.0 / 9.0;
    let cols: Vec<Vec<f64>> = units.iter().map(|&u| m(u)).collect();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let largest = cols.iter().map(|c| norm(c)).fold(0.0, f64::max);
    let mut groups: Vec<(Vec<usize>, Vec<Vec<f64>>)> = Vec::new();
    let mut dead = Vec::new();
    for (&u, col) in units.iter().zip(&cols) {
        let n = norm(col);
        if n <= largest * 1e-9 {
            dead.push(u);
            continue;
        }
        let unit: Vec<f64> = col.iter().map(|x| x / n).collect();
        let residual = |basis: &[Vec<f64>]| {
            let mut r = unit.clone();
            for q in basis {
                let d: f64 = q.iter().zip(&r).map(|(a, b)| a * b).sum();
                r.iter_mut().zip(q).for_each(|(x, qi)| *x -= d * qi);
            }
            r
        };
        let slot = groups.iter_mut().find_map(|(members, basis)| {
            if members.len() >= size {
                return None;
            }
            let r = residual(basis);
            let rn = norm(&r);
            (rn * rn >= MIN_RESIDUAL_SQ).then_some((members, basis, r, rn))
        });
        match slot {
            Some((members, basis, r, rn)) => {
                members.push(u);
                basis.push(r.iter().map(|x| x / rn).collect());
            }
            None => groups.push((vec![u], vec![unit])),
        }
    }
    (groups.into_iter().map(|(m, _)| m).collect(), dead)
}

/// Least squares: `t` minimising `|sum_j t_j cols[j] - y|`.
fn least_squares(cols: &[Vec<f64>], y: &[f64]) -> Vec<f64> {
    let g = cols.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    // Normal equations, Gaussian elimination with partial pivoting.
    let mut a: Vec<Vec<f64>> = (0..g)
        .map(|i| {
            let mut row: Vec<f64> = (0..g).map(|j| dot(&cols[i], &cols[j])).collect();
            row.push(dot(&cols[i], y));
            row
        })
        .collect();
    for p in 0..g {
        let best = (p..g)
            .max_by(|&i, &j| a[i][p].abs().total_cmp(&a[j][p].abs()))
            .unwrap_or(p);
        a.swap(p, best);
        let pivot = a[p][p];
        if pivot == 0.0 {
            continue;
        }
        let pivot_row = a[p].clone();
        for (i, row) in a.iter_mut().enumerate() {
            if i != p {
                let f = row[p] / pivot;
                for (x, pv) in row[p..].iter_mut().zip(&pivot_row[p..]) {
                    *x -= f * pv;
                }
            }
        }
    }
    (0..g)
        .map(|i| {
            if a[i][i] == 0.0 {
                0.0
            } else {
                a[i][g] / a[i][i]
            }
        })
        .collect()
}

/// Runs every probe and solves for the weights, last layer first.
async fn attack(client: &mut SecureClient, k: Knobs) -> Result<(Net, u64, u64), CliError> {
    let mode = client.output_mode();
    if !matches!(
        mode,
        fusion_engine::OutputMode::Logits | fusion_engine::OutputMode::Label
    ) {
        return Err(usage(format!(
            "the server's output mode is `{mode}`: this attack reads logits or labels, not \
             perturbed probabilities"
        )));
    }
    // Label-only output reveals logit differences: k - 1 per row.
    let readable = match mode {
        fusion_engine::OutputMode::Label => client.classes().saturating_sub(1),
        _ => client.classes(),
    };
    let steps = Arc::new(shifts::Steps::read(client.program(), client.schedule()).map_err(usage)?);
    if steps.linear(0).kind.in_len() != client.input_len() {
        return Err(failure(format!(
            "the first layer reads {} values, the program's input has {}",
            steps.linear(0).kind.in_len(),
            client.input_len()
        )));
    }
    let k = Knobs {
        group: k.group.clamp(1, readable.max(1)),
        chunk: k
            .chunk
            .min(usize::try_from(client.server_hello().session.max_batch).unwrap_or(usize::MAX))
            .max(1),
        ..k
    };
    let blocks = steps.blocks.len();
    let mut net = Net {
        hidden: steps
            .blocks
            .iter()
            .map(|b| Layer::zeros(b.linear.kind))
            .collect(),
        pools: steps.blocks.iter().map(|b| b.pool).collect(),
        last: Layer::zeros(steps.last.kind),
    };
    let mut rows = 0u64;
    let mut unobservable = 0u64;
    // 1. The last layer.
    let Kind::Dense { d: d_last, .. } = steps.last.kind else {
        return Err(usage(
            "the last layer is a convolution; this attack needs a dense last layer",
        ));
    };
    let all_off = vec![Relu::Off; blocks];
    let mut probes = vec![Probe {
        relus: all_off.clone(),
        impulse: None,
        logits: None,
    }];
    for j in 0..d_last {
        probes.push(Probe {
            relus: all_off.clone(),
            impulse: Some((blocks, j, k.big)),
            logits: None,
        });
    }
    let y = read(client, &steps, probes, &k, "last layer", &mut rows).await?;
    let base = &y[0];
    for (b, v) in net.last.bias.iter_mut().zip(base) {
        *b = *v;
    }
    for (j, row) in y[1..].iter().enumerate() {
        for (c, (v, v0)) in row.iter().zip(base).enumerate() {
            if let Some(w) = net.last.weight.get_mut(c * d_last + j) {
                *w = (v - v0) / k.big;
            }
        }
    }
    // 2. Hidden layers, last to first.
    for b in (0..blocks).rev() {
        let kind = steps.blocks[b].linear.kind;
        let relus_with = |mine: Relu| -> Vec<Relu> {
            (0..blocks)
                .map(|i| match i.cmp(&b) {
                    std::cmp::Ordering::Less => Relu::Off,
                    std::cmp::Ordering::Equal => mine.clone(),
                    std::cmp::Ordering::Greater => Relu::Identity,
                })
                .collect()
        };
        let out_len = kind.out_len();
        let column = |u: usize| {
            let mut e = vec![0.0; out_len];
            e[u] = 1.0;
            net.downstream(b, &e)
        };
        // Each group has a reference row (no impulse: every unit reads its
        // channel's bias), a calibration row (the same with `+c` more on the
        // isolated units, which measures how far the computed columns of `M`
        // are off in scale) and one row per impulse (every unit reads one
        // weight as the difference from the reference row).
        #[derive(Clone, Copy)]
        enum Role {
            Reference,
            Calibration,
            Impulse(usize),
        }
        struct Row {
            group: Arc<Vec<usize>>,
            role: Role,
            /// Per unit of the group: the channel (reference rows) or the
            /// weight index (impulse rows).
            reads: Vec<usize>,
            /// The group's first reference row (`repeats` reference rows,
            /// then `repeats` calibration rows).
            reference: usize,
        }
        // Output units to read, each with its channel and, per impulse
        // position, the weight index it reads.
        // (units, each unit's channel, per impulse position the weight each unit reads)
        type Reads = (Vec<usize>, Vec<usize>, Vec<(usize, Vec<usize>)>);
        let (units, channel, impulses): Reads = match kind {
            Kind::Dense { d, o } => (
                (0..o).collect(),
                (0..o).collect(),
                (0..d)
                    .map(|i| (i, (0..o).map(|u| u * d + i).collect()))
                    .collect(),
            ),
            Kind::Conv {
                c,
                h,
                w,
                o,
                k: ks,
                pad,
            } => {
                let (ho, wo) = kind.out_hw();
                // The impulse sits where every kernel offset lands inside
                // the output: output (p0 + pad - u, p0 + pad - v).
                let p0 = (ks - 1).saturating_sub(pad);
                if p0 + pad < ks - 1 || p0 + pad >= ho || p0 >= h || p0 >= w || wo <= p0 + pad {
                    return Err(usage(format!(
                        "a {ks}x{ks} convolution on {h}x{w} with padding {pad}: no input \
                             position reaches every kernel offset"
                    )));
                }
                let mut units = Vec::new();
                let mut channel = Vec::new();
                let mut offsets = Vec::new();
                for oc in 0..o {
                    for u in 0..ks {
                        for v in 0..ks {
                            units.push((oc * ho + p0 + pad - u) * wo + p0 + pad - v);
                            channel.push(oc);
                            offsets.push((oc, u, v));
                        }
                    }
                }
                let impulses = (0..c)
                    .map(|ch| {
                        let reads = offsets
                            .iter()
                            .map(|&(oc, u, v)| ((oc * c + ch) * ks + u) * ks + v)
                            .collect();
                        ((ch * h + p0) * w + p0, reads)
                    })
                    .collect();
                (units, channel, impulses)
            }
        };
        let position: std::collections::HashMap<usize, usize> =
            units.iter().enumerate().map(|(i, &u)| (u, i)).collect();
        let (gs, dead) = groups(&units, column, k.group);
        // A dead unit's bias and the weights it reads never reach the scores.
        unobservable += (dead.len() * (impulses.len() + 1)) as u64;
        let mut plan: Vec<Row> = Vec::new();
        for g in gs {
            let g = Arc::new(g);
            let reference = plan.len();
            let roles = [Role::Reference, Role::Calibration];
            for role in roles
                .into_iter()
                .flat_map(|r| std::iter::repeat_n(r, k.repeats))
            {
                plan.push(Row {
                    reads: g.iter().map(|u| channel[position[u]]).collect(),
                    group: g.clone(),
                    role,
                    reference,
                });
            }
            for (at, reads) in &impulses {
                plan.push(Row {
                    reads: g.iter().map(|u| reads[position[u]]).collect(),
                    group: g.clone(),
                    role: Role::Impulse(*at),
                    reference,
                });
            }
        }
        let mut probes = vec![Probe {
            relus: relus_with(Relu::Off),
            impulse: None,
            logits: None,
        }];
        probes.extend(plan.iter().map(|r| Probe {
            relus: relus_with(Relu::Isolate(
                r.group.clone(),
                if matches!(r.role, Role::Calibration) {
                    k.c
                } else {
                    0.0
                },
            )),
            impulse: match r.role {
                Role::Impulse(i) => Some((b, i, k.s)),
                _ => None,
            },
            logits: None,
        }));
        let what = format!("hidden layer {} of {blocks}", b + 1);
        let y = read(client, &steps, probes, &k, &what, &mut rows).await?;
        let y0 = &y[0];
        // `t = z + c` (+ c on calibration rows) per row and unit, as read
        // through the computed columns.
        let mut read: Vec<Vec<f64>> = Vec::with_capacity(plan.len());
        for (r, row) in plan.iter().enumerate() {
            let cols: Vec<Vec<f64>> = row.group.iter().map(|&u| column(u)).collect();
            let diff: Vec<f64> = y[1 + r].iter().zip(y0).map(|(a, b)| a - b).collect();
            read.push(least_squares(&cols, &diff));
        }
        let layer = &mut net.hidden[b];
        // Per group (by its first row): the mean reading of its reference
        // rows and of its calibration rows.
        let mean = |from: usize| -> Vec<f64> {
            let rows = &read[from..from + k.repeats];
            (0..rows[0].len())
                .map(|q| rows.iter().map(|t| t[q]).sum::<f64>() / k.repeats as f64)
                .collect()
        };
        let mut base: std::collections::HashMap<usize, (Vec<f64>, Vec<f64>)> = Default::default();
        for row in &plan {
            base.entry(row.reference)
                .or_insert_with(|| (mean(row.reference), mean(row.reference + k.repeats)));
        }
        // A channel's bias: the mean over the units that read it.
        let mut bias_sum = vec![(0.0, 0usize); layer.bias.len()];
        for (r, row) in plan.iter().enumerate() {
            let (t0, t1) = &base[&row.reference];
            // Per unit, how much larger the reading is than the value.
            let scale = |q: usize| {
                let s = (t1[q] - t0[q]) / k.c;
                if s.is_finite() && s > 0.5 && s < 2.0 {
                    s
                } else {
                    1.0
                }
            };
            match row.role {
                Role::Reference if r == row.reference => {
                    for (q, &ch) in row.reads.iter().enumerate() {
                        bias_sum[ch].0 += t0[q] / scale(q) - k.c;
                        bias_sum[ch].1 += 1;
                    }
                }
                Role::Reference | Role::Calibration => {}
                Role::Impulse(_) => {
                    for (q, &wi) in row.reads.iter().enumerate() {
                        layer.weight[wi] = (read[r][q] - t0[q]) / (scale(q) * k.s);
                    }
                }
            }
        }
        for (b, (sum, n)) in layer.bias.iter_mut().zip(bias_sum) {
            if n > 0 {
                *b = sum / n as f64;
            }
        }
    }
    Ok((net, rows, unobservable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_the_coefficients_of_a_consistent_system() {
        let cols = vec![vec![1.0, 0.5, -2.0, 0.0], vec![0.0, 1.0, 1.0, 3.0]];
        let t = [2.5, -1.25];
        let y: Vec<f64> = (0..4)
            .map(|i| t[0] * cols[0][i] + t[1] * cols[1][i])
            .collect();
        let got = least_squares(&cols, &y);
        assert!((got[0] - t[0]).abs() < 1e-12 && (got[1] - t[1]).abs() < 1e-12);
    }

    #[test]
    fn groups_keep_parallel_columns_apart_and_set_dead_units_aside() {
        // Units 0 and 1 share a column (pooled into the same value); unit 2
        // is a multiple of it; unit 3 never reaches the output.
        let cols = [
            vec![1.0, 0.0, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![-2.0, 0.0, 0.0],
            vec![0.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
        ];
        let (gs, dead) = groups(&[0, 1, 2, 3, 4], |u| cols[u].clone(), 3);
        assert_eq!(dead, vec![3]);
        assert_eq!(gs, vec![vec![0, 4], vec![1], vec![2]]);
    }
}
