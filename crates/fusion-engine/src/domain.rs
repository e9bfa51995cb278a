//! The share domain: the ring or field in which a backend secret-shares values.
//!
//! Every value of the program is additively shared between the two parties:
//! `x = x_client + x_server` in the backend's [`Domain`]. The program itself
//! is defined over `Z_{2^l}` ([`fusion_nn::fixed::FixedProgram`]): its values
//! are signed fixed-point integers `|x| < 2^(l-1)`. A backend chooses one of
//!
//! * [`Domain::Ring`]: `Z_{2^l}`, the program's own ring (Cheetah, ABY,
//!   CrypTFlow2's SCI_OT). Shares and program values coincide.
//! * [`Domain::Field`]: `Z_p` for an odd prime `p > 2^l` (CrypTFlow2's
//!   SCI_HE, DELPHI). A program value `v` is embedded as its signed
//!   representative mod `p`; a field element `u` maps back through its
//!   centred representative in `(-p/2, p/2)`. As long as every true value
//!   satisfies `|x| < 2^(l-1)` (the fixed-point contract, which the plaintext
//!   engine assumes too), the embedding commutes with the program's integer
//!   linear maps, so local steps give the same values in both domains.
//!
//! Local steps (public linear maps with integer coefficients: sums, window
//! sums, constant multiples, reshapes) commute with additive sharing in any
//! `Z_m`, so each party applies them to its own share with
//! [`Domain::apply_local`]: in the ring through the reference interpreter
//! itself ([`fusion_nn::fixed::Step::apply`]), in a field by the same maps
//! reduced mod `p`.

use fusion_core::ring::Ring;
use fusion_nn::fixed::{FixedOp, PublicProgram};
use fusion_nn::kernels::{Window, window_for_each};
use fusion_nn::tensor::RingTensor;
use rand::{CryptoRng, Rng};

use crate::error::{SecureError, SecureResult};

pub use fusion_core::field::PrimeField;

/// `PrimeField::new` with the engine's error type.
pub fn prime_field(p: u64) -> SecureResult<PrimeField> {
    PrimeField::new(p).map_err(|e| SecureError::Config(e.to_string()))
}

/// The ring or field the shares live in (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// `Z_{2^l}`, the program's ring.
    Ring(Ring),
    /// `Z_p` holding the program's signed values of ring `ring`.
    Field {
        /// The field.
        field: PrimeField,
        /// The program's ring (`p > 2^l` is checked by [`Domain::field`]).
        ring: Ring,
    },
}

impl Domain {
    /// `Z_p` for values of the program ring `ring`; needs `p > 2^l`.
    pub fn field(field: PrimeField, ring: Ring) -> SecureResult<Self> {
        if !field.holds(ring) {
            return Err(SecureError::Config(format!(
                "Z_{} cannot hold the signed values of Z_2^{}",
                field.modulus(),
                ring.bits()
            )));
        }
        Ok(Domain::Field { field, ring })
    }

    /// The program's ring.
    pub fn program_ring(&self) -> Ring {
        match *self {
            Domain::Ring(r) | Domain::Field { ring: r, .. } => r,
        }
    }

    /// A short description (`Z_2^37`, `Z_p (p = ...)`).
    pub fn describe(&self) -> String {
        match self {
            Domain::Ring(r) => format!("Z_2^{}", r.bits()),
            Domain::Field { field, .. } => format!("Z_p (p = {})", field.modulus()),
        }
    }

    /// Whether `v` is a canonical element.
    pub fn contains(&self, v: u64) -> bool {
        match self {
            Domain::Ring(r) => r.contains(v),
            Domain::Field { field, .. } => v < field.modulus(),
        }
    }

    /// `a + b`.
    pub fn add(&self, a: u64, b: u64) -> u64 {
        match self {
            Domain::Ring(r) => r.add(a, b),
            Domain::Field { field, .. } => field.add(field.reduce(a), field.reduce(b)),
        }
    }

    /// `a - b`.
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        match self {
            Domain::Ring(r) => r.sub(a, b),
            Domain::Field { field, .. } => field.sub(field.reduce(a), field.reduce(b)),
        }
    }

    /// A uniformly random element.
    pub fn random<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self {
            Domain::Ring(r) => r.random(rng),
            Domain::Field { field, .. } => field.random(rng),
        }
    }

    /// The domain element of the program value `v` (a ring element of the
    /// program ring, read as a signed value).
    pub fn from_program(&self, v: u64) -> u64 {
        match self {
            Domain::Ring(_) => v,
            Domain::Field { field, ring } => field.from_signed(ring.to_signed(v)),
        }
    }

    /// The program value (ring element) of the domain element `u` (in a field,
    /// through its centred representative).
    pub fn to_program(&self, u: u64) -> u64 {
        match self {
            Domain::Ring(_) => u,
            Domain::Field { field, ring } => ring.from_signed(field.to_signed(field.reduce(u))),
        }
    }

    /// The element of the signed integer `v` (any `i64`; in the ring, `v mod
    /// 2^l`). For public constants that are not program values (a table's
    /// knots, constants and slopes, see [`crate::reverse_sigmoid`]).
    pub fn constant(&self, v: i64) -> u64 {
        match self {
            Domain::Ring(r) => r.from_signed(v),
            Domain::Field { field, .. } => field.from_signed(v),
        }
    }

    /// `c·a` for a share `a` and a public signed integer `c`.
    pub fn mul_signed(&self, a: u64, c: i64) -> u64 {
        match self {
            Domain::Ring(r) => r.mul(a, r.from_signed(c)),
            Domain::Field { field, .. } => field.mul(field.reduce(a), field.from_signed(c)),
        }
    }

    /// Reconstructs program values from both parties' shares.
    pub fn reconstruct(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| self.to_program(self.add(x, y)))
            .collect()
    }

    /// Applies the local (public, linear) step `step` of `program` to this
    /// party's shares `ins` of a chunk of `n` samples.
    pub fn apply_local(
        &self,
        program: &PublicProgram,
        step: usize,
        ins: &[&[u64]],
        n: usize,
    ) -> SecureResult<Vec<u64>> {
        let s = program
            .steps
            .get(step)
            .ok_or_else(|| SecureError::Config(format!("no step {step}")))?;
        if s.inputs.len() != ins.len() {
            return Err(SecureError::Config(format!(
                "step `{}` reads {} values, got {}",
                s.name,
                s.inputs.len(),
                ins.len()
            )));
        }
        match self {
            Domain::Ring(ring) => {
                let tensors: Vec<RingTensor> = s
                    .inputs
                    .iter()
                    .zip(ins)
                    .map(|(&v, x)| {
                        let mut shape = vec![n];
                        shape.extend_from_slice(program.value_shape(v));
                        RingTensor::new(shape, x.to_vec())
                    })
                    .collect::<fusion_nn::Result<_>>()?;
                let refs: Vec<&RingTensor> = tensors.iter().collect();
                Ok(s.apply_local(*ring, &refs)?.into_data())
            }
            Domain::Field { field, ring } => {
                let in_shape = program.value_shape(s.inputs[0]);
                let op = s.op.local_op().ok_or_else(|| {
                    SecureError::Config(format!("step `{}` is not a local step", s.name))
                })?;
                field_local(*field, *ring, &op, &s.name, in_shape, &s.shape, ins, n)
            }
        }
    }
}

/// The local ops mod `p`: the same integer linear maps as
/// [`fusion_nn::fixed::Step::apply`], reduced mod `p` instead of `2^l`.
#[allow(clippy::too_many_arguments)]
fn field_local(
    field: PrimeField,
    ring: Ring,
    op: &FixedOp,
    name: &str,
    in_shape: &[usize],
    out_shape: &[usize],
    ins: &[&[u64]],
    n: usize,
) -> SecureResult<Vec<u64>> {
    let p = u128::from(field.modulus());
    let in_len: usize = in_shape.iter().product();
    let out_len: usize = out_shape.iter().product();
    let x = ins[0];
    if x.len() != n * in_len || ins.iter().any(|v| v.len() != x.len()) {
        return Err(SecureError::Config(format!(
            "step `{name}`: shares of the wrong length"
        )));
    }
    let mut y = vec![0u64; n * out_len];
    match op {
        FixedOp::Reshape => y.copy_from_slice(x),
        FixedOp::Add => {
            for ((o, &a), &b) in y.iter_mut().zip(x).zip(ins[1]) {
                *o = ((u128::from(a) + u128::from(b)) % p) as u64;
            }
        }
        FixedOp::MulConst { factor } => {
            let c = i128::from(ring.to_signed(*factor)).rem_euclid(p as i128) as u128;
            for (o, &a) in y.iter_mut().zip(x) {
                *o = ((u128::from(a) * c) % p) as u64;
            }
        }
        FixedOp::GlobalSumPool => {
            let hw = in_len / out_len.max(1);
            for (o, plane) in y.iter_mut().zip(x.chunks(hw.max(1))) {
                *o = (plane.iter().map(|&v| u128::from(v)).sum::<u128>() % p) as u64;
            }
        }
        FixedOp::SumPool {
            kernel,
            stride,
            padding,
        } => {
            let g = match in_shape {
                [c, h, w] => Window::new(*c, *h, *w, *kernel, *stride, *padding),
                _ => None,
            }
            .ok_or_else(|| SecureError::Config(format!("step `{name}`: pool window")))?;
            for (ys, xs) in y.chunks_mut(out_len).zip(x.chunks(in_len)) {
                let mut acc = vec![0u128; out_len];
                window_for_each(&g, |o, i| acc[o] += u128::from(xs[i]));
                for (o, a) in ys.iter_mut().zip(acc) {
                    *o = (a % p) as u64;
                }
            }
        }
        other => {
            return Err(SecureError::Config(format!(
                "step `{name}`: `{}` is not a local step",
                other.tag()
            )));
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_nn::eval::default_fixed_point;
    use fusion_nn::fixed::{OpClass, lower};
    use rand::{RngExt, SeedableRng};

    #[test]
    fn a_field_smaller_than_the_ring_is_refused() {
        assert!(prime_field(1 << 40).is_err());
        let f = prime_field(1_000_000_007).expect("prime");
        assert!(Domain::field(f, Ring::new(37).expect("ring")).is_err());
    }

    #[test]
    fn field_embedding_round_trips_signed_values() {
        let ring = Ring::new(37).expect("ring");
        let d = Domain::field(PrimeField::new((1 << 61) - 1).expect("p"), ring).expect("d");
        for s in [0i64, 1, -1, (1 << 36) - 1, -(1 << 36)] {
            let v = ring.from_signed(s);
            assert_eq!(d.to_program(d.from_program(v)), v);
        }
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(3);
        let v = ring.from_signed(-12345);
        let a = d.random(&mut rng);
        let b = d.sub(d.from_program(v), a);
        assert_eq!(d.reconstruct(&[a], &[b]), vec![v]);
    }

    /// Every local step of a network with window sums, global sums,
    /// constant multiples, adds and reshapes gives the same reconstructed
    /// values from field shares as the ring reference does from the values.
    #[test]
    fn field_local_steps_match_the_ring_reference_on_shares() {
        let model = fusion_nn::zoo::build("cnn-mnist", 5).expect("zoo");
        let program = lower(&model, default_fixed_point())
            .expect("lower")
            .public();
        let ring = program.ring();
        let d = Domain::field(PrimeField::new((1 << 61) - 1).expect("p"), ring).expect("d");
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(9);
        let n = 2;
        let mut checked = 0;
        for (i, s) in program.steps.iter().enumerate() {
            if s.op.class() != OpClass::Local {
                continue;
            }
            let vals: Vec<Vec<u64>> = s
                .inputs
                .iter()
                .map(|&v| {
                    let len: usize = program.value_shape(v).iter().product();
                    (0..n * len)
                        .map(|_| ring.from_signed(rng.random_range(-5000i64..5000)))
                        .collect()
                })
                .collect();
            let refs: Vec<&[u64]> = vals.iter().map(Vec::as_slice).collect();
            let want = Domain::Ring(ring)
                .apply_local(&program, i, &refs, n)
                .expect("ring");
            let (a, b): (Vec<Vec<u64>>, Vec<Vec<u64>>) = vals
                .iter()
                .map(|x| {
                    let a: Vec<u64> = x.iter().map(|_| d.random(&mut rng)).collect();
                    let b = x
                        .iter()
                        .zip(&a)
                        .map(|(&v, &r)| d.sub(d.from_program(v), r))
                        .collect();
                    (a, b)
                })
                .unzip();
            let ra: Vec<&[u64]> = a.iter().map(Vec::as_slice).collect();
            let rb: Vec<&[u64]> = b.iter().map(Vec::as_slice).collect();
            let ya = d.apply_local(&program, i, &ra, n).expect("a");
            let yb = d.apply_local(&program, i, &rb, n).expect("b");
            assert_eq!(d.reconstruct(&ya, &yb), want, "step {}", s.name);
            checked += 1;
        }
        assert!(checked >= 3, "cnn-mnist has local steps");
    }
}
