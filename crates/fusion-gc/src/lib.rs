//! Garbled circuits for Fusion's non-linear layers: half-gates garbling with
//! free-XOR and point-and-permute over a fixed-key AES hash, a circuit
//! builder with the arithmetic gadgets on additive shares the backends need,
//! and a thin async driver over a [`fusion_net::Channel`] that obtains the
//! evaluator's input labels by IKNP-style oblivious transfer
//! ([`fusion_ot::OtEngine`] with [`fusion_ot::Iknp`]).
//!
//! # Papers
//!
//! - Zahur, Rosulek, Evans, "Two Halves Make a Whole: Reducing Data Transfer
//!   in Garbled Circuits using Half Gates", EUROCRYPT 2015 (half-gates:
//!   two ciphertexts per AND gate, XOR free).
//! - Kolesnikov, Schneider, "Improved Garbled Circuit: Free XOR Gates and
//!   Applications", ICALP 2008 (free-XOR).
//! - Beaver, Micali, Rogaway, STOC 1990 (point-and-permute).
//! - Guo, Katz, Wang, Yu, "Efficient and Secure Multiparty Computation from
//!   Fixed-Key Block Ciphers", IEEE S&P 2020 (the tweakable circular
//!   correlation-robust hash from fixed-key AES, and that half-gates is
//!   secure with it).
//! - Ishai, Kilian, Nissim, Petrank, CRYPTO 2003 (IKNP OT extension, through
//!   fusion-ot).
//!
//! # Files
//!
//! | file | what it computes | cost |
//! |---|---|---|
//! | [`circuit`] | circuit builder (constants folded, gates ordered by AND depth), plaintext evaluation | — |
//! | [`hash`] | `H(x, i) = π(π(x) ⊕ i) ⊕ π(x)`, `π` = AES-128 under a fixed key | 2 AES per hash |
//! | [`label`] | wire labels, `Δ` (wiped on drop) | — |
//! | [`garble`] | half-gates garbler (state machine, no I/O) | 4 hashes and **32 bytes** per AND; XOR, NOT free |
//! | [`evaluate`] | half-gates evaluator (state machine, no I/O), refuses a used circuit id | 2 hashes per AND |
//! | [`wire`] | bounded, length-checked wire format of tables, labels, decoding bits | `32·A` + `16` per label + `⌈outputs/8⌉` bytes |
//! | [`session`] | async driver: header flight, garbler labels, decoding bits and tables streamed, evaluator labels by OT | 1 flight + one-way stream + OT (1 ROT, `1 + 256` bits per evaluator input bit) |
//! | [`gadgets::arith`] | add / sub mod `2^l` and mod `p` | `l − 1` (mod `2^l`); ≤ `3l + 1` / `2l` (mod `p`) ANDs |
//! | [`gadgets::compare`] | unsigned / signed `x < y` | `l` ANDs |
//! | [`gadgets::mux`] | `s ? b : a` on `l` bits | `l` ANDs |
//! | [`gadgets::relu`] | ReLU on additive shares mod `2^l`, reconstructing the input and masking the output | `3(l − 1)` ANDs |
//! | [`gadgets::max`] | max of `k` signed values (plain wires or additive shares) | `2l(k − 1)` ANDs (+ reconstruction and masking) |
//!
//! # Security (semi-honest)
//!
//! - The garbler learns nothing; the evaluator learns the circuit's outputs
//!   (shares, when the garbler masks them) and nothing else.
//! - Each garbling is used for exactly one evaluation: [`garble::Garbling`],
//!   [`garble::GarbledCircuit`] and [`Labels`] are not `Clone` and are
//!   consumed; the circuit id is in every hash tweak; an [`Evaluator`]
//!   refuses an id it has seen ([`GcError::RepeatedCircuit`]). Both labels of
//!   a wire leave the garbler only as OT sender messages.
//! - `Δ` and labels are wiped from memory when dropped (`zeroize`).
//! - Peer data is parsed with lengths computed from the public circuit; wrong
//!   sizes are typed errors ([`GcError`]), never panics.
//! - Secret bits (permute bits, input bits) select by masks, not branches or
//!   indices.
//! - All randomness comes from an explicit `&mut impl CryptoRng`.

pub mod circuit;
pub mod error;
pub mod evaluate;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod gadgets;
pub mod garble;
pub mod hash;
pub mod label;
pub mod session;
pub mod wire;

pub use circuit::{Builder, Circuit, Wire};
pub use error::{GcError, Result};
pub use evaluate::Evaluator;
pub use garble::{GarbledCircuit, Garbler, Garbling, TABLE_BYTES_PER_AND};
pub use label::{EvaluatorInputPairs, GarblerInputPairs, LABEL_BYTES, Label, Labels};
pub use session::{
    GcStats, evaluate_remote, garble_remote, receive_evaluator_labels, send_evaluator_labels,
};
