//! Boolean multiplication triples from random OT, with no communication beyond
//! the ROTs: two ROTs (one in each direction) give up to 128 triples
//! `(a, b_j, c_j = a·b_j)` that share their `a` operand.
//!
//! Let `P0` send ROT `A = (K0, K1)` to `P1`, who chose `c1`, and `P1` send ROT
//! `B = (K0', K1')` to `P0`, who chose `c0`. For bit `j` write
//! `v_j = bit_j(K0 ⊕ K1)`, `u_j = bit_j(K0)`, `w_j = bit_j(K_{c1})` (so
//! `c1·v_j = u_j ⊕ w_j`) and likewise `v'_j, u'_j, w'_j` for `B`. With
//! `a = c0 ⊕ c1` and `b_j = v_j ⊕ v'_j`,
//!
//! `a·b_j = c0·v_j ⊕ (u'_j ⊕ w'_j) ⊕ (u_j ⊕ w_j) ⊕ c1·v'_j`,
//!
//! so each party, from *its* sender ROT `(K0, K1)` and *its* receiver ROT
//! `(c, K_c)`, takes `a_i = c`, `b_{j,i} = bit_j(K0 ⊕ K1)` and
//! `c_{j,i} = a_i·b_{j,i} ⊕ bit_j(K0) ⊕ bit_j(K_c)` — the same formula on both
//! sides. Each share is hidden from the other party by the ROT's security
//! (its choice bit, and the key it did not receive).
//!
//! Cost: 2 ROTs (one per direction) per triple, or per *pair* of triples with a
//! common operand, as the millionaires' AND tree needs (CrypTFlow2 §3.1.1 uses
//! the same "correlated triples" saving, there from 1-of-16 OT).

use crate::{
    bits::Bits,
    pool::{RecvRots, SendRots},
};

/// `k` triples per position sharing `a`: `a`, `b[j]`, `c[j]` for `j < k`.
#[derive(Debug, Clone)]
pub(crate) struct Triples {
    pub a: Bits,
    pub b: Vec<Bits>,
    pub c: Vec<Bits>,
}

/// Triples for positions `0..n` from our `n` sender ROTs and `n` receiver ROTs
/// starting at `offset`. `k <= 64`.
pub(crate) fn from_rots(
    send: &SendRots,
    recv: &RecvRots,
    offset: usize,
    n: usize,
    k: usize,
) -> Triples {
    debug_assert!(k <= 64);
    let a = Bits::from_fn(n, |i| recv.choices[offset + i] == 1);
    let mut b = Vec::with_capacity(k);
    let mut c = Vec::with_capacity(k);
    for j in 0..k {
        let bj = Bits::from_fn(n, |i| {
            let [k0, k1] = send.0[offset + i];
            ((k0 ^ k1) >> j) & 1 == 1
        });
        let cj = Bits::from_fn(n, |i| {
            let [k0, k1] = send.0[offset + i];
            let kc = recv.keys[offset + i];
            let ai = u128::from(recv.choices[offset + i] & 1);
            ((ai & ((k0 ^ k1) >> j)) ^ (k0 >> j) ^ (kc >> j)) & 1 == 1
        });
        b.push(bj);
        c.push(cj);
    }
    Triples { a, b, c }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::fake_rots;
    use rand::{SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn triples_from_two_rot_directions_multiply() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let n = 300;
        // Direction A: P0 sends, P1 receives; direction B: P1 sends, P0 receives.
        let (a_send, a_recv) = fake_rots(n, &mut rng);
        let (b_send, b_recv) = fake_rots(n, &mut rng);
        let t0 = from_rots(&a_send, &b_recv, 0, n, 3);
        let t1 = from_rots(&b_send, &a_recv, 0, n, 3);
        let a = t0.a.xor(&t1.a);
        for j in 0..3 {
            let b = t0.b[j].xor(&t1.b[j]);
            let c = t0.c[j].xor(&t1.c[j]);
            assert_eq!(c, a.and(&b), "triple {j}");
        }
        // The operands are not degenerate.
        assert!(a.words().iter().any(|&w| w != 0) && a.words().iter().any(|&w| w != u64::MAX));
    }
}
