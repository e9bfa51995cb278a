//! Wire formats with bounded, checked decoding.
//!
//! Every message has a one-byte tag and a little-endian `u32` count, then
//! bit-packed data (LSB first). Decoders compute the exact expected length from
//! the public plan and parameters *before* looking at the data, reject any other
//! length, check every residue against its modulus and every padding bit for zero,
//! and never allocate more than the expected size.
//!
//! * [`PublicKeyMsg`]: `0x50`, parameter fingerprint, 32-byte seed, `pk0` (evaluation
//!   form, `L` residues per coefficient of `ceil(log2 p_i)` bits each).
//! * [`Query`]: `0x51`, count of input ciphertexts, 32-byte seed of their `a`
//!   polynomials, then each `b` polynomial in coefficient form, every
//!   coefficient an integer modulo `q` rounded to a multiple of `2^d`
//!   ([`crate::query_rounding`]) in [`HeParams::query_coeff_bits`] bits, checked
//!   against the largest valid value on decoding.
//! * [`Reply`]: `0x52`, count of reply ciphertexts, then per ciphertext the `a`
//!   polynomial (`N` values of `l + k_a` bits) and the `b` values that carry results
//!   (`l + k_b` bits each), each part padded to a whole byte. Packed replies
//!   ([`crate::pack`]) have the same format with fewer, denser ciphertexts.
//! * [`GaloisKeyMsg`] (only with response packing): `0x53`, count of key
//!   polynomials (`levels * digits`), parameter fingerprint, 32-byte seed of the
//!   keys' `a` polynomials, then every key's `b` polynomial like `pk0`.

use crate::error::HeError;
use crate::keys::{GaloisKeys, PublicKey};
use crate::params::HeParams;
use crate::plan::LinearPlan;

pub(crate) const TAG_PK: u8 = 0x50;
pub(crate) const TAG_QUERY: u8 = 0x51;
pub(crate) const TAG_REPLY: u8 = 0x52;
pub(crate) const TAG_GALOIS: u8 = 0x53;

/// Appends values of a fixed bit width, least significant bit first.
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    fill: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            fill: 0,
        }
    }

    #[inline]
    fn put64(&mut self, v: u64, bits: u32) {
        debug_assert!(bits <= 64 && (bits == 64 || v >> bits == 0));
        self.acc |= (v as u128) << self.fill;
        self.fill += bits;
        while self.fill >= 64 {
            self.out.extend_from_slice(&(self.acc as u64).to_le_bytes());
            self.acc >>= 64;
            self.fill -= 64;
        }
    }

    /// Appends the low `bits` bits of `v` (`bits <= 128`).
    #[inline]
    pub(crate) fn put(&mut self, v: u128, bits: u32) {
        if bits > 64 {
            self.put64(v as u64, 64);
            self.put64((v >> 64) as u64, bits - 64);
        } else {
            self.put64(v as u64, bits);
        }
    }

    /// Flushes the partial byte (zero padding).
    pub(crate) fn finish(mut self) {
        while self.fill > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.fill = self.fill.saturating_sub(8);
        }
    }
}

/// Reads values of a fixed bit width from a byte slice of known length.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u128,
    fill: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            acc: 0,
            fill: 0,
        }
    }

    #[inline]
    fn get64(&mut self, bits: u32) -> u64 {
        while self.fill < bits {
            let mut word = [0u8; 8];
            let take = (self.data.len() - self.pos).min(8);
            word[..take].copy_from_slice(&self.data[self.pos..self.pos + take]);
            self.pos += take;
            self.acc |= (u64::from_le_bytes(word) as u128) << self.fill;
            self.fill += 8 * take as u32;
            if take == 0 {
                break;
            }
        }
        let v = if bits == 64 {
            self.acc as u64
        } else {
            (self.acc as u64) & ((1u64 << bits) - 1)
        };
        self.acc >>= bits;
        self.fill = self.fill.saturating_sub(bits);
        v
    }

    /// Reads `bits` bits (`bits <= 128`). The caller guarantees the data is long enough.
    #[inline]
    pub(crate) fn get(&mut self, bits: u32) -> u128 {
        if bits > 64 {
            let lo = self.get64(64) as u128;
            lo | (self.get64(bits - 64) as u128) << 64
        } else {
            self.get64(bits) as u128
        }
    }

    /// Whether all unread bits of the buffered partial byte are zero (padding check).
    pub(crate) fn padding_is_zero(&self) -> bool {
        self.acc == 0
    }
}

pub(crate) fn header(tag: u8, count: u32, capacity: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(capacity);
    v.push(tag);
    v.extend_from_slice(&count.to_le_bytes());
    v
}

/// Checks the header of a key message (tag, parameter fingerprint, count and
/// total length, in that order) and returns the offset of its body;
/// `mismatch` is the error for keys made for other parameters.
fn check_keyed_header(
    params: &HeParams,
    bytes: &[u8],
    what: &'static str,
    tag: u8,
    count: usize,
    expected: usize,
    mismatch: &str,
) -> Result<usize, HeError> {
    let fp = params.fingerprint();
    if bytes.len() < 7 {
        return Err(HeError::MessageLength {
            what,
            expected,
            found: bytes.len(),
        });
    }
    if bytes[0] != tag {
        return Err(HeError::Malformed {
            what,
            detail: format!("tag {:#x}, expected {tag:#x}", bytes[0]),
        });
    }
    let fp_len = u16::from_le_bytes([bytes[5], bytes[6]]) as usize;
    if fp_len != fp.len() || bytes.get(7..7 + fp_len) != Some(&fp[..]) {
        return Err(HeError::ParamMismatch(mismatch.into()));
    }
    check_header(bytes, what, tag, count, expected)?;
    Ok(7 + fp.len())
}

pub(crate) fn check_header(
    bytes: &[u8],
    what: &'static str,
    tag: u8,
    count: usize,
    expected_len: usize,
) -> Result<(), HeError> {
    if bytes.len() != expected_len {
        return Err(HeError::MessageLength {
            what,
            expected: expected_len,
            found: bytes.len(),
        });
    }
    if bytes[0] != tag {
        return Err(HeError::Malformed {
            what,
            detail: format!("tag {:#x}, expected {tag:#x}", bytes[0]),
        });
    }
    let found = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    if found != count {
        return Err(HeError::Malformed {
            what,
            detail: format!("{found} ciphertexts, expected {count}"),
        });
    }
    Ok(())
}

/// Packs polynomials modulo `q` (residues, `L * N` each).
pub(crate) fn pack_polys(params: &HeParams, polys: &[u64], out: &mut Vec<u8>) {
    let n = params.degree();
    let l = params.primes().len();
    for poly in polys.chunks_exact(l * n) {
        let mut w = BitWriter::new(out);
        for (i, block) in poly.chunks_exact(n).enumerate() {
            let bits = params.residue_bits(i);
            for &x in block {
                w.put(x as u128, bits);
            }
        }
        w.finish();
    }
}

/// Unpacks `count` polynomials with range checks.
pub(crate) fn unpack_polys(
    params: &HeParams,
    data: &[u8],
    count: usize,
    what: &'static str,
) -> Result<Vec<u64>, HeError> {
    let n = params.degree();
    let l = params.primes().len();
    let per = params.poly_bytes();
    let mut out = Vec::with_capacity(count * l * n);
    for (k, chunk) in data.chunks_exact(per).enumerate().take(count) {
        let mut r = BitReader::new(chunk);
        for (i, &p) in params.primes().iter().enumerate() {
            let bits = params.residue_bits(i);
            for j in 0..n {
                let x = r.get(bits) as u64;
                if x >= p {
                    return Err(HeError::CoefficientOutOfRange {
                        what,
                        index: (k * l + i) * n + j,
                        value: x as u128,
                        modulus: p as u128,
                    });
                }
                out.push(x);
            }
        }
        if !r.padding_is_zero() {
            return Err(HeError::Malformed {
                what,
                detail: format!("non-zero padding in ciphertext {k}"),
            });
        }
    }
    Ok(out)
}

/// The client's public key on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyMsg(pub(crate) Vec<u8>);

impl PublicKeyMsg {
    /// Encodes a public key.
    pub fn encode(pk: &PublicKey) -> Self {
        let params = pk.params();
        let fp = params.fingerprint();
        let mut v = header(TAG_PK, 1, 5 + 2 + fp.len() + 32 + params.poly_bytes());
        v.extend_from_slice(&(fp.len() as u16).to_le_bytes());
        v.extend_from_slice(&fp);
        v.extend_from_slice(&pk.seed);
        pack_polys(params, &pk.b_ntt, &mut v);
        PublicKeyMsg(v)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The exact encoded length for `params`.
    pub fn expected_len(params: &HeParams) -> usize {
        5 + 2 + params.fingerprint().len() + 32 + params.poly_bytes()
    }

    /// Decodes and validates a peer's public key against our parameters.
    pub fn decode(params: &HeParams, bytes: &[u8]) -> Result<PublicKey, HeError> {
        let what = "public key";
        let expected = Self::expected_len(params);
        let off = check_keyed_header(
            params,
            bytes,
            what,
            TAG_PK,
            1,
            expected,
            "the peer's public key is for other parameters",
        )?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[off..off + 32]);
        let b_ntt = unpack_polys(params, &bytes[off + 32..], 1, what)?;
        Ok(PublicKey {
            params: params.clone(),
            seed,
            b_ntt,
        })
    }
}

/// The client's Galois keys on the wire (response packing only; see
/// [`crate::galois`]). Sent once at setup after the public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaloisKeyMsg(pub(crate) Vec<u8>);

impl GaloisKeyMsg {
    fn key_count(params: &HeParams) -> usize {
        params.reply_packing_levels() as usize * params.key_switch_digits()
    }

    /// Encodes Galois keys.
    pub fn encode(gk: &GaloisKeys) -> Self {
        let params = gk.params();
        let fp = params.fingerprint();
        let count = Self::key_count(params);
        let mut v = header(TAG_GALOIS, count as u32, Self::expected_len(params));
        v.extend_from_slice(&(fp.len() as u16).to_le_bytes());
        v.extend_from_slice(&fp);
        v.extend_from_slice(&gk.seed);
        pack_polys(params, &gk.b, &mut v);
        GaloisKeyMsg(v)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The exact encoded length for `params` (`0`: packing off, no message).
    pub fn expected_len(params: &HeParams) -> usize {
        let count = Self::key_count(params);
        if count == 0 {
            return 0;
        }
        5 + 2 + params.fingerprint().len() + 32 + count * params.poly_bytes()
    }

    /// Decodes and validates a peer's Galois keys against our parameters: the
    /// length is checked against the parameters before anything is allocated,
    /// every residue against its prime, every padding bit for zero.
    pub fn decode(params: &HeParams, bytes: &[u8]) -> Result<GaloisKeys, HeError> {
        let what = "Galois keys";
        let count = Self::key_count(params);
        if count == 0 {
            return Err(HeError::ParamMismatch(
                "Galois keys for parameters without response packing".into(),
            ));
        }
        let expected = Self::expected_len(params);
        let off = check_keyed_header(
            params,
            bytes,
            what,
            TAG_GALOIS,
            count,
            expected,
            "the peer's Galois keys are for other parameters",
        )?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[off..off + 32]);
        let b = unpack_polys(params, &bytes[off + 32..], count, what)?;
        Ok(GaloisKeys {
            params: params.clone(),
            seed,
            b,
        })
    }
}

/// The client's message for one layer call: its encrypted input share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub(crate) seed: [u8; 32],
    /// The rounded `b` coefficients ([`crate::query_rounding`]): `in_cts * N`
    /// values of `limbs` little-endian 64-bit limbs each.
    pub(crate) rounded: Vec<u64>,
}

impl Query {
    /// The exact encoded length for `plan`.
    pub fn expected_len(plan: &LinearPlan) -> usize {
        5 + 32 + plan.input_cts() * plan.params().query_poly_bytes()
    }

    /// Encodes the query.
    pub fn to_bytes(&self, plan: &LinearPlan) -> Vec<u8> {
        let params = plan.params();
        let qr = &params.inner.query_rounding;
        let n = params.degree();
        let count = self.rounded.len() / (n * qr.limbs);
        let mut v = header(TAG_QUERY, count as u32, Self::expected_len(plan));
        v.extend_from_slice(&self.seed);
        for poly in self.rounded.chunks_exact(n * qr.limbs) {
            let mut w = BitWriter::new(&mut v);
            for x in poly.chunks_exact(qr.limbs) {
                put_wide(&mut w, x, qr.wire_bits);
            }
            w.finish();
        }
        v
    }

    /// Decodes a peer's query for `plan`, checking its size, every coefficient
    /// against the largest valid rounded value and the padding.
    pub fn from_bytes(plan: &LinearPlan, bytes: &[u8]) -> Result<Self, HeError> {
        let what = "query";
        check_header(
            bytes,
            what,
            TAG_QUERY,
            plan.input_cts(),
            Self::expected_len(plan),
        )?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[5..37]);
        let params = plan.params();
        let qr = &params.inner.query_rounding;
        let n = params.degree();
        let per = params.query_poly_bytes();
        let mut rounded = vec![0u64; plan.input_cts() * n * qr.limbs];
        for (k, (chunk, out)) in bytes[37..]
            .chunks_exact(per)
            .zip(rounded.chunks_exact_mut(n * qr.limbs))
            .enumerate()
        {
            let mut r = BitReader::new(chunk);
            for (j, x) in out.chunks_exact_mut(qr.limbs).enumerate() {
                get_wide(&mut r, x, qr.wire_bits);
                if !qr.in_range(x) {
                    return Err(HeError::CoefficientOutOfRange {
                        what,
                        index: k * n + j,
                        value: saturating_u128(x),
                        modulus: saturating_u128(&qr.max).saturating_add(1),
                    });
                }
            }
            if !r.padding_is_zero() {
                return Err(HeError::Malformed {
                    what,
                    detail: format!("non-zero padding in ciphertext {k}"),
                });
            }
        }
        Ok(Query { seed, rounded })
    }

    /// The `b` polynomials the server computes with: `2^d` times the rounded
    /// coefficients, in evaluation form (`in_cts * L * N` residues).
    pub(crate) fn b_ntt(&self, params: &HeParams) -> Vec<u64> {
        use rayon::prelude::*;
        let qr = &params.inner.query_rounding;
        let n = params.degree();
        let l = params.primes().len();
        let mut b = vec![0u64; self.rounded.len() / qr.limbs * l];
        b.par_chunks_mut(l * n)
            .zip(self.rounded.par_chunks(n * qr.limbs))
            .for_each(|(poly, x)| {
                let mut res = [0u64; 16];
                for (j, coeff) in x.chunks_exact(qr.limbs).enumerate() {
                    qr.lift(coeff, params.primes(), &params.inner.pow2_64, &mut res[..l]);
                    for i in 0..l {
                        poly[i * n + j] = res[i];
                    }
                }
                crate::poly::fwd(params, poly);
            });
        b
    }
}

/// Appends the `bits`-bit integer `x` (little-endian limbs).
fn put_wide(w: &mut BitWriter<'_>, x: &[u64], bits: u32) {
    let mut left = bits;
    for &limb in x {
        if left == 0 {
            break;
        }
        let take = left.min(64);
        w.put((limb & mask64(take)) as u128, take);
        left -= take;
    }
}

/// Reads a `bits`-bit integer into `x` (little-endian limbs, the rest zero).
fn get_wide(r: &mut BitReader<'_>, x: &mut [u64], bits: u32) {
    let mut left = bits;
    for limb in x.iter_mut() {
        let take = left.min(64);
        *limb = if take == 0 { 0 } else { r.get(take) as u64 };
        left -= take;
    }
}

/// The integer `x` (little-endian limbs), or `u128::MAX` if it does not fit
/// (for error messages).
fn saturating_u128(x: &[u64]) -> u128 {
    if x.iter().skip(2).any(|&l| l != 0) {
        return u128::MAX;
    }
    x.first().copied().unwrap_or(0) as u128 | (x.get(1).copied().unwrap_or(0) as u128) << 64
}

fn mask64(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The server's reply for one layer call: compressed, re-randomised, flooded
/// ciphertexts of the client's output share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub(crate) bytes: Vec<u8>,
}

impl Reply {
    /// Bytes of the `a` part and of the `b` part of reply ciphertext `ct`.
    pub(crate) fn segment(plan: &LinearPlan, ct: usize) -> (usize, usize) {
        plan.reply_segment(ct)
    }

    /// The exact encoded length for `plan`.
    pub fn expected_len(plan: &LinearPlan) -> usize {
        plan.reply_len()
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Encoded length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the encoding is empty (never for a valid reply).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Decodes a peer's reply for `plan`, checking its size and padding.
    pub fn from_bytes(plan: &LinearPlan, bytes: Vec<u8>) -> Result<Self, HeError> {
        let what = "reply";
        check_header(
            &bytes,
            what,
            TAG_REPLY,
            plan.output_cts(),
            Self::expected_len(plan),
        )?;
        // Padding of every part must be zero.
        let p = plan.params();
        let (ka, kb) = (
            p.ring().bits() + p.reply_a_extra_bits(),
            p.ring().bits() + p.reply_b_extra_bits(),
        );
        let mut off = 5;
        for ct in 0..plan.output_cts() {
            let (sa, sb) = Self::segment(plan, ct);
            for (len, count, bits) in [(sa, p.degree(), ka), (sb, plan.reply_values(ct), kb)] {
                let used = count * bits as usize;
                let pad = len * 8 - used;
                if pad > 0 && len > 0 && bytes[off + len - 1] >> (8 - pad) != 0 {
                    return Err(HeError::Malformed {
                        what,
                        detail: format!("non-zero padding in ciphertext {ct}"),
                    });
                }
                off += len;
            }
        }
        Ok(Reply { bytes })
    }
}

impl HeParams {
    /// One-off setup bytes of the Galois keys ([`crate::GaloisKeyMsg`], without the
    /// 8-byte frame header): `0` when packing is off.
    pub fn galois_key_bytes(&self) -> usize {
        GaloisKeyMsg::expected_len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bit_packing_round_trips(vals in proptest::collection::vec(any::<u128>(), 0..50), bits in 1u32..=120) {
            let mask = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
            let vals: Vec<u128> = vals.into_iter().map(|v| v & mask).collect();
            let mut buf = Vec::new();
            let mut w = BitWriter::new(&mut buf);
            for &v in &vals {
                w.put(v, bits);
            }
            w.finish();
            prop_assert_eq!(buf.len(), (vals.len() * bits as usize).div_ceil(8));
            let mut r = BitReader::new(&buf);
            for &v in &vals {
                prop_assert_eq!(r.get(bits), v);
            }
            prop_assert!(r.padding_is_zero());
        }
    }
}
