//! A2: cryptanalytic extraction of a one-hidden-layer ReLU network from its
//! logits (Carlini, Jagielski and Mironov, "Cryptanalytic Extraction of Neural
//! Network Models", CRYPTO 2020).
//!
//! The network is `f(x) = V relu(W x + b) + c`; its architecture (input width,
//! hidden width, classes) is public, as in Fusion. The attack reads a scalar
//! projection `g(x) = u · f(x)` (random `u`), which is piecewise linear in `x`
//! with a kink wherever a hidden neuron changes sign.
//!
//! 1. **Critical points** (paper section 4.2, "finding critical points"): along
//!    random lines `x0 + t d`, `t in [-R, R]`, compare the slopes at both ends of
//!    an interval; if they differ, intersect the two linear pieces and accept
//!    the intersection `t*` if `g(t*)` lies on both (one kink), otherwise bisect.
//! 2. **Weight rows up to scale** (section 4.3, "recovering weights"): at a
//!    critical point `x*` of neuron `i`, the gradients of `g` (finite
//!    differences along every axis) just on either side of the hyperplane
//!    differ by `±(u·V_i) W_i`: the row up to a scalar. The bias follows from
//!    `W_i x* + b_i = 0`. Critical points are clustered by direction; one
//!    cluster per neuron.
//! 3. **Signs** (the one-hidden-layer case of section 4.4, solved here by a least-squares fit
//!    rather than the paper's search): with rows of unknown sign `s_i`, use
//!    `relu(-z) = relu(z) - z` and fit `f(x) = A relu(Ŵ x + b̂) + B x + c`
//!    on random queries. The true network has no linear term, so
//!    `B = -Σ_{s_i=-1} A_i Ŵ_i`; solving `B` in the basis of the rows tells
//!    which neurons are flipped. After flipping, a final fit gives `V` and `c`.
//!
//! Networks with more than one hidden layer, convolutions or pooling are
//! refused ([`AttackError::Unsupported`]); so is an oracle that returns labels
//! only (the attack needs scores).

use rand::{CryptoRng, Rng};

use fusion_nn::util::normal;

use crate::dense::{DenseLayer, DenseNet, argmax};
use crate::error::{AttackError, Result};
use crate::linalg::least_squares;
use crate::oracle::{Oracle, OracleAnswer};

/// Parameters of A2.
#[derive(Debug, Clone, PartialEq)]
pub struct CarliniConfig {
    /// Attacker queries allowed in total (search and fits).
    pub budget: u64,
    /// Half-length `R` of the random search lines, and the standard deviation
    /// of their centres and of the fit points.
    pub radius: f64,
    /// Step of the central differences for gradients at critical points
    /// (`None`: `1e-6 R` against an exact oracle, `0.05` against a quantised
    /// one, i.e. 204 input steps at `f = 12`).
    pub step: Option<f64>,
    /// Step for slopes along the search lines (`None`: `1e-7 R` exact, `0.05`
    /// quantised).
    pub slope_step: Option<f64>,
    /// Cosine above which two critical points of a quantised oracle belong to
    /// the same neuron (an exact oracle uses `1 - 1e-6`).
    pub cluster_cos: f64,
    /// Critical points per neuron before the search stops (the rows are
    /// averaged over them; more points reduce a quantised oracle's noise).
    /// `None`: 2 against an exact oracle, 4 against a quantised one.
    pub points_per_neuron: Option<usize>,
    /// Largest bisection depth per line.
    pub max_depth: usize,
}

impl CarliniConfig {
    /// Defaults for a budget: `R = 4` (standardised inputs), depth 30.
    pub fn new(budget: u64) -> Self {
        CarliniConfig {
            budget,
            radius: 4.0,
            step: None,
            slope_step: None,
            cluster_cos: 0.99,
            points_per_neuron: None,
            max_depth: 30,
        }
    }
}

/// What A2 recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// The recovered network (hidden rows unit-normalised, signs fixed).
    pub network: DenseNet,
    /// Distinct hidden neurons found (of the public hidden width).
    pub neurons_found: usize,
    /// Critical points found (several per neuron).
    pub critical_points: usize,
    /// Attacker queries used.
    pub queries_used: u64,
}

/// Per-layer relative weight errors of a recovered network against the truth,
/// after matching hidden neurons (permutation and a positive per-neuron scale):
/// `max|w_hat - w| / max|w|` for each layer.
#[allow(clippy::needless_range_loop)] // index-parallel matrices
pub fn weight_errors(recovered: &DenseNet, truth: &DenseNet) -> Result<Vec<f64>> {
    if truth.layers.len() != 2 || recovered.layers.len() != 2 {
        return Err(AttackError::Unsupported(
            "weight errors are computed for one hidden layer".into(),
        ));
    }
    let (t1, t2) = (&truth.layers[0], &truth.layers[1]);
    let (r1, r2) = (&recovered.layers[0], &recovered.layers[1]);
    let h = t1.outputs();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let norm = |a: &[f64]| dot(a, a).sqrt();
    // Greedy matching by |cos| over all pairs, best first.
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for j in 0..h {
        for i in 0..r1.outputs() {
            let c = dot(&t1.weight[j], &r1.weight[i])
                / (norm(&t1.weight[j]) * norm(&r1.weight[i])).max(1e-300);
            pairs.push((c, j, i));
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut of_true: Vec<Option<usize>> = vec![None; h];
    let mut used = vec![false; r1.outputs()];
    for (_, j, i) in pairs {
        if of_true[j].is_none() && !used[i] {
            of_true[j] = Some(i);
            used[i] = true;
        }
    }
    let max1 = t1.weight.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let max2 = t2.weight.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let (mut e1, mut e2) = (0f64, 0f64);
    for j in 0..h {
        let (row, mu) = match of_true[j] {
            Some(i) => {
                let r = &r1.weight[i];
                let mu = (dot(r, &t1.weight[j]) / dot(r, r).max(1e-300)).max(0.0);
                (Some(i), mu)
            }
            None => (None, 0.0),
        };
        for d in 0..t1.inputs() {
            let w_hat = row.map_or(0.0, |i| mu * r1.weight[i][d]);
            e1 = e1.max((w_hat - t1.weight[j][d]).abs());
        }
        for k in 0..t2.outputs() {
            let v_hat = match row {
                Some(i) if mu > 0.0 => r2.weight[k][i] / mu,
                _ => 0.0,
            };
            e2 = e2.max((v_hat - t2.weight[k][j]).abs());
        }
    }
    Ok(vec![e1 / max1.max(1e-300), e2 / max2.max(1e-300)])
}

/// Queries a scalar projection, counting the budget.
struct Probe<'a> {
    oracle: &'a mut dyn Oracle,
    budget: u64,
    u: Vec<f64>,
}

/// The budget ran out (internal).
struct OutOfBudget;

impl Probe<'_> {
    fn left(&self) -> u64 {
        self.budget.saturating_sub(self.oracle.queries_used())
    }

    fn logits(
        &mut self,
        xs: &[Vec<f64>],
    ) -> Result<std::result::Result<Vec<Vec<f64>>, OutOfBudget>> {
        if (xs.len() as u64) > self.left() {
            return Ok(Err(OutOfBudget));
        }
        match self.oracle.query(xs)? {
            // Perturbed probabilities (reverse sigmoid) are the only scores
            // such a service gives: the attack runs on them as they are.
            OracleAnswer::Logits(l) | OracleAnswer::Probabilities(l) => Ok(Ok(l)),
            OracleAnswer::Labels(_) => Err(AttackError::Unsupported(
                "A2 needs scores; the oracle returns labels only".into(),
            )),
        }
    }

    fn g(&mut self, xs: &[Vec<f64>]) -> Result<std::result::Result<Vec<f64>, OutOfBudget>> {
        Ok(self.logits(xs)?.map(|l| {
            l.iter()
                .map(|r| r.iter().zip(&self.u).map(|(a, b)| a * b).sum())
                .collect()
        }))
    }
}

fn dim_of(v: &[f64]) -> usize {
    v.len()
}

fn along(x0: &[f64], d: &[f64], t: f64) -> Vec<f64> {
    x0.iter().zip(d).map(|(a, b)| a + t * b).collect()
}

/// A found critical point: the point and the recovered (unit, canonical-sign) row and bias.
#[derive(Debug, Clone)]
struct Critical {
    row: Vec<f64>,
    bias: f64,
}

macro_rules! tryb {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(OutOfBudget) => return Ok(Err(OutOfBudget)),
        }
    };
}

/// Runs A2 against `oracle` for a network with the given public `hidden`
/// width (one hidden layer).
pub fn extract<R: Rng + CryptoRng + ?Sized>(
    oracle: &mut dyn Oracle,
    hidden: usize,
    cfg: &CarliniConfig,
    rng: &mut R,
) -> Result<Extraction> {
    if cfg.budget == 0 {
        return Err(AttackError::BadParameter(
            "the query budget must be positive".into(),
        ));
    }
    if !oracle.returns_scores() {
        return Err(AttackError::Unsupported(
            "A2 needs scores; the service returns labels only".into(),
        ));
    }
    if hidden == 0 || cfg.radius.is_nan() || cfg.radius <= 0.0 || cfg.max_depth == 0 {
        return Err(AttackError::BadParameter(
            "hidden width, radius and depth must be positive".into(),
        ));
    }
    let dim = oracle.input_len();
    let classes = oracle.classes();
    let fit_points = 3 * (hidden + dim + 1) as u64;
    if cfg.budget <= fit_points {
        return Err(AttackError::BadParameter(format!(
            "a budget of {} leaves nothing for the critical-point search: the final fits alone take {fit_points} queries (3 (hidden + inputs + 1))",
            cfg.budget
        )));
    }
    let res = oracle.input_resolution();
    let step = cfg
        .step
        .unwrap_or(if res > 0.0 { 0.05 } else { 1e-6 * cfg.radius });
    // Tolerances relative to the output scale: exact oracle or quantised.
    let exact = res == 0.0;
    let mut u: Vec<f64> = (0..classes).map(|_| normal(rng)).collect();
    let un = u.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
    u.iter_mut().for_each(|v| *v /= un);
    let mut probe = Probe {
        oracle,
        budget: cfg.budget - fit_points,
        u,
    };
    let mut found: Vec<Critical> = Vec::new();
    let mut clusters: Vec<(Vec<f64>, f64, usize)> = Vec::new(); // (row sum, bias sum, count)
    let ppn = cfg
        .points_per_neuron
        .unwrap_or(if exact { 2 } else { 4 })
        .max(1);
    let cos_min = if exact { 1.0 - 1e-6 } else { cfg.cluster_cos };
    let cos_distinct = if exact {
        1.0 - 1e-3
    } else {
        cfg.cluster_cos.min(0.9)
    };
    loop {
        if clusters.len() >= hidden && clusters.iter().filter(|c| c.2 >= ppn).count() >= hidden {
            break;
        }
        // A fresh projection per line: a neuron whose output weights nearly
        // cancel under one projection shows its kinks under the next.
        let mut u: Vec<f64> = (0..classes).map(|_| normal(rng)).collect();
        let un = u.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        u.iter_mut().for_each(|v| *v /= un);
        probe.u = u;
        let x0: Vec<f64> = (0..dim).map(|_| normal(rng) * cfg.radius / 4.0).collect();
        let mut d: Vec<f64> = (0..dim).map(|_| normal(rng)).collect();
        let dn = d.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        d.iter_mut().for_each(|v| *v /= dn);
        match search_line(&mut probe, &x0, &d, cfg, step, exact)? {
            Ok(points) => {
                for c in points {
                    let dot =
                        |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
                    let hit = clusters.iter_mut().find(|(s, _, _)| {
                        let sn = dot(s, s).sqrt();
                        dot(s, &c.row) / sn.max(1e-300) >= cos_min
                    });
                    match hit {
                        Some(cl) => {
                            cl.0.iter_mut().zip(&c.row).for_each(|(a, b)| *a += b);
                            cl.1 += c.bias;
                            cl.2 += 1;
                        }
                        None => clusters.push((c.row.clone(), c.bias, 1)),
                    }
                    found.push(c);
                }
            }
            Err(OutOfBudget) => break,
        }
    }
    // The neurons: the largest clusters, skipping any close to one already
    // chosen (noise can split a neuron's critical points over clusters).
    clusters.sort_by_key(|c| std::cmp::Reverse(c.2));
    let unit = |s: &[f64]| {
        let n = s.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        s.iter().map(|v| v / n).collect::<Vec<f64>>()
    };
    let mut chosen: Vec<(Vec<f64>, f64, usize)> = Vec::new();
    for c in clusters {
        let cu = unit(&c.0);
        let close = chosen.iter().any(|d| {
            let du = unit(&d.0);
            cu.iter().zip(&du).map(|(a, b)| a * b).sum::<f64>().abs() > cos_distinct
        });
        if !close && chosen.len() < hidden {
            chosen.push(c);
        }
    }
    let clusters = chosen;
    let neurons_found = clusters.len();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut biases: Vec<f64> = Vec::new();
    for (s, b, n) in &clusters {
        let norm = s.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        rows.push(s.iter().map(|v| v / norm).collect());
        // rows are averages of unit vectors: rescale the mean bias the same way.
        let _ = n;
        biases.push(b / norm);
    }
    // Signs and output layer from fits on random points.
    probe.budget = cfg.budget;
    let pts: Vec<Vec<f64>> = (0..fit_points)
        .map(|_| (0..dim).map(|_| normal(rng) * cfg.radius / 2.0).collect())
        .collect();
    let logits = match probe.logits(&pts)? {
        Ok(l) => l,
        Err(OutOfBudget) => {
            return Err(AttackError::BadParameter(
                "budget exhausted before the final fit".into(),
            ));
        }
    };
    let network = fit_output(&rows, &biases, &pts, &logits, classes)?;
    Ok(Extraction {
        network,
        neurons_found,
        critical_points: found.len(),
        queries_used: probe.oracle.queries_used(),
    })
}

/// Sign recovery and the output layer (step 3 of the module doc).
fn fit_output(
    rows: &[Vec<f64>],
    biases: &[f64],
    pts: &[Vec<f64>],
    logits: &[Vec<f64>],
    classes: usize,
) -> Result<DenseNet> {
    let h = rows.len();
    let dim = pts.first().map_or(0, Vec::len);
    let relu_feats = |rows: &[Vec<f64>], biases: &[f64], x: &[f64]| -> Vec<f64> {
        rows.iter()
            .zip(biases)
            .map(|(w, b)| (w.iter().zip(x).map(|(p, q)| p * q).sum::<f64>() + b).max(0.0))
            .collect()
    };
    let ys: Vec<Vec<f64>> = (0..classes)
        .map(|k| logits.iter().map(|l| l[k]).collect())
        .collect();
    let mut a = Vec::with_capacity(pts.len());
    for x in pts {
        let mut f = relu_feats(rows, biases, x);
        f.extend_from_slice(x);
        f.push(1.0);
        a.push(f);
    }
    let coef = least_squares(&a, &ys, 1e-9)?;
    // B_k = -sum_{i flipped} A_ki W_i: solve B_k = W^T beta_k.
    let wt: Vec<Vec<f64>> = (0..dim)
        .map(|j| rows.iter().map(|r| r[j]).collect())
        .collect();
    let bs: Vec<Vec<f64>> = coef.iter().map(|c| c[h..h + dim].to_vec()).collect();
    let mut signs = vec![1.0; h];
    if h > 0 && dim >= h {
        let beta = least_squares(&wt, &bs, 1e-12)?;
        for i in 0..h {
            let (mut num, mut den) = (0f64, 0f64);
            for k in 0..classes {
                let aki = coef[k][i];
                num += beta[k][i] * -aki;
                den += aki * aki;
            }
            if den > 0.0 && num / den > 0.5 {
                signs[i] = -1.0;
            }
        }
    }
    let rows: Vec<Vec<f64>> = rows
        .iter()
        .zip(&signs)
        .map(|(r, s)| r.iter().map(|v| v * s).collect())
        .collect();
    let biases: Vec<f64> = biases.iter().zip(&signs).map(|(b, s)| b * s).collect();
    let a2: Vec<Vec<f64>> = pts
        .iter()
        .map(|x| {
            let mut f = relu_feats(&rows, &biases, x);
            f.push(1.0);
            f
        })
        .collect();
    let out = least_squares(&a2, &ys, 1e-9)?;
    Ok(DenseNet {
        layers: vec![
            DenseLayer {
                weight: rows,
                bias: biases,
            },
            DenseLayer {
                weight: out.iter().map(|c| c[..h].to_vec()).collect(),
                bias: out.iter().map(|c| c[h]).collect(),
            },
        ],
    })
}

/// Slopes and values at a point of the line: `(g(t), right slope)`.
fn value_and_slope(
    probe: &mut Probe<'_>,
    x0: &[f64],
    d: &[f64],
    t: f64,
    h: f64,
) -> Result<std::result::Result<(f64, f64), OutOfBudget>> {
    let g = tryb!(probe.g(&[along(x0, d, t), along(x0, d, t + h)]));
    Ok(Ok((g[0], (g[1] - g[0]) / h)))
}

/// Finds critical points on one line and recovers the row of each.
fn search_line(
    probe: &mut Probe<'_>,
    x0: &[f64],
    d: &[f64],
    cfg: &CarliniConfig,
    step: f64,
    exact: bool,
) -> Result<std::result::Result<Vec<Critical>, OutOfBudget>> {
    let r = cfg.radius;
    // Slope resolution: exact arithmetic or a quantised service.
    let h = cfg
        .slope_step
        .unwrap_or(if exact { 1e-7 * r } else { 0.05 });
    let (ga, sa) = tryb!(value_and_slope(probe, x0, d, -r, h));
    let (gb, sb) = tryb!(value_and_slope(probe, x0, d, r - h, h));
    let mut stack = vec![(-r, r - h, ga, gb, sa, sb, 0usize)];
    let mut kinks = Vec::new();
    let scale = ga.abs().max(gb.abs()).max(1.0);
    let tol = if exact { 1e-9 * scale } else { 2e-3 * scale };
    let slope_tol = if exact {
        1e-6 * (sa.abs() + sb.abs()).max(1.0)
    } else {
        0.05
    };
    while let Some((a, b, fa, fb, s_a, s_b, depth)) = stack.pop() {
        if (s_a - s_b).abs() <= slope_tol || b - a < 4.0 * h {
            continue;
        }
        let t = (fb - fa + s_a * a - s_b * b) / (s_a - s_b);
        if t > a + h && t < b - h {
            let ft = tryb!(probe.g(&[along(x0, d, t)]))[0];
            let pred = fa + s_a * (t - a);
            if (ft - pred).abs() <= tol {
                kinks.push((t, (t - a).min(b - t)));
                continue;
            }
        }
        if depth >= cfg.max_depth {
            continue;
        }
        let m = 0.5 * (a + b);
        let g3 = tryb!(probe.g(&[along(x0, d, m - h), along(x0, d, m), along(x0, d, m + h)]));
        let (fm, sml, sm) = (g3[1], (g3[1] - g3[0]) / h, (g3[2] - g3[1]) / h);
        stack.push((a, m, fa, fm, s_a, sml, depth + 1));
        stack.push((m, b, fm, fb, sm, s_b, depth + 1));
    }
    let mut out = Vec::new();
    for (t, room) in kinks {
        let delta = if exact {
            (1e-4 * r).min(0.5 * room)
        } else {
            (0.5 * room).min(0.25 * r)
        };
        if delta <= 2.0 * step {
            continue;
        }
        let xs = along(x0, d, t);
        let plus = along(x0, d, t + delta);
        let minus = along(x0, d, t - delta);
        let gp = tryb!(gradients(probe, &plus, step));
        let gm = tryb!(gradients(probe, &minus, step));
        // Per logit k the difference is V_ki W_i (rank one): combine the
        // logits' differences with the signs that align them with the largest.
        let diffs: Vec<Vec<f64>> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| a.iter().zip(b).map(|(p, q)| p - q).collect())
            .collect();
        let sq = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
        let Some(top) = diffs.iter().max_by(|a, b| sq(a).total_cmp(&sq(b))) else {
            continue;
        };
        let mut diff = vec![0f64; dim_of(top)];
        for m in &diffs {
            let s = if m.iter().zip(top).map(|(a, b)| a * b).sum::<f64>() >= 0.0 {
                1.0
            } else {
                -1.0
            };
            diff.iter_mut().zip(m).for_each(|(d, v)| *d += s * v);
        }
        let n = diff.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n.is_nan() || n <= 0.0 || !n.is_finite() {
            continue;
        }
        let mut row: Vec<f64> = diff.iter().map(|v| v / n).collect();
        // canonical sign: largest |entry| positive
        let big = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map_or(0, |(i, _)| i);
        if row[big] < 0.0 {
            row.iter_mut().for_each(|v| *v = -*v);
        }
        let bias = -row.iter().zip(&xs).map(|(a, b)| a * b).sum::<f64>();
        out.push(Critical { row, bias });
    }
    Ok(Ok(out))
}

/// Central-difference gradients of every logit at `x` (`2 dim` queries):
/// `[class][dim]`.
fn gradients(
    probe: &mut Probe<'_>,
    x: &[f64],
    step: f64,
) -> Result<std::result::Result<Vec<Vec<f64>>, OutOfBudget>> {
    let mut pts = Vec::with_capacity(2 * x.len());
    for j in 0..x.len() {
        for s in [step, -step] {
            let mut p = x.to_vec();
            p[j] += s;
            pts.push(p);
        }
    }
    let l = tryb!(probe.logits(&pts));
    let classes = l.first().map_or(0, Vec::len);
    Ok(Ok((0..classes)
        .map(|k| {
            l.chunks(2)
                .map(|p| (p[0][k] - p[1][k]) / (2.0 * step))
                .collect()
        })
        .collect()))
}

/// Accuracy of a network on labelled (preprocessed) rows.
pub fn accuracy(net: &DenseNet, rows: &[Vec<f64>], labels: &[usize]) -> f64 {
    if rows.is_empty() {
        return 0.0;
    }
    let ok = rows
        .iter()
        .zip(labels)
        .filter(|(x, y)| argmax(&net.forward(x)) == **y)
        .count();
    ok as f64 / rows.len() as f64
}
