//! The server's homomorphic toolkit for the SIMD layers: rotations through the
//! client's Galois keys, plaintext products and sums on working-form
//! ciphertexts, with the counters behind [`super::SimdCounts`].
//!
//! **Learns.** Nothing: local computation on ciphertexts under the client's key.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use super::cipher::{add_ct, mul_plain_acc, plaintext};
use super::params::SimdParams;
use super::rotation::{PreparedRotations, rotation_element};
use crate::error::HeError;

/// The visitor of [`Ctx::rotation_tree`]: rotation amount and ciphertext.
pub(crate) type Visit<'v> = dyn FnMut(usize, &[u64]) -> Result<(), HeError> + 'v;

/// Memory budget of a layer's cached plaintexts (evaluation form, per layer).
pub(crate) const PLAINTEXT_CACHE_BYTES: usize = 128 << 20;

/// Evaluation context of one layer call.
pub(crate) struct Ctx<'a> {
    pub(crate) params: &'a SimdParams,
    rots: Option<&'a PreparedRotations>,
    switches: AtomicU64,
    mults: AtomicU64,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(params: &'a SimdParams, rots: Option<&'a PreparedRotations>) -> Self {
        Ctx {
            params,
            rots,
            switches: AtomicU64::new(0),
            mults: AtomicU64::new(0),
        }
    }

    /// `(key switches, plaintext products)` so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.switches.load(Ordering::Relaxed),
            self.mults.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn ct_len(&self) -> usize {
        2 * self.params.primes().len() * self.params.degree()
    }

    fn rots(&self) -> Result<&PreparedRotations, HeError> {
        self.rots.ok_or_else(|| {
            HeError::InvalidParams(
                "this layer rotates: the server needs the client's Galois keys".into(),
            )
        })
    }

    /// One Galois automorphism and key switch.
    pub(crate) fn apply(&self, g: u32, ct: &[u64]) -> Result<Vec<u64>, HeError> {
        let mut out = vec![0u64; ct.len()];
        self.rots()?.apply(self.params, g, ct, &mut out)?;
        self.switches.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Left rotation of both rows by `k` (`popcount(k)` switches).
    pub(crate) fn rotate(&self, k: usize, ct: &[u64]) -> Result<Vec<u64>, HeError> {
        let mut out = vec![0u64; ct.len()];
        let s = self.rots()?.rotate(self.params, k, ct, &mut out)?;
        self.switches.fetch_add(s, Ordering::Relaxed);
        Ok(out)
    }

    /// `acc += ct * pt`.
    pub(crate) fn mul_acc(&self, acc: &mut [u64], ct: &[u64], pt: &[u64]) {
        mul_plain_acc(self.params, acc, ct, pt);
        self.mults.fetch_add(1, Ordering::Relaxed);
    }

    /// `acc += ct`.
    pub(crate) fn add(&self, acc: &mut [u64], ct: &[u64]) {
        add_ct(self.params, acc, ct);
    }

    /// Visits `rot(root, j)` for every `j < count` (`count` a power of two):
    /// `rot(root, j)` is made from `rot(root, j - lowbit(j))` by one switch
    /// with the key of `lowbit(j)`, depth-first, so `count - 1` switches in
    /// all, at most `log2 count` on any path, and `log2 count` ciphertexts alive.
    pub(crate) fn rotation_tree(
        &self,
        root: &[u64],
        count: usize,
        visit: &mut Visit<'_>,
    ) -> Result<(), HeError> {
        visit(0, root)?;
        self.tree_children(root, 0, count.trailing_zeros(), count, visit)
    }

    fn tree_children(
        &self,
        node: &[u64],
        v: usize,
        below: u32,
        count: usize,
        visit: &mut Visit<'_>,
    ) -> Result<(), HeError> {
        let n = self.params.degree();
        for t in (0..below).rev() {
            let child = v + (1 << t);
            if child >= count {
                continue;
            }
            let ct = self.apply(rotation_element(n, 1 << t), node)?;
            visit(child, &ct)?;
            self.tree_children(&ct, child, t, count, visit)?;
        }
        Ok(())
    }
}

/// The plaintexts of a layer, cached in evaluation form when they fit
/// [`PLAINTEXT_CACHE_BYTES`], otherwise encoded again on every use.
pub(crate) struct Plaintexts {
    cache: Vec<Vec<u64>>,
}

impl Plaintexts {
    /// Caches `count` plaintexts made by `slots(k)` if they fit the budget.
    pub(crate) fn new(
        params: &SimdParams,
        count: usize,
        slots: &(dyn Fn(usize) -> Vec<u64> + Sync),
    ) -> Self {
        use rayon::prelude::*;
        let bytes = count * params.primes().len() * params.degree() * 8;
        let cache = if bytes <= PLAINTEXT_CACHE_BYTES {
            (0..count)
                .into_par_iter()
                .map(|k| plaintext(params, &slots(k)))
                .collect()
        } else {
            Vec::new()
        };
        Plaintexts { cache }
    }

    /// Plaintext `k`.
    pub(crate) fn get<'s>(
        &'s self,
        params: &SimdParams,
        k: usize,
        slots: &(dyn Fn(usize) -> Vec<u64> + Sync),
    ) -> Cow<'s, [u64]> {
        match self.cache.get(k) {
            Some(pt) => Cow::Borrowed(pt),
            None => Cow::Owned(plaintext(params, &slots(k))),
        }
    }
}
