//! The `fusion` command-line tool: plan Fusion parameters, train and evaluate
//! models, generate TLS keys, emulate links, and run verifiable private inference.
//!
//! Each subcommand lives in its own module exposing `Args` (a `clap::Args`) and
//! `run(Args) -> std::process::ExitCode`. Exit codes: 0 success, 1 failure,
//! 2 usage error (bad arguments), 3 Fusion abort (cheating detected).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod eval;
mod keygen;
mod netem;
mod plan;
mod train;

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
    /// Accuracy of a model on a dataset's test split (f32 or fixed point).
    Eval(eval::Args),
    /// Train a shipped model from its recipe (reproduces data/models/).
    Train(train::Args),
    /// Generate the server's TLS certificate and key (prints its SHA-256 fingerprint).
    Keygen(keygen::Args),
    /// Emulate a LAN/WAN link between client and server (user-space UDP relay).
    Netem(netem::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Train(args) => train::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Netem(args) => netem::run(args),
    }
}
