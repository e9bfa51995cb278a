//! The public view of a program: what a server may tell a client about its
//! model, and all a client-side engine needs to run its half.
//!
//! [`PublicProgram`] has the program's structure, shapes, scales and
//! fixed-point format, and the public constants of local steps (constant
//! multiples), but **no coefficient vectors**: its linear steps
//! ([`PublicOp::Dense`], [`PublicOp::Conv2d`], [`PublicOp::ChannelAffine`])
//! carry their dimensions only. It is its own type, not a [`FixedProgram`]
//! with cleared fields, so a value the client receives cannot hold weights by
//! construction. [`FixedProgram::public`] is the only way to derive one from
//! a server's program; [`PublicProgram::validate`] checks one that arrived
//! from a peer (references, arities, shapes, truncation widths), in one
//! place.

use fusion_core::ring::{FixedPoint, Ring};
use serde::{Deserialize, Serialize};

use super::exec;
use super::{ChannelAffineOp, Conv2dOp, DenseOp, FixedOp, FixedProgram, OpClass, Step, ValueId};
use crate::error::{NnError, Result};
use crate::tensor::{RingTensor, Tensor};

/// One operation of a [`PublicProgram`]: [`FixedOp`] without coefficient
/// vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PublicOp {
    /// Fully connected `[D] -> [O]` (the weights stay with the server).
    Dense {
        /// Input width `D`.
        in_features: usize,
        /// Output width `O`.
        out_features: usize,
    },
    /// 2-D convolution (the weights stay with the server).
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Input rows.
        in_height: usize,
        /// Input columns.
        in_width: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
    },
    /// Per-channel scale and shift (the coefficients stay with the server).
    ChannelAffine {
        /// Channels.
        channels: usize,
    },
    /// Local: window sums.
    SumPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// Local: sums over all positions.
    GlobalSumPool,
    /// Local: multiplication by a public integer (a ring element).
    MulConst {
        /// The factor.
        factor: u64,
    },
    /// Local: elementwise sum.
    Add,
    /// Local: reshape (flatten).
    Reshape,
    /// Non-linear: arithmetic shift right by `bits`.
    Truncate {
        /// Bits to drop.
        bits: u32,
    },
    /// Non-linear: ReLU.
    Relu,
    /// Non-linear: max pool.
    MaxPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// Non-linear: square.
    Square,
}

impl From<&FixedOp> for PublicOp {
    /// The op without its coefficients.
    fn from(op: &FixedOp) -> Self {
        match op {
            FixedOp::Dense(d) => PublicOp::Dense {
                in_features: d.in_features,
                out_features: d.out_features,
            },
            FixedOp::Conv2d(c) => PublicOp::Conv2d {
                in_channels: c.in_channels,
                in_height: c.in_height,
                in_width: c.in_width,
                out_channels: c.out_channels,
                kernel: c.kernel,
                stride: c.stride,
                padding: c.padding,
            },
            FixedOp::ChannelAffine(a) => PublicOp::ChannelAffine {
                channels: a.channels,
            },
            FixedOp::SumPool {
                kernel,
                stride,
                padding,
            } => PublicOp::SumPool {
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
            },
            FixedOp::GlobalSumPool => PublicOp::GlobalSumPool,
            FixedOp::MulConst { factor } => PublicOp::MulConst { factor: *factor },
            FixedOp::Add => PublicOp::Add,
            FixedOp::Reshape => PublicOp::Reshape,
            FixedOp::Truncate { bits } => PublicOp::Truncate { bits: *bits },
            FixedOp::Relu => PublicOp::Relu,
            FixedOp::MaxPool {
                kernel,
                stride,
                padding,
            } => PublicOp::MaxPool {
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
            },
            FixedOp::Square => PublicOp::Square,
        }
    }
}

impl PublicOp {
    /// The op as the interpreter's op. Linear steps come without
    /// coefficients (empty vectors: enough for shapes, not for running them);
    /// every other op is exactly the server's.
    fn structure(&self) -> FixedOp {
        match *self {
            PublicOp::Dense {
                in_features,
                out_features,
            } => FixedOp::Dense(DenseOp {
                in_features,
                out_features,
                weight: Vec::new(),
                bias: Vec::new(),
            }),
            PublicOp::Conv2d {
                in_channels,
                in_height,
                in_width,
                out_channels,
                kernel,
                stride,
                padding,
            } => FixedOp::Conv2d(Conv2dOp {
                in_channels,
                in_height,
                in_width,
                out_channels,
                kernel,
                stride,
                padding,
                weight: Vec::new(),
                bias: Vec::new(),
            }),
            PublicOp::ChannelAffine { channels } => FixedOp::ChannelAffine(ChannelAffineOp {
                channels,
                scale: Vec::new(),
                shift: Vec::new(),
            }),
            PublicOp::SumPool {
                kernel,
                stride,
                padding,
            } => FixedOp::SumPool {
                kernel,
                stride,
                padding,
            },
            PublicOp::GlobalSumPool => FixedOp::GlobalSumPool,
            PublicOp::MulConst { factor } => FixedOp::MulConst { factor },
            PublicOp::Add => FixedOp::Add,
            PublicOp::Reshape => FixedOp::Reshape,
            PublicOp::Truncate { bits } => FixedOp::Truncate { bits },
            PublicOp::Relu => FixedOp::Relu,
            PublicOp::MaxPool {
                kernel,
                stride,
                padding,
            } => FixedOp::MaxPool {
                kernel,
                stride,
                padding,
            },
            PublicOp::Square => FixedOp::Square,
        }
    }

    /// The op's class.
    pub fn class(&self) -> OpClass {
        self.structure().class()
    }

    /// A short name (the JSON tag).
    pub fn tag(&self) -> &'static str {
        self.structure().tag()
    }

    /// Number of inputs.
    pub fn arity(&self) -> usize {
        if matches!(self, PublicOp::Add) { 2 } else { 1 }
    }

    /// The op of a local step (public linear map), exactly as the
    /// interpreter runs it; `None` for linear and non-linear ops.
    pub fn local_op(&self) -> Option<FixedOp> {
        (self.class() == OpClass::Local).then(|| self.structure())
    }
}

/// One step of a [`PublicProgram`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicStep {
    /// The step's name.
    pub name: String,
    /// The operation, without coefficients.
    pub op: PublicOp,
    /// Input values (all smaller than this step's value id).
    pub inputs: Vec<ValueId>,
    /// Output shape of one sample.
    pub shape: Vec<usize>,
    /// Fractional bits of the output.
    pub scale: u32,
}

impl PublicStep {
    /// Applies a **local** step to input batches in the ring (the
    /// interpreter's semantics, [`Step::apply`]); an error for other steps.
    pub fn apply_local(&self, ring: Ring, ins: &[&RingTensor]) -> Result<RingTensor> {
        let op = self.op.local_op().ok_or_else(|| {
            NnError::FixedPoint(format!("step `{}` is not a local step", self.name))
        })?;
        let step = Step {
            name: self.name.clone(),
            op,
            inputs: self.inputs.clone(),
            shape: self.shape.clone(),
            scale: self.scale,
        };
        step.apply(ring, ins)
    }
}

/// The public view of a program (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicProgram {
    /// The ring and scale `f`.
    pub fixed: FixedPoint,
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
    /// The steps; step `i` defines value `i + 1`.
    pub steps: Vec<PublicStep>,
}

impl FixedProgram {
    /// The public view: the structure without coefficient vectors.
    pub fn public(&self) -> PublicProgram {
        PublicProgram {
            fixed: self.fixed,
            input_shape: self.input_shape.clone(),
            steps: self
                .steps
                .iter()
                .map(|s| PublicStep {
                    name: s.name.clone(),
                    op: PublicOp::from(&s.op),
                    inputs: s.inputs.clone(),
                    shape: s.shape.clone(),
                    scale: s.scale,
                })
                .collect(),
        }
    }
}

impl PublicProgram {
    /// The ring.
    pub fn ring(&self) -> Ring {
        self.fixed.ring
    }

    /// The output value id.
    pub fn output(&self) -> ValueId {
        self.steps.len()
    }

    /// Fractional bits of the output.
    pub fn output_scale(&self) -> u32 {
        self.steps.last().map_or(self.fixed.frac_bits, |s| s.scale)
    }

    /// Per-sample shape of the output.
    pub fn output_shape(&self) -> &[usize] {
        self.steps.last().map_or(&self.input_shape, |s| &s.shape)
    }

    /// Per-sample shape of a value.
    pub fn value_shape(&self, v: ValueId) -> &[usize] {
        if v == 0 {
            &self.input_shape
        } else {
            &self.steps[v - 1].shape
        }
    }

    /// Checks the structure: references, arities, shapes, truncation widths
    /// (a program from a peer must be validated before use).
    pub fn validate(&self) -> Result<()> {
        let bad = |i: usize, msg: String| NnError::FixedPoint(format!("step {i}: {msg}"));
        if self.steps.is_empty() {
            return Err(NnError::FixedPoint(
                "a program needs at least one step".into(),
            ));
        }
        if self.input_shape.is_empty() || crate::graph::checked_numel(&self.input_shape).is_none() {
            return Err(NnError::FixedPoint(format!(
                "bad input shape {:?}",
                self.input_shape
            )));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if s.inputs.len() != s.op.arity() {
                return Err(bad(
                    i,
                    format!(
                        "{} takes {} inputs, has {}",
                        s.op.tag(),
                        s.op.arity(),
                        s.inputs.len()
                    ),
                ));
            }
            if s.inputs.iter().any(|&v| v > i) {
                return Err(bad(i, "reads a value that is not defined before it".into()));
            }
            let ins: Vec<&[usize]> = s.inputs.iter().map(|&v| self.value_shape(v)).collect();
            let want = exec::output_shape(&s.op.structure(), &ins).map_err(|m| bad(i, m))?;
            if want != s.shape {
                return Err(bad(
                    i,
                    format!("declared shape {:?}, the op gives {want:?}", s.shape),
                ));
            }
            if let PublicOp::Truncate { bits } = s.op
                && bits >= self.fixed.ring.bits()
            {
                return Err(bad(
                    i,
                    format!(
                        "truncation by {bits} bits in a {}-bit ring",
                        self.fixed.ring.bits()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Encodes a preprocessed float batch at scale `f`.
    pub fn encode_input(&self, x: &Tensor<f32>) -> Result<RingTensor> {
        crate::float::check_batch(x, &self.input_shape)?;
        let fp = self.fixed;
        Ok(x.map(|&v| fp.encode(v as f64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::default_fixed_point;
    use crate::fixed::lower;

    #[test]
    fn the_public_view_keeps_structure_and_drops_every_coefficient() {
        let m = crate::zoo::build("cnn-mnist", 1).expect("zoo");
        let p = lower(&m, default_fixed_point()).expect("lower");
        let public = p.public();
        public.validate().expect("valid");
        assert_eq!(public.steps.len(), p.steps.len());
        for (a, b) in public.steps.iter().zip(&p.steps) {
            assert_eq!(a.op.tag(), b.op.tag());
            assert_eq!(
                (&a.shape, a.scale, &a.inputs),
                (&b.shape, b.scale, &b.inputs)
            );
        }
        let json = serde_json::to_string(&public).expect("json");
        assert!(!json.contains("weight") && !json.contains("bias"), "{json}");
        let back: PublicProgram = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, public);
        // A server's program (with coefficients) does not parse as a public one.
        let server = serde_json::to_string(&p).expect("json");
        assert!(serde_json::from_str::<PublicProgram>(&server).is_err());
    }

    #[test]
    fn inconsistent_public_programs_are_refused() {
        let m = crate::zoo::build("mlp-bc", 1).expect("zoo");
        let p = lower(&m, default_fixed_point()).expect("lower").public();
        let mut q = p.clone();
        q.steps[0].inputs = vec![3];
        assert!(q.validate().is_err());
        let mut q = p.clone();
        q.steps[0].shape = vec![7];
        assert!(q.validate().is_err());
        let mut q = p;
        q.steps[1].op = PublicOp::Truncate { bits: 40 };
        assert!(q.validate().is_err());
    }
}
