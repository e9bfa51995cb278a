//! Wire formats of the SIMD path, with bounded, checked decoding (the same
//! conventions as [`crate::wire`]: a tag byte, a little-endian `u32` count,
//! bit-packed data, exact lengths computed from public data before anything
//! is read, residues checked against their moduli, zero padding).
//!
//! * public key: `0x60`, count 1, fingerprint (`u16` length + bytes), 32-byte
//!   seed of `pk1`, `pk0` (evaluation form, `L` residues per coefficient);
//! * Galois keys: `0x63`, count of key polynomials (`elements * digits`),
//!   fingerprint, `u16` number of elements, the elements (`u32` each,
//!   strictly increasing), 32-byte seed, the keys' `b` polynomials;
//! * query: `0x61`, count of input ciphertexts, 32-byte seed of their `a`
//!   polynomials, their `b` polynomials like `pk0`;
//! * reply: `0x62`, count of output ciphertexts, per ciphertext `a` (`N`
//!   values of `k_a` bits) then `b` (`N` values of `k_b` bits), each padded
//!   to a byte.

use super::params::SimdParams;
use super::plan::SimdPlan;
use super::rotation::{GaloisSet, SimdGaloisKeys};
use crate::error::HeError;
use crate::keys::PublicKey;
use crate::wire::{BitReader, check_header, header, pack_polys, unpack_polys};

pub(crate) const TAG_PK: u8 = 0x60;
pub(crate) const TAG_QUERY: u8 = 0x61;
pub(crate) const TAG_REPLY: u8 = 0x62;
pub(crate) const TAG_GALOIS: u8 = 0x63;

/// Exact length of a query for `plan`.
pub(crate) fn query_len(plan: &SimdPlan) -> usize {
    5 + 32 + plan.input_cts() * plan.params.poly_bytes()
}

/// Exact length of a reply for `plan`.
pub(crate) fn reply_len(plan: &SimdPlan) -> usize {
    5 + plan.output_cts() * plan.params.reply_ct_bytes()
}

fn fp_header(params: &SimdParams, tag: u8, count: u32, capacity: usize) -> Vec<u8> {
    let fp = params.fingerprint();
    let mut v = header(tag, count, capacity);
    v.extend_from_slice(&(fp.len() as u16).to_le_bytes());
    v.extend_from_slice(&fp);
    v
}

/// Checks tag and fingerprint of a keyed message; returns the body offset.
fn check_fp(
    params: &SimdParams,
    bytes: &[u8],
    what: &'static str,
    tag: u8,
) -> Result<usize, HeError> {
    let fp = params.fingerprint();
    if bytes.len() < 7 + fp.len() {
        return Err(HeError::MessageLength {
            what,
            expected: 7 + fp.len(),
            found: bytes.len(),
        });
    }
    if bytes[0] != tag {
        return Err(HeError::Malformed {
            what,
            detail: format!("tag {:#x}, expected {tag:#x}", bytes[0]),
        });
    }
    let len = u16::from_le_bytes([bytes[5], bytes[6]]) as usize;
    if len != fp.len() || bytes[7..7 + fp.len()] != fp[..] {
        return Err(HeError::ParamMismatch(format!(
            "the peer's {what} is for other SIMD parameters"
        )));
    }
    Ok(7 + fp.len())
}

/// The client's public key on the wire.
pub fn encode_public_key(params: &SimdParams, pk: &PublicKey) -> Vec<u8> {
    let mut v = fp_header(params, TAG_PK, 1, public_key_len(params));
    v.extend_from_slice(&pk.seed);
    pack_polys(params.he(), &pk.b_ntt, &mut v);
    v
}

/// Exact length of a public key message.
pub fn public_key_len(params: &SimdParams) -> usize {
    7 + params.fingerprint().len() + 32 + params.poly_bytes()
}

/// Decodes and checks a peer's public key.
pub fn decode_public_key(params: &SimdParams, bytes: &[u8]) -> Result<PublicKey, HeError> {
    let what = "SIMD public key";
    let off = check_fp(params, bytes, what, TAG_PK)?;
    check_header(bytes, what, TAG_PK, 1, public_key_len(params))?;
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&bytes[off..off + 32]);
    let b_ntt = unpack_polys(params.he(), &bytes[off + 32..], 1, what)?;
    Ok(PublicKey {
        params: params.he().clone(),
        seed,
        b_ntt,
    })
}

/// Exact length of a Galois key message for `set`.
pub fn galois_keys_len(params: &SimdParams, set: &GaloisSet) -> usize {
    7 + params.fingerprint().len()
        + 2
        + 4 * set.elements().len()
        + 32
        + set.elements().len() * params.key_switch_digits() * params.poly_bytes()
}

/// Encodes Galois keys.
pub fn encode_galois_keys(gk: &SimdGaloisKeys) -> Vec<u8> {
    let params = &gk.params;
    let e = gk.set.elements();
    let count = (e.len() * params.key_switch_digits()) as u32;
    let mut v = fp_header(params, TAG_GALOIS, count, galois_keys_len(params, &gk.set));
    v.extend_from_slice(&(e.len() as u16).to_le_bytes());
    for g in e {
        v.extend_from_slice(&g.to_le_bytes());
    }
    v.extend_from_slice(&gk.seed);
    pack_polys(params.he(), &gk.b, &mut v);
    v
}

/// Decodes and checks a peer's Galois keys: the element list is bounded by
/// `N/2`, strictly increasing and valid; the total length is checked before
/// the polynomials are read.
pub fn decode_galois_keys(params: &SimdParams, bytes: &[u8]) -> Result<SimdGaloisKeys, HeError> {
    let what = "SIMD Galois keys";
    let n = params.degree();
    let off = check_fp(params, bytes, what, TAG_GALOIS)?;
    if bytes.len() < off + 2 {
        return Err(HeError::MessageLength {
            what,
            expected: off + 2,
            found: bytes.len(),
        });
    }
    let count = u16::from_le_bytes([bytes[off], bytes[off + 1]]) as usize;
    if count > n / 2 {
        return Err(HeError::Malformed {
            what,
            detail: format!("{count} Galois elements, at most {}", n / 2),
        });
    }
    let list_end = off + 2 + 4 * count;
    if bytes.len() < list_end {
        return Err(HeError::MessageLength {
            what,
            expected: list_end,
            found: bytes.len(),
        });
    }
    let elements: Vec<u32> = bytes[off + 2..list_end]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if elements.windows(2).any(|w| w[0] >= w[1]) {
        return Err(HeError::Malformed {
            what,
            detail: "Galois elements are not strictly increasing".into(),
        });
    }
    let set = GaloisSet::from_elements(n, elements).map_err(|e| HeError::Malformed {
        what,
        detail: e.to_string(),
    })?;
    let polys = count * params.key_switch_digits();
    check_header(
        bytes,
        what,
        TAG_GALOIS,
        polys,
        galois_keys_len(params, &set),
    )?;
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&bytes[list_end..list_end + 32]);
    let b = unpack_polys(params.he(), &bytes[list_end + 32..], polys, what)?;
    Ok(SimdGaloisKeys {
        params: params.clone(),
        set,
        seed,
        b,
    })
}

/// The client's encrypted input share for one layer call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimdQuery {
    pub(crate) seed: [u8; 32],
    /// `b` polynomials in evaluation form, `input_cts * L * N` residues.
    pub(crate) cts: Vec<u64>,
}

impl SimdQuery {
    /// Encodes the query.
    pub fn to_bytes(&self, plan: &SimdPlan) -> Vec<u8> {
        let mut v = header(TAG_QUERY, plan.input_cts() as u32, query_len(plan));
        v.extend_from_slice(&self.seed);
        pack_polys(plan.params.he(), &self.cts, &mut v);
        v
    }

    /// Decodes a peer's query for `plan`, checking its size and every residue.
    pub fn from_bytes(plan: &SimdPlan, bytes: &[u8]) -> Result<Self, HeError> {
        let what = "SIMD query";
        check_header(bytes, what, TAG_QUERY, plan.input_cts(), query_len(plan))?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[5..37]);
        let cts = unpack_polys(plan.params.he(), &bytes[37..], plan.input_cts(), what)?;
        Ok(SimdQuery { seed, cts })
    }
}

/// The server's reply: re-randomised, flooded, modulus-switched ciphertexts of
/// the client's output share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimdReply {
    pub(crate) bytes: Vec<u8>,
}

impl SimdReply {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes a peer's reply for `plan`: exact length, tag, count and zero padding.
    pub fn from_bytes(plan: &SimdPlan, bytes: Vec<u8>) -> Result<Self, HeError> {
        let what = "SIMD reply";
        check_header(&bytes, what, TAG_REPLY, plan.output_cts(), reply_len(plan))?;
        let params = &plan.params;
        let n = params.degree();
        let mut off = 5;
        for ct in 0..plan.output_cts() {
            for bits in [params.reply_a_bits(), params.reply_b_bits()] {
                let len = (n * bits as usize).div_ceil(8);
                let pad = len * 8 - n * bits as usize;
                if pad > 0 && bytes[off + len - 1] >> (8 - pad) != 0 {
                    return Err(HeError::Malformed {
                        what,
                        detail: format!("non-zero padding in ciphertext {ct}"),
                    });
                }
                off += len;
            }
        }
        Ok(SimdReply { bytes })
    }

    /// Reads reply ciphertext `ct`'s `a` and `b` values (the reply is checked).
    pub(crate) fn read(&self, plan: &SimdPlan, ct: usize) -> (Vec<u128>, Vec<u128>) {
        let params = &plan.params;
        let n = params.degree();
        let (ka, kb) = (params.reply_a_bits(), params.reply_b_bits());
        let la = (n * ka as usize).div_ceil(8);
        let lb = (n * kb as usize).div_ceil(8);
        let off = 5 + ct * (la + lb);
        let mut ra = BitReader::new(&self.bytes[off..off + la]);
        let a = (0..n).map(|_| ra.get(ka)).collect();
        let mut rb = BitReader::new(&self.bytes[off + la..off + la + lb]);
        let b = (0..n).map(|_| rb.get(kb)).collect();
        (a, b)
    }
}
