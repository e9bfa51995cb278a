//! Galois automorphisms of `R_q = Z_q[X]/(X^N + 1)` for response packing
//! ([`crate::pack`]): the Galois elements, the map on coefficients, and the
//! evaluation-order tables of one parameter set (built once and cached in
//! [`crate::HeParams`]).
//!
//! `tau_g(a)` evaluated at a root `w` of `X^N + 1` is `a(w^g)`, and `w^g` is again
//! such a root, so in `tfhe-ntt`'s evaluation order `tau_g` is a fixed permutation
//! of the evaluations, the same for every prime. The tables find each slot's root
//! as a power `psi^e` of one primitive `2N`-th root (from the transform of `X`) and
//! store the permutations and the evaluations of the monomials `X^(2^k)` the
//! packing multiplies by ([`crate::galois`] has the key switching around them).
//!
//! **Learns.** Public precomputation: no secrets, no messages.

use std::collections::HashMap;
use std::ops::Range;

use tfhe_ntt::prime64::Plan;

use crate::arith::{Garner, mul_mod};

/// The Galois element of merge level `k`: `N / 2^k + 1` (`k = 0`: `N + 1`).
pub(crate) fn galois_element(n: usize, k: u32) -> usize {
    (n >> k) + 1
}

/// `tau_g` on coefficients, over the integers (naive: the test oracle and the
/// client's key generation): `X^j -> X^(j g mod 2N)`, with `X^N = -1`.
pub(crate) fn automorphism_coeffs(a: &[i64], g: usize) -> Vec<i64> {
    let n = a.len();
    let mut out = vec![0i64; n];
    for (j, &c) in a.iter().enumerate() {
        let m = (j * g) % (2 * n);
        if m < n {
            out[m] += c;
        } else {
            out[m - n] -= c;
        }
    }
    out
}

/// Evaluation-order tables of the packing for one parameter set.
#[derive(Debug)]
pub(crate) struct PackTables {
    n: usize,
    /// Per prime: `psi^e` for `e in 0..2N`, `psi` a primitive `2N`-th root.
    pow: Vec<Vec<u64>>,
    /// Per prime: the exponent `e_t` (odd) of evaluation slot `t`'s root.
    exp: Vec<Vec<u32>>,
    /// Per merge level `k` and prime: `perm[t]` with `tau_{g_k}(a)[t] = a[perm[t]]`.
    perms: Vec<Vec<Vec<u32>>>,
    /// Per merge level `k`: the evaluations of `X^(2^k)` times `N` (all primes,
    /// `L * N`), for `mul_assign_normalize`.
    mono: Vec<Vec<u64>>,
    /// Garner composition per key-switching group of several primes.
    pub(crate) garners: Vec<Option<Garner>>,
}

impl PackTables {
    /// Builds the tables for degree `n`, the RNS `primes` with their transform
    /// `plans`, `levels` merge levels and the key-switching gadget's prime groups.
    pub(crate) fn build(
        n: usize,
        primes: &[u64],
        plans: &[Plan],
        levels: u32,
        ks_groups: &[Range<usize>],
    ) -> Self {
        let two_n = 2 * n;
        let mut pow = Vec::with_capacity(primes.len());
        let mut exp = Vec::with_capacity(primes.len());
        for (i, &q) in primes.iter().enumerate() {
            // The transform of X holds every slot's root.
            let mut x = vec![0u64; n];
            x[1] = 1;
            plans[i].fwd(&mut x);
            let psi = x[0];
            let mut pw = Vec::with_capacity(two_n);
            let mut v = 1u64;
            for _ in 0..two_n {
                pw.push(v);
                v = mul_mod(v, psi, q);
            }
            debug_assert_eq!(v, 1, "psi has order 2N");
            let index: HashMap<u64, u32> =
                (1..two_n).step_by(2).map(|e| (pw[e], e as u32)).collect();
            let ex: Vec<u32> = x
                .iter()
                .map(|r| index.get(r).copied().unwrap_or(u32::MAX))
                .collect();
            debug_assert!(ex.iter().all(|&e| e != u32::MAX && e % 2 == 1));
            pow.push(pw);
            exp.push(ex);
        }
        let mut perms = Vec::with_capacity(levels as usize);
        let mut mono = Vec::with_capacity(levels as usize);
        for k in 0..levels {
            let g = galois_element(n, k);
            let mut per_prime = Vec::with_capacity(primes.len());
            let mut m = vec![0u64; primes.len() * n];
            for (i, &q) in primes.iter().enumerate() {
                let mut slot_of = vec![u32::MAX; two_n];
                for (t, &e) in exp[i].iter().enumerate() {
                    slot_of[e as usize] = t as u32;
                }
                per_prime.push(
                    exp[i]
                        .iter()
                        .map(|&e| slot_of[(e as usize * g) % two_n])
                        .collect::<Vec<u32>>(),
                );
                let n_mod = n as u64 % q;
                for (t, &e) in exp[i].iter().enumerate() {
                    let r = pow[i][(e as usize * (1usize << k)) % two_n];
                    m[i * n + t] = mul_mod(r, n_mod, q);
                }
            }
            perms.push(per_prime);
            mono.push(m);
        }
        let garners = ks_groups
            .iter()
            .map(|g| (g.len() > 1).then(|| Garner::new(&primes[g.clone()])))
            .collect();
        PackTables {
            n,
            pow,
            exp,
            perms,
            mono,
            garners,
        }
    }

    /// Evaluations of `c X^m` times `N` (`L * N`, for `mul_assign_normalize`), for an
    /// integer `m` (negative allowed) and a constant given by its residues.
    pub(crate) fn scaled_monomial(&self, primes: &[u64], m: i64, c: &[u64]) -> Vec<u64> {
        let n = self.n;
        let two_n = 2 * n as i64;
        let mut out = vec![0u64; primes.len() * n];
        for (i, &q) in primes.iter().enumerate() {
            let cn = mul_mod(c[i], n as u64 % q, q);
            for t in 0..n {
                let e = (self.exp[i][t] as i64 * m).rem_euclid(two_n) as usize;
                out[i * n + t] = mul_mod(self.pow[i][e], cn, q);
            }
        }
        out
    }

    /// Per prime, the permutation `perm[t]` of the evaluations with
    /// `tau_g(a)[t] = a[perm[t]]`, for any odd Galois element `g < 2N` (the SIMD
    /// rotations of [`crate::simd`]; the packing tabulates its own).
    pub(crate) fn permutation(&self, g: usize) -> Vec<Vec<u32>> {
        let two_n = 2 * self.n;
        self.exp
            .iter()
            .map(|ex| {
                let mut slot_of = vec![u32::MAX; two_n];
                for (t, &e) in ex.iter().enumerate() {
                    slot_of[e as usize] = t as u32;
                }
                ex.iter()
                    .map(|&e| slot_of[(e as usize * g) % two_n])
                    .collect()
            })
            .collect()
    }

    /// `dst = tau_{g_k}(src)` in evaluation form (`L * N` residues each).
    pub(crate) fn automorphism(&self, k: usize, src: &[u64], dst: &mut [u64]) {
        let n = self.n;
        for (i, perm) in self.perms[k].iter().enumerate() {
            let s = &src[i * n..(i + 1) * n];
            for (d, &t) in dst[i * n..(i + 1) * n].iter_mut().zip(perm) {
                *d = s[t as usize];
            }
        }
    }

    /// `poly *= X^(2^k)` in evaluation form.
    pub(crate) fn mul_monomial(&self, plans: &[Plan], k: usize, poly: &mut [u64]) {
        let n = self.n;
        for (i, plan) in plans.iter().enumerate() {
            plan.mul_assign_normalize(
                &mut poly[i * n..(i + 1) * n],
                &self.mono[k][i * n..(i + 1) * n],
            );
        }
    }
}
