//! Cheating servers for tests, demos and the detection experiments: each a
//! [`ServerBehaviour`] injected into the honest server through its hook (the
//! server itself has no cheat branches). The command-line tools parse
//! `--cheat MODE` and build one of these.
//!
//! | behaviour | what the server does |
//! |---|---|
//! | [`LowQuality`] | runs a weaker model's program under the announced model's name |
//! | [`Tamper`] | in every batch, adds a large offset to one class's logit at `K` random positions, forcing that label there |
//! | [`RandomOutputs`] | replaces its output shares by uniform elements (the client reconstructs random outputs) |

use rand::rngs::ChaCha20Rng;

use crate::behaviour::{OutputAlteration, ServerBehaviour};
use crate::domain::Domain;
use crate::error::{SecureError, SecureResult};
use crate::server::ServedModel;

/// Serves another (weaker) model's program and preprocessing under the
/// announced model's name.
#[derive(Debug, Clone)]
pub struct LowQuality {
    weak: ServedModel,
}

impl LowQuality {
    /// Serve `weak` instead of `announced` (same input shape and classes).
    pub fn new(weak: ServedModel, announced: &ServedModel) -> SecureResult<Self> {
        if weak.program.input_shape != announced.program.input_shape
            || weak.classes != announced.classes
        {
            return Err(SecureError::Config(format!(
                "low-quality: model `{}` does not have the shape of `{}`",
                weak.name, announced.name
            )));
        }
        Ok(LowQuality { weak })
    }
}

impl ServerBehaviour for LowQuality {
    fn name(&self) -> String {
        format!("low-quality (serving `{}`)", self.weak.name)
    }

    fn replacement(&self) -> Option<&ServedModel> {
        Some(&self.weak)
    }
}

/// In every batch, picks `positions` distinct positions uniformly at random
/// and adds a large offset (`2^(l-3)` at the output scale) to class
/// `target`'s logit in the server's output share there, forcing those
/// samples' label to `target`.
#[derive(Debug, Clone, Copy)]
pub struct Tamper {
    positions: usize,
    target: usize,
}

impl Tamper {
    /// Corrupts `positions >= 1` outputs per batch towards class `target`
    /// (which must be below `classes`).
    pub fn new(positions: usize, target: usize, classes: usize) -> SecureResult<Self> {
        if target >= classes || positions == 0 {
            return Err(SecureError::Config(format!(
                "tamper: class {target} of {classes} / {positions} positions"
            )));
        }
        Ok(Tamper { positions, target })
    }
}

struct TamperBatch {
    /// Sorted batch positions to corrupt.
    chosen: Vec<usize>,
    target: usize,
    classes: usize,
}

impl ServerBehaviour for Tamper {
    fn name(&self) -> String {
        format!("tamper:{}:{}", self.positions, self.target)
    }

    fn begin_batch(
        &self,
        n: usize,
        classes: usize,
        rng: &mut ChaCha20Rng,
    ) -> Option<Box<dyn OutputAlteration>> {
        let k = self.positions.min(n);
        // Partial Fisher-Yates with unbiased sampling.
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + fusion_core::mix::uniform_below(rng, (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        let mut chosen = idx[..k].to_vec();
        chosen.sort_unstable();
        Some(Box::new(TamperBatch {
            chosen,
            target: self.target,
            classes,
        }))
    }
}

impl OutputAlteration for TamperBatch {
    fn alter(
        &mut self,
        y: &mut [u64],
        start: usize,
        m: usize,
        domain: &Domain,
        _: &mut ChaCha20Rng,
    ) {
        let ring = domain.program_ring();
        let offset = domain.from_program(1u64 << (ring.bits() - 3));
        for &p in self.chosen.iter().filter(|&&p| p >= start && p < start + m) {
            let i = (p - start) * self.classes + self.target;
            if let Some(v) = y.get_mut(i) {
                *v = domain.add(*v, offset);
            }
        }
    }
}

/// Replaces the server's output shares by uniformly random elements.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomOutputs;

struct Randomise;

impl ServerBehaviour for RandomOutputs {
    fn name(&self) -> String {
        "random".into()
    }

    fn begin_batch(
        &self,
        _: usize,
        _: usize,
        _: &mut ChaCha20Rng,
    ) -> Option<Box<dyn OutputAlteration>> {
        Some(Box::new(Randomise))
    }
}

impl OutputAlteration for Randomise {
    fn alter(&mut self, y: &mut [u64], _: usize, _: usize, domain: &Domain, rng: &mut ChaCha20Rng) {
        y.iter_mut().for_each(|v| *v = domain.random(rng));
    }
}
