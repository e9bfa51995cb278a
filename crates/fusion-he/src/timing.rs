//! Entry points for the dudect-style timing bench (`benches/dudect.rs`): the
//! samplers of secret values and the arithmetic that adds noise, on inputs
//! the caller chooses. Not part of the API (hidden from the docs); each
//! function runs exactly the crate's code path it is named after.

use rand::{CryptoRng, Rng};

use crate::arith::add_signed_mod;
use crate::finalize::flood_residue;
use crate::params::HeParams;
use crate::poly;

/// A secret key's coefficients: `poly::sample_ternary` then their residues
/// (`poly::small_to_rns`), as in [`crate::SecretKey::generate`]. `out` has
/// `L * N` entries.
pub fn ternary_secret<R: Rng + CryptoRng + ?Sized>(
    params: &HeParams,
    rng: &mut R,
    out: &mut [u64],
) {
    let s = poly::sample_ternary(rng, params.degree());
    poly::small_to_rns(params, &s, out);
}

/// A noise polynomial: `poly::sample_cbd` then its residues, as in the
/// public key, the Galois keys and the packing leaves. `out` has `L * N`
/// entries.
pub fn cbd_noise<R: Rng + CryptoRng + ?Sized>(params: &HeParams, rng: &mut R, out: &mut [u64]) {
    let e = poly::sample_cbd(rng, params.degree());
    poly::small_to_rns(params, &e, out);
}

/// The addition of small noise `e` to residues `x` modulo `p` (the reply's
/// `e0`, `e1`), in place.
pub fn add_noise(x: &mut [u64], e: &[i64], p: u64) {
    for (v, &c) in x.iter_mut().zip(e) {
        *v = add_signed_mod(*v, c, p);
    }
}

/// The flooding terms of `limbs.len() / 2` coefficients (two 64-bit limbs
/// each, the first prime of `params`, flooding width `beta`), written to
/// `out`.
pub fn flooding(params: &HeParams, beta: u32, limbs: &[u64], out: &mut [u64]) {
    let q = params.primes()[0];
    let pow2 = &params.inner.pow2_64[0];
    let two_beta = crate::arith::pow2_mod(beta, q);
    for (o, l) in out.iter_mut().zip(limbs.chunks_exact(2)) {
        *o = flood_residue(pow2, l, two_beta, q);
    }
}

/// The client's encoding of a message with noise
/// (`crate::linear::encode_scaled`): `msg` has `N` entries, `out` `L * N`.
pub fn encode_with_noise<R: Rng + CryptoRng + ?Sized>(
    params: &HeParams,
    msg: &[u64],
    rng: &mut R,
    out: &mut [u64],
) {
    crate::linear::encode_scaled(params, msg, true, rng, out);
}
