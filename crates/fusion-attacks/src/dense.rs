//! Fully connected ReLU networks in f64: the exact reference the f64 oracle
//! evaluates, the ground truth A2's error is measured against, and the form of
//! the network A2 recovers.

use fusion_nn::Model;
use fusion_nn::graph::{Op, ParamKind};

use crate::error::{AttackError, Result};

/// One affine layer `y = W x + b`, `W` row-major `[out, in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// Rows of `W` (one per output neuron).
    pub weight: Vec<Vec<f64>>,
    /// `b`.
    pub bias: Vec<f64>,
}

/// `x -> L_k(relu(... relu(L_1 x)))`: affine layers with ReLU between them and
/// none after the last.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseNet {
    /// The layers, input first.
    pub layers: Vec<DenseLayer>,
}

impl DenseLayer {
    /// Input width.
    pub fn inputs(&self) -> usize {
        self.weight.first().map_or(0, Vec::len)
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.weight.len()
    }

    /// `W x + b`.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.weight
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(a, c)| a * c).sum::<f64>() + b)
            .collect()
    }
}

impl DenseNet {
    /// The network of a model whose graph is a chain `input [flatten] dense relu
    /// dense relu ... dense` (weights promoted from f32). Anything else
    /// (convolutions, pooling, batch norm, residual adds, square activations) is
    /// [`AttackError::Unsupported`].
    pub fn from_model(model: &Model) -> Result<Self> {
        let nodes = &model.graph.nodes;
        let mut layers = Vec::new();
        let mut expect_dense = true;
        for (id, node) in nodes.iter().enumerate().skip(1) {
            if node.inputs.len() != 1 || node.inputs[0] != id - 1 {
                return Err(AttackError::Unsupported(format!(
                    "node `{}` does not continue a chain; only fully connected ReLU chains are supported",
                    node.name
                )));
            }
            match node.op {
                Op::Flatten if layers.is_empty() => {}
                Op::Dense { out_features } if expect_dense => {
                    let w = model
                        .param(id, ParamKind::Weight)
                        .map_err(AttackError::Model)?;
                    let b = model
                        .param(id, ParamKind::Bias)
                        .map_err(AttackError::Model)?;
                    let d = w.data().len() / out_features.max(1);
                    layers.push(DenseLayer {
                        weight: w
                            .data()
                            .chunks(d.max(1))
                            .map(|r| r.iter().map(|&v| v as f64).collect())
                            .collect(),
                        bias: b.data().iter().map(|&v| v as f64).collect(),
                    });
                    expect_dense = false;
                }
                Op::Relu if !expect_dense => expect_dense = true,
                ref op => {
                    return Err(AttackError::Unsupported(format!(
                        "node `{}` is `{}`: only fully connected ReLU networks (dense, relu, a leading flatten) are supported",
                        node.name,
                        op.tag()
                    )));
                }
            }
        }
        if layers.is_empty() || expect_dense {
            return Err(AttackError::Unsupported(
                "the network must end with a dense layer".into(),
            ));
        }
        Ok(DenseNet { layers })
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, DenseLayer::inputs)
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, DenseLayer::outputs)
    }

    /// Hidden widths.
    pub fn hidden(&self) -> Vec<usize> {
        self.layers[..self.layers.len().saturating_sub(1)]
            .iter()
            .map(DenseLayer::outputs)
            .collect()
    }

    /// The output (logits) for one input.
    pub fn forward(&self, x: &[f64]) -> Vec<f64> {
        let mut v = x.to_vec();
        for (i, l) in self.layers.iter().enumerate() {
            v = l.apply(&v);
            if i + 1 < self.layers.len() {
                v.iter_mut().for_each(|a| *a = a.max(0.0));
            }
        }
        v
    }
}

/// Index of the largest entry (first on ties).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
