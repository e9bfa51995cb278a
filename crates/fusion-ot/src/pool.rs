//! Pools of random OTs (ROTs) in both directions.
//!
//! Each party is the sender of one OT instance and the receiver of the other.
//! Its *send pool* holds key pairs `(k0, k1)`, its *receive pool* the choice
//! bits `c` and keys `k_c`. The peer's receive pool mirrors our send pool ROT
//! by ROT, and vice versa, as long as both parties take ROTs in the same
//! order — which every protocol does, because what it takes depends on public
//! sizes only. Every ROT is used exactly once.
//!
//! Keys are wiped from memory when a pool (or a batch taken from it) is dropped.

use cryprot_core::Block;
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// ROTs for one protocol call (or a whole session's pool).
#[derive(Default)]
pub(crate) struct Rots {
    send: Vec<[u128; 2]>,
    send_pos: usize,
    recv: Vec<u128>,
    choice: Vec<u8>,
    recv_pos: usize,
}

impl Drop for Rots {
    fn drop(&mut self) {
        self.send.zeroize();
        self.recv.zeroize();
        self.choice.zeroize();
    }
}

/// ROT counts: how many we use as sender and as receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RotCount {
    pub send: usize,
    pub recv: usize,
}

impl RotCount {
    pub(crate) const fn new(send: usize, recv: usize) -> Self {
        RotCount { send, recv }
    }

    /// Both directions with the same count.
    pub(crate) const fn both(n: usize) -> Self {
        RotCount { send: n, recv: n }
    }
}

impl std::ops::Add for RotCount {
    type Output = RotCount;
    fn add(self, o: RotCount) -> RotCount {
        RotCount {
            send: self.send + o.send,
            recv: self.recv + o.recv,
        }
    }
}

/// The output of one generation run: our sender key pairs, our receiver keys
/// and choice bits (`0`/`1`). Wiped on drop.
#[derive(Default)]
pub(crate) struct Batch {
    pub send: Vec<[Block; 2]>,
    pub recv: Vec<Block>,
    pub choices: Vec<u8>,
}

impl Batch {
    /// The number of ROTs per direction.
    pub(crate) fn count(&self) -> RotCount {
        RotCount::new(self.send.len(), self.recv.len())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for p in self.send.iter_mut() {
            *p = [Block::ZERO; 2];
        }
        for k in self.recv.iter_mut() {
            *k = Block::ZERO;
        }
        self.choices.zeroize();
    }
}

/// The ROTs taken for one sub-protocol: our sender key pairs and our receiver
/// (choice, key) pairs, in pool order.
pub(crate) struct SendRots(pub Vec<[u128; 2]>);
/// See [`SendRots`].
pub(crate) struct RecvRots {
    pub keys: Vec<u128>,
    pub choices: Vec<u8>,
}

impl Drop for SendRots {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for RecvRots {
    fn drop(&mut self) {
        self.keys.zeroize();
        self.choices.zeroize();
    }
}

impl Rots {
    pub(crate) fn available(&self) -> RotCount {
        RotCount {
            send: self.send.len() - self.send_pos,
            recv: self.recv.len() - self.recv_pos,
        }
    }

    /// Appends a freshly generated batch (which is wiped when dropped here).
    pub(crate) fn extend(&mut self, batch: Batch) {
        self.compact();
        self.send.extend(
            batch
                .send
                .iter()
                .map(|[a, b]| [u128::from(a), u128::from(b)]),
        );
        self.recv.extend(batch.recv.iter().map(u128::from));
        self.choice.extend_from_slice(&batch.choices);
    }

    fn compact(&mut self) {
        if self.send_pos > 0 {
            self.send[..self.send_pos]
                .iter_mut()
                .for_each(Zeroize::zeroize);
            self.send.drain(..self.send_pos);
            self.send_pos = 0;
        }
        if self.recv_pos > 0 {
            self.recv[..self.recv_pos].zeroize();
            self.choice[..self.recv_pos].zeroize();
            self.recv.drain(..self.recv_pos);
            self.choice.drain(..self.recv_pos);
            self.recv_pos = 0;
        }
    }

    /// Moves `count` ROTs out of this pool into a new one.
    pub(crate) fn split_off(&mut self, count: RotCount) -> Result<Rots> {
        let mut send = self.take_send(count.send)?;
        let mut recv = self.take_recv(count.recv)?;
        Ok(Rots {
            send: std::mem::take(&mut send.0),
            send_pos: 0,
            recv: std::mem::take(&mut recv.keys),
            choice: std::mem::take(&mut recv.choices),
            recv_pos: 0,
        })
    }

    /// Takes the next `n` sender key pairs.
    pub(crate) fn take_send(&mut self, n: usize) -> Result<SendRots> {
        if self.send.len() - self.send_pos < n {
            return Err(Error::Internal("ROT pool short of sender OTs"));
        }
        Ok(SendRots(take_front(&mut self.send, &mut self.send_pos, n)))
    }

    /// Takes the next `n` receiver (choice, key) pairs.
    pub(crate) fn take_recv(&mut self, n: usize) -> Result<RecvRots> {
        if self.recv.len() - self.recv_pos < n {
            return Err(Error::Internal("ROT pool short of receiver OTs"));
        }
        let mut pos = self.recv_pos;
        let keys = take_front(&mut self.recv, &mut pos, n);
        let choices = take_front(&mut self.choice, &mut self.recv_pos, n);
        Ok(RecvRots { keys, choices })
    }
}

/// Moves `v[*pos..*pos + n]` out of `v`, copying whichever side is smaller:
/// at the front of a fresh pool (`*pos == 0`) the taken part keeps the
/// allocation and only the rest is copied out. Copied-from memory is wiped.
fn take_front<T: Zeroize + Copy>(v: &mut Vec<T>, pos: &mut usize, n: usize) -> Vec<T> {
    let end = *pos + n;
    if *pos == 0 && v.len() - end < n {
        let rest = v.split_off(end);
        // `v` keeps the taken part; the rest moved to a new allocation, and the
        // old copy of it in `v`'s spare capacity is wiped when `v` is dropped
        // (`Vec::zeroize` clears the whole capacity).
        std::mem::replace(v, rest)
    } else {
        let out = v[*pos..end].to_vec();
        v[*pos..end].iter_mut().for_each(Zeroize::zeroize);
        *pos = end;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Rots {
        let mut r = Rots::default();
        let send: Vec<[Block; 2]> = (0..n)
            .map(|i| [Block::from(2 * i as u128), Block::from(2 * i as u128 + 1)])
            .collect();
        let recv: Vec<Block> = (0..n).map(|i| Block::from(i as u128 + 1000)).collect();
        let choices: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
        r.extend(Batch {
            send,
            recv,
            choices,
        });
        r
    }

    #[test]
    fn takes_hand_out_rots_in_order_whichever_side_is_copied() {
        // 10 then 80 (taken part larger than the rest: moved), then 5 (copied), then 5.
        let mut r = pool(100);
        let mut next_s = 0u128;
        let mut next_r = 1000u128;
        for n in [10usize, 80, 5, 5] {
            let mut sub = r.split_off(RotCount::new(n, n)).unwrap();
            let s = sub.take_send(n).unwrap();
            let v = sub.take_recv(n).unwrap();
            for k in 0..n {
                assert_eq!(s.0[k], [2 * next_s, 2 * next_s + 1]);
                assert_eq!(v.keys[k], next_r);
                assert_eq!(u128::from(v.choices[k]), (next_r - 1000) % 2);
                next_s += 1;
                next_r += 1;
            }
            assert_eq!(sub.available(), RotCount::default());
        }
        assert_eq!(r.available(), RotCount::default());
        assert!(r.take_send(1).is_err() && r.take_recv(1).is_err());
    }
}
