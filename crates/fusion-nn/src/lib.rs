//! # fusion-nn: networks for Fusion
//!
//! The layer graph, plaintext float and fixed-point reference engines, model
//! files and training, and the two-party secure inference engine.
//!
//! Work in progress: see issues 3 and 7.
