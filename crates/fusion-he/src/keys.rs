//! Key generation: the client's ternary secret key (zeroized on drop) and the
//! public key it sends once at setup so that the server can re-randomise replies.
//!
//! The secret `s` is uniform in `{-1, 0, 1}^N`. The public key is an RLWE sample
//! `(pk0, pk1) = (-a s + e, a)` with `a` expanded from a 32-byte seed, so it costs one
//! polynomial modulo `q` plus the seed on the wire. The server only ever uses it to
//! form encryptions of zero `(u pk0 + e0, u pk1 + e1)` (see [`crate::linear`]).
//!
//! With response packing the client also makes **Galois keys** ([`GaloisKeys`]):
//! per merge level `k` and gadget digit `G`, an RLWE sample
//! `(-a s + e + g_G tau_{g_k}(s), a)` with `a` from one 32-byte seed
//! ([`crate::galois`] has the gadget and the key switching that uses them).
//!
//! **Learns.** The server gets the public key and the Galois keys (RLWE samples
//! under `s`; the Galois keys need the usual circular-security assumption) and
//! nothing else; the secret key never leaves the client and is zeroized on drop.

use rand::{CryptoRng, Rng};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::arith::{reduce_once, signed_residue};
use crate::automorphism::{automorphism_coeffs, galois_element};
use crate::params::HeParams;
use crate::poly;

/// The client's secret key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    #[zeroize(skip)]
    params: HeParams,
    /// Coefficients in `{-1, 0, 1}`.
    s: Vec<i64>,
    /// `-s` in evaluation form modulo every prime (encryption: `b = -a s + ...`).
    neg_s_ntt: Vec<u64>,
    /// `s` in evaluation form modulo the decryption primes (decryption of replies).
    s_dec_ntt: Vec<u64>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("degree", &self.params.degree())
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A fresh uniformly ternary secret key.
    pub fn generate<R: Rng + CryptoRng + ?Sized>(params: &HeParams, rng: &mut R) -> Self {
        let n = params.degree();
        let l = params.primes().len();
        let mut s = poly::sample_ternary(rng, n);
        let mut neg: Vec<i64> = s.iter().map(|&x| -x).collect();
        let mut neg_s_ntt = vec![0u64; l * n];
        poly::small_to_rns(params, &neg, &mut neg_s_ntt);
        poly::fwd(params, &mut neg_s_ntt);
        neg.zeroize();
        let dec = params.inner.dec_primes;
        let mut s_dec_ntt = vec![0u64; dec * n];
        for (i, block) in s_dec_ntt.chunks_exact_mut(n).enumerate() {
            let p = params.primes()[i];
            for (o, &c) in block.iter_mut().zip(&s) {
                *o = signed_residue(c, p);
            }
            params.inner.plans[i].fwd(block);
        }
        let sk = SecretKey {
            params: params.clone(),
            s: std::mem::take(&mut s),
            neg_s_ntt,
            s_dec_ntt,
        };
        s.zeroize();
        sk
    }

    /// The parameters this key belongs to.
    pub fn params(&self) -> &HeParams {
        &self.params
    }

    /// The coefficients of `s` in `{-1, 0, 1}`.
    pub(crate) fn coeffs(&self) -> &[i64] {
        &self.s
    }

    pub(crate) fn neg_s_ntt(&self) -> &[u64] {
        &self.neg_s_ntt
    }

    pub(crate) fn s_dec_ntt(&self) -> &[u64] {
        &self.s_dec_ntt
    }

    /// Generates the matching public key `(-a s + e, a)`, `a` from a fresh seed.
    pub fn public_key<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> PublicKey {
        let params = &self.params;
        let n = params.degree();
        let l = params.primes().len();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut a = vec![0u64; l * n];
        poly::expand_uniform(params, &seed, PK_STREAM, &mut a);
        let mut e = poly::sample_cbd(rng, n);
        let mut b = vec![0u64; l * n];
        poly::small_to_rns(params, &e, &mut b);
        e.zeroize();
        poly::fwd(params, &mut b);
        poly::mul_acc(params, &mut b, &a, &self.neg_s_ntt);
        PublicKey {
            params: params.clone(),
            seed,
            b_ntt: b,
        }
    }
}

/// Stream index of the public key's `a` (input ciphertexts use `0..`, so the key
/// uses the top index; every query has its own fresh seed anyway).
pub(crate) const PK_STREAM: u64 = u64::MAX;

/// The client's public key `(pk0, pk1) = (-a s + e, a)`, `a` given by its seed.
#[derive(Clone)]
pub struct PublicKey {
    pub(crate) params: HeParams,
    pub(crate) seed: [u8; 32],
    /// `pk0` in evaluation form.
    pub(crate) b_ntt: Vec<u64>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("degree", &self.params.degree())
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// The parameters this key belongs to.
    pub fn params(&self) -> &HeParams {
        &self.params
    }
}

/// The public key prepared for the server: `pk0 N^{-1}` and `pk1 N^{-1}` in
/// evaluation form, ready for pointwise products.
#[derive(Debug, Clone)]
pub(crate) struct PreparedPk {
    pub(crate) pk0: Vec<u64>,
    pub(crate) pk1: Vec<u64>,
}

impl PreparedPk {
    pub(crate) fn new(pk: &PublicKey) -> Self {
        let params = &pk.params;
        let n = params.degree();
        let l = params.primes().len();
        let mut pk1 = vec![0u64; l * n];
        poly::expand_uniform(params, &pk.seed, PK_STREAM, &mut pk1);
        let mut pk0 = pk.b_ntt.clone();
        poly::normalize(params, &mut pk0);
        poly::normalize(params, &mut pk1);
        PreparedPk { pk0, pk1 }
    }
}

/// Stream base of the key-switching keys' `a` polynomials (own seed; stream
/// `GK_STREAM + 64 k + digit`).
const GK_STREAM: u64 = 0x6761_6c6f_6973_0000;
/// The client's Galois keys for response packing: one key-switching key per merge
/// level and gadget digit, `b` parts in evaluation form, `a` parts from a seed.
/// Generate with [`crate::HeClient::galois_keys`], send with [`crate::GaloisKeyMsg`].
#[derive(Clone)]
pub struct GaloisKeys {
    pub(crate) params: HeParams,
    pub(crate) seed: [u8; 32],
    /// `levels * digits` polynomials of `L * N` residues, level-major.
    pub(crate) b: Vec<u64>,
}

impl std::fmt::Debug for GaloisKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaloisKeys")
            .field("levels", &self.params.reply_packing_levels())
            .field("digits", &self.params.key_switch_digits())
            .finish_non_exhaustive()
    }
}

impl GaloisKeys {
    /// The parameters these keys belong to.
    pub fn params(&self) -> &HeParams {
        &self.params
    }

    /// Generates the keys of every merge level of `sk`'s parameters.
    pub(crate) fn generate<R: Rng + CryptoRng + ?Sized>(sk: &SecretKey, rng: &mut R) -> Self {
        let params = sk.params().clone();
        let p = &params.inner;
        let n = p.n;
        let stride = p.primes.len() * n;
        let levels = p.packing_levels;
        let digits = p.ks_groups.len();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut b = vec![0u64; levels as usize * digits * stride];
        let mut a = vec![0u64; stride];
        let mut ts_ntt = vec![0u64; stride];
        for k in 0..levels {
            let g = galois_element(n, k);
            let mut ts = automorphism_coeffs(sk.coeffs(), g);
            poly::small_to_rns(&params, &ts, &mut ts_ntt);
            ts.zeroize();
            poly::fwd(&params, &mut ts_ntt);
            for (d, group) in p.ks_groups.iter().enumerate() {
                let out = &mut b[(k as usize * digits + d) * stride..][..stride];
                let mut e = poly::sample_cbd(rng, n);
                poly::small_to_rns(&params, &e, out);
                e.zeroize();
                poly::fwd(&params, out);
                poly::expand_uniform(&params, &seed, key_stream(k, d), &mut a);
                poly::mul_acc(&params, out, &a, sk.neg_s_ntt());
                // + g_G tau(s): the gadget is 1 modulo the group's primes, 0 elsewhere.
                for i in group.clone() {
                    let q = p.primes[i];
                    for (o, &t) in out[i * n..(i + 1) * n]
                        .iter_mut()
                        .zip(&ts_ntt[i * n..(i + 1) * n])
                    {
                        *o = reduce_once(*o + t, q);
                    }
                }
            }
        }
        ts_ntt.zeroize();
        GaloisKeys { params, seed, b }
    }
}

pub(crate) fn key_stream(level: u32, digit: usize) -> u64 {
    GK_STREAM + 64 * level as u64 + digit as u64
}
