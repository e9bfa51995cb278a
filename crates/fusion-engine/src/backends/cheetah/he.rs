//! The linear steps as HE layers: plans from public shapes, the server's
//! encoded weights, and caches of both per batch size.
//!
//! A linear step of the program maps onto fusion-he layers on the chunk (one
//! layer on the whole chunk, or two on consecutive parts of it: [`StepPlan`]):
//! [`FixedOp::Dense`] onto HomFC (`[n, D] -> [n, O]`, weights `[O, D]`,
//! bias at scale `2f`), [`FixedOp::Conv2d`] onto HomConv (NCHW, OIHW weights,
//! explicit symmetric zero padding, bias), [`FixedOp::ChannelAffine`] onto HomBN
//! (per-channel scale and shift). The layouts of fusion-nn's tensors and
//! fusion-he's layers are the same (batch-major, `[C, H, W]` per sample), so
//! shares pass through unchanged. Both parties plan from the public program
//! with the announced HE preset and planner options, so their plans agree;
//! the server encodes its weights once per model and batch size
//! ([`ServerLinear`]) and keeps a few batch sizes cached.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use fusion_he::{
    BatchNormShape, Conv2dShape, FcShape, HeError, HeParams, LayerKind, LinearPlan, Padding,
    PlanOptions, ServerLinear,
};

use fusion_he::Preset;

use super::config::HeChoice;
use crate::error::{SecureError, SecureResult};
use fusion_nn::fixed::{FixedOp, FixedProgram, OpClass, PublicOp, PublicProgram};

/// The fusion-he layer of linear step `step` for a batch of `n` samples.
pub fn layer_kind(program: &PublicProgram, step: usize, n: usize) -> SecureResult<LayerKind> {
    let s = program
        .steps
        .get(step)
        .ok_or_else(|| SecureError::Config(format!("no step {step}")))?;
    let in_shape = program.value_shape(s.inputs[0]);
    Ok(match s.op {
        PublicOp::Dense {
            in_features,
            out_features,
        } => LayerKind::Fc(FcShape::new(n, in_features, out_features)),
        PublicOp::Conv2d {
            in_channels,
            in_height,
            in_width,
            out_channels,
            kernel,
            stride,
            padding,
        } => LayerKind::Conv2d(Conv2dShape::new(
            n,
            in_channels,
            in_height,
            in_width,
            out_channels,
            kernel,
            stride,
            Padding::Explicit {
                top: padding,
                bottom: padding,
                left: padding,
                right: padding,
            },
        )),
        PublicOp::ChannelAffine { channels } => {
            let [ch, h, w] = *in_shape else {
                return Err(SecureError::Malformed(format!(
                    "channel affine on shape {in_shape:?}"
                )));
            };
            if ch != channels {
                return Err(SecureError::Malformed("channel affine channels".into()));
            }
            LayerKind::BatchNorm(BatchNormShape::new(n, ch, h, w))
        }
        ref other => {
            return Err(SecureError::Config(format!(
                "`{}` is not a linear step",
                other.tag()
            )));
        }
    })
}

/// The largest second part [`StepPlan::new`] tries when it cuts a chunk in two.
pub const MAX_SPLIT_PART: usize = 64;

/// The HE plan of one linear step for a chunk of `n` samples: one fusion-he
/// layer on the whole chunk, or two on consecutive parts of it (`n - k`
/// samples, then `k`), each with a blocking of its own.
///
/// **Why two parts.** A blocking packs `nb` samples per polynomial and cuts
/// the chunk into `ceil(n / nb)` sample blocks: where `nb` does not divide `n`
/// the last block is partly empty, yet costs whole ciphertexts, one per filter
/// block. Planned apart, the parts each pick the blocking that suits them.
/// cnn-mnist's `conv1` at 16 samples: at most 5 (sample, filter) pairs fit one
/// ciphertext, and every uniform blocking of 16 x 16 pairs needs 64 reply
/// ciphertexts; 15 samples at 5 per ciphertext plus one sample at 5 filters
/// per ciphertext need 52 (and the plan 0.32 MB less).
///
/// **How it is chosen.** By fusion-he's cost model ([`LinearPlan::new`]:
/// estimated seconds, bytes priced at the options' bandwidth), over the whole
/// chunk and every cut `[n - k, k]` with `1 <= k <= min(n / 2,`
/// [`MAX_SPLIT_PART`]`)`; a cut must be strictly cheaper than the whole chunk.
/// Both parties compute it from public data (the program's shapes, the
/// announced parameters and options), so they agree, and it says nothing about
/// the samples or the weights. The layouts are batch-major, so a part's inputs
/// and outputs are consecutive slices of the chunk's.
#[derive(Debug, Clone)]
pub struct StepPlan {
    parts: Vec<Arc<LinearPlan>>,
}

impl StepPlan {
    /// Plans linear step `step` of `program` for a chunk of `n` samples.
    pub fn new(
        params: &HeParams,
        opts: &PlanOptions,
        program: &PublicProgram,
        step: usize,
        n: usize,
    ) -> SecureResult<Self> {
        let plan = |k: usize| -> SecureResult<Arc<LinearPlan>> {
            Ok(Arc::new(LinearPlan::new(
                params,
                layer_kind(program, step, k)?,
                opts,
            )?))
        };
        let whole = plan(n)?;
        let mut cost = whole.stats().est_seconds;
        let mut parts = vec![whole];
        for k in 1..=(n / 2).min(MAX_SPLIT_PART) {
            let first = plan(n - k)?;
            let second = if k == n - k { first.clone() } else { plan(k)? };
            let c = first.stats().est_seconds + second.stats().est_seconds;
            if c < cost {
                cost = c;
                parts = vec![first, second];
            }
        }
        Ok(StepPlan { parts })
    }

    /// A step of the given parts, in sample order (at least one).
    pub fn from_parts(parts: Vec<Arc<LinearPlan>>) -> SecureResult<Self> {
        if parts.is_empty() {
            return Err(SecureError::Config("a step plan needs a part".into()));
        }
        Ok(StepPlan { parts })
    }

    /// The parts' plans, in sample order.
    pub fn parts(&self) -> &[Arc<LinearPlan>] {
        &self.parts
    }

    /// Input elements of the whole chunk.
    pub fn input_len(&self) -> usize {
        self.parts.iter().map(|p| p.input_len()).sum()
    }

    /// Output elements of the whole chunk.
    pub fn output_len(&self) -> usize {
        self.parts.iter().map(|p| p.output_len()).sum()
    }

    /// Flooded coefficients one call reveals to the client (the parts' sum).
    pub fn revealed_coefficients(&self) -> usize {
        self.parts.iter().map(|p| p.revealed_coefficients()).sum()
    }

    /// Client-to-server bytes of one call (the parts' queries).
    pub fn bytes_up(&self) -> usize {
        self.parts.iter().map(|p| p.stats().bytes_up).sum()
    }

    /// Server-to-client bytes of one call (the parts' replies).
    pub fn bytes_down(&self) -> usize {
        self.parts.iter().map(|p| p.stats().bytes_down).sum()
    }
}

/// The server's encoded layers of one linear step: one per part of its
/// [`StepPlan`], each with the step's whole weights.
#[derive(Debug)]
pub struct ServerStep {
    parts: Vec<Arc<ServerLinear>>,
}

impl ServerStep {
    /// A step of the given encoded parts, in sample order (at least one).
    pub fn from_parts(parts: Vec<Arc<ServerLinear>>) -> SecureResult<Self> {
        if parts.is_empty() {
            return Err(SecureError::Config("a server step needs a part".into()));
        }
        Ok(ServerStep { parts })
    }

    /// The parts' encoded layers, in sample order.
    pub fn parts(&self) -> &[Arc<ServerLinear>] {
        &self.parts
    }

    /// Flooded coefficients one call reveals to the client (the parts' sum).
    pub fn revealed_coefficients(&self) -> usize {
        self.parts
            .iter()
            .map(|l| l.plan().revealed_coefficients())
            .sum()
    }
}

/// The public plans of every linear step for batch `n` (`None` for other steps).
pub fn plans(
    params: &HeParams,
    opts: &PlanOptions,
    program: &PublicProgram,
    n: usize,
) -> SecureResult<Vec<Option<Arc<StepPlan>>>> {
    program
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.op.class() != OpClass::Linear {
                return Ok(None);
            }
            let plan = StepPlan::new(params, opts, program, i, n)?;
            let expected = n * program.value_shape(s.inputs[0]).iter().product::<usize>();
            let out = n * s.shape.iter().product::<usize>();
            if plan.input_len() != expected || plan.output_len() != out {
                return Err(SecureError::Config(format!(
                    "HE plan of step `{}` has {} inputs / {} outputs, the program {expected} / {out}",
                    s.name,
                    plan.input_len(),
                    plan.output_len()
                )));
            }
            Ok(Some(Arc::new(plan)))
        })
        .collect()
}

/// The server's encoded layers for batch `n` (`program` with its coefficients).
pub fn server_layers(
    params: &HeParams,
    opts: &PlanOptions,
    program: &FixedProgram,
    n: usize,
) -> SecureResult<Vec<Option<Arc<ServerStep>>>> {
    let plans = plans(params, opts, &program.public(), n)?;
    program
        .steps
        .iter()
        .zip(plans)
        .map(|(s, plan)| {
            let Some(plan) = plan else { return Ok(None) };
            let encode = |plan: &Arc<LinearPlan>| {
                let plan = LinearPlan::clone(plan);
                match &s.op {
                    FixedOp::Dense(d) => ServerLinear::fc(plan, &d.weight, Some(&d.bias)),
                    FixedOp::Conv2d(c) => ServerLinear::conv2d(plan, &c.weight, Some(&c.bias)),
                    FixedOp::ChannelAffine(a) => {
                        ServerLinear::batch_norm(plan, &a.scale, Some(&a.shift))
                    }
                    _ => Err(HeError::InvalidShape("not a linear step".into())),
                }
                .map(Arc::new)
                .map_err(|e| match e {
                    HeError::InputLength { .. } => SecureError::Config(format!(
                        "step `{}` has no coefficients (a public program view cannot be served)",
                        s.name
                    )),
                    e => SecureError::He(e),
                })
            };
            let parts = plan
                .parts()
                .iter()
                .map(encode)
                .collect::<SecureResult<_>>()?;
            Ok(Some(Arc::new(ServerStep { parts })))
        })
        .collect()
}

/// The HE preset for `program`: the fixed choice, or the smallest preset whose
/// parameters exist for the ring and `stat_sec_bits` per revealed coefficient
/// and whose flooding holds for every layer at batch size 1.
pub fn choose_preset(
    choice: HeChoice,
    opts: &PlanOptions,
    program: &FixedProgram,
    stat_sec_bits: u32,
) -> SecureResult<Preset> {
    let candidates = match choice {
        HeChoice::Fixed(p) => vec![p],
        HeChoice::Auto => vec![Preset::N4096, Preset::N8192],
    };
    let mut last = None;
    for p in candidates {
        let attempt = super::config::he_params(p, program.ring(), 0, stat_sec_bits, 0)
            .and_then(|params| server_layers(&params, opts, program, 1));
        match attempt {
            Ok(_) => return Ok(p),
            Err(e) => last = Some(e),
        }
    }
    let last = last.unwrap_or_else(|| SecureError::Config("no HE preset".into()));
    Err(SecureError::Config(format!(
        "no HE preset ({}) admits {stat_sec_bits} bits of statistical security per revealed \
         coefficient for this model: {last}",
        match choice {
            HeChoice::Auto => "n4096 or n8192".to_string(),
            HeChoice::Fixed(p) => p.to_string(),
        }
    )))
}

/// The query rounding `d` for `program` on `preset` with `levels` packing
/// levels and `stat_sec_bits` per revealed coefficient: the fixed choice if
/// every layer admits it (`0` always), or the largest `d` every layer admits
/// (`0` if none). A layer
/// admits `d` if its flooding reaches `stat_sec_bits` for the server's
/// weights with the noise of **any** of its plans
/// ([`fusion_he::NoiseAnalysis::any_batch`] on
/// [`LinearPlan::max_noise_fan_in`]), so no batch size can fail later.
/// Admission only gets harder as `d` grows, so the largest is found by
/// bisection.
pub fn choose_query_rounding(
    choice: super::config::RoundingChoice,
    preset: Preset,
    opts: &PlanOptions,
    program: &FixedProgram,
    levels: u32,
    stat_sec_bits: u32,
) -> SecureResult<u32> {
    // Per plan part of every linear step: its name, the largest noise fan-in
    // of any of its plans and its weights' bits. None of these depends on `d`
    // (the geometry is the layer's, the weight bits the ring's), so the
    // program is planned and its weights scanned once, not at every `d`.
    let layers = || -> SecureResult<Vec<(&str, usize, u32)>> {
        let params = super::config::he_params(preset, program.ring(), levels, stat_sec_bits, 0)?;
        let plans = plans(&params, opts, &program.public(), 1)?;
        let mut out = Vec::new();
        for (s, plan) in program.steps.iter().zip(plans) {
            let Some(plan) = plan else { continue };
            let weights: &[u64] = match &s.op {
                FixedOp::Dense(op) => &op.weight,
                FixedOp::Conv2d(op) => &op.weight,
                FixedOp::ChannelAffine(op) => &op.scale,
                _ => continue,
            };
            let wb = fusion_he::noise::weight_bits(&params, weights.iter().copied());
            for part in plan.parts() {
                out.push((s.name.as_str(), part.max_noise_fan_in(), wb));
            }
        }
        Ok(out)
    };
    let admits = |layers: &[(&str, usize, u32)], d: u32| -> SecureResult<()> {
        let params = super::config::he_params(preset, program.ring(), levels, stat_sec_bits, d)?;
        for &(name, fan_in, wb) in layers {
            fusion_he::NoiseAnalysis::any_batch(&params, fan_in)
                .and_then(|a| a.check_flooding(&params, wb))
                .map_err(|e| {
                    SecureError::Config(format!("query rounding by 2^{d}: step `{name}`: {e}"))
                })?;
        }
        Ok(())
    };
    match choice {
        // No rounding: the layers are checked per batch size as they are
        // encoded, as without this choice.
        super::config::RoundingChoice::Fixed(0) => Ok(0),
        super::config::RoundingChoice::Fixed(d) => admits(&layers()?, d).map(|()| d),
        super::config::RoundingChoice::Auto => {
            // Invariant: `lo` is admitted (0 when nothing is), `hi + 1` is not.
            let Ok(layers) = layers() else { return Ok(0) };
            if admits(&layers, 0).is_err() {
                return Ok(0);
            }
            let (mut lo, mut hi) = (0u32, fusion_he::MAX_QUERY_ROUNDING_BITS);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if admits(&layers, mid).is_ok() {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            Ok(lo)
        }
    }
}

/// A small cache of per-batch-size values (FIFO eviction).
#[derive(Debug)]
pub struct BatchCache<T> {
    capacity: usize,
    entries: Mutex<VecDeque<(usize, Arc<T>)>>,
}

impl<T> BatchCache<T> {
    /// A cache of at most `capacity` (at least 1) batch sizes.
    pub fn new(capacity: usize) -> Self {
        BatchCache {
            capacity: capacity.max(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(usize, Arc<T>)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached value for batch size `n`.
    pub fn get(&self, n: usize) -> Option<Arc<T>> {
        self.lock()
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.clone())
    }

    /// Stores the value for batch size `n` (evicting the oldest entry if full).
    pub fn insert(&self, n: usize, v: Arc<T>) {
        let mut e = self.lock();
        e.retain(|(k, _)| *k != n);
        if e.len() >= self.capacity {
            e.pop_front();
        }
        e.push_back((n, v));
    }

    /// Cached batch sizes, oldest first.
    pub fn sizes(&self) -> Vec<usize> {
        self.lock().iter().map(|(k, _)| *k).collect()
    }
}

/// Runs a CPU-heavy closure on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> SecureResult<T> + Send + 'static,
) -> SecureResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SecureError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_nn::eval::default_fixed_point;
    use fusion_nn::fixed::lower;

    #[test]
    fn auto_query_rounding_is_the_largest_every_layer_admits() {
        use super::super::config::RoundingChoice;
        let m = fusion_nn::zoo::build("mlp-mnist", 0).expect("zoo");
        let p = lower(&m, default_fixed_point()).expect("lower");
        let opts = PlanOptions::default();
        let pick = |c| choose_query_rounding(c, Preset::N4096, &opts, &p, 0, 40);
        let d = pick(RoundingChoice::Auto).expect("auto");
        assert!(d > 0, "the zoo's weights leave room for some rounding");
        assert_eq!(pick(RoundingChoice::Fixed(d)).expect("fixed d"), d);
        assert_eq!(pick(RoundingChoice::Fixed(0)).expect("fixed 0"), 0);
        // One bit more is refused, naming the layer that cannot take it.
        match pick(RoundingChoice::Fixed(d + 1)) {
            Err(SecureError::Config(msg)) => assert!(msg.contains("step `fc"), "{msg}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Larger weights (every weight 2^15) leave less room.
        let mut heavy = p.clone();
        for s in &mut heavy.steps {
            if let FixedOp::Dense(op) = &mut s.op {
                op.weight.iter_mut().for_each(|w| *w = 1 << 15);
            }
        }
        let d_heavy =
            choose_query_rounding(RoundingChoice::Auto, Preset::N4096, &opts, &heavy, 0, 40)
                .expect("auto");
        assert!(d_heavy < d, "{d_heavy} < {d}");
    }

    #[test]
    fn plans_of_the_public_view_match_the_servers_layers() {
        let m = fusion_nn::zoo::build("cnn-mnist", 1).expect("zoo");
        let p = lower(&m, default_fixed_point()).expect("lower");
        let opts = PlanOptions::default();
        let preset = choose_preset(HeChoice::Auto, &opts, &p, 40).expect("preset");
        assert_eq!(preset, Preset::N4096);
        let params = preset.params(p.ring()).expect("params");
        let public = plans(&params, &opts, &p.public(), 3).expect("plans");
        let server = server_layers(&params, &opts, &p, 3).expect("layers");
        assert_eq!(public.iter().flatten().count(), 4);
        for (a, b) in public.iter().zip(&server) {
            match (a, b) {
                (Some(a), Some(b)) => {
                    assert_eq!(a.parts().len(), b.parts().len());
                    for (a, b) in a.parts().iter().zip(b.parts()) {
                        assert_eq!(a.stats(), b.plan().stats());
                    }
                }
                (None, None) => {}
                _ => panic!("plans and layers disagree"),
            }
        }
        // A program whose coefficients are missing cannot be served.
        let mut stripped = p.clone();
        if let FixedOp::Conv2d(c) = &mut stripped.steps[0].op {
            c.weight.clear();
        }
        assert!(matches!(
            server_layers(&params, &opts, &stripped, 1),
            Err(SecureError::Config(_))
        ));
    }

    #[test]
    fn the_zoo_mnist_networks_reveal_one_coefficient_per_linear_output() {
        // The per-sample counts the docs of `fusion serve
        // --max-revealed-coefficients` quote.
        for (net, per_sample) in [("cnn-mnist", 9216 + 1024 + 100 + 10), ("mlp-mnist", 266)] {
            let m = fusion_nn::zoo::build(net, 1).expect("zoo");
            let p = lower(&m, default_fixed_point()).expect("lower");
            let params = Preset::N4096.params(p.ring()).expect("params");
            for n in [1, 3] {
                let total: usize = plans(&params, &PlanOptions::default(), &p.public(), n)
                    .expect("plans")
                    .iter()
                    .flatten()
                    .map(|plan| plan.revealed_coefficients())
                    .sum();
                assert_eq!(total, n * per_sample, "{net}");
            }
        }
    }

    #[test]
    fn a_step_is_cut_in_two_only_where_the_cost_model_prefers_it() {
        let m = fusion_nn::zoo::build("cnn-mnist", 1).expect("zoo");
        let p = lower(&m, default_fixed_point()).expect("lower").public();
        let params = Preset::N4096
            .builder(p.ring())
            .reply_packing(fusion_he::DEFAULT_PACKING_LEVELS)
            .build()
            .expect("params");
        let opts = PlanOptions::bytes_first();
        let conv1 = p
            .steps
            .iter()
            .position(|s| s.name == "conv1")
            .expect("conv1");
        let cut = StepPlan::new(&params, &opts, &p, conv1, 16).expect("plan");
        let lens: Vec<usize> = cut.parts().iter().map(|q| q.input_len()).collect();
        assert_eq!(lens, [15 * 784, 784]);
        let whole = LinearPlan::new(&params, layer_kind(&p, conv1, 16).expect("kind"), &opts)
            .expect("plan");
        assert!(
            cut.bytes_up() + cut.bytes_down() < whole.stats().bytes_up + whole.stats().bytes_down
        );
        assert_eq!(cut.revealed_coefficients(), whole.revealed_coefficients());
        // One sample is never cut, and every plan covers the whole chunk.
        for n in [1, 2, 16] {
            for (i, s) in plans(&params, &opts, &p, n)
                .expect("plans")
                .iter()
                .enumerate()
            {
                let Some(s) = s else { continue };
                assert!(n > 1 || s.parts().len() == 1, "step {i}");
                assert!(s.parts().len() <= 2);
            }
        }
    }

    #[test]
    fn the_cache_keeps_the_newest_sizes() {
        let c = BatchCache::new(2);
        c.insert(1, Arc::new(10));
        c.insert(2, Arc::new(20));
        c.insert(3, Arc::new(30));
        assert_eq!(c.sizes(), vec![2, 3]);
        assert_eq!(c.get(3).map(|v| *v), Some(30));
        assert!(c.get(1).is_none());
    }
}
