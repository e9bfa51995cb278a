//! The `fusion` command-line tool: plan Fusion parameters, train and evaluate
//! models, generate TLS keys, emulate links, and run verifiable private inference.
//!
//! Each subcommand lives in its own module exposing `Args` (a `clap::Args`) and
//! `run(Args) -> std::process::ExitCode`. Exit codes: 0 success, 1 failure,
//! 2 usage error (bad arguments), 3 Fusion abort (cheating detected), 4 server
//! busy (`fusion query`: the server refused the session, retry later), 5 quota
//! used up (`fusion query`).

// The secure engine's futures nest deeply (run_fusion over the engine over QUIC).
#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backend;
mod cheat;
mod common;
mod demo;
mod eval;
mod experiment;
mod extraction;
mod import;
mod inspect;
mod keygen;
mod metrics;
mod muse;
mod netem;
mod plan;
mod query;
mod quota;
mod samples;
mod secure_oracle;
mod serve;
mod session;
mod train;
mod wrap;

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
    /// Generate TLS identities: the server's certificate and key (prints its SHA-256
    /// fingerprint), a client CA (--ca), or a client certificate (--client NAME --ca DIR).
    Keygen(keygen::Args),
    /// Emulate a LAN/WAN link between client and server (user-space UDP relay).
    Netem(netem::Args),
    /// Serve a model for verifiable private inference (concurrent sessions up to --max-sessions).
    Serve(serve::Args),
    /// Query a server with Fusion: plan, mix, secure inference, verify.
    #[command(long_about = QUERY_ABOUT)]
    Query(query::Args),
    /// Run the whole system locally on the shipped breast-cancer model (no arguments needed).
    Demo(demo::Args),
    /// Export dataset samples as CSV files for `fusion query`.
    Samples(samples::Args),
    /// Import an ONNX model: map it to layers, calibrate the fixed-point format, write a model directory.
    Import(import::Args),
    /// Show a model's layer graph, shapes, parameters and fixed-point program.
    Inspect(inspect::Args),
    /// Measurements: detection of a tampering server, false aborts, secure-vs-plaintext agreement.
    Experiment(experiment::Args),
    /// Attacks by a malicious client (MUSE share shifting), measured on this engine.
    Attack(muse::Args),
    /// List the two-party backends this build offers (for `--backend`).
    Backends,
}

const QUERY_ABOUT: &str = "Query a `fusion serve` server with Fusion (Dong et al., NDSS 2023): \
plan the copies B for the R queries and T public samples against the slack-aware bound, mix B \
copies of every query with the labelled public samples under a secret permutation, run the batch \
through the secure two-party engine (the server sees only encryptions and random shares), and \
accept only if the accuracy on the public samples reaches the threshold and all copies of every \
query agree. On accept it prints one prediction per query; on abort the reasons. Exit codes: 0 \
accept, 3 abort, 2 usage error, 4 server busy (\"busy, retry after S seconds\"; see --retries), 5 quota used up (the \
message says when it resets), \
1 other failure. Sample files are CSV (one sample per row, raw \
features or pixels 0..255 row-major; the public file with a header naming a `label` column); \
`fusion samples` writes them.";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Train(args) => train::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Netem(args) => netem::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Query(args) => query::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Samples(args) => samples::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Attack(args) => muse::run(args),
        Command::Import(args) => import::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Backends => {
            println!("{}", backend::list());
            ExitCode::SUCCESS
        }
    }
}
