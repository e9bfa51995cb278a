//! # fusion-bench: benchmarks for Fusion
//!
//! The `fusion-bench` binary measures our secure inference engine
//! (`fusion_engine`) end to end, as two OS processes over real QUIC + TLS,
//! compares it with SecretFlow SPU's Cheetah on the same networks and machine,
//! reproduces the shape of the Fusion paper's tables (Dong et al., NDSS 2023,
//! Tables II-IV and VI, and the LevioSA comparison) under emulated LAN / WAN
//! links, and renders everything into `BENCHMARKS.md`.
//!
//! | subcommand | what | module |
//! |---|---|---|
//! | `infer --net NAME --batch N [--link lan\|wan\|none] [--json]` | one secure batch of a zoo network; the client spawns itself as the server party; prints one JSON object | [`infer`] |
//! | `spu --net NAME --batch N` | the SPU peer (`shared/peers/spu/bench.py`) and its JSON | [`spu`] |
//! | `compare [--cases mlp-mnist:128,cnn-mnist:16,lenet:1] [--rounds K]` | ours and SPU alternating, ratios of bytes and time, to `results/compare.jsonl` | [`compare`] |
//! | `tables [--backends cheetah,...] [--links lan,wan] [--budget-s S]` | paper-shaped tables from measured and extrapolated batches, per backend, to `results/tables.jsonl` (the report puts the backends side by side with the paper's Tables II-III, [`paper`]) | [`tables`], [`fit`], [`paper`] |
//! | `report --in results --out BENCHMARKS.md` | Markdown tables and SVG charts (`docs/bench/`) | [`report`], [`svg`] |
//! | `elements [--n N] [--bits 32,37] [--reps K] [--json]` | bits and time per element of the OT non-linear primitives (millionaire, DReLU, ReLU, truncations, 2x2 max pool) on the silent-OT engine, both parties in-process over QUIC on 127.0.0.1, every result checked | [`elements`] |
//!
//! Zoo networks (`fusion_nn::zoo`): `mlp-bc`, `mlp-mnist`, `cnn-mnist`,
//! `cnn-cifar10`, `lenet`, `fmnist-cnn`, `timit-dnn`, `resnet50`, with seeded
//! random weights (`--seed`) and synthetic inputs.
//!
//! ## Examples
//!
//! ```text
//! export CARGO_TARGET_DIR=target-bench
//! cargo build --release -p fusion-bench
//! B=$CARGO_TARGET_DIR/release/fusion-bench
//! $B infer --net mlp-mnist --batch 128 --json          # loopback
//! $B infer --net cnn-mnist --batch 16 --link wan       # through the WAN relay
//! $B spu --net cnn-mnist --batch 16                    # needs the SPU venv
//! $B compare --rounds 2                                # ours vs SPU, 3 cases
//! $B tables --links lan,wan --budget-s 14400
//! $B report --in results --out BENCHMARKS.md
//! ```
//!
//! ## The full campaign (run on a quiet machine; release build)
//!
//! ```text
//! B=target-bench/release/fusion-bench
//! $B compare --rounds 3 --out results/compare.jsonl            # ~8 min (3 x ~2.5 min)
//! $B tables --links lan,wan --out results/tables.jsonl         # see below
//! $B report --in results --out BENCHMARKS.md --svg-dir docs/bench --note NOTE.md
//! ```
//!
//! `tables` runs six small batches per link (cnn-mnist 8 and 32,
//! cnn-cifar10 4 and 16, timit-dnn 2 and 8), which takes a few minutes, plus one
//! ResNet50 sample per link, which dominates. On the 2-core VM, one ResNet50
//! sample over loopback took 271 s and 1.9 GB in the batch, and about 10 min
//! for the whole process (model build and weight encoding included), with a
//! server-party peak of about 11 GB RSS. Expect roughly 25-35 min for
//! `--links lan,wan`. `--parts queries,leviosa` leaves ResNet50 out;
//! `--budget-s` caps the whole run.
//!
//! `infer --json` prints, among others: `net`, `batch`, `link`, `setup_s`,
//! `setup_bytes`, `wall_s`, `bytes_server_to_client`, `bytes_client_to_server`,
//! `per_sample_ms`, `per_sample_kib`, `argmax_agreement`, `max_logit_error`,
//! `phases` (per engine phase: seconds and bytes per direction), `steps` (the
//! same per schedule step: which layers take the time), `ring_bits`,
//! `frac_bits`, `he_preset`, `ot`, `machine`, `timestamp` (see
//! [`infer::InferResult`]). Without `--json` it prints a short summary.
//! Progress goes to stderr.
//!
//! ## How the two processes work
//!
//! See [`infer`]: the parent is the client and the reference (it runs the
//! plaintext fixed-point engine on the same seeded model to compute
//! `argmax_agreement`, a benchmark-only shortcut); the child (`party-server`,
//! hidden) is the server party; the LAN / WAN relay runs in the parent. The
//! child exits when the parent closes its stdin or dies, and on time-outs.

#![recursion_limit = "256"]

pub mod compare;
pub mod elements;
pub mod error;
pub mod extraction;
pub mod fit;
pub mod infer;
pub mod load;
pub mod machine;
pub mod output_figure;
pub mod paper;
pub mod record;
pub mod report;
pub mod spu;
pub mod svg;
pub mod tables;

pub use error::{BenchError, Result};
