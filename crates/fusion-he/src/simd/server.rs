//! The server's half of the SIMD layers: the session state made from the
//! client's keys ([`SimdServer`]), a layer's encoded weights ([`SimdLinear`])
//! and the answer to a query ([`SimdLinear::respond`], or
//! [`SimdLinear::respond_bytes`] from the received bytes).
//!
//! **Computes.** Per call: `Enc(x_c) + x_s = Enc(x)` in the plan's slots (the
//! server adds its share into the ciphertexts, as the coefficient path does),
//! the layer's circuit ([`super::fc`], [`super::conv`], [`super::affine`]),
//! then per output ciphertext: subtracts the encoding of a fresh uniform mask
//! `r` in every slot, adds an encryption of zero under the client's public key
//! `(u pk0 + e0, u pk1 + e1)`, floods every `b` coefficient with uniform noise
//! in `[-2^beta, 2^beta)` ([`super::SimdNoise`]), switches `a` to `2^k_a` and
//! `b` to `2^k_b` and sends them. Its output share is `r + bias` at the output
//! slots. The measured key switches and products come back in
//! [`SimdResponse::counts`].
//!
//! **Learns.** IND-CPA ciphertexts under the client's key only; the Galois and
//! public keys are public data.

use std::sync::Arc;

use rand::{CryptoRng, Rng};
use rayon::prelude::*;
use zeroize::Zeroize;

use super::affine::AffineWeights;
use super::cipher::encode_scaled;
use super::client::check_field;
use super::conv::ConvWeights;
use super::eval::Ctx;
use super::fc::FcWeights;
use super::params::SimdParams;
use super::plan::{Circuit, EMPTY, SimdCounts, SimdLayer, SimdPlan};
use super::rotation::{PreparedRotations, SimdGaloisKeys};
use super::wire::{SimdQuery, SimdReply, TAG_REPLY, decode_galois_keys, decode_public_key};
use crate::arith::{add_signed_mod, reduce_once};
use crate::error::HeError;
use crate::finalize::flood_residue;
use crate::keys::{PreparedPk, PublicKey};
use crate::linear::stream_rng;
use crate::poly;
use crate::wire::BitWriter;

/// The server's session state: the client's public key and Galois keys, prepared.
#[derive(Debug, Clone)]
pub struct SimdServer {
    params: SimdParams,
    pk: Arc<PreparedPk>,
    pub(crate) rots: Option<Arc<PreparedRotations>>,
}

impl SimdServer {
    /// From the client's public key and (for layers that rotate) Galois keys.
    pub fn new(
        params: &SimdParams,
        pk: &PublicKey,
        gk: Option<&SimdGaloisKeys>,
    ) -> Result<Self, HeError> {
        if pk.params() != params.he() || gk.is_some_and(|g| g.params != *params) {
            return Err(HeError::ParamMismatch(
                "the client's keys use other SIMD parameters".into(),
            ));
        }
        Ok(SimdServer {
            params: params.clone(),
            pk: Arc::new(PreparedPk::new(pk)),
            rots: gk.map(|g| Arc::new(PreparedRotations::new(g))),
        })
    }

    /// From the client's setup messages ([`super::SimdClient::setup_messages`]).
    pub fn from_setup_messages(
        params: &SimdParams,
        public_key: &[u8],
        galois_keys: Option<&[u8]>,
    ) -> Result<Self, HeError> {
        let pk = decode_public_key(params, public_key)?;
        let gk = galois_keys
            .map(|b| decode_galois_keys(params, b))
            .transpose()?;
        SimdServer::new(params, &pk, gk.as_ref())
    }

    /// The parameters.
    pub fn params(&self) -> &SimdParams {
        &self.params
    }

    fn check_keys(&self, plan: &SimdPlan) -> Result<(), HeError> {
        let missing = plan
            .galois
            .elements()
            .iter()
            .any(|&g| !self.rots.as_ref().is_some_and(|r| r.has(g)));
        if missing {
            return Err(HeError::ParamMismatch(
                "the client's Galois keys do not cover this layer's rotations".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) enum Weights {
    Fc(FcWeights),
    Conv(ConvWeights),
    Affine(AffineWeights),
}

/// A layer's weights, encoded once for the server.
pub struct SimdLinear {
    plan: SimdPlan,
    pub(crate) weights: Weights,
    bias: Vec<u64>,
}

impl std::fmt::Debug for SimdLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimdLinear")
            .field("layer", &self.plan.layer)
            .finish_non_exhaustive()
    }
}

/// The server's answer to one query.
#[derive(Debug, Clone)]
pub struct SimdResponse {
    /// The reply for the client.
    pub reply: SimdReply,
    /// The server's output share `r + bias`.
    pub server_share: Vec<u64>,
    /// The measured ciphertexts and operations (equal to [`SimdPlan::analytic_counts`]).
    pub counts: SimdCounts,
}

fn check_bias(plan: &SimdPlan, bias: Option<&[u64]>) -> Result<Vec<u64>, HeError> {
    match bias {
        None => Ok(Vec::new()),
        Some(b) => {
            check_field(&plan.params, b, plan.layer.out_channels(), "bias")?;
            Ok(b.to_vec())
        }
    }
}

impl SimdLinear {
    /// Weights `[out_features][in_features]` and bias `[out_features]` (in `[0, p)`).
    pub fn fc(plan: SimdPlan, weights: &[u64], bias: Option<&[u64]>) -> Result<Self, HeError> {
        let (SimdLayer::Fc(shape), Circuit::Fc(c)) = (&plan.layer, &plan.circuit) else {
            return Err(HeError::InvalidShape(
                "SimdLinear::fc needs an FC plan".into(),
            ));
        };
        check_field(
            &plan.params,
            weights,
            shape.in_features * shape.out_features,
            "weights",
        )?;
        let bias = check_bias(&plan, bias)?;
        let weights = Weights::Fc(FcWeights::new(&plan.params, c, weights.to_vec()));
        Ok(SimdLinear {
            plan,
            weights,
            bias,
        })
    }

    /// Weights `[out_channels][in_channels][kernel_h][kernel_w]` and bias `[out_channels]`.
    pub fn conv2d(plan: SimdPlan, weights: &[u64], bias: Option<&[u64]>) -> Result<Self, HeError> {
        let (SimdLayer::Conv2d(shape), Circuit::Conv(c)) = (&plan.layer, &plan.circuit) else {
            return Err(HeError::InvalidShape(
                "SimdLinear::conv2d needs a convolution plan".into(),
            ));
        };
        check_field(&plan.params, weights, shape.weight_len(), "weights")?;
        let bias = check_bias(&plan, bias)?;
        let weights = Weights::Conv(ConvWeights::new(&plan.params, c, weights.to_vec()));
        Ok(SimdLinear {
            plan,
            weights,
            bias,
        })
    }

    /// Per-channel `scale` and optional `shift` (`[channels]`).
    pub fn affine(plan: SimdPlan, scale: &[u64], shift: Option<&[u64]>) -> Result<Self, HeError> {
        let SimdLayer::Affine(shape) = plan.layer else {
            return Err(HeError::InvalidShape(
                "SimdLinear::affine needs an affine plan".into(),
            ));
        };
        check_field(&plan.params, scale, shape.channels, "scale")?;
        let bias = check_bias(&plan, shift)?;
        let weights = Weights::Affine(AffineWeights::new(
            &plan.params,
            shape,
            scale.to_vec(),
            plan.input_cts(),
        ));
        Ok(SimdLinear {
            plan,
            weights,
            bias,
        })
    }

    /// The plan.
    pub fn plan(&self) -> &SimdPlan {
        &self.plan
    }

    /// Step 2 from the received bytes: checks the query, answers, encodes the reply.
    pub fn respond_bytes<R: Rng + CryptoRng + ?Sized>(
        &self,
        server: &SimdServer,
        query: &[u8],
        x_server: &[u64],
        rng: &mut R,
    ) -> Result<(Vec<u8>, Vec<u64>), HeError> {
        let q = SimdQuery::from_bytes(&self.plan, query)?;
        let r = self.respond(server, &q, x_server, rng)?;
        Ok((r.reply.bytes, r.server_share))
    }

    /// Step 2: the reply and the server's output share.
    pub fn respond<R: Rng + CryptoRng + ?Sized>(
        &self,
        server: &SimdServer,
        query: &SimdQuery,
        x_server: &[u64],
        rng: &mut R,
    ) -> Result<SimdResponse, HeError> {
        let plan = &self.plan;
        let params = &plan.params;
        if *params != server.params {
            return Err(HeError::ParamMismatch(
                "plan and server session use different SIMD parameters".into(),
            ));
        }
        server.check_keys(plan)?;
        check_field(params, x_server, plan.layer.input_len(), "server share")?;
        let he = params.he();
        let n = he.degree();
        let stride = he.primes().len() * n;
        if query.cts.len() != plan.input_cts() * stride {
            return Err(HeError::MessageLength {
                what: "SIMD query",
                expected: plan.input_cts() * stride,
                found: query.cts.len(),
            });
        }
        // Enc(x_c) + x_s, in working form.
        let inputs: Vec<Vec<u64>> = (0..plan.input_cts())
            .into_par_iter()
            .map(|i| {
                let mut ct = vec![0u64; 2 * stride];
                let (b, a) = ct.split_at_mut(stride);
                b.copy_from_slice(&query.cts[i * stride..(i + 1) * stride]);
                poly::expand_uniform(he, &query.seed, i as u64, a);
                let mut slots: Vec<u64> = plan.in_maps[i]
                    .iter()
                    .map(|&idx| {
                        if idx == EMPTY {
                            0
                        } else {
                            x_server[idx as usize]
                        }
                    })
                    .collect();
                let mut coeffs = vec![0u64; n];
                params.encoder().encode_into(&slots, &mut coeffs);
                let mut xs = vec![0u64; stride];
                encode_scaled(params, &coeffs, &mut xs);
                poly::fwd(he, &mut xs);
                poly::add_assign(he, b, &xs);
                poly::normalize(he, b);
                poly::normalize(he, a);
                slots.zeroize();
                coeffs.zeroize();
                xs.zeroize();
                ct
            })
            .collect();
        let ctx = Ctx::new(params, server.rots.as_deref());
        let outs = match (&plan.circuit, &self.weights) {
            (Circuit::Fc(c), Weights::Fc(w)) => super::fc::eval(&ctx, c, w, &inputs)?,
            (Circuit::Conv(c), Weights::Conv(w)) => super::conv::eval(&ctx, c, w, &inputs)?,
            (Circuit::Affine, Weights::Affine(w)) => super::affine::eval(&ctx, w, &inputs)?,
            _ => return Err(HeError::Internal("plan and weights disagree".into())),
        };
        let mut master = [0u8; 32];
        rng.fill_bytes(&mut master);
        let parts: Vec<Finished> = outs
            .into_par_iter()
            .enumerate()
            .map(|(o, ct)| finish(plan, &server.pk, o, ct, &mut stream_rng(&master, o as u64)))
            .collect();
        master.zeroize();
        let mut bytes =
            crate::wire::header(TAG_REPLY, plan.output_cts() as u32, plan.reply_bytes_len());
        let mut share = vec![0u64; plan.layer.output_len()];
        let f = params.field();
        for (seg, masks) in parts {
            bytes.extend_from_slice(&seg);
            for (idx, r) in masks {
                let b = if self.bias.is_empty() {
                    0
                } else {
                    self.bias[plan.layer.channel_of_output(idx as usize)]
                };
                share[idx as usize] = f.add(r, b);
            }
        }
        let (rotations, plaintext_mults) = ctx.counts();
        Ok(SimdResponse {
            reply: SimdReply { bytes },
            server_share: share,
            counts: SimdCounts {
                input_cts: plan.input_cts(),
                output_cts: plan.output_cts(),
                rotations,
                plaintext_mults,
            },
        })
    }
}

/// A reply ciphertext's bytes and the masks `(output index, r)` of its output slots.
type Finished = (Vec<u8>, Vec<(u32, u64)>);

/// Masks, re-randomises, floods, switches modulus and encodes output
/// ciphertext `o`; returns its bytes and the masks of its output slots.
fn finish(
    plan: &SimdPlan,
    pk: &PreparedPk,
    o: usize,
    mut ct: Vec<u64>,
    rng: &mut rand::rngs::ChaCha20Rng,
) -> Finished {
    let params = &plan.params;
    let inner = &params.inner;
    let he = params.he();
    let n = he.degree();
    let primes = he.primes();
    let stride = primes.len() * n;
    let f = params.field();
    let (b, a) = ct.split_at_mut(stride);
    // Encryption of zero (u pk0, u pk1) in evaluation form.
    let u = poly::sample_ternary(rng, n);
    let mut uu = vec![0u64; stride];
    poly::small_to_rns(he, &u, &mut uu);
    poly::fwd(he, &mut uu);
    poly::mul_acc(he, b, &uu, &pk.pk0);
    poly::mul_acc(he, a, &uu, &pk.pk1);
    uu.zeroize();
    poly::inv(he, b);
    poly::inv(he, a);
    // The mask r in every slot, subtracted as round(q [r]/p).
    let mut r: Vec<u64> = (0..n).map(|_| f.random(rng)).collect();
    let mut coeffs = vec![0u64; n];
    params.encoder().encode_into(&r, &mut coeffs);
    let mut enc_r = vec![0u64; stride];
    encode_scaled(params, &coeffs, &mut enc_r);
    crate::arith::sub_mod_slice_rns(he, b, &enc_r);
    coeffs.zeroize();
    enc_r.zeroize();
    // Noise, flooding, modulus switching.
    let beta = plan.noise.flood_bits;
    let limbs_n = (beta as usize + 1).div_ceil(64);
    let top_bits = (beta + 1) - 64 * (limbs_n as u32 - 1);
    let top_mask = if top_bits == 64 {
        u64::MAX
    } else {
        (1u64 << top_bits) - 1
    };
    let two_beta: Vec<u64> = primes
        .iter()
        .map(|&q| crate::arith::pow2_mod(beta, q))
        .collect();
    let (ka, kb) = (inner.ka, inner.kb);
    let mut seg = Vec::with_capacity(params.reply_ct_bytes());
    let mut res = [0u64; 16];
    let np = primes.len();
    {
        let mut w = BitWriter::new(&mut seg);
        for j in 0..n {
            let e1 = poly::cbd(rng);
            for i in 0..np {
                res[i] = add_signed_mod(a[i * n + j], e1, primes[i]);
            }
            w.put(inner.scale_a.apply(res[..np].iter().copied(), primes), ka);
        }
        w.finish();
    }
    {
        let mut w = BitWriter::new(&mut seg);
        let mut limbs = [0u64; 8];
        for j in 0..n {
            let e0 = poly::cbd(rng);
            for (k, limb) in limbs.iter_mut().enumerate().take(limbs_n) {
                let v = rng.next_u64();
                *limb = if k + 1 == limbs_n { v & top_mask } else { v };
            }
            for i in 0..np {
                let q = primes[i];
                let fl = flood_residue(&he.inner.pow2_64[i], &limbs[..limbs_n], two_beta[i], q);
                res[i] = reduce_once(add_signed_mod(b[i * n + j], e0, q) + fl, q);
            }
            w.put(inner.scale_b.apply(res[..np].iter().copied(), primes), kb);
        }
        w.finish();
    }
    let masks = plan.out_maps[o]
        .iter()
        .map(|&(slot, idx)| (idx, r[slot as usize]))
        .collect();
    r.zeroize();
    (seg, masks)
}
