//! The network shape the share-shifting attack handles, in plaintext: a chain
//! of blocks `linear -> ReLU -> [average pool]` ending in a linear layer,
//! where each linear layer is dense or a stride-1 convolution.
//!
//! [`Net`] holds weights (the model's, to score the attack, or the ones the
//! attack has recovered so far) and computes what the attack needs: the
//! honest forward pass (to compare labels) and [`Net::downstream`], the
//! linear map from one block's ReLU output to the logits when every later
//! ReLU is the identity (the attack makes it so), which is how a value the
//! attack isolated inside the network shows up in the scores.

use fusion_nn::Model;
use fusion_nn::graph::Op;
use fusion_nn::graph::ParamKind;

/// A linear layer's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `[d] -> [o]`, weights `[o][d]`.
    Dense {
        /// Input width.
        d: usize,
        /// Output width.
        o: usize,
    },
    /// `[c, h, w] -> [o, ho, wo]`, stride 1, weights `[o][c][k][k]`.
    Conv {
        /// Input channels, rows, columns.
        c: usize,
        h: usize,
        w: usize,
        /// Output channels.
        o: usize,
        /// Kernel side.
        k: usize,
        /// Zero padding on each side.
        pad: usize,
    },
}

impl Kind {
    /// Output rows and columns of a convolution (1 x 1 for dense).
    pub fn out_hw(&self) -> (usize, usize) {
        match *self {
            Kind::Dense { .. } => (1, 1),
            Kind::Conv { h, w, k, pad, .. } => ((h + 2 * pad + 1).saturating_sub(k), {
                (w + 2 * pad + 1).saturating_sub(k)
            }),
        }
    }

    /// Input elements of one sample.
    pub fn in_len(&self) -> usize {
        match *self {
            Kind::Dense { d, .. } => d,
            Kind::Conv { c, h, w, .. } => c * h * w,
        }
    }

    /// Output channels (units for dense).
    pub fn out_channels(&self) -> usize {
        match *self {
            Kind::Dense { o, .. } | Kind::Conv { o, .. } => o,
        }
    }

    /// Output elements of one sample.
    pub fn out_len(&self) -> usize {
        let (ho, wo) = self.out_hw();
        self.out_channels() * ho * wo
    }

    /// Weights.
    pub fn weight_len(&self) -> usize {
        match *self {
            Kind::Dense { d, o } => d * o,
            Kind::Conv { c, o, k, .. } => o * c * k * k,
        }
    }
}

/// A linear layer with (possibly partly recovered) weights.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Geometry.
    pub kind: Kind,
    /// Row-major weights (see [`Kind`]).
    pub weight: Vec<f64>,
    /// One bias per output channel.
    pub bias: Vec<f64>,
}

impl Layer {
    /// A dense layer's rows minus its first row (weights and bias): the
    /// same argmax, the form a label-only reading recovers. Other layers
    /// are left alone.
    pub fn subtract_first_row(&mut self) {
        let Kind::Dense { d, .. } = self.kind else {
            return;
        };
        let first: Vec<f64> = self.weight[..d.min(self.weight.len())].to_vec();
        for row in self.weight.chunks_mut(d.max(1)) {
            row.iter_mut().zip(&first).for_each(|(w, f)| *w -= f);
        }
        let b0 = self.bias.first().copied().unwrap_or(0.0);
        self.bias.iter_mut().for_each(|b| *b -= b0);
    }

    /// A layer of zeros.
    pub fn zeros(kind: Kind) -> Self {
        Layer {
            kind,
            weight: vec![0.0; kind.weight_len()],
            bias: vec![0.0; kind.out_channels()],
        }
    }

    /// `W x (+ b)`.
    pub fn apply(&self, x: &[f64], with_bias: bool) -> Vec<f64> {
        match self.kind {
            Kind::Dense { d, o } => (0..o)
                .map(|j| {
                    let row = &self.weight[j * d..(j + 1) * d];
                    let dot: f64 = row.iter().zip(x).map(|(w, v)| w * v).sum();
                    dot + if with_bias { self.bias[j] } else { 0.0 }
                })
                .collect(),
            Kind::Conv {
                c, h, w, o, k, pad, ..
            } => {
                let (ho, wo) = self.kind.out_hw();
                let mut y = vec![0.0; o * ho * wo];
                for oc in 0..o {
                    let b = if with_bias { self.bias[oc] } else { 0.0 };
                    for a in 0..ho {
                        for bb in 0..wo {
                            let mut s = b;
                            for ic in 0..c {
                                for u in 0..k {
                                    let Some(p) = (a + u).checked_sub(pad).filter(|&p| p < h)
                                    else {
                                        continue;
                                    };
                                    for v in 0..k {
                                        let Some(q) = (bb + v).checked_sub(pad).filter(|&q| q < w)
                                        else {
                                            continue;
                                        };
                                        let wi = ((oc * c + ic) * k + u) * k + v;
                                        s += self.weight[wi] * x[(ic * h + p) * w + q];
                                    }
                                }
                            }
                            y[(oc * ho + a) * wo + bb] = s;
                        }
                    }
                }
                y
            }
        }
    }
}

/// Average pooling over non-overlapping `k x k` windows of a `[c, h, w]` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Window side (and stride).
    pub k: usize,
    /// Input channels, rows, columns.
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Pool {
    /// The pooled value.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let (ho, wo) = (self.h / self.k, self.w / self.k);
        let div = (self.k * self.k) as f64;
        let mut y = vec![0.0; self.c * ho * wo];
        for ch in 0..self.c {
            for a in 0..ho * self.k {
                for b in 0..wo * self.k {
                    y[(ch * ho + a / self.k) * wo + b / self.k] +=
                        x[(ch * self.h + a) * self.w + b] / div;
                }
            }
        }
        y
    }
}

/// `linear -> ReLU -> [pool]` blocks and a last linear layer.
#[derive(Debug, Clone)]
pub struct Net {
    /// The hidden blocks' linear layers.
    pub hidden: Vec<Layer>,
    /// The pool after each hidden block's ReLU, if any.
    pub pools: Vec<Option<Pool>>,
    /// The last layer (its outputs are the logits).
    pub last: Layer,
}

impl Net {
    /// Logits of the honest network.
    pub fn forward(&self, x: &[f64]) -> Vec<f64> {
        let mut v = x.to_vec();
        for (layer, pool) in self.hidden.iter().zip(&self.pools) {
            v = layer.apply(&v, true);
            v.iter_mut().for_each(|e| *e = e.max(0.0));
            if let Some(p) = pool {
                v = p.apply(&v);
            }
        }
        self.last.apply(&v, true)
    }

    /// The linear map from block `b`'s ReLU output to the logits with every
    /// later ReLU the identity and no biases, applied to `r`.
    pub fn downstream(&self, b: usize, r: &[f64]) -> Vec<f64> {
        let mut v = match &self.pools[b] {
            Some(p) => p.apply(r),
            None => r.to_vec(),
        };
        for (layer, pool) in self.hidden.iter().zip(&self.pools).skip(b + 1) {
            v = layer.apply(&v, false);
            if let Some(p) = pool {
                v = p.apply(&v);
            }
        }
        self.last.apply(&v, false)
    }

    /// Every linear layer, first to last.
    pub fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.hidden.iter().chain(std::iter::once(&self.last))
    }

    /// Reads the weights of a model of this shape (to score the attack).
    pub fn from_model(model: &Model) -> Result<Self, String> {
        let shapes = model.graph.shapes().map_err(|e| e.to_string())?;
        let nodes = &model.graph.nodes;
        let mut layers: Vec<Layer> = Vec::new();
        let mut pools: Vec<Option<Pool>> = Vec::new();
        let unsupported = |name: &str, why: &str| {
            format!(
                "node `{name}` {why}: the MUSE attack handles chains of dense or stride-1 \
                 convolution layers, each followed by ReLU and optionally a non-overlapping \
                 average pool (or flatten), ending in a linear layer"
            )
        };
        // Whether the next node may be: a linear layer / a ReLU / a pool.
        let mut after_relu = true;
        for (id, node) in nodes.iter().enumerate().skip(1) {
            if node.inputs.len() != 1 || node.inputs[0] != id - 1 {
                return Err(unsupported(&node.name, "does not continue a chain"));
            }
            let in_shape = &shapes[id - 1];
            let param = |kind| {
                model
                    .param(id, kind)
                    .map(|t| t.data().iter().map(|&v| v as f64).collect::<Vec<f64>>())
                    .map_err(|e| e.to_string())
            };
            match node.op {
                Op::Dense { out_features } if after_relu => {
                    let d = in_shape.iter().product();
                    layers.push(Layer {
                        kind: Kind::Dense { d, o: out_features },
                        weight: param(ParamKind::Weight)?,
                        bias: param(ParamKind::Bias)?,
                    });
                    pools.push(None);
                    after_relu = false;
                }
                Op::Conv2d {
                    out_channels,
                    kernel,
                    stride: 1,
                    padding,
                } if after_relu && in_shape.len() == 3 => {
                    layers.push(Layer {
                        kind: Kind::Conv {
                            c: in_shape[0],
                            h: in_shape[1],
                            w: in_shape[2],
                            o: out_channels,
                            k: kernel,
                            pad: padding,
                        },
                        weight: param(ParamKind::Weight)?,
                        bias: param(ParamKind::Bias)?,
                    });
                    pools.push(None);
                    after_relu = false;
                }
                Op::Relu if !after_relu => after_relu = true,
                Op::AvgPool2d {
                    kernel,
                    stride,
                    padding: 0,
                } if after_relu
                    && kernel == stride
                    && in_shape.len() == 3
                    && in_shape[1] % kernel == 0
                    && in_shape[2] % kernel == 0
                    && pools.last().is_some_and(Option::is_none) =>
                {
                    if let Some(slot) = pools.last_mut() {
                        *slot = Some(Pool {
                            k: kernel,
                            c: in_shape[0],
                            h: in_shape[1],
                            w: in_shape[2],
                        });
                    }
                }
                Op::Flatten => {}
                ref op => return Err(unsupported(&node.name, &format!("is `{}`", op.tag()))),
            }
        }
        for l in &layers {
            if l.weight.len() != l.kind.weight_len() || l.bias.len() != l.kind.out_channels() {
                return Err("a layer's parameters do not match its shape".into());
            }
        }
        let (Some(last), false) = (layers.pop(), after_relu) else {
            return Err("the network must end with a linear layer (no final ReLU)".into());
        };
        pools.pop();
        if layers.is_empty() {
            return Err("the network has no hidden layer".into());
        }
        Ok(Net {
            hidden: layers,
            pools,
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convolution_reads_weight_o_c_u_v_at_output_p_minus_u() {
        let kind = Kind::Conv {
            c: 2,
            h: 6,
            w: 6,
            o: 3,
            k: 3,
            pad: 0,
        };
        let mut layer = Layer::zeros(kind);
        for (i, w) in layer.weight.iter_mut().enumerate() {
            *w = i as f64 + 1.0;
        }
        // An impulse at channel 1, position (3, 3).
        let mut x = vec![0.0; kind.in_len()];
        x[(6 + 3) * 6 + 3] = 1.0;
        let y = layer.apply(&x, false);
        let (ho, wo) = kind.out_hw();
        assert_eq!((ho, wo), (4, 4));
        for o in 0..3 {
            for u in 0..3 {
                for v in 0..3 {
                    let want = layer.weight[((o * 2 + 1) * 3 + u) * 3 + v];
                    assert_eq!(y[(o * ho + 3 - u) * wo + 3 - v], want);
                }
            }
        }
    }

    #[test]
    fn pooling_averages_each_window() {
        let p = Pool {
            k: 2,
            c: 1,
            h: 2,
            w: 4,
        };
        assert_eq!(
            p.apply(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
            vec![3.5, 5.5]
        );
    }
}
