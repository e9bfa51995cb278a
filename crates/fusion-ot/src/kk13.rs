//! KK13 1-out-of-`N` OT extension (`N <= 256`) with 256-bit Walsh–Hadamard
//! codewords, as CrypTFlow2's SCI uses it (`OT/kkot.h`: `lambda = 256`,
//! `WH_Code`), over base OTs that are random OTs from IKNP.
//!
//! **Source.** Kolesnikov and Kumaresan, "Improved OT Extension for
//! Transferring Short Secrets", CRYPTO 2013, §4 (the IKNP matrix with the
//! repetition code replaced by a linear code `C` of length `k` and minimum
//! distance `>= λ`); CrypTFlow2 (ePrint 2020/1002) §2.2 uses it for
//! `(N choose 1)-OT_ℓ` at a cost of `2λ + Nℓ` bits.
//!
//! **Code.** `C(r)` for `r < 256` is the Walsh–Hadamard codeword of length
//! `k = 256`: bit `j` of `C(r)` is the parity of `r & j`. Distinct codewords
//! differ in exactly 128 positions, which gives 128-bit security against the
//! sender below.
//!
//! **Protocol** (one direction; `R` is the OT receiver, `S` the sender):
//!
//! 1. *Base OTs* (once per session): `k = 256` random OTs with `R` as sender
//!    (seeds `k_j^0, k_j^1`) and `S` as receiver (uniform choices `s_j`, seeds
//!    `k_j^{s_j}`). We take them from the session's IKNP random-OT pool
//!    ([`crate::Iknp`]), so no silent OT is involved. *Deviation from SCI*,
//!    which runs Naor–Pinkas base OTs for KKOT: here the base OTs cost
//!    `256` IKNP ROTs per direction (`256·128` bits each way) once per session.
//! 2. *Extension* of a batch of `n` OTs with choices `r_i < N`: for each base
//!    OT `j`, both expand the seeds with a PRG (AES-CTR keyed by a
//!    correlation-robust hash of the seed and the batch number) to columns
//!    `t_j = G(k_j^0)` and `G(k_j^1)`. `R` sends `u_j = t_j ⊕ G(k_j^1) ⊕ d_j`
//!    where `d_j` is column `j` of the `n × 256` matrix with rows `C(r_i)`
//!    (`256` bits per OT, the only message of the extension). `S` computes
//!    `q_j = G(k_j^{s_j}) ⊕ s_j·u_j = t_j ⊕ s_j·d_j`, i.e. rows
//!    `q_i = t_i ⊕ (C(r_i) ∧ s)`.
//! 3. *Outputs* (random 1-of-`N` OT): `S` gets `y_{i,x} = H(i, q_i ⊕ (C(x) ∧ s))`
//!    for every `x < N`, `R` gets `y_{i,r_i} = H(i, t_i)`. `H` is a
//!    correlation-robust hash of 256-bit inputs to 128 bits built from CryProt's
//!    fixed-key AES hash `h`: `H(i, (lo, hi)) = h(lo ⊕ h(hi ⊕ i))` (in the role
//!    of SCI's `CCRF`), with a session-unique tweak `i`.
//! 4. *Chosen messages* (`mask_tables`, `unmask`): `S` sends
//!    `M_{i,x} ⊕ y_{i,x}` (truncated to `t` bits) for every `x`; `R` unmasks
//!    entry `r_i` (`N·t` bits per OT).
//!
//! **What each party learns.** `S` sees `u_j`, which is `t_j ⊕ G(k_j^1) ⊕ d_j`
//! masked by the PRG output of the seed it did not receive: nothing about the
//! choices. For `x ≠ r_i`, `q_i ⊕ (C(x) ∧ s) = t_i ⊕ ((C(r_i) ⊕ C(x)) ∧ s)`
//! differs from `R`'s `t_i` in at least 128 unknown bits of `s`, so `y_{i,x}`
//! is pseudorandom to `R`.
//!
//! **Cost per OT**: `256` bits `R → S` (sent per column, `32·ceil(n/8)` bytes
//! for a batch of `n`), plus `N·t` bits `S → R` for chosen messages; 1 flight
//! for random OT, 2 for chosen messages; `N` hashes (2 AES each) at `S`, 1 at `R`.

use cryprot_core::{Block, aes_hash::FIXED_KEY_HASH, aes_rng::AesRng};
use rand::{Rng, SeedableRng};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use crate::{
    bits::{BitReader, BitWriter},
    ctx::{compute, mask},
    error::{Error, Result},
    pool::{RecvRots, SendRots},
};

/// Code length (number of base OTs).
pub const CODE_BITS: usize = 256;
/// Largest `N`.
pub const MAX_N: usize = 256;

/// A 256-bit row.
pub(crate) type Row = [u128; 2];

/// The Walsh–Hadamard codeword of `r < 256`: bit `j` is `parity(r & j)`.
pub(crate) fn wh_code(r: u8) -> Row {
    let mut out = [0u128; 2];
    for j in 0..CODE_BITS {
        let bit = ((r as usize & j).count_ones() & 1) as u128;
        out[j / 128] |= bit << (j % 128);
    }
    out
}

/// The codewords of `0..256`.
fn code_table() -> Vec<Row> {
    (0..=255u8).map(wh_code).collect()
}

/// `H(tweak, row)`.
#[inline]
fn hash(tweak: u64, row: Row) -> u128 {
    let inner = FIXED_KEY_HASH.cr_hash_block(Block::from(row[1] ^ u128::from(tweak)));
    u128::from(FIXED_KEY_HASH.cr_hash_block(Block::from(row[0] ^ u128::from(inner))))
}

/// The PRG column of `seed` for batch `batch`: `bits` pseudorandom bits.
fn column(seed: u128, batch: u64, bytes: usize, out: &mut [u8]) {
    let key = FIXED_KEY_HASH.cr_hash_block(Block::from(seed ^ (u128::from(batch + 1) << 64)));
    let mut g = AesRng::from_seed(key);
    g.fill_bytes(&mut out[..bytes]);
}

/// Transposes a `rows × cols` bit matrix (row-major, LSB first) into
/// `cols × rows`; `rows` and `cols` multiples of 128.
fn transpose(input: &[u8], rows: usize) -> Vec<u8> {
    let mut out = vec![0u8; input.len()];
    cryprot_core::transpose::transpose_bitmatrix(input, &mut out, rows);
    out
}

/// The KK13 sender's state of one direction: `s` and the seeds `k_j^{s_j}`.
pub(crate) struct Kk13Sender {
    s: Row,
    seeds: Vec<u128>,
    batch: u64,
    tweak: u64,
}

/// The KK13 receiver's state of one direction: both seeds per base OT.
pub(crate) struct Kk13Receiver {
    seeds: Vec<[u128; 2]>,
    batch: u64,
    tweak: u64,
}

impl Drop for Kk13Sender {
    fn drop(&mut self) {
        self.s.zeroize();
        self.seeds.zeroize();
    }
}

impl Drop for Kk13Receiver {
    fn drop(&mut self) {
        self.seeds.zeroize();
    }
}

/// `S`'s rows of one batch; [`SendBatch::pad`] gives its random messages.
pub(crate) struct SendBatch {
    rows: Vec<Row>,
    s: Row,
    tweak0: u64,
}

/// `R`'s rows of one batch and its choices.
pub(crate) struct RecvBatch {
    rows: Vec<Row>,
    choices: Vec<u8>,
    tweak0: u64,
}

impl Drop for SendBatch {
    fn drop(&mut self) {
        self.rows.zeroize();
        self.s.zeroize();
    }
}

impl Drop for RecvBatch {
    fn drop(&mut self) {
        self.rows.zeroize();
        self.choices.zeroize();
    }
}

/// Bytes of `R`'s extension message for `n` OTs.
pub(crate) const fn matrix_bytes(n: usize) -> usize {
    CODE_BITS * n.div_ceil(8)
}

impl Kk13Sender {
    /// A state with no base OTs (a placeholder while the real one is moved
    /// to the worker pool).
    fn empty() -> Self {
        Kk13Sender {
            s: [0; 2],
            seeds: Vec::new(),
            batch: 0,
            tweak: 0,
        }
    }

    /// From `256` ROTs in which we are the receiver (uniform choices `s`).
    pub(crate) fn new(base: &RecvRots) -> Result<Self> {
        if base.keys.len() != CODE_BITS {
            return Err(Error::Internal("KK13 needs 256 base OTs"));
        }
        let mut s = [0u128; 2];
        for (j, &c) in base.choices.iter().enumerate() {
            s[j / 128] |= u128::from(c & 1) << (j % 128);
        }
        Ok(Kk13Sender {
            s,
            seeds: base.keys.clone(),
            batch: 0,
            tweak: 0,
        })
    }

    /// Processes `R`'s message for a batch of `n` OTs.
    pub(crate) fn extend(&mut self, n: usize, msg: &[u8]) -> Result<SendBatch> {
        if msg.len() != matrix_bytes(n) {
            return Err(Error::Malformed {
                what: "KK13 extension matrix",
                detail: "wrong message length",
            });
        }
        let tweak0 = self.tweak;
        self.tweak += n as u64;
        let batch = self.batch;
        self.batch += 1;
        if n == 0 {
            return Ok(SendBatch {
                rows: Vec::new(),
                s: self.s,
                tweak0,
            });
        }
        let nb = n.next_multiple_of(128) / 8;
        let cb = n.div_ceil(8);
        let mut cols = vec![0u8; CODE_BITS * nb];
        for j in 0..CODE_BITS {
            let col = &mut cols[j * nb..(j + 1) * nb];
            column(self.seeds[j], batch, nb, col);
            let sj = ((self.s[j / 128] >> (j % 128)) & 1) as u8;
            let m = 0u8.wrapping_sub(sj);
            for (c, u) in col[..cb].iter_mut().zip(&msg[j * cb..(j + 1) * cb]) {
                *c ^= u & m;
            }
        }
        let rows = rows_of(&transpose(&cols, CODE_BITS), n);
        cols.zeroize();
        Ok(SendBatch {
            rows,
            s: self.s,
            tweak0,
        })
    }
}

/// The first `n` 256-bit rows of a transposed matrix.
fn rows_of(bytes: &[u8], n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let b = &bytes[i * 32..(i + 1) * 32];
            let mut lo = [0u8; 16];
            let mut hi = [0u8; 16];
            lo.copy_from_slice(&b[..16]);
            hi.copy_from_slice(&b[16..]);
            [u128::from_le_bytes(lo), u128::from_le_bytes(hi)]
        })
        .collect()
}

impl Kk13Receiver {
    /// A placeholder, as [`Kk13Sender::empty`].
    fn empty() -> Self {
        Kk13Receiver {
            seeds: Vec::new(),
            batch: 0,
            tweak: 0,
        }
    }

    /// From `256` ROTs in which we are the sender.
    pub(crate) fn new(base: &SendRots) -> Result<Self> {
        if base.0.len() != CODE_BITS {
            return Err(Error::Internal("KK13 needs 256 base OTs"));
        }
        Ok(Kk13Receiver {
            seeds: base.0.clone(),
            batch: 0,
            tweak: 0,
        })
    }

    /// Extends a batch with our `choices` (each `< limit <= 256`, `limit`
    /// public): our message to `S` and our rows.
    pub(crate) fn extend(&mut self, choices: Vec<u8>, limit: usize) -> (Vec<u8>, RecvBatch) {
        let n = choices.len();
        let tweak0 = self.tweak;
        self.tweak += n as u64;
        let batch = self.batch;
        self.batch += 1;
        if n == 0 {
            let b = RecvBatch {
                rows: Vec::new(),
                choices,
                tweak0,
            };
            return (Vec::new(), b);
        }
        let nb = n.next_multiple_of(128) / 8;
        let cb = n.div_ceil(8);
        // Rows C(r_i), transposed to columns d_j.
        let codes = code_table();
        let mut crow = vec![0u8; nb * 8 * 32];
        for (i, &r) in choices.iter().enumerate() {
            // Constant-time table read: scan the first `limit` codewords.
            let mut c = [0u128; 2];
            for (k, w) in codes.iter().take(limit).enumerate() {
                let hit = (k as u8).ct_eq(&r);
                c[0].conditional_assign(&w[0], hit);
                c[1].conditional_assign(&w[1], hit);
            }
            crow[i * 32..i * 32 + 16].copy_from_slice(&c[0].to_le_bytes());
            crow[i * 32 + 16..i * 32 + 32].copy_from_slice(&c[1].to_le_bytes());
        }
        let d = transpose(&crow, nb * 8);
        crow.zeroize();
        let mut t = vec![0u8; CODE_BITS * nb];
        let mut g1 = vec![0u8; nb];
        let mut msg = Vec::with_capacity(matrix_bytes(n));
        for j in 0..CODE_BITS {
            let [k0, k1] = self.seeds[j];
            column(k0, batch, nb, &mut t[j * nb..(j + 1) * nb]);
            column(k1, batch, nb, &mut g1);
            for b in 0..cb {
                msg.push(t[j * nb + b] ^ g1[b] ^ d[j * nb + b]);
            }
        }
        g1.zeroize();
        let rows = rows_of(&transpose(&t, CODE_BITS), n);
        t.zeroize();
        (
            msg,
            RecvBatch {
                rows,
                choices,
                tweak0,
            },
        )
    }
}

impl SendBatch {
    /// `S`'s random message `x` of OT `i`.
    pub(crate) fn pad(&self, i: usize, code: &Row) -> u128 {
        let r = self.rows[i];
        hash(
            self.tweak0 + i as u64,
            [r[0] ^ (code[0] & self.s[0]), r[1] ^ (code[1] & self.s[1])],
        )
    }

    /// All `n_i` random messages of every OT `i` (`sizes[i] = n_i <= 256`),
    /// flattened.
    pub(crate) fn pads(&self, sizes: &[usize]) -> Vec<u128> {
        let codes = code_table();
        let mut out = Vec::with_capacity(sizes.iter().sum());
        for (i, &n) in sizes.iter().enumerate() {
            for c in &codes[..n] {
                out.push(self.pad(i, c));
            }
        }
        out
    }
}

impl RecvBatch {
    /// `R`'s random message of OT `i` (the one at its choice).
    pub(crate) fn pad(&self, i: usize) -> u128 {
        hash(self.tweak0 + i as u64, self.rows[i])
    }
}

/// The shape of one chosen-message OT: `n` entries of `t <= 64` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    pub n: usize,
    pub t: u32,
}

/// Bits of the masked tables of a batch.
pub(crate) fn tables_bits(shapes: &[Table]) -> usize {
    shapes.iter().map(|s| s.n * s.t as usize).sum()
}

/// `S`: the masked tables `M_{i,x} ⊕ y_{i,x}` (`msgs` flattened, each `< 2^t`).
pub(crate) fn mask_tables(batch: &SendBatch, shapes: &[Table], msgs: &[u64]) -> Vec<u8> {
    let codes = code_table();
    let mut wr = BitWriter::with_capacity(tables_bits(shapes));
    let mut k = 0;
    for (i, s) in shapes.iter().enumerate() {
        for c in &codes[..s.n] {
            let pad = batch.pad(i, c) as u64;
            wr.push((msgs[k] ^ pad) & mask(s.t), s.t);
            k += 1;
        }
    }
    wr.into_bytes()
}

/// `R`: the chosen entries of the masked tables.
pub(crate) fn unmask(batch: &RecvBatch, shapes: &[Table], bytes: &[u8]) -> Result<Vec<u64>> {
    let mut rd = BitReader::new(bytes, tables_bits(shapes), "KK13 masked tables")?;
    let mut out = Vec::with_capacity(shapes.len());
    for (i, s) in shapes.iter().enumerate() {
        let r = u64::from(batch.choices[i]);
        let mut acc = 0u64;
        for x in 0..s.n {
            let v = rd.read(s.t);
            acc.conditional_assign(&v, (x as u64).ct_eq(&r));
        }
        out.push((acc ^ batch.pad(i) as u64) & mask(s.t));
    }
    Ok(out)
}

/// Chosen-message KK13 OTs in both directions at once, 2 flights: we receive
/// entry `choices[i]` of the peer's table `i` (shapes `recv_shapes`) and offer
/// `send_msgs` in tables of shapes `send_shapes` (the peer's choices are
/// hidden from us). Lengths are derived from the public shapes only.
pub(crate) async fn both_ways(
    ch: &mut crate::channel::Channel,
    snd: &mut Kk13Sender,
    rcv: &mut Kk13Receiver,
    choices: Vec<u8>,
    recv_shapes: &[Table],
    send_shapes: &[Table],
    send_msgs: &[u64],
) -> Result<Vec<u64>> {
    if choices.len() != recv_shapes.len()
        || send_msgs.len() != send_shapes.iter().map(|s| s.n).sum::<usize>()
        || recv_shapes
            .iter()
            .chain(send_shapes)
            .any(|s| s.n > MAX_N || s.t > 64)
    {
        return Err(Error::Internal("KK13 batch of inconsistent shape"));
    }
    // The extension and the hashing run on the worker pool; the states move
    // there and back (a failure in between poisons the session anyway).
    let limit = recv_shapes.iter().map(|s| s.n).max().unwrap_or(0);
    let mut r = std::mem::replace(rcv, Kk13Receiver::empty());
    let (r, msg, rb) = compute(move || {
        let (msg, rb) = r.extend(choices, limit);
        (r, msg, rb)
    })
    .await?;
    *rcv = r;
    let peer = ch.exchange(&msg, matrix_bytes(send_shapes.len())).await?;
    let mut sd = std::mem::replace(snd, Kk13Sender::empty());
    let (shapes, msgs) = (send_shapes.to_vec(), send_msgs.to_vec());
    let (sd, tables) = compute(move || {
        let t = sd
            .extend(shapes.len(), &peer)
            .map(|sb| mask_tables(&sb, &shapes, &msgs));
        (sd, t)
    })
    .await?;
    *snd = sd;
    let tables = tables?;
    let theirs = ch
        .exchange(&tables, tables_bits(recv_shapes).div_ceil(8))
        .await?;
    let shapes = recv_shapes.to_vec();
    compute(move || unmask(&rb, &shapes, &theirs)).await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::fake_rots;
    use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn walsh_hadamard_codewords_are_at_distance_128() {
        let codes = code_table();
        for a in 0..256 {
            for b in a + 1..256 {
                let d = (codes[a][0] ^ codes[b][0]).count_ones()
                    + (codes[a][1] ^ codes[b][1]).count_ones();
                assert_eq!(d, 128, "codewords {a} and {b}");
            }
        }
    }

    #[test]
    fn transpose_swaps_rows_and_columns_lsb_first() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (rows, cols) = (256usize, 384usize);
        let m: Vec<u8> = (0..rows * cols / 8).map(|_| rng.random()).collect();
        let t = transpose(&m, rows);
        for r in 0..rows {
            for c in 0..cols {
                let a = (m[r * cols / 8 + c / 8] >> (c % 8)) & 1;
                let b = (t[c * rows / 8 + r / 8] >> (r % 8)) & 1;
                assert_eq!(a, b, "({r}, {c})");
            }
        }
    }

    #[test]
    fn kk13_receiver_gets_exactly_the_chosen_random_message() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (s, r) = fake_rots(CODE_BITS, &mut rng);
        let mut snd = Kk13Sender::new(&r).unwrap();
        let mut rcv = Kk13Receiver::new(&s).unwrap();
        for (n, big_n) in [(1usize, 2usize), (130, 16), (1000, 256), (77, 8)] {
            let choices: Vec<u8> = (0..n)
                .map(|_| rng.random_range(0..big_n as u32) as u8)
                .collect();
            let (msg, rb) = rcv.extend(choices.clone(), big_n);
            assert_eq!(msg.len(), matrix_bytes(n));
            let sb = snd.extend(n, &msg).unwrap();
            let pads = sb.pads(&vec![big_n; n]);
            for i in 0..n {
                for x in 0..big_n {
                    let eq = pads[i * big_n + x] == rb.pad(i);
                    assert_eq!(eq, x == choices[i] as usize, "n={n} i={i} x={x}");
                }
            }
        }
    }

    #[test]
    fn kk13_chosen_messages_deliver_the_chosen_entry() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (s, r) = fake_rots(CODE_BITS, &mut rng);
        let mut snd = Kk13Sender::new(&r).unwrap();
        let mut rcv = Kk13Receiver::new(&s).unwrap();
        let shapes: Vec<Table> = (0..300)
            .map(|i| Table {
                n: [2, 4, 16, 8][i % 4],
                t: [1, 4, 38, 64][i % 4],
            })
            .collect();
        let msgs: Vec<u64> = shapes
            .iter()
            .flat_map(|s| {
                (0..s.n)
                    .map(|_| rng.random::<u64>() & mask(s.t))
                    .collect::<Vec<_>>()
            })
            .collect();
        let choices: Vec<u8> = shapes
            .iter()
            .map(|s| rng.random_range(0..s.n as u32) as u8)
            .collect();
        let (m, rb) = rcv.extend(choices.clone(), 16);
        let sb = snd.extend(shapes.len(), &m).unwrap();
        let tables = mask_tables(&sb, &shapes, &msgs);
        assert_eq!(tables.len(), tables_bits(&shapes).div_ceil(8));
        let out = unmask(&rb, &shapes, &tables).unwrap();
        let mut off = 0;
        for (i, s) in shapes.iter().enumerate() {
            assert_eq!(out[i], msgs[off + choices[i] as usize], "OT {i}");
            off += s.n;
        }
        assert!(unmask(&rb, &shapes, &tables[1..]).is_err());
        assert!(snd.extend(3, &m[1..]).is_err());
    }
}
