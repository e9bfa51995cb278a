//! The server's half of the linear layers ([`crate::linear`] has the protocol):
//! the session state made from the client's keys ([`HeServer`]), a layer's
//! encoded weights ([`ServerLinear`]) and the answer to a query
//! ([`ServerLinear::respond`], or [`ServerLinear::respond_bytes`] from the
//! received bytes).
//!
//! **Computes.** Per call: `Enc(x_c) + x_s = Enc(x)` (the server adds its own
//! input share into the client's ciphertexts, as Cheetah does), the products by
//! the encoded weights summed over channel blocks (private module `accumulate`),
//! optionally the packing of the result ciphertexts ([`crate::pack`]), then
//! re-randomisation, flooding, modulus switching and masking
//! (private module `finalize`); the server's output share is `r + bias`. I/O-free:
//! any driver can move the bytes (fusion-engine's `cheetah` backend has one).
//!
//! **Learns.** Ciphertexts under the client's key only (IND-CPA under
//! decision-RLWE): nothing about the client's share. The client's public key and
//! Galois keys are public data.

use std::sync::{Arc, Mutex};

use rand::{CryptoRng, Rng};
use rayon::prelude::*;
use zeroize::Zeroize;

use crate::accumulate::{CHUNK, CtIndex, Inputs, KernelBuf, Weights, accumulate, extract};
use crate::error::HeError;
use crate::finalize::{Flooding, ReplyPart, emit, finalize, finish_leaf};
use crate::galois::PreparedGaloisKeys;
use crate::keys::{GaloisKeys, PreparedPk, PublicKey};
use crate::linear::{check_ring, encode_scaled, stream_rng};
use crate::noise;
use crate::params::HeParams;
use crate::plan::{LayerKind, LinearPlan};
use crate::poly;
use crate::wire::{GaloisKeyMsg, PublicKeyMsg, Query, Reply, TAG_REPLY};

/// Memory budget of one group of output ciphertexts in [`ServerLinear::respond`],
/// for its accumulators and (without the cache) for its kernel polynomials each.
/// Every input ciphertext is read once per group, so groups should be large.
const GROUP_BYTES: usize = 48 << 20;

/// The server's session state: the client's public key, prepared, and (with
/// response packing) its Galois keys.
#[derive(Debug, Clone)]
pub struct HeServer {
    params: HeParams,
    pk: PreparedPk,
    galois: Option<Arc<PreparedGaloisKeys>>,
}

impl HeServer {
    /// Prepares the client's public key (decoded with [`PublicKeyMsg::decode`]).
    /// Without Galois keys the server cannot answer plans that pack their replies.
    pub fn new(pk: &PublicKey) -> Self {
        HeServer {
            params: pk.params().clone(),
            pk: PreparedPk::new(pk),
            galois: None,
        }
    }

    /// Prepares the client's public key and Galois keys (decoded with
    /// [`crate::GaloisKeyMsg::decode`]) for response packing.
    pub fn with_galois_keys(pk: &PublicKey, gk: &GaloisKeys) -> Result<Self, HeError> {
        if pk.params() != gk.params() {
            return Err(HeError::ParamMismatch(
                "public key and Galois keys use different parameters".into(),
            ));
        }
        if gk.params().reply_packing_levels() == 0 {
            return Err(HeError::ParamMismatch(
                "Galois keys for parameters without response packing".into(),
            ));
        }
        let mut server = HeServer::new(pk);
        // Builds the automorphism tables once per parameter set.
        let _ = gk.params().pack_tables();
        server.galois = Some(Arc::new(PreparedGaloisKeys::new(gk)));
        Ok(server)
    }

    /// The session state from the client's setup messages
    /// ([`crate::HeClient::setup_messages`]): decodes and checks the public key
    /// ([`PublicKeyMsg::expected_len`] bytes) and, exactly when `params` enable
    /// response packing, the Galois keys ([`GaloisKeyMsg::expected_len`] bytes).
    pub fn from_setup_messages(
        params: &HeParams,
        public_key: &[u8],
        galois_keys: Option<&[u8]>,
    ) -> Result<Self, HeError> {
        let pk = PublicKeyMsg::decode(params, public_key)?;
        match (params.reply_packing_levels() > 0, galois_keys) {
            (false, None) => Ok(HeServer::new(&pk)),
            (true, Some(gk)) => HeServer::with_galois_keys(&pk, &GaloisKeyMsg::decode(params, gk)?),
            (true, None) => Err(HeError::ParamMismatch(
                "the parameters enable response packing but the client sent no Galois keys".into(),
            )),
            (false, Some(_)) => Err(HeError::ParamMismatch(
                "Galois keys for parameters without response packing".into(),
            )),
        }
    }

    /// Whether the server holds the client's Galois keys (response packing).
    pub fn has_galois_keys(&self) -> bool {
        self.galois.is_some()
    }

    /// The parameters.
    pub fn params(&self) -> &HeParams {
        &self.params
    }
}

/// A layer's weights, encoded once for the server (per model and batch size).
#[derive(Debug)]
pub struct ServerLinear {
    plan: LinearPlan,
    /// The encoded weights (private module `accumulate`).
    weights: Weights,
    /// Bias per output channel (empty: none).
    bias: Vec<u64>,
    weight_bits: u32,
    flood_security: f64,
    /// The flooding constants (private module `finalize`).
    flood: Flooding,
    /// Accumulator and (packing) leaf memory kept between calls (avoids page
    /// faults on every call).
    scratch: Mutex<(Vec<u64>, Vec<u64>)>,
    /// Packing only: the leaves' pre-scaling per group depth ([`crate::pack`]).
    pack_scales: Vec<(u32, Vec<u64>)>,
}

impl ServerLinear {
    /// Encodes weights `[out_features][in_features]` and an optional bias
    /// `[out_features]` for a plan made by [`LinearPlan::fc`].
    pub fn fc(plan: LinearPlan, weights: &[u64], bias: Option<&[u64]>) -> Result<Self, HeError> {
        let LayerKind::Fc(shape) = *plan.kind() else {
            return Err(HeError::InvalidShape(
                "ServerLinear::fc needs a fully connected plan".into(),
            ));
        };
        let expected = shape.in_features * shape.out_features;
        if weights.len() != expected {
            return Err(HeError::InputLength {
                what: "weights",
                expected,
                found: weights.len(),
            });
        }
        ServerLinear::from_canonical(
            plan,
            weights.to_vec(),
            bias.map(<[u64]>::to_vec).unwrap_or_default(),
        )
    }

    /// Encodes convolution weights `[out_channels][in_channels][kernel_h][kernel_w]`
    /// and an optional bias `[out_channels]` for a plan made by [`LinearPlan::conv2d`].
    pub fn conv2d(
        plan: LinearPlan,
        weights: &[u64],
        bias: Option<&[u64]>,
    ) -> Result<Self, HeError> {
        let LayerKind::Conv2d(shape) = *plan.kind() else {
            return Err(HeError::InvalidShape(
                "ServerLinear::conv2d needs a convolution plan".into(),
            ));
        };
        if weights.len() != shape.weight_len() {
            return Err(HeError::InputLength {
                what: "weights",
                expected: shape.weight_len(),
                found: weights.len(),
            });
        }
        let kernel = shape.canonical_kernel(weights);
        ServerLinear::from_canonical(plan, kernel, bias.map(<[u64]>::to_vec).unwrap_or_default())
    }

    /// Encodes per-channel `scale` and optional `shift` (`[channels]` each) for a plan
    /// made by [`LinearPlan::batch_norm`].
    pub fn batch_norm(
        plan: LinearPlan,
        scale: &[u64],
        shift: Option<&[u64]>,
    ) -> Result<Self, HeError> {
        let LayerKind::BatchNorm(shape) = *plan.kind() else {
            return Err(HeError::InvalidShape(
                "ServerLinear::batch_norm needs a batch-norm plan".into(),
            ));
        };
        if scale.len() != shape.channels {
            return Err(HeError::InputLength {
                what: "scale",
                expected: shape.channels,
                found: scale.len(),
            });
        }
        ServerLinear::from_canonical(
            plan,
            scale.to_vec(),
            shift.map(<[u64]>::to_vec).unwrap_or_default(),
        )
    }

    /// Encodes canonical weights for `plan`; checks sizes, ring membership and the
    /// flooding's statistical security for these weights.
    pub(crate) fn from_canonical(
        plan: LinearPlan,
        kernel: Vec<u64>,
        bias: Vec<u64>,
    ) -> Result<Self, HeError> {
        let g = plan.geometry();
        let expected = if g.depthwise {
            g.filters
        } else {
            g.filters * g.channels * g.kernel_h * g.kernel_w
        };
        check_ring(&plan.params, &kernel, expected, "weights")?;
        if !bias.is_empty() {
            check_ring(&plan.params, &bias, g.filters, "bias")?;
        }
        let weight_bits = noise::weight_bits(&plan.params, kernel.iter().copied());
        let flood_security = plan.noise().check_flooding(&plan.params, weight_bits)?;
        let flood = Flooding::new(&plan);
        let mut layer = ServerLinear {
            plan,
            weights: Weights {
                kernel,
                cache: None,
            },
            bias,
            weight_bits,
            flood_security,
            flood,
            scratch: Mutex::new((Vec::new(), Vec::new())),
            pack_scales: Vec::new(),
        };
        if let Some(pk) = layer.plan.packing {
            let params = &layer.plan.params;
            let tables = params.pack_tables();
            let leaves = layer.plan.layout.counts.out_cts;
            let mut depths: Vec<u32> = (0..pk.reply_cts)
                .map(|r| crate::pack::group_depth(pk.leaves_of(r, leaves).1))
                .collect();
            depths.sort_unstable();
            depths.dedup();
            layer.pack_scales = depths
                .into_iter()
                .map(|d| {
                    let c = crate::galois::inv_pow2(params, d);
                    (
                        d,
                        tables.scaled_monomial(params.primes(), -(pk.offset as i64), &c),
                    )
                })
                .collect();
        }
        let kernel = std::mem::take(&mut layer.weights.kernel);
        layer.weights = Weights::new(&layer.plan, kernel);
        Ok(layer)
    }

    /// The plan.
    pub fn plan(&self) -> &LinearPlan {
        &self.plan
    }

    /// The smallest `b` with every weight's signed value in `[-2^b, 2^b]`.
    pub fn weight_bits(&self) -> u32 {
        self.weight_bits
    }

    /// Achieved statistical security of the flooding per sent coefficient (bits).
    pub fn flood_security_bits(&self) -> f64 {
        self.flood_security
    }

    /// Step 2 from the received bytes: checks the query message for this layer's
    /// plan ([`Query::from_bytes`], [`Query::expected_len`] bytes) and answers it
    /// ([`ServerLinear::respond`]); returns the reply (send
    /// [`Reply::as_bytes`]) and the server's output share.
    pub fn respond_bytes<R: Rng + CryptoRng + ?Sized>(
        &self,
        server: &HeServer,
        query: &[u8],
        x_server: Option<&[u64]>,
        rng: &mut R,
    ) -> Result<(Reply, Vec<u64>), HeError> {
        self.respond(
            server,
            &Query::from_bytes(&self.plan, query)?,
            x_server,
            rng,
        )
    }

    /// Step 2: the server's reply to `query`, and the server's output share
    /// `r + bias`. `x_server` is the server's input share (`None`: zero, e.g. for a
    /// first layer whose input the client holds alone).
    pub fn respond<R: Rng + CryptoRng + ?Sized>(
        &self,
        server: &HeServer,
        query: &Query,
        x_server: Option<&[u64]>,
        rng: &mut R,
    ) -> Result<(Reply, Vec<u64>), HeError> {
        let plan = &self.plan;
        let params = &plan.params;
        if server.params != *params {
            return Err(HeError::ParamMismatch(
                "plan and client public key use different parameters".into(),
            ));
        }
        let n = params.degree();
        let stride = params.primes().len() * n;
        let limbs = params.inner.query_rounding.limbs;
        if query.rounded.len() != plan.input_cts() * n * limbs {
            return Err(HeError::Malformed {
                what: "query",
                detail: format!(
                    "{} limbs for {} ciphertexts",
                    query.rounded.len(),
                    plan.input_cts()
                ),
            });
        }
        if let Some(x) = x_server {
            check_ring(params, x, plan.input_len(), "server share")?;
        }
        if plan.packing.is_some() && server.galois.is_none() {
            return Err(HeError::ParamMismatch(
                "the plan packs its replies but the server has no Galois keys from the client"
                    .into(),
            ));
        }
        let mut enc_seed = [0u8; 32];
        rng.fill_bytes(&mut enc_seed);
        let mut out_seed = [0u8; 32];
        rng.fill_bytes(&mut out_seed);

        // Inputs: b (+ the server's share) and the seeded a, in evaluation form.
        let mut b_in = query.b_ntt(params);
        if let Some(x) = x_server {
            let xs = plan.canonical_input(x);
            b_in.par_chunks_mut(stride).enumerate().for_each_init(
                || (vec![0u64; n], vec![0u64; stride]),
                |(coeffs, tmp), (ct, b)| {
                    let mut r = stream_rng(&enc_seed, ct as u64);
                    plan.layout.encode_input(&xs, ct, coeffs);
                    encode_scaled(params, coeffs, false, &mut r, tmp);
                    poly::fwd(params, tmp);
                    poly::add_assign(params, b, tmp);
                },
            );
        }
        let mut a_in = vec![0u64; plan.input_cts() * stride];
        a_in.par_chunks_mut(stride)
            .enumerate()
            .for_each(|(ct, a)| poly::expand_uniform(params, &query.seed, ct as u64, a));

        let c = plan.layout.counts;
        let mut parts: Vec<Option<ReplyPart>> = (0..plan.output_cts()).map(|_| None).collect();
        let mut kernels = KernelBuf::new(&self.plan, &self.weights);
        let (mut accs, mut leafbuf): (Vec<u64>, Vec<u64>) = self
            .scratch
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let inputs = Inputs { b: &b_in, a: &a_in };
        match (&plan.packing, &server.galois) {
            (Some(pk), Some(keys)) => {
                let mut root_seed = [0u8; 32];
                rng.fill_bytes(&mut root_seed);
                // Batches of whole packing groups whose accumulators, leaves and
                // (without the cache) kernel polynomials take about GROUP_BYTES.
                let per_leaf = 4 * stride * 8
                    + if self.weights.cache.is_some() {
                        0
                    } else {
                        c.cblk * stride * 8
                    };
                let groups = (GROUP_BYTES / (pk.group * per_leaf).max(1)).max(1);
                let tables = params.pack_tables();
                for r0 in (0..pk.reply_cts).step_by(groups) {
                    let r1 = (r0 + groups).min(pk.reply_cts);
                    let first = r0 * pk.group;
                    let last = (r1 * pk.group).min(c.out_cts);
                    let mut cts: Vec<CtIndex> = (first..last)
                        .map(|ct| {
                            let (nb, m, ti, tj) = plan.layout.out_index(ct);
                            (ct, nb, m, ti, tj)
                        })
                        .collect();
                    // Filter-block-major, so that a kernel chunk is reused by consecutive ciphertexts.
                    cts.sort_by_key(|&(ct, nb, m, ..)| (m, nb, ct));
                    let mut ms: Vec<usize> = cts.iter().map(|t| t.2).collect();
                    ms.sort_unstable();
                    ms.dedup();
                    kernels.load(&ms);
                    accumulate(plan, &inputs, &cts, &kernels, &mut accs);
                    let per_chunk = cts.len() * 2 * CHUNK;
                    // Leaves in result-ciphertext order, so that each group is contiguous.
                    let mut li_of = vec![0usize; last - first];
                    for (li, t) in cts.iter().enumerate() {
                        li_of[t.0 - first] = li;
                    }
                    let ct_len = 2 * stride;
                    leafbuf.resize(leafbuf.len().max((last - first) * ct_len), 0);
                    let leaves = &mut leafbuf[..(last - first) * ct_len];
                    leaves.par_chunks_mut(ct_len).enumerate().for_each_init(
                        || vec![0u64; stride],
                        |tmp, (t, leaf)| {
                            let ct = first + t;
                            extract(params, &accs, per_chunk, li_of[t], leaf);
                            let (_, count) = pk.leaves_of(ct / pk.group, c.out_cts);
                            let scale = self.pack_scale(crate::pack::group_depth(count));
                            let mut rng = stream_rng(&out_seed, ct as u64);
                            finish_leaf(params, &server.pk, scale, leaf, &mut rng, tmp);
                        },
                    );
                    let done: Vec<(usize, ReplyPart)> = leaves
                        .par_chunks_mut(pk.group * ct_len)
                        .enumerate()
                        .map(|(gi, group)| {
                            let r = r0 + gi;
                            let count = group.len() / ct_len;
                            let depth = crate::pack::group_depth(count);
                            crate::pack::pack_group(params, tables, keys, group, count, depth);
                            let (b, a) = group[..ct_len].split_at_mut(stride);
                            poly::inv(params, b);
                            poly::inv(params, a);
                            let mut rng = stream_rng(&root_seed, r as u64);
                            (r, emit(plan, &self.flood, r, b, a, false, &mut rng))
                        })
                        .collect();
                    for (r, part) in done {
                        parts[r] = Some(part);
                    }
                }
                root_seed.zeroize();
            }
            _ => {
                // Output ciphertexts are processed in groups of filter blocks whose
                // accumulators (and, without the cache, kernel polynomials) take at most
                // GROUP_BYTES; inside a group the pointwise products run over chunks of
                // CHUNK coefficients of one prime, in parallel, so that every input,
                // kernel and accumulator chunk is read from memory once per group.
                let acc_per_mblk = c.nblk * c.n_th * c.n_tw * 2 * stride * 8;
                let kern_per_mblk = if self.weights.cache.is_some() {
                    0
                } else {
                    c.cblk * stride * 8
                };
                let group = (GROUP_BYTES / acc_per_mblk.max(1))
                    .min(GROUP_BYTES / kern_per_mblk.max(1))
                    .clamp(1, c.mblk);
                for m0 in (0..c.mblk).step_by(group) {
                    let m1 = (m0 + group).min(c.mblk);
                    let ms: Vec<usize> = (m0..m1).collect();
                    kernels.load(&ms);
                    // Filter-block-major, so that a kernel chunk is reused by consecutive ciphertexts.
                    let mut cts = Vec::with_capacity((m1 - m0) * c.nblk * c.n_th * c.n_tw);
                    for m in m0..m1 {
                        for nb in 0..c.nblk {
                            for ti in 0..c.n_th {
                                for tj in 0..c.n_tw {
                                    cts.push((
                                        ((nb * c.mblk + m) * c.n_th + ti) * c.n_tw + tj,
                                        nb,
                                        m,
                                        ti,
                                        tj,
                                    ));
                                }
                            }
                        }
                    }
                    accumulate(plan, &inputs, &cts, &kernels, &mut accs);
                    let per_chunk = cts.len() * 2 * CHUNK;
                    let done: Vec<(usize, ReplyPart)> = cts
                        .par_iter()
                        .enumerate()
                        .map_init(
                            || (vec![0u64; 2 * stride], vec![0u64; stride]),
                            |bufs, (li, &(ct, ..))| {
                                extract(params, &accs, per_chunk, li, &mut bufs.0);
                                let mut r = stream_rng(&out_seed, ct as u64);
                                (
                                    ct,
                                    finalize(plan, &self.flood, &server.pk, ct, bufs, &mut r),
                                )
                            },
                        )
                        .collect();
                    for (ct, part) in done {
                        parts[ct] = Some(part);
                    }
                }
            }
        }
        if let Ok(mut v) = self.scratch.lock() {
            *v = (accs, leafbuf);
        }
        enc_seed.zeroize();
        out_seed.zeroize();

        let mut bytes = Vec::with_capacity(Reply::expected_len(plan));
        bytes.push(TAG_REPLY);
        bytes.extend_from_slice(&(plan.output_cts() as u32).to_le_bytes());
        let ring = params.ring();
        let g = plan.geometry();
        let per_filter = g.out_h() * g.out_w();
        let mut share = vec![0u64; plan.output_len()];
        for part in parts {
            let Some((seg, masks)) = part else {
                return Err(HeError::Internal(
                    "an output ciphertext was not computed".into(),
                ));
            };
            bytes.extend_from_slice(&seg);
            for (idx, r) in masks {
                let f = (idx / per_filter) % g.filters;
                share[idx] = if self.bias.is_empty() {
                    r
                } else {
                    ring.add(r, self.bias[f])
                };
            }
        }
        Ok((Reply { bytes }, share))
    }

    /// The pre-scaling `2^{-depth} X^{-offset}` of the leaves of a packing group
    /// (evaluations times `N`, see [`crate::pack`]).
    fn pack_scale(&self, depth: u32) -> &[u64] {
        self.pack_scales
            .iter()
            .find(|(d, _)| *d == depth)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests;
