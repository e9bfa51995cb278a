//! `fusion import`: bring your own model. Reads an ONNX file, maps its graph to
//! fusion-nn's layers (`fusion_nn::onnx`), calibrates the fixed-point format on
//! data (`fusion_nn::calibrate`: every layer's range must leave headroom in the
//! ring; `--frac-bits auto` picks the largest `f` that does), evaluates the
//! result on the dataset's test split, and writes a model directory that
//! `fusion serve`, `fusion eval`, `fusion demo --model` and `fusion inspect`
//! read, plus `calibration.json` (the per-layer ranges).
//!
//! Everything is checked before anything is written: the model is saved to a
//! temporary directory next to `--out` and renamed at the end, so a failed
//! import (exit 2 for a bad file, an unsupported graph, data of the wrong
//! shape, too little headroom; 1 for other failures) leaves no files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use fusion_nn::calibrate::{self, Calibration};
use fusion_nn::data::{self, Part, Split};
use fusion_nn::model::WeightDtype;
use fusion_nn::onnx::{self, BatchDim, ImportOptions};
use fusion_nn::tensor::Tensor;
use fusion_nn::{NnError, eval};

use crate::common::{CliError, failure, read_samples, usage};

/// Arguments of `fusion import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX file.
    #[arg(long, value_name = "FILE")]
    onnx: PathBuf,
    /// Calibration data: a dataset name (mnist, fashion-mnist, breast-cancer,
    /// digits; its training split is used) or a CSV file as `fusion samples` writes it.
    #[arg(long, value_name = "DATA")]
    calibrate: String,
    /// Output model directory (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Model name (default: the ONNX file's stem).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The ONNX output to serve (default: the graph's only float output).
    #[arg(long, value_name = "NAME")]
    output: Option<String>,
    /// The dataset the model is for (recorded for `fusion demo`; default: the
    /// --calibrate dataset). Needed to evaluate when calibrating from a CSV file.
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
    /// Ring bits l of the fixed-point format (`fusion serve --ring-bits`).
    #[arg(long, value_name = "L", default_value_t = 37)]
    ring_bits: u32,
    /// Fractional bits f, or `auto` for the largest f with the headroom margin
    /// (the default 12 is what `fusion serve` and `fusion demo` use).
    #[arg(long, value_name = "F|auto", default_value = "12")]
    frac_bits: String,
    /// Headroom every value must keep in the ring over the calibration data, in bits.
    #[arg(long, value_name = "BITS", default_value_t = calibrate::DEFAULT_MARGIN_BITS)]
    margin_bits: u32,
    /// Calibration samples taken (evenly spaced) from the dataset's training split.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    calibrate_count: usize,
    /// Evaluate on only the first N test samples (default: the whole test split).
    #[arg(long, value_name = "N")]
    eval_limit: Option<usize>,
    /// Data directory (default: $FUSION_DATA, else the repository's data/).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Runs `fusion import`.
pub fn run(args: Args) -> ExitCode {
    match import(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("import"),
    }
}

/// Exit 2 for a bad input file, graph, data or format; 1 for the rest.
fn nn(e: NnError) -> CliError {
    match e {
        NnError::Onnx(_)
        | NnError::OnnxUnsupported { .. }
        | NnError::Calibration(_)
        | NnError::FixedPoint(_)
        | NnError::InputShape { .. }
        | NnError::Shape { .. }
        | NnError::Graph(_)
        | NnError::Weights { .. }
        | NnError::UnknownDataset(_)
        | NnError::InvalidArgument(_)
        | NnError::DataDir(_)
        | NnError::Data { .. } => usage(e),
        other => failure(other),
    }
}

/// The calibration samples, the dataset they belong to (if known) and a description.
struct CalData {
    inputs: Tensor<f32>,
    dataset: Option<String>,
    what: String,
}

fn evenly_spaced(split: &Split, n: usize) -> Tensor<f32> {
    let len = split.len();
    if n >= len {
        return split.inputs.clone();
    }
    let idx: Vec<usize> = (0..n).map(|i| i * len / n).collect();
    split.inputs.gather(&idx)
}

fn calibration_data(args: &Args, model_input: &[usize]) -> Result<CalData, CliError> {
    if args.calibrate_count == 0 {
        return Err(usage("--calibrate-count must be at least 1"));
    }
    if data::info(&args.calibrate).is_ok() {
        let dir = data_dir(args)?;
        let split = data::load(&dir, &args.calibrate, Part::Train).map_err(failure)?;
        let inputs = evenly_spaced(&split, args.calibrate_count);
        return Ok(CalData {
            what: format!(
                "{} samples of the {} training split",
                inputs.batch(),
                args.calibrate
            ),
            inputs,
            dataset: Some(args.calibrate.clone()),
        });
    }
    let path = Path::new(&args.calibrate);
    if !path.is_file() {
        return Err(usage(format!(
            "--calibrate `{}` is neither a dataset ({}) nor a file",
            args.calibrate,
            data::DATASETS.join(", ")
        )));
    }
    let file = read_samples(path, false)?;
    let shape: Vec<usize> = match &args.dataset {
        Some(d) => data::info(d).map_err(usage)?.sample_shape.to_vec(),
        None => model_input.to_vec(),
    };
    let want: usize = shape.iter().product();
    if file.features != want {
        return Err(nn(NnError::InputShape {
            expected: shape,
            found: vec![file.samples.len(), file.features],
        }));
    }
    let n = file.samples.len();
    let mut batch = vec![n];
    batch.extend_from_slice(&shape);
    let inputs = Tensor::new(batch, file.samples.concat()).map_err(failure)?;
    Ok(CalData {
        what: format!("{n} samples of {}", path.display()),
        inputs,
        dataset: args.dataset.clone(),
    })
}

fn data_dir(args: &Args) -> Result<PathBuf, CliError> {
    match &args.data_dir {
        Some(d) => Ok(d.clone()),
        None => data::data_dir().map_err(usage),
    }
}

fn check_out(out: &Path) -> Result<(), CliError> {
    if out.exists() {
        let empty = out.is_dir()
            && std::fs::read_dir(out)
                .map_err(|e| failure(format!("{}: {e}", out.display())))?
                .next()
                .is_none();
        if !empty {
            return Err(usage(format!(
                "--out {} exists and is not an empty directory",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Writes the model and `calibration.json` to a temporary sibling of `out`, then renames it.
fn write_atomically(
    out: &Path,
    model: &fusion_nn::Model,
    report: &serde_json::Value,
) -> Result<(), CliError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = out
        .file_name()
        .ok_or_else(|| usage(format!("--out {} has no directory name", out.display())))?
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{base}.import-{}", std::process::id()));
    let result = (|| {
        model.save(&tmp, WeightDtype::F32).map_err(failure)?;
        let text = serde_json::to_string_pretty(report).map_err(failure)?;
        std::fs::write(tmp.join("calibration.json"), text + "\n")
            .map_err(|e| failure(format!("{}: {e}", tmp.display())))?;
        if out.is_dir() {
            std::fs::remove_dir(out).map_err(|e| failure(format!("{}: {e}", out.display())))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| failure(format!("{}: {e}", out.display())))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn import(args: &Args) -> Result<(), CliError> {
    let ring_bits = args.ring_bits;
    let frac = match args.frac_bits.as_str() {
        "auto" => None,
        f => Some(
            f.parse::<u32>()
                .map_err(|_| usage(format!("--frac-bits must be a number or auto, not `{f}`")))?,
        ),
    };
    if let Some(f) = frac {
        eval::fixed_point(ring_bits, f).map_err(usage)?;
    }
    if let Some(d) = &args.dataset {
        data::info(d).map_err(usage)?;
    }
    check_out(&args.out)?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.onnx
            .file_stem()
            .map_or("imported".into(), |s| s.to_string_lossy().into_owned())
    });

    let t0 = Instant::now();
    let mut imp = onnx::import_file(
        &args.onnx,
        &ImportOptions {
            name,
            output: args.output.clone(),
        },
    )
    .map_err(|e| match e {
        NnError::Io { .. } => usage(e),
        e => nn(e),
    })?;
    let t_import = t0.elapsed().as_secs_f64();
    println!(
        "fusion import: {} (producer {}, opset {}), input `{}` {:?} per sample (batch {}), output `{}`",
        args.onnx.display(),
        imp.producer,
        imp.opset,
        imp.input_name,
        imp.onnx_input_shape,
        match &imp.batch {
            BatchDim::Symbolic(s) if s.is_empty() => "symbolic".to_string(),
            BatchDim::Symbolic(s) => format!("symbolic `{s}`"),
            BatchDim::Fixed(n) => format!("{n} in the file, any served"),
        },
        imp.output_name
    );

    let t1 = Instant::now();
    let cal = calibration_data(args, &imp.model.graph.input_shape)?;
    imp.adapt_input(cal.inputs.sample_shape()).map_err(nn)?;
    if let Some(d) = &cal.dataset {
        let info = data::info(d).map_err(usage)?;
        if imp.model.meta.classes != info.classes {
            return Err(usage(format!(
                "the model has {} outputs, dataset `{d}` has {} classes",
                imp.model.meta.classes, info.classes
            )));
        }
    }
    imp.model.meta.dataset = cal.dataset.clone();
    println!("mapping:");
    for m in &imp.mapping {
        println!("  {m}");
    }
    for n in &imp.notes {
        println!("note: {n}");
    }
    let (fixed, calib): (_, Calibration) = match frac {
        Some(f) => {
            let fp = eval::fixed_point(ring_bits, f).map_err(usage)?;
            let c = calibrate::calibrate(&imp.model, fp, &cal.inputs).map_err(nn)?;
            c.check(args.margin_bits).map_err(nn)?;
            (fp, c)
        }
        None => calibrate::choose_frac_bits(&imp.model, ring_bits, &cal.inputs, args.margin_bits)
            .map_err(nn)?,
    };
    let t_cal = t1.elapsed().as_secs_f64();
    println!(
        "calibration on {} for Z_2^{} with f = {}{} (margin {} bits), max |value| per layer:",
        cal.what,
        ring_bits,
        fixed.frac_bits,
        if frac.is_none() { " (chosen)" } else { "" },
        args.margin_bits
    );
    print!("{}", calib.render());
    println!(
        "smallest headroom {} bits (`{}`)",
        calib.min_headroom(),
        calib.tightest().map_or("", |r| r.step.as_str())
    );

    let t2 = Instant::now();
    let mut evaluation = None;
    if let Some(d) = &cal.dataset {
        let dir = data_dir(args)?;
        let mut test = data::load(&dir, d, Part::Test).map_err(failure)?;
        if let Some(n) = args.eval_limit {
            test = test.head(n.max(1));
        }
        let ev = eval::evaluate(&imp.model, &test, fixed, "test").map_err(nn)?;
        println!(
            "evaluation on {} {d} test samples: float accuracy {:.2}%, fixed-point accuracy {:.2}%, argmax agreement {:.2}%, max |logit error| {:.5}",
            ev.samples,
            100.0 * ev.float_accuracy,
            100.0 * ev.fixed_accuracy,
            100.0 * ev.argmax_agreement,
            ev.max_logit_error
        );
        evaluation = Some(ev);
    }
    let t_eval = t2.elapsed().as_secs_f64();
    imp.model.meta.description = format!(
        "{}; calibrated on {} for Z_2^{} with f = {}",
        imp.model.meta.description, cal.what, ring_bits, fixed.frac_bits
    );
    imp.model.meta.evaluation = evaluation;
    imp.model.validate().map_err(nn)?;
    let report = serde_json::json!({
        "onnx": args.onnx.display().to_string(),
        "producer": imp.producer,
        "opset": imp.opset,
        "input": imp.input_name,
        "output": imp.output_name,
        "mapping": imp.mapping,
        "notes": imp.notes,
        "calibration_data": cal.what,
        "margin_bits": args.margin_bits,
        "calibration": calib,
    });
    write_atomically(&args.out, &imp.model, &report)?;
    let serve_flags = if fixed == eval::default_fixed_point() {
        String::new()
    } else {
        format!(" --ring-bits {ring_bits} --frac-bits {}", fixed.frac_bits)
    };
    println!(
        "wrote {} (model `{}`, {} layers, {} parameters); import {t_import:.3} s, calibration {t_cal:.3} s, evaluation {t_eval:.3} s",
        args.out.display(),
        imp.model.meta.name,
        imp.model.graph.nodes.len() - 1,
        imp.model.params.scalars()
    );
    println!(
        "serve it: fusion serve --model {} --listen 127.0.0.1:4433 --cert keys/cert.pem --key keys/key.pem{serve_flags}",
        args.out.display()
    );
    if !serve_flags.is_empty() {
        println!(
            "note: f = {} is not the engine default (37, 12) that `fusion demo` uses; pass --ring-bits/--frac-bits to `fusion serve` and `fusion eval --fixed-point`",
            fixed.frac_bits
        );
    }
    Ok(())
}
