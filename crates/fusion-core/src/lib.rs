//! # fusion-core: Fusion's mix-and-check
//!
//! Fusion (Dong et al., "Fusion: Efficient and Secure Inference Resilient to
//! Malicious Servers", NDSS 2023) makes semi-honest two-party inference
//! verifiable against a malicious server: the client mixes `B` copies of each
//! of its `R` queries with `T` public samples whose labels it knows, shuffles
//! the `N = RB + T` samples under a secret uniformly random permutation, runs
//! the batch through any semi-honest engine, and accepts only if the accuracy
//! on the public samples reaches a threshold `delta` and all copies of every
//! query agree (paper section IV, Fig. 3 and Fig. 4).
//!
//! This crate holds the protocol-independent parts:
//!
//! - [`search`]: the paper's parameter search `Pi_Search` (section IV-C,
//!   Fig. 4) and a variant against the slack-aware bound, in exact arithmetic;
//! - [`security`]: exact cheating probabilities (the paper's bound, the exact
//!   maximum over corrupted copy-groups, and the slack-aware bound of
//!   docs/DESIGN.md section 2 that accounts for the `s = T - ceil(delta T)` public
//!   samples a server may corrupt for free) and a Monte Carlo simulator of the
//!   cheating game;
//! - [`mix`]: building the shuffled batch and keeping the secret map;
//! - [`verify`]: the accuracy and consistency checks, a Clopper-Pearson bound
//!   on the model's true accuracy ([`stats`]) and the human/JSON [`verify::Report`];
//! - [`engine`]: the seam to any two-party inference engine and the driver
//!   [`engine::run_fusion`] (plan, mix, infer, unmix, verify);
//! - [`ring`]: the ring of additive shares that the engines share.
//!
//! ## Threat model (what the checks do and do not give)
//!
//! - The server is malicious, the client semi-honest. The client's samples
//!   stay private because the engine only ever shows the server encryptions or
//!   random shares; Fusion adds no leakage beyond the batch size `N`.
//! - The server cannot tell copies from public samples, so corrupting a query
//!   undetected needs the luck of hitting all `B` copies of a query and at
//!   most `s` public samples. [`security`] computes that probability exactly.
//! - An abort tells the server that it was caught: a selective-failure channel
//!   of one bit per session. Clients should not re-run the same queries with a
//!   server that caused an abort.
//! - Public samples must be indistinguishable from queries to the server: same
//!   shape and encoding ([`mix`] checks shapes) and a fresh permutation per batch.
//! - Consistency is checked on class labels by default: a server may still
//!   change the *scores* of every copy as long as the argmax is unchanged.
//! - A curious client is out of scope of this crate: it learns the model's
//!   outputs on `N` samples. Output perturbation against extraction (the
//!   paper's use of Lee et al.'s reverse sigmoid) and malicious clients that
//!   shift their shares (MUSE, Lehmkuhl et al., USENIX Security 2021) are not
//!   covered here.

pub mod engine;
pub mod error;
pub mod field;
pub mod mix;
pub mod output;
pub mod ring;
pub mod search;
pub mod security;
pub mod split;
pub mod stats;
pub mod threshold;
pub mod verify;

mod exact;

pub use error::Error;
pub use threshold::Threshold;
