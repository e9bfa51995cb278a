//! `fusion samples`: export dataset samples to the CSV files `fusion query`
//! reads (one sample per row, raw features or pixels `0..255` row-major, a
//! header row `x0,...,x{d-1}` and, with `--with-labels`, a `label` column).
//! Use it to make query files and labelled public-sample files, e.g. disjoint
//! slices of a test split with `--offset`.

use std::path::PathBuf;
use std::process::ExitCode;

use fusion_nn::data::{self, Part};

use crate::common::{CliError, failure, usage, write_samples};

/// Arguments of `fusion samples`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset: mnist, fashion-mnist, breast-cancer or digits.
    #[arg(long, value_name = "NAME")]
    data: String,
    /// Split: test (held out) or train.
    #[arg(long, value_name = "SPLIT", default_value = "test")]
    split: String,
    /// Number of samples.
    #[arg(long, value_name = "N")]
    count: usize,
    /// Index of the first sample in the split.
    #[arg(long, value_name = "K", default_value_t = 0)]
    offset: usize,
    /// Add the `label` column (for public samples).
    #[arg(long)]
    with_labels: bool,
    /// Output file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Data directory (default: $FUSION_DATA, else the repository's data/).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Runs `fusion samples`.
pub fn run(args: Args) -> ExitCode {
    match export(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("samples"),
    }
}

fn export(args: &Args) -> Result<(), CliError> {
    let part = match args.split.as_str() {
        "test" => Part::Test,
        "train" => Part::Train,
        other => {
            return Err(usage(format!(
                "--split must be test or train, not `{other}`"
            )));
        }
    };
    data::info(&args.data).map_err(usage)?;
    if args.count == 0 {
        return Err(usage("--count must be at least 1"));
    }
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => data::data_dir().map_err(usage)?,
    };
    let split = data::load(&dir, &args.data, part).map_err(failure)?;
    let end = args
        .offset
        .checked_add(args.count)
        .filter(|&e| e <= split.len())
        .ok_or_else(|| {
            usage(format!(
                "the {} split of {} has {} samples; --offset {} --count {} goes past its end",
                args.split,
                args.data,
                split.len(),
                args.offset,
                args.count
            ))
        })?;
    write_samples(
        &args.out,
        &split.inputs,
        args.with_labels.then_some(&split.labels[..]),
        args.offset..end,
    )
    .map_err(|e| failure(format!("{}: {e}", args.out.display())))?;
    eprintln!(
        "wrote {} {} samples ({} split, #{}..#{}) of {} values{} to {}",
        args.count,
        args.data,
        args.split,
        args.offset,
        end - 1,
        split.inputs.sample_len(),
        if args.with_labels { " with labels" } else { "" },
        args.out.display()
    );
    Ok(())
}
