//! The `fusion-bench` binary (see the crate docs of `fusion_bench`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fusion_bench::compare::{CompareOptions, run_compare};
use fusion_bench::elements::{ElementsOptions, run_elements, table};
use fusion_bench::extraction::{ExtractionFigureOptions, run_extraction_figure};
use fusion_bench::infer::{InferOptions, PartyOptions, run_infer, serve_party};
use fusion_bench::load::{LoadOptions, run_load};
use fusion_bench::output_figure::{OutputFigureOptions, run_output_figure};
use fusion_bench::report::{ReportOptions, run_report};
use fusion_bench::spu::{SpuOptions, run_spu};
use fusion_bench::tables::{TablesOptions, run_tables};
use fusion_bench::{BenchError, Result};

/// Benchmarks of the Fusion secure inference engine.
#[derive(Parser, Debug)]
#[command(name = "fusion-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One secure batch of a zoo network as two processes; prints its figures.
    Infer {
        #[command(flatten)]
        opts: InferOptions,
        /// Print one JSON object instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Load test: `fusion serve` on 127.0.0.1 driven by C concurrent clients
    /// running S sessions in total (busy refusals retried); completed,
    /// refused, failed, lost, latency percentiles, server peak RSS.
    Load(LoadOptions),
    /// Run the SPU (SecretFlow Cheetah) peer benchmark and print its JSON.
    Spu(SpuOptions),
    /// Ours and SPU side by side, with ratios.
    Compare(CompareOptions),
    /// The paper-shaped tables under emulated LAN/WAN.
    Tables(TablesOptions),
    /// Render results as BENCHMARKS.md and SVG charts.
    Report(ReportOptions),
    /// Bits and time per element of the OT non-linear primitives (both
    /// parties in this process over QUIC on 127.0.0.1; results checked).
    Elements(ElementsOptions),
    /// Figure 8 shape: stolen-model accuracy against query budget, from
    /// `fusion experiment extraction --json` lines, as an SVG.
    ExtractionFigure(ExtractionFigureOptions),
    /// Figure 7 shape: bytes and time of a secure batch per output mode,
    /// from `fusion-bench infer --output-mode MODE --json` lines, as SVGs.
    OutputFigure(OutputFigureOptions),
    /// The server party of `infer` (internal).
    #[command(hide = true)]
    PartyServer(PartyOptions),
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Infer { opts, json } => {
            let r = run_infer(&opts)?;
            if json {
                let s = serde_json::to_string(&r)
                    .map_err(|e| BenchError::Io(format!("serialising: {e}")))?;
                println!("{s}");
            } else {
                print!("{}", r.summary());
            }
            Ok(())
        }
        Cmd::Load(o) => {
            let r = run_load(&o)?;
            if o.json {
                let s = serde_json::to_string(&r)
                    .map_err(|e| BenchError::Io(format!("serialising: {e}")))?;
                println!("{s}");
            } else {
                print!("{}", r.summary());
            }
            Ok(())
        }
        Cmd::Spu(o) => {
            let v = run_spu(&o)?;
            println!("{v}");
            Ok(())
        }
        Cmd::Compare(o) => {
            let rows = run_compare(&o)?;
            for r in rows {
                println!(
                    "{} batch {} (round {}): time ours/SPU {:.2}, bytes ours/SPU {:.2}",
                    r.net, r.batch, r.round, r.wall_ratio, r.bytes_ratio
                );
            }
            eprintln!("fusion-bench: appended to {}", o.out.display());
            Ok(())
        }
        Cmd::Tables(o) => {
            let (rows, skipped) = run_tables(&o)?;
            println!("{} table rows appended to {}", rows.len(), o.out.display());
            for s in skipped {
                println!("skipped: {s}");
            }
            Ok(())
        }
        Cmd::Report(o) => run_report(&o),
        Cmd::Elements(o) => {
            let mut err = None;
            let rows = run_elements(&o, |r| {
                if o.json {
                    match serde_json::to_string(r) {
                        Ok(s) => println!("{s}"),
                        Err(e) => err = Some(BenchError::Io(format!("serialising: {e}"))),
                    }
                }
            })?;
            if let Some(e) = err {
                return Err(e);
            }
            if !o.json {
                print!("{}", table(&rows));
            }
            Ok(())
        }
        Cmd::ExtractionFigure(o) => {
            let path = run_extraction_figure(&o)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Cmd::OutputFigure(o) => {
            for path in run_output_figure(&o)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Cmd::PartyServer(p) => serve_party(&p),
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cryprot_net=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fusion-bench: {e}");
            ExitCode::from(match e {
                BenchError::Usage(_) => 2,
                _ => 1,
            })
        }
    }
}
