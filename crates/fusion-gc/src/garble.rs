//! The garbler: half-gates garbling with free-XOR and point-and-permute, as a
//! synchronous state machine without I/O.
//!
//! **What it computes.** For a public [`Circuit`] and a fresh secret offset
//! `Δ` (`lsb(Δ) = 1`, free-XOR: Kolesnikov–Schneider, ICALP 2008), random
//! zero-labels for the input wires and, gate by gate, the zero-label of every
//! other wire:
//!
//! - XOR: `C⁰ = A⁰ ⊕ B⁰`; NOT: `C⁰ = A⁰ ⊕ Δ` (no table);
//! - AND, half-gates (Zahur, Rosulek, Evans, "Two Halves Make a Whole",
//!   EUROCRYPT 2015, §3 and the garbling algorithm of its Fig. 2), with
//!   `p_a = lsb(A⁰)`, `p_b = lsb(B⁰)` and the `g`-th AND's tweaks `j = 2g`,
//!   `j' = 2g + 1`:
//!   - generator half gate: `T_G = H(A⁰, j) ⊕ H(A¹, j) ⊕ p_b·Δ`,
//!     `W_G⁰ = H(A⁰, j) ⊕ p_a·T_G`;
//!   - evaluator half gate: `T_E = H(B⁰, j') ⊕ H(B¹, j') ⊕ A⁰`,
//!     `W_E⁰ = H(B⁰, j') ⊕ p_b·(T_E ⊕ A⁰)`;
//!   - `C⁰ = W_G⁰ ⊕ W_E⁰`; the table is `(T_G, T_E)`: **exactly two
//!     ciphertexts, 32 bytes, per AND gate**.
//!
//! `H` is the fixed-key AES TCCR hash of [`crate::hash`] (Guo–Katz–Wang–Yu,
//! S&P 2020, §7). The output decoding information is the permute bit
//! `lsb(C⁰)` of each output wire: the evaluator's output bit is
//! `lsb(C) ⊕ lsb(C⁰)`.
//!
//! **What each party learns** (semi-honest). The garbler learns nothing (it
//! sends only). The evaluator, holding one label per input wire, learns one
//! label per wire, which (by the TCCR property and `Δ` being secret) is
//! independent of the wire's value except through the decoding bits, i.e. it
//! learns the output bits and nothing else. Circuits whose outputs are masked
//! by a garbler-chosen value (the share gadgets of [`crate::gadgets`]) make
//! those output bits a share, uniformly random on their own.
//!
//! **Life cycle.** [`Garbler::garble`] numbers garbled circuits with a
//! per-session counter (the circuit id, also part of every hash tweak) and
//! returns a [`Garbling`]; [`Garbling::into_parts`] consumes it with the
//! garbler's input bits and yields what is sent (the [`GarbledCircuit`], the
//! garbler's input labels) and the label pairs of the evaluator's inputs for
//! the oblivious transfer. Nothing is cloned: each garbling is used once.

use rand::{CryptoRng, Rng};

use crate::circuit::{Circuit, Gate};
use crate::error::{GcError, Result, param};
use crate::hash::{MAX_BATCH, Tccr, tweak};
use crate::label::{Delta, EvaluatorInputPairs, GarblerInputPairs, Labels, random_u128};
use crate::wire::{decode_bits, decode_tables, encode_bits, encode_tables};

pub use crate::wire::TABLE_BYTES_PER_AND;

/// AND gates garbled per batch (four hashes each).
const GARBLE_BATCH: usize = MAX_BATCH / 4;

/// `Δ` if `bit`, else `0`, without a branch on `bit`.
#[inline(always)]
pub(crate) fn select(bit: u128, v: u128) -> u128 {
    v & 0u128.wrapping_sub(bit & 1)
}

/// Garbles circuits of one session, numbering them with a counter.
#[derive(Debug)]
pub struct Garbler {
    next_id: u64,
    hash: Tccr,
}

impl Default for Garbler {
    fn default() -> Self {
        Self::new()
    }
}

impl Garbler {
    /// A garbler whose first circuit gets id `0`.
    pub fn new() -> Self {
        Self::starting_at(0)
    }

    /// A garbler whose first circuit gets id `first_id`.
    pub fn starting_at(first_id: u64) -> Self {
        Garbler {
            next_id: first_id,
            hash: Tccr::new(),
        }
    }

    /// The id the next garbled circuit gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Garbles `circuit` under a fresh `Δ` and fresh input labels drawn from
    /// `rng`, with the next circuit id.
    pub fn garble<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        circuit: &Circuit,
        rng: &mut R,
    ) -> Result<Garbling> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| param("circuit id counter exhausted"))?;
        let delta = Delta::random(rng);
        let d = delta.get();
        let mut w = Labels(vec![0u128; circuit.wires]);
        let mut garbler_zero = Labels(Vec::with_capacity(circuit.garbler_inputs.len()));
        for &i in &circuit.garbler_inputs {
            let l = random_u128(rng);
            w.0[i as usize] = l;
            garbler_zero.0.push(l);
        }
        let mut evaluator_zero = Labels(Vec::with_capacity(circuit.evaluator_inputs.len()));
        for &i in &circuit.evaluator_inputs {
            let l = random_u128(rng);
            w.0[i as usize] = l;
            evaluator_zero.0.push(l);
        }
        let tables = garble_gates(&self.hash, circuit, id, d, &mut w.0);
        let decoding = circuit
            .outputs
            .iter()
            .map(|o| o.as_constant().is_none() && w.0[o.index()] & 1 == 1)
            .collect();
        Ok(Garbling {
            id,
            tables,
            decoding,
            garbler_zero,
            evaluator: EvaluatorInputPairs {
                zero: evaluator_zero,
                delta,
            },
        })
    }
}

/// Garbles the gates in order; `w` holds the input zero-labels and receives
/// every wire's zero-label. Returns the tables (2 ciphertexts per AND).
fn garble_gates(hash: &Tccr, circuit: &Circuit, id: u64, d: u128, w: &mut [u128]) -> Vec<u128> {
    let gates = &circuit.gates;
    let mut tables = Vec::with_capacity(2 * circuit.ands);
    let mut g: u64 = 0;
    let mut k = 0;
    let mut xs = [0u128; MAX_BATCH];
    let mut ts = [0u128; MAX_BATCH];
    let mut hs = [0u128; MAX_BATCH];
    let mut batch = [(0u32, 0u32, 0u32); GARBLE_BATCH];
    while k < gates.len() {
        match gates[k] {
            Gate::Xor { a, b, out } => {
                w[out as usize] = w[a as usize] ^ w[b as usize];
                k += 1;
            }
            Gate::Not { a, out } => {
                w[out as usize] = w[a as usize] ^ d;
                k += 1;
            }
            Gate::And { .. } => {
                let n = and_run(gates, &mut k, &mut batch);
                for (j, &(a, b, _)) in batch[..n].iter().enumerate() {
                    let (a0, b0) = (w[a as usize], w[b as usize]);
                    let (t0, t1) = (
                        tweak(id, 2 * (g + j as u64)),
                        tweak(id, 2 * (g + j as u64) + 1),
                    );
                    xs[4 * j..4 * j + 4].copy_from_slice(&[a0, a0 ^ d, b0, b0 ^ d]);
                    ts[4 * j..4 * j + 4].copy_from_slice(&[t0, t0, t1, t1]);
                }
                hash.hash(&xs[..4 * n], &ts[..4 * n], &mut hs[..4 * n]);
                for (j, &(a, b, out)) in batch[..n].iter().enumerate() {
                    let (a0, b0) = (w[a as usize], w[b as usize]);
                    let (pa, pb) = (a0 & 1, b0 & 1);
                    let h = &hs[4 * j..4 * j + 4];
                    let tg = h[0] ^ h[1] ^ select(pb, d);
                    let wg = h[0] ^ select(pa, tg);
                    let te = h[2] ^ h[3] ^ a0;
                    let we = h[2] ^ select(pb, te ^ a0);
                    w[out as usize] = wg ^ we;
                    tables.push(tg);
                    tables.push(te);
                }
                g += n as u64;
            }
        }
    }
    xs.iter_mut().chain(hs.iter_mut()).for_each(|v| *v = 0);
    tables
}

/// Collects the run of AND gates starting at `gates[*k]` that are
/// independent of each other (none reads another's output), at most
/// `batch.len()` of them; advances `*k` past them. Returns the run length
/// (at least 1).
pub(crate) fn and_run(gates: &[Gate], k: &mut usize, batch: &mut [(u32, u32, u32)]) -> usize {
    let mut n = 0;
    while *k < gates.len() && n < batch.len() {
        let Gate::And { a, b, out } = gates[*k] else {
            break;
        };
        if batch[..n].iter().any(|&(_, _, o)| o == a || o == b) {
            break;
        }
        batch[n] = (a, b, out);
        n += 1;
        *k += 1;
    }
    n
}

/// One garbled circuit before its garbler inputs are fixed (see the module
/// docs). Not `Clone`; its secrets are wiped when dropped.
pub struct Garbling {
    id: u64,
    tables: Vec<u128>,
    decoding: Vec<bool>,
    garbler_zero: Labels,
    evaluator: EvaluatorInputPairs,
}

impl std::fmt::Debug for Garbling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Garbling")
            .field("id", &self.id)
            .field("and_gates", &(self.tables.len() / 2))
            .finish_non_exhaustive()
    }
}

impl Garbling {
    /// The circuit id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Consumes the garbling: encodes the garbler's input `bits` (one per
    /// garbler input wire) and returns the garbled circuit and the garbler's
    /// input labels (both for the evaluator), and the label pairs of the
    /// evaluator's inputs (for the oblivious transfer).
    pub fn into_parts(
        self,
        bits: &[bool],
    ) -> Result<(GarbledCircuit, Labels, EvaluatorInputPairs)> {
        let Garbling {
            id,
            tables,
            decoding,
            garbler_zero,
            evaluator,
        } = self;
        if bits.len() != garbler_zero.len() {
            return Err(GcError::LabelCount {
                what: "garbler input bits",
                expected: garbler_zero.len(),
                got: bits.len(),
            });
        }
        let d = evaluator.delta.get();
        let active = Labels(
            garbler_zero
                .0
                .iter()
                .zip(bits)
                .map(|(&l, &b)| l ^ select(u128::from(b), d))
                .collect(),
        );
        Ok((
            GarbledCircuit {
                id,
                tables,
                decoding,
            },
            active,
            evaluator,
        ))
    }
}

impl Garbling {
    /// Consumes the garbling without fixing the garbler's input bits (offline
    /// garbling whose garbler inputs are known only later): returns the
    /// garbled circuit, the garbler's input label pairs (encoded later with
    /// [`GarblerInputPairs::split_front`] / [`GarblerInputPairs::select`]) and
    /// the evaluator's input label pairs (for the oblivious transfer).
    pub fn into_deferred(self) -> (GarbledCircuit, GarblerInputPairs, EvaluatorInputPairs) {
        let Garbling {
            id,
            tables,
            decoding,
            garbler_zero,
            evaluator,
        } = self;
        let garbler = GarblerInputPairs {
            zero: garbler_zero,
            delta: evaluator.delta.copy(),
        };
        (
            GarbledCircuit {
                id,
                tables,
                decoding,
            },
            garbler,
            evaluator,
        )
    }
}

/// What the evaluator needs besides the input labels: the circuit id, the
/// tables (two ciphertexts per AND gate) and the output decoding bits.
/// Public to the evaluator; not `Clone` (a garbled circuit is evaluated once).
#[derive(PartialEq, Eq)]
pub struct GarbledCircuit {
    pub(crate) id: u64,
    pub(crate) tables: Vec<u128>,
    pub(crate) decoding: Vec<bool>,
}

impl std::fmt::Debug for GarbledCircuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarbledCircuit")
            .field("id", &self.id)
            .field("and_gates", &self.and_count())
            .field("outputs", &self.decoding.len())
            .finish()
    }
}

impl GarbledCircuit {
    /// The circuit id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// AND gates (tables).
    pub fn and_count(&self) -> usize {
        self.tables.len() / 2
    }

    /// The tables in the wire format: `32 · and_count` bytes.
    pub fn table_bytes(&self) -> Vec<u8> {
        encode_tables(&self.tables)
    }

    /// The output decoding bits in the wire format (`⌈outputs/8⌉` bytes).
    pub fn decoding_bytes(&self) -> Vec<u8> {
        encode_bits(&self.decoding)
    }

    /// Parses a garbled circuit for `circuit` from the wire format; sizes are
    /// checked against the public circuit ([`GcError::TableLength`],
    /// [`GcError::Malformed`]).
    pub fn from_bytes(circuit: &Circuit, id: u64, tables: &[u8], decoding: &[u8]) -> Result<Self> {
        Ok(GarbledCircuit {
            id,
            tables: decode_tables(tables, circuit.and_count())?,
            decoding: decode_bits(decoding, circuit.output_count(), "output decoding bits")?,
        })
    }

    pub(crate) fn into_tables_and_decoding(self) -> (u64, Vec<u128>, Vec<bool>) {
        (self.id, self.tables, self.decoding)
    }
}
