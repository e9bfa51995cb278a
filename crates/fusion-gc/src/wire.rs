//! The wire format of garbled material, with decoders bounded by sizes
//! computed from the public circuit.
//!
//! | item | bytes |
//! |---|---|
//! | garbled tables | `32` per AND gate, in the circuit's gate order: `T_G ‖ T_E`, each 16 bytes little endian |
//! | labels | `16` per label, little endian ([`crate::Labels::to_bytes`]) |
//! | output decoding bits | `⌈n/8⌉`, bit `i` at bit `i mod 8` of byte `i/8`, padding bits zero |
//!
//! A decoder is told how many items the public circuit implies and rejects
//! anything else with a specific [`GcError`]: never a panic, never an
//! allocation larger than the expected size.

use crate::error::{GcError, Result};

/// Bytes of one AND gate's garbled table (two 128-bit ciphertexts).
pub const TABLE_BYTES_PER_AND: usize = 32;

/// The garbled tables (`2` ciphertexts per AND) as bytes.
pub fn encode_tables(tables: &[u128]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tables.len() * 16);
    for t in tables {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out
}

/// Parses the tables of exactly `and_gates` AND gates; any other length is
/// [`GcError::TableLength`].
pub fn decode_tables(bytes: &[u8], and_gates: usize) -> Result<Vec<u128>> {
    let expected = and_gates.saturating_mul(TABLE_BYTES_PER_AND);
    if bytes.len() != expected {
        return Err(GcError::TableLength {
            expected,
            got: bytes.len(),
        });
    }
    Ok(ciphertexts(bytes))
}

/// The 128-bit ciphertexts of `bytes` (a multiple of 16 bytes, checked by
/// the caller).
pub(crate) fn ciphertexts(bytes: &[u8]) -> Vec<u128> {
    let mut w = [0u8; 16];
    bytes
        .chunks_exact(16)
        .map(|c| {
            w.copy_from_slice(c);
            u128::from_le_bytes(w)
        })
        .collect()
}

/// Packs bits (`⌈n/8⌉` bytes, least significant bit first).
pub fn encode_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        out[i / 8] |= u8::from(b) << (i % 8);
    }
    out
}

/// Unpacks exactly `n` bits: `⌈n/8⌉` bytes with zero padding, else
/// [`GcError::Malformed`].
pub fn decode_bits(bytes: &[u8], n: usize, what: &'static str) -> Result<Vec<bool>> {
    if bytes.len() != n.div_ceil(8) {
        return Err(GcError::Malformed {
            what,
            detail: format!(
                "{} bytes where {} were expected",
                bytes.len(),
                n.div_ceil(8)
            ),
        });
    }
    if !n.is_multiple_of(8) && bytes[n / 8] >> (n % 8) != 0 {
        return Err(GcError::Malformed {
            what,
            detail: "non-zero padding bits".into(),
        });
    }
    Ok((0..n).map(|i| (bytes[i / 8] >> (i % 8)) & 1 == 1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_and_wrong_lengths_are_refused() {
        let t: Vec<u128> = (0..6).map(|i| (i as u128) << 100 | i as u128).collect();
        let b = encode_tables(&t);
        assert_eq!(b.len(), 3 * TABLE_BYTES_PER_AND);
        assert_eq!(decode_tables(&b, 3).unwrap(), t);
        for bad in [&b[..b.len() - 1], &b[..b.len() - 32], &[][..]] {
            assert!(matches!(
                decode_tables(bad, 3),
                Err(GcError::TableLength { expected: 96, .. })
            ));
        }
        let mut long = b.clone();
        long.push(0);
        assert!(matches!(
            decode_tables(&long, 3),
            Err(GcError::TableLength {
                expected: 96,
                got: 97
            })
        ));
    }

    #[test]
    fn bits_round_trip_and_bad_padding_is_refused() {
        let bits: Vec<bool> = (0..13).map(|i| i % 3 == 0).collect();
        let b = encode_bits(&bits);
        assert_eq!(b.len(), 2);
        assert_eq!(decode_bits(&b, 13, "bits").unwrap(), bits);
        let mut pad = b.clone();
        pad[1] |= 0x80;
        assert!(matches!(
            decode_bits(&pad, 13, "bits"),
            Err(GcError::Malformed { .. })
        ));
        assert!(matches!(
            decode_bits(&b[..1], 13, "bits"),
            Err(GcError::Malformed { .. })
        ));
    }
}
