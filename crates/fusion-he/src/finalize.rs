//! The server's last step of a layer call (step 2 of [`crate::linear`], after the
//! products of [`crate::accumulate`]): re-randomisation, noise flooding, modulus
//! switching and masking of every reply ciphertext, and its bit-packed encoding.
//!
//! **Computes.** For a result ciphertext `(b, a)` at modulus `q`: adds an
//! encryption of zero `(u pk0 + e0, u pk1 + e1)` under the client's public key,
//! adds the flooding `F` uniform in `[-2^beta, 2^beta)` to the coefficients that
//! are sent, switches `a` to `2^(l + k_a)` and the sent `b` coefficients to
//! `2^(l + k_b)`, subtracts `2^k_b r` for a fresh uniform mask `r` and writes the
//! reply segment ([`crate::wire`]'s reply format); the server keeps `r`. With
//! response packing the leaves get their encryption of zero first
//! ([`finish_leaf`]) and the packed ciphertext is flooded, switched and masked.
//!
//! **Learns.** Nothing new for the server; what this hides from the client (the
//! weights, in the noise and in `a`) is argued in [`crate::noise`].

#[cfg(test)]
use std::sync::Mutex;

use rand::Rng;
use rand::rngs::ChaCha20Rng;

use crate::arith::{Shoup, add_signed_mod, reduce_once};
use crate::keys::PreparedPk;
use crate::params::HeParams;
use crate::plan::LinearPlan;
use crate::poly;
use crate::wire::{BitWriter, Reply};

/// One packed reply ciphertext and the masks `(output index, r)` it subtracted.
pub(crate) type ReplyPart = (Vec<u8>, Vec<(usize, u64)>);

/// The flooding constants of one layer: `2^beta mod p_i` (the flooding is
/// `U - 2^beta` with `U` uniform in `[0, 2^(beta + 1))`).
#[derive(Debug)]
pub(crate) struct Flooding {
    two_beta: Vec<u64>,
    /// Test probe: when `Some`, every reply ciphertext is recorded before
    /// flooding and modulus switching (the noise tests of `crate::server`).
    #[cfg(test)]
    pub(crate) probe: Mutex<Option<Vec<ProbeCt>>>,
}

impl Flooding {
    /// The constants for `plan`'s flooding width.
    pub(crate) fn new(plan: &LinearPlan) -> Self {
        let beta = plan.noise().flood_bits;
        Flooding {
            two_beta: plan
                .params()
                .primes()
                .iter()
                .map(|&p| crate::arith::pow2_mod(beta, p))
                .collect(),
            #[cfg(test)]
            probe: Mutex::new(None),
        }
    }

    #[cfg(test)]
    fn probe_start(&self, a: &[u64]) -> Option<ProbeCt> {
        let on = self.probe.lock().map(|p| p.is_some()).unwrap_or(false);
        on.then(|| ProbeCt {
            a: a.to_vec(),
            outputs: Vec::new(),
        })
    }

    #[cfg(test)]
    fn probe_finish(&self, probed: Option<ProbeCt>) {
        if let (Some(pr), Ok(mut sink)) = (probed, self.probe.lock())
            && let Some(v) = sink.as_mut()
        {
            v.push(pr);
        }
    }
}

/// A reply ciphertext recorded before flooding and modulus switching (tests
/// only): its `a` polynomial and, per result, the output index, its coefficient
/// and the residues of `b` there.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct ProbeCt {
    pub(crate) a: Vec<u64>,
    pub(crate) outputs: Vec<(usize, usize, Vec<u64>)>,
}

/// Re-randomises, floods, switches modulus, masks and packs one reply ciphertext.
pub(crate) fn finalize(
    plan: &LinearPlan,
    flood: &Flooding,
    pk: &PreparedPk,
    ct: usize,
    bufs: &mut (Vec<u64>, Vec<u64>),
    rng: &mut ChaCha20Rng,
) -> ReplyPart {
    let params = &plan.params;
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
    emit(plan, flood, ct, acc_b, acc_a, true, rng)
}

/// From a reply ciphertext in coefficient form: adds `e1` to `a` (unless the
/// leaves already carry it), `e0` and the flooding to the sent coefficients of
/// `b`, switches modulus, masks and packs reply ciphertext `r`.
pub(crate) fn emit(
    plan: &LinearPlan,
    flood: &Flooding,
    r: usize,
    acc_b: &mut [u64],
    acc_a: &mut [u64],
    add_e1: bool,
    rng: &mut ChaCha20Rng,
) -> ReplyPart {
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
    // Noise and flooding are secret: added and reduced without branches.
    let add_small = add_signed_mod;
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
    #[cfg(test)]
    let mut probed = flood.probe_start(acc_a);
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
            #[cfg(test)]
            if let Some(pr) = probed.as_mut() {
                let pre = (0..nprimes)
                    .map(|i| add_small(acc_b[i * n + coef], e0, p.primes[i]))
                    .collect();
                pr.outputs.push((idx, coef, pre));
            }
            for i in 0..nprimes {
                let q = p.primes[i];
                let f = flood_residue(&p.pow2_64[i], &limbs[..flood_limbs], flood.two_beta[i], q);
                res[i] = reduce_once(add_small(acc_b[i * n + coef], e0, q) + f, q);
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
    #[cfg(test)]
    flood.probe_finish(probed);
    (seg, masks)
}

/// The flooding term `F = U - 2^beta mod q` of one coefficient, `U` given by
/// its little-endian 64-bit `limbs` (`pow2[k] = 2^(64 k) mod q`, `two_beta =
/// 2^beta mod q`), without a branch on `U`.
#[inline]
pub(crate) fn flood_residue(pow2: &[Shoup], limbs: &[u64], two_beta: u64, q: u64) -> u64 {
    let mut f = 0u64;
    for (w, &limb) in pow2.iter().zip(limbs) {
        f = reduce_once(f + w.mul_ct(limb, q), q);
    }
    reduce_once(f + q - two_beta, q)
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
