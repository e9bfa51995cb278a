//! `fusion train`: reproduces a shipped model from its recipe (seeded, so the
//! same machine gives the same weights), saves it, then evaluates the saved model
//! on the test split with the f32 and the fixed-point engine and records both
//! accuracies in its `model.json`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use fusion_nn::data::{self, Part};
use fusion_nn::model::{Model, WeightDtype};
use fusion_nn::train::{self, Progress, RECIPES};
use fusion_nn::{NnError, eval};

/// Arguments of `fusion train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe to run (see --list): bc-mlp, bc-mlp-weak, mnist-cnn, mnist-cnn-weak, lenet, fmnist-cnn.
    #[arg(long, value_name = "NAME", required_unless_present = "list")]
    recipe: Option<String>,
    /// Output model directory (default: `<data dir>/models/<recipe>`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Override the recipe's number of epochs.
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Data directory (default: $FUSION_DATA, else the repository's data/).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// List the recipes and exit.
    #[arg(long)]
    list: bool,
}

/// Runs `fusion train`.
pub fn run(args: Args) -> ExitCode {
    if args.list {
        for r in &RECIPES {
            println!(
                "{:<15} {:<14} {:<14} {} epochs, batch {}, lr {}{}",
                r.name,
                r.net,
                r.dataset,
                r.config.epochs,
                r.config.batch_size,
                r.config.lr,
                r.train_limit
                    .map(|n| format!(", {n} training samples"))
                    .unwrap_or_default()
            );
        }
        return ExitCode::SUCCESS;
    }
    match train_model(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fusion train: {e}");
            match e {
                NnError::UnknownName { .. } | NnError::InvalidArgument(_) | NnError::DataDir(_) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::from(1),
            }
        }
    }
}

fn train_model(args: &Args) -> Result<(), NnError> {
    let name = args
        .recipe
        .as_deref()
        .ok_or_else(|| NnError::InvalidArgument("--recipe is required".into()))?;
    let recipe = train::recipe(name)?;
    if args.epochs == Some(0) {
        return Err(NnError::InvalidArgument(
            "--epochs must be at least 1".into(),
        ));
    }
    if let Some(t) = args.threads {
        if t == 0 {
            return Err(NnError::InvalidArgument(
                "--threads must be at least 1".into(),
            ));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| NnError::InvalidArgument(format!("thread pool: {e}")))?;
    }
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => data::data_dir()?,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| dir.join("models").join(recipe.name));
    eprintln!(
        "training {} ({} on {}) on {}",
        recipe.name,
        recipe.net,
        recipe.dataset,
        train::machine_description()
    );
    let start = Instant::now();
    let mut last_report = 0usize;
    let tty = std::io::stderr().is_terminal();
    let mut progress = |p: &Progress| match *p {
        Progress::Batch {
            epoch,
            batch,
            batches,
            loss,
        } => {
            let step = (batches / 20).max(1);
            if tty && batch % step == 0 && batch != last_report {
                last_report = batch;
                eprint!(
                    "\r  epoch {}/{} batch {:>5}/{batches} loss {loss:.4}   ",
                    epoch + 1,
                    recipe_epochs(args, recipe),
                    batch
                );
                let _ = std::io::stderr().flush();
            }
        }
        Progress::Epoch {
            epoch,
            loss,
            train_accuracy,
            seconds,
        } => {
            last_report = 0;
            eprintln!(
                "{}  epoch {}/{}: loss {loss:.4}, train accuracy {:.2}%, {seconds:.1} s        ",
                if tty { "\r" } else { "" },
                epoch + 1,
                recipe_epochs(args, recipe),
                100.0 * train_accuracy
            );
        }
    };
    let trained = train::run_recipe(recipe, &dir, args.epochs, &mut progress)?;
    trained.model.save(&out, recipe.dtype)?;
    // Evaluate what was stored.
    let (mut model, dtype) = Model::load_with_dtype(&out)?;
    let test = data::load(&dir, recipe.dataset, Part::Test)?;
    let fp = eval::default_fixed_point();
    let evaluation = eval::evaluate(&model, &test, fp, "test")?;
    model.meta.evaluation = Some(evaluation.clone());
    model.save_metadata(&out, dtype)?;
    let size: u64 = ["model.json", "weights.safetensors"]
        .iter()
        .filter_map(|f| std::fs::metadata(out.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!("model        {} -> {}", recipe.name, out.display());
    println!(
        "training     {:.1} s ({} samples, {} epochs)",
        trained.seconds,
        model.meta.training.as_ref().map_or(0, |t| t.train_samples),
        recipe_epochs(args, recipe)
    );
    println!("test split   {} samples", evaluation.samples);
    println!("float        {:.2}%", 100.0 * evaluation.float_accuracy);
    println!(
        "fixed point  {:.2}% (l = {}, f = {}), argmax agreement with float {:.2}%",
        100.0 * evaluation.fixed_accuracy,
        evaluation.ring_bits,
        evaluation.frac_bits,
        100.0 * evaluation.argmax_agreement
    );
    println!(
        "stored       {} bytes ({})",
        size,
        if dtype == WeightDtype::F32 {
            "f32"
        } else {
            "16-bit"
        }
    );
    println!("total        {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn recipe_epochs(args: &Args, r: &train::Recipe) -> usize {
    args.epochs.unwrap_or(r.config.epochs)
}
