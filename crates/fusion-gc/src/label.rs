//! Wire labels: [`Label`] (one 128-bit label), [`Labels`] (a vector of them)
//! and the garbler's global offset `Δ`, all wiped from memory when dropped.
//!
//! Under free-XOR (Kolesnikov–Schneider, ICALP 2008) every wire `w` has a
//! zero-label `W⁰_w` and a one-label `W¹_w = W⁰_w ⊕ Δ` for one global,
//! secret `Δ` per garbled circuit. `lsb(Δ) = 1`, so the two labels of a wire
//! differ in their least significant bit, the *permute* (point-and-permute)
//! bit that selects a garbled-table row without revealing the value.

use rand::{CryptoRng, Rng};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{GcError, Result};

/// Bytes of one label on the wire.
pub const LABEL_BYTES: usize = 16;

/// One 128-bit wire label. Wiped when dropped; its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Label(u128);

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Label(..)")
    }
}

impl Label {
    /// The label with the given 128 bits.
    pub fn from_u128(v: u128) -> Self {
        Label(v)
    }

    /// The label's 128 bits.
    pub fn to_u128(&self) -> u128 {
        self.0
    }

    /// The permute (point-and-permute) bit: the least significant bit.
    pub fn permute_bit(&self) -> bool {
        self.0 & 1 == 1
    }

    /// The 16 little-endian bytes of the label.
    pub fn to_bytes(&self) -> [u8; LABEL_BYTES] {
        self.0.to_le_bytes()
    }

    /// The label of 16 little-endian bytes.
    pub fn from_bytes(b: [u8; LABEL_BYTES]) -> Self {
        Label(u128::from_le_bytes(b))
    }
}

/// A vector of wire labels, wiped from memory when dropped. Not `Clone`:
/// labels are moved, never duplicated.
#[derive(PartialEq, Eq, Default)]
pub struct Labels(pub(crate) Vec<u128>);

impl Drop for Labels {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Labels({} labels, ..)", self.0.len())
    }
}

impl Labels {
    /// Labels from a vector of [`Label`]s.
    pub fn from_labels(labels: Vec<Label>) -> Self {
        Labels(labels.iter().map(Label::to_u128).collect())
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Label `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<Label> {
        self.0.get(i).map(|&v| Label(v))
    }

    /// Appends the labels of `other`.
    pub fn append(&mut self, mut other: Labels) {
        self.0.append(&mut other.0);
    }

    /// The wire format: 16 little-endian bytes per label, in order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * LABEL_BYTES);
        for v in &self.0 {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parses exactly `expected` labels (`16·expected` bytes; anything else
    /// is [`GcError::LabelLength`]). `what` names the labels in the error.
    pub fn from_bytes(bytes: &[u8], expected: usize, what: &'static str) -> Result<Self> {
        if Some(bytes.len()) != expected.checked_mul(LABEL_BYTES) {
            return Err(GcError::LabelLength {
                what,
                expected,
                got_bytes: bytes.len(),
            });
        }
        let mut v = Vec::with_capacity(expected);
        let mut w = [0u8; LABEL_BYTES];
        for c in bytes.chunks_exact(LABEL_BYTES) {
            w.copy_from_slice(c);
            v.push(u128::from_le_bytes(w));
        }
        w.zeroize();
        Ok(Labels(v))
    }
}

/// The garbler's global free-XOR offset `Δ`, with `lsb(Δ) = 1`. Secret to
/// the garbler; wiped when dropped; never serialised.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Delta(u128);

impl Delta {
    /// A fresh uniformly random offset with its least significant bit set.
    pub(crate) fn random<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Delta(random_u128(rng) | 1)
    }

    pub(crate) fn get(&self) -> u128 {
        self.0
    }

    /// A copy (for the garbler's and the evaluator's input pairs of one
    /// garbling, which share `Δ`).
    pub(crate) fn copy(&self) -> Self {
        Delta(self.0)
    }
}

pub(crate) fn random_u128<R: Rng + ?Sized>(rng: &mut R) -> u128 {
    (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
}

/// The garbler's labels for the evaluator's input wires: the zero-labels and
/// `Δ`, so that both labels of each wire are known. They leave this type only
/// as the sender's message pairs of the oblivious transfer (inside
/// [`crate::session`]) or, for a party that knows the evaluator's input bits
/// (tests, a trusted local run), as the selected labels
/// ([`EvaluatorInputPairs::select`]). Not `Clone`; wiped when dropped.
pub struct EvaluatorInputPairs {
    pub(crate) zero: Labels,
    pub(crate) delta: Delta,
}

impl std::fmt::Debug for EvaluatorInputPairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EvaluatorInputPairs({} wires, ..)", self.zero.len())
    }
}

impl EvaluatorInputPairs {
    /// The number of evaluator input wires.
    pub fn len(&self) -> usize {
        self.zero.len()
    }

    /// Whether the evaluator has no inputs.
    pub fn is_empty(&self) -> bool {
        self.zero.is_empty()
    }

    /// The labels encoding `bits` (one per evaluator input wire), consuming
    /// the pairs. This is what the oblivious transfer delivers; use it only
    /// where the evaluator's inputs are known to the caller anyway.
    pub fn select(self, bits: &[bool]) -> Result<Labels> {
        if bits.len() != self.zero.len() {
            return Err(GcError::LabelCount {
                what: "evaluator input bits",
                expected: self.zero.len(),
                got: bits.len(),
            });
        }
        let d = self.delta.get();
        Ok(Labels(
            self.zero
                .0
                .iter()
                .zip(bits)
                .map(|(&w, &b)| w ^ (d & 0u128.wrapping_sub(u128::from(b))))
                .collect(),
        ))
    }

    /// The OT sender's message pairs `(W⁰, W¹)` per evaluator input wire,
    /// consuming the pairs. The caller must wipe the returned vector.
    pub(crate) fn into_ot_pairs(self) -> Vec<[u128; 2]> {
        let d = self.delta.get();
        self.zero.0.iter().map(|&w| [w, w ^ d]).collect()
    }
}

/// The garbler's labels for its own input wires when its input bits are not
/// known yet at garbling time (offline garbling, online inputs): the
/// zero-labels and `Δ`. They leave this type only as the labels encoding the
/// garbler's bits ([`GarblerInputPairs::split_front`],
/// [`GarblerInputPairs::select`]), one label per wire. Not `Clone`; wiped
/// when dropped.
pub struct GarblerInputPairs {
    pub(crate) zero: Labels,
    pub(crate) delta: Delta,
}

impl std::fmt::Debug for GarblerInputPairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GarblerInputPairs({} wires, ..)", self.zero.len())
    }
}

impl GarblerInputPairs {
    /// The number of garbler input wires left to encode.
    pub fn len(&self) -> usize {
        self.zero.len()
    }

    /// Whether no garbler input wire is left.
    pub fn is_empty(&self) -> bool {
        self.zero.is_empty()
    }

    /// Encodes the first `bits.len()` remaining garbler input wires with
    /// `bits` and returns their labels and the pairs of the wires after them.
    pub fn split_front(mut self, bits: &[bool]) -> Result<(Labels, GarblerInputPairs)> {
        if bits.len() > self.zero.len() {
            return Err(GcError::LabelCount {
                what: "garbler input bits",
                expected: self.zero.len(),
                got: bits.len(),
            });
        }
        let rest = Labels(self.zero.0.split_off(bits.len()));
        let delta = self.delta.copy();
        let front = self.select(bits)?;
        Ok((front, GarblerInputPairs { zero: rest, delta }))
    }

    /// The labels encoding `bits` (one per remaining garbler input wire),
    /// consuming the pairs.
    pub fn select(self, bits: &[bool]) -> Result<Labels> {
        if bits.len() != self.zero.len() {
            return Err(GcError::LabelCount {
                what: "garbler input bits",
                expected: self.zero.len(),
                got: bits.len(),
            });
        }
        let d = self.delta.get();
        Ok(Labels(
            self.zero
                .0
                .iter()
                .zip(bits)
                .map(|(&w, &b)| w ^ (d & 0u128.wrapping_sub(u128::from(b))))
                .collect(),
        ))
    }
}
