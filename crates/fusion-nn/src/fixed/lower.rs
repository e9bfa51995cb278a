//! Lowering a [`Model`] to a [`FixedProgram`] (rules in the module doc of [`super`]).

use fusion_core::ring::FixedPoint;

use super::{ChannelAffineOp, Conv2dOp, DenseOp, FixedOp, FixedProgram, Step, ValueId};
use crate::error::{NnError, Result};
use crate::graph::{Op, ParamKind};
use crate::model::Model;

/// Lowers `model` to a fixed-point program over `fixed` (ring `Z_{2^l}`, `f` bits).
///
/// Fails if a coefficient does not fit the ring at its scale, or an average pool
/// window is so large that `round(2^f / k^2)` is zero.
pub fn lower(model: &Model, fixed: FixedPoint) -> Result<FixedProgram> {
    model.validate()?;
    let graph = &model.graph;
    let shapes = graph.shapes()?;
    let consumers = graph.consumers();
    let f = fixed.frac_bits;
    let output = graph.output();

    // Batch norms folded into the conv before them: fold_into[bn] = conv.
    let mut folded_bn = vec![false; graph.nodes.len()];
    let mut fold_of_conv: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    for (id, node) in graph.nodes.iter().enumerate() {
        if let Op::BatchNorm2d { .. } = node.op {
            let src = node.inputs[0];
            if matches!(graph.nodes[src].op, Op::Conv2d { .. }) && consumers[src] == [id] {
                folded_bn[id] = true;
                fold_of_conv[src] = Some(id);
            }
        }
    }

    let mut b = Builder {
        fixed,
        steps: Vec::new(),
        input_shape: graph.input_shape.clone(),
    };
    let mut value: Vec<ValueId> = vec![0; graph.nodes.len()];
    for (id, node) in graph.nodes.iter().enumerate() {
        if id == 0 {
            continue;
        }
        let x = value[node.inputs[0]];
        let name = node.name.as_str();
        let in_shape = &shapes[node.inputs[0]];
        let out_shape = shapes[id].clone();
        // Is the value this node defines the graph output?
        let is_output = |n: usize| n == output || fold_of_conv[n] == Some(output);
        let v = match node.op {
            Op::Input => 0,
            Op::Dense { out_features } => {
                b.expect_scale(x, f, name)?;
                let w = model.param(id, ParamKind::Weight)?.data();
                let bias = model.param(id, ParamKind::Bias)?.data();
                let op = DenseOp {
                    in_features: in_shape[0],
                    out_features,
                    weight: encode_all(fixed, w.iter().map(|&v| v as f64), f, name, "weight")?,
                    bias: encode_all(fixed, bias.iter().map(|&v| v as f64), 2 * f, name, "bias")?,
                };
                let y = b.push(name, FixedOp::Dense(op), vec![x], out_shape, 2 * f);
                b.truncate_unless(is_output(id), name, y)
            }
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                b.expect_scale(x, f, name)?;
                let w = model.param(id, ParamKind::Weight)?.data();
                let bias = model.param(id, ParamKind::Bias)?.data();
                let per = w.len() / out_channels;
                let (weight, bias): (Vec<f64>, Vec<f64>) = match fold_of_conv[id] {
                    Some(bn) => {
                        let Op::BatchNorm2d { eps } = graph.nodes[bn].op else {
                            return Err(NnError::Graph("fold target is not a batch norm".into()));
                        };
                        let (s, t) = bn_affine(model, bn, eps)?;
                        let weight = w
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| v as f64 * s[i / per])
                            .collect();
                        let bias = bias
                            .iter()
                            .enumerate()
                            .map(|(o, &v)| v as f64 * s[o] + t[o])
                            .collect();
                        (weight, bias)
                    }
                    None => (
                        w.iter().map(|&v| v as f64).collect(),
                        bias.iter().map(|&v| v as f64).collect(),
                    ),
                };
                // A strided 1x1 convolution without padding reads only every
                // `stride`-th pixel: subsample first (local, exact), then
                // convolve the smaller input with stride 1.
                let (x, in_h, in_w, stride) = if kernel == 1 && padding == 0 && stride > 1 {
                    let sub_shape = vec![in_shape[0], out_shape[1], out_shape[2]];
                    let sub = b.push(
                        &format!("{name}.subsample"),
                        FixedOp::SumPool {
                            kernel: 1,
                            stride,
                            padding: 0,
                        },
                        vec![x],
                        sub_shape,
                        f,
                    );
                    (sub, out_shape[1], out_shape[2], 1)
                } else {
                    (x, in_shape[1], in_shape[2], stride)
                };
                let op = Conv2dOp {
                    in_channels: in_shape[0],
                    in_height: in_h,
                    in_width: in_w,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    weight: encode_all(fixed, weight.into_iter(), f, name, "weight")?,
                    bias: encode_all(fixed, bias.into_iter(), 2 * f, name, "bias")?,
                };
                let y = b.push(name, FixedOp::Conv2d(op), vec![x], out_shape, 2 * f);
                b.truncate_unless(is_output(id), name, y)
            }
            Op::BatchNorm2d { eps } => {
                if folded_bn[id] {
                    x
                } else {
                    b.expect_scale(x, f, name)?;
                    let (s, t) = bn_affine(model, id, eps)?;
                    let op = ChannelAffineOp {
                        channels: in_shape[0],
                        scale: encode_all(fixed, s.into_iter(), f, name, "scale")?,
                        shift: encode_all(fixed, t.into_iter(), 2 * f, name, "shift")?,
                    };
                    let y = b.push(name, FixedOp::ChannelAffine(op), vec![x], out_shape, 2 * f);
                    b.truncate_unless(is_output(id), name, y)
                }
            }
            Op::Relu => {
                let s = b.scale(x);
                b.push(name, FixedOp::Relu, vec![x], out_shape, s)
            }
            Op::Square => {
                b.expect_scale(x, f, name)?;
                let y = b.push(name, FixedOp::Square, vec![x], out_shape, 2 * f);
                b.truncate_unless(is_output(id), name, y)
            }
            Op::MaxPool2d {
                kernel,
                stride,
                padding,
            } => {
                let s = b.scale(x);
                let pool = FixedOp::MaxPool {
                    kernel,
                    stride,
                    padding,
                };
                // A ReLU read only by this pool runs after it instead: the two
                // commute exactly (ReLU is monotone and the windows hold only
                // in-bounds positions), and the ReLU then sees one value per
                // window instead of every input (a quarter for 2x2 pools).
                let src = node.inputs[0];
                let relu = matches!(graph.nodes[src].op, Op::Relu)
                    && consumers[src] == [id]
                    && x == b.steps.len()
                    && b.steps.last().is_some_and(|st| st.op == FixedOp::Relu);
                if let Some(r) = relu.then(|| b.steps.pop()).flatten() {
                    let pooled = b.push(name, pool, r.inputs, out_shape.clone(), s);
                    b.push(&r.name, FixedOp::Relu, vec![pooled], out_shape, s)
                } else {
                    b.push(name, pool, vec![x], out_shape, s)
                }
            }
            Op::AvgPool2d {
                kernel,
                stride,
                padding,
            } => {
                b.expect_scale(x, f, name)?;
                let sum = b.push(
                    &format!("{name}.sum"),
                    FixedOp::SumPool {
                        kernel,
                        stride,
                        padding,
                    },
                    vec![x],
                    out_shape,
                    f,
                );
                b.divide(name, sum, kernel * kernel)?
            }
            Op::GlobalAvgPool => {
                b.expect_scale(x, f, name)?;
                let sum = b.push(
                    &format!("{name}.sum"),
                    FixedOp::GlobalSumPool,
                    vec![x],
                    out_shape,
                    f,
                );
                b.divide(name, sum, in_shape[1] * in_shape[2])?
            }
            Op::Flatten => {
                let s = b.scale(x);
                b.push(name, FixedOp::Reshape, vec![x], out_shape, s)
            }
            Op::Add => {
                let y2 = value[node.inputs[1]];
                let (s1, s2) = (b.scale(x), b.scale(y2));
                if s1 != s2 {
                    return Err(NnError::FixedPoint(format!(
                        "`{name}` adds values at scales {s1} and {s2}"
                    )));
                }
                b.push(name, FixedOp::Add, vec![x, y2], out_shape, s1)
            }
        };
        value[id] = v;
    }
    let program = FixedProgram {
        fixed,
        input_shape: b.input_shape,
        steps: b.steps,
    };
    program.validate()?;
    Ok(program)
}

struct Builder {
    fixed: FixedPoint,
    steps: Vec<Step>,
    input_shape: Vec<usize>,
}

impl Builder {
    fn push(
        &mut self,
        name: &str,
        op: FixedOp,
        inputs: Vec<ValueId>,
        shape: Vec<usize>,
        scale: u32,
    ) -> ValueId {
        self.steps.push(Step {
            name: name.to_string(),
            op,
            inputs,
            shape,
            scale,
        });
        self.steps.len()
    }

    fn scale(&self, v: ValueId) -> u32 {
        if v == 0 {
            self.fixed.frac_bits
        } else {
            self.steps[v - 1].scale
        }
    }

    fn shape(&self, v: ValueId) -> Vec<usize> {
        if v == 0 {
            self.input_shape.clone()
        } else {
            self.steps[v - 1].shape.clone()
        }
    }

    fn expect_scale(&self, v: ValueId, want: u32, name: &str) -> Result<()> {
        let s = self.scale(v);
        if s != want {
            return Err(NnError::FixedPoint(format!(
                "`{name}` needs its input at scale {want}, it is at {s} (a multiplication of the graph output cannot be fed further)"
            )));
        }
        Ok(())
    }

    fn truncate_unless(&mut self, is_output: bool, name: &str, v: ValueId) -> ValueId {
        if is_output {
            return v;
        }
        let f = self.fixed.frac_bits;
        let shape = self.shape(v);
        self.push(
            &format!("{name}.trunc"),
            FixedOp::Truncate { bits: f },
            vec![v],
            shape,
            self.scale(v) - f,
        )
    }

    /// Divides a window sum (scale f) by `count` (the averaging rule).
    fn divide(&mut self, name: &str, sum: ValueId, count: usize) -> Result<ValueId> {
        let f = self.fixed.frac_bits;
        let shape = self.shape(sum);
        if count.is_power_of_two() {
            let bits = count.trailing_zeros();
            if bits == 0 {
                return Ok(sum);
            }
            return Ok(self.push(
                &format!("{name}.div"),
                FixedOp::Truncate { bits },
                vec![sum],
                shape,
                f,
            ));
        }
        let factor = ((1u64 << f) as f64 / count as f64).round() as u64;
        if factor == 0 {
            return Err(NnError::FixedPoint(format!(
                "`{name}` averages {count} values: 2^{f} / {count} rounds to zero; use more fractional bits"
            )));
        }
        let m = self.push(
            &format!("{name}.scale"),
            FixedOp::MulConst { factor },
            vec![sum],
            shape.clone(),
            2 * f,
        );
        Ok(self.push(
            &format!("{name}.trunc"),
            FixedOp::Truncate { bits: f },
            vec![m],
            shape,
            f,
        ))
    }
}

/// Batch-norm `(s, t)` in f64: `s = gamma / sqrt(var + eps)`, `t = beta - mean s`.
fn bn_affine(model: &Model, id: usize, eps: f32) -> Result<(Vec<f64>, Vec<f64>)> {
    let g = model.param(id, ParamKind::Gamma)?.data();
    let beta = model.param(id, ParamKind::Beta)?.data();
    let mean = model.param(id, ParamKind::RunningMean)?.data();
    let var = model.param(id, ParamKind::RunningVar)?.data();
    let mut s = Vec::with_capacity(g.len());
    let mut t = Vec::with_capacity(g.len());
    for i in 0..g.len() {
        let d = (var[i] as f64 + eps as f64).sqrt();
        if !(d > 0.0 && d.is_finite()) {
            return Err(NnError::FixedPoint(format!(
                "batch norm `{}` channel {i} has var + eps <= 0",
                model.graph.nodes[id].name
            )));
        }
        let si = g[i] as f64 / d;
        s.push(si);
        t.push(beta[i] as f64 - mean[i] as f64 * si);
    }
    Ok((s, t))
}

/// Encodes coefficients at `scale` bits, refusing values that would saturate.
fn encode_all(
    fixed: FixedPoint,
    vals: impl Iterator<Item = f64>,
    scale: u32,
    node: &str,
    what: &str,
) -> Result<Vec<u64>> {
    let limit = (2f64).powi(fixed.ring.bits() as i32 - 1);
    let factor = (2f64).powi(scale as i32);
    vals.map(|v| {
        let scaled = (v * factor).round();
        if scaled.is_nan() || scaled.abs() >= limit {
            return Err(NnError::FixedPoint(format!(
                "`{node}` {what} {v} does not fit Z_2^{} at scale 2^{scale}",
                fixed.ring.bits()
            )));
        }
        Ok(fixed.encode_at(v, scale))
    })
    .collect()
}
