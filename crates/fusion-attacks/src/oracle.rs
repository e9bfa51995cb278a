//! The service an attacker queries: an [`Oracle`] answers batches of model
//! inputs with what the service returns (logits, or labels only) and counts
//! what was asked and what was evaluated.
//!
//! Inputs are **preprocessed model inputs** (the model's public preprocessing,
//! `model.json`'s `preprocess`, is applied by the client in the clear before
//! encoding, so the attacker works in that space as well).
//!
//! Implementations:
//!
//! * [`PlaintextOracle`]: the fixed-point engine of `fusion-nn` (the program the
//!   secure engine executes on shares), optionally with the secure engine's
//!   truncation error modelled ([`Truncation::FloorOrOneLess`]): every
//!   truncation returns the floor or, with probability 1/2 from a seeded RNG,
//!   one less (the engine contract of [`fusion_nn::fixed`]: Cheetah's one-flight
//!   truncation drops a carry). [`truncation_bound`] bounds how far such
//!   outputs can be from the floor-exact ones.
//! * [`F64Oracle`]: the same fully connected network evaluated in f64 (the
//!   reference for A2).
//! * [`LabelOnly`]: wraps an oracle and returns only the argmax: a plaintext
//!   model of the `label` output mode (on shares it is the server's
//!   `--output-mode label`, which the secure oracle of `fusion-cli` uses).
//! * [`ReverseSigmoidOutput`]: wraps an oracle and returns Lee et al.'s
//!   perturbed probabilities of its logits: in fixed point through the same
//!   pipeline the secure stage computes on shares
//!   ([`fusion_nn::reverse_sigmoid::ReverseSigmoidTables::apply_fixed`]), or in
//!   f64 ([`fusion_nn::reverse_sigmoid::ReverseSigmoid::apply_f64`]). On shares
//!   it is the server's `--output-mode reverse-sigmoid`.
//!
//! The secure oracle (a real Fusion run per batch of queries, over QUIC) lives
//! with the client in `fusion-cli` (`secure_oracle.rs`), since it needs the
//! engine and the network; it implements the same trait.
//!
//! `rows_evaluated` counts every row the service evaluated. For the plaintext
//! oracles it equals `queries_used`; a Fusion session adds the copies and
//! public samples (`R·B + T` per batch of `R` queries).

use fusion_core::ring::Ring;
use fusion_nn::fixed::{FixedOp, FixedProgram};
use fusion_nn::tensor::{RingTensor, Tensor};
use fusion_nn::{Model, eval, fixed};
use rand::rngs::ChaCha20Rng;
use rand::{Rng, SeedableRng};

use fusion_nn::reverse_sigmoid::{ReverseSigmoid, ReverseSigmoidTables};

use crate::dense::{DenseNet, argmax};
use crate::error::{AttackError, Result};

/// What the service returns for one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum OracleAnswer {
    /// One row of logits per query.
    Logits(Vec<Vec<f64>>),
    /// One class per query.
    Labels(Vec<usize>),
    /// One probability vector per query (the reverse-sigmoid output mode:
    /// perturbed probabilities, not logits).
    Probabilities(Vec<Vec<f64>>),
}

impl OracleAnswer {
    /// The argmax labels (for both kinds).
    pub fn labels(&self) -> Vec<usize> {
        match self {
            OracleAnswer::Logits(l) | OracleAnswer::Probabilities(l) => {
                l.iter().map(|r| argmax(r)).collect()
            }
            OracleAnswer::Labels(l) => l.clone(),
        }
    }

    /// The logits, if the service returns them.
    pub fn logits(&self) -> Option<&[Vec<f64>]> {
        match self {
            OracleAnswer::Logits(l) => Some(l),
            OracleAnswer::Labels(_) | OracleAnswer::Probabilities(_) => None,
        }
    }

    /// The scores of either kind (logits or probabilities), if any.
    pub fn scores(&self) -> Option<&[Vec<f64>]> {
        match self {
            OracleAnswer::Logits(l) | OracleAnswer::Probabilities(l) => Some(l),
            OracleAnswer::Labels(_) => None,
        }
    }
}

/// A queryable model service.
pub trait Oracle {
    /// Name for reports (`"plaintext"`, `"f64"`, ...).
    fn name(&self) -> String;
    /// Width of one (preprocessed) input row.
    fn input_len(&self) -> usize;
    /// Number of classes.
    fn classes(&self) -> usize;
    /// Whether answers carry logits (`false`: labels only).
    fn returns_scores(&self) -> bool;
    /// The finest step of the service's public input encoding (`2^-f` for
    /// fixed point, `0` for f64): public, since the client encodes.
    fn input_resolution(&self) -> f64;
    /// Answers a batch of preprocessed input rows; counts them as attacker queries.
    fn query(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer>;
    /// The service's labels for rows, **not** counted as attacker queries: the
    /// experimenter measuring the service's utility.
    fn server_labels(&mut self, rows: &[Vec<f64>]) -> Result<Vec<usize>>;
    /// What the service returns for rows, **not** counted as attacker
    /// queries (default: [`Oracle::server_labels`] as labels).
    fn server_answer(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        Ok(OracleAnswer::Labels(self.server_labels(rows)?))
    }
    /// Attacker rows answered so far.
    fn queries_used(&self) -> u64;
    /// All rows the service evaluated for them (copies and public samples included).
    fn rows_evaluated(&self) -> u64;
}

fn check_rows(rows: &[Vec<f64>], len: usize) -> Result<()> {
    if let Some(r) = rows.iter().find(|r| r.len() != len) {
        return Err(AttackError::BadParameter(format!(
            "query row of width {}, the model takes {len}",
            r.len()
        )));
    }
    Ok(())
}

/// How the plaintext oracle truncates.
#[derive(Debug)]
pub enum Truncation {
    /// Exact floor (the reference interpreter).
    Floor,
    /// Floor, or one less with probability 1/2 (seeded): the secure engine's
    /// one-bit truncation error.
    FloorOrOneLess(Box<ChaCha20Rng>),
}

/// The fixed-point engine of `fusion-nn` as a service.
#[derive(Debug)]
pub struct PlaintextOracle {
    program: FixedProgram,
    truncation: Truncation,
    classes: usize,
    queries: u64,
}

/// Rows per run of the fixed-point program.
const CHUNK: usize = 256;

impl PlaintextOracle {
    /// The model lowered with the engine's default fixed point (`l = 37, f = 12`).
    pub fn new(model: &Model, truncation: Truncation) -> Result<Self> {
        let program =
            fixed::lower(model, eval::default_fixed_point()).map_err(AttackError::Model)?;
        if program.input_shape.iter().product::<usize>() == 0 {
            return Err(AttackError::Unsupported("empty input shape".into()));
        }
        Ok(PlaintextOracle {
            program,
            truncation,
            classes: model.meta.classes,
            queries: 0,
        })
    }

    /// The lowered program.
    pub fn program(&self) -> &FixedProgram {
        &self.program
    }

    fn logits(&mut self, rows: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        let len = self.input_len();
        check_rows(rows, len)?;
        let fp = self.program.fixed;
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(CHUNK) {
            let mut shape = vec![chunk.len()];
            shape.extend_from_slice(&self.program.input_shape);
            let data = chunk.iter().flatten().map(|&v| fp.encode(v)).collect();
            let x = RingTensor::new(shape, data).map_err(AttackError::Model)?;
            let y = run_program(&self.program, &x, &mut self.truncation)?;
            let s = self.program.output_scale();
            let k = y.sample_len().max(1);
            out.extend(
                y.data()
                    .chunks(k)
                    .map(|r| r.iter().map(|&v| fp.decode_at(v, s)).collect::<Vec<f64>>()),
            );
        }
        Ok(out)
    }
}

/// Runs a program step by step, applying the truncation model after every
/// `Truncate` step.
fn run_program(
    program: &FixedProgram,
    x: &RingTensor,
    trunc: &mut Truncation,
) -> Result<RingTensor> {
    let ring: Ring = program.ring();
    let mut values: Vec<RingTensor> = Vec::with_capacity(program.steps.len() + 1);
    values.push(x.clone());
    for step in &program.steps {
        let ins: Vec<&RingTensor> = step.inputs.iter().map(|&i| &values[i]).collect();
        let mut y = step
            .apply(ring, &ins)
            .map_err(|e| AttackError::Oracle(e.to_string()))?;
        if let (FixedOp::Truncate { .. }, Truncation::FloorOrOneLess(rng)) = (&step.op, &mut *trunc)
        {
            let mut bits = 0u64;
            for (i, v) in y.data_mut().iter_mut().enumerate() {
                if i % 64 == 0 {
                    bits = rng.next_u64();
                }
                if bits >> (i % 64) & 1 == 1 {
                    *v = ring.sub(*v, 1);
                }
            }
        }
        values.push(y);
    }
    values
        .pop()
        .ok_or_else(|| AttackError::Oracle("empty program".into()))
}

impl Oracle for PlaintextOracle {
    fn name(&self) -> String {
        "plaintext".into()
    }
    fn input_len(&self) -> usize {
        self.program.input_shape.iter().product()
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn returns_scores(&self) -> bool {
        true
    }
    fn input_resolution(&self) -> f64 {
        (2f64).powi(-(self.program.fixed.frac_bits as i32))
    }
    fn query(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        let l = self.logits(rows)?;
        self.queries += rows.len() as u64;
        Ok(OracleAnswer::Logits(l))
    }
    fn server_labels(&mut self, rows: &[Vec<f64>]) -> Result<Vec<usize>> {
        Ok(self.logits(rows)?.iter().map(|r| argmax(r)).collect())
    }
    fn server_answer(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        Ok(OracleAnswer::Logits(self.logits(rows)?))
    }
    fn queries_used(&self) -> u64 {
        self.queries
    }
    fn rows_evaluated(&self) -> u64 {
        self.queries
    }
}

/// Largest possible difference between the logits of a floor-exact run and a
/// run whose truncations return the floor or one less
/// ([`Truncation::FloorOrOneLess`], the secure engine's contract), in output
/// units (a real number).
///
/// Propagated step by step in integer units of each value's scale: a linear op
/// multiplies the bound by its largest absolute row sum of integer
/// coefficients, a truncation by `b` bits maps `e` to `ceil(e / 2^b) + 1`,
/// sums add, ReLU and max pooling keep it. Programs with `Square` are refused
/// (their error depends on the values).
pub fn truncation_bound(program: &FixedProgram) -> Result<f64> {
    let ring = program.ring();
    let abs = |v: u64| ring.to_signed(v).unsigned_abs() as f64;
    let mut e: Vec<f64> = vec![0.0];
    for step in &program.steps {
        let ein = step.inputs.iter().map(|&i| e[i]).fold(0.0, f64::max);
        let out = match &step.op {
            FixedOp::Dense(d) => {
                d.weight
                    .chunks(d.in_features.max(1))
                    .map(|r| r.iter().map(|&w| abs(w)).sum::<f64>())
                    .fold(0.0, f64::max)
                    * ein
            }
            FixedOp::Conv2d(c) => {
                let per = c.in_channels * c.kernel * c.kernel;
                c.weight
                    .chunks(per.max(1))
                    .map(|r| r.iter().map(|&w| abs(w)).sum::<f64>())
                    .fold(0.0, f64::max)
                    * ein
            }
            FixedOp::ChannelAffine(a) => a.scale.iter().map(|&s| abs(s)).fold(0.0, f64::max) * ein,
            FixedOp::SumPool { kernel, .. } => (kernel * kernel) as f64 * ein,
            FixedOp::GlobalSumPool => {
                let s = program.value_shape(step.inputs[0]);
                s.iter().skip(1).product::<usize>() as f64 * ein
            }
            FixedOp::MulConst { factor } => abs(*factor) * ein,
            FixedOp::Add => step.inputs.iter().map(|&i| e[i]).sum(),
            FixedOp::Reshape | FixedOp::Relu | FixedOp::MaxPool { .. } => ein,
            FixedOp::Truncate { bits } => (ein / (2f64).powi(*bits as i32)).ceil() + 1.0,
            FixedOp::Square => {
                return Err(AttackError::Unsupported(
                    "no value-independent truncation bound for square activations".into(),
                ));
            }
        };
        e.push(out);
    }
    let last = e.last().copied().unwrap_or(0.0);
    Ok(last * (2f64).powi(-(program.output_scale() as i32)))
}

/// The same network evaluated in f64 (fully connected ReLU networks only).
#[derive(Debug, Clone)]
pub struct F64Oracle {
    net: DenseNet,
    queries: u64,
}

impl F64Oracle {
    /// The f64 network of a fully connected ReLU model.
    pub fn new(model: &Model) -> Result<Self> {
        Ok(F64Oracle {
            net: DenseNet::from_model(model)?,
            queries: 0,
        })
    }
}

impl Oracle for F64Oracle {
    fn name(&self) -> String {
        "f64".into()
    }
    fn input_len(&self) -> usize {
        self.net.inputs()
    }
    fn classes(&self) -> usize {
        self.net.outputs()
    }
    fn returns_scores(&self) -> bool {
        true
    }
    fn input_resolution(&self) -> f64 {
        0.0
    }
    fn query(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        check_rows(rows, self.input_len())?;
        self.queries += rows.len() as u64;
        Ok(OracleAnswer::Logits(
            rows.iter().map(|r| self.net.forward(r)).collect(),
        ))
    }
    fn server_labels(&mut self, rows: &[Vec<f64>]) -> Result<Vec<usize>> {
        check_rows(rows, self.input_len())?;
        Ok(rows.iter().map(|r| argmax(&self.net.forward(r))).collect())
    }
    fn server_answer(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        check_rows(rows, self.input_len())?;
        Ok(OracleAnswer::Logits(
            rows.iter().map(|r| self.net.forward(r)).collect(),
        ))
    }
    fn queries_used(&self) -> u64 {
        self.queries
    }
    fn rows_evaluated(&self) -> u64 {
        self.queries
    }
}

/// An oracle that returns only the argmax of the wrapped oracle's logits (a
/// plaintext model of the `label` output mode).
#[derive(Debug, Clone)]
pub struct LabelOnly<O>(pub O);

impl<O: Oracle> Oracle for LabelOnly<O> {
    fn name(&self) -> String {
        format!("{}-label", self.0.name())
    }
    fn input_len(&self) -> usize {
        self.0.input_len()
    }
    fn classes(&self) -> usize {
        self.0.classes()
    }
    fn returns_scores(&self) -> bool {
        false
    }
    fn input_resolution(&self) -> f64 {
        self.0.input_resolution()
    }
    fn query(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        Ok(OracleAnswer::Labels(self.0.query(rows)?.labels()))
    }
    fn server_labels(&mut self, rows: &[Vec<f64>]) -> Result<Vec<usize>> {
        self.0.server_labels(rows)
    }
    fn queries_used(&self) -> u64 {
        self.0.queries_used()
    }
    fn rows_evaluated(&self) -> u64 {
        self.0.rows_evaluated()
    }
}

/// How [`ReverseSigmoidOutput`] computes the perturbation.
#[derive(Debug, Clone)]
pub enum Perturbation {
    /// The fixed-point pipeline (logits read back at the program's output
    /// scale; outputs at its fractional bits).
    Fixed(Box<ReverseSigmoidTables>),
    /// The f64 defence, clipping at `2^-frac`.
    F64(ReverseSigmoid, u32),
}

/// Wraps an oracle that returns logits and returns the reverse sigmoid of its
/// softmax instead (see the module docs).
#[derive(Debug)]
pub struct ReverseSigmoidOutput<O> {
    inner: O,
    perturbation: Perturbation,
}

impl<O: Oracle> ReverseSigmoidOutput<O> {
    /// The wrapper; `inner` must return logits.
    pub fn new(inner: O, perturbation: Perturbation) -> Result<Self> {
        if !inner.returns_scores() {
            return Err(AttackError::BadParameter(
                "reverse sigmoid needs an oracle that returns logits".into(),
            ));
        }
        Ok(ReverseSigmoidOutput {
            inner,
            perturbation,
        })
    }
}

impl ReverseSigmoidOutput<PlaintextOracle> {
    /// The plaintext oracle with the fixed-point pipeline of its own program
    /// (the same tables the secure stage computes with).
    pub fn fixed_point(plain: PlaintextOracle, rs: ReverseSigmoid) -> Result<Self> {
        let tables = ReverseSigmoidTables::for_program(rs, plain.classes, plain.program())
            .map_err(|e| AttackError::BadParameter(e.to_string()))?;
        Self::new(plain, Perturbation::Fixed(Box::new(tables)))
    }
}

impl<O: Oracle> ReverseSigmoidOutput<O> {
    fn perturb(&self, logits: &[Vec<f64>]) -> Vec<Vec<f64>> {
        match &self.perturbation {
            Perturbation::F64(rs, frac) => logits.iter().map(|r| rs.apply_f64(r, *frac)).collect(),
            Perturbation::Fixed(t) => {
                let (s, f) = ((t.logit_scale() as f64).exp2(), (t.frac() as f64).exp2());
                logits
                    .iter()
                    .map(|r| {
                        let z: Vec<i64> = r.iter().map(|&v| (v * s).round() as i64).collect();
                        t.apply_fixed(&z).iter().map(|&v| v as f64 / f).collect()
                    })
                    .collect()
            }
        }
    }
}

impl<O: Oracle> Oracle for ReverseSigmoidOutput<O> {
    fn name(&self) -> String {
        format!("{}-reverse-sigmoid", self.inner.name())
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
    fn returns_scores(&self) -> bool {
        true
    }
    fn input_resolution(&self) -> f64 {
        self.inner.input_resolution()
    }
    fn query(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        match self.inner.query(rows)? {
            OracleAnswer::Logits(l) => Ok(OracleAnswer::Probabilities(self.perturb(&l))),
            _ => Err(AttackError::Oracle(
                "reverse sigmoid: the wrapped oracle did not return logits".into(),
            )),
        }
    }
    /// The labels the client sees: the argmax of the perturbed output.
    fn server_labels(&mut self, rows: &[Vec<f64>]) -> Result<Vec<usize>> {
        Ok(self.server_answer(rows)?.labels())
    }
    fn server_answer(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        match self.inner.server_answer(rows)? {
            OracleAnswer::Logits(l) => Ok(OracleAnswer::Probabilities(self.perturb(&l))),
            _ => Err(AttackError::Oracle(
                "reverse sigmoid: the wrapped oracle did not return logits".into(),
            )),
        }
    }
    fn queries_used(&self) -> u64 {
        self.inner.queries_used()
    }
    fn rows_evaluated(&self) -> u64 {
        self.inner.rows_evaluated()
    }
}

impl<O: Oracle + ?Sized> Oracle for Box<O> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn input_len(&self) -> usize {
        (**self).input_len()
    }
    fn classes(&self) -> usize {
        (**self).classes()
    }
    fn returns_scores(&self) -> bool {
        (**self).returns_scores()
    }
    fn input_resolution(&self) -> f64 {
        (**self).input_resolution()
    }
    fn query(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        (**self).query(rows)
    }
    fn server_labels(&mut self, rows: &[Vec<f64>]) -> Result<Vec<usize>> {
        (**self).server_labels(rows)
    }
    fn server_answer(&mut self, rows: &[Vec<f64>]) -> Result<OracleAnswer> {
        (**self).server_answer(rows)
    }
    fn queries_used(&self) -> u64 {
        (**self).queries_used()
    }
    fn rows_evaluated(&self) -> u64 {
        (**self).rows_evaluated()
    }
}

/// Rows of a tensor as f64 vectors.
pub fn rows_of(t: &Tensor<f32>) -> Vec<Vec<f64>> {
    let n = t.sample_len().max(1);
    t.data()
        .chunks(n)
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

/// A seeded [`Truncation::FloorOrOneLess`].
pub fn floor_or_one_less(seed: u64) -> Truncation {
    Truncation::FloorOrOneLess(Box::new(ChaCha20Rng::seed_from_u64(seed)))
}
