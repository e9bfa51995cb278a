//! Slot rotations: Galois keys for a chosen set of Galois elements and key
//! switching back to the client's key.
//!
//! **Computes.** With the slot layout of [`super::encoder`], the automorphism
//! `tau_g: a(X) -> a(X^g)` for `g = 3^k mod 2N` rotates both rows of `N / 2`
//! slots left by `k`, and `g = 2N - 1` swaps the rows. On a ciphertext
//! `(b, a)` under `s`, `(tau_g(b), tau_g(a))` is a ciphertext of the rotated
//! message under `tau_g(s)`; key switching with the client's Galois key for
//! `g` brings it back under `s`. The gadget and the switch are the crate's
//! ([`crate::galois`]): one digit per RNS prime (the centred residue of
//! `tau_g(a)` modulo `q_i`), no special modulus, worst-case added noise
//! `B_ks = sum_i (q_i - 1)/2 * eta * N` per switch
//! ([`super::SimdParams::key_switch_noise`]). Automorphisms run in evaluation
//! form as permutations of the evaluations (the same tables as the crate's
//! response packing).
//!
//! The client makes keys for the elements a session needs
//! ([`GaloisSet`]: by default the left rotations by every power of two below
//! `N / 2` and the row swap, as SEAL's default Galois keys without the right
//! rotations); a rotation by `k` is the composition of the rotations by the
//! powers of two of `k`'s binary expansion, one key switch each.
//!
//! **Learns.** The keys are RLWE samples under `s` of multiples of `tau_g(s)`
//! (the usual circular-security assumption of every library that rotates);
//! the server learns nothing else. No message goes to the client.

use rand::{CryptoRng, Rng};
use zeroize::Zeroize;

use super::params::SimdParams;
use crate::arith::reduce_once;
use crate::automorphism::automorphism_coeffs;
use crate::error::HeError;
use crate::galois::{KsKey, KsScratch, key_switch_with};
use crate::keys::SecretKey;
use crate::poly;

/// Stream base of the Galois keys' `a` polynomials (own seed per key message).
const GK_STREAM: u64 = 0x7369_6d64_0000_0000;

fn key_stream(index: usize, digit: usize) -> u64 {
    GK_STREAM + 64 * index as u64 + digit as u64
}

/// The Galois element of a left rotation of both rows by `k` slots:
/// `3^k mod 2N` (`k` is taken modulo `N / 2`).
pub fn rotation_element(n: usize, k: usize) -> u32 {
    let two_n = 2 * n as u64;
    let mut g = 1u64;
    let mut b = 3u64;
    let mut e = (k % (n / 2)) as u64;
    while e > 0 {
        if e & 1 == 1 {
            g = g * b % two_n;
        }
        b = b * b % two_n;
        e >>= 1;
    }
    g as u32
}

/// The Galois element swapping the two rows: `2N - 1`.
pub fn swap_element(n: usize) -> u32 {
    (2 * n - 1) as u32
}

/// A set of Galois elements (sorted, distinct, odd, below `2N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaloisSet {
    elements: Vec<u32>,
}

impl GaloisSet {
    /// The elements of the left rotations by `2^t` (`2^t < N / 2`) and, with
    /// `swap`, the row swap.
    pub fn power_of_two_rotations(n: usize, swap: bool) -> Self {
        let mut e: Vec<u32> = (0..(n / 2).trailing_zeros())
            .map(|t| rotation_element(n, 1 << t))
            .collect();
        if swap {
            e.push(swap_element(n));
        }
        Self::from_elements(n, e).unwrap_or(GaloisSet {
            elements: Vec::new(),
        })
    }

    /// A set from explicit elements; each must be odd and below `2N`, and not 1.
    pub fn from_elements(n: usize, mut elements: Vec<u32>) -> Result<Self, HeError> {
        elements.sort_unstable();
        elements.dedup();
        if elements.len() > n / 2 {
            return Err(HeError::InvalidParams("too many Galois elements".into()));
        }
        if let Some(&g) = elements
            .iter()
            .find(|&&g| g % 2 == 0 || g as usize >= 2 * n || g == 1)
        {
            return Err(HeError::InvalidParams(format!(
                "{g} is not a Galois element of X^{n} + 1 other than the identity"
            )));
        }
        Ok(GaloisSet { elements })
    }

    /// The union of two sets.
    pub fn union(&self, other: &GaloisSet) -> GaloisSet {
        let mut e = self.elements.clone();
        e.extend_from_slice(&other.elements);
        e.sort_unstable();
        e.dedup();
        GaloisSet { elements: e }
    }

    /// The elements.
    pub fn elements(&self) -> &[u32] {
        &self.elements
    }

    /// Whether `g` is in the set.
    pub fn contains(&self, g: u32) -> bool {
        self.elements.binary_search(&g).is_ok()
    }
}

/// The client's Galois keys: per element and digit, `b` of
/// `(-a s + e + g_G tau_g(s), a)` in evaluation form, `a` from one seed.
#[derive(Clone)]
pub struct SimdGaloisKeys {
    pub(crate) params: SimdParams,
    pub(crate) set: GaloisSet,
    pub(crate) seed: [u8; 32],
    /// `elements * digits` polynomials of `L * N` residues, element-major.
    pub(crate) b: Vec<u64>,
}

impl std::fmt::Debug for SimdGaloisKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimdGaloisKeys")
            .field("elements", &self.set.elements())
            .finish_non_exhaustive()
    }
}

impl SimdGaloisKeys {
    /// Generates the keys of `set` for `sk`.
    pub(crate) fn generate<R: Rng + CryptoRng + ?Sized>(
        params: &SimdParams,
        sk: &SecretKey,
        set: &GaloisSet,
        rng: &mut R,
    ) -> Self {
        let he = params.he();
        let n = he.degree();
        let stride = he.primes().len() * n;
        let digits = params.key_switch_digits();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut b = vec![0u64; set.elements().len() * digits * stride];
        let mut a = vec![0u64; stride];
        let mut ts_ntt = vec![0u64; stride];
        for (idx, &g) in set.elements().iter().enumerate() {
            let mut ts = automorphism_coeffs(sk.coeffs(), g as usize);
            poly::small_to_rns(he, &ts, &mut ts_ntt);
            ts.zeroize();
            poly::fwd(he, &mut ts_ntt);
            for (d, group) in params.inner.groups.iter().enumerate() {
                let out = &mut b[(idx * digits + d) * stride..][..stride];
                let mut e = poly::sample_cbd(rng, n);
                poly::small_to_rns(he, &e, out);
                e.zeroize();
                poly::fwd(he, out);
                poly::expand_uniform(he, &seed, key_stream(idx, d), &mut a);
                poly::mul_acc(he, out, &a, sk.neg_s_ntt());
                for i in group.clone() {
                    let q = he.primes()[i];
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
        SimdGaloisKeys {
            params: params.clone(),
            set: set.clone(),
            seed,
            b,
        }
    }

    /// The Galois elements these keys cover.
    pub fn set(&self) -> &GaloisSet {
        &self.set
    }

    /// The parameters.
    pub fn params(&self) -> &SimdParams {
        &self.params
    }
}

/// One element's key switching key and evaluation permutation, for the server.
#[derive(Debug)]
struct RotKey {
    g: u32,
    perm: Vec<Vec<u32>>,
    key: KsKey,
}

/// The Galois keys prepared for the server.
#[derive(Debug)]
pub(crate) struct PreparedRotations {
    keys: Vec<RotKey>,
}

impl PreparedRotations {
    pub(crate) fn new(gk: &SimdGaloisKeys) -> Self {
        let params = &gk.params;
        let he = params.he();
        let n = he.degree();
        let stride = he.primes().len() * n;
        let digits = params.key_switch_digits();
        let keys = gk
            .set
            .elements()
            .iter()
            .enumerate()
            .map(|(idx, &g)| {
                let mut bs = Vec::with_capacity(digits);
                let mut as_ = Vec::with_capacity(digits);
                for (d, group) in params.inner.groups.iter().enumerate() {
                    let mut b = gk.b[(idx * digits + d) * stride..][..stride].to_vec();
                    let mut a = vec![0u64; stride];
                    poly::expand_uniform(he, &gk.seed, key_stream(idx, d), &mut a);
                    for (i, plan) in he.inner.plans.iter().enumerate() {
                        if !group.contains(&i) {
                            plan.normalize(&mut b[i * n..(i + 1) * n]);
                            plan.normalize(&mut a[i * n..(i + 1) * n]);
                        }
                    }
                    bs.push(b);
                    as_.push(a);
                }
                RotKey {
                    g,
                    perm: params.inner.tables.permutation(g as usize),
                    key: KsKey { b: bs, a: as_ },
                }
            })
            .collect();
        PreparedRotations { keys }
    }

    /// Whether the keys cover element `g`.
    pub(crate) fn has(&self, g: u32) -> bool {
        self.keys.iter().any(|k| k.g == g)
    }

    fn find(&self, g: u32) -> Result<&RotKey, HeError> {
        self.keys
            .iter()
            .find(|k| k.g == g)
            .ok_or_else(|| HeError::InvalidParams(format!("no Galois key for element {g}")))
    }

    /// `tau_g` then key switching, on a ciphertext `b || a` in evaluation form
    /// scaled by `N^{-1}` (the server's working form); `out` gets the result.
    pub(crate) fn apply(
        &self,
        params: &SimdParams,
        g: u32,
        ct: &[u64],
        out: &mut [u64],
    ) -> Result<(), HeError> {
        let rk = self.find(g)?;
        let he = params.he();
        let n = he.degree();
        let stride = he.primes().len() * n;
        let (ib, ia) = ct.split_at(stride);
        let (ob, oa) = out.split_at_mut(stride);
        let mut ta = vec![0u64; stride];
        for (i, perm) in rk.perm.iter().enumerate() {
            let (sb, sa) = (&ib[i * n..(i + 1) * n], &ia[i * n..(i + 1) * n]);
            for ((db, da), &t) in ob[i * n..(i + 1) * n]
                .iter_mut()
                .zip(&mut ta[i * n..(i + 1) * n])
                .zip(perm)
            {
                *db = sb[t as usize];
                *da = sa[t as usize];
            }
        }
        let mut scratch = KsScratch::new(he);
        key_switch_with(
            he,
            &params.inner.groups,
            &params.inner.garners,
            &rk.key,
            &ta,
            ob,
            oa,
            &mut scratch,
        );
        Ok(())
    }

    /// Rotates both rows left by `k` (`0 < k < N/2`) with the power-of-two keys
    /// of `k`'s binary expansion; returns the number of key switches.
    pub(crate) fn rotate(
        &self,
        params: &SimdParams,
        k: usize,
        ct: &[u64],
        out: &mut [u64],
    ) -> Result<u64, HeError> {
        let n = params.degree();
        let k = k % (n / 2);
        out.copy_from_slice(ct);
        let mut tmp = vec![0u64; ct.len()];
        let mut switches = 0;
        for t in 0..(n / 2).trailing_zeros() {
            if k >> t & 1 == 1 {
                tmp.copy_from_slice(out);
                self.apply(params, rotation_element(n, 1 << t), &tmp, out)?;
                switches += 1;
            }
        }
        Ok(switches)
    }
}
