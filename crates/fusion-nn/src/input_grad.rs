//! Gradients with respect to the network **input** (for Jacobians and
//! adversarial or augmentation steps), next to [`crate::train::backward`],
//! which returns parameter gradients only.
//!
//! Supported ops: dense, ReLU, square, flatten, add, average pooling. Any other
//! op (convolution, max pooling, batch norm, global pooling) is refused with
//! [`NnError::Training`] errors: the callers (the model
//! extraction attacks' substitute models) build fully connected networks.

use crate::error::{NnError, Result};
use crate::graph::{Op, ParamKind};
use crate::kernels::{Window, window_for_each};
use crate::model::Model;
use crate::tensor::Tensor;

/// The gradient of a scalar loss with respect to the input batch, given every
/// node's forward value (from [`crate::float::forward_all`]) and the gradient
/// `dout` of the output node. Row `i` of the result is `d loss / d x_i`.
pub fn input_gradient(
    model: &Model,
    values: &[Tensor<f32>],
    dout: Tensor<f32>,
) -> Result<Tensor<f32>> {
    let nodes = &model.graph.nodes;
    if values.len() != nodes.len() {
        return Err(NnError::Training(format!(
            "input_gradient: {} values for {} nodes",
            values.len(),
            nodes.len()
        )));
    }
    let mut dv: Vec<Option<Tensor<f32>>> = vec![None; nodes.len()];
    dv[nodes.len() - 1] = Some(dout);
    for id in (1..nodes.len()).rev() {
        let Some(dy) = dv[id].take() else { continue };
        let node = &nodes[id];
        let x = &values[node.inputs[0]];
        let n = x.batch();
        let mut dxs: Vec<(usize, Tensor<f32>)> = Vec::new();
        match node.op {
            Op::Input => {}
            Op::Dense { out_features } => {
                let d = x.sample_len();
                let w = model.param(id, ParamKind::Weight)?.data();
                let mut dx = vec![0f32; n * d];
                for (row, g) in dx.chunks_mut(d).zip(dy.data().chunks(out_features)) {
                    for (o, &go) in g.iter().enumerate() {
                        if go != 0.0 {
                            let wr = &w[o * d..(o + 1) * d];
                            row.iter_mut().zip(wr).for_each(|(a, &b)| *a += go * b);
                        }
                    }
                }
                dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), dx)?));
            }
            Op::Relu => {
                let d = dy
                    .data()
                    .iter()
                    .zip(x.data())
                    .map(|(g, &v)| if v > 0.0 { *g } else { 0.0 })
                    .collect();
                dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), d)?));
            }
            Op::Square => {
                let d = dy
                    .data()
                    .iter()
                    .zip(x.data())
                    .map(|(g, &v)| 2.0 * v * g)
                    .collect();
                dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), d)?));
            }
            Op::AvgPool2d {
                kernel,
                stride,
                padding,
            } => {
                let s = x.shape();
                let g = Window::new(s[1], s[2], s[3], kernel, stride, padding)
                    .ok_or_else(|| NnError::Training("pool window".into()))?;
                let inv = 1.0 / (kernel * kernel) as f32;
                let out_len = g.c * g.out_positions();
                let mut dx = vec![0f32; x.len()];
                for (i, dxi) in dx.chunks_mut(g.in_len()).enumerate() {
                    let gs = &dy.data()[i * out_len..(i + 1) * out_len];
                    window_for_each(&g, |o, p| dxi[p] += gs[o] * inv);
                }
                dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), dx)?));
            }
            Op::Flatten => dxs.push((node.inputs[0], dy.reshape(x.shape().to_vec())?)),
            Op::Add => {
                dxs.push((node.inputs[0], dy.clone()));
                dxs.push((node.inputs[1], dy));
            }
            ref other => {
                return Err(NnError::Training(format!(
                    "input_gradient does not support `{}` (node `{}`)",
                    other.tag(),
                    node.name
                )));
            }
        }
        for (src, d) in dxs {
            match &mut dv[src] {
                Some(acc) => acc
                    .data_mut()
                    .iter_mut()
                    .zip(d.data())
                    .for_each(|(a, b)| *a += b),
                slot @ None => *slot = Some(d),
            }
        }
    }
    dv[0]
        .take()
        .ok_or_else(|| NnError::Training("the output does not depend on the input".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::model::ModelMeta;

    #[test]
    fn input_gradient_matches_finite_differences_on_an_mlp() -> Result<()> {
        let mut g = GraphBuilder::new(vec![5]);
        let x = g.input();
        let h = g.dense("fc1", x, 7);
        let h = g.relu("act1", h);
        let o = g.dense("fc2", h, 3);
        let _ = o;
        let model = Model::init(ModelMeta::for_tests(3), g.finish()?, 9)?;
        let x0 = Tensor::new(
            vec![2, 5],
            vec![0.3, -0.2, 0.5, 0.1, -0.7, 0.9, 0.4, -0.1, 0.2, 0.6],
        )?;
        // loss = sum of output 1 over the batch
        let values = crate::float::forward_all(&model, &x0)?;
        let mut dout = vec![0f32; 6];
        dout[1] = 1.0;
        dout[4] = 1.0;
        let grad = input_gradient(&model, &values, Tensor::new(vec![2, 3], dout)?)?;
        let eps = 1e-3f32;
        for i in 0..10 {
            let mut xp = x0.clone();
            xp.data_mut()[i] += eps;
            let mut xm = x0.clone();
            xm.data_mut()[i] -= eps;
            let fp = crate::float::forward(&model, &xp)?;
            let fm = crate::float::forward(&model, &xm)?;
            let s = i / 5;
            let fd = (fp.data()[s * 3 + 1] - fm.data()[s * 3 + 1]) / (2.0 * eps);
            assert!(
                (fd - grad.data()[i]).abs() < 1e-2,
                "{i}: {fd} vs {}",
                grad.data()[i]
            );
        }
        Ok(())
    }
}
