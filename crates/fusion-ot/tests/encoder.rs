//! The silent-OT encoder (CryProt's Expand-Convolute code, vendored with a
//! batched expander: `vendor/README.md`) must compute exactly what the
//! crates.io release computes: both parties of a session run it, and a peer
//! built with the unchanged crate must still interoperate. The expected
//! digests below were computed with the release's own expansion loop.
#![allow(clippy::unwrap_used, missing_docs)]

use cryprot_codes::ex_conv::{ExConvCode, ExConvCodeConfig};
use cryprot_core::Block;

/// FNV-1a over the bytes of the message part, in order.
fn digest(v: &[Block]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v {
        for &byte in b.as_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn encode(message: usize, weight: usize, regular: bool) -> u64 {
    let code = ExConvCode::new_with_conf(
        message,
        ExConvCodeConfig {
            code_size: 2 * message,
            expander_weight: weight,
            regular_expander: regular,
            ..Default::default()
        },
    );
    let mut v: Vec<Block> = (0..2 * message as u64)
        .map(|i| Block::from([i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i ^ 0x1234_5678]))
        .collect();
    code.dual_encode(&mut v);
    digest(&v[..message])
}

#[test]
fn the_batched_expander_encodes_exactly_as_the_released_crate() {
    let cases = [
        (1000, 7, true),
        (1000, 21, true),
        (1000, 7, false),
        (4096 + 37, 7, true),
        (1 << 16, 7, true),
        (1 << 16, 21, true),
    ];
    let got: Vec<u64> = cases.iter().map(|&(m, w, r)| encode(m, w, r)).collect();
    assert_eq!(got, EXPECTED);
}

/// Digests of the crates.io release (cryprot-codes 0.2.5, unpatched), one per
/// case above.
const EXPECTED: [u64; 6] = [
    0x9b66_8c7c_b517_9c98,
    0x5fc9_d15b_b272_488b,
    0xe001_e682_b06a_f32e,
    0xc2b9_d5dd_d0e7_8f4c,
    0x0a87_28aa_6964_a5eb,
    0xeec9_f7df_cf31_d7e2,
];
