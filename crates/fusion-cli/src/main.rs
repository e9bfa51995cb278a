//! The `fusion` command-line tool: plan Fusion parameters, train and evaluate
//! models, generate TLS keys, emulate links, and run verifiable private inference.
//!
//! Each subcommand lives in its own module exposing `Args` (a `clap::Args`) and
//! `run(Args) -> std::process::ExitCode`. Exit codes: 0 success, 1 failure,
//! 2 usage error (bad arguments), 3 Fusion abort (cheating detected).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod plan;

/// Verifiable private neural-network inference (Fusion, NDSS 2023).
#[derive(Parser)]
#[command(name = "fusion", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Choose copies B and public samples T for R queries (paper's Pi_Search).
    Plan(plan::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => plan::run(args),
    }
}
