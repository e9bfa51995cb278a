//! The f32 engine: evaluates a [`Model`]'s graph on a batch.
//!
//! Inputs are *preprocessed* batches `[N, ...input_shape]` (apply
//! [`crate::model::Preprocess`] first, or use [`predict`] which does). Nodes are
//! evaluated in graph order; a value is dropped after its last use, so deep
//! networks (ResNet50) keep only the live activations. Convolutions are im2col +
//! SIMD matrix products, parallel over samples (or over output channels for a
//! batch of one).

use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::error::{NnError, Result};
use crate::graph::{NodeId, Op, ParamKind};
use crate::kernels::{Window, gemm_f32, im2col, window_reduce};
use crate::model::Model;
use crate::tensor::Tensor;

/// Checks that `x` is a batch of samples of `shape`.
pub fn check_batch<T>(x: &Tensor<T>, shape: &[usize]) -> Result<()> {
    if x.shape().len() != shape.len() + 1 || x.sample_shape() != shape {
        return Err(NnError::InputShape {
            expected: shape.to_vec(),
            found: x.shape().to_vec(),
        });
    }
    Ok(())
}

/// Runs the network on a preprocessed batch; returns the output batch `[N, classes]`.
pub fn forward(model: &Model, x: &Tensor<f32>) -> Result<Tensor<f32>> {
    check_batch(x, &model.graph.input_shape)?;
    let last = model.graph.last_uses();
    let mut values: Vec<Option<Tensor<f32>>> = vec![None; model.graph.nodes.len()];
    values[0] = Some(x.clone());
    for id in 1..model.graph.nodes.len() {
        let node = &model.graph.nodes[id];
        let ins: Vec<&Tensor<f32>> = node
            .inputs
            .iter()
            .map(|&i| {
                values[i]
                    .as_ref()
                    .ok_or_else(|| NnError::Graph(format!("value of node {i} missing")))
            })
            .collect::<Result<_>>()?;
        let y = eval_node(model, id, &ins)?;
        values[id] = Some(y);
        for &i in &node.inputs {
            if last[i] == id {
                values[i] = None;
            }
        }
    }
    values
        .pop()
        .flatten()
        .ok_or_else(|| NnError::Graph("the graph produced no output".into()))
}

/// Runs the network and keeps every node's value (for training and debugging).
pub fn forward_all(model: &Model, x: &Tensor<f32>) -> Result<Vec<Tensor<f32>>> {
    check_batch(x, &model.graph.input_shape)?;
    let mut values: Vec<Tensor<f32>> = Vec::with_capacity(model.graph.nodes.len());
    values.push(x.clone());
    for id in 1..model.graph.nodes.len() {
        let ins: Vec<&Tensor<f32>> = model.graph.nodes[id]
            .inputs
            .iter()
            .map(|&i| &values[i])
            .collect();
        let y = eval_node(model, id, &ins)?;
        values.push(y);
    }
    Ok(values)
}

/// Predicted classes of raw (not yet preprocessed) samples, evaluated in chunks
/// of `chunk` samples.
pub fn predict(model: &Model, raw: &Tensor<f32>, chunk: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(raw.batch());
    let chunk = chunk.max(1);
    let mut start = 0;
    while start < raw.batch() {
        let end = (start + chunk).min(raw.batch());
        let x = model.meta.preprocess.apply(&raw.slice_batch(start..end))?;
        out.extend(forward(model, &x)?.argmax_rows());
        start = end;
    }
    Ok(out)
}

fn shape_of(x: &Tensor<f32>) -> (usize, usize, usize, usize) {
    let s = x.shape();
    (s[0], s[1], s[2], s[3])
}

/// Evaluates node `id` on its input values.
pub fn eval_node(model: &Model, id: NodeId, ins: &[&Tensor<f32>]) -> Result<Tensor<f32>> {
    let node = &model.graph.nodes[id];
    let x = ins[0];
    let n = x.batch();
    match node.op {
        Op::Input => Ok(x.clone()),
        Op::Dense { out_features } => {
            let w = model.param(id, ParamKind::Weight)?;
            let b = model.param(id, ParamKind::Bias)?;
            let d = x.sample_len();
            let mut y = Tensor::zeros(vec![n, out_features]);
            {
                let xv = ArrayView2::from_shape((n, d), x.data()).map_err(internal)?;
                let wv = ArrayView2::from_shape((out_features, d), w.data()).map_err(internal)?;
                let yv =
                    ArrayViewMut2::from_shape((n, out_features), y.data_mut()).map_err(internal)?;
                gemm_f32(xv, wv.t(), 0.0, yv);
            }
            for row in y.data_mut().chunks_mut(out_features) {
                for (v, bias) in row.iter_mut().zip(b.data()) {
                    *v += bias;
                }
            }
            Ok(y)
        }
        Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            let (_, c, h, wd) = shape_of(x);
            let g =
                Window::new(c, h, wd, kernel, stride, padding).ok_or_else(|| internal("window"))?;
            let w = model.param(id, ParamKind::Weight)?;
            let b = model.param(id, ParamKind::Bias)?;
            Ok(conv2d_f32(&g, x, w.data(), b.data(), out_channels))
        }
        Op::Relu => Ok(x.map(|v| v.max(0.0))),
        Op::Square => Ok(x.map(|v| v * v)),
        Op::MaxPool2d {
            kernel,
            stride,
            padding,
        }
        | Op::AvgPool2d {
            kernel,
            stride,
            padding,
        } => {
            let (_, c, h, wd) = shape_of(x);
            let g =
                Window::new(c, h, wd, kernel, stride, padding).ok_or_else(|| internal("window"))?;
            let is_max = matches!(node.op, Op::MaxPool2d { .. });
            let inv = 1.0 / (kernel * kernel) as f32;
            let out_len = c * g.out_positions();
            let mut y = vec![0f32; n * out_len];
            y.par_chunks_mut(out_len)
                .zip(x.data().par_chunks(g.in_len()))
                .for_each(|(o, xs)| {
                    if is_max {
                        window_reduce(&g, xs, o, f32::max);
                    } else {
                        window_reduce(&g, xs, o, |a, b| a + b);
                        o.iter_mut().for_each(|v| *v *= inv);
                    }
                });
            Tensor::new(vec![n, c, g.ho, g.wo], y)
        }
        Op::BatchNorm2d { eps } => {
            let (scale, shift) = batch_norm_affine(model, id, eps)?;
            let (_, c, h, wd) = shape_of(x);
            let hw = h * wd;
            let mut y = x.clone();
            y.data_mut().par_chunks_mut(c * hw).for_each(|s| {
                for (ch, plane) in s.chunks_mut(hw).enumerate() {
                    plane
                        .iter_mut()
                        .for_each(|v| *v = *v * scale[ch] + shift[ch]);
                }
            });
            Ok(y)
        }
        Op::Flatten => x.clone().reshape(vec![n, x.sample_len()]),
        Op::Add => {
            let b = ins[1];
            let data = x.data().iter().zip(b.data()).map(|(p, q)| p + q).collect();
            Tensor::new(x.shape().to_vec(), data)
        }
        Op::GlobalAvgPool => {
            let (_, c, h, wd) = shape_of(x);
            let hw = h * wd;
            let data = x
                .data()
                .chunks(hw)
                .map(|p| p.iter().sum::<f32>() / hw as f32)
                .collect();
            Tensor::new(vec![n, c], data)
        }
    }
}

/// Per-channel `(scale, shift)` of a batch norm: `scale = gamma / sqrt(var + eps)`,
/// `shift = beta - mean * scale` (computed in f64).
pub fn batch_norm_affine(model: &Model, id: NodeId, eps: f32) -> Result<(Vec<f32>, Vec<f32>)> {
    let gamma = model.param(id, ParamKind::Gamma)?.data();
    let beta = model.param(id, ParamKind::Beta)?.data();
    let mean = model.param(id, ParamKind::RunningMean)?.data();
    let var = model.param(id, ParamKind::RunningVar)?.data();
    let mut scale = Vec::with_capacity(gamma.len());
    let mut shift = Vec::with_capacity(gamma.len());
    for i in 0..gamma.len() {
        let denom = (var[i] as f64 + eps as f64).sqrt();
        if !(denom > 0.0 && denom.is_finite()) {
            return Err(NnError::InvalidArgument(format!(
                "batch norm `{}` channel {i}: var + eps = {} must be positive",
                model.graph.nodes[id].name,
                var[i] as f64 + eps as f64
            )));
        }
        let s = gamma[i] as f64 / denom;
        scale.push(s as f32);
        shift.push((beta[i] as f64 - mean[i] as f64 * s) as f32);
    }
    Ok((scale, shift))
}

/// Convolution of a batch `[N, C, H, W]` with weights `[Co, C, k, k]` and bias `[Co]`.
pub fn conv2d_f32(g: &Window, x: &Tensor<f32>, w: &[f32], b: &[f32], co: usize) -> Tensor<f32> {
    let n = x.batch();
    let np = g.out_positions();
    let kk = g.patch_len();
    let mut y = vec![0f32; n * co * np];
    let one = |xs: &[f32], ys: &mut [f32], parallel: bool| {
        let mut cols = vec![0f32; kk * np];
        im2col(g, xs, &mut cols);
        let (Ok(wv), Ok(cv), Ok(yv)) = (
            ArrayView2::from_shape((co, kk), w),
            ArrayView2::from_shape((kk, np), &cols[..]),
            ArrayViewMut2::from_shape((co, np), ys),
        ) else {
            unreachable!("shapes follow from the window geometry")
        };
        if parallel {
            gemm_f32(wv, cv, 0.0, yv);
        } else {
            let mut yv = yv;
            ndarray::linalg::general_mat_mul(1.0, &wv, &cv, 0.0, &mut yv);
        }
        for (o, plane) in ys.chunks_mut(np).enumerate() {
            plane.iter_mut().for_each(|v| *v += b[o]);
        }
    };
    if n == 1 {
        one(x.data(), &mut y, true);
    } else {
        y.par_chunks_mut(co * np)
            .zip(x.data().par_chunks(g.in_len()))
            .for_each(|(ys, xs)| one(xs, ys, false));
    }
    Tensor::new(vec![n, co, g.ho, g.wo], y).unwrap_or_else(|_| unreachable!("length is n co ho wo"))
}

fn internal(e: impl std::fmt::Display) -> NnError {
    NnError::Graph(format!("internal shape inconsistency: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::model::ModelMeta;

    #[test]
    fn dense_relu_dense_by_hand() {
        let mut g = GraphBuilder::new(vec![2]);
        let x = g.input();
        let h = g.dense("fc1", x, 2);
        let h = g.relu("r", h);
        g.dense("fc2", h, 1);
        let mut m = Model::init(ModelMeta::for_tests(1), g.finish().expect("g"), 0).expect("init");
        m.params.insert(
            "fc1.weight",
            Tensor::new(vec![2, 2], vec![1., -1., 2., 0.5]).expect("t"),
        );
        m.params.insert(
            "fc1.bias",
            Tensor::new(vec![2], vec![0.5, -10.]).expect("t"),
        );
        m.params.insert(
            "fc2.weight",
            Tensor::new(vec![1, 2], vec![3., 1.]).expect("t"),
        );
        m.params
            .insert("fc2.bias", Tensor::new(vec![1], vec![1.]).expect("t"));
        let x = Tensor::new(vec![2, 2], vec![2., 1., 4., 2.]).expect("t");
        // sample 0: h = relu([1.5, -4.5]) = [1.5, 0] -> 5.5; sample 1: relu([2.5, -1]) -> 8.5
        assert_eq!(forward(&m, &x).expect("fwd").data(), &[5.5, 8.5]);
    }

    #[test]
    fn rejects_a_batch_of_the_wrong_shape() {
        let mut g = GraphBuilder::new(vec![3]);
        let x = g.input();
        g.dense("fc", x, 2);
        let m = Model::init(ModelMeta::for_tests(2), g.finish().expect("g"), 0).expect("init");
        let err =
            forward(&m, &Tensor::new(vec![1, 4], vec![0.; 4]).expect("t")).expect_err("shape");
        assert!(matches!(err, NnError::InputShape { .. }));
    }

    #[test]
    fn residual_graph_batch_equals_samples_one_by_one() {
        let mut g = GraphBuilder::new(vec![2, 6, 6]);
        let x = g.input();
        let a = g.conv2d("c1", x, 4, 3, 1, 1);
        let a = g.batch_norm("bn1", a);
        let a = g.relu("r1", a);
        let b = g.conv2d("c2", a, 4, 3, 1, 1);
        let s = g.add("add", a, b);
        let s = g.max_pool("mp", s, 3, 2, 1);
        let s = g.avg_pool("ap", s, 2, 1, 0);
        let s = g.global_avg_pool("gap", s);
        g.dense("fc", s, 3);
        let m = Model::init(ModelMeta::for_tests(3), g.finish().expect("g"), 1).expect("init");
        let x = Tensor::new(
            vec![3, 2, 6, 6],
            (0..216)
                .map(|i| ((i * 37) % 11) as f32 * 0.1 - 0.5)
                .collect(),
        )
        .expect("t");
        let all = forward(&m, &x).expect("batch");
        for i in 0..3 {
            let one = forward(&m, &x.slice_batch(i..i + 1)).expect("one");
            for (p, q) in one.data().iter().zip(all.sample(i)) {
                assert!((p - q).abs() < 1e-5, "{p} {q}");
            }
        }
        assert_eq!(
            forward_all(&m, &x).expect("all").last().expect("last"),
            &all
        );
    }
}
