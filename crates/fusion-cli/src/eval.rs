//! `fusion eval`: accuracy of a model on a dataset's test (held-out) split, with
//! the f32 engine or the fixed-point engine (the plaintext reference of the
//! secure engine).

use std::path::PathBuf;
use std::process::ExitCode;

use fusion_nn::data::{self, Part};
use fusion_nn::{Model, NnError, eval, fixed};

/// Arguments of `fusion eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (`model.json` and its weights file).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Dataset: mnist, fashion-mnist, breast-cancer or digits (its test split is used).
    #[arg(long, value_name = "NAME")]
    data: String,
    /// Evaluate with the fixed-point engine over Z_2^l instead of f32.
    #[arg(long)]
    fixed_point: bool,
    /// Ring bits l for --fixed-point.
    #[arg(long, value_name = "L", default_value_t = 37)]
    ring_bits: u32,
    /// Fractional bits f for --fixed-point.
    #[arg(long, value_name = "F", default_value_t = 12)]
    frac_bits: u32,
    /// Evaluate only the first N test samples.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Data directory (default: $FUSION_DATA, else the repository's data/).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print one JSON object {model, data, samples, accuracy, fixed_point}.
    #[arg(long)]
    json: bool,
}

/// Exit code 2 for a user's mistake, 1 for anything else.
fn code(e: &NnError) -> ExitCode {
    match e {
        NnError::UnknownDataset(_)
        | NnError::InvalidArgument(_)
        | NnError::InputShape { .. }
        | NnError::DataDir(_) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

/// Runs `fusion eval`.
pub fn run(args: Args) -> ExitCode {
    match eval_model(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fusion eval: {e}");
            code(&e)
        }
    }
}

fn eval_model(args: &Args) -> Result<(), NnError> {
    let info = data::info(&args.data)?;
    let fp = if args.fixed_point {
        Some(eval::fixed_point(args.ring_bits, args.frac_bits)?)
    } else {
        None
    };
    if args.limit == Some(0) {
        return Err(NnError::InvalidArgument(
            "--limit must be at least 1".into(),
        ));
    }
    let model = Model::load(&args.model)?;
    if model.graph.input_shape != info.sample_shape || model.meta.classes != info.classes {
        return Err(NnError::InvalidArgument(format!(
            "model `{}` takes {:?} with {} classes, dataset `{}` has {:?} with {} classes",
            model.meta.name,
            model.graph.input_shape,
            model.meta.classes,
            info.name,
            info.sample_shape,
            info.classes
        )));
    }
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => data::data_dir()?,
    };
    let mut split = data::load(&dir, &args.data, Part::Test)?;
    if let Some(n) = args.limit {
        split = split.head(n);
    }
    let pred = match fp {
        Some(fp) => eval::predict_fixed(&model, &fixed::lower(&model, fp)?, &split)?,
        None => eval::predict_float(&model, &split)?,
    };
    let accuracy = eval::accuracy(&pred, &split.labels);
    if args.json {
        let out = serde_json::json!({
            "model": model.meta.name,
            "data": args.data,
            "samples": split.len(),
            "accuracy": accuracy,
            "fixed_point": args.fixed_point,
        });
        println!("{out}");
    } else {
        let engine = match fp {
            Some(fp) => format!("fixed point, l = {}, f = {}", fp.ring.bits(), fp.frac_bits),
            None => "f32".to_string(),
        };
        let correct = pred
            .iter()
            .zip(&split.labels)
            .filter(|(p, l)| p == l)
            .count();
        println!(
            "{} on {} (test split): {correct}/{} correct, accuracy {:.2}% ({engine})",
            model.meta.name,
            args.data,
            split.len(),
            100.0 * accuracy
        );
    }
    Ok(())
}
