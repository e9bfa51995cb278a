//! The client's half of the SIMD layers: keys, the encryption of its input
//! share into a [`SimdQuery`], and the decryption of the server's
//! [`SimdReply`] into its output share.
//!
//! **Computes.** At setup a ternary key pair and the Galois keys of the
//! session's rotations (messages [`SimdClient::public_key_msg`],
//! [`SimdClient::galois_key_msg`]). Per layer call: its share `x_c` placed in
//! the plan's slots, batch-encoded, scaled by `q/p`, encrypted under `s` with
//! the `a` polynomials from one 32-byte seed; from the reply, the phase
//! `2^(k_a - k_b) b'' + a'' s mod 2^k_a`, the coefficients
//! `round(p phase / 2^k_a) mod p` and their slots: `W x - r` at the output slots.
//!
//! **Learns.** Only its output share `W x - r` (every slot masked by a fresh
//! uniform `r`); the reply is re-randomised and flooded ([`super`]). The secret
//! key never leaves this type and is zeroized on drop.

use rand::{CryptoRng, Rng};
use rayon::prelude::*;
use zeroize::Zeroize;

use super::cipher::encode_scaled;
use super::params::SimdParams;
use super::plan::{EMPTY, SimdPlan};
use super::rotation::{GaloisSet, SimdGaloisKeys};
use super::wire::{SimdQuery, SimdReply, encode_galois_keys, encode_public_key};
use crate::arith::signed_residue;
use crate::error::HeError;
use crate::keys::{PublicKey, SecretKey};
use crate::linear::stream_rng;
use crate::poly;

/// The client of the SIMD layers: owns the session's secret key.
pub struct SimdClient {
    params: SimdParams,
    sk: SecretKey,
    pk: PublicKey,
    /// `s` in evaluation form modulo the decryption primes.
    s_dec: Vec<u64>,
}

impl std::fmt::Debug for SimdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimdClient")
            .field("degree", &self.params.degree())
            .finish_non_exhaustive()
    }
}

impl Drop for SimdClient {
    fn drop(&mut self) {
        self.s_dec.zeroize();
    }
}

impl SimdClient {
    /// A fresh key pair.
    pub fn new<R: Rng + CryptoRng + ?Sized>(params: &SimdParams, rng: &mut R) -> Self {
        let he = params.he();
        let sk = SecretKey::generate(he, rng);
        let pk = sk.public_key(rng);
        let n = he.degree();
        let dec = params.inner.dec_primes;
        let mut s_dec = vec![0u64; dec * n];
        for (i, block) in s_dec.chunks_exact_mut(n).enumerate() {
            let q = he.primes()[i];
            for (o, &c) in block.iter_mut().zip(sk.coeffs()) {
                *o = signed_residue(c, q);
            }
            he.inner.plans[i].fwd(block);
        }
        SimdClient {
            params: params.clone(),
            sk,
            pk,
            s_dec,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &SimdParams {
        &self.params
    }

    /// The public key message (once, at setup).
    pub fn public_key_msg(&self) -> Vec<u8> {
        encode_public_key(&self.params, &self.pk)
    }

    /// Fresh Galois keys for `set`.
    pub fn galois_keys<R: Rng + CryptoRng + ?Sized>(
        &self,
        set: &GaloisSet,
        rng: &mut R,
    ) -> SimdGaloisKeys {
        SimdGaloisKeys::generate(&self.params, &self.sk, set, rng)
    }

    /// The Galois key message for `set` (once, at setup).
    pub fn galois_key_msg<R: Rng + CryptoRng + ?Sized>(
        &self,
        set: &GaloisSet,
        rng: &mut R,
    ) -> Vec<u8> {
        encode_galois_keys(&self.galois_keys(set, rng))
    }

    /// The setup messages: the public key and the Galois keys for `set`.
    pub fn setup_messages<R: Rng + CryptoRng + ?Sized>(
        &self,
        set: &GaloisSet,
        rng: &mut R,
    ) -> (Vec<u8>, Vec<u8>) {
        (self.public_key_msg(), self.galois_key_msg(set, rng))
    }

    /// Step 1: encrypts the client's share (the layer's input tensor, values in `[0, p)`).
    pub fn encrypt<R: Rng + CryptoRng + ?Sized>(
        &self,
        plan: &SimdPlan,
        x_client: &[u64],
        rng: &mut R,
    ) -> Result<SimdQuery, HeError> {
        if plan.params != self.params {
            return Err(HeError::ParamMismatch(
                "plan and client key use different SIMD parameters".into(),
            ));
        }
        check_field(
            &self.params,
            x_client,
            plan.layer.input_len(),
            "client share",
        )?;
        let he = self.params.he();
        let n = he.degree();
        let stride = he.primes().len() * n;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut master = [0u8; 32];
        rng.fill_bytes(&mut master);
        let mut cts = vec![0u64; plan.input_cts() * stride];
        cts.par_chunks_mut(stride).enumerate().for_each_init(
            || (vec![0u64; n], vec![0u64; n], vec![0u64; stride]),
            |(slots, coeffs, a), (ct, b)| {
                let mut r = stream_rng(&master, ct as u64);
                for (s, &idx) in slots.iter_mut().zip(&plan.in_maps[ct]) {
                    *s = if idx == EMPTY {
                        0
                    } else {
                        x_client[idx as usize]
                    };
                }
                self.params.encoder().encode_into(slots, coeffs);
                encode_scaled(&self.params, coeffs, b);
                let mut e = poly::sample_cbd(&mut r, n);
                for (i, &q) in he.primes().iter().enumerate() {
                    for (x, &ej) in b[i * n..(i + 1) * n].iter_mut().zip(&e) {
                        *x = crate::arith::add_signed_mod(*x, ej, q);
                    }
                }
                e.zeroize();
                // Scratch buffers are reused by this worker's next
                // ciphertext: zero them in place (`Vec::zeroize` would also
                // truncate them to length 0).
                slots.as_mut_slice().zeroize();
                coeffs.as_mut_slice().zeroize();
                poly::fwd(he, b);
                poly::expand_uniform(he, &seed, ct as u64, a);
                poly::mul_acc(he, b, a, self.sk.neg_s_ntt());
            },
        );
        master.zeroize();
        Ok(SimdQuery { seed, cts })
    }

    /// Step 1, encoded ([`SimdPlan::query_bytes_len`] bytes).
    pub fn query_bytes<R: Rng + CryptoRng + ?Sized>(
        &self,
        plan: &SimdPlan,
        x_client: &[u64],
        rng: &mut R,
    ) -> Result<Vec<u8>, HeError> {
        Ok(self.encrypt(plan, x_client, rng)?.to_bytes(plan))
    }

    /// Step 3 from the received bytes.
    pub fn decrypt_bytes(&self, plan: &SimdPlan, reply: Vec<u8>) -> Result<Vec<u64>, HeError> {
        self.decrypt(plan, &SimdReply::from_bytes(plan, reply)?)
    }

    /// Step 3: the client's output share (the layer's output tensor, in `[0, p)`).
    pub fn decrypt(&self, plan: &SimdPlan, reply: &SimdReply) -> Result<Vec<u64>, HeError> {
        if plan.params != self.params {
            return Err(HeError::ParamMismatch(
                "plan and client key use different SIMD parameters".into(),
            ));
        }
        if reply.bytes.len() != super::wire::reply_len(plan) {
            return Err(HeError::MessageLength {
                what: "SIMD reply",
                expected: super::wire::reply_len(plan),
                found: reply.bytes.len(),
            });
        }
        let parts: Vec<Vec<(u32, u64)>> = (0..plan.output_cts())
            .into_par_iter()
            .map(|ct| {
                let slots = self.decrypt_ct(plan, reply, ct);
                plan.out_maps[ct]
                    .iter()
                    .map(|&(slot, idx)| (idx, slots[slot as usize]))
                    .collect()
            })
            .collect();
        let mut out = vec![0u64; plan.layer.output_len()];
        for (idx, v) in parts.into_iter().flatten() {
            out[idx as usize] = v;
        }
        Ok(out)
    }

    fn decrypt_ct(&self, plan: &SimdPlan, reply: &SimdReply, ct: usize) -> Vec<u64> {
        let params = &self.params;
        let inner = &params.inner;
        let he = params.he();
        let n = he.degree();
        let (ka, kb) = (inner.ka, inner.kb);
        let dec = inner.dec_primes;
        let (a, b) = reply.read(plan, ct);
        let mut buf = vec![0u64; dec * n];
        for i in 0..dec {
            let q = he.primes()[i];
            let two_ka = crate::arith::pow2_mod(ka, q);
            let one = he.inner.ones[i];
            let hi64 = he.inner.pow2_64[i][1];
            for (j, &v) in a.iter().enumerate() {
                let mut x = one.mul(v as u64, q) + hi64.mul((v >> 64) as u64, q);
                if x >= q {
                    x -= q;
                }
                if (v >> (ka - 1)) & 1 == 1 {
                    x = if x >= two_ka {
                        x - two_ka
                    } else {
                        x + q - two_ka
                    };
                }
                buf[i * n + j] = x;
            }
        }
        for (i, block) in buf.chunks_exact_mut(n).enumerate() {
            let plan_i = &he.inner.plans[i];
            plan_i.fwd(block);
            plan_i.mul_assign_normalize(block, &self.s_dec[i * n..(i + 1) * n]);
            plan_i.inv(block);
        }
        let mask = crate::arith::mask128(ka);
        let f = params.field();
        let p = f.modulus() as u128;
        let mut coeffs = vec![0u64; n];
        let mut res = [0u64; 3];
        for j in 0..n {
            for i in 0..dec {
                res[i] = buf[i * n + j];
            }
            let a_s = inner.garner_dec.compose_centered(&res[..dec]) as u128 & mask;
            let phase = ((b[j] << (ka - kb)) + a_s) & mask;
            // m in [0, p]: p maps to 0, without a branch on the (secret) value.
            let m = ((p * phase + (1u128 << (ka - 1))) >> ka) as u64;
            let pm = p as u64;
            coeffs[j] = m - (pm & 0u64.wrapping_sub(u64::from(m >= pm)));
        }
        buf.zeroize();
        let mut slots = vec![0u64; n];
        params.encoder().decode_into(&coeffs, &mut slots);
        coeffs.zeroize();
        slots
    }

    #[cfg(test)]
    pub(crate) fn secret_key(&self) -> &SecretKey {
        &self.sk
    }
}

/// Checks a local share: `expected` elements, all below `p`.
pub(crate) fn check_field(
    params: &SimdParams,
    x: &[u64],
    expected: usize,
    what: &'static str,
) -> Result<(), HeError> {
    if x.len() != expected {
        return Err(HeError::InputLength {
            what,
            expected,
            found: x.len(),
        });
    }
    let f = params.field();
    if let Some(index) = x.iter().position(|&v| !f.contains(v)) {
        return Err(HeError::InvalidShape(format!(
            "{what}[{index}] is not an element of Z_p (p = {})",
            f.modulus()
        )));
    }
    Ok(())
}
