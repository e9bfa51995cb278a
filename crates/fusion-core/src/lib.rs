//! # fusion-core: Fusion's mix-and-check
//!
//! Fusion (Dong et al., NDSS 2023) makes semi-honest two-party inference
//! verifiable against a malicious server: the client mixes `B` copies of each
//! of its `R` queries with `T` public samples under a secret permutation, runs
//! the batch through any semi-honest engine, and accepts only if the public
//! accuracy reaches a threshold and all copies agree.
//!
//! This crate holds the protocol-independent parts, and the ring of additive
//! shares ([`ring`]) that the engines share.

pub mod ring;
