//! Test helpers: simulated ROTs for unit tests of the message computations.

use rand::{RngExt, rngs::ChaCha20Rng};

use crate::pool::{RecvRots, SendRots};

/// Both views of `count` simulated random OTs.
pub(crate) fn fake_rots(count: usize, rng: &mut ChaCha20Rng) -> (SendRots, RecvRots) {
    let mut s = Vec::with_capacity(count);
    let mut keys = Vec::with_capacity(count);
    let mut choices = Vec::with_capacity(count);
    for _ in 0..count {
        let k = [rng.random::<u128>(), rng.random::<u128>()];
        let c: u8 = rng.random_range(0..2);
        s.push(k);
        keys.push(k[c as usize]);
        choices.push(c);
    }
    (SendRots(s), RecvRots { keys, choices })
}
