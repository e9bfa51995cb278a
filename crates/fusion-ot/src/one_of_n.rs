//! 1-out-of-N oblivious transfer (`N = 2^m`) of `t`-bit messages from `m`
//! random OTs, and chosen-message 1-out-of-2 OT as its `m = 1` case.
//!
//! **Construction** (the classical reduction of 1-of-N OT to `log N` 1-of-2 OTs
//! of keys, Naor–Pinkas 1999 / Kolesnikov–Kumaresan 2013 §1, here on *random*
//! OTs with Beaver's derandomisation):
//!
//! - Setup: `m` ROTs per instance; the sender holds `(K_{p,0}, K_{p,1})`, the
//!   receiver `c_p, K_{p,c_p}` for `p < m`. Each 128-bit key is (CryProt already
//!   hashed it with a correlation-robust hash) cut into `N` slots of `t` bits;
//!   if `N·t > 128` the key is first expanded with the fixed-key AES
//!   correlation-robust hash, `H(K ⊕ j)` for `j = 1, 2, ...`.
//! - Receiver with index `r`: sends `e_p = r_p ⊕ c_p` (`m` bits).
//! - Sender: `K'_{p,β} = K_{p, β ⊕ e_p}`; pad for index `k` is the XOR over `p`
//!   of slot `k` of `K'_{p, k_p}`; it sends `M_k ⊕ pad_k` for all `k`
//!   (`N·t` bits).
//! - Receiver: `K'_{p, r_p} = K_{p, c_p}` is known, so it unmasks `M_r`.
//!
//! **Security (semi-honest).** The sender sees only `e = r ⊕ c` with `c`
//! uniform and hidden: nothing about `r`. For every `k ≠ r` some bit `p` has
//! `k_p ≠ r_p`, so `pad_k` contains slot `k` of `K'_{p, 1 - r_p}`, a key the
//! receiver does not hold, and that slot is used for index `k` only: all other
//! messages are masked by independent pseudorandom bits.
//!
//! **Cost per instance:** `m` ROTs, `m` bits receiver→sender, `N·t` bits
//! sender→receiver, 2 flights. (IKNP flavour: each ROT adds 128 bits, so
//! KK13's 1-of-N OT extension would be cheaper there for `m ≥ 2`; we keep one
//! construction for both flavours.)
//!
//! The receiver selects its slot by a full scan with `subtle` selections (no
//! memory access indexed by its secret index).

use cryprot_core::{Block, aes_hash::FIXED_KEY_HASH};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::{
    bits::{BitReader, BitWriter, Bits, bits_to_bytes},
    channel::Channel,
    ctx::{compute, mask},
    error::{Result, param},
    pool::{RecvRots, SendRots},
};

/// The slot layout of a 1-of-`2^m` table with `t`-bit entries.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub m: u32,
    pub t: u32,
    /// `N = 2^m`.
    pub n: usize,
    /// Number of 128-bit words a (possibly expanded) key has.
    pub words: usize,
    /// `masks[p][β]`: the union of slots `k` with bit `p` of `k` equal to `β`.
    pub masks: Vec<[Vec<u128>; 2]>,
}

impl Layout {
    pub(crate) fn new(m: u32, t: u32) -> Result<Layout> {
        if !(1..=8).contains(&m) || !(1..=64).contains(&t) {
            return Err(param(format!(
                "1-of-N OT needs 1 <= m <= 8 and 1 <= t <= 64, got m={m}, t={t}"
            )));
        }
        let n = 1usize << m;
        let words = (n * t as usize).div_ceil(128);
        let mut masks = vec![[vec![0u128; words], vec![0u128; words]]; m as usize];
        for k in 0..n {
            for (p, mp) in masks.iter_mut().enumerate() {
                let beta = (k >> p) & 1;
                set_bits(&mut mp[beta], k * t as usize, t);
            }
        }
        Ok(Layout {
            m,
            t,
            n,
            words,
            masks,
        })
    }

    /// Bits of one table on the wire.
    pub(crate) fn table_bits(&self) -> usize {
        self.n * self.t as usize
    }
}

fn set_bits(words: &mut [u128], pos: usize, width: u32) {
    for b in pos..pos + width as usize {
        words[b / 128] |= 1u128 << (b % 128);
    }
}

/// `width <= 64` bits at `pos` of a little-endian word array.
#[inline]
fn get_bits(words: &[u128], pos: usize, width: u32) -> u64 {
    let (w, off) = (pos / 128, (pos % 128) as u32);
    let lo = words[w] >> off;
    let v = if off + width > 128 && w + 1 < words.len() {
        lo | (words[w + 1] << (128 - off))
    } else {
        lo
    };
    (v as u64) & mask(width)
}

/// The key, expanded to `words` 128-bit words (the key itself if one word).
#[inline]
fn expand(key: u128, words: usize, out: &mut [u128]) {
    if words == 1 {
        out[0] = key;
    } else {
        for (j, o) in out.iter_mut().enumerate() {
            let h = FIXED_KEY_HASH.cr_hash_block(Block::from(key ^ (j as u128 + 1)));
            *o = u128::from(h);
        }
    }
}

/// Receiver, flight 1: `e = r ⊕ c`, `m` bits per index.
pub(crate) fn choice_corrections(indices: &[u64], m: u32, rots: &RecvRots) -> Bits {
    let m = m as usize;
    Bits::from_fn(indices.len() * m, |i| {
        let (inst, p) = (i / m, i % m);
        ((indices[inst] >> p) & 1) as u8 ^ rots.choices[i] == 1
    })
}

/// Sender, flight 2: the masked tables. `msgs` holds `N` messages per instance.
pub(crate) fn sender_tables(layout: &Layout, msgs: &[u64], e: &Bits, rots: &SendRots) -> Vec<u8> {
    let n_inst = msgs.len() / layout.n;
    let m = layout.m as usize;
    let mut wr = BitWriter::with_capacity(n_inst * layout.table_bits());
    let mut pad = vec![0u128; layout.words];
    let mut e0 = vec![0u128; layout.words];
    let mut e1 = vec![0u128; layout.words];
    for inst in 0..n_inst {
        pad.iter_mut().for_each(|w| *w = 0);
        for p in 0..m {
            let [k0, k1] = rots.0[inst * m + p];
            // e_p is public to the sender (the receiver sent it); swap branch-free anyway.
            let sw = 0u128.wrapping_sub(u128::from(e.get(inst * m + p)));
            let d = (k0 ^ k1) & sw;
            expand(k0 ^ d, layout.words, &mut e0);
            expand(k1 ^ d, layout.words, &mut e1);
            for w in 0..layout.words {
                pad[w] ^= (e0[w] & layout.masks[p][0][w]) | (e1[w] & layout.masks[p][1][w]);
            }
        }
        for k in 0..layout.n {
            let slot = get_bits(&pad, k * layout.t as usize, layout.t);
            wr.push(msgs[inst * layout.n + k] ^ slot, layout.t);
        }
    }
    wr.into_bytes()
}

/// Receiver, after flight 2: unmasks message `r` of each table.
pub(crate) fn receiver_outputs(
    layout: &Layout,
    indices: &[u64],
    tables: &[u8],
    rots: &RecvRots,
) -> Result<Vec<u64>> {
    let m = layout.m as usize;
    let mut rd = BitReader::new(
        tables,
        indices.len() * layout.table_bits(),
        "1-of-N OT tables",
    )?;
    let mut x = vec![0u128; layout.words];
    let mut ex = vec![0u128; layout.words];
    let mut out = Vec::with_capacity(indices.len());
    for (inst, &r) in indices.iter().enumerate() {
        x.iter_mut().for_each(|w| *w = 0);
        for p in 0..m {
            expand(rots.keys[inst * m + p], layout.words, &mut ex);
            for w in 0..layout.words {
                x[w] ^= ex[w];
            }
        }
        // Read the whole table, select slot r by a constant-time scan.
        let mut acc = 0u64;
        for k in 0..layout.n {
            let v = rd.read(layout.t) ^ get_bits(&x, k * layout.t as usize, layout.t);
            acc |= u64::conditional_select(&0, &v, (k as u64).ct_eq(&r));
        }
        out.push(acc);
    }
    Ok(out)
}

/// Sender side of `msgs.len() / 2^m` 1-of-`2^m` OTs of `t`-bit messages.
pub(crate) async fn send(
    ch: &mut Channel,
    layout: Layout,
    msgs: Vec<u64>,
    rots: SendRots,
) -> Result<()> {
    if !msgs.len().is_multiple_of(layout.n) {
        return Err(param(
            "1-of-N OT: number of messages is not a multiple of N",
        ));
    }
    if msgs.iter().any(|&v| v & !mask(layout.t) != 0) {
        return Err(param("1-of-N OT: message wider than t bits"));
    }
    let n_inst = msgs.len() / layout.n;
    let e_bits = n_inst * layout.m as usize;
    let bytes = ch.exchange(&[], e_bits.div_ceil(8)).await?;
    let e = BitReader::new(&bytes, e_bits, "1-of-N choice corrections")?.read_bits(e_bits);
    let out = compute(move || sender_tables(&layout, &msgs, &e, &rots)).await?;
    ch.exchange(&out, 0).await?;
    Ok(())
}

/// Receiver side: message `indices[i]` of instance `i`.
pub(crate) async fn receive(
    ch: &mut Channel,
    layout: Layout,
    indices: Vec<u64>,
    rots: RecvRots,
) -> Result<Vec<u64>> {
    if indices.iter().any(|&r| r >= layout.n as u64) {
        return Err(param("1-of-N OT: index out of range"));
    }
    let e = choice_corrections(&indices, layout.m, &rots);
    ch.exchange(&bits_to_bytes(&e), 0).await?;
    let tables = ch
        .exchange(&[], (indices.len() * layout.table_bits()).div_ceil(8))
        .await?;
    compute(move || receiver_outputs(&layout, &indices, &tables, &rots)).await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::fake_rots;
    use rand::{Rng, RngExt, SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn one_of_n_message_computation_delivers_the_chosen_message() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for (m, t) in [(1, 64), (2, 3), (4, 2), (4, 8), (6, 2), (7, 5), (8, 64)] {
            let layout = Layout::new(m, t).unwrap();
            let inst = 20;
            let msgs: Vec<u64> = (0..inst * layout.n)
                .map(|_| rng.next_u64() & mask(t))
                .collect();
            let idx: Vec<u64> = (0..inst)
                .map(|_| rng.random_range(0..layout.n as u64))
                .collect();
            let (s, r) = fake_rots(inst * m as usize, &mut rng);
            let e = choice_corrections(&idx, m, &r);
            let tables = sender_tables(&layout, &msgs, &e, &s);
            let out = receiver_outputs(&layout, &idx, &tables, &r).unwrap();
            for i in 0..inst {
                assert_eq!(
                    out[i],
                    msgs[i * layout.n + idx[i] as usize],
                    "m={m} t={t} i={i}"
                );
            }
        }
    }

    #[test]
    fn layout_rejects_out_of_range_parameters() {
        assert!(Layout::new(0, 2).is_err());
        assert!(Layout::new(9, 2).is_err());
        assert!(Layout::new(4, 65).is_err());
    }
}
