//! `fusion inspect`: a model directory's layer graph (shapes, parameters),
//! its metadata, and the fixed-point program the engines run (every step's
//! op class, shape and scale). With the `calibration.json` that `fusion
//! import` writes, also the smallest headroom it measured. Then, for every
//! backend this build offers (or those of `--backends`), the estimated
//! communication of one pass per step (`fusion_engine::estimate`: protocol
//! bytes from each backend's cost formulas and fusion-he's exact ciphertext
//! sizes; `crates/fusion-engine/tests/estimate.rs` checks them against real
//! sessions within ±25%).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use fusion_nn::fixed::{self, OpClass};
use fusion_nn::graph::Op;
use fusion_nn::model::Preprocess;
use fusion_nn::{Model, eval};

use crate::common::{CliError, failure, usage};

/// Arguments of `fusion inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (`model.json` and its weights file).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Ring bits l of the fixed-point program shown.
    #[arg(long, value_name = "L", default_value_t = 37)]
    ring_bits: u32,
    /// Fractional bits f of the fixed-point program shown (default: the
    /// model's recorded evaluation format, else 12).
    #[arg(long, value_name = "F")]
    frac_bits: Option<u32>,
    /// Samples per pass for the cost estimates.
    #[arg(long, value_name = "N", default_value_t = 1)]
    batch: usize,
    /// Backends to estimate, comma-separated (default: every backend this
    /// build offers; `none` for no estimates).
    #[arg(long, value_name = "LIST")]
    backends: Option<String>,
}

/// Runs `fusion inspect`.
pub fn run(args: Args) -> ExitCode {
    match inspect(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => e.report("inspect"),
    }
}

fn op_text(op: &Op) -> String {
    match op {
        Op::Dense { out_features } => format!("dense out={out_features}"),
        Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
        } => format!("conv2d out={out_channels} k={kernel} s={stride} p={padding}"),
        Op::MaxPool2d {
            kernel,
            stride,
            padding,
        } => format!("max_pool2d k={kernel} s={stride} p={padding}"),
        Op::AvgPool2d {
            kernel,
            stride,
            padding,
        } => format!("avg_pool2d k={kernel} s={stride} p={padding}"),
        Op::BatchNorm2d { eps } => format!("batch_norm2d eps={eps}"),
        other => other.tag().to_string(),
    }
}

fn inspect(args: &Args) -> Result<String, CliError> {
    let model = Model::load(&args.model).map_err(usage)?;
    let m = &model.meta;
    let frac = args.frac_bits.unwrap_or_else(|| {
        m.evaluation
            .as_ref()
            .filter(|e| e.ring_bits == args.ring_bits)
            .map_or(12, |e| e.frac_bits)
    });
    let fp = eval::fixed_point(args.ring_bits, frac).map_err(usage)?;
    let g = &model.graph;
    let shapes = g.shapes().map_err(usage)?;
    let specs = g.param_specs().map_err(usage)?;
    let mut s = String::new();
    let _ = writeln!(s, "model      `{}`: {}", m.name, m.description);
    let _ = writeln!(
        s,
        "dataset    {}, {} classes, input {:?}",
        m.dataset.as_deref().unwrap_or("(none)"),
        m.classes,
        g.input_shape
    );
    let pre = match &m.preprocess {
        Preprocess::Identity => "none".to_string(),
        Preprocess::Scale { factor } => format!("x * {factor}"),
        Preprocess::Standardize { mean, .. } => {
            format!("(x - mean) / std per feature ({} features)", mean.len())
        }
    };
    let _ = writeln!(
        s,
        "preprocess {pre} (public, applied by the client in the clear)"
    );
    let _ = writeln!(s, "layers:");
    let _ = writeln!(
        s,
        "  {:>3} {:<28} {:<36} {:<10} {:<16} {:>10}",
        "id", "name", "op", "inputs", "output", "params"
    );
    for (id, n) in g.nodes.iter().enumerate() {
        let params: usize = specs
            .iter()
            .filter(|p| p.node == id)
            .map(|p| p.shape.iter().product::<usize>())
            .sum();
        let _ = writeln!(
            s,
            "  {:>3} {:<28} {:<36} {:<10} {:<16} {:>10}",
            id,
            n.name,
            op_text(&n.op),
            format!("{:?}", n.inputs),
            format!("{:?}", shapes[id]),
            params
        );
    }
    let _ = writeln!(
        s,
        "parameters {} scalars, {} multiply-accumulates per sample",
        model.params.scalars(),
        g.macs().map_err(usage)?
    );
    let program = fixed::lower(&model, fp).map_err(usage)?;
    let (lin, local, nonlin) = program.class_counts();
    let _ = writeln!(
        s,
        "fixed point Z_2^{} with f = {}: {} steps ({lin} linear/HE, {local} local, {nonlin} non-linear/OT), output at scale {}",
        args.ring_bits,
        frac,
        program.steps.len(),
        program.output_scale()
    );
    let _ = writeln!(
        s,
        "  {:>3} {:<32} {:<15} {:<10} {:<16} {:>5}",
        "#", "step", "op", "class", "shape", "scale"
    );
    for (i, st) in program.steps.iter().enumerate() {
        let class = match st.op.class() {
            OpClass::Linear => "linear",
            OpClass::Local => "local",
            OpClass::NonLinear => "non-linear",
        };
        let _ = writeln!(
            s,
            "  {:>3} {:<32} {:<15} {:<10} {:<16} {:>5}",
            i + 1,
            st.name,
            st.op.tag(),
            class,
            format!("{:?}", st.shape),
            st.scale
        );
    }
    if let Some(e) = &m.evaluation {
        let _ = writeln!(
            s,
            "evaluation {} {} samples: float {:.2}%, fixed point {:.2}% (Z_2^{}, f = {}), argmax agreement {:.2}%",
            e.split,
            e.samples,
            100.0 * e.float_accuracy,
            100.0 * e.fixed_accuracy,
            e.ring_bits,
            e.frac_bits,
            100.0 * e.argmax_agreement
        );
    }
    let cal = args.model.join("calibration.json");
    if cal.is_file() {
        let text = std::fs::read_to_string(&cal)
            .map_err(|e| failure(format!("{}: {e}", cal.display())))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| usage(format!("{}: {e}", cal.display())))?;
        let c = &v["calibration"];
        let tight = c["ranges"].as_array().and_then(|r| {
            r.iter()
                .min_by_key(|x| x["headroom_bits"].as_i64().unwrap_or(i64::MAX))
        });
        if let Some(t) = tight {
            let _ = writeln!(
                s,
                "calibration {} (Z_2^{}, f = {}): smallest headroom {} bits at `{}`",
                v["calibration_data"].as_str().unwrap_or("?"),
                c["ring_bits"],
                c["frac_bits"],
                t["headroom_bits"],
                t["step"].as_str().unwrap_or("?")
            );
        }
    }
    costs(&mut s, args, &program)?;
    Ok(s)
}

/// Human-readable bytes.
fn bytes(b: u64) -> String {
    match b {
        b if b >= 10 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 10 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The cost estimate of each requested backend for one pass.
fn costs(s: &mut String, args: &Args, program: &fixed::FixedProgram) -> Result<(), CliError> {
    if args.batch == 0 || args.batch > fusion_engine::config::MAX_CHUNK {
        return Err(usage(format!(
            "--batch {} is outside 1..={}",
            args.batch,
            fusion_engine::config::MAX_CHUNK
        )));
    }
    let names: Vec<String> = match args.backends.as_deref() {
        Some("none") => return Ok(()),
        Some(list) => list.split(',').map(|x| x.trim().to_string()).collect(),
        None => fusion_engine::backends::names()
            .into_iter()
            .map(String::from)
            .collect(),
    };
    for name in names {
        let backend = fusion_engine::backends::by_name(&name).map_err(usage)?;
        let (prepared, _) = backend.serve(program).map_err(failure)?;
        let e = prepared.estimate(args.batch).map_err(failure)?;
        let _ = writeln!(
            s,
            "estimated cost, backend `{name}`, {} sample(s) per pass ({}):",
            args.batch,
            prepared.describe()
        );
        let _ = writeln!(
            s,
            "  {:>3} {:<32} {:<15} {:>11} {:>11} {:>11} {:>11} {:>7}",
            "#", "step", "op", "offline ->", "offline <-", "online ->", "online <-", "flights"
        );
        for st in &e.steps {
            let _ = writeln!(
                s,
                "  {:>3} {:<32} {:<15} {:>11} {:>11} {:>11} {:>11} {:>7}",
                st.step + 1,
                st.name,
                st.op,
                bytes(st.offline.client_to_server),
                bytes(st.offline.server_to_client),
                bytes(st.online.client_to_server),
                bytes(st.online.server_to_client),
                st.flights
            );
        }
        let (off, lin, non, total) = (e.offline(), e.linear(), e.nonlinear(), e.total());
        let _ = writeln!(
            s,
            "  total {} ({} offline, {} linear, {} non-linear, {} output; -> client to server {}, <- server to client {}), {} online flights; {}",
            bytes(total.total()),
            bytes(off.total()),
            bytes(lin.total()),
            bytes(non.total()),
            bytes(e.output.total()),
            bytes(total.client_to_server),
            bytes(total.server_to_client),
            e.flights(),
            e.setup_note
        );
    }
    Ok(())
}
