//! The evaluator: evaluation of half-gates garbled circuits, as a synchronous
//! state machine without I/O.
//!
//! **What it computes.** Given the public [`Circuit`], a [`GarbledCircuit`]
//! (tables and output decoding bits) and one label per input wire, the
//! active label of every wire, gate by gate (Zahur, Rosulek, Evans, "Two
//! Halves Make a Whole", EUROCRYPT 2015, Fig. 2, evaluation), with
//! `s_a = lsb(A)`, `s_b = lsb(B)` and the `g`-th AND's tweaks `j = 2g`,
//! `j' = 2g + 1`:
//!
//! - XOR: `C = A ⊕ B`; NOT: `C = A` (the garbler swapped the meaning);
//! - AND: `W_G = H(A, j) ⊕ s_a·T_G`, `W_E = H(B, j') ⊕ s_b·(T_E ⊕ A)`,
//!   `C = W_G ⊕ W_E` (two hashes per AND gate, batched per AES call).
//!
//! The output bit of an output wire with active label `C` and decoding bit
//! `d` is `lsb(C) ⊕ d`; constant outputs are known from the public circuit.
//! Selections by a permute bit are masks, not branches.
//!
//! **What the evaluator learns**: the output bits, nothing else (see
//! [`crate::garble`]). The garbler learns nothing from this step.
//!
//! **One evaluation per garbled circuit.** An [`Evaluator`] remembers the ids
//! of the circuits it evaluated and refuses an id it has seen
//! ([`GcError::RepeatedCircuit`]): a second evaluation of the same tables
//! with other input labels would hold two labels of some wire and reveal `Δ`.
//! Inputs are consumed ([`GarbledCircuit`] and [`Labels`] are not `Clone`).

use std::collections::HashSet;

use crate::circuit::{Circuit, Gate};
use crate::error::{GcError, Result};
use crate::garble::{GarbledCircuit, and_run, select};
use crate::hash::{MAX_BATCH, Tccr, tweak};
use crate::label::Labels;

/// AND gates evaluated per batch (two hashes each).
const EVAL_BATCH: usize = MAX_BATCH / 2;

/// Evaluates garbled circuits of one session, each id at most once.
#[derive(Debug, Default)]
pub struct Evaluator {
    used: HashSet<u64>,
    /// One more than the largest id evaluated (0 before the first).
    floor: u64,
    hash: Tccr,
}

impl Evaluator {
    /// An evaluator that has evaluated nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the circuit id `id` was already evaluated (or refused after
    /// its inputs were checked).
    pub fn has_used(&self, id: u64) -> bool {
        self.used.contains(&id)
    }

    /// The smallest circuit id the driver ([`crate::session`]) accepts: one
    /// more than the largest id evaluated so far. A garbler numbers its
    /// circuits with an increasing counter, so an older id is a replay.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Refuses an id that was already evaluated ([`GcError::RepeatedCircuit`]).
    pub fn check_fresh(&self, id: u64) -> Result<()> {
        if self.used.contains(&id) {
            return Err(GcError::RepeatedCircuit { id });
        }
        Ok(())
    }

    /// Evaluates `gc` (a garbling of `circuit`) on the garbler's input labels
    /// and the evaluator's input labels (one per input wire of each party,
    /// in the circuit's order) and returns the output bits.
    ///
    /// Errors: [`GcError::RepeatedCircuit`] for an id already evaluated,
    /// [`GcError::LabelCount`] for wrong label counts, [`GcError::Mismatch`]
    /// when `gc` does not have the circuit's size. After the checks pass the
    /// id is marked as used.
    pub fn evaluate(
        &mut self,
        circuit: &Circuit,
        gc: GarbledCircuit,
        garbler_labels: Labels,
        evaluator_labels: Labels,
    ) -> Result<Vec<bool>> {
        self.check_fresh(gc.id)?;
        if gc.tables.len() != 2 * circuit.ands {
            return Err(GcError::Mismatch {
                what: "AND gates of the garbled circuit",
                ours: circuit.ands.to_string(),
                theirs: (gc.tables.len() / 2).to_string(),
            });
        }
        if gc.decoding.len() != circuit.outputs.len() {
            return Err(GcError::Mismatch {
                what: "outputs of the garbled circuit",
                ours: circuit.outputs.len().to_string(),
                theirs: gc.decoding.len().to_string(),
            });
        }
        circuit.check_inputs(
            "garbler input labels",
            garbler_labels.len(),
            circuit.garbler_inputs.len(),
        )?;
        circuit.check_inputs(
            "evaluator input labels",
            evaluator_labels.len(),
            circuit.evaluator_inputs.len(),
        )?;
        let (id, tables, decoding) = gc.into_tables_and_decoding();
        self.used.insert(id);
        self.floor = self.floor.max(id.saturating_add(1));
        let mut w = Labels(vec![0u128; circuit.wires]);
        for (&i, &l) in circuit.garbler_inputs.iter().zip(&garbler_labels.0) {
            w.0[i as usize] = l;
        }
        for (&i, &l) in circuit.evaluator_inputs.iter().zip(&evaluator_labels.0) {
            w.0[i as usize] = l;
        }
        drop((garbler_labels, evaluator_labels));
        evaluate_gates(&self.hash, circuit, id, &tables, &mut w.0);
        Ok(circuit
            .outputs
            .iter()
            .zip(&decoding)
            .map(|(o, &d)| match o.as_constant() {
                Some(c) => c,
                None => (w.0[o.index()] & 1 == 1) ^ d,
            })
            .collect())
    }
}

/// Evaluates the gates in order; `w` holds the input labels and receives the
/// active label of every wire. `tables` has two ciphertexts per AND gate.
fn evaluate_gates(hash: &Tccr, circuit: &Circuit, id: u64, tables: &[u128], w: &mut [u128]) {
    let gates = &circuit.gates;
    let mut g: usize = 0;
    let mut k = 0;
    let mut xs = [0u128; MAX_BATCH];
    let mut ts = [0u128; MAX_BATCH];
    let mut hs = [0u128; MAX_BATCH];
    let mut batch = [(0u32, 0u32, 0u32); EVAL_BATCH];
    while k < gates.len() {
        match gates[k] {
            Gate::Xor { a, b, out } => {
                w[out as usize] = w[a as usize] ^ w[b as usize];
                k += 1;
            }
            Gate::Not { a, out } => {
                w[out as usize] = w[a as usize];
                k += 1;
            }
            Gate::And { .. } => {
                let n = and_run(gates, &mut k, &mut batch);
                for (j, &(a, b, _)) in batch[..n].iter().enumerate() {
                    let gj = (g + j) as u64;
                    xs[2 * j] = w[a as usize];
                    xs[2 * j + 1] = w[b as usize];
                    ts[2 * j] = tweak(id, 2 * gj);
                    ts[2 * j + 1] = tweak(id, 2 * gj + 1);
                }
                hash.hash(&xs[..2 * n], &ts[..2 * n], &mut hs[..2 * n]);
                for (j, &(a, b, out)) in batch[..n].iter().enumerate() {
                    let (la, lb) = (w[a as usize], w[b as usize]);
                    let (tg, te) = (tables[2 * (g + j)], tables[2 * (g + j) + 1]);
                    let wg = hs[2 * j] ^ select(la, tg);
                    let we = hs[2 * j + 1] ^ select(lb, te ^ la);
                    w[out as usize] = wg ^ we;
                }
                g += n;
            }
        }
    }
    xs.iter_mut().chain(hs.iter_mut()).for_each(|v| *v = 0);
}
