//! A1: Jacobian-based dataset augmentation (Papernot, McDaniel, Goodfellow,
//! Jha, Celik and Swami, "Practical Black-Box Attacks against Machine
//! Learning", AsiaCCS 2017, section 4 and Algorithm 1).
//!
//! The attacker holds a small seed set `S_0` (here: the first `K` test
//! samples) and a query budget. Each substitute training round `rho`:
//!
//! 1. label `S_rho` with the oracle (only the points not labelled yet);
//! 2. train the substitute `F` on `S_rho` (warm start, Adam): on the
//!    **probability vectors** `softmax(logits)` the service returns with a
//!    soft-label cross-entropy (as later implementations of JbDA do), or on
//!    one-hot labels when the service returns labels only;
//! 3. augment: `S_{rho+1} = S_rho ∪ { clip(x + lambda_rho sign(∂F[O(x)]/∂x)) }`
//!    where `O(x)` is the oracle's label and `F[y]` the substitute's
//!    probability of class `y`; `lambda_rho = lambda (-1)^floor(rho / tau)`
//!    (the paper's periodic step size, section 6).
//!
//! Rounds continue until the budget is spent (the last augmentation is cut to
//! fit); a final training round uses every labelled point. Inputs live in the
//! model's preprocessed input space (the public preprocessing is the client's),
//! clipped to the range the seeds span.

use fusion_nn::graph::GraphBuilder;
use fusion_nn::model::{ModelMeta, Preprocess};
use fusion_nn::tensor::Tensor;
use fusion_nn::train::{Adam, backward};
use fusion_nn::{Model, float, input_grad};
use rand::{CryptoRng, Rng};

use crate::error::{AttackError, Result};
use crate::oracle::{Oracle, OracleAnswer};

/// Parameters of A1.
#[derive(Debug, Clone, PartialEq)]
pub struct JbdaConfig {
    /// Attacker queries allowed in total.
    pub budget: u64,
    /// Hidden widths of the fully connected ReLU substitute.
    pub hidden: Vec<usize>,
    /// Augmentation step `lambda` (preprocessed input units).
    pub lambda: f32,
    /// Rounds between sign changes of the step (`tau`).
    pub tau: usize,
    /// Training epochs per round.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f32,
}

impl JbdaConfig {
    /// The paper's MNIST settings where they apply: `lambda = 0.1`, `tau = 3`;
    /// a 200-200 ReLU substitute, 10 epochs per round, batch 32, Adam `1e-3`.
    pub fn new(budget: u64) -> Self {
        JbdaConfig {
            budget,
            hidden: vec![200, 200],
            lambda: 0.1,
            tau: 3,
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
        }
    }
}

/// What A1 produced.
#[derive(Debug, Clone)]
pub struct Substitute {
    /// The trained substitute (preprocessed inputs, identity preprocessing).
    pub model: Model,
    /// Attacker queries used.
    pub queries_used: u64,
    /// Augmentation rounds run.
    pub rounds: usize,
    /// Labelled points the substitute was trained on.
    pub training_points: usize,
}

/// Runs A1 from `seeds` (preprocessed rows, `[K, ...input_shape]`).
pub fn run<R: Rng + CryptoRng + ?Sized>(
    oracle: &mut dyn Oracle,
    seeds: &Tensor<f32>,
    cfg: &JbdaConfig,
    rng: &mut R,
) -> Result<Substitute> {
    if cfg.budget == 0 {
        return Err(AttackError::BadParameter(
            "the query budget must be positive".into(),
        ));
    }
    if seeds.batch() == 0 {
        return Err(AttackError::BadParameter("the seed set is empty".into()));
    }
    if cfg.epochs == 0 || cfg.batch_size == 0 || cfg.lr.is_nan() || cfg.lr <= 0.0 || cfg.tau == 0 {
        return Err(AttackError::BadParameter(
            "epochs, batch size, learning rate and tau must be positive".into(),
        ));
    }
    let dim = seeds.sample_len();
    if dim != oracle.input_len() {
        return Err(AttackError::BadParameter(format!(
            "seeds have {dim} features, the oracle takes {}",
            oracle.input_len()
        )));
    }
    let classes = oracle.classes();
    let (lo, hi) = seeds
        .data()
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let mut model = substitute(
        seeds.sample_shape().to_vec(),
        classes,
        &cfg.hidden,
        rng.next_u64(),
    )?;
    let mut adam = Adam::default();
    // Labelled set: rows and target distributions.
    let mut xs: Vec<Vec<f32>> = Vec::new();
    let mut targets: Vec<Vec<f32>> = Vec::new();
    let mut labels: Vec<usize> = Vec::new();
    let k = (seeds.batch() as u64).min(cfg.budget) as usize;
    let mut pending: Vec<Vec<f32>> = (0..k).map(|i| seeds.sample(i).to_vec()).collect();
    let mut rounds = 0;
    loop {
        // 1. label the pending points
        let rows: Vec<Vec<f64>> = pending
            .iter()
            .map(|r| r.iter().map(|&v| v as f64).collect())
            .collect();
        let answer = oracle.query(&rows)?;
        labels.extend(answer.labels());
        match answer {
            OracleAnswer::Logits(l) => targets.extend(l.iter().map(|r| softmax(r))),
            // The service's (perturbed) probabilities are the targets as they are.
            OracleAnswer::Probabilities(p) => targets.extend(
                p.iter()
                    .map(|r| r.iter().map(|&v| v as f32).collect::<Vec<f32>>()),
            ),
            OracleAnswer::Labels(l) => targets.extend(l.iter().map(|&y| {
                let mut t = vec![0f32; classes];
                if y < classes {
                    t[y] = 1.0;
                }
                t
            })),
        }
        xs.append(&mut pending);
        // 2. train
        train_soft(&mut model, &mut adam, &xs, &targets, cfg, rng)?;
        let left = cfg.budget.saturating_sub(oracle.queries_used()) as usize;
        if left == 0 {
            break;
        }
        // 3. augment (cut to the budget)
        let sign = if (rounds / cfg.tau).is_multiple_of(2) {
            1.0
        } else {
            -1.0
        };
        let step = cfg.lambda * sign;
        let take = xs.len().min(left);
        pending = augment(&model, &xs[..take], &labels[..take], step, lo, hi)?;
        rounds += 1;
    }
    Ok(Substitute {
        model,
        queries_used: oracle.queries_used(),
        rounds,
        training_points: xs.len(),
    })
}

/// A fresh fully connected ReLU substitute.
fn substitute(
    input_shape: Vec<usize>,
    classes: usize,
    hidden: &[usize],
    seed: u64,
) -> Result<Model> {
    let mut g = GraphBuilder::new(input_shape.clone());
    let mut x = g.input();
    if input_shape.len() > 1 {
        x = g.flatten("flatten", x);
    }
    for (i, &h) in hidden.iter().enumerate() {
        x = g.dense(&format!("fc{}", i + 1), x, h);
        x = g.relu(&format!("act{}", i + 1), x);
    }
    g.dense(&format!("fc{}", hidden.len() + 1), x, classes);
    let graph = g.finish().map_err(AttackError::Model)?;
    let meta = ModelMeta {
        name: "jbda-substitute".into(),
        description: "A1 substitute model (fully connected ReLU)".into(),
        dataset: None,
        classes,
        preprocess: Preprocess::Identity,
        training: None,
        evaluation: None,
    };
    Model::init(meta, graph, seed).map_err(AttackError::Model)
}

fn softmax(row: &[f64]) -> Vec<f32> {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| (v / z) as f32).collect()
}

fn batch(rows: &[&Vec<f32>], shape: &[usize]) -> Result<Tensor<f32>> {
    let mut s = vec![rows.len()];
    s.extend_from_slice(shape);
    Tensor::new(s, rows.iter().flat_map(|r| r.iter().copied()).collect())
        .map_err(AttackError::Model)
}

/// Soft-label cross-entropy training: loss `-sum_j p_j log q_j`, gradient `(q - p) / n`.
fn train_soft<R: Rng + ?Sized>(
    model: &mut Model,
    adam: &mut Adam,
    xs: &[Vec<f32>],
    targets: &[Vec<f32>],
    cfg: &JbdaConfig,
    rng: &mut R,
) -> Result<()> {
    let shape = model.graph.input_shape.clone();
    let mut order: Vec<usize> = (0..xs.len()).collect();
    for _ in 0..cfg.epochs {
        fusion_nn::util::shuffle(rng, &mut order);
        for idx in order.chunks(cfg.batch_size) {
            let rows: Vec<&Vec<f32>> = idx.iter().map(|&i| &xs[i]).collect();
            let x = batch(&rows, &shape)?;
            let values = float::forward_all(model, &x).map_err(AttackError::Model)?;
            let logits = values
                .last()
                .ok_or_else(|| AttackError::Oracle("empty substitute".into()))?;
            let k = logits.sample_len();
            let n = idx.len() as f32;
            let mut grad = Vec::with_capacity(idx.len() * k);
            for (row, &i) in logits.data().chunks(k).zip(idx) {
                let q = softmax(&row.iter().map(|&v| v as f64).collect::<Vec<_>>());
                grad.extend(q.iter().zip(&targets[i]).map(|(q, p)| (q - p) / n));
            }
            let dout = Tensor::new(logits.shape().to_vec(), grad).map_err(AttackError::Model)?;
            let grads = backward(model, &values, dout).map_err(AttackError::Model)?;
            adam.step(model, &grads, cfg.lr, 0.0);
        }
    }
    Ok(())
}

/// `clip(x + step sign(∂ softmax(F(x))[y] / ∂x))` for every row.
fn augment(
    model: &Model,
    xs: &[Vec<f32>],
    labels: &[usize],
    step: f32,
    lo: f32,
    hi: f32,
) -> Result<Vec<Vec<f32>>> {
    let shape = model.graph.input_shape.clone();
    let mut out = Vec::with_capacity(xs.len());
    for (chunk, ys) in xs.chunks(256).zip(labels.chunks(256)) {
        let rows: Vec<&Vec<f32>> = chunk.iter().collect();
        let x = batch(&rows, &shape)?;
        let values = float::forward_all(model, &x).map_err(AttackError::Model)?;
        let logits = values
            .last()
            .ok_or_else(|| AttackError::Oracle("empty substitute".into()))?;
        let k = logits.sample_len();
        let mut dout = Vec::with_capacity(chunk.len() * k);
        for (row, &y) in logits.data().chunks(k).zip(ys) {
            let p = softmax(&row.iter().map(|&v| v as f64).collect::<Vec<_>>());
            let py = p.get(y).copied().unwrap_or(0.0);
            // d p_y / d z_j = p_y (1{j = y} - p_j)
            dout.extend((0..k).map(|j| py * (f32::from(u8::from(j == y)) - p[j])));
        }
        let dout = Tensor::new(logits.shape().to_vec(), dout).map_err(AttackError::Model)?;
        let g = input_grad::input_gradient(model, &values, dout).map_err(AttackError::Model)?;
        let d = g.sample_len();
        for (x, gr) in chunk.iter().zip(g.data().chunks(d)) {
            out.push(
                x.iter()
                    .zip(gr)
                    .map(|(&v, &s)| {
                        let dir = if s > 0.0 {
                            1.0
                        } else if s < 0.0 {
                            -1.0
                        } else {
                            0.0
                        };
                        (v + step * dir).clamp(lo, hi)
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// Substitute accuracy on preprocessed rows.
pub fn accuracy(model: &Model, x: &Tensor<f32>, labels: &[usize]) -> Result<f64> {
    let mut ok = 0usize;
    let n = x.batch();
    let mut start = 0;
    while start < n {
        let end = (start + 512).min(n);
        let y = float::forward(model, &x.slice_batch(start..end)).map_err(AttackError::Model)?;
        ok += y
            .argmax_rows()
            .iter()
            .zip(&labels[start..end])
            .filter(|(a, b)| a == b)
            .count();
        start = end;
    }
    Ok(if n == 0 { 0.0 } else { ok as f64 / n as f64 })
}
