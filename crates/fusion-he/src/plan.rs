//! Layer plans: the canonical convolution every linear layer reduces to, its
//! blocking into polynomials (Cheetah's coefficient encoding, generalised to a
//! batch of images and several filters per polynomial), and the planner that picks
//! the blocking.
//!
//! # The canonical problem
//!
//! Every layer is reduced to a batched, stride-1, unpadded 2-D cross-correlation
//! ([`Geometry`]): input `X[n][c][h][w]`, kernel `K[m][c][kh][kw]`, output
//! `Y[n][m][i][j] = sum_{c,a,b} X[n][c][i+a][j+b] K[m][c][a][b]`, all in `Z_{2^l}`.
//! A fully connected layer is the case `h = w = kh = kw = 1`; batch norm is the
//! depthwise case (`K[m][c] = 0` for `m != c`); strides and padding are removed by a
//! public rearrangement of the input (see [`crate::conv2d`]).
//!
//! # The encoding (Cheetah, Sec. 4, generalised)
//!
//! A [`Blocking`] cuts the problem into blocks of `nb` images, `cb` channels,
//! `hb x wb` spatial tiles (overlapping by `kh - 1`, `kw - 1`) and `mb` filters,
//! with `nb * mb * cb * hb * wb <= N`. With `S = cb hb wb` and
//! `O = (cb - 1) hb wb + (kh - 1) wb + (kw - 1)`:
//!
//! * input block (client): `X[beta][c][u][v]` at `X^(beta S + c hb wb + u wb + v)`;
//! * kernel block (server): `K[mu][c][a][b]` at `X^(mu nb S + O - c hb wb - a wb - b)`;
//! * the product holds `Y[beta][mu][i][j]` (`i <= hb - kh`, `j <= wb - kw`) at
//!   `X^(mu nb S + beta S + O + i wb + j)`.
//!
//! *Why no other term lands there.* A product term of `X[beta'][c][u][v]` and
//! `K[mu'][c'][a][b]` sits at `(beta' - beta) S + (mu' - mu) nb S + (c - c') hb wb +
//! (u - a - i) wb + (v - b - j)` from the target; `|v - b - j| < wb` forces
//! `v = b + j`, then `|u - a - i| < hb` forces `u = a + i`, `|c - c'| < cb` forces
//! `c = c'`, and `|beta' - beta| < nb` forces `beta' = beta, mu' = mu`. Exponents reach
//! at most `nb mb S - 1 + O < N + O`, so the terms that wrap around `X^N = -1` land
//! below `O`, under every target. With `nb = mb = 1` this is Cheetah's HomConv; with
//! `hb = wb = kh = kw = 1`, `nb = 1` it is Cheetah's HomFC; `nb > 1` batches samples
//! (a matrix product) and `mb > 1` packs several filters per reply. No rotations.
//!
//! Per block triple the server multiplies one input ciphertext by one kernel
//! polynomial and sums over channel blocks; each output ciphertext carries
//! `nb mb th tw` results (`th = hb - kh + 1`, `tw = wb - kw + 1`).

use std::borrow::Cow;

use crate::HeError;
use crate::batchnorm::BatchNormShape;
use crate::conv2d::Conv2dShape;
use crate::fc::FcShape;
use crate::noise::NoiseAnalysis;
use crate::pack::ReplyPacking;
use crate::params::HeParams;

/// The canonical batched, stride-1, unpadded convolution (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels (filters).
    pub filters: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Depthwise: `filters == channels` and filter `m` only reads channel `m`.
    pub depthwise: bool,
    /// Upper bound on non-zero kernel entries per filter (for the noise analysis).
    pub taps: usize,
}

impl Geometry {
    /// Output height `height - kernel_h + 1`.
    pub fn out_h(&self) -> usize {
        self.height + 1 - self.kernel_h
    }

    /// Output width `width - kernel_w + 1`.
    pub fn out_w(&self) -> usize {
        self.width + 1 - self.kernel_w
    }

    fn validate(&self, n: usize) -> Result<(), HeError> {
        let bad = |s: String| Err(HeError::InvalidShape(s));
        if self.batch == 0 || self.channels == 0 || self.filters == 0 {
            return bad(format!("empty dimension in {self:?}"));
        }
        if self.kernel_h == 0
            || self.kernel_w == 0
            || self.kernel_h > self.height
            || self.kernel_w > self.width
        {
            return bad(format!(
                "kernel {}x{} does not fit {}x{}",
                self.kernel_h, self.kernel_w, self.height, self.width
            ));
        }
        if self.depthwise && self.filters != self.channels {
            return bad("depthwise layer needs as many filters as channels".into());
        }
        if self.kernel_h * self.kernel_w > n {
            return bad(format!(
                "kernel {}x{} exceeds N = {n}",
                self.kernel_h, self.kernel_w
            ));
        }
        let big = [
            self.batch,
            self.channels,
            self.height,
            self.width,
            self.filters,
        ];
        if big.iter().any(|&d| d > 1 << 24)
            || big
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_none()
        {
            return bad("dimensions too large".into());
        }
        Ok(())
    }
}

/// How a [`Geometry`] is cut into polynomials (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Blocking {
    /// Images per polynomial (`nb`).
    pub images: usize,
    /// Channels per polynomial (`cb`).
    pub channels: usize,
    /// Filters per kernel polynomial (`mb`).
    pub filters: usize,
    /// Tile height (`hb`).
    pub height: usize,
    /// Tile width (`wb`).
    pub width: usize,
}

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
    pub(crate) geom: Geometry,
    pub(crate) blk: Blocking,
    pub(crate) counts: Counts,
    pub(crate) noise: NoiseAnalysis,
    pub(crate) stats: PlanStats,
    /// Results per result ciphertext (prefix sums; `len = result cts + 1`).
    pub(crate) out_offsets: Vec<usize>,
    /// Response packing, if the plan packs.
    pub(crate) packing: Option<ReplyPacking>,
    /// Reply `b` values per reply ciphertext (prefix sums; `len = output_cts + 1`).
    pub(crate) reply_offsets: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) nblk: usize,
    pub(crate) cblk: usize,
    pub(crate) mblk: usize,
    pub(crate) th: usize,
    pub(crate) tw: usize,
    pub(crate) n_th: usize,
    pub(crate) n_tw: usize,
    pub(crate) in_cts: usize,
    pub(crate) out_cts: usize,
}

impl Counts {
    fn new(g: &Geometry, b: &Blocking) -> Self {
        let th = b.height + 1 - g.kernel_h;
        let tw = b.width + 1 - g.kernel_w;
        let nblk = g.batch.div_ceil(b.images);
        let cblk = g.channels.div_ceil(b.channels);
        let mblk = g.filters.div_ceil(b.filters);
        let n_th = g.out_h().div_ceil(th);
        let n_tw = g.out_w().div_ceil(tw);
        Counts {
            nblk,
            cblk,
            mblk,
            th,
            tw,
            n_th,
            n_tw,
            in_cts: nblk * cblk * n_th * n_tw,
            out_cts: nblk * mblk * n_th * n_tw,
        }
    }
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
            geom,
            blk,
            counts,
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
            acc += plan.out_count(ct);
            offsets.push(acc);
        }
        plan.out_offsets = offsets;
        if let Some(pk) = plan.packing {
            // The formula of `packing_for` against the actual result coefficients.
            let (stride, offset) = plan.scan_stride();
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
        plan.stats.bytes_down = crate::wire::Reply::expected_len(&plan) + 8;
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

    /// Stride (largest power of two dividing every difference) and offset of the
    /// result coefficients, from the coefficients themselves.
    fn scan_stride(&self) -> (usize, usize) {
        let n = self.params.degree();
        let mut first = None;
        let mut tz = usize::BITS;
        for ct in 0..self.counts.out_cts {
            self.for_each_output(ct, |coef, _| match first {
                None => first = Some(coef),
                Some(f) => {
                    let d = coef.abs_diff(f);
                    if d > 0 {
                        tz = tz.min(d.trailing_zeros());
                    }
                }
            });
        }
        let stride = if tz >= n.trailing_zeros() { n } else { 1 << tz };
        (stride, first.unwrap_or(0) % stride)
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
        let bytes_up = 5 + 32 + c.in_cts * params.poly_bytes() + 8;
        let bytes_down = 5
            + reply_cts * (n * k_a as usize).div_ceil(8)
            + (outputs * k_b as usize).div_ceil(8)
            + 8;
        let bytes_down_uncompressed = 5 + reply_cts * 2 * params.poly_bytes() + 8;
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
        &self.geom
    }

    /// The blocking.
    pub fn blocking(&self) -> &Blocking {
        &self.blk
    }

    /// Sizes and estimated costs.
    pub fn stats(&self) -> &PlanStats {
        &self.stats
    }

    /// The noise budget of the replies.
    pub fn noise(&self) -> &NoiseAnalysis {
        &self.noise
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
        self.counts.in_cts
    }

    /// Reply ciphertexts per call (after packing, if the plan packs).
    pub fn output_cts(&self) -> usize {
        self.reply_offsets.len() - 1
    }

    /// How the replies are packed, or `None` if every result ciphertext is sent
    /// on its own (see [`crate::pack`]).
    pub fn packing(&self) -> Option<&ReplyPacking> {
        self.packing.as_ref()
    }

    /// Result ciphertexts computed per call (before packing).
    pub fn result_cts(&self) -> usize {
        self.counts.out_cts
    }

    /// Results carried by result ciphertext `ct`.
    #[cfg(test)]
    pub(crate) fn out_values(&self, ct: usize) -> usize {
        self.out_offsets[ct + 1] - self.out_offsets[ct]
    }

    /// Reply `b` values in reply ciphertext `r`.
    pub(crate) fn reply_values(&self, r: usize) -> usize {
        self.reply_offsets[r + 1] - self.reply_offsets[r]
    }

    /// Calls `f(coefficient, output index)` for every result carried by reply
    /// ciphertext `r`, in wire order: its result ciphertexts in order, each in
    /// [`LinearPlan::for_each_output`] order; packed, leaf `j` of the group moves from
    /// coefficient `c` to `c - offset + j` (see [`crate::pack`]).
    pub(crate) fn for_each_reply_value(&self, r: usize, mut f: impl FnMut(usize, usize)) {
        match &self.packing {
            None => self.for_each_output(r, f),
            Some(pk) => {
                let (first, count) = pk.leaves_of(r, self.counts.out_cts);
                for j in 0..count {
                    self.for_each_output(first + j, |coef, idx| f(coef - pk.offset + j, idx));
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

    /// `(nblk, cblk, ti, tj)` of input ciphertext `ct`.
    pub(crate) fn in_index(&self, ct: usize) -> (usize, usize, usize, usize) {
        let c = &self.counts;
        let tj = ct % c.n_tw;
        let r = ct / c.n_tw;
        let ti = r % c.n_th;
        let r = r / c.n_th;
        (r / c.cblk, r % c.cblk, ti, tj)
    }

    /// Input ciphertext index of `(nblk, cblk, ti, tj)`.
    pub(crate) fn in_ct(&self, nblk: usize, cblk: usize, ti: usize, tj: usize) -> usize {
        let c = &self.counts;
        ((nblk * c.cblk + cblk) * c.n_th + ti) * c.n_tw + tj
    }

    /// `(nblk, mblk, ti, tj)` of output ciphertext `ct`.
    pub(crate) fn out_index(&self, ct: usize) -> (usize, usize, usize, usize) {
        let c = &self.counts;
        let tj = ct % c.n_tw;
        let r = ct / c.n_tw;
        let ti = r % c.n_th;
        let r = r / c.n_th;
        (r / c.mblk, r % c.mblk, ti, tj)
    }

    /// Writes the `N` plaintext coefficients of input ciphertext `ct` from the
    /// canonical input `xc` (zeros elsewhere).
    pub(crate) fn encode_input(&self, xc: &[u64], ct: usize, out: &mut [u64]) {
        let g = &self.geom;
        let b = &self.blk;
        let (nblk, cblk, ti, tj) = self.in_index(ct);
        out.fill(0);
        let hw = b.height * b.width;
        let s = b.channels * hw;
        let col0 = tj * self.counts.tw;
        let ncols = b.width.min(g.width - col0);
        for beta in 0..b.images {
            let img = nblk * b.images + beta;
            if img >= g.batch {
                break;
            }
            for c in 0..b.channels {
                let ch = cblk * b.channels + c;
                if ch >= g.channels {
                    break;
                }
                for u in 0..b.height {
                    let row = ti * self.counts.th + u;
                    if row >= g.height {
                        break;
                    }
                    let src = ((img * g.channels + ch) * g.height + row) * g.width + col0;
                    let dst = beta * s + c * hw + u * b.width;
                    out[dst..dst + ncols].copy_from_slice(&xc[src..src + ncols]);
                }
            }
        }
    }

    /// Writes kernel polynomial `(mblk, cblk)` from the canonical kernel
    /// `K[m][c][kh][kw]` (dense) or the per-channel scales (depthwise).
    /// Returns `false` if the polynomial is zero.
    pub(crate) fn encode_kernel(
        &self,
        kernel: &[u64],
        mblk: usize,
        cblk: usize,
        out: &mut [u64],
    ) -> bool {
        let g = &self.geom;
        let b = &self.blk;
        out.fill(0);
        let hw = b.height * b.width;
        let s = b.channels * hw;
        let o = (b.channels - 1) * hw + (g.kernel_h - 1) * b.width + (g.kernel_w - 1);
        let mut nonzero = false;
        for mu in 0..b.filters {
            let f = mblk * b.filters + mu;
            if f >= g.filters {
                break;
            }
            for c in 0..b.channels {
                let ch = cblk * b.channels + c;
                if ch >= g.channels {
                    break;
                }
                if g.depthwise && ch != f {
                    continue;
                }
                for a in 0..g.kernel_h {
                    for bb in 0..g.kernel_w {
                        let v = if g.depthwise {
                            kernel[f]
                        } else {
                            kernel[((f * g.channels + ch) * g.kernel_h + a) * g.kernel_w + bb]
                        };
                        let idx = mu * b.images * s + o - c * hw - a * b.width - bb;
                        out[idx] = v;
                        nonzero |= v != 0;
                    }
                }
            }
        }
        nonzero
    }

    /// Whether kernel polynomial `(mblk, cblk)` can be non-zero (depthwise layers
    /// only pair a filter block with the channel block holding the same indices).
    pub(crate) fn kernel_block_used(&self, mblk: usize, cblk: usize) -> bool {
        if !self.geom.depthwise {
            return true;
        }
        let b = &self.blk;
        let (f0, f1) = (
            mblk * b.filters,
            ((mblk + 1) * b.filters).min(self.geom.filters),
        );
        let (c0, c1) = (
            cblk * b.channels,
            ((cblk + 1) * b.channels).min(self.geom.channels),
        );
        f0 < c1 && c0 < f1
    }

    fn out_count(&self, ct: usize) -> usize {
        let g = &self.geom;
        let b = &self.blk;
        let c = &self.counts;
        let (nblk, mblk, ti, tj) = self.out_index(ct);
        let imgs = b.images.min(g.batch - nblk * b.images);
        let fils = b.filters.min(g.filters - mblk * b.filters);
        let rows = c.th.min(g.out_h() - ti * c.th);
        let cols = c.tw.min(g.out_w() - tj * c.tw);
        imgs * fils * rows * cols
    }

    /// Calls `f(coefficient, output index)` for every result carried by output
    /// ciphertext `ct`, in wire order.
    pub(crate) fn for_each_output(&self, ct: usize, mut f: impl FnMut(usize, usize)) {
        let g = &self.geom;
        let b = &self.blk;
        let c = &self.counts;
        let (nblk, mblk, ti, tj) = self.out_index(ct);
        let hw = b.height * b.width;
        let s = b.channels * hw;
        let o = (b.channels - 1) * hw + (g.kernel_h - 1) * b.width + (g.kernel_w - 1);
        let (ho, wo) = (g.out_h(), g.out_w());
        for mu in 0..b.filters {
            let fil = mblk * b.filters + mu;
            if fil >= g.filters {
                break;
            }
            for beta in 0..b.images {
                let img = nblk * b.images + beta;
                if img >= g.batch {
                    break;
                }
                for i in 0..c.th {
                    let row = ti * c.th + i;
                    if row >= ho {
                        break;
                    }
                    for j in 0..c.tw {
                        let col = tj * c.tw + j;
                        if col >= wo {
                            break;
                        }
                        let coef = mu * b.images * s + beta * s + o + i * b.width + j;
                        let idx = ((img * g.filters + fil) * ho + row) * wo + col;
                        f(coef, idx);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ceils_lists_every_block_size() {
        assert_eq!(distinct_ceils(10, 100), vec![10, 5, 4, 3, 2, 1]);
        assert_eq!(distinct_ceils(7, 3), vec![3, 2, 1]);
        assert_eq!(distinct_ceils(1, 1), vec![1]);
        for total in 1..200 {
            let v = distinct_ceils(total, usize::MAX);
            for k in 1..=total {
                assert!(v.contains(&total.div_ceil(k)));
            }
        }
    }

    use crate::params::ParamsBuilder;
    use crate::{BatchNormShape, Conv2dShape, Padding, reference};
    use fusion_core::ring::Ring;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    /// Negacyclic product over `Z_{2^64}` (then reduced mod `2^l` by the caller).
    fn negacyclic_wrapping(a: &[u64], b: &[u64]) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for (i, &x) in a.iter().enumerate() {
            if x == 0 {
                continue;
            }
            for (j, &y) in b.iter().enumerate() {
                if y == 0 {
                    continue;
                }
                let p = x.wrapping_mul(y);
                if i + j < n {
                    out[i + j] = out[i + j].wrapping_add(p);
                } else {
                    out[i + j - n] = out[i + j - n].wrapping_sub(p);
                }
            }
        }
        out
    }

    /// Encodes with `plan`, multiplies the plaintext polynomials naively, decodes,
    /// and returns the layer output (server weights `kernel` in canonical form).
    fn encode_multiply_decode(plan: &LinearPlan, x: &[u64], kernel: &[u64]) -> Vec<u64> {
        let n = plan.params.degree();
        let ring = plan.params.ring();
        let c = plan.counts;
        let xc = plan.canonical_input(x).into_owned();
        let mut out = vec![u64::MAX; plan.output_len()];
        for ct in 0..c.out_cts {
            let (nb, m, ti, tj) = plan.out_index(ct);
            let mut acc = vec![0u64; n];
            for cb in 0..c.cblk {
                let mut w = vec![0u64; n];
                if !plan.kernel_block_used(m, cb) || !plan.encode_kernel(kernel, m, cb, &mut w) {
                    continue;
                }
                let mut xin = vec![0u64; n];
                let i = plan.in_ct(nb, cb, ti, tj);
                assert_eq!(plan.in_index(i), (nb, cb, ti, tj));
                plan.encode_input(&xc, i, &mut xin);
                for (a, p) in acc.iter_mut().zip(negacyclic_wrapping(&xin, &w)) {
                    *a = a.wrapping_add(p);
                }
            }
            let mut count = 0;
            plan.for_each_output(ct, |coef, idx| {
                assert_eq!(out[idx], u64::MAX, "output {idx} produced twice");
                out[idx] = ring.reduce(acc[coef]);
                count += 1;
            });
            assert_eq!(count, plan.out_values(ct));
        }
        assert!(
            out.iter().all(|&v| v != u64::MAX),
            "an output was never produced"
        );
        out
    }

    fn small_params() -> HeParams {
        ParamsBuilder::new(Ring::new(16).unwrap(), 10, vec![30, 30]).build_unchecked()
    }

    fn random(ring: Ring, len: usize, rng: &mut ChaCha20Rng) -> Vec<u64> {
        (0..len).map(|_| ring.random(rng)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn conv_encoding_matches_naive_convolution(
            batch in 1usize..=3, ch in 1usize..=4, h in 1usize..=9, w in 1usize..=9, filters in 1usize..=4,
            k in 1usize..=3, stride in 1usize..=2, pad in 0usize..=2,
            nb in 1usize..=3, cb in 1usize..=4, mb in 1usize..=4, hb in 1usize..=9, wb in 1usize..=9, seed in any::<u64>(),
        ) {
            let params = small_params();
            let ring = params.ring();
            let shape = Conv2dShape::new(batch, ch, h, w, filters, k, stride, Padding::Explicit { top: pad, bottom: pad, left: pad, right: 0 });
            let blk = Blocking { images: nb, channels: cb, filters: mb, height: hb, width: wb };
            let plan = LinearPlan::with_blocking(&params, LayerKind::Conv2d(shape), blk, &PlanOptions::default());
            // Shapes or blockings that do not fit are rejected, never mis-planned.
            prop_assume!(plan.is_ok());
            let plan = plan.unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let x = random(ring, shape.input_len(), &mut rng);
            let wt = random(ring, shape.weight_len(), &mut rng);
            let got = encode_multiply_decode(&plan, &x, &shape.canonical_kernel(&wt));
            prop_assert_eq!(got, reference::conv2d(ring, &shape, &x, &wt, None));
        }

        #[test]
        fn depthwise_encoding_matches_naive_scaling(
            batch in 1usize..=3, ch in 1usize..=6, h in 1usize..=5, w in 1usize..=5,
            nb in 1usize..=3, cb in 1usize..=4, wb in 1usize..=25, seed in any::<u64>(),
        ) {
            let params = small_params();
            let ring = params.ring();
            let shape = BatchNormShape::new(batch, ch, h, w);
            let blk = Blocking { images: nb, channels: cb, filters: cb, height: 1, width: wb };
            let plan = LinearPlan::with_blocking(&params, LayerKind::BatchNorm(shape), blk, &PlanOptions::default());
            prop_assume!(plan.is_ok());
            let plan = plan.unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let x = random(ring, shape.len(), &mut rng);
            let scale = random(ring, ch, &mut rng);
            let got = encode_multiply_decode(&plan, &x, &scale);
            prop_assert_eq!(got, reference::batch_norm(ring, &shape, &x, &scale, None));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// With packing, the stride formula agrees with the actual coefficients
        /// (otherwise planning fails) and every reply value of a packed ciphertext
        /// has its own coefficient below N, each output exactly once.
        #[test]
        fn packed_reply_layouts_are_injective(
            batch in 1usize..=9, ch in 1usize..=40, hw in 1usize..=4, filters in 1usize..=12,
            k in 1usize..=3, full in any::<bool>(), nb in 1usize..=6, cb in 1usize..=16, mb in 1usize..=6, hb in 1usize..=4,
        ) {
            let params = crate::Preset::N4096
                .builder(Ring::new(37).unwrap())
                .reply_packing(6)
                .build()
                .unwrap();
            let n = params.degree();
            let k = if full { hw } else { k.min(hw) };
            let shape = Conv2dShape::new(batch, ch, hw, hw, filters, k, 1, Padding::Valid);
            let blk = Blocking { images: nb, channels: cb, filters: mb, height: hb.max(k), width: hw };
            let plan = LinearPlan::with_blocking(&params, LayerKind::Conv2d(shape), blk, &PlanOptions::default());
            prop_assume!(!matches!(plan, Err(HeError::InvalidShape(_))));
            let plan = plan.unwrap();
            let mut seen = vec![false; plan.output_len()];
            for r in 0..plan.output_cts() {
                let mut coefs = std::collections::HashSet::new();
                let mut count = 0;
                plan.for_each_reply_value(r, |coef, idx| {
                    assert!(coef < n);
                    assert!(coefs.insert(coef), "coefficient {coef} used twice");
                    assert!(!seen[idx]);
                    seen[idx] = true;
                    count += 1;
                });
                prop_assert_eq!(count, plan.reply_values(r));
            }
            prop_assert!(seen.iter().all(|&s| s));
            if let Some(pk) = plan.packing() {
                prop_assert!(pk.group >= 2 && pk.group <= pk.stride && pk.stride.is_power_of_two());
                prop_assert_eq!(pk.reply_cts, plan.result_cts().div_ceil(pk.group));
            }
        }
    }

    #[test]
    fn plan_options_are_validated_and_serialised() {
        for ok in [PlanOptions::default(), PlanOptions::minimise_bytes()] {
            ok.validate().unwrap();
            let json = serde_json::to_string(&ok).unwrap();
            assert_eq!(serde_json::from_str::<PlanOptions>(&json).unwrap(), ok);
        }
        // The wire form: the field names, threads as u32, the cache budget as u64.
        let json = serde_json::to_value(PlanOptions::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"bandwidth": 382e6, "threads": 2, "weight_cache_bytes": 256u64 << 20})
        );
        let edge = PlanOptions {
            bandwidth: 1e15,
            threads: 4096,
            weight_cache_bytes: 1 << 40,
        };
        edge.validate().unwrap();
        let d = PlanOptions::default();
        let bad = [
            PlanOptions {
                bandwidth: f64::NAN,
                ..d
            },
            PlanOptions {
                bandwidth: f64::INFINITY,
                ..d
            },
            PlanOptions {
                bandwidth: 0.5,
                ..d
            },
            PlanOptions {
                bandwidth: 1.1e15,
                ..d
            },
            PlanOptions { threads: 0, ..d },
            PlanOptions { threads: 4097, ..d },
            PlanOptions {
                weight_cache_bytes: (1 << 40) + 1,
                ..d
            },
        ];
        let params = crate::Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
        let shape = crate::FcShape::new(1, 8, 8);
        for o in bad {
            assert!(
                matches!(o.validate(), Err(HeError::InvalidParams(_))),
                "{o:?}"
            );
            // The planner refuses them too.
            assert!(matches!(
                LinearPlan::new(&params, LayerKind::Fc(shape), &o),
                Err(HeError::InvalidParams(_))
            ));
        }
        assert!(
            serde_json::from_str::<PlanOptions>(
                r#"{"bandwidth": 1.0, "threads": 4294967296, "weight_cache_bytes": 0}"#
            )
            .is_err()
        );
    }

    #[test]
    fn planner_fills_the_ring_and_respects_the_bound() {
        let params = crate::Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
        let shape = Conv2dShape::new(4, 32, 14, 14, 64, 5, 1, Padding::Same);
        let plan =
            LinearPlan::new(&params, LayerKind::Conv2d(shape), &PlanOptions::default()).unwrap();
        let b = plan.blocking();
        assert!(b.images * b.channels * b.filters * b.height * b.width <= 4096);
        assert!(b.height >= 5 && b.width >= 5);
        // Both parties derive the same plan.
        let again =
            LinearPlan::new(&params, LayerKind::Conv2d(shape), &PlanOptions::default()).unwrap();
        assert_eq!(plan.blocking(), again.blocking());
        // Oversized blockings are refused.
        let too_big = Blocking {
            images: 2,
            channels: 32,
            filters: 4,
            height: 18,
            width: 18,
        };
        assert!(
            LinearPlan::with_blocking(
                &params,
                LayerKind::Conv2d(shape),
                too_big,
                &PlanOptions::default()
            )
            .is_err()
        );
    }
}
