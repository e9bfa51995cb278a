//! Property tests of the wire encodings: round trips, and arbitrary peer
//! bytes give a typed error or a value, never a panic.
#![allow(clippy::unwrap_used, missing_docs)]

use fusion_gc::wire::{decode_bits, decode_tables, encode_bits, encode_tables};
use fusion_gc::{GcError, Labels};
use proptest::prelude::*;

proptest! {
    #[test]
    fn tables_round_trip(g in proptest::collection::vec(any::<(u128, u128)>(), 0..64)) {
        let t: Vec<u128> = g.iter().flat_map(|&(a, b)| [a, b]).collect();
        let b = encode_tables(&t);
        prop_assert_eq!(b.len(), 16 * t.len());
        prop_assert_eq!(decode_tables(&b, t.len() / 2).unwrap(), t);
    }

    #[test]
    fn arbitrary_table_bytes_decode_only_at_the_exact_length(
        b in proptest::collection::vec(any::<u8>(), 0..300),
        ands in 0usize..12,
    ) {
        match decode_tables(&b, ands) {
            Ok(t) => {
                prop_assert_eq!(b.len(), 32 * ands);
                prop_assert_eq!(t.len(), 2 * ands);
            }
            Err(GcError::TableLength { expected, got }) => {
                prop_assert_eq!(expected, 32 * ands);
                prop_assert_eq!(got, b.len());
                prop_assert_ne!(b.len(), 32 * ands);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn bits_round_trip(bits in proptest::collection::vec(any::<bool>(), 0..200)) {
        let b = encode_bits(&bits);
        prop_assert_eq!(b.len(), bits.len().div_ceil(8));
        prop_assert_eq!(decode_bits(&b, bits.len(), "bits").unwrap(), bits);
    }

    #[test]
    fn arbitrary_bit_bytes_never_panic(
        b in proptest::collection::vec(any::<u8>(), 0..40),
        n in 0usize..300,
    ) {
        if let Ok(bits) = decode_bits(&b, n, "bits") {
            prop_assert_eq!(bits.len(), n);
            prop_assert_eq!(encode_bits(&bits), b);
        }
    }

    #[test]
    fn labels_round_trip_and_arbitrary_bytes_never_panic(
        b in proptest::collection::vec(any::<u8>(), 0..200),
        n in 0usize..14,
    ) {
        match Labels::from_bytes(&b, n, "labels") {
            Ok(l) => {
                prop_assert_eq!(l.len(), n);
                prop_assert_eq!(l.to_bytes(), b);
            }
            Err(GcError::LabelLength { expected, got_bytes, .. }) => {
                prop_assert_eq!(expected, n);
                prop_assert_eq!(got_bytes, b.len());
                prop_assert_ne!(b.len(), 16 * n);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
