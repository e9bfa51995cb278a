//! # fusion-attacks: model extraction against Fusion's inference service
//!
//! A client that legitimately queries a Fusion service learns the model's
//! outputs on inputs of its choice. This crate runs two published
//! model-extraction attacks through an [`Oracle`] (the service as the client
//! sees it) and measures what they steal:
//!
//! | module | attack |
//! |---|---|
//! | [`jbda`] | A1: Jacobian-based dataset augmentation (Papernot et al., AsiaCCS 2017): a substitute model |
//! | [`carlini`] | A2: cryptanalytic extraction (Carlini, Jagielski, Mironov, CRYPTO 2020): the weights of a one-hidden-layer ReLU network |
//! | [`oracle`] | the [`Oracle`] trait; the fixed-point plaintext engine (with the secure engine's truncation error modelled), an f64 oracle, label-only output |
//! | [`dense`] | fully connected ReLU networks in f64 (ground truth and recovered networks) |
//!
//! Defences: only `none` and a plaintext model of label-only output
//! ([`oracle::LabelOnly`]); output modes computed on shares are not part of
//! this crate.

pub mod carlini;
pub mod dense;
pub mod error;
pub mod jbda;
mod linalg;
pub mod oracle;

pub use error::{AttackError, Result};
pub use oracle::{Oracle, OracleAnswer};
