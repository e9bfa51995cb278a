//! Packed bit vectors (boolean shares) and the bit-level wire packing used by
//! every protocol message.
//!
//! Boolean shares are kept 64 to a word so that XOR/AND over a whole batch are
//! word operations (the AND tree of the millionaires' protocol works on packed
//! words). Messages are packed at their exact bit width: a value of `w` bits
//! costs `w` bits on the wire, not a whole byte or word.

use crate::error::Error;

/// A packed vector of bits, bit `i` at bit `i % 64` of word `i / 64`.
///
/// Bits beyond `len` in the last word are always zero.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl std::fmt::Debug for Bits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bits[{}](", self.len)?;
        for i in 0..self.len.min(128) {
            write!(f, "{}", u8::from(self.get(i)))?;
        }
        if self.len > 128 {
            write!(f, "...")?;
        }
        write!(f, ")")
    }
}

const fn words_for(len: usize) -> usize {
    len.div_ceil(64)
}

impl Bits {
    /// `len` zero bits.
    pub fn zeros(len: usize) -> Self {
        Bits {
            words: vec![0; words_for(len)],
            len,
        }
    }

    /// `len` one bits.
    pub fn ones(len: usize) -> Self {
        let mut b = Bits {
            words: vec![u64::MAX; words_for(len)],
            len,
        };
        b.clear_tail();
        b
    }

    /// Bits from booleans.
    pub fn from_bools(bools: &[bool]) -> Self {
        Self::from_fn(bools.len(), |i| bools[i])
    }

    /// Bits from the low bit of each byte (`0`/`1` values).
    pub fn from_u8s(bits: &[u8]) -> Self {
        Self::from_fn(bits.len(), |i| bits[i] & 1 == 1)
    }

    /// Bit `i` is `f(i)`.
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> bool) -> Self {
        let mut words = vec![0u64; words_for(len)];
        for (w, word) in words.iter_mut().enumerate() {
            let base = w * 64;
            let end = (base + 64).min(len);
            let mut acc = 0u64;
            for i in base..end {
                acc |= u64::from(f(i)) << (i - base);
            }
            *word = acc;
        }
        Bits { words, len }
    }

    /// Uniformly random bits.
    pub fn random<R: rand::Rng + rand::CryptoRng + ?Sized>(len: usize, rng: &mut R) -> Self {
        let mut words = vec![0u64; words_for(len)];
        for w in words.iter_mut() {
            *w = rng.next_u64();
        }
        let mut b = Bits { words, len };
        b.clear_tail();
        b
    }

    /// Bits from packed words (extra bits beyond `len` are cleared).
    pub fn from_words(mut words: Vec<u64>, len: usize) -> Self {
        words.resize(words_for(len), 0);
        let mut b = Bits { words, len };
        b.clear_tail();
        b
    }

    /// The number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Bit `i` (panics if out of range, like slice indexing).
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        assert!(i < self.len, "bit index {i} out of range {}", self.len);
        (self.words[i / 64] >> (i % 64)) & 1 == 1
    }

    /// Bit `i` as `0`/`1`.
    #[inline]
    pub fn get_u8(&self, i: usize) -> u8 {
        u8::from(self.get(i))
    }

    /// Sets bit `i`.
    #[inline]
    pub fn set(&mut self, i: usize, v: bool) {
        assert!(i < self.len, "bit index {i} out of range {}", self.len);
        let m = 1u64 << (i % 64);
        let w = &mut self.words[i / 64];
        *w = (*w & !m) | (u64::from(v) << (i % 64));
    }

    /// The bits as booleans.
    pub fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// Bitwise XOR (lengths must match).
    pub fn xor(&self, other: &Bits) -> Bits {
        assert_eq!(
            self.len, other.len,
            "xor of bit vectors of different lengths"
        );
        Bits {
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(a, b)| a ^ b)
                .collect(),
            len: self.len,
        }
    }

    /// In-place XOR (lengths must match).
    pub fn xor_assign(&mut self, other: &Bits) {
        assert_eq!(
            self.len, other.len,
            "xor of bit vectors of different lengths"
        );
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a ^= b;
        }
    }

    /// Bitwise AND (lengths must match).
    pub fn and(&self, other: &Bits) -> Bits {
        assert_eq!(
            self.len, other.len,
            "and of bit vectors of different lengths"
        );
        Bits {
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(a, b)| a & b)
                .collect(),
            len: self.len,
        }
    }

    /// Bitwise NOT.
    pub fn not(&self) -> Bits {
        let mut b = Bits {
            words: self.words.iter().map(|a| !a).collect(),
            len: self.len,
        };
        b.clear_tail();
        b
    }

    /// The bits `range` as a new vector.
    pub fn slice(&self, start: usize, end: usize) -> Bits {
        assert!(start <= end && end <= self.len, "bit slice out of range");
        let len = end - start;
        let mut words = vec![0u64; words_for(len)];
        let (ws, bs) = (start / 64, start % 64);
        for (k, w) in words.iter_mut().enumerate() {
            let lo = self.words.get(ws + k).copied().unwrap_or(0) >> bs;
            let hi = if bs == 0 {
                0
            } else {
                self.words.get(ws + k + 1).copied().unwrap_or(0) << (64 - bs)
            };
            *w = lo | hi;
        }
        Bits::from_words(words, len)
    }

    /// Concatenation of several bit vectors.
    pub fn concat(parts: &[&Bits]) -> Bits {
        let len = parts.iter().map(|p| p.len).sum();
        let mut w = BitWriter::with_capacity(len);
        for p in parts {
            w.push_bits(p);
        }
        Bits::from_words(w.words, len)
    }

    fn clear_tail(&mut self) {
        let r = self.len % 64;
        if r != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << r) - 1;
        }
    }
}

/// Appends values of arbitrary width (LSB first) into a packed bit stream.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    words: Vec<u64>,
    bits: usize,
}

impl BitWriter {
    pub(crate) fn with_capacity(bits: usize) -> Self {
        BitWriter {
            words: Vec::with_capacity(words_for(bits)),
            bits: 0,
        }
    }

    /// Appends the low `width` bits of `v` (`width <= 64`).
    #[inline]
    pub(crate) fn push(&mut self, v: u64, width: u32) {
        debug_assert!(width <= 64);
        if width == 0 {
            return;
        }
        let v = if width == 64 {
            v
        } else {
            v & ((1u64 << width) - 1)
        };
        let off = (self.bits % 64) as u32;
        if off == 0 {
            self.words.push(v);
        } else {
            let last = self.words.len() - 1;
            self.words[last] |= v << off;
            if off + width > 64 {
                self.words.push(v >> (64 - off));
            }
        }
        self.bits += width as usize;
    }

    /// Appends the low `width` bits of a 128-bit value (`width <= 128`).
    #[inline]
    pub(crate) fn push_u128(&mut self, v: u128, width: u32) {
        if width <= 64 {
            self.push(v as u64, width);
        } else {
            self.push(v as u64, 64);
            self.push((v >> 64) as u64, width - 64);
        }
    }

    /// Appends a packed bit vector.
    pub(crate) fn push_bits(&mut self, b: &Bits) {
        let full = b.len / 64;
        for &w in &b.words[..full] {
            self.push(w, 64);
        }
        let r = (b.len % 64) as u32;
        if r > 0 {
            self.push(b.words[full], r);
        }
    }

    /// Number of bits written.
    pub(crate) fn len(&self) -> usize {
        self.bits
    }

    /// The stream as bytes (`ceil(bits / 8)` of them, little endian).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        let nbytes = self.bits.div_ceil(8);
        let mut out = Vec::with_capacity(self.words.len() * 8);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(nbytes);
        out
    }
}

/// Reads values of arbitrary width from a byte stream produced by [`BitWriter`].
///
/// The reader is built for an exact, publicly known number of bits; a stream
/// of any other length is rejected with [`Error::Malformed`].
#[derive(Debug)]
pub(crate) struct BitReader {
    words: Vec<u64>,
    pos: usize,
    bits: usize,
}

impl BitReader {
    /// A reader over `bytes`, which must hold exactly `ceil(bits / 8)` bytes.
    pub(crate) fn new(bytes: &[u8], bits: usize, what: &'static str) -> Result<Self, Error> {
        if bytes.len() != bits.div_ceil(8) {
            return Err(Error::Malformed {
                what,
                detail: "wrong message length",
            });
        }
        let mut words = Vec::with_capacity(words_for(bits));
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            words.push(u64::from_le_bytes(b));
        }
        Ok(BitReader {
            words,
            pos: 0,
            bits,
        })
    }

    /// Reads `width <= 64` bits. Reading past the end yields zeros and is a bug
    /// of the caller (lengths are computed from public parameters), caught by a
    /// debug assertion.
    #[inline]
    pub(crate) fn read(&mut self, width: u32) -> u64 {
        if width == 0 {
            return 0;
        }
        debug_assert!(self.pos + width as usize <= self.bits, "bit reader overrun");
        let w = self.pos / 64;
        let off = (self.pos % 64) as u32;
        let lo = self.words.get(w).copied().unwrap_or(0) >> off;
        let v = if off + width > 64 {
            lo | (self.words.get(w + 1).copied().unwrap_or(0) << (64 - off))
        } else {
            lo
        };
        self.pos += width as usize;
        if width == 64 {
            v
        } else {
            v & ((1u64 << width) - 1)
        }
    }

    /// Reads `width <= 128` bits.
    #[inline]
    pub(crate) fn read_u128(&mut self, width: u32) -> u128 {
        if width <= 64 {
            u128::from(self.read(width))
        } else {
            let lo = u128::from(self.read(64));
            lo | (u128::from(self.read(width - 64)) << 64)
        }
    }

    /// Reads `len` bits as a packed vector.
    pub(crate) fn read_bits(&mut self, len: usize) -> Bits {
        let mut words = Vec::with_capacity(words_for(len));
        let mut left = len;
        while left > 0 {
            let w = left.min(64) as u32;
            words.push(self.read(w));
            left -= w as usize;
        }
        Bits::from_words(words, len)
    }
}

/// Packs a bit vector into bytes (`ceil(len / 8)` of them).
pub(crate) fn bits_to_bytes(b: &Bits) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(b.len());
    w.push_bits(b);
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngExt, SeedableRng, rngs::ChaCha20Rng};

    #[test]
    fn writer_and_reader_round_trip_mixed_widths() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let widths: Vec<u32> = (0..500).map(|_| rng.random_range(0..=64)).collect();
        let vals: Vec<u64> = widths
            .iter()
            .map(|&w| {
                if w == 64 {
                    rng.next_u64()
                } else {
                    rng.next_u64() & ((1u64 << w) - 1)
                }
            })
            .collect();
        let mut wr = BitWriter::default();
        for (&v, &w) in vals.iter().zip(&widths) {
            wr.push(v, w);
        }
        let total = wr.len();
        assert_eq!(total, widths.iter().map(|&w| w as usize).sum::<usize>());
        let bytes = wr.into_bytes();
        assert_eq!(bytes.len(), total.div_ceil(8));
        let mut rd = BitReader::new(&bytes, total, "test").unwrap();
        for (&v, &w) in vals.iter().zip(&widths) {
            assert_eq!(rd.read(w), v);
        }
    }

    #[test]
    fn reader_rejects_wrong_length() {
        assert!(BitReader::new(&[0u8; 3], 17, "t").is_ok());
        assert!(BitReader::new(&[0u8; 4], 17, "t").is_err());
        assert!(BitReader::new(&[0u8; 2], 17, "t").is_err());
    }

    #[test]
    fn u128_values_round_trip() {
        let mut wr = BitWriter::default();
        wr.push(1, 3);
        wr.push_u128(u128::MAX - 5, 128);
        wr.push_u128(0x1234_5678_9abc_def0_1234, 100);
        let n = wr.len();
        let bytes = wr.into_bytes();
        let mut rd = BitReader::new(&bytes, n, "t").unwrap();
        assert_eq!(rd.read(3), 1);
        assert_eq!(rd.read_u128(128), u128::MAX - 5);
        assert_eq!(rd.read_u128(100), 0x1234_5678_9abc_def0_1234);
    }

    #[test]
    fn bits_slice_concat_and_ops_match_bools() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a: Vec<bool> = (0..300).map(|_| rng.random()).collect();
        let b: Vec<bool> = (0..300).map(|_| rng.random()).collect();
        let (ba, bb) = (Bits::from_bools(&a), Bits::from_bools(&b));
        assert_eq!(ba.to_bools(), a);
        let x = ba.xor(&bb).to_bools();
        let y = ba.and(&bb).to_bools();
        for i in 0..300 {
            assert_eq!(x[i], a[i] ^ b[i]);
            assert_eq!(y[i], a[i] & b[i]);
        }
        assert_eq!(
            ba.not().to_bools(),
            a.iter().map(|v| !v).collect::<Vec<_>>()
        );
        let s = ba.slice(37, 201);
        assert_eq!(s.to_bools(), a[37..201].to_vec());
        let c = Bits::concat(&[&s, &bb]);
        let mut expect = a[37..201].to_vec();
        expect.extend_from_slice(&b);
        assert_eq!(c.to_bools(), expect);
        let bytes = bits_to_bytes(&c);
        let mut rd = BitReader::new(&bytes, c.len(), "t").unwrap();
        assert_eq!(rd.read_bits(c.len()), c);
        assert_eq!(Bits::ones(70).words(), &[u64::MAX, 0x3f]);
    }
}
