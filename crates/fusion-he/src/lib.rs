//! # fusion-he: homomorphic linear layers for Fusion's semi-honest engine
//!
//! RLWE (BFV-style) encryption over `Z_q[X]/(X^N + 1)` with plaintext modulus
//! `t = 2^l` and Cheetah's polynomial-coefficient encoding (Huang et al., USENIX
//! Security 2022, ePrint 2022/207), used to evaluate the linear layers of a
//! network (fully connected, conv2d, batch norm, average pooling) on additively
//! shared inputs, producing additively shared outputs.
//!
//! Work in progress: see issue 6.
