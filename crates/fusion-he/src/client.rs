//! The client's half of the linear layers ([`crate::linear`] has the protocol):
//! key generation, the encryption of its input share into a [`Query`], and the
//! decryption of the server's [`Reply`] into its output share.
//!
//! **Computes.** At setup the key pair ([`HeClient::new`]) and, with response
//! packing, the Galois keys; the messages [`HeClient::public_key_msg`] and
//! [`HeClient::galois_key_msg`] go to the server once. Per layer call: the query
//! ([`HeClient::encrypt`], or [`HeClient::query_bytes`] for its encoding) and,
//! from the reply, the output share `W x - r` ([`HeClient::decrypt`], or
//! [`HeClient::decrypt_bytes`] from the received bytes). I/O-free: any driver can
//! move the bytes (fusion-engine's `cheetah` backend has one).
//!
//! **Learns.** Only its output share `W x - r` (uniform); the reply is
//! simulatable from it (see [`crate::noise`]). The secret key never leaves this
//! type and is zeroized on drop ([`SecretKey`]).

use rand::{CryptoRng, Rng};
use rayon::prelude::*;
use zeroize::Zeroize;

use crate::error::HeError;
use crate::keys::{GaloisKeys, PublicKey, SecretKey};
use crate::linear::{check_ring, encode_scaled, stream_rng};
use crate::params::HeParams;
use crate::plan::LinearPlan;
use crate::poly;
use crate::wire::{BitReader, GaloisKeyMsg, PublicKeyMsg, Query, Reply, TAG_REPLY};

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

    /// The setup messages for the server, in the order it expects them: the
    /// public key, then, if the parameters enable response packing, fresh Galois
    /// keys (`None` otherwise). Sent once per session.
    pub fn setup_messages<R: Rng + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<(PublicKeyMsg, Option<GaloisKeyMsg>), HeError> {
        let gk = if self.params.reply_packing_levels() > 0 {
            Some(self.galois_key_msg(rng)?)
        } else {
            None
        };
        Ok((self.public_key_msg(), gk))
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
        let qr = &params.inner.query_rounding;
        let per = n * qr.limbs;
        let mut rounded = vec![0u64; plan.input_cts() * per];
        rounded.par_chunks_mut(per).enumerate().for_each_init(
            || (vec![0u64; n], vec![0u64; stride], vec![0u64; stride]),
            |(coeffs, b, a), (ct, out)| {
                let mut r = stream_rng(&master, ct as u64);
                plan.layout.encode_input(&xc, ct, coeffs);
                encode_scaled(params, coeffs, true, &mut r, b);
                coeffs[..].zeroize();
                poly::fwd(params, b);
                poly::expand_uniform(params, &seed, ct as u64, a);
                poly::mul_acc(params, b, a, self.sk.neg_s_ntt());
                // Back to coefficients, then rounded (crate::query_rounding).
                poly::normalize(params, b);
                poly::inv(params, b);
                qr.round(params.primes(), b, &mut r, out);
                b[..].zeroize();
            },
        );
        master.zeroize();
        Ok(Query { seed, rounded })
    }

    /// Step 1 with its encoding: the query message for `plan` from the client's
    /// share ([`HeClient::encrypt`] then [`Query::to_bytes`];
    /// [`Query::expected_len`] bytes).
    pub fn query_bytes<R: Rng + CryptoRng + ?Sized>(
        &self,
        plan: &LinearPlan,
        x_client: &[u64],
        rng: &mut R,
    ) -> Result<Vec<u8>, HeError> {
        Ok(self.encrypt(plan, x_client, rng)?.to_bytes(plan))
    }

    /// Step 3 from the received bytes: checks the reply message for `plan`
    /// ([`Reply::from_bytes`]) and decrypts it into the client's output share
    /// ([`HeClient::decrypt`]).
    pub fn decrypt_bytes(&self, plan: &LinearPlan, reply: Vec<u8>) -> Result<Vec<u64>, HeError> {
        self.decrypt(plan, &Reply::from_bytes(plan, reply)?)
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
    pub(crate) fn phases(&self, plan: &LinearPlan, ct: usize, seg: &[u8]) -> Vec<(usize, u128)> {
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
