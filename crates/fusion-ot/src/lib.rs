//! # fusion-ot: OT-based non-linear layers for Fusion's semi-honest engine
//!
//! Millionaires' comparison, DReLU, ReLU, truncation, max pool and products on
//! additive shares in `Z_{2^l}` (CrypTFlow2, ePrint 2020/1002; Cheetah, ePrint
//! 2022/207), on top of CryProt's silent OT with IKNP as an alternative flavour.
//!
//! Work in progress: see issue 5.
