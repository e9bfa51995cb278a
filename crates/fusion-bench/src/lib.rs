//! # fusion-bench: benchmarks for Fusion
//!
//! Criterion benches per layer and the reproduction of the Fusion paper's
//! tables (Dong et al., NDSS 2023) under emulated LAN and WAN links.
//!
//! Work in progress: see issue 8.
