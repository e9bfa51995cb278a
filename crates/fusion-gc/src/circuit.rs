//! Boolean circuits: the [`Builder`] and the finished, public [`Circuit`].
//!
//! A circuit has garbler input wires, evaluator input wires, XOR, AND and NOT
//! gates and an ordered list of output wires. Constants are not wires: the
//! builder folds them ([`Wire::ZERO`], [`Wire::ONE`]), so `x ∧ 0`, `x ⊕ 1`
//! and the like cost nothing and never reach the garbler. Under half-gates
//! garbling XOR and NOT are free and every AND costs two ciphertexts, so
//! [`Builder::and_count`] / [`Circuit::and_count`] is the circuit's cost,
//! known before garbling.
//!
//! [`Builder::finish`] orders the gates by AND depth (a stable topological
//! order in which the AND gates of one layer are adjacent and independent),
//! so that the garbler and evaluator can hash several AND gates per AES call.
//! Both parties build the same circuit from public parameters, and so agree
//! on the order.
//!
//! The circuit is public: it carries no inputs and no secrets.

use crate::error::{GcError, Result};

/// A wire of a circuit under construction, or a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Wire(u32);

impl Wire {
    /// The constant `0`.
    pub const ZERO: Wire = Wire(u32::MAX);
    /// The constant `1`.
    pub const ONE: Wire = Wire(u32::MAX - 1);
    /// Most wires a circuit may have.
    pub const MAX_WIRES: u32 = u32::MAX - 2;

    /// The constant `b`.
    pub const fn constant(b: bool) -> Wire {
        if b { Wire::ONE } else { Wire::ZERO }
    }

    /// The constant's value, if this is a constant.
    pub const fn as_constant(self) -> Option<bool> {
        match self {
            Wire::ZERO => Some(false),
            Wire::ONE => Some(true),
            _ => None,
        }
    }

    pub(crate) const fn index(self) -> usize {
        self.0 as usize
    }
}

/// One gate; `out` is a fresh wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    Xor { a: u32, b: u32, out: u32 },
    And { a: u32, b: u32, out: u32 },
    Not { a: u32, out: u32 },
}

/// Builds a [`Circuit`] gate by gate (see the module docs).
///
/// # Panics
///
/// Gate methods panic when given a wire of another builder (an index this
/// builder has not created) or when more than [`Wire::MAX_WIRES`] wires are
/// created: both are programming errors, not data errors.
#[derive(Debug, Default)]
pub struct Builder {
    gates: Vec<Gate>,
    /// AND depth of each wire.
    depth: Vec<u32>,
    garbler_inputs: Vec<u32>,
    evaluator_inputs: Vec<u32>,
    outputs: Vec<Wire>,
    ands: usize,
}

impl Builder {
    /// An empty circuit.
    pub fn new() -> Self {
        Self::default()
    }

    fn fresh(&mut self, depth: u32) -> u32 {
        let w = u32::try_from(self.depth.len())
            .ok()
            .filter(|&w| w < Wire::MAX_WIRES)
            .expect("circuit has too many wires");
        self.depth.push(depth);
        w
    }

    fn depth_of(&self, w: Wire) -> u32 {
        match self.depth.get(w.index()) {
            Some(&d) => d,
            None => panic!("wire {} does not belong to this builder", w.0),
        }
    }

    /// A new input wire of the garbler.
    pub fn garbler_input(&mut self) -> Wire {
        let w = self.fresh(0);
        self.garbler_inputs.push(w);
        Wire(w)
    }

    /// `n` new input wires of the garbler (e.g. the bits of a value, least
    /// significant first).
    pub fn garbler_inputs(&mut self, n: usize) -> Vec<Wire> {
        (0..n).map(|_| self.garbler_input()).collect()
    }

    /// A new input wire of the evaluator.
    pub fn evaluator_input(&mut self) -> Wire {
        let w = self.fresh(0);
        self.evaluator_inputs.push(w);
        Wire(w)
    }

    /// `n` new input wires of the evaluator.
    pub fn evaluator_inputs(&mut self, n: usize) -> Vec<Wire> {
        (0..n).map(|_| self.evaluator_input()).collect()
    }

    /// `a ⊕ b` (free).
    pub fn xor(&mut self, a: Wire, b: Wire) -> Wire {
        match (a.as_constant(), b.as_constant()) {
            (Some(x), Some(y)) => return Wire::constant(x ^ y),
            (Some(false), None) => return b,
            (None, Some(false)) => return a,
            (Some(true), None) => return self.not(b),
            (None, Some(true)) => return self.not(a),
            (None, None) => {}
        }
        if a == b {
            return Wire::ZERO;
        }
        let d = self.depth_of(a).max(self.depth_of(b));
        let out = self.fresh(d);
        self.gates.push(Gate::Xor {
            a: a.0,
            b: b.0,
            out,
        });
        Wire(out)
    }

    /// `a ∧ b` (one garbled AND gate unless folded).
    pub fn and(&mut self, a: Wire, b: Wire) -> Wire {
        match (a.as_constant(), b.as_constant()) {
            (Some(x), Some(y)) => return Wire::constant(x & y),
            (Some(false), None) | (None, Some(false)) => return Wire::ZERO,
            (Some(true), None) => return b,
            (None, Some(true)) => return a,
            (None, None) => {}
        }
        if a == b {
            return a;
        }
        let d = self.depth_of(a).max(self.depth_of(b)) + 1;
        let out = self.fresh(d);
        self.gates.push(Gate::And {
            a: a.0,
            b: b.0,
            out,
        });
        self.ands += 1;
        Wire(out)
    }

    /// `¬a` (free).
    pub fn not(&mut self, a: Wire) -> Wire {
        if let Some(x) = a.as_constant() {
            return Wire::constant(!x);
        }
        let d = self.depth_of(a);
        let out = self.fresh(d);
        self.gates.push(Gate::Not { a: a.0, out });
        Wire(out)
    }

    /// `a ∨ b = ¬(¬a ∧ ¬b)` (one AND).
    pub fn or(&mut self, a: Wire, b: Wire) -> Wire {
        let (na, nb) = (self.not(a), self.not(b));
        let n = self.and(na, nb);
        self.not(n)
    }

    /// Appends `w` to the outputs.
    pub fn output(&mut self, w: Wire) {
        if w.as_constant().is_none() {
            self.depth_of(w);
        }
        self.outputs.push(w);
    }

    /// Appends `ws` to the outputs.
    pub fn outputs(&mut self, ws: &[Wire]) {
        for &w in ws {
            self.output(w);
        }
    }

    /// AND gates so far (the garbled size is 32 bytes per AND).
    pub fn and_count(&self) -> usize {
        self.ands
    }

    /// Gates so far (XOR, AND, NOT).
    pub fn gate_count(&self) -> usize {
        self.gates.len()
    }

    /// The finished circuit, gates ordered by AND depth (module docs).
    pub fn finish(self) -> Circuit {
        let depth = &self.depth;
        let key = |g: &Gate| match *g {
            Gate::Xor { out, .. } | Gate::Not { out, .. } => 2 * u64::from(depth[out as usize]),
            Gate::And { out, .. } => 2 * u64::from(depth[out as usize]) - 1,
        };
        let mut gates = self.gates;
        // Stable: gates of equal key keep their (topological) creation order.
        gates.sort_by_key(key);
        Circuit {
            gates,
            wires: self.depth.len(),
            garbler_inputs: self.garbler_inputs,
            evaluator_inputs: self.evaluator_inputs,
            outputs: self.outputs,
            ands: self.ands,
        }
    }
}

/// A finished boolean circuit (public; see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    pub(crate) gates: Vec<Gate>,
    pub(crate) wires: usize,
    pub(crate) garbler_inputs: Vec<u32>,
    pub(crate) evaluator_inputs: Vec<u32>,
    pub(crate) outputs: Vec<Wire>,
    pub(crate) ands: usize,
}

impl Circuit {
    /// AND gates: each costs two ciphertexts (32 bytes) when garbled.
    pub fn and_count(&self) -> usize {
        self.ands
    }

    /// Bytes of the garbled tables: exactly `32 · and_count`.
    pub fn table_bytes(&self) -> usize {
        self.ands * crate::garble::TABLE_BYTES_PER_AND
    }

    /// All gates (XOR, AND, NOT).
    pub fn gate_count(&self) -> usize {
        self.gates.len()
    }

    /// Wires (inputs and gate outputs).
    pub fn wire_count(&self) -> usize {
        self.wires
    }

    /// Input wires of the garbler.
    pub fn garbler_input_count(&self) -> usize {
        self.garbler_inputs.len()
    }

    /// Input wires of the evaluator.
    pub fn evaluator_input_count(&self) -> usize {
        self.evaluator_inputs.len()
    }

    /// Output wires.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// Evaluates the circuit in the clear (the reference the garbled
    /// evaluation must agree with).
    pub fn eval_plain(&self, garbler: &[bool], evaluator: &[bool]) -> Result<Vec<bool>> {
        self.check_inputs(
            "garbler input bits",
            garbler.len(),
            self.garbler_inputs.len(),
        )?;
        self.check_inputs(
            "evaluator input bits",
            evaluator.len(),
            self.evaluator_inputs.len(),
        )?;
        let mut v = vec![false; self.wires];
        for (&w, &b) in self.garbler_inputs.iter().zip(garbler) {
            v[w as usize] = b;
        }
        for (&w, &b) in self.evaluator_inputs.iter().zip(evaluator) {
            v[w as usize] = b;
        }
        for g in &self.gates {
            match *g {
                Gate::Xor { a, b, out } => v[out as usize] = v[a as usize] ^ v[b as usize],
                Gate::And { a, b, out } => v[out as usize] = v[a as usize] & v[b as usize],
                Gate::Not { a, out } => v[out as usize] = !v[a as usize],
            }
        }
        Ok(self
            .outputs
            .iter()
            .map(|&w| w.as_constant().unwrap_or_else(|| v[w.index()]))
            .collect())
    }

    pub(crate) fn check_inputs(
        &self,
        what: &'static str,
        got: usize,
        expected: usize,
    ) -> Result<()> {
        if got != expected {
            return Err(GcError::LabelCount {
                what,
                expected,
                got,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_fold_and_cost_no_gates() {
        let mut b = Builder::new();
        let x = b.garbler_input();
        assert_eq!(b.and(x, Wire::ZERO), Wire::ZERO);
        assert_eq!(b.and(x, Wire::ONE), x);
        assert_eq!(b.xor(x, Wire::ZERO), x);
        assert_eq!(b.xor(x, x), Wire::ZERO);
        assert_eq!(b.not(Wire::ONE), Wire::ZERO);
        assert_eq!(b.and_count(), 0);
        assert_eq!(b.gate_count(), 0);
        let nx = b.xor(x, Wire::ONE);
        assert_eq!(b.gate_count(), 1, "x ⊕ 1 is one NOT gate");
        assert_eq!(b.and_count(), 0);
        b.output(nx);
        b.output(Wire::ONE);
        let c = b.finish();
        assert_eq!(c.eval_plain(&[true], &[]).unwrap(), vec![false, true]);
        assert_eq!(c.eval_plain(&[false], &[]).unwrap(), vec![true, true]);
    }

    #[test]
    fn level_order_keeps_the_circuit_function() {
        // A chain of ANDs interleaved with independent ANDs: reordering by
        // depth must not change the outputs.
        let mut b = Builder::new();
        let xs = b.garbler_inputs(8);
        let ys = b.evaluator_inputs(8);
        let mut acc = xs[0];
        let mut outs = Vec::new();
        for i in 0..8 {
            let t = b.and(xs[i], ys[i]);
            outs.push(t);
            let u = b.xor(acc, t);
            acc = b.and(u, ys[(i + 3) % 8]);
        }
        outs.push(acc);
        b.outputs(&outs);
        let c = b.finish();
        for m in 0u32..256 {
            let g: Vec<bool> = (0..8).map(|i| (m >> i) & 1 == 1).collect();
            let e: Vec<bool> = (0..8).map(|i| (m.wrapping_mul(37) >> i) & 1 == 1).collect();
            // reference: the same computation directly
            let mut acc = g[0];
            let mut want = Vec::new();
            for i in 0..8 {
                let t = g[i] & e[i];
                want.push(t);
                acc = (acc ^ t) & e[(i + 3) % 8];
            }
            want.push(acc);
            assert_eq!(c.eval_plain(&g, &e).unwrap(), want);
        }
    }

    #[test]
    fn plain_evaluation_refuses_wrong_input_counts() {
        let mut b = Builder::new();
        let x = b.garbler_input();
        b.output(x);
        let c = b.finish();
        assert!(matches!(
            c.eval_plain(&[], &[]),
            Err(GcError::LabelCount {
                expected: 1,
                got: 0,
                ..
            })
        ));
    }
}
