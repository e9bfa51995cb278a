//! The generic linear-layer protocol on additive shares (Cheetah, Sec. 4; Fig. 2 of
//! ePrint 2022/207), for any layer reduced to a [`LinearPlan`](crate::LinearPlan).
//!
//! **Computes.** The client holds `x_c`, the server holds `x_s` and the weights `W`
//! (and an optional bias `beta`), with `x = x_c + x_s mod 2^l`. At the end the client
//! holds `y_c = W x - r` and the server `y_s = r + beta`, so `y_c + y_s = W x + beta`
//! exactly in `Z_{2^l}`; `r` is uniform and fresh.
//!
//! **Messages.**
//! 1. Client ([`HeClient::encrypt`](crate::HeClient::encrypt)): encrypts its share, encoded per the plan, under
//!    its secret key; the `a` polynomials come from one 32-byte seed ([`Query`](crate::Query)).
//! 2. Server ([`ServerLinear::respond`](crate::ServerLinear::respond)): adds its own share into the ciphertexts
//!    (`Enc(x_c) + x_s = Enc(x)`, as Cheetah does; this replaces the plaintext
//!    product `W x_s`, which for convolutions costs far more than one transform per
//!    input ciphertext), multiplies by the encoded weights in evaluation form,
//!    sums over channel blocks, re-randomises with an encryption of zero under the
//!    client's public key, floods the sent coefficients, switches modulus, subtracts
//!    the mask `r`, and keeps only the coefficients that carry results ([`Reply`](crate::Reply)).
//! 3. Client ([`HeClient::decrypt`](crate::HeClient::decrypt)): decrypts its output share.
//!
//! **Learns.** The server sees RLWE ciphertexts under the client's key only
//! (IND-CPA under decision-RLWE), so nothing about `x_c`. The client sees a reply
//! that is simulatable from its output share `W x - r` alone, which is uniform; see
//! [`crate::noise`] for the re-randomisation and flooding argument and its
//!
//! **Where.** The client's half is [`crate::client`] (keys, queries, replies), the
//! server's half [`crate::server`] (session keys, encoded weights, answers), with
//! the products in the private module `accumulate` and the re-randomisation, flooding,
//! modulus switching and masking in the private module `finalize`; the messages are in
//! [`crate::wire`]. This module holds what both halves share: the scaled encoding
//! of plaintext polynomials, the share checks and the per-ciphertext randomness.

use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};

use crate::arith::{reduce_once, signed_residue};
use crate::error::HeError;
use crate::params::HeParams;
use crate::poly;

/// Writes the residues of `round_random(q m_j / t) (+ e_j)` for the `N` plaintext
/// coefficients `msg` into `out` (coefficient form, `L * N`). The rounding is
/// randomised (up with probability equal to the fractional part) so that its error
/// is zero-mean; with `noise` a CBD error is added.
pub(crate) fn encode_scaled<R: Rng + CryptoRng + ?Sized>(
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
            let r = p.ones[i].mul_ct(rho, pi);
            // The message and the noise are secret: no branches.
            let v = p.neg_t_inv[i].mul_ct(r, pi) + bump + signed_residue(e, pi);
            out[i * n + j] = reduce_once(reduce_once(v, pi), pi);
        }
    }
}

/// Checks that a local input has `expected` elements, all in `Z_{2^l}`.
pub(crate) fn check_ring(
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

/// The ChaCha20 stream `stream` of `seed`: independent randomness per ciphertext
/// (so that parallel loops draw the same values as sequential ones).
pub(crate) fn stream_rng(seed: &[u8; 32], stream: u64) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::from_seed(*seed);
    r.set_stream(stream);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Preset;
    use fusion_core::ring::Ring;

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
}
