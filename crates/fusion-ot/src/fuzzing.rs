//! Fuzzing entry points for the decoders of peer bytes in this crate: the
//! bit reader every protocol flight is parsed with ([`crate::bits`]'s
//! `BitReader`, built for a publicly known number of bits) and the check of
//! a call's first flight (the peer's call header, then the payload).
//!
//! Each function takes arbitrary bytes, runs one decoder on them and checks
//! its contract, panicking if the contract is broken (a panic is what a
//! fuzzer reports). The cargo-fuzz targets in `fuzz/` call these functions;
//! the crate's own tests call them with seeded random and mutated valid
//! inputs. Compiled for tests and with the `fuzzing` feature only.
//!
//! The contract: no panic; an error is [`Error::Malformed`] (or, for another
//! call header, [`Error::PeerMismatch`]); what decodes re-encodes to the same
//! bytes (up to the zero padding of the last byte); nothing larger than the
//! input is allocated.

use crate::bits::{BitReader, BitWriter};
use crate::channel::{CallHeader, HEADER_LEN, Op, first_flight_payload};
use crate::error::Error;

/// The widths a reader reads, derived from `pattern`: `1..=64` (or up to
/// 128 for `read_u128`), cut to the bits left.
fn width(pattern: u8, k: usize, max: u32) -> u32 {
    let x = (usize::from(pattern) + 1)
        .wrapping_mul(k + 7)
        .wrapping_mul(2_654_435_761)
        >> 7;
    1 + (x % max as usize) as u32
}

/// A flight parsed with the bit reader: bytes 0-1 give the announced bit
/// count (little endian, below 2^14), byte 2 the reading pattern (low two
/// bits: `read`, `read_u128` or `read_bits`; the rest: the widths), the
/// rest is the flight. The reader must accept exactly the flights of
/// `ceil(bits / 8)` bytes, and the values read, written back with the same
/// widths, must give the flight with its padding bits cleared.
pub fn bit_reader(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let bits = usize::from(u16::from_le_bytes([data[0], data[1]])) % (1 << 14);
    let pattern = data[2];
    let flight = &data[3..];
    let mut rd = match BitReader::new(flight, bits, "fuzzed flight") {
        Ok(rd) => {
            assert_eq!(
                flight.len(),
                bits.div_ceil(8),
                "accepted a flight of another length"
            );
            rd
        }
        Err(Error::Malformed { .. }) => {
            assert_ne!(
                flight.len(),
                bits.div_ceil(8),
                "rejected a flight of the right length"
            );
            return;
        }
        Err(e) => panic!("unexpected error {e:?}"),
    };
    let mut w = BitWriter::with_capacity(bits);
    let mut left = bits;
    let mut k = 0;
    while left > 0 {
        match pattern % 3 {
            0 => {
                let n = width(pattern, k, 64).min(left as u32);
                let v = rd.read(n);
                assert!(n == 64 || v >> n == 0, "value wider than its width");
                w.push(v, n);
                left -= n as usize;
            }
            1 => {
                let n = width(pattern, k, 128).min(left as u32);
                let v = rd.read_u128(n);
                assert!(n == 128 || v >> n == 0, "value wider than its width");
                w.push_u128(v, n);
                left -= n as usize;
            }
            _ => {
                let n = (width(pattern, k, 200) as usize).min(left);
                let b = rd.read_bits(n);
                assert_eq!(b.len(), n, "bit vector of another length");
                w.push_bits(&b);
                left -= n;
            }
        }
        k += 1;
    }
    assert_eq!(w.len(), bits);
    let mut expected = flight.to_vec();
    if bits % 8 != 0
        && let Some(last) = expected.last_mut()
    {
        *last &= (1u8 << (bits % 8)) - 1;
    }
    assert_eq!(w.into_bytes(), expected, "re-encoding differs");
}

/// A valid call header (what this party sends on a call's first flight).
pub fn sample_header() -> [u8; HEADER_LEN] {
    CallHeader {
        op: Op::Relu,
        ring_bits: 37,
        block_bits: 4,
        param: 12,
        n: 1000,
    }
    .encode()
}

/// The check of a call's first flight: bytes 0-1 give the expected payload
/// length (little endian), the rest is the peer's flight, checked against
/// [`sample_header`]. Accepted exactly when the flight is that header
/// followed by that many bytes, which are returned; otherwise
/// [`Error::PeerMismatch`] (another header, both rendered) or
/// [`Error::Malformed`].
pub fn call_header(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let in_len = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let got = &data[2..];
    let ours = sample_header();
    match first_flight_payload(&ours, got, in_len) {
        Ok(payload) => {
            assert_eq!(&got[..HEADER_LEN], &ours[..]);
            assert_eq!(payload, &got[HEADER_LEN..]);
            assert_eq!(payload.len(), in_len);
        }
        Err(Error::PeerMismatch { ours: o, theirs }) => {
            assert_ne!(&got[..HEADER_LEN], &ours[..], "mismatch on the same header");
            assert!(!o.is_empty() && !theirs.is_empty());
        }
        Err(Error::Malformed { .. }) => {
            assert!(
                got.len() < HEADER_LEN
                    || (got[..HEADER_LEN] == ours[..] && got.len() != HEADER_LEN + in_len),
                "malformed reported for a well-formed flight"
            );
        }
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// Valid inputs for each target (seeds for the fuzzer's corpus and the
/// mutation tests): `(target, input)`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (bits, pattern) in [
        (0u16, 0u8),
        (13, 1),
        (64, 2),
        (200, 5),
        (1000, 0),
        (1001, 4),
    ] {
        let mut v = bits.to_le_bytes().to_vec();
        v.push(pattern);
        v.extend((0..usize::from(bits).div_ceil(8)).map(|i| (i * 37 + 11) as u8));
        out.push(("ot_bit_reader", v));
    }
    for payload in [0usize, 5, 100] {
        let mut v = (payload as u16).to_le_bytes().to_vec();
        v.extend_from_slice(&sample_header());
        v.extend((0..payload).map(|i| i as u8));
        out.push(("ot_call_header", v));
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::rngs::ChaCha20Rng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn target(name: &str) -> fn(&[u8]) {
        match name {
            "ot_bit_reader" => bit_reader,
            "ot_call_header" => call_header,
            _ => panic!("no target {name}"),
        }
    }

    #[test]
    fn valid_flights_decode_and_reencode_identically() {
        for (name, bytes) in seeds() {
            target(name)(&bytes);
        }
        let (_, hdr) = &seeds()[6];
        assert_eq!(
            first_flight_payload(&sample_header(), &hdr[2..], 0).expect("valid"),
            Vec::<u8>::new()
        );
        if let Some(dir) = std::env::var_os("FUSION_WRITE_FUZZ_SEEDS") {
            for (i, (name, bytes)) in seeds().iter().enumerate() {
                let d = std::path::Path::new(&dir).join(name);
                std::fs::create_dir_all(&d).expect("seed dir");
                std::fs::write(d.join(format!("seed-{i}")), bytes).expect("write seed");
            }
        }
    }

    #[test]
    fn a_header_of_another_call_is_a_peer_mismatch() {
        let mut got = sample_header().to_vec();
        got[3] = Op::Mul as u8;
        assert!(matches!(
            first_flight_payload(&sample_header(), &got, 0),
            Err(Error::PeerMismatch { .. })
        ));
        got[3] = 200;
        assert!(matches!(
            first_flight_payload(&sample_header(), &got, 0),
            Err(Error::PeerMismatch { .. })
        ));
    }

    #[test]
    fn random_and_mutated_flights_decode_or_are_malformed() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let seeds = seeds();
        for _ in 0..3000 {
            let (name, mut bytes) = seeds[rng.random_range(0..seeds.len())].clone();
            if rng.random_bool(0.3) {
                let len = rng.random_range(0..80);
                bytes = (0..len).map(|_| rng.random()).collect();
            } else {
                for _ in 0..rng.random_range(0..4) {
                    if bytes.is_empty() {
                        break;
                    }
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] = rng.random();
                }
                if rng.random_bool(0.2) {
                    let at = rng.random_range(0..=bytes.len());
                    bytes.truncate(at);
                }
                if rng.random_bool(0.1) {
                    bytes.push(rng.random());
                }
            }
            target(name)(&bytes);
        }
    }
}
