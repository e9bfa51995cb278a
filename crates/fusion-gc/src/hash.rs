//! The garbling hash: a tweakable circular correlation-robust (TCCR) hash
//! from fixed-key AES.
//!
//! **Construction.** Guo, Katz, Wang and Yu, "Efficient and Secure Multiparty
//! Computation from Fixed-Key Block Ciphers" (IEEE S&P 2020, ePrint
//! 2019/074), §7 (garbling): half-gates with free-XOR is secure when its hash
//! is a *tweakable circular correlation-robust* function, and
//!
//! ```text
//! H(x, i) = π(π(x) ⊕ i) ⊕ π(x)
//! ```
//!
//! is TCCR when `π` is modelled as a random permutation. We take
//! `π = AES-128` under a fixed, public key (the key schedule is computed
//! once). Two AES calls per hash; the calls of a batch of independent hashes
//! go through one `encrypt_blocks` call per layer, so AES-NI/VAES pipelines
//! them.
//!
//! **Tweaks.** A garbled circuit with id `c` uses, for its `g`-th AND gate,
//! the tweaks `(c, 2g)` and `(c, 2g + 1)` (circuit id in the high 64 bits):
//! no tweak repeats within one garbler's session, which the TCCR proof
//! needs for all hash queries under one `Δ` (and avoids the multi-instance
//! loss across circuits of one session).

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};

/// The fixed public AES key (the first 128 bits of the fractional part of π,
/// a nothing-up-my-sleeve constant; any fixed key will do).
const FIXED_KEY: u128 = 0x243f_6a88_85a3_08d3_1319_8a2e_0370_7344;

/// Most hashes one call of [`Tccr::hash`] takes.
pub(crate) const MAX_BATCH: usize = 64;

/// Fixed-key AES as a TCCR hash.
#[derive(Clone)]
pub(crate) struct Tccr {
    aes: Aes128,
}

impl std::fmt::Debug for Tccr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tccr(fixed-key AES-128)")
    }
}

impl Default for Tccr {
    fn default() -> Self {
        Self::new()
    }
}

impl Tccr {
    pub(crate) fn new() -> Self {
        let key = Array::from(FIXED_KEY.to_le_bytes());
        Tccr {
            aes: Aes128::new(&key),
        }
    }

    /// `out[k] = H(x[k], tweak[k])` for `k < x.len() <= MAX_BATCH`.
    #[inline]
    pub(crate) fn hash(&self, x: &[u128], tweak: &[u128], out: &mut [u128]) {
        let n = x.len();
        debug_assert!(n <= MAX_BATCH && tweak.len() == n && out.len() >= n);
        let mut blocks = [Array::<u8, _>::default(); MAX_BATCH];
        for k in 0..n {
            blocks[k] = Array::from(x[k].to_le_bytes());
        }
        self.aes.encrypt_blocks(&mut blocks[..n]);
        let mut first = [0u128; MAX_BATCH];
        for k in 0..n {
            let p = u128::from_le_bytes(blocks[k].into());
            first[k] = p;
            blocks[k] = Array::from((p ^ tweak[k]).to_le_bytes());
        }
        self.aes.encrypt_blocks(&mut blocks[..n]);
        for k in 0..n {
            out[k] = u128::from_le_bytes(blocks[k].into()) ^ first[k];
        }
    }
}

/// The tweak of hash `j` of the garbled circuit `id`.
#[inline]
pub(crate) fn tweak(id: u64, j: u64) -> u128 {
    (u128::from(id) << 64) | u128::from(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tccr_batch_equals_single_calls_and_depends_on_input_and_tweak() {
        let h = Tccr::new();
        let xs: Vec<u128> = (0..MAX_BATCH as u128).map(|i| i * 0x9e37_79b9).collect();
        let ts: Vec<u128> = (0..MAX_BATCH as u128).map(|i| tweak(7, i as u64)).collect();
        let mut batch = vec![0u128; MAX_BATCH];
        h.hash(&xs, &ts, &mut batch);
        for k in 0..MAX_BATCH {
            let mut one = [0u128];
            h.hash(&xs[k..=k], &ts[k..=k], &mut one);
            assert_eq!(one[0], batch[k]);
        }
        let mut a = [0u128];
        let mut b = [0u128];
        h.hash(&[1], &[5], &mut a);
        h.hash(&[1], &[6], &mut b);
        assert_ne!(a, b, "the tweak changes the hash");
        h.hash(&[2], &[5], &mut b);
        assert_ne!(a, b, "the input changes the hash");
        // H(x, i) = π(π(x) ⊕ i) ⊕ π(x) with π = AES-128 under the fixed key.
        let aes = Aes128::new(&Array::from(FIXED_KEY.to_le_bytes()));
        let pi = |v: u128| {
            let mut blk = Array::from(v.to_le_bytes());
            aes.encrypt_block(&mut blk);
            u128::from_le_bytes(blk.into())
        };
        assert_eq!(a[0], pi(pi(1) ^ 5) ^ pi(1));
    }
}
