//! A deterministic plaintext trainer: mini-batch Adam on softmax cross-entropy,
//! with backpropagation over the layer graph.
//!
//! Forward passes reuse the f32 engine ([`crate::float`]); the backward pass of
//! each op is written here (dense and conv through the same im2col + SIMD matrix
//! products). Batch norms are *frozen* during training (their stored statistics
//! and affine parameters act as a fixed per-channel map): the networks we train
//! have none, and ResNet50 is only ever used with random weights.
//!
//! **Determinism.** Initialisation and the epoch shuffles come from ChaCha20
//! seeded with the recipe's seed; parallel work is split into chunks that depend
//! only on the shapes, and partial gradient sums are added in a fixed order. Two
//! runs with the same seed give bitwise identical weights on the same CPU (the
//! SIMD kernel that `matrixmultiply` picks at run time can differ across CPUs,
//! which may change the last bits and so the trained weights slightly).

use std::time::Instant;

use ndarray::{ArrayView2, ArrayViewMut2};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use rayon::prelude::*;

use crate::data::{self, Part, Split};
use crate::error::{NnError, Result};
use crate::float;
use crate::graph::{Op, ParamKind, param_key};
use crate::kernels::{Window, col2im, gemm_f32, im2col, window_for_each};
use crate::model::{Model, Params, Preprocess, TrainingInfo, WeightDtype};
use crate::tensor::Tensor;

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Adam learning rate of the first epoch.
    pub lr: f32,
    /// Learning rate multiplier applied after every epoch.
    pub lr_decay: f32,
    /// Decoupled weight decay (AdamW) on weights (not biases).
    pub weight_decay: f32,
    /// Seed of the epoch shuffles.
    pub seed: u64,
}

/// Progress events of a training run.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A mini-batch finished.
    Batch {
        /// Epoch (from 0).
        epoch: usize,
        /// Batch within the epoch (from 0).
        batch: usize,
        /// Batches per epoch.
        batches: usize,
        /// Mean loss of this batch.
        loss: f32,
    },
    /// An epoch finished.
    Epoch {
        /// Epoch (from 0).
        epoch: usize,
        /// Mean training loss over the epoch.
        loss: f32,
        /// Training accuracy over the epoch (on the fly, as the weights moved).
        train_accuracy: f64,
        /// Seconds since training started.
        seconds: f64,
    },
}

/// Adam optimiser state.
#[derive(Debug, Clone, Default)]
pub struct Adam {
    m: Params,
    v: Params,
    t: i32,
}

impl Adam {
    /// One update of every parameter that has a gradient.
    pub fn step(&mut self, model: &mut Model, grads: &Params, lr: f32, weight_decay: f32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-8;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        for (name, g) in &grads.0 {
            let Some(p) = model.params.0.get_mut(name) else {
                continue;
            };
            let m = self
                .m
                .0
                .entry(name.clone())
                .or_insert_with(|| Tensor::zeros(g.shape().to_vec()));
            let v = self
                .v
                .0
                .entry(name.clone())
                .or_insert_with(|| Tensor::zeros(g.shape().to_vec()));
            let decay = if name.ends_with(".weight") {
                weight_decay
            } else {
                0.0
            };
            for (((pv, &gv), mv), vv) in p
                .data_mut()
                .iter_mut()
                .zip(g.data())
                .zip(m.data_mut())
                .zip(v.data_mut())
            {
                *mv = B1 * *mv + (1.0 - B1) * gv;
                *vv = B2 * *vv + (1.0 - B2) * gv * gv;
                let update = (*mv / c1) / ((*vv / c2).sqrt() + EPS);
                *pv -= lr * (update + decay * *pv);
            }
        }
    }
}

/// Softmax cross-entropy: mean loss, number of correct argmaxes, and the
/// gradient with respect to the logits (already divided by the batch size).
pub fn softmax_cross_entropy(logits: &Tensor<f32>, labels: &[usize]) -> (f32, usize, Tensor<f32>) {
    let n = logits.batch();
    let k = logits.sample_len();
    let mut grad = vec![0f32; n * k];
    let mut loss = 0f64;
    let mut correct = 0;
    for (i, row) in logits.data().chunks(k).enumerate() {
        let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = row.iter().map(|&v| ((v - mx) as f64).exp()).collect();
        let z: f64 = exps.iter().sum();
        let y = labels[i];
        loss += -(exps[y] / z).ln();
        if crate::tensor::argmax_f32(row) == y {
            correct += 1;
        }
        for j in 0..k {
            let p = exps[j] / z;
            grad[i * k + j] = ((p - if j == y { 1.0 } else { 0.0 }) / n as f64) as f32;
        }
    }
    let g = Tensor::new(vec![n, k], grad).unwrap_or_else(|_| unreachable!("n k elements"));
    ((loss / n as f64) as f32, correct, g)
}

/// Gradients of a scalar loss with respect to every trainable parameter
/// (dense/conv weights and biases), given the forward values and the gradient
/// of the output.
pub fn backward(model: &Model, values: &[Tensor<f32>], dout: Tensor<f32>) -> Result<Params> {
    let nodes = &model.graph.nodes;
    let mut dv: Vec<Option<Tensor<f32>>> = vec![None; nodes.len()];
    dv[nodes.len() - 1] = Some(dout);
    let mut grads = Params::default();
    for id in (1..nodes.len()).rev() {
        let Some(dy) = dv[id].take() else { continue };
        let node = &nodes[id];
        let x = &values[node.inputs[0]];
        let need_dx = node.inputs[0] != 0;
        let n = x.batch();
        let mut dxs: Vec<(usize, Tensor<f32>)> = Vec::new();
        match node.op {
            Op::Input => {}
            Op::Dense { out_features } => {
                let d = x.sample_len();
                let w = model.param(id, ParamKind::Weight)?;
                let mut dw = vec![0f32; out_features * d];
                {
                    let dyv = view(&dy, n, out_features)?;
                    let xv = view(x, n, d)?;
                    gemm_f32(dyv.t(), xv, 0.0, view_mut(&mut dw, out_features, d)?);
                }
                let mut db = vec![0f32; out_features];
                for row in dy.data().chunks(out_features) {
                    db.iter_mut().zip(row).for_each(|(b, v)| *b += v);
                }
                grads.insert(
                    param_key(&node.name, ParamKind::Weight),
                    Tensor::new(vec![out_features, d], dw)?,
                );
                grads.insert(
                    param_key(&node.name, ParamKind::Bias),
                    Tensor::new(vec![out_features], db)?,
                );
                if need_dx {
                    let mut dx = vec![0f32; n * d];
                    gemm_f32(
                        view(&dy, n, out_features)?,
                        view(w, out_features, d)?,
                        0.0,
                        view_mut(&mut dx, n, d)?,
                    );
                    dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), dx)?));
                }
            }
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                let s = x.shape();
                let g = Window::new(s[1], s[2], s[3], kernel, stride, padding)
                    .ok_or_else(|| NnError::Training("conv window".into()))?;
                let w = model.param(id, ParamKind::Weight)?;
                let (dw, db, dx) = conv_backward(&g, x, &dy, w.data(), out_channels, need_dx)?;
                grads.insert(
                    param_key(&node.name, ParamKind::Weight),
                    Tensor::new(w.shape().to_vec(), dw)?,
                );
                grads.insert(
                    param_key(&node.name, ParamKind::Bias),
                    Tensor::new(vec![out_channels], db)?,
                );
                if let Some(dx) = dx {
                    dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), dx)?));
                }
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
                let s = x.shape();
                let g = Window::new(s[1], s[2], s[3], kernel, stride, padding)
                    .ok_or_else(|| NnError::Training("pool window".into()))?;
                let is_max = matches!(node.op, Op::MaxPool2d { .. });
                let y = &values[id];
                let inv = 1.0 / (kernel * kernel) as f32;
                let out_len = g.c * g.out_positions();
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(g.in_len())
                    .enumerate()
                    .for_each(|(i, dxs)| {
                        let xs = x.sample(i);
                        let ys = &y.data()[i * out_len..(i + 1) * out_len];
                        let gs = &dy.data()[i * out_len..(i + 1) * out_len];
                        if is_max {
                            // Route to the first maximal position of each window.
                            let mut done = vec![false; out_len];
                            window_for_each(&g, |o, p| {
                                if !done[o] && xs[p] == ys[o] {
                                    dxs[p] += gs[o];
                                    done[o] = true;
                                }
                            });
                        } else {
                            window_for_each(&g, |o, p| dxs[p] += gs[o] * inv);
                        }
                    });
                dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), dx)?));
            }
            Op::BatchNorm2d { eps } => {
                let (scale, _) = float::batch_norm_affine(model, id, eps)?;
                let s = x.shape();
                let hw = s[2] * s[3];
                let d = dy
                    .data()
                    .iter()
                    .enumerate()
                    .map(|(i, g)| g * scale[(i / hw) % s[1]])
                    .collect();
                dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), d)?));
            }
            Op::Flatten => dxs.push((node.inputs[0], dy.reshape(x.shape().to_vec())?)),
            Op::Add => {
                dxs.push((node.inputs[0], dy.clone()));
                dxs.push((node.inputs[1], dy));
            }
            Op::GlobalAvgPool => {
                let s = x.shape();
                let hw = s[2] * s[3];
                let d = (0..x.len())
                    .map(|i| dy.data()[i / hw] / hw as f32)
                    .collect();
                dxs.push((node.inputs[0], Tensor::new(x.shape().to_vec(), d)?));
            }
        }
        for (src, d) in dxs {
            if src == 0 {
                continue;
            }
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
    Ok(grads)
}

fn view(t: &Tensor<f32>, r: usize, c: usize) -> Result<ArrayView2<'_, f32>> {
    ArrayView2::from_shape((r, c), t.data()).map_err(|e| NnError::Training(e.to_string()))
}

fn view_mut(d: &mut [f32], r: usize, c: usize) -> Result<ArrayViewMut2<'_, f32>> {
    ArrayViewMut2::from_shape((r, c), d).map_err(|e| NnError::Training(e.to_string()))
}

/// Samples per parallel chunk in the conv backward pass (fixed, for determinism).
const CONV_CHUNK: usize = 8;

type ConvGrads = (Vec<f32>, Vec<f32>, Option<Vec<f32>>);

fn conv_backward(
    g: &Window,
    x: &Tensor<f32>,
    dy: &Tensor<f32>,
    w: &[f32],
    co: usize,
    need_dx: bool,
) -> Result<ConvGrads> {
    let (np, kk, il) = (g.out_positions(), g.patch_len(), g.in_len());
    let n = x.batch();
    let mut dx = vec![0f32; if need_dx { n * il } else { 0 }];
    let wv = ArrayView2::from_shape((co, kk), w).map_err(|e| NnError::Training(e.to_string()))?;
    let work = |xs: &[f32], dys: &[f32], mut dxs: Option<&mut [f32]>| -> (Vec<f32>, Vec<f32>) {
        let mut dw = ndarray::Array2::<f32>::zeros((co, kk));
        let mut db = vec![0f32; co];
        let mut cols = vec![0f32; kk * np];
        let mut dcols = ndarray::Array2::<f32>::zeros((kk, np));
        for (j, xi) in xs.chunks(il).enumerate() {
            im2col(g, xi, &mut cols);
            let dyi = &dys[j * co * np..(j + 1) * co * np];
            let (Ok(dyv), Ok(cv)) = (
                ArrayView2::from_shape((co, np), dyi),
                ArrayView2::from_shape((kk, np), &cols[..]),
            ) else {
                unreachable!("shapes follow from the window")
            };
            ndarray::linalg::general_mat_mul(1.0, &dyv, &cv.t(), 1.0, &mut dw);
            for (o, plane) in dyi.chunks(np).enumerate() {
                db[o] += plane.iter().sum::<f32>();
            }
            if let Some(dxs) = dxs.as_deref_mut() {
                ndarray::linalg::general_mat_mul(1.0, &wv.t(), &dyv, 0.0, &mut dcols);
                if let Some(dc) = dcols.as_slice() {
                    col2im(g, dc, &mut dxs[j * il..(j + 1) * il]);
                }
            }
        }
        (dw.into_raw_vec_and_offset().0, db)
    };
    let partials: Vec<(Vec<f32>, Vec<f32>)> = if need_dx {
        dx.par_chunks_mut(CONV_CHUNK * il)
            .zip(x.data().par_chunks(CONV_CHUNK * il))
            .zip(dy.data().par_chunks(CONV_CHUNK * co * np))
            .map(|((dxs, xs), dys)| work(xs, dys, Some(dxs)))
            .collect()
    } else {
        x.data()
            .par_chunks(CONV_CHUNK * il)
            .zip(dy.data().par_chunks(CONV_CHUNK * co * np))
            .map(|(xs, dys)| work(xs, dys, None))
            .collect()
    };
    let mut dw = vec![0f32; co * kk];
    let mut db = vec![0f32; co];
    for (pw, pb) in partials {
        dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
    }
    Ok((dw, db, need_dx.then_some(dx)))
}

/// Trains `model` in place on preprocessed `data`; calls `progress` after every
/// batch and epoch.
pub fn train(
    model: &mut Model,
    data: &Split,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<()> {
    if cfg.batch_size == 0 || cfg.epochs == 0 || data.is_empty() {
        return Err(NnError::Training(
            "need a positive batch size, epochs and some data".into(),
        ));
    }
    float::check_batch(&data.inputs, &model.graph.input_shape)?;
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let mut adam = Adam::default();
    let start = Instant::now();
    let n = data.len();
    let mut lr = cfg.lr;
    for epoch in 0..cfg.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        crate::util::shuffle(&mut rng, &mut order);
        let batches = n.div_ceil(cfg.batch_size);
        let (mut loss_sum, mut correct) = (0f64, 0usize);
        for (b, idx) in order.chunks(cfg.batch_size).enumerate() {
            let x = data.inputs.gather(idx);
            let labels: Vec<usize> = idx.iter().map(|&i| data.labels[i]).collect();
            let values = float::forward_all(model, &x)?;
            let logits = values
                .last()
                .ok_or_else(|| NnError::Training("empty graph".into()))?;
            let (loss, ok, dlogits) = softmax_cross_entropy(logits, &labels);
            if !loss.is_finite() {
                return Err(NnError::Training(format!(
                    "loss diverged at epoch {epoch}, batch {b}"
                )));
            }
            let grads = backward(model, &values, dlogits)?;
            adam.step(model, &grads, lr, cfg.weight_decay);
            loss_sum += loss as f64 * idx.len() as f64;
            correct += ok;
            progress(&Progress::Batch {
                epoch,
                batch: b,
                batches,
                loss,
            });
        }
        progress(&Progress::Epoch {
            epoch,
            loss: (loss_sum / n as f64) as f32,
            train_accuracy: correct as f64 / n as f64,
            seconds: start.elapsed().as_secs_f64(),
        });
        lr *= cfg.lr_decay;
    }
    Ok(())
}

/// How a recipe preprocesses its dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreprocessKind {
    /// Pixels divided by 255.
    Pixels,
    /// Per-feature standardisation with the training split's mean and std.
    Standardize,
}

/// A reproducible training recipe for a shipped model.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Model name (and default output directory under `data/models/`).
    pub name: &'static str,
    /// Zoo architecture ([`crate::zoo::graph`]).
    pub net: &'static str,
    /// Dataset registry name.
    pub dataset: &'static str,
    /// Preprocessing.
    pub preprocess: PreprocessKind,
    /// Use only this many training samples (a seeded random subset), for the
    /// deliberately weak models.
    pub train_limit: Option<usize>,
    /// Hyper-parameters.
    pub config: TrainConfig,
    /// Storage precision of the shipped weights.
    pub dtype: WeightDtype,
    /// One line for the model's description.
    pub about: &'static str,
}

const fn cfg(epochs: usize, batch_size: usize, lr: f32, lr_decay: f32, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size,
        lr,
        lr_decay,
        weight_decay: 0.0,
        seed,
    }
}

/// The recipes of the shipped models.
pub const RECIPES: [Recipe; 6] = [
    Recipe {
        name: "bc-mlp",
        net: "mlp-bc",
        dataset: "breast-cancer",
        preprocess: PreprocessKind::Standardize,
        train_limit: None,
        config: cfg(20, 16, 3e-3, 0.9, 2),
        dtype: WeightDtype::F32,
        about: "Breast Cancer Wisconsin diagnosis MLP 30 -> 16 ReLU -> 2 (label 0 malignant, 1 benign)",
    },
    Recipe {
        name: "bc-mlp-weak",
        net: "mlp-bc",
        dataset: "breast-cancer",
        preprocess: PreprocessKind::Standardize,
        train_limit: Some(6),
        config: cfg(20, 4, 3e-3, 1.0, 3),
        dtype: WeightDtype::F32,
        about: "deliberately weak bc-mlp: trained on 6 patients only (for low-quality-server tests)",
    },
    Recipe {
        name: "mnist-cnn",
        net: "cnn-mnist",
        dataset: "mnist",
        preprocess: PreprocessKind::Pixels,
        train_limit: None,
        config: cfg(6, 64, 2e-3, 0.6, 3),
        dtype: WeightDtype::F32,
        about: "Delphi/MiniONN MNIST CNN: 2 x [conv5x5x16, ReLU, avgpool2], FC 256 -> 100 ReLU -> 10",
    },
    Recipe {
        name: "mnist-cnn-weak",
        net: "cnn-mnist",
        dataset: "mnist",
        preprocess: PreprocessKind::Pixels,
        train_limit: Some(600),
        config: cfg(3, 32, 1e-3, 1.0, 4),
        dtype: WeightDtype::F32,
        about: "deliberately weak mnist-cnn: 600 training samples (1%), 3 epochs (for low-quality-server tests)",
    },
    Recipe {
        name: "lenet",
        net: "lenet",
        dataset: "mnist",
        preprocess: PreprocessKind::Pixels,
        train_limit: None,
        config: cfg(2, 64, 1e-3, 0.5, 5),
        dtype: WeightDtype::F16,
        about: "LeNet (OpenCheetah): conv5x5x32 pad 2, ReLU, maxpool2, conv5x5x64 pad 2, ReLU, maxpool2, FC 3136 -> 512 ReLU -> 10; weights stored as f16",
    },
    Recipe {
        name: "fmnist-cnn",
        net: "fmnist-cnn",
        dataset: "fashion-mnist",
        preprocess: PreprocessKind::Pixels,
        train_limit: None,
        config: cfg(10, 64, 2e-3, 0.75, 6),
        dtype: WeightDtype::F16,
        about: "Fashion-MNIST CNN: conv5x5x16 pad 2, ReLU, avgpool2, conv5x5x32 pad 2, ReLU, avgpool2, FC 1568 -> 100 ReLU -> 10; weights stored as f16",
    },
];

/// The recipe called `name`.
pub fn recipe(name: &str) -> Result<&'static Recipe> {
    RECIPES
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| NnError::UnknownName {
            kind: "recipe",
            name: name.into(),
            known: RECIPES
                .iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Per-feature mean and standard deviation (population) of a batch.
pub fn feature_stats(x: &Tensor<f32>) -> (Vec<f32>, Vec<f32>) {
    let d = x.sample_len();
    let n = x.batch() as f64;
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for row in x.data().chunks(d) {
        for (j, &v) in row.iter().enumerate() {
            mean[j] += v as f64;
            sq[j] += (v as f64) * (v as f64);
        }
    }
    let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt().max(1e-6)) as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

/// A trained model and what it took.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The model (parameters rounded to the recipe's storage precision).
    pub model: Model,
    /// Training wall-clock seconds.
    pub seconds: f64,
}

/// A description of this machine for training records: CPU model and threads.
pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpu}, {} rayon threads", rayon::current_num_threads())
}

/// Runs a recipe on the datasets under `data_dir`: builds the zoo architecture,
/// derives the preprocessing from the training split, initialises with the
/// recipe seed, trains, and rounds the weights to the storage precision.
/// `epochs` overrides the recipe's epoch count.
pub fn run_recipe(
    r: &Recipe,
    data_dir: &std::path::Path,
    epochs: Option<usize>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Trained> {
    let mut train_split = data::load(data_dir, r.dataset, Part::Train)?;
    if let Some(limit) = r.train_limit {
        let mut rng = ChaCha20Rng::seed_from_u64(r.config.seed ^ 0xdead_beef);
        let mut idx: Vec<usize> = (0..train_split.len()).collect();
        crate::util::shuffle(&mut rng, &mut idx);
        idx.truncate(limit);
        idx.sort_unstable();
        train_split = train_split.gather(&idx);
    }
    let preprocess = match r.preprocess {
        PreprocessKind::Pixels => Preprocess::Scale {
            factor: 1.0 / 255.0,
        },
        PreprocessKind::Standardize => {
            let (mean, std) = feature_stats(&train_split.inputs);
            Preprocess::Standardize { mean, std }
        }
    };
    let graph = crate::zoo::graph(r.net)?;
    let mut config = r.config.clone();
    if let Some(e) = epochs {
        config.epochs = e;
    }
    let meta = crate::model::ModelMeta {
        name: r.name.into(),
        description: r.about.into(),
        dataset: Some(r.dataset.into()),
        classes: graph.output_shape()?.first().copied().unwrap_or(0),
        preprocess: preprocess.clone(),
        training: None,
        evaluation: None,
    };
    let mut model = Model::init(meta, graph, config.seed)?;
    let x = preprocess.apply(&train_split.inputs)?;
    let data = Split {
        inputs: x,
        labels: train_split.labels.clone(),
    };
    let start = Instant::now();
    train(&mut model, &data, &config, progress)?;
    let seconds = start.elapsed().as_secs_f64();
    model.round_params(r.dtype);
    let mut command = format!("fusion train --recipe {}", r.name);
    if epochs.is_some() {
        command.push_str(&format!(" --epochs {}", config.epochs));
    }
    model.meta.training = Some(TrainingInfo {
        recipe: r.name.into(),
        command,
        seed: config.seed,
        epochs: config.epochs,
        train_samples: data.len(),
        seconds,
        machine: machine_description(),
    });
    Ok(Trained { model, seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::model::ModelMeta;

    /// A small graph with every trainable-path op: conv (stride, padding), relu,
    /// square, both pools, frozen batch norm, add, global pool, flatten, dense.
    fn all_ops() -> Model {
        let mut g = GraphBuilder::new(vec![2, 7, 7]);
        let x = g.input();
        let a = g.conv2d("c1", x, 3, 3, 2, 1);
        let a = g.batch_norm("bn", a);
        let a = g.relu("r1", a);
        let b = g.conv2d("c2", a, 3, 3, 1, 1);
        let b = g.square("sq", b);
        let s = g.add("add", a, b);
        let p = g.max_pool("mp", s, 2, 1, 0);
        let q = g.avg_pool("ap", p, 2, 1, 1);
        let gp = g.global_avg_pool("gap", q);
        let f = g.flatten("fl", q);
        let h = g.dense("fc1", f, 5);
        let h2 = g.dense("fcg", gp, 5);
        let h = g.add("add2", h, h2);
        g.dense("fc2", h, 3);
        let mut m =
            Model::init(ModelMeta::for_tests(3), g.finish().expect("graph"), 11).expect("init");
        // Non-trivial frozen batch norm.
        m.params.insert(
            "bn.gamma",
            Tensor::new(vec![3], vec![1.5, 0.7, 1.0]).expect("t"),
        );
        m.params.insert(
            "bn.running_var",
            Tensor::new(vec![3], vec![2.0, 0.5, 1.0]).expect("t"),
        );
        m
    }

    fn loss_of(m: &Model, x: &Tensor<f32>, labels: &[usize]) -> f64 {
        let y = float::forward(m, x).expect("fwd");
        softmax_cross_entropy(&y, labels).0 as f64
    }

    #[test]
    fn gradients_match_finite_differences() {
        let m = all_ops();
        let x = Tensor::new(
            vec![3, 2, 7, 7],
            (0..294)
                .map(|i| (((i * 7919) % 101) as f32 / 50.0) - 1.0)
                .collect(),
        )
        .expect("x");
        let labels = [0, 2, 1];
        let values = float::forward_all(&m, &x).expect("fwd");
        let (_, _, d) = softmax_cross_entropy(values.last().expect("out"), &labels);
        let grads = backward(&m, &values, d).expect("bwd");
        assert_eq!(
            grads.0.len(),
            10,
            "weights and biases of c1, c2, fc1, fcg, fc2"
        );
        // Small steps: with 1e-2 some perturbations cross a ReLU / max-pool kink.
        let eps = 1e-3f32;
        let mut checked = 0;
        for (name, g) in &grads.0 {
            for idx in [0, g.len() / 2, g.len() - 1] {
                let mut plus = m.clone();
                plus.params.0.get_mut(name).expect("p").data_mut()[idx] += eps;
                let mut minus = m.clone();
                minus.params.0.get_mut(name).expect("p").data_mut()[idx] -= eps;
                let numeric = (loss_of(&plus, &x, &labels) - loss_of(&minus, &x, &labels))
                    / (2.0 * eps as f64);
                let analytic = g.data()[idx] as f64;
                assert!(
                    (numeric - analytic).abs() <= 1e-3 + 0.02 * analytic.abs(),
                    "{name}[{idx}]: numeric {numeric} analytic {analytic}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 30);
    }

    #[test]
    fn training_is_deterministic_and_learns_a_separable_problem() {
        let mut g = GraphBuilder::new(vec![4]);
        let x = g.input();
        let h = g.dense("fc1", x, 8);
        let h = g.relu("r", h);
        g.dense("fc2", h, 2);
        let graph = g.finish().expect("graph");
        let n = 200;
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let xs: Vec<f32> = (0..n * 4)
            .map(|_| crate::util::normal(&mut rng) as f32)
            .collect();
        let labels: Vec<usize> = xs
            .chunks(4)
            .map(|r| usize::from(r[0] + 0.5 * r[1] - r[3] > 0.0))
            .collect();
        let data = Split {
            inputs: Tensor::new(vec![n, 4], xs).expect("x"),
            labels,
        };
        let config = cfg(30, 16, 1e-2, 0.95, 5);
        let run = || {
            let mut m = Model::init(ModelMeta::for_tests(2), graph.clone(), 1).expect("init");
            let mut last_acc = 0.0;
            train(&mut m, &data, &config, &mut |p| {
                if let Progress::Epoch { train_accuracy, .. } = p {
                    last_acc = *train_accuracy;
                }
            })
            .expect("train");
            (m, last_acc)
        };
        let (a, acc) = run();
        let (b, _) = run();
        assert_eq!(a, b, "same seed, same weights");
        assert!(acc > 0.95, "train accuracy {acc}");
    }

    #[test]
    fn recipes_name_zoo_nets_and_datasets() {
        for r in &RECIPES {
            let g = crate::zoo::graph(r.net).expect(r.net);
            let info = data::info(r.dataset).expect(r.dataset);
            assert_eq!(g.input_shape, info.sample_shape, "{}", r.name);
            assert_eq!(g.output_shape().expect("out"), vec![info.classes]);
        }
        assert!(recipe("bc-mlp").is_ok() && recipe("nope").is_err());
    }
}
