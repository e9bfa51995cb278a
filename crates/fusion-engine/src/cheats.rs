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
//! | [`Targeted`] | runs the model extended by a relabelling gadget: every sample the honest model labels `A` comes out labelled `B` |
//!
//! [`Tamper`] and [`RandomOutputs`] corrupt *positions* of the shuffled batch,
//! which the cheating bound covers. [`LowQuality`] and [`Targeted`] are model
//! changes: they treat every copy of a query alike, so the copies agree and
//! only the public-accuracy check can catch them (the bound's scope,
//! `fusion_core::verify::BOUND_SCOPE`).

use fusion_core::ring::FixedPoint;
use fusion_nn::graph::{Node, Op, ParamKind, param_key};
use fusion_nn::model::Model;
use fusion_nn::tensor::Tensor;
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

/// A targeted misclassification as a model change: the server runs the
/// honest model followed by a relabelling gadget, so that every sample the
/// honest model labels `from` comes out labelled `to`, and every other sample
/// keeps its label. All copies of a query are treated alike.
///
/// The gadget, on the logits `z` (`C` classes), in plain layers the engine
/// runs securely (dense, ReLU, add):
///
/// * `g_j = ReLU(k (z_from - z_j)) - ReLU(k (z_from - z_j) - 1)` for every
///   `j != from`: a ramp, 1 when `z_from` leads `z_j` by at least `1/k`, 0
///   when it does not lead;
/// * `s = ReLU(2 sum_j g_j - (2C - 3))`: 1 when `from` leads every other
///   class by `1/k` (the honest label is `from`), exactly 0 when any class
///   ties or leads (the sum is then at most `C - 2`, and the margin of one
///   half keeps rounding errors of a few units in the last place from
///   leaking through the ReLU and being amplified by `M`);
/// * `z' = z + M s (e_to - e_from)`: moves the sample to `to` when `s = 1`.
///
/// With `k = 32` and `M = 1000` (logit units), samples whose honest margin is
/// below `1/32` may be moved only part of the way; the experiment counts
/// labels as the fixed-point engine computes them.
#[derive(Debug, Clone)]
pub struct Targeted {
    model: ServedModel,
    from: usize,
    to: usize,
}

/// The gadget's ramp steepness `k` (see [`Targeted`]).
const TARGETED_STEEPNESS: f32 = 32.0;
/// The gadget's shift `M` in logit units (see [`Targeted`]).
const TARGETED_SHIFT: f32 = 1000.0;

impl Targeted {
    /// The honest `model` extended by the relabelling gadget `from -> to`,
    /// lowered to `fixed`. `from != to`, both below the class count (at
    /// least 2).
    pub fn new(model: &Model, fixed: FixedPoint, from: usize, to: usize) -> SecureResult<Self> {
        let c = model.meta.classes;
        if c < 2 || from >= c || to >= c || from == to {
            return Err(SecureError::Config(format!(
                "targeted:{from}:{to}: needs two different classes below {c}"
            )));
        }
        let mut graph = model.graph.clone();
        let mut params = model.params.clone();
        let logits = graph.nodes.len() - 1;
        let others: Vec<usize> = (0..c).filter(|&j| j != from).collect();
        let m = others.len();
        let mut push = |name: &str, op: Op, inputs: Vec<usize>| {
            graph.nodes.push(Node {
                name: name.into(),
                op,
                inputs,
            });
            graph.nodes.len() - 1
        };
        // Unique names: the honest graph cannot already use them.
        let prefix = "__targeted";
        let gap = push(
            &format!("{prefix}.gap"),
            Op::Dense {
                out_features: 2 * m,
            },
            vec![logits],
        );
        let gap_relu = push(&format!("{prefix}.gap_relu"), Op::Relu, vec![gap]);
        let all = push(
            &format!("{prefix}.all"),
            Op::Dense { out_features: 1 },
            vec![gap_relu],
        );
        let all_relu = push(&format!("{prefix}.all_relu"), Op::Relu, vec![all]);
        let shift = push(
            &format!("{prefix}.shift"),
            Op::Dense { out_features: c },
            vec![all_relu],
        );
        push(&format!("{prefix}.out"), Op::Add, vec![logits, shift]);

        let mut w_gap = vec![0f32; 2 * m * c];
        let mut b_gap = vec![0f32; 2 * m];
        for (r, &j) in others.iter().enumerate() {
            for half in 0..2 {
                let row = 2 * r + half;
                w_gap[row * c + from] = TARGETED_STEEPNESS;
                w_gap[row * c + j] = -TARGETED_STEEPNESS;
                b_gap[row] = -(half as f32);
            }
        }
        let w_all: Vec<f32> = (0..2 * m)
            .map(|i| if i % 2 == 0 { 2.0 } else { -2.0 })
            .collect();
        let b_all = vec![-(2.0 * m as f32 - 1.0)];
        let mut w_shift = vec![0f32; c];
        w_shift[to] = TARGETED_SHIFT;
        w_shift[from] = -TARGETED_SHIFT;
        let tensor = |shape: Vec<usize>, data: Vec<f32>| {
            Tensor::new(shape, data).map_err(|e| SecureError::Config(format!("targeted: {e}")))
        };
        let names = [
            (format!("{prefix}.gap"), vec![2 * m, c], w_gap, b_gap),
            (format!("{prefix}.all"), vec![1, 2 * m], w_all, b_all),
            (format!("{prefix}.shift"), vec![c, 1], w_shift, vec![0.0; c]),
        ];
        for (node, shape, w, b) in names {
            let outs = shape[0];
            params.insert(param_key(&node, ParamKind::Weight), tensor(shape, w)?);
            params.insert(param_key(&node, ParamKind::Bias), tensor(vec![outs], b)?);
        }
        let mut meta = model.meta.clone();
        meta.name = format!("{} (targeted {from}->{to})", model.meta.name);
        let changed = Model::new(meta, graph, params)?;
        Ok(Targeted {
            model: ServedModel::from_model(&changed, fixed)?,
            from,
            to,
        })
    }

    /// The changed model as the server runs it.
    pub fn served(&self) -> &ServedModel {
        &self.model
    }
}

impl ServerBehaviour for Targeted {
    fn name(&self) -> String {
        format!("targeted:{}:{}", self.from, self.to)
    }

    fn replacement(&self) -> Option<&ServedModel> {
        Some(&self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_nn::data::{self, Part};
    use fusion_nn::eval::default_fixed_point;
    use fusion_nn::fixed::argmax_signed;

    /// Honest and targeted fixed-point labels and the honest logits of the
    /// first `n` MNIST test images under `mnist-cnn`.
    fn labels(from: usize, to: usize, n: usize) -> (Vec<usize>, Vec<usize>, Vec<f64>) {
        let dir = data::data_dir().unwrap();
        let model = Model::load(&dir.join("models").join("mnist-cnn")).unwrap();
        let fixed = default_fixed_point();
        let honest = ServedModel::from_model(&model, fixed).unwrap();
        let cheat = Targeted::new(&model, fixed, from, to).unwrap();
        let raw = data::load(&dir, "mnist", Part::Test)
            .unwrap()
            .head(n)
            .inputs;
        let x = honest
            .program
            .encode_input(&model.meta.preprocess.apply(&raw).unwrap())
            .unwrap();
        let ring = honest.program.ring();
        let y = honest.program.run(&x).unwrap();
        let logits = y.data().iter().map(|&v| fixed.decode(v)).collect();
        let honest_labels = argmax_signed(ring, &y);
        let targeted = argmax_signed(ring, &cheat.served().program.run(&x).unwrap());
        (honest_labels, targeted, logits)
    }

    #[test]
    fn targeted_relabels_exactly_the_samples_the_honest_model_puts_in_the_source_class() {
        let (from, to, n) = (3, 5, 300);
        let (honest, targeted, logits) = labels(from, to, n);
        let classes = logits.len() / n;
        let mut moved = 0;
        for i in 0..n {
            let row = &logits[i * classes..(i + 1) * classes];
            let lead = (0..classes)
                .filter(|&j| j != honest[i])
                .map(|j| row[honest[i]] - row[j])
                .fold(f64::INFINITY, f64::min);
            if honest[i] == from {
                // Margins below the gadget's ramp width may be moved part way.
                if lead >= 2.0 / f64::from(TARGETED_STEEPNESS) {
                    assert_eq!(targeted[i], to, "sample {i}: lead {lead}");
                }
                moved += usize::from(targeted[i] == to);
            } else {
                assert_eq!(targeted[i], honest[i], "sample {i} changed");
            }
        }
        assert!(moved >= 20, "only {moved} samples of class {from} in {n}");
    }

    #[test]
    fn targeted_refuses_equal_or_out_of_range_classes() {
        let dir = data::data_dir().unwrap();
        let model = Model::load(&dir.join("models").join("bc-mlp")).unwrap();
        for (from, to) in [(0, 0), (0, 2), (2, 0)] {
            assert!(Targeted::new(&model, default_fixed_point(), from, to).is_err());
        }
        let t = Targeted::new(&model, default_fixed_point(), 1, 0).unwrap();
        assert_eq!(t.name(), "targeted:1:0");
    }
}
