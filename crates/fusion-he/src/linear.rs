//! The generic linear-layer protocol on additive shares (Cheetah, Sec. 4; Fig. 2 of
//! ePrint 2022/207), for any layer reduced to a [`LinearPlan`].
//!
//! **Computes.** The client holds `x_c`, the server holds `x_s` and the weights `W`
//! (and an optional bias `beta`), with `x = x_c + x_s mod 2^l`. At the end the client
//! holds `y_c = W x - r` and the server `y_s = r + beta`, so `y_c + y_s = W x + beta`
//! exactly in `Z_{2^l}`; `r` is uniform and fresh.
//!
//! **Messages.**
//! 1. Client ([`HeClient::encrypt`]): encrypts its share, encoded per the plan, under
//!    its secret key; the `a` polynomials come from one 32-byte seed ([`Query`]).
//! 2. Server ([`ServerLinear::respond`]): adds its own share into the ciphertexts
//!    (`Enc(x_c) + x_s = Enc(x)`, as Cheetah does; this replaces the plaintext
//!    product `W x_s`, which for convolutions costs far more than one transform per
//!    input ciphertext), multiplies by the encoded weights in evaluation form,
//!    sums over channel blocks, re-randomises with an encryption of zero under the
//!    client's public key, floods the sent coefficients, switches modulus, subtracts
//!    the mask `r`, and keeps only the coefficients that carry results ([`Reply`]).
//! 3. Client ([`HeClient::decrypt`]): decrypts its output share.
//!
//! **Learns.** The server sees RLWE ciphertexts under the client's key only
//! (IND-CPA under decision-RLWE), so nothing about `x_c`. The client sees a reply
//! that is simulatable from its output share `W x - r` alone, which is uniform; see
//! [`crate::noise`] for the re-randomisation and flooding argument and its
//! statistical parameter. Plan, shapes and sizes are public.

use std::sync::{Arc, Mutex};

use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};
use rayon::prelude::*;
use zeroize::Zeroize;

use crate::HeError;
use crate::galois::{GaloisKeys, PreparedGaloisKeys};
use crate::keys::{PreparedPk, PublicKey, SecretKey};
use crate::noise;
use crate::params::HeParams;
use crate::plan::LinearPlan;
use crate::poly;
use crate::wire::{BitReader, BitWriter, GaloisKeyMsg, PublicKeyMsg, Query, Reply, TAG_REPLY};

/// Writes the residues of `round_random(q m_j / t) (+ e_j)` for the `N` plaintext
/// coefficients `msg` into `out` (coefficient form, `L * N`). The rounding is
/// randomised (up with probability equal to the fractional part) so that its error
/// is zero-mean; with `noise` a CBD error is added.
fn encode_scaled<R: Rng + CryptoRng + ?Sized>(
    params: &HeParams,
    msg: &[u64],
    noise: bool,
    rng: &mut R,
    out: &mut [u64],
) {
    let p = &params.inner;
    let n = p.n;
    let mask = p.ring.mask();
    let qt = p.q_mod_2_64 & mask;
    let nprimes = p.primes.len();
    for (j, &m) in msg.iter().enumerate() {
        // q m / t = floor + rho / t with rho = (q m) mod t; floor = -rho t^{-1} mod p_i.
        let rho = qt.wrapping_mul(m) & mask;
        let u = rng.next_u64() & mask;
        let bump = (u < rho) as u64;
        let e = if noise { poly::cbd(rng) } else { 0 };
        for i in 0..nprimes {
            let pi = p.primes[i];
            let r = p.ones[i].mul(rho, pi);
            let e_mod = if e >= 0 {
                e as u64
            } else {
                pi - e.unsigned_abs()
            };
            let mut v = p.neg_t_inv[i].mul(r, pi) + bump + e_mod;
            if v >= pi {
                v -= pi;
            }
            if v >= pi {
                v -= pi;
            }
            out[i * n + j] = v;
        }
    }
}

fn check_ring(
    params: &HeParams,
    x: &[u64],
    expected: usize,
    who: &'static str,
) -> Result<(), HeError> {
    if x.len() != expected {
        return Err(HeError::InputLength {
            what: who,
            expected,
            found: x.len(),
        });
    }
    let ring = params.ring();
    if let Some(pos) = x.iter().position(|&v| !ring.contains(v)) {
        return Err(HeError::NotInRing {
            what: who,
            index: pos,
            bits: ring.bits(),
        });
    }
    Ok(())
}

/// A reply ciphertext recorded before flooding and modulus switching: its `a`
/// polynomial and, per result, the output index, its coefficient and the
/// residues of `b` there.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct ProbeCt {
    pub(crate) a: Vec<u64>,
    pub(crate) outputs: Vec<(usize, usize, Vec<u64>)>,
}

/// One packed reply ciphertext and the masks `(output index, r)` it subtracted.
type ReplyPart = (Vec<u8>, Vec<(usize, u64)>);

/// Coefficients per product chunk (a multiple of 8 dividing every supported `N`).
const CHUNK: usize = 256;

/// Memory budget of one group of output ciphertexts in [`ServerLinear::respond`],
/// for its accumulators and (without the cache) for its kernel polynomials each.
/// Every input ciphertext is read once per group, so groups should be large.
const GROUP_BYTES: usize = 48 << 20;

fn stream_rng(seed: &[u8; 32], stream: u64) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::from_seed(*seed);
    r.set_stream(stream);
    r
}

/// The client of the linear layers: owns the secret key of the session.
pub struct HeClient {
    params: HeParams,
    sk: SecretKey,
    pk: PublicKey,
}

impl std::fmt::Debug for HeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeClient")
            .field("degree", &self.params.degree())
            .finish_non_exhaustive()
    }
}

impl HeClient {
    /// Generates a fresh key pair.
    pub fn new<R: Rng + CryptoRng + ?Sized>(params: &HeParams, rng: &mut R) -> Self {
        let sk = SecretKey::generate(params, rng);
        let pk = sk.public_key(rng);
        HeClient {
            params: params.clone(),
            sk,
            pk,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &HeParams {
        &self.params
    }

    /// The public key to send to the server once, at setup.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// The public key message.
    pub fn public_key_msg(&self) -> PublicKeyMsg {
        PublicKeyMsg::encode(&self.pk)
    }

    /// Fresh Galois keys for response packing, to send to the server once at setup
    /// ([`GaloisKeyMsg`], [`HeParams::galois_key_bytes`] bytes). Errors if the
    /// parameters do not enable packing.
    pub fn galois_keys<R: Rng + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<GaloisKeys, HeError> {
        if self.params.reply_packing_levels() == 0 {
            return Err(HeError::InvalidParams(
                "response packing is off in these parameters: no Galois keys".into(),
            ));
        }
        Ok(GaloisKeys::generate(&self.sk, rng))
    }

    /// [`HeClient::galois_keys`], encoded.
    pub fn galois_key_msg<R: Rng + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<GaloisKeyMsg, HeError> {
        Ok(GaloisKeyMsg::encode(&self.galois_keys(rng)?))
    }

    /// Step 1: encrypts the client's share `x_client` (the layer's input tensor,
    /// see [`crate::plan::LayerKind::input_len`]) for `plan`.
    pub fn encrypt<R: Rng + CryptoRng + ?Sized>(
        &self,
        plan: &LinearPlan,
        x_client: &[u64],
        rng: &mut R,
    ) -> Result<Query, HeError> {
        if plan.params != self.params {
            return Err(HeError::ParamMismatch(
                "plan and client key use different parameters".into(),
            ));
        }
        check_ring(&self.params, x_client, plan.input_len(), "client share")?;
        let xc = plan.canonical_input(x_client);
        let params = &self.params;
        let n = params.degree();
        let stride = params.primes().len() * n;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut master = [0u8; 32];
        rng.fill_bytes(&mut master);
        let mut cts = vec![0u64; plan.input_cts() * stride];
        cts.par_chunks_mut(stride).enumerate().for_each_init(
            || (vec![0u64; n], vec![0u64; stride]),
            |(coeffs, a), (ct, b)| {
                let mut r = stream_rng(&master, ct as u64);
                plan.encode_input(&xc, ct, coeffs);
                encode_scaled(params, coeffs, true, &mut r, b);
                coeffs[..].zeroize();
                poly::fwd(params, b);
                poly::expand_uniform(params, &seed, ct as u64, a);
                poly::mul_acc(params, b, a, self.sk.neg_s_ntt());
            },
        );
        master.zeroize();
        Ok(Query { seed, cts })
    }

    /// Step 3: decrypts the reply into the client's output share (the layer's
    /// output tensor, see [`crate::plan::LayerKind::output_len`]).
    pub fn decrypt(&self, plan: &LinearPlan, reply: &Reply) -> Result<Vec<u64>, HeError> {
        if plan.params != self.params {
            return Err(HeError::ParamMismatch(
                "plan and client key use different parameters".into(),
            ));
        }
        let expected = Reply::expected_len(plan);
        if reply.bytes.len() != expected || reply.bytes.first() != Some(&TAG_REPLY) {
            return Err(HeError::MessageLength {
                what: "reply",
                expected,
                found: reply.bytes.len(),
            });
        }
        let mut offsets = Vec::with_capacity(plan.output_cts() + 1);
        let mut off = 5;
        for ct in 0..plan.output_cts() {
            offsets.push(off);
            let (a, b) = Reply::segment(plan, ct);
            off += a + b;
        }
        offsets.push(off);
        let parts: Vec<Vec<(usize, u64)>> = (0..plan.output_cts())
            .into_par_iter()
            .map(|ct| self.decrypt_ct(plan, ct, &reply.bytes[offsets[ct]..offsets[ct + 1]]))
            .collect();
        let mut out = vec![0u64; plan.output_len()];
        for part in parts {
            for (idx, v) in part {
                out[idx] = v;
            }
        }
        Ok(out)
    }

    fn decrypt_ct(&self, plan: &LinearPlan, ct: usize, seg: &[u8]) -> Vec<(usize, u64)> {
        let p = &self.params.inner;
        let mask_l = p.ring.mask() as u128;
        let half = 1u128 << (p.k_a - 1);
        self.phases(plan, ct, seg)
            .into_iter()
            .map(|(idx, ph)| (idx, (((ph + half) >> p.k_a) & mask_l) as u64))
            .collect()
    }

    /// The phases `2^(k_a - k_b) b'' + a'' s mod 2^(l + k_a)` of the results of reply
    /// ciphertext `ct` (returned in the low bits; `l + k_a <= 120`), with their
    /// output indices.
    fn phases(&self, plan: &LinearPlan, ct: usize, seg: &[u8]) -> Vec<(usize, u128)> {
        let p = &self.params.inner;
        let n = p.n;
        let l = p.ring.bits();
        let ka = l + p.k_a;
        let kb = l + p.k_b;
        let dec = p.dec_primes;
        let (sa, _) = Reply::segment(plan, ct);
        // a'' -> centred residues modulo the decryption primes.
        let mut buf = vec![0u64; dec * n];
        let two_ka: Vec<u64> = p.primes[..dec]
            .iter()
            .map(|&q| crate::arith::pow2_mod(ka, q))
            .collect();
        let mut r = BitReader::new(&seg[..sa]);
        for j in 0..n {
            let v = r.get(ka);
            let neg = (v >> (ka - 1)) & 1 == 1;
            let (lo, hi) = (v as u64, (v >> 64) as u64);
            for i in 0..dec {
                let q = p.primes[i];
                let mut x = p.ones[i].mul(lo, q) + p.pow2_64[i][1].mul(hi, q);
                if x >= q {
                    x -= q;
                }
                if neg {
                    x = if x >= two_ka[i] {
                        x - two_ka[i]
                    } else {
                        x + q - two_ka[i]
                    };
                }
                buf[i * n + j] = x;
            }
        }
        for (i, block) in buf.chunks_exact_mut(n).enumerate() {
            let plan_i = &p.plans[i];
            plan_i.fwd(block);
            plan_i.mul_assign_normalize(block, &self.sk.s_dec_ntt()[i * n..(i + 1) * n]);
            plan_i.inv(block);
        }
        let mask_ka = crate::arith::mask128(ka);
        let mut rb = BitReader::new(&seg[sa..]);
        let mut out = Vec::with_capacity(plan.reply_values(ct));
        let mut res = [0u64; 3];
        plan.for_each_reply_value(ct, |coef, idx| {
            let bv = rb.get(kb);
            for i in 0..dec {
                res[i] = buf[i * n + coef];
            }
            let a_s = p.garner_dec.compose_centered(&res[..dec]) as u128 & mask_ka;
            out.push((idx, ((bv << (p.k_a - p.k_b)) + a_s) & mask_ka));
        });
        buf.zeroize();
        out
    }

    /// The secret key (crate tests of the noise analysis).
    #[cfg(test)]
    pub(crate) fn secret_key(&self) -> &SecretKey {
        &self.sk
    }
}

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
    /// Canonical kernel `K[m][c][kh][kw]` (dense) or per-channel scales (depthwise).
    kernel: Vec<u64>,
    /// Bias per output channel (empty: none).
    bias: Vec<u64>,
    /// Kernel polynomials in evaluation form times `N^{-1}`, index `mblk * cblk + c`.
    cache: Option<Vec<Option<Vec<u64>>>>,
    weight_bits: u32,
    flood_security: f64,
    two_beta: Vec<u64>,
    /// Accumulator and (packing) leaf memory kept between calls (avoids page
    /// faults on every call).
    scratch: Mutex<(Vec<u64>, Vec<u64>)>,
    /// Packing only: the leaves' pre-scaling per group depth ([`crate::pack`]).
    pack_scales: Vec<(u32, Vec<u64>)>,
}

impl ServerLinear {
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
        let beta = plan.noise().flood_bits;
        let two_beta = plan
            .params
            .primes()
            .iter()
            .map(|&p| crate::arith::pow2_mod(beta, p))
            .collect();
        let mut layer = ServerLinear {
            plan,
            kernel,
            bias,
            cache: None,
            weight_bits,
            flood_security,
            two_beta,
            scratch: Mutex::new((Vec::new(), Vec::new())),
            pack_scales: Vec::new(),
        };
        if let Some(pk) = layer.plan.packing {
            let params = &layer.plan.params;
            let tables = params.pack_tables();
            let leaves = layer.plan.counts.out_cts;
            let mut depths: Vec<u32> = (0..pk.reply_cts)
                .map(|r| crate::pack::group_depth(pk.leaves_of(r, leaves).1))
                .collect();
            depths.sort_unstable();
            depths.dedup();
            layer.pack_scales = depths
                .into_iter()
                .map(|d| {
                    let c = crate::galois::inv_pow2(params, d);
                    (d, tables.scaled_monomial(params, -(pk.offset as i64), &c))
                })
                .collect();
        }
        if layer.plan.stats().weights_cached {
            let c = &layer.plan.counts;
            let cache: Vec<Option<Vec<u64>>> = (0..c.mblk * c.cblk)
                .into_par_iter()
                .map(|k| layer.kernel_poly(k / c.cblk, k % c.cblk))
                .collect();
            layer.cache = Some(cache);
        }
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

    /// Kernel polynomial `(mblk, cblk)` in evaluation form times `N^{-1}`, or `None` if zero.
    fn kernel_poly(&self, mblk: usize, cblk: usize) -> Option<Vec<u64>> {
        let params = &self.plan.params;
        let n = params.degree();
        let mut coeffs = vec![0u64; n];
        let mut poly = vec![0u64; params.primes().len() * n];
        self.kernel_poly_into(mblk, cblk, &mut coeffs, &mut poly)
            .then_some(poly)
    }

    /// Writes kernel polynomial `(mblk, cblk)` (evaluation form, times `N^{-1}`) into
    /// `out`; returns `false` (and leaves `out` unspecified) if it is zero.
    fn kernel_poly_into(
        &self,
        mblk: usize,
        cblk: usize,
        coeffs: &mut [u64],
        out: &mut [u64],
    ) -> bool {
        if !self.plan.kernel_block_used(mblk, cblk) {
            return false;
        }
        if !self.plan.encode_kernel(&self.kernel, mblk, cblk, coeffs) {
            return false;
        }
        let params = &self.plan.params;
        let n = params.degree();
        let ring = params.ring();
        let p = &params.inner;
        out.fill(0);
        for (j, &w) in coeffs.iter().enumerate() {
            if w == 0 {
                continue;
            }
            // The centred representative keeps the product noise small; the factor
            // N^{-1} of the inverse transform is folded in here.
            let v = ring.to_signed(w);
            for (i, &q) in p.primes.iter().enumerate() {
                let r = p.n_inv[i].mul(v.unsigned_abs(), q);
                out[i * n + j] = if v >= 0 || r == 0 { r } else { q - r };
            }
        }
        poly::fwd(params, out);
        true
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
        self.respond_impl(server, query, x_server, rng, None)
    }

    /// [`ServerLinear::respond`], optionally recording each reply ciphertext before
    /// flooding and modulus switching (noise tests).
    pub(crate) fn respond_impl<R: Rng + CryptoRng + ?Sized>(
        &self,
        server: &HeServer,
        query: &Query,
        x_server: Option<&[u64]>,
        rng: &mut R,
        probe: Option<&Mutex<Vec<ProbeCt>>>,
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
        if query.cts.len() != plan.input_cts() * stride {
            return Err(HeError::Malformed {
                what: "query",
                detail: format!(
                    "{} residues for {} ciphertexts",
                    query.cts.len(),
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
        let b_in: std::borrow::Cow<'_, [u64]> = match x_server {
            None => std::borrow::Cow::Borrowed(&query.cts),
            Some(x) => {
                let xs = plan.canonical_input(x);
                let mut b = query.cts.clone();
                b.par_chunks_mut(stride).enumerate().for_each_init(
                    || (vec![0u64; n], vec![0u64; stride]),
                    |(coeffs, tmp), (ct, b)| {
                        let mut r = stream_rng(&enc_seed, ct as u64);
                        plan.encode_input(&xs, ct, coeffs);
                        encode_scaled(params, coeffs, false, &mut r, tmp);
                        poly::fwd(params, tmp);
                        poly::add_assign(params, b, tmp);
                    },
                );
                std::borrow::Cow::Owned(b)
            }
        };
        let mut a_in = vec![0u64; plan.input_cts() * stride];
        a_in.par_chunks_mut(stride)
            .enumerate()
            .for_each(|(ct, a)| poly::expand_uniform(params, &query.seed, ct as u64, a));

        let c = plan.counts;
        let mut parts: Vec<Option<ReplyPart>> = (0..plan.output_cts()).map(|_| None).collect();
        let mut kernels = KernelBuf::new(self);
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
                    + if self.cache.is_some() {
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
                            let (nb, m, ti, tj) = plan.out_index(ct);
                            (ct, nb, m, ti, tj)
                        })
                        .collect();
                    // Filter-block-major, so that a kernel chunk is reused by consecutive ciphertexts.
                    cts.sort_by_key(|&(ct, nb, m, ..)| (m, nb, ct));
                    let mut ms: Vec<usize> = cts.iter().map(|t| t.2).collect();
                    ms.sort_unstable();
                    ms.dedup();
                    kernels.load(&ms);
                    self.accumulate(&inputs, &cts, &kernels, &mut accs);
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
                            (r, self.emit(r, b, a, false, &mut rng, probe))
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
                let kern_per_mblk = if self.cache.is_some() {
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
                    self.accumulate(&inputs, &cts, &kernels, &mut accs);
                    let per_chunk = cts.len() * 2 * CHUNK;
                    let done: Vec<(usize, ReplyPart)> = cts
                        .par_iter()
                        .enumerate()
                        .map_init(
                            || (vec![0u64; 2 * stride], vec![0u64; stride]),
                            |bufs, (li, &(ct, ..))| {
                                extract(params, &accs, per_chunk, li, &mut bufs.0);
                                let mut r = stream_rng(&out_seed, ct as u64);
                                (ct, self.finalize(&server.pk, ct, bufs, &mut r, probe))
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

    /// Accumulates `sum_cb in[nb, cb, ti, tj] * kernel[m, cb]` (both `b` and `a`) for
    /// every ciphertext of `cts` into `accs`, chunk-major: chunk `k` holds, for every
    /// ciphertext, `CHUNK` coefficients of `b` then `CHUNK` of `a`. The chunks run in
    /// parallel, so that every input, kernel and accumulator chunk is read from
    /// memory once.
    fn accumulate(
        &self,
        inputs: &Inputs<'_>,
        cts: &[CtIndex],
        kernels: &KernelBuf<'_>,
        accs: &mut Vec<u64>,
    ) {
        let plan = &self.plan;
        let params = &plan.params;
        let c = plan.counts;
        let n = params.degree();
        let stride = params.primes().len() * n;
        let nprimes = params.primes().len();
        let chunks_per_prime = n / CHUNK;
        let per_chunk = cts.len() * 2 * CHUNK;
        accs.clear();
        accs.resize(nprimes * chunks_per_prime * per_chunk, 0);
        accs.par_chunks_mut(per_chunk)
            .enumerate()
            .for_each(|(k, region)| {
                let i = k / chunks_per_prime;
                let off = i * n + (k % chunks_per_prime) * CHUNK;
                let ntt = &params.inner.plans[i];
                for (li, &(_, nb, m, ti, tj)) in cts.iter().enumerate() {
                    let (acc_b, acc_a) =
                        region[li * 2 * CHUNK..(li + 1) * 2 * CHUNK].split_at_mut(CHUNK);
                    for cb in 0..c.cblk {
                        if let Some(w) = kernels.get(m, cb) {
                            let at = plan.in_ct(nb, cb, ti, tj) * stride + off;
                            let w = &w[off..off + CHUNK];
                            ntt.mul_accumulate(acc_b, &inputs.b[at..at + CHUNK], w);
                            ntt.mul_accumulate(acc_a, &inputs.a[at..at + CHUNK], w);
                        }
                    }
                }
            });
    }

    /// Re-randomises, floods, switches modulus, masks and packs one reply ciphertext.
    fn finalize(
        &self,
        pk: &PreparedPk,
        ct: usize,
        bufs: &mut (Vec<u64>, Vec<u64>),
        rng: &mut ChaCha20Rng,
        probe: Option<&Mutex<Vec<ProbeCt>>>,
    ) -> ReplyPart {
        let params = &self.plan.params;
        let stride = params.primes().len() * params.degree();
        let (acc, uu) = (&mut bufs.0[..], &mut bufs.1[..]);
        let (acc_b, acc_a) = acc.split_at_mut(stride);
        // Encryption of zero under the public key: (u pk0 + e0, u pk1 + e1).
        let u = poly::sample_ternary(rng, params.degree());
        poly::small_to_rns(params, &u, uu);
        poly::fwd(params, uu);
        poly::mul_acc(params, acc_b, uu, &pk.pk0);
        poly::mul_acc(params, acc_a, uu, &pk.pk1);
        poly::inv(params, acc_b);
        poly::inv(params, acc_a);
        self.emit(ct, acc_b, acc_a, true, rng, probe)
    }

    /// From a reply ciphertext in coefficient form: adds `e1` to `a` (unless the
    /// leaves already carry it), `e0` and the flooding to the sent coefficients of
    /// `b`, switches modulus, masks and packs reply ciphertext `r`.
    fn emit(
        &self,
        r: usize,
        acc_b: &mut [u64],
        acc_a: &mut [u64],
        add_e1: bool,
        rng: &mut ChaCha20Rng,
        probe: Option<&Mutex<Vec<ProbeCt>>>,
    ) -> ReplyPart {
        let plan = &self.plan;
        let params = &plan.params;
        let p = &params.inner;
        let n = p.n;
        let nprimes = p.primes.len();
        let l = p.ring.bits();
        let ka = l + p.k_a;
        let kb = l + p.k_b;
        let (sa, sb) = Reply::segment(plan, r);
        let mut seg = Vec::with_capacity(sa + sb);
        let mut res = [0u64; 16];
        let add_small = |x: u64, e: i64, q: u64| -> u64 {
            let v = if e >= 0 {
                x + e as u64
            } else {
                x + q - e.unsigned_abs()
            };
            if v >= q { v - q } else { v }
        };
        if add_e1 {
            for j in 0..n {
                let e1 = poly::cbd(rng);
                for i in 0..nprimes {
                    acc_a[i * n + j] = add_small(acc_a[i * n + j], e1, p.primes[i]);
                }
            }
        }
        {
            let mut w = BitWriter::new(&mut seg);
            for j in 0..n {
                for i in 0..nprimes {
                    res[i] = acc_a[i * n + j];
                }
                w.put(
                    p.scale_a.apply(res[..nprimes].iter().copied(), &p.primes),
                    ka,
                );
            }
            w.finish();
        }
        let mut probed = probe.map(|_| ProbeCt {
            a: acc_a.to_vec(),
            outputs: Vec::new(),
        });
        debug_assert_eq!(seg.len(), sa);
        let beta = plan.noise().flood_bits;
        let flood_limbs = (beta as usize + 1).div_ceil(64);
        let top_bits = (beta + 1) - 64 * (flood_limbs as u32 - 1);
        let top_mask = if top_bits == 64 {
            u64::MAX
        } else {
            (1u64 << top_bits) - 1
        };
        let mask_kb = crate::arith::mask128(kb);
        let ring = p.ring;
        let mut masks = Vec::with_capacity(plan.reply_values(r));
        {
            let mut w = BitWriter::new(&mut seg);
            let mut limbs = [0u64; 8];
            plan.for_each_reply_value(r, |coef, idx| {
                let e0 = poly::cbd(rng);
                for (k, limb) in limbs.iter_mut().enumerate().take(flood_limbs) {
                    let v = rng.next_u64();
                    *limb = if k + 1 == flood_limbs {
                        v & top_mask
                    } else {
                        v
                    };
                }
                if let Some(pr) = probed.as_mut() {
                    let pre = (0..nprimes)
                        .map(|i| add_small(acc_b[i * n + coef], e0, p.primes[i]))
                        .collect();
                    pr.outputs.push((idx, coef, pre));
                }
                for i in 0..nprimes {
                    let q = p.primes[i];
                    // F = U - 2^beta with U uniform in [0, 2^(beta+1)).
                    let mut f = 0u64;
                    for (k, &limb) in limbs.iter().enumerate().take(flood_limbs) {
                        f += p.pow2_64[i][k].mul(limb, q);
                        if f >= q {
                            f -= q;
                        }
                    }
                    f = if f >= self.two_beta[i] {
                        f - self.two_beta[i]
                    } else {
                        f + q - self.two_beta[i]
                    };
                    let mut x = add_small(acc_b[i * n + coef], e0, q) + f;
                    if x >= q {
                        x -= q;
                    }
                    res[i] = x;
                }
                let v = p.scale_b.apply(res[..nprimes].iter().copied(), &p.primes);
                let r = ring.random(rng);
                let v = v.wrapping_sub((r as u128) << p.k_b) & mask_kb;
                w.put(v, kb);
                masks.push((idx, r));
            });
            w.finish();
        }
        debug_assert_eq!(seg.len(), sa + sb);
        if let (Some(pr), Some(sink)) = (probed, probe)
            && let Ok(mut v) = sink.lock()
        {
            v.push(pr);
        }
        (seg, masks)
    }
}

/// `(ciphertext, nblk, mblk, ti, tj)` of a result ciphertext.
type CtIndex = (usize, usize, usize, usize, usize);

/// The server's inputs of one call in evaluation form: `b` (with its own share
/// added) and the seeded `a`, `in_cts * L * N` residues each.
struct Inputs<'a> {
    b: &'a [u64],
    a: &'a [u64],
}

/// Kernel polynomials for the current group of filter blocks: from the layer's
/// cache, or transformed into a buffer for the listed filter blocks.
struct KernelBuf<'a> {
    layer: &'a ServerLinear,
    buf: Vec<u64>,
    present: Vec<bool>,
    /// Filter block -> slot in `buf` (`usize::MAX`: not loaded).
    slot: Vec<usize>,
}

impl<'a> KernelBuf<'a> {
    fn new(layer: &'a ServerLinear) -> Self {
        KernelBuf {
            layer,
            buf: Vec::new(),
            present: Vec::new(),
            slot: if layer.cache.is_some() {
                Vec::new()
            } else {
                vec![usize::MAX; layer.plan.counts.mblk]
            },
        }
    }

    /// Transforms the kernel polynomials of filter blocks `ms` (without the cache).
    fn load(&mut self, ms: &[usize]) {
        let layer = self.layer;
        if layer.cache.is_some() {
            return;
        }
        let params = &layer.plan.params;
        let n = params.degree();
        let stride = params.primes().len() * n;
        let cblk = layer.plan.counts.cblk;
        self.slot.fill(usize::MAX);
        for (k, &m) in ms.iter().enumerate() {
            self.slot[m] = k;
        }
        let used = ms.len() * cblk;
        if self.buf.len() < used * stride {
            self.buf.resize(used * stride, 0);
        }
        self.present.clear();
        self.present.resize(used, false);
        self.buf[..used * stride]
            .par_chunks_mut(stride)
            .zip(self.present.par_iter_mut())
            .enumerate()
            .for_each_init(
                || vec![0u64; n],
                |coeffs, (k, (buf, present))| {
                    *present = layer.kernel_poly_into(ms[k / cblk], k % cblk, coeffs, buf);
                },
            );
    }

    fn get(&self, m: usize, cb: usize) -> Option<&[u64]> {
        let layer = self.layer;
        match &layer.cache {
            Some(cache) => cache[m * layer.plan.counts.cblk + cb].as_deref(),
            None => {
                let params = &layer.plan.params;
                let stride = params.primes().len() * params.degree();
                let s = *self.slot.get(m)?;
                if s == usize::MAX {
                    return None;
                }
                let k = s * layer.plan.counts.cblk + cb;
                self.present[k].then(|| &self.buf[k * stride..(k + 1) * stride])
            }
        }
    }
}

/// Copies ciphertext `li` out of the chunk-major accumulators into `out` (`b` then
/// `a`, `L * N` residues each).
fn extract(params: &HeParams, accs: &[u64], per_chunk: usize, li: usize, out: &mut [u64]) {
    let n = params.degree();
    let stride = params.primes().len() * n;
    let chunks_per_prime = n / CHUNK;
    let (b, a) = out.split_at_mut(stride);
    for k in 0..params.primes().len() * chunks_per_prime {
        let src = k * per_chunk + li * 2 * CHUNK;
        let dst = (k / chunks_per_prime) * n + (k % chunks_per_prime) * CHUNK;
        b[dst..dst + CHUNK].copy_from_slice(&accs[src..src + CHUNK]);
        a[dst..dst + CHUNK].copy_from_slice(&accs[src + CHUNK..src + 2 * CHUNK]);
    }
}

/// A leaf of the packing ([`crate::pack`], step 1): adds an encryption of zero
/// `(u pk0, u pk1 + e1)` in evaluation form and multiplies by the pre-scaling
/// `scale` (evaluations times `N`). `ct` is `b` then `a`, scaled by `N^{-1}`.
pub(crate) fn finish_leaf(
    params: &HeParams,
    pk: &PreparedPk,
    scale: &[u64],
    ct: &mut [u64],
    rng: &mut ChaCha20Rng,
    tmp: &mut [u64],
) {
    let n = params.degree();
    let stride = params.primes().len() * n;
    let (b, a) = ct.split_at_mut(stride);
    let u = poly::sample_ternary(rng, n);
    poly::small_to_rns(params, &u, tmp);
    poly::fwd(params, tmp);
    poly::mul_acc(params, b, tmp, &pk.pk0);
    poly::mul_acc(params, a, tmp, &pk.pk1);
    let e1 = poly::sample_cbd(rng, n);
    poly::small_to_rns(params, &e1, tmp);
    poly::fwd(params, tmp);
    poly::normalize(params, tmp);
    poly::add_assign(params, a, tmp);
    for (i, plan) in params.inner.plans.iter().enumerate() {
        let sc = &scale[i * n..(i + 1) * n];
        plan.mul_assign_normalize(&mut b[i * n..(i + 1) * n], sc);
        plan.mul_assign_normalize(&mut a[i * n..(i + 1) * n], sc);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{BatchNormShape, Conv2dShape, FcShape, Padding, PlanOptions, Preset, reference};
    use fusion_core::ring::Ring;
    use rand::RngExt;

    #[test]
    fn encode_scaled_is_q_over_t_times_m_rounded() {
        let params = Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
        let n = params.degree();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let ring = params.ring();
        let msg: Vec<u64> = (0..n)
            .map(|i| {
                if i < 8 {
                    [0, 1, 2, ring.mask(), 1 << 36, 77, 5, 6][i]
                } else {
                    ring.random(&mut rng)
                }
            })
            .collect();
        let mut out = vec![0u64; params.primes().len() * n];
        encode_scaled(&params, &msg, false, &mut rng, &mut out);
        // With v = floor(q m / t) + bump and rho = q m mod t: t v = q m - rho + t bump,
        // so modulo each p_i (q = 0): t v + rho = t bump, with the same bump in {0, 1}.
        let q: u128 = params.primes().iter().map(|&p| p as u128).product();
        let t = 1u128 << 37;
        let mut ups = 0;
        for (j, &m) in msg.iter().enumerate() {
            let rho = ((q % t) * m as u128) % t;
            let bumps: Vec<u64> = params
                .primes()
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let lhs = (t % p as u128 * out[i * n + j] as u128 + rho) % p as u128;
                    (lhs * crate::arith::inv_mod((t % p as u128) as u64, p) as u128 % p as u128)
                        as u64
                })
                .collect();
            assert!(
                bumps.iter().all(|&b| b == bumps[0]) && bumps[0] <= 1,
                "j {j}: {bumps:?}"
            );
            ups += bumps[0];
            if rho == 0 {
                assert_eq!(bumps[0], 0, "exact values are never rounded up");
            }
        }
        // Randomised rounding goes up about half the time on random messages.
        assert!((1500..2600).contains(&ups), "{ups}");
    }

    struct Measured {
        pre_flood_log2: f64,
        final_log2: f64,
        samples: usize,
    }

    /// Runs `trials` calls and measures the noise of every result: before flooding
    /// and modulus switching (at modulus q, three-prime presets only) and after, in
    /// units of 2^(l + k_a).
    fn measure(
        layer: &ServerLinear,
        want: &dyn Fn(&[u64]) -> Vec<u64>,
        trials: usize,
        seed: u64,
    ) -> Measured {
        let plan = layer.plan();
        let params = plan.params().clone();
        let p = &params.inner;
        let ring = params.ring();
        let n = p.n;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut pre_max = f64::NEG_INFINITY;
        let mut fin_max = 0f64;
        let mut samples = 0;
        for _ in 0..trials {
            let client = HeClient::new(&params, &mut rng);
            let server = if params.reply_packing_levels() > 0 {
                let gk = client.galois_keys(&mut rng).unwrap();
                HeServer::with_galois_keys(client.public_key(), &gk).unwrap()
            } else {
                HeServer::new(client.public_key())
            };
            let x: Vec<u64> = (0..plan.input_len())
                .map(|_| ring.random(&mut rng))
                .collect();
            let (xc, xs): (Vec<u64>, Vec<u64>) = x.iter().map(|&v| ring.share(v, &mut rng)).unzip();
            let y = want(&x);
            let q = client.encrypt(plan, &xc, &mut rng).unwrap();
            let probe = Mutex::new(Vec::new());
            let (reply, ys) = layer
                .respond_impl(&server, &q, Some(&xs), &mut rng, Some(&probe))
                .unwrap();
            // Before flooding, at modulus q (exact CRT with big integers).
            {
                use num_bigint::BigUint;
                use num_traits::ToPrimitive;
                let l = p.ring.bits();
                let qq: BigUint = p.primes.iter().map(|&x| BigUint::from(x)).product();
                let crt: Vec<BigUint> = p
                    .primes
                    .iter()
                    .map(|&pi| {
                        let qs = &qq / pi;
                        let inv = crate::arith::inv_mod(
                            (&qs % pi).to_u64_digits().first().copied().unwrap_or(0),
                            pi,
                        );
                        (qs * inv) % &qq
                    })
                    .collect();
                let t = BigUint::from(1u8) << l;
                let half_q = &qq >> 1;
                for pr in probe.into_inner().unwrap() {
                    let mut a = pr.a.clone();
                    crate::poly::fwd(&params, &mut a);
                    crate::poly::normalize(&params, &mut a);
                    let mut neg_as = vec![0u64; a.len()];
                    crate::poly::mul_acc(&params, &mut neg_as, &a, client.secret_key().neg_s_ntt());
                    crate::poly::inv(&params, &mut neg_as);
                    for (idx, coef, b) in &pr.outputs {
                        let coef = *coef;
                        let mut phase = BigUint::from(0u8);
                        for (i, &pi) in p.primes.iter().enumerate() {
                            phase += &crt[i] * ((b[i] + pi - neg_as[i * n + coef]) % pi);
                        }
                        let phase = phase % &qq;
                        // round(q z / t)
                        let scaled = ((&qq * y[*idx] + (&t >> 1u8)) / &t) % &qq;
                        let e = (phase + &qq - scaled) % &qq;
                        let e = if e > half_q { &qq - e } else { e };
                        pre_max = pre_max.max(e.to_f64().unwrap_or(f64::INFINITY).log2());
                    }
                }
            }
            // After: the client's phases.
            let mut off = 5;
            let ka = p.ring.bits() + p.k_a;
            for ct in 0..plan.output_cts() {
                let (sa, sb) = Reply::segment(plan, ct);
                for (idx, ph) in client.phases(plan, ct, &reply.bytes[off..off + sa + sb]) {
                    let z = ring.sub(y[idx], ys[idx]) as u128;
                    let eta = ph.wrapping_sub(z << p.k_a) & crate::arith::mask128(ka);
                    let eta = if eta >> (ka - 1) == 1 {
                        (crate::arith::mask128(ka) - eta + 1) as f64
                    } else {
                        eta as f64
                    };
                    fin_max = fin_max.max(eta);
                    samples += 1;
                }
                off += sa + sb;
            }
            let yc = client.decrypt(plan, &reply).unwrap();
            for i in 0..y.len() {
                assert_eq!(ring.reconstruct(yc[i], ys[i]), y[i]);
            }
        }
        Measured {
            pre_flood_log2: pre_max.max(0.0),
            final_log2: fin_max.max(1.0).log2(),
            samples,
        }
    }

    fn check(name: &str, layer: &ServerLinear, m: &Measured) {
        let plan = layer.plan();
        let params = plan.params();
        let nz = plan.noise();
        let k_a = params.reply_a_extra_bits() as f64;
        let total_log2 = k_a - 1.0 - nz.margin_bits;
        // Packed: the high-probability bound of E + nu plus the worst-case
        // key-switching noise (which needs no flooding, see crate::pack).
        let ks = plan
            .packing()
            .map_or(0.0, |p| 2f64.powf(p.key_switch_noise_log2));
        let stat = (2f64.powf(nz.stat_noise_log2(params, layer.weight_bits())) + ks).log2();
        println!(
            "[noise] {name}: {} samples; {}before flooding max |E| = 2^{:.1} (high-probability bound 2^{stat:.1}, \
             worst case 2^{:.1}, room to the threshold 2^{:.1}: {:.1} bits); after switching max |eta| = 2^{:.2} \
             of threshold 2^{} (worst-case bound 2^{total_log2:.2}, margin {:.2} bits, measured margin {:.2} bits); \
             flooding 2^{} gives {:.1} bits at weights 2^{}",
            m.samples,
            plan.packing().map_or(String::new(), |p| format!(
                "packed {} -> {} cts (depth {}, worst-case key-switching noise 2^{:.1}); ",
                plan.result_cts(),
                p.reply_cts,
                p.depth,
                p.key_switch_noise_log2
            )),
            m.pre_flood_log2,
            nz.layer_noise_log2,
            nz.threshold_log2,
            nz.threshold_log2 - m.pre_flood_log2,
            m.final_log2,
            k_a - 1.0,
            nz.margin_bits,
            k_a - 1.0 - m.final_log2,
            nz.flood_bits,
            layer.flood_security_bits(),
            layer.weight_bits(),
        );
        assert!(
            m.pre_flood_log2 <= stat,
            "{name}: pre-flood noise above the high-probability bound"
        );
        assert!(m.pre_flood_log2 <= nz.layer_noise_log2);
        assert!(
            m.final_log2 <= total_log2 + 1e-9,
            "{name}: final noise above the worst-case bound"
        );
        assert!(m.final_log2 < k_a - 1.0);
    }

    #[test]
    fn measured_noise_stays_below_the_analytic_bounds() {
        let opts = PlanOptions::default();
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let p37 = Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
        let r = p37.ring();
        let mut w = |ring: Ring, len: usize, bits: u32| -> Vec<u64> {
            (0..len)
                .map(|_| ring.from_signed(rng.random_range(-(1i64 << bits)..=(1i64 << bits))))
                .collect()
        };
        // FC, N = 4096, l = 37, |w| <= 2^15.
        let shape = FcShape::new(16, 784, 16);
        let wf = w(r, 784 * 16, 15);
        let layer =
            ServerLinear::fc(LinearPlan::fc(&p37, shape, &opts).unwrap(), &wf, None).unwrap();
        let m = measure(&layer, &|x| reference::fc(r, &shape, x, &wf, None), 10, 1);
        check("fc 784->16 b16, N4096 l37", &layer, &m);
        // Convolution.
        let cs = Conv2dShape::new(2, 8, 12, 12, 8, 5, 1, Padding::Same);
        let wc = w(r, cs.weight_len(), 15);
        let layer =
            ServerLinear::conv2d(LinearPlan::conv2d(&p37, cs, &opts).unwrap(), &wc, None).unwrap();
        let m = measure(&layer, &|x| reference::conv2d(r, &cs, x, &wc, None), 5, 2);
        check("conv 12x12x8 5x5 8 SAME b2, N4096 l37", &layer, &m);
        // Batch norm.
        let bs = BatchNormShape::new(4, 8, 10, 10);
        let wb = w(r, 8, 15);
        let layer =
            ServerLinear::batch_norm(LinearPlan::batch_norm(&p37, bs, &opts).unwrap(), &wb, None)
                .unwrap();
        let m = measure(
            &layer,
            &|x| reference::batch_norm(r, &bs, x, &wb, None),
            5,
            3,
        );
        check("batch norm 10x10x8 b4, N4096 l37", &layer, &m);
        // N = 8192, l = 64, full-range weights.
        let p64 = Preset::N8192.params(Ring::new(64).unwrap()).unwrap();
        let r64 = p64.ring();
        let shape = FcShape::new(8, 300, 8);
        let wf: Vec<u64> = (0..2400).map(|_| r64.random(&mut rng)).collect();
        let layer =
            ServerLinear::fc(LinearPlan::fc(&p64, shape, &opts).unwrap(), &wf, None).unwrap();
        let m = measure(&layer, &|x| reference::fc(r64, &shape, x, &wf, None), 4, 4);
        check("fc 300->8 b8, N8192 l64, full-range weights", &layer, &m);

        // Response packing at the default depth: FC (batched, deepest groups),
        // a strided convolution and per-feature scaling; N = 8192, l = 64.
        let pk37 = Preset::N4096
            .builder(Ring::new(37).unwrap())
            .reply_packing(crate::DEFAULT_PACKING_LEVELS)
            .build()
            .unwrap();
        let bytes = PlanOptions::minimise_bytes();
        let mut rng2 = ChaCha20Rng::seed_from_u64(101);
        let mut rng = ChaCha20Rng::seed_from_u64(100);
        let mut w = |ring: Ring, len: usize, bits: u32| -> Vec<u64> {
            (0..len)
                .map(|_| ring.from_signed(rng.random_range(-(1i64 << bits)..=(1i64 << bits))))
                .collect()
        };
        let shape = FcShape::new(16, 784, 128);
        let wf = w(r, 784 * 128, 15);
        let plan = LinearPlan::fc(&pk37, shape, &bytes).unwrap();
        assert_eq!(plan.packing().map(|p| p.depth), Some(7));
        let layer = ServerLinear::fc(plan, &wf, None).unwrap();
        let m = measure(&layer, &|x| reference::fc(r, &shape, x, &wf, None), 2, 5);
        check("packed fc 784->128 b16, N4096 l37", &layer, &m);
        let cs = Conv2dShape::new(64, 4, 4, 4, 8, 4, 1, Padding::Valid);
        let wc = w(r, cs.weight_len(), 15);
        let plan = LinearPlan::conv2d(&pk37, cs, &bytes).unwrap();
        assert!(plan.packing().is_some());
        let layer = ServerLinear::conv2d(plan, &wc, None).unwrap();
        let m = measure(&layer, &|x| reference::conv2d(r, &cs, x, &wc, None), 3, 6);
        check("packed conv 4x4x4 4x4 8 VALID b64, N4096 l37", &layer, &m);
        let bs = BatchNormShape::new(64, 64, 1, 1);
        let wb = w(r, 64, 15);
        let blk = crate::Blocking {
            images: 64,
            channels: 4,
            filters: 4,
            height: 1,
            width: 1,
        };
        let plan =
            LinearPlan::with_blocking(&pk37, crate::LayerKind::BatchNorm(bs), blk, &bytes).unwrap();
        assert!(plan.packing().is_some());
        let layer = ServerLinear::batch_norm(plan, &wb, None).unwrap();
        let m = measure(
            &layer,
            &|x| reference::batch_norm(r, &bs, x, &wb, None),
            3,
            7,
        );
        check("packed per-feature scaling 64 b64, N4096 l37", &layer, &m);
        let pk64 = Preset::N8192
            .builder(Ring::new(64).unwrap())
            .reply_packing(crate::DEFAULT_PACKING_LEVELS)
            .build()
            .unwrap();
        let shape = FcShape::new(32, 256, 64);
        let wf: Vec<u64> = (0..256 * 64).map(|_| r64.random(&mut rng2)).collect();
        let plan = LinearPlan::fc(&pk64, shape, &bytes).unwrap();
        assert!(plan.packing().is_some());
        let layer = ServerLinear::fc(plan, &wf, None).unwrap();
        let m = measure(&layer, &|x| reference::fc(r64, &shape, x, &wf, None), 2, 8);
        check(
            "packed fc 256->64 b32, N8192 l64, full-range weights",
            &layer,
            &m,
        );
    }
}
