//! Layer plans: the planner that picks the blocking of a layer's canonical
//! convolution ([`crate::encoding`] has the encoding and why it is correct) with
//! a cost model, and the plan both parties derive from public data: geometry,
//! blocking, message sizes, noise budget and, with response packing, the
//! packing layout.
//!
//! **Computes.** For every candidate blocking (tile sizes, channel, image and
//! filter blocks that fit `N`, and with packing the power-of-two channel blocks
//! that give the results a stride) the estimated wall time of one call from the
//! transforms, products, bytes and [`PlanOptions`]; the cheapest wins.
//!
//! **Learns.** Nothing secret: shapes, sizes and options are public, and both
//! parties must use the same options (the plan fixes the message layout).

use std::borrow::Cow;

use crate::batchnorm::BatchNormShape;
use crate::conv2d::Conv2dShape;
use crate::encoding::{Blocking, Counts, Geometry, Layout};
use crate::error::HeError;
use crate::fc::FcShape;
use crate::noise::NoiseAnalysis;
use crate::pack::ReplyPacking;
use crate::params::HeParams;

/// The layer a plan was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// 2-D convolution ([`crate::conv2d`]).
    Conv2d(Conv2dShape),
    /// Fully connected ([`crate::fc`]).
    Fc(FcShape),
    /// Per-channel scaling / batch norm ([`crate::batchnorm`]).
    BatchNorm(BatchNormShape),
}

impl LayerKind {
    fn geometry(&self) -> Result<Geometry, HeError> {
        match self {
            LayerKind::Conv2d(s) => s.geometry(),
            LayerKind::Fc(s) => s.geometry(),
            LayerKind::BatchNorm(s) => s.geometry(),
        }
    }

    /// Elements of the layer's input tensor.
    pub fn input_len(&self) -> usize {
        match self {
            LayerKind::Conv2d(s) => s.input_len(),
            LayerKind::Fc(s) => s.batch * s.in_features,
            LayerKind::BatchNorm(s) => s.len(),
        }
    }

    /// Elements of the layer's output tensor.
    pub fn output_len(&self) -> usize {
        match self {
            LayerKind::Conv2d(s) => s.output_len(),
            LayerKind::Fc(s) => s.batch * s.out_features,
            LayerKind::BatchNorm(s) => s.len(),
        }
    }
}

/// Transport overhead per message that the plan's byte counts include: the
/// 4-byte length header of a fusion-net frame (the one framing layer every
/// protocol message goes through).
pub const FRAME_HEADER_BYTES: usize = 4;

/// Inputs of the planner's cost model (both parties must use the same options:
/// the plan decides the message layout): the one planner-options type of the
/// project, also on the wire.
///
/// On the wire (serde) the fields keep their names; `threads` travels as a `u32`
/// and `weight_cache_bytes` as a `u64`, so that the encoding is the same on every
/// platform. [`PlanOptions::validate`] states which values are accepted; the
/// planner ([`LinearPlan::new`], [`LinearPlan::with_blocking`]) checks them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanOptions {
    /// Assumed link bandwidth in bytes per second (default 382 MB/s, the LAN of
    /// Fusion's evaluation; finite, in `[1, 1e15]`).
    pub bandwidth: f64,
    /// Cores assumed per party (default 2; `1..=4096`).
    #[serde(with = "wire_u32")]
    pub threads: usize,
    /// The server keeps the kernel polynomials in evaluation form if they take at
    /// most this many bytes (default 256 MiB; at most `2^40`), otherwise it
    /// transforms them per call.
    #[serde(with = "wire_u64")]
    pub weight_cache_bytes: usize,
}

/// The bandwidth, in bytes per second, at which [`PlanOptions::bytes_first`]
/// prices bytes against estimated computation.
pub const BYTES_FIRST_BANDWIDTH: f64 = 1e7;

/// Largest accepted [`PlanOptions::bandwidth`], bytes per second.
const MAX_BANDWIDTH: f64 = 1e15;
/// Largest accepted [`PlanOptions::threads`].
const MAX_THREADS: usize = 4096;
/// Largest accepted [`PlanOptions::weight_cache_bytes`].
const MAX_WEIGHT_CACHE_BYTES: u64 = 1 << 40;

/// `usize` fields on the wire as `u32` (platform-independent encoding).
mod wire_u32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &usize, s: S) -> Result<S::Ok, S::Error> {
        let v = u32::try_from(*v).map_err(serde::ser::Error::custom)?;
        s.serialize_u32(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        usize::try_from(u32::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `usize` fields on the wire as `u64` (platform-independent encoding).
mod wire_u64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &usize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        usize::try_from(u64::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            bandwidth: 382e6,
            threads: 2,
            weight_cache_bytes: 256 << 20,
        }
    }
}

impl PlanOptions {
    /// The byte-minimising objective: an assumed bandwidth of one byte per second,
    /// so that any byte outweighs any computation and the estimated time only
    /// breaks ties between plans of equal size, and a kernel-cache budget of
    /// 512 MiB. With response packing on ([`crate::ParamsBuilder::reply_packing`])
    /// this trades reply ciphertexts, which have become cheap, for fewer upload
    /// ciphertexts: batched FC layers then use one filter per kernel polynomial,
    /// i.e. many sparse kernel polynomials (315 MB in evaluation form for FC
    /// 784 -> 128 at batch 128), which the larger cache keeps from being transformed
    /// again on every call.
    pub fn minimise_bytes() -> Self {
        PlanOptions {
            bandwidth: 1.0,
            weight_cache_bytes: 512 << 20,
            ..PlanOptions::default()
        }
    }

    /// Bytes first, but not at any price: [`PlanOptions::minimise_bytes`] with
    /// bytes priced at [`BYTES_FIRST_BANDWIDTH`] (10 MB/s, i.e. a byte weighs
    /// 0.1 µs of estimated computation). A plan with more bytes wins only where
    /// its estimated computation is lower by more than that per extra byte:
    /// layers with few pixels and many channels (ResNet50's last stage, 7 x 7
    /// pixels and 512 to 2048 channels), where the byte-minimal blocking costs
    /// several times the products. On ResNet50 this plans 526.7 instead of
    /// 515.4 MB of HE traffic for 2.9 s less estimated computation (measured
    /// over the WAN emulator: BENCHMARKS.md, "Per-step figures and a
    /// bytes-first planner"). On mlp-mnist (batch 128) and cnn-mnist (16) it
    /// plans the same bytes as [`PlanOptions::minimise_bytes`], on lenet 2.6 kB
    /// more (0.08%).
    pub fn bytes_first() -> Self {
        PlanOptions {
            bandwidth: BYTES_FIRST_BANDWIDTH,
            ..PlanOptions::minimise_bytes()
        }
    }

    /// Checks the options (the one place that says which are accepted): the
    /// bandwidth finite and in `[1, 1e15]` bytes per second, `threads` in
    /// `1..=4096`, the weight-cache budget at most `2^40` bytes. Errors with
    /// [`HeError::InvalidParams`]; options from a peer should be checked with this
    /// before use (the planner calls it too).
    pub fn validate(&self) -> Result<(), HeError> {
        if !(self.bandwidth.is_finite() && (1.0..=MAX_BANDWIDTH).contains(&self.bandwidth)) {
            return Err(HeError::InvalidParams(format!(
                "planner bandwidth {} is not a number of bytes per second in [1, 1e15]",
                self.bandwidth
            )));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(HeError::InvalidParams(format!(
                "planner threads {} outside 1..={MAX_THREADS}",
                self.threads
            )));
        }
        if self.weight_cache_bytes as u64 > MAX_WEIGHT_CACHE_BYTES {
            return Err(HeError::InvalidParams(format!(
                "planner weight cache budget of {} bytes exceeds 2^40",
                self.weight_cache_bytes
            )));
        }
        Ok(())
    }
}

/// Sizes and estimated costs of a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanStats {
    /// Input ciphertexts (client to server).
    pub input_cts: usize,
    /// Reply ciphertexts (server to client).
    pub output_cts: usize,
    /// Non-zero kernel polynomials.
    pub weight_polys: usize,
    /// Ciphertext-plaintext products.
    pub products: usize,
    /// Output values of the layer.
    pub outputs: usize,
    /// Client-to-server bytes of one call.
    pub bytes_up: usize,
    /// Server-to-client bytes of one call (compressed replies).
    pub bytes_down: usize,
    /// Server-to-client bytes if the replies were sent whole at modulus `q`.
    pub bytes_down_uncompressed: usize,
    /// Whether the server caches the kernel polynomials in evaluation form.
    pub weights_cached: bool,
    /// The cost model's estimate of one call's wall time, seconds.
    pub est_seconds: f64,
}

/// A layer's public plan: geometry, blocking, message sizes and noise budget.
/// Both parties derive the same plan from the same parameters, layer and options.
#[derive(Debug, Clone)]
pub struct LinearPlan {
    pub(crate) params: HeParams,
    pub(crate) kind: LayerKind,
    /// Geometry, blocking and block counts: where every value sits.
    pub(crate) layout: Layout,
    pub(crate) noise: NoiseAnalysis,
    pub(crate) stats: PlanStats,
    /// Results per result ciphertext (prefix sums; `len = result cts + 1`).
    pub(crate) out_offsets: Vec<usize>,
    /// Response packing, if the plan packs.
    pub(crate) packing: Option<ReplyPacking>,
    /// Reply `b` values per reply ciphertext (prefix sums; `len = output_cts + 1`).
    pub(crate) reply_offsets: Vec<usize>,
}

/// Cost-model constants (nanoseconds, per residue coefficient at `N = 4096`),
/// measured with `tfhe-ntt` on AVX-512 IFMA for primes below `2^50`.
mod cost {
    pub(super) const NTT: f64 = 0.85;
    pub(super) const MAC: f64 = 0.18;
    pub(super) const EXPAND: f64 = 2.0;
    pub(super) const ENCODE: f64 = 12.0;
    pub(super) const FINALIZE: f64 = 14.0;
    pub(super) const DECRYPT: f64 = 12.0;
    /// Flooding, switching and packing one result (server).
    pub(super) const PER_OUTPUT_SERVER: f64 = 60.0;
    /// Decrypting one result (client).
    pub(super) const PER_OUTPUT_CLIENT: f64 = 20.0;
    /// Reading one byte of cached kernel polynomials from memory.
    pub(super) const DRAM_BYTE: f64 = 0.03;
    /// Encoding one kernel polynomial before its transform, per coefficient.
    pub(super) const KERNEL_ENCODE: f64 = 3.0;
    /// A pointwise product by a constant, per residue coefficient (packing).
    pub(super) const SCALE: f64 = 0.25;
    /// A gather of the automorphism, per residue coefficient.
    pub(super) const PERMUTE: f64 = 0.5;
    /// A modular addition, per residue coefficient.
    pub(super) const ADD: f64 = 0.2;
}

fn distinct_ceils(total: usize, cap: usize) -> Vec<usize> {
    // Values ceil(total / k), k = 1..=total, that are <= cap, largest first.
    let mut out = Vec::new();
    let mut k = 1;
    while k <= total {
        let v = total.div_ceil(k);
        if v <= cap && out.last() != Some(&v) {
            out.push(v);
        }
        // next k with a smaller ceil
        let next = if v <= 1 {
            total + 1
        } else {
            total.div_ceil(v - 1)
        };
        k = next.max(k + 1);
    }
    out
}

fn tile_sizes(out: usize, kernel: usize, cap: usize) -> Vec<usize> {
    distinct_ceils(out, cap)
        .into_iter()
        .map(|t| t + kernel - 1)
        .filter(|&b| b <= cap)
        .collect()
}

impl LinearPlan {
    /// Plans `kind` with the cost model of `opts`. With response packing enabled in
    /// the parameters ([`crate::ParamsBuilder::reply_packing`]) the planner also
    /// considers packed replies (and power-of-two channel blocks, which give the
    /// results a stride) and picks whatever the cost model prefers.
    pub fn new(params: &HeParams, kind: LayerKind, opts: &PlanOptions) -> Result<Self, HeError> {
        opts.validate()?;
        let geom = kind.geometry()?;
        let n = params.degree();
        geom.validate(n)?;
        let packing_on = params.reply_packing_levels() > 0;
        let mut best: Option<(f64, Blocking, bool)> = None;
        let hs = tile_sizes(geom.out_h(), geom.kernel_h, n);
        let ws = tile_sizes(geom.out_w(), geom.kernel_w, n);
        for &hb in &hs {
            for &wb in ws.iter().filter(|&&wb| hb * wb <= n) {
                let cap_c = n / (hb * wb);
                let mut cbs = distinct_ceils(geom.channels, cap_c);
                if packing_on {
                    // Power-of-two channel blocks give the results a stride (up to
                    // the first one that holds all channels).
                    let mut p = 2;
                    while p <= cap_c && p < 2 * geom.channels {
                        if !cbs.contains(&p) {
                            cbs.push(p);
                        }
                        p *= 2;
                    }
                }
                for cb in cbs {
                    let cap_n = if geom.depthwise {
                        n / (hb * wb * cb * cb)
                    } else {
                        n / (hb * wb * cb)
                    };
                    if cap_n == 0 {
                        continue;
                    }
                    for nb in distinct_ceils(geom.batch, cap_n) {
                        let mb = if geom.depthwise {
                            cb
                        } else {
                            let cap_m = (n / (hb * wb * cb * nb)).min(geom.filters);
                            if cap_m == 0 {
                                continue;
                            }
                            geom.filters.div_ceil(geom.filters.div_ceil(cap_m))
                        };
                        let blk = Blocking {
                            images: nb,
                            channels: cb,
                            filters: mb,
                            height: hb,
                            width: wb,
                        };
                        let mut consider = |pack: Option<&ReplyPacking>| {
                            let stats = Self::estimate(params, &geom, &blk, opts, pack);
                            let better = match &best {
                                None => true,
                                Some((c, _, _)) => stats.est_seconds < *c,
                            };
                            if better {
                                best = Some((stats.est_seconds, blk, pack.is_some()));
                            }
                        };
                        consider(None);
                        if packing_on && let Some(pk) = Self::packing_for(params, &geom, &blk) {
                            consider(Some(&pk));
                        }
                    }
                }
            }
        }
        let Some((_, blk, pack)) = best else {
            return Err(HeError::InvalidShape(format!(
                "no blocking fits N = {n} for {geom:?}"
            )));
        };
        Self::with_blocking_packing(params, kind, blk, pack, opts)
    }

    /// Plans a fully connected layer.
    pub fn fc(params: &HeParams, shape: FcShape, opts: &PlanOptions) -> Result<Self, HeError> {
        LinearPlan::new(params, LayerKind::Fc(shape), opts)
    }

    /// Plans a convolution layer.
    pub fn conv2d(
        params: &HeParams,
        shape: Conv2dShape,
        opts: &PlanOptions,
    ) -> Result<Self, HeError> {
        LinearPlan::new(params, LayerKind::Conv2d(shape), opts)
    }

    /// Plans a batch-norm / per-channel scaling layer.
    pub fn batch_norm(
        params: &HeParams,
        shape: BatchNormShape,
        opts: &PlanOptions,
    ) -> Result<Self, HeError> {
        LinearPlan::new(params, LayerKind::BatchNorm(shape), opts)
    }

    /// Plans `kind` with a given blocking (for experiments; [`LinearPlan::new`] picks
    /// one). The replies are packed whenever the parameters enable packing and the
    /// blocking's results have a stride (see [`crate::pack`]).
    pub fn with_blocking(
        params: &HeParams,
        kind: LayerKind,
        blk: Blocking,
        opts: &PlanOptions,
    ) -> Result<Self, HeError> {
        Self::with_blocking_packing(params, kind, blk, true, opts)
    }

    /// [`LinearPlan::with_blocking`] with packing requested (`pack`, effective only if
    /// the parameters enable packing and the layout allows it) or refused.
    pub fn with_blocking_packing(
        params: &HeParams,
        kind: LayerKind,
        blk: Blocking,
        pack: bool,
        opts: &PlanOptions,
    ) -> Result<Self, HeError> {
        opts.validate()?;
        let geom = kind.geometry()?;
        let n = params.degree();
        geom.validate(n)?;
        let bad = |s: String| Err(HeError::InvalidShape(s));
        if blk.images == 0 || blk.channels == 0 || blk.filters == 0 {
            return bad(format!("empty block {blk:?}"));
        }
        if blk.height < geom.kernel_h || blk.width < geom.kernel_w {
            return bad(format!(
                "tile {}x{} smaller than the kernel",
                blk.height, blk.width
            ));
        }
        if geom.depthwise && blk.filters != blk.channels {
            return bad("a depthwise blocking needs as many filters as channels per block".into());
        }
        let vol = [blk.images, blk.channels, blk.filters, blk.height, blk.width]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        if vol.is_none_or(|v| v > n) {
            return bad(format!("block {blk:?} exceeds N = {n}"));
        }
        let counts = Counts::new(&geom, &blk);
        if counts.in_cts > u32::MAX as usize || counts.out_cts > u32::MAX as usize {
            return bad("too many ciphertexts for one call".into());
        }
        let fan_in = blk.filters * geom.taps;
        let packing = if pack && params.reply_packing_levels() > 0 {
            Self::packing_for(params, &geom, &blk)
        } else {
            None
        };
        let noise = match &packing {
            None => NoiseAnalysis::new(params, fan_in)?,
            Some(pk) => NoiseAnalysis::with_extra_noise(
                params,
                fan_in,
                2f64.powf(pk.key_switch_noise_log2),
            )?,
        };
        let stats = Self::estimate(params, &geom, &blk, opts, packing.as_ref());
        let mut plan = LinearPlan {
            params: params.clone(),
            kind,
            layout: Layout { geom, blk, counts },
            noise,
            stats,
            out_offsets: Vec::new(),
            packing,
            reply_offsets: Vec::new(),
        };
        let mut offsets = Vec::with_capacity(counts.out_cts + 1);
        offsets.push(0);
        let mut acc = 0;
        for ct in 0..counts.out_cts {
            acc += plan.layout.out_count(ct);
            offsets.push(acc);
        }
        plan.out_offsets = offsets;
        if let Some(pk) = plan.packing {
            // The formula of `packing_for` against the actual result coefficients.
            let (stride, offset) = plan.layout.scan_stride(n);
            if stride < pk.stride || offset % pk.stride != pk.offset {
                return Err(HeError::Internal(format!(
                    "packing layout mismatch: stride {stride} offset {offset} vs {pk:?}"
                )));
            }
            let mut offsets = Vec::with_capacity(pk.reply_cts + 1);
            offsets.push(0);
            for r in 0..pk.reply_cts {
                let (first, count) = pk.leaves_of(r, counts.out_cts);
                offsets.push(plan.out_offsets[first + count]);
                debug_assert!(offsets[r + 1] >= offsets[r]);
            }
            plan.reply_offsets = offsets;
        } else {
            plan.reply_offsets = plan.out_offsets.clone();
        }
        // Exact reply size (each part is padded to a byte).
        plan.stats.bytes_down = plan.reply_len() + FRAME_HEADER_BYTES;
        Ok(plan)
    }

    /// The stride and offset of the results of a blocking (from the generators of
    /// the coefficient differences, see [`crate::plan`]'s encoding) and the packing
    /// it allows with the parameters' levels, if its noise fits.
    fn packing_for(params: &HeParams, g: &Geometry, b: &Blocking) -> Option<ReplyPacking> {
        let levels = params.reply_packing_levels();
        if levels == 0 {
            return None;
        }
        let c = Counts::new(g, b);
        let n = params.degree();
        let hw = b.height * b.width;
        let s = b.channels * hw;
        let o = (b.channels - 1) * hw + (g.kernel_h - 1) * b.width + (g.kernel_w - 1);
        let gens = [
            (b.filters.min(g.filters) > 1).then_some(b.images * s),
            (b.images.min(g.batch) > 1).then_some(s),
            (c.th.min(g.out_h()) > 1).then_some(b.width),
            (c.tw.min(g.out_w()) > 1).then_some(1),
        ];
        let stride = crate::pack::stride_of(gens.into_iter().flatten(), n);
        let pk = ReplyPacking::new(params, c.out_cts, stride, o % stride, levels)?;
        let fan_in = b.filters * g.taps;
        NoiseAnalysis::with_extra_noise(params, fan_in, 2f64.powf(pk.key_switch_noise_log2))
            .ok()?;
        Some(pk)
    }

    fn estimate(
        params: &HeParams,
        g: &Geometry,
        b: &Blocking,
        opts: &PlanOptions,
        pack: Option<&ReplyPacking>,
    ) -> PlanStats {
        let c = Counts::new(g, b);
        let n = params.degree();
        let l = params.primes().len() as f64;
        let dec = params.inner.dec_primes as f64;
        let nf = n as f64;
        let log_scale = (params.inner.log_n as f64) / 12.0;
        let ntt = nf * cost::NTT * log_scale; // one residue block
        let mac = nf * cost::MAC;
        let (weight_polys, products) = if g.depthwise {
            (c.mblk, c.out_cts)
        } else {
            (c.mblk * c.cblk, c.out_cts * c.cblk)
        };
        let cache_bytes = weight_polys * params.primes().len() * n * 8;
        let weights_cached = cache_bytes <= opts.weight_cache_bytes;
        let reply_cts = pack.map_or(c.out_cts, |p| p.reply_cts);
        let treatment = match pack {
            None => c.out_cts as f64 * (3.0 * l * ntt + nf * cost::FINALIZE),
            Some(p) => {
                // Leaves: u and e1 transforms, the re-randomisation, the scaling.
                let leaf = 2.0 * l * ntt + 2.0 * l * mac + 2.0 * l * nf * cost::SCALE;
                // A merge: shift, sums, automorphism, key switch (L inverse and
                // sum_G (L - |G|) forward transforms, 2 L products per digit).
                let digits = params.inner.ks_groups.len() as f64;
                let fwd = digits * l - l;
                let merge = (l + fwd) * ntt
                    + 2.0 * l * digits * mac
                    + 2.0 * l * nf * (2.0 * cost::SCALE + cost::PERMUTE + 3.0 * cost::ADD);
                c.out_cts as f64 * leaf
                    + p.key_switches as f64 * merge
                    + p.reply_cts as f64 * (2.0 * l * ntt + nf * cost::FINALIZE)
            }
        };
        let server = products as f64 * 2.0 * l * mac
            + if weights_cached {
                cache_bytes as f64 * cost::DRAM_BYTE
            } else {
                weight_polys as f64 * (l * ntt + nf * cost::KERNEL_ENCODE)
            }
            + treatment
            + c.in_cts as f64 * (l * ntt + l * nf * cost::EXPAND + nf * cost::ENCODE);
        let client = c.in_cts as f64 * (l * ntt + l * nf * cost::EXPAND + nf * cost::ENCODE)
            + reply_cts as f64 * (2.0 * dec * ntt + nf * cost::DECRYPT);
        let outputs = g.batch * g.filters * g.out_h() * g.out_w();
        let server = server + outputs as f64 * cost::PER_OUTPUT_SERVER;
        let client = client + outputs as f64 * cost::PER_OUTPUT_CLIENT;
        let k_a = params.ring().bits() + params.reply_a_extra_bits();
        let k_b = params.ring().bits() + params.reply_b_extra_bits();
        let bytes_up = 5 + 32 + c.in_cts * params.query_poly_bytes() + FRAME_HEADER_BYTES;
        let bytes_down = 5
            + reply_cts * (n * k_a as usize).div_ceil(8)
            + (outputs * k_b as usize).div_ceil(8)
            + FRAME_HEADER_BYTES;
        let bytes_down_uncompressed = 5 + reply_cts * 2 * params.poly_bytes() + FRAME_HEADER_BYTES;
        let threads = opts.threads.max(1) as f64;
        let est_seconds = (server + client) * 1e-9 / threads
            + (bytes_up + bytes_down) as f64 / opts.bandwidth.max(1.0);
        PlanStats {
            input_cts: c.in_cts,
            output_cts: reply_cts,
            weight_polys,
            products,
            outputs,
            bytes_up,
            bytes_down,
            bytes_down_uncompressed,
            weights_cached,
            est_seconds,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &HeParams {
        &self.params
    }

    /// The layer.
    pub fn kind(&self) -> &LayerKind {
        &self.kind
    }

    /// The canonical geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.layout.geom
    }

    /// The blocking.
    pub fn blocking(&self) -> &Blocking {
        &self.layout.blk
    }

    /// Sizes and estimated costs.
    pub fn stats(&self) -> &PlanStats {
        &self.stats
    }

    /// The noise budget of the replies.
    pub fn noise(&self) -> &NoiseAnalysis {
        &self.noise
    }

    /// The most weight-polynomial coefficients a plan of this layer sums into
    /// one output coefficient at **any** batch size and blocking: a block
    /// holds at most `min(filters, N)` filters of `taps` coefficients each.
    /// With [`NoiseAnalysis::any_batch`] it bounds every plan's noise.
    pub fn max_noise_fan_in(&self) -> usize {
        let g = &self.layout.geom;
        g.filters.min(self.params.degree()).saturating_mul(g.taps)
    }

    /// Elements of the input tensor (each party's share).
    pub fn input_len(&self) -> usize {
        self.kind.input_len()
    }

    /// Elements of the output tensor (each party's share).
    pub fn output_len(&self) -> usize {
        self.kind.output_len()
    }

    /// Input ciphertexts per call.
    pub fn input_cts(&self) -> usize {
        self.layout.counts.in_cts
    }

    /// Reply ciphertexts per call (after packing, if the plan packs).
    pub fn output_cts(&self) -> usize {
        self.reply_offsets.len() - 1
    }

    /// Flooded coefficients one call reveals to the client: the `b` values of
    /// every reply ciphertext (the results the client decrypts; the `a` parts
    /// are pseudorandom and not counted). The unit of
    /// [`crate::SessionFlooding::max_revealed`].
    pub fn revealed_coefficients(&self) -> usize {
        self.reply_offsets.last().copied().unwrap_or(0)
    }

    /// How the replies are packed, or `None` if every result ciphertext is sent
    /// on its own (see [`crate::pack`]).
    pub fn packing(&self) -> Option<&ReplyPacking> {
        self.packing.as_ref()
    }

    /// Result ciphertexts computed per call (before packing).
    pub fn result_cts(&self) -> usize {
        self.layout.counts.out_cts
    }

    /// Results carried by result ciphertext `ct`.
    #[cfg(test)]
    pub(crate) fn out_values(&self, ct: usize) -> usize {
        self.out_offsets[ct + 1] - self.out_offsets[ct]
    }

    /// Bytes of the `a` part and of the `b` part of reply ciphertext `ct` on the
    /// wire (each bit-packed and padded to a byte, see [`crate::wire`]).
    pub(crate) fn reply_segment(&self, ct: usize) -> (usize, usize) {
        let p = &self.params;
        let l = p.ring().bits();
        let packed = |count: usize, bits: u32| (count * bits as usize).div_ceil(8);
        (
            packed(p.degree(), l + p.reply_a_extra_bits()),
            packed(self.reply_values(ct), l + p.reply_b_extra_bits()),
        )
    }

    /// The exact length of the reply message ([`crate::Reply`]): a 5-byte
    /// header, then every reply ciphertext's segments.
    pub(crate) fn reply_len(&self) -> usize {
        5 + (0..self.output_cts())
            .map(|ct| {
                let (a, b) = self.reply_segment(ct);
                a + b
            })
            .sum::<usize>()
    }

    /// Reply `b` values in reply ciphertext `r`.
    pub(crate) fn reply_values(&self, r: usize) -> usize {
        self.reply_offsets[r + 1] - self.reply_offsets[r]
    }

    /// Calls `f(coefficient, output index)` for every result carried by reply
    /// ciphertext `r`, in wire order: its result ciphertexts in order, each in
    /// `Layout::for_each_output` order; packed, leaf `j` of the group moves from
    /// coefficient `c` to `c - offset + j` (see [`crate::pack`]).
    pub(crate) fn for_each_reply_value(&self, r: usize, mut f: impl FnMut(usize, usize)) {
        match &self.packing {
            None => self.layout.for_each_output(r, f),
            Some(pk) => {
                let (first, count) = pk.leaves_of(r, self.layout.counts.out_cts);
                for j in 0..count {
                    self.layout
                        .for_each_output(first + j, |coef, idx| f(coef - pk.offset + j, idx));
                }
            }
        }
    }

    /// The canonical input tensor `X[n][c][h][w]` of a share of the layer input.
    pub(crate) fn canonical_input<'a>(&self, x: &'a [u64]) -> Cow<'a, [u64]> {
        match &self.kind {
            LayerKind::Conv2d(s) => s.canonical_input(x),
            LayerKind::Fc(_) | LayerKind::BatchNorm(_) => Cow::Borrowed(x),
        }
    }
}

#[cfg(test)]
mod tests;
