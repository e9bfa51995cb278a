//! The benchmark networks (docs/DESIGN.md section 4), with seeded random weights.
//!
//! Names match the SPU peer tool's `--net` names (`shared/peers/spu/nets.py`) so
//! benchmarks compare the same shapes; our layout is CHW where SPU's is HWC, which
//! changes nothing about the cost.
//!
//! | name | shape | input |
//! |---|---|---|
//! | `mlp-bc` | 30 -> 16 ReLU -> 2 | N(0,1) |
//! | `mlp-mnist` | 784 -> 128 ReLU -> 128 ReLU -> 10 | U[0,1) |
//! | `cnn-mnist` | `[1,28,28]`: 2 x [conv5x5x16 valid, ReLU, avgpool2], FC 256 -> 100 ReLU -> 10 (Delphi/MiniONN) | U[0,1) |
//! | `cnn-cifar10` | the same on `[3,32,32]`: FC 400 -> 100 -> 10 (CIFAR-10-shaped variant) | U[0,1) |
//! | `lenet` | `[1,28,28]`: conv5x5x32 pad 2, ReLU, maxpool2, conv5x5x64 pad 2, ReLU, maxpool2, FC 3136 -> 512 ReLU -> 10 | U[0,1) |
//! | `fmnist-cnn` | `[1,28,28]`: conv5x5x16 pad 2, ReLU, avgpool2, conv5x5x32 pad 2, ReLU, avgpool2, FC 1568 -> 100 ReLU -> 10 | U[0,1) |
//! | `timit-dnn` | 1845 -> 3 x [2000, x^2] -> 183 | N(0,1) |
//! | `resnet50` | `[3,224,224]`, ResNet-50 v1.5 (bottlenecks 3-4-6-3, stride on the 3x3 conv, BN), 1000 classes | N(0,1) |
//!
//! **Random weights** (as `nets.py`): a dense/conv weight has variance
//! `gain / fan_in` with gain 1 after the raw input, 2 after a ReLU (He) and 1/3
//! after a square (`E[z^4] = 3`); biases are `0.01 N(0,1)`. So activations stay
//! O(1): fixed-point overflow cannot hide behind large values, nor precision loss
//! behind tiny ones.
//!
//! **ResNet50's batch norms** are calibrated on the fly: convolutions get He
//! weights, then a float pass over a seeded batch of two synthetic inputs sets each
//! batch norm's running mean and variance to the statistics of its input (beta 0),
//! as a trained network's statistics would be. Gamma is 1, except for the last
//! batch norm of each residual branch ([`RESNET_BRANCH_GAMMA`] = 0.25, the usual
//! small/zero-init residual trick): a deep random network whose every layer is
//! renormalised amplifies any perturbation by about 1.2x per layer, so with gamma 1
//! the fixed-point error (f = 12) grew to 15% of the logit RMS by the output; with
//! 0.25 the network stays close to its shortcuts and the error is about 2%.
//! Activations stay O(1) (28 of 37 ring bits used at l = 37, f = 12). Nothing is
//! stored: the 25.6 M weights are regenerated from the seed (about 1 s in release).

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use crate::error::{NnError, Result};
use crate::float;
use crate::graph::{Graph, GraphBuilder, NodeId, Op, ParamKind, param_key};
use crate::model::{Model, ModelMeta, Params, Preprocess};
use crate::tensor::Tensor;
use crate::util::normal;

/// Every zoo network name.
pub const NETS: [&str; 8] = [
    "mlp-bc",
    "mlp-mnist",
    "cnn-mnist",
    "cnn-cifar10",
    "lenet",
    "fmnist-cnn",
    "timit-dnn",
    "resnet50",
];

/// Distribution of synthetic inputs for a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Uniform in `[0, 1)` (pixels after `/255`).
    Pixels,
    /// Standard normal (standardised features).
    Normal,
}

/// Scale (`gamma`) of the last batch norm of every ResNet50 residual branch.
pub const RESNET_BRANCH_GAMMA: f32 = 0.25;

/// The input distribution of a zoo network.
pub fn input_kind(name: &str) -> Result<InputKind> {
    Ok(match name {
        "mlp-bc" | "timit-dnn" | "resnet50" => InputKind::Normal,
        "mlp-mnist" | "cnn-mnist" | "cnn-cifar10" | "lenet" | "fmnist-cnn" => InputKind::Pixels,
        other => return Err(unknown(other)),
    })
}

fn unknown(name: &str) -> NnError {
    NnError::UnknownName {
        kind: "network",
        name: name.into(),
        known: NETS.join(", "),
    }
}

fn mlp(input: usize, hidden: &[usize], out: usize, act: Op) -> Result<Graph> {
    let mut g = GraphBuilder::new(vec![input]);
    let mut x = g.input();
    for (i, &h) in hidden.iter().enumerate() {
        x = g.dense(&format!("fc{}", i + 1), x, h);
        x = g.node(format!("act{}", i + 1), act.clone(), vec![x]);
    }
    g.dense(&format!("fc{}", hidden.len() + 1), x, out);
    g.finish()
}

/// Two conv blocks then two dense layers (the MNIST-CNN family).
#[allow(clippy::too_many_arguments)]
fn two_conv(
    input: [usize; 3],
    c1: usize,
    c2: usize,
    k: usize,
    pad: usize,
    max_pool: bool,
    hidden: usize,
    classes: usize,
) -> Result<Graph> {
    let mut g = GraphBuilder::new(input.to_vec());
    let mut x = g.input();
    for (i, c) in [c1, c2].into_iter().enumerate() {
        let j = i + 1;
        x = g.conv2d(&format!("conv{j}"), x, c, k, 1, pad);
        x = g.relu(&format!("relu{j}"), x);
        x = if max_pool {
            g.max_pool(&format!("pool{j}"), x, 2, 2, 0)
        } else {
            g.avg_pool(&format!("pool{j}"), x, 2, 2, 0)
        };
    }
    x = g.flatten("flatten", x);
    x = g.dense("fc1", x, hidden);
    x = g.relu("relu3", x);
    g.dense("fc2", x, classes);
    g.finish()
}

/// The architecture of a zoo network.
pub fn graph(name: &str) -> Result<Graph> {
    match name {
        "mlp-bc" => mlp(30, &[16], 2, Op::Relu),
        "mlp-mnist" => {
            let mut g = GraphBuilder::new(vec![1, 28, 28]);
            let x = g.input();
            let mut x = g.flatten("flatten", x);
            for (i, h) in [128, 128].into_iter().enumerate() {
                x = g.dense(&format!("fc{}", i + 1), x, h);
                x = g.relu(&format!("act{}", i + 1), x);
            }
            g.dense("fc3", x, 10);
            g.finish()
        }
        "cnn-mnist" => two_conv([1, 28, 28], 16, 16, 5, 0, false, 100, 10),
        "cnn-cifar10" => two_conv([3, 32, 32], 16, 16, 5, 0, false, 100, 10),
        "lenet" => two_conv([1, 28, 28], 32, 64, 5, 2, true, 512, 10),
        "fmnist-cnn" => two_conv([1, 28, 28], 16, 32, 5, 2, false, 100, 10),
        "timit-dnn" => mlp(1845, &[2000, 2000, 2000], 183, Op::Square),
        "resnet50" => resnet50_graph(),
        other => Err(unknown(other)),
    }
}

/// ResNet-50 v1.5: 7x7/2 stem, 3x3/2 max pool, bottleneck stages of 3, 4, 6, 3
/// blocks (widths 64..512, expansion 4), global average pool, FC 2048 -> 1000.
pub fn resnet50_graph() -> Result<Graph> {
    let mut g = GraphBuilder::new(vec![3, 224, 224]);
    let x = g.input();
    let x = g.conv2d("conv1", x, 64, 7, 2, 3);
    let x = g.batch_norm("bn1", x);
    let x = g.relu("relu1", x);
    let mut x = g.max_pool("maxpool", x, 3, 2, 1);
    let mut in_c = 64;
    for (stage, (&blocks, &width)) in [3usize, 4, 6, 3]
        .iter()
        .zip(&[64usize, 128, 256, 512])
        .enumerate()
    {
        for blk in 0..blocks {
            let p = format!("layer{}.{blk}", stage + 1);
            let stride = if blk == 0 && stage > 0 { 2 } else { 1 };
            let out_c = 4 * width;
            let mut y = g.conv2d(&format!("{p}.conv1"), x, width, 1, 1, 0);
            y = g.batch_norm(&format!("{p}.bn1"), y);
            y = g.relu(&format!("{p}.relu1"), y);
            y = g.conv2d(&format!("{p}.conv2"), y, width, 3, stride, 1);
            y = g.batch_norm(&format!("{p}.bn2"), y);
            y = g.relu(&format!("{p}.relu2"), y);
            y = g.conv2d(&format!("{p}.conv3"), y, out_c, 1, 1, 0);
            y = g.batch_norm(&format!("{p}.bn3"), y);
            let shortcut = if blk == 0 {
                let s = g.conv2d(&format!("{p}.downsample.conv"), x, out_c, 1, stride, 0);
                g.batch_norm(&format!("{p}.downsample.bn"), s)
            } else {
                x
            };
            let s = g.add(&format!("{p}.add"), y, shortcut);
            x = g.relu(&format!("{p}.relu3"), s);
            in_c = out_c;
        }
    }
    debug_assert_eq!(in_c, 2048);
    let x = g.global_avg_pool("avgpool", x);
    g.dense("fc", x, 1000);
    g.finish()
}

/// Public metadata of a zoo network with random weights.
pub fn meta(name: &str, graph: &Graph) -> Result<ModelMeta> {
    let classes = graph.output_shape()?.first().copied().unwrap_or(0);
    Ok(ModelMeta {
        name: name.to_string(),
        description: format!("zoo network `{name}` with seeded random weights (synthetic inputs)"),
        dataset: None,
        classes,
        preprocess: Preprocess::Identity,
        training: None,
        evaluation: None,
    })
}

/// The variance gain for each weighted node: 1 after the input, 2 after a ReLU,
/// 1/3 after a square (following the nearest activation upstream).
fn gains(graph: &Graph) -> Vec<f64> {
    let mut last_act = vec![1.0f64; graph.nodes.len()];
    for (id, node) in graph.nodes.iter().enumerate() {
        last_act[id] = match node.op {
            Op::Input => 1.0,
            Op::Relu => 2.0,
            Op::Square => 1.0 / 3.0,
            _ => node.inputs.first().map_or(1.0, |&i| last_act[i]),
        };
    }
    graph
        .nodes
        .iter()
        .map(|n| n.inputs.first().map_or(1.0, |&i| last_act[i]))
        .collect()
}

/// A zoo network with seeded random weights (see the module doc).
pub fn build(name: &str, seed: u64) -> Result<Model> {
    let graph = graph(name)?;
    let meta = meta(name, &graph)?;
    let gain = gains(&graph);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut params = Params::default();
    let is_resnet = name == "resnet50";
    for spec in graph.param_specs()? {
        let n: usize = spec.shape.iter().product();
        let data: Vec<f32> = match spec.kind {
            ParamKind::Weight => {
                let std = (gain[spec.node] / spec.fan_in as f64).sqrt();
                (0..n).map(|_| (std * normal(&mut rng)) as f32).collect()
            }
            ParamKind::Bias if is_resnet => vec![0.0; n],
            ParamKind::Bias => (0..n).map(|_| (0.01 * normal(&mut rng)) as f32).collect(),
            // The last batch norm of each residual branch starts small, as in the
            // usual "zero-init residual" initialisation (Goyal et al. 2017).
            ParamKind::Gamma if is_resnet && spec.name.ends_with(".bn3.gamma") => {
                vec![RESNET_BRANCH_GAMMA; n]
            }
            ParamKind::Gamma | ParamKind::RunningVar => vec![1.0; n],
            ParamKind::Beta | ParamKind::RunningMean => vec![0.0; n],
        };
        params.insert(spec.name.clone(), Tensor::new(spec.shape.clone(), data)?);
    }
    let mut model = Model::new(meta, graph, params)?;
    if is_resnet {
        let calib = synthetic_inputs(name, seed ^ 0x5eed_ca11_b4a7_0000, 2)?;
        calibrate_batch_norms(&mut model, &calib)?;
    }
    Ok(model)
}

/// Sets every batch norm's running statistics to those of its input on `x`
/// (mean and biased variance per channel over batch and positions), in graph order.
pub fn calibrate_batch_norms(model: &mut Model, x: &Tensor<f32>) -> Result<()> {
    float::check_batch(x, &model.graph.input_shape)?;
    let last = model.graph.last_uses();
    let mut values: Vec<Option<Tensor<f32>>> = vec![None; model.graph.nodes.len()];
    values[0] = Some(x.clone());
    for id in 1..model.graph.nodes.len() {
        let node = model.graph.nodes[id].clone();
        if let Op::BatchNorm2d { .. } = node.op {
            let input = values[node.inputs[0]]
                .as_ref()
                .ok_or_else(|| NnError::Graph("missing value".into()))?;
            let (mean, var) = channel_stats(input);
            let c = mean.len();
            model.params.insert(
                param_key(&node.name, ParamKind::RunningMean),
                Tensor::new(vec![c], mean)?,
            );
            model.params.insert(
                param_key(&node.name, ParamKind::RunningVar),
                Tensor::new(vec![c], var)?,
            );
        }
        let ins: Vec<&Tensor<f32>> = node
            .inputs
            .iter()
            .map(|&i| {
                values[i]
                    .as_ref()
                    .ok_or_else(|| NnError::Graph("missing value".into()))
            })
            .collect::<Result<_>>()?;
        let y = float::eval_node(model, id, &ins)?;
        values[id] = Some(y);
        for &i in &node.inputs {
            if last[i] == id {
                values[i] = None;
            }
        }
    }
    model.validate()
}

fn channel_stats(x: &Tensor<f32>) -> (Vec<f32>, Vec<f32>) {
    let s = x.shape();
    let (n, c) = (s[0], s[1]);
    let hw: usize = s[2..].iter().product();
    let mut mean = vec![0f64; c];
    let mut sq = vec![0f64; c];
    for i in 0..n {
        for ch in 0..c {
            let plane = &x.data()[(i * c + ch) * hw..(i * c + ch + 1) * hw];
            for &v in plane {
                mean[ch] += v as f64;
                sq[ch] += (v as f64) * (v as f64);
            }
        }
    }
    let cnt = (n * hw) as f64;
    let mean: Vec<f64> = mean.iter().map(|m| m / cnt).collect();
    let var = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| ((s / cnt - m * m).max(1e-6)) as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), var)
}

/// A seeded batch of synthetic inputs for a zoo network (see [`input_kind`]).
///
/// Use a seed other than the weights' ([`build`]): both draw from the same
/// ChaCha20 stream for equal seeds, so the inputs would copy weight rows.
pub fn synthetic_inputs(name: &str, seed: u64, batch: usize) -> Result<Tensor<f32>> {
    let kind = input_kind(name)?;
    let g = graph(name)?;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n: usize = g.input_shape.iter().product::<usize>() * batch;
    let data: Vec<f32> = match kind {
        InputKind::Pixels => (0..n)
            .map(|_| crate::util::uniform01(&mut rng) as f32)
            .collect(),
        InputKind::Normal => (0..n).map(|_| normal(&mut rng) as f32).collect(),
    };
    let mut shape = vec![batch];
    shape.extend_from_slice(&g.input_shape);
    Tensor::new(shape, data)
}

/// The node ids of a graph's weighted layers (dense and conv), in order.
pub fn linear_nodes(graph: &Graph) -> Vec<NodeId> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Dense { .. } | Op::Conv2d { .. }))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zoo_net_infers_its_documented_shape() {
        let expect: [(&str, &[usize], usize, u64); 8] = [
            ("mlp-bc", &[30], 2, 30 * 16 + 16 * 2),
            ("mlp-mnist", &[1, 28, 28], 10, 784 * 128 + 128 * 128 + 1280),
            (
                "cnn-mnist",
                &[1, 28, 28],
                10,
                16 * 25 * 576 + 16 * 400 * 64 + 25600 + 1000,
            ),
            (
                "cnn-cifar10",
                &[3, 32, 32],
                10,
                16 * 75 * 784 + 16 * 400 * 100 + 40000 + 1000,
            ),
            (
                "lenet",
                &[1, 28, 28],
                10,
                32 * 25 * 784 + 64 * 800 * 196 + 3136 * 512 + 5120,
            ),
            (
                "fmnist-cnn",
                &[1, 28, 28],
                10,
                16 * 25 * 784 + 32 * 400 * 196 + 1568 * 100 + 1000,
            ),
            (
                "timit-dnn",
                &[1845],
                183,
                1845 * 2000 + 2 * 2000 * 2000 + 2000 * 183,
            ),
            ("resnet50", &[3, 224, 224], 1000, 0),
        ];
        for (name, input, classes, macs) in expect {
            let g = graph(name).expect(name);
            assert_eq!(g.input_shape, input, "{name}");
            assert_eq!(g.output_shape().expect(name), vec![classes], "{name}");
            if macs > 0 {
                assert_eq!(g.macs().expect(name), macs, "{name}");
            }
        }
        // ResNet-50: 53 convolutions (49 + 4 projections) and 25.5 M weights.
        let g = graph("resnet50").expect("resnet50");
        let convs = g
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Conv2d { .. }))
            .count();
        assert_eq!(convs, 53);
        let shapes = g.shapes().expect("shapes");
        let by_name = |s: &str| shapes[g.nodes.iter().position(|n| n.name == s).expect(s)].clone();
        assert_eq!(by_name("maxpool"), vec![64, 56, 56]);
        assert_eq!(by_name("layer2.0.relu3"), vec![512, 28, 28]);
        assert_eq!(by_name("layer4.2.relu3"), vec![2048, 7, 7]);
        let weights: usize = g
            .param_specs()
            .expect("specs")
            .iter()
            .filter(|s| s.kind == ParamKind::Weight)
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        assert_eq!(weights, 25_502_912);
        // ~4.1 GMACs per image.
        assert!((4.0e9..4.2e9).contains(&(g.macs().expect("macs") as f64)));
        assert!(graph("vgg16").is_err());
    }

    #[test]
    fn random_weights_are_seeded() {
        let a = build("cnn-mnist", 7).expect("a");
        assert_eq!(a, build("cnn-mnist", 7).expect("b"));
        assert_ne!(a, build("cnn-mnist", 8).expect("c"));
        let x = synthetic_inputs("cnn-mnist", 1, 3).expect("x");
        assert_eq!(x.shape(), &[3, 1, 28, 28]);
        assert!(x.data().iter().all(|&v| (0.0..1.0).contains(&v)));
    }

    #[test]
    fn random_nets_keep_activations_order_one() {
        for name in ["mlp-bc", "mlp-mnist", "cnn-mnist", "cnn-cifar10", "lenet"] {
            let m = build(name, 1).expect(name);
            let x = synthetic_inputs(name, 2, 8).expect(name);
            let y = float::forward(&m, &x).expect(name);
            let rms = (y.data().iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt();
            assert!((0.05..20.0).contains(&rms), "{name}: output rms {rms}");
        }
    }
}
