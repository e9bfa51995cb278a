//! Shared helpers: garble and evaluate a circuit in one process with fixed
//! seeds, compare with the plaintext evaluation.
#![allow(dead_code, clippy::unwrap_used)]

use fusion_gc::{Circuit, Evaluator, Garbler};
use rand::{SeedableRng, rngs::ChaCha20Rng};

/// `2^l − 1`.
pub fn mask(l: usize) -> u64 {
    if l >= 64 { u64::MAX } else { (1u64 << l) - 1 }
}

/// Garbles `c` (seed `seed`), evaluates it on the inputs and checks the
/// result against the plaintext evaluation; returns the output bits.
pub fn run_garbled(c: &Circuit, g: &[bool], e: &[bool], seed: u64) -> Vec<bool> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut garbler = Garbler::new();
    let garbling = garbler.garble(c, &mut rng).unwrap();
    let (gc, gl, pairs) = garbling.into_parts(g).unwrap();
    assert_eq!(gc.table_bytes().len(), 32 * c.and_count());
    let el = pairs.select(e).unwrap();
    let out = Evaluator::new().evaluate(c, gc, gl, el).unwrap();
    assert_eq!(out, c.eval_plain(g, e).unwrap(), "garbled == plaintext");
    out
}

/// Edge values of `l` bits: 0, 1, 2^{l−1} − 1, 2^{l−1}, 2^{l−1} + 1, 2^l − 2, 2^l − 1.
pub fn edges(l: usize) -> Vec<u64> {
    let h = 1u64 << (l - 1);
    let mut v = vec![
        0,
        1,
        h - 1,
        h,
        h.wrapping_add(1) & mask(l),
        mask(l) - 1,
        mask(l),
    ];
    v.sort_unstable();
    v.dedup();
    v
}
