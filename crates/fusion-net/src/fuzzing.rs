//! Fuzzing entry points for the decoders of peer bytes in this crate.
//!
//! Each function takes arbitrary bytes, runs one decoder on them and checks
//! its contract, panicking if the contract is broken (a panic is what a
//! fuzzer reports). The cargo-fuzz targets in `fuzz/` call these functions;
//! the crate's own tests call them with seeded random and mutated valid
//! inputs, so `cargo test` runs the same checks briefly. Compiled for tests
//! and with the `fuzzing` feature only.
//!
//! The contract of every decoder: no panic; an error is the decoder's
//! malformed-data variant; what decodes re-encodes to the same bytes; nothing
//! larger than the input is kept (bincode's byte limit, checked lengths).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::MessageConfig;
use crate::error::NetError;
use crate::message::{FrameReceiver, HEADER_BYTES, decode, encode};

/// A message with every shape of serde data the protocol messages use
/// (integers of each width, booleans, characters, floats, strings, byte and
/// integer vectors, options, nested vectors, tuples, unit, newtype, tuple and
/// struct enum variants), so that every bincode decoding path is reachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// A one-byte integer.
    pub small: u8,
    /// A four-byte integer.
    pub id: u32,
    /// A signed eight-byte integer.
    pub signed: i64,
    /// A flag (bincode accepts 0 and 1 only).
    pub flag: bool,
    /// A character (checked for a valid scalar value).
    pub letter: char,
    /// A float (bit pattern kept as is).
    pub ratio: f64,
    /// A string (checked for UTF-8).
    pub note: String,
    /// Shares.
    pub shares: Vec<u64>,
    /// Optional raw bytes.
    pub blob: Option<Vec<u8>>,
    /// Nested vectors.
    pub nested: Vec<Vec<u16>>,
    /// A tuple.
    pub pair: (u32, i8),
    /// Enum variants.
    pub kinds: Vec<ProbeKind>,
}

/// The enum part of [`Probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProbeKind {
    /// A unit variant.
    Empty,
    /// A newtype variant.
    Count(u64),
    /// A tuple variant.
    Pair(u8, String),
    /// A struct variant.
    Named {
        /// A field.
        name: String,
        /// Another field.
        values: Vec<i32>,
    },
}

/// A valid [`Probe`] (the seed of mutation-based tests and corpora).
pub fn sample_probe() -> Probe {
    Probe {
        small: 7,
        id: 0xdead_beef,
        signed: -5,
        flag: true,
        letter: 'λ',
        ratio: 0.25,
        note: "hello".into(),
        shares: vec![0, 1, u64::MAX],
        blob: Some(vec![1, 2, 3]),
        nested: vec![vec![], vec![9, 10]],
        pair: (3, -1),
        kinds: vec![
            ProbeKind::Empty,
            ProbeKind::Count(4),
            ProbeKind::Pair(1, "x".into()),
            ProbeKind::Named {
                name: "n".into(),
                values: vec![-1, 2],
            },
        ],
    }
}

/// [`crate::message::decode`] of a typed message from a frame payload:
/// either [`NetError::Malformed`], or a value that re-encodes to exactly the
/// payload (the encoding is canonical: fixed-width integers, no trailing
/// bytes).
pub fn message_decode(data: &[u8]) {
    match decode::<Probe>(data) {
        Ok(p) => {
            let again = encode(&p, u32::MAX).expect("a decoded message encodes");
            assert_eq!(again, data, "decode then encode changed the bytes");
        }
        Err(NetError::Malformed(_)) => {}
        Err(e) => panic!("message decode failed with a non-malformed error: {e:?}"),
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
}

/// The frame reader ([`FrameReceiver`]) over a byte stream: the first byte
/// chooses the frame limit (`8 * byte`), the rest is the stream. Frames are
/// read until the first error, which must be [`NetError::PeerClosed`] exactly
/// at a frame boundary at the end of the stream, [`NetError::FrameTooLarge`]
/// for a header above the limit, or [`NetError::Malformed`] for a stream cut
/// inside a frame; afterwards the receiver reports [`NetError::StreamBroken`]
/// (or [`NetError::PeerClosed`] again). The frames read are exactly the
/// stream's bytes, in order.
pub fn frame_reader(data: &[u8]) {
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    let max = u32::from(limit) * 8;
    let config = MessageConfig {
        max_frame_bytes: max,
        recv_timeout: Duration::from_secs(5),
        send_timeout: Duration::from_secs(5),
    };
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let mut rx = FrameReceiver::new(stream, None, config);
            let mut pos = 0usize;
            let err = loop {
                match rx.recv_frame().await {
                    Ok(body) => {
                        assert!(body.len() <= max as usize, "frame above the limit");
                        let len = u32::from_be_bytes(
                            stream[pos..pos + HEADER_BYTES]
                                .try_into()
                                .expect("four bytes"),
                        ) as usize;
                        assert_eq!(body.len(), len, "frame length differs from its header");
                        pos += HEADER_BYTES;
                        assert_eq!(&stream[pos..pos + len], &body[..], "frame body differs");
                        pos += len;
                    }
                    Err(e) => break e,
                }
            };
            let rest = &stream[pos..];
            match err {
                NetError::PeerClosed => {
                    assert!(rest.is_empty(), "peer closed reported inside the stream");
                    assert!(matches!(rx.recv_frame().await, Err(NetError::PeerClosed)));
                }
                NetError::FrameTooLarge { len, max: m } => {
                    assert!(rest.len() >= HEADER_BYTES && len > m && m == u64::from(max));
                    let announced =
                        u32::from_be_bytes(rest[..HEADER_BYTES].try_into().expect("four bytes"));
                    assert_eq!(u64::from(announced), len);
                    assert!(matches!(rx.recv_frame().await, Err(NetError::StreamBroken)));
                }
                NetError::Malformed(_) => {
                    let cut_header = !rest.is_empty() && rest.len() < HEADER_BYTES;
                    let cut_body = rest.len() >= HEADER_BYTES
                        && u32::from_be_bytes(rest[..HEADER_BYTES].try_into().expect("four"))
                            as usize
                            > rest.len() - HEADER_BYTES;
                    assert!(
                        cut_header || cut_body,
                        "malformed reported for a whole frame"
                    );
                    assert!(matches!(rx.recv_frame().await, Err(NetError::StreamBroken)));
                }
                e => panic!("frame reader failed with an unexpected error: {e:?}"),
            }
        })
    });
}

/// Valid inputs for each target (seeds for the fuzzer's corpus and the
/// mutation tests): `(target, input)`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let probe = encode(&sample_probe(), u32::MAX).expect("the probe encodes");
    let mut stream = vec![64u8];
    for p in [&[1u8, 2][..], &[], &[7; 100], &probe[..20]] {
        stream.extend_from_slice(&(p.len() as u32).to_be_bytes());
        stream.extend_from_slice(p);
    }
    vec![("net_message_decode", probe), ("net_frame_reader", stream)]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Applies byte edits, an optional cut and an optional append to `valid`.
    fn mutate(
        mut bytes: Vec<u8>,
        edits: &[(prop::sample::Index, u8)],
        cut: Option<prop::sample::Index>,
        tail: &[u8],
    ) -> Vec<u8> {
        if !bytes.is_empty() {
            for (at, v) in edits {
                let i = at.index(bytes.len());
                bytes[i] = *v;
            }
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len() + 1));
        }
        bytes.extend_from_slice(tail);
        bytes
    }

    fn frames(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_payloads_decode_or_are_malformed(data in prop::collection::vec(any::<u8>(), 0..256)) {
            message_decode(&data);
        }

        #[test]
        fn mutated_messages_decode_canonically_or_are_malformed(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in prop::option::of(any::<prop::sample::Index>()),
            tail in prop::collection::vec(any::<u8>(), 0..3),
        ) {
            let valid = encode(&sample_probe(), u32::MAX).expect("encode");
            message_decode(&mutate(valid, &edits, cut, &tail));
        }

        #[test]
        fn random_streams_split_into_frames_or_fail_with_the_right_error(
            data in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            frame_reader(&data);
        }

        #[test]
        fn mutated_frame_streams_split_into_frames_or_fail_with_the_right_error(
            limit in any::<u8>(),
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..5),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let mut stream = vec![limit];
            stream.extend(mutate(frames(&payloads), &edits, cut, &[]));
            frame_reader(&stream);
        }
    }

    #[test]
    fn valid_probe_round_trips_through_the_decoder() {
        let bytes = encode(&sample_probe(), u32::MAX).expect("encode");
        assert_eq!(decode::<Probe>(&bytes).expect("decode"), sample_probe());
        message_decode(&bytes);
    }

    #[test]
    fn seeds_are_valid_inputs_of_their_targets() {
        let seeds = seeds();
        decode::<Probe>(&seeds[0].1).expect("the probe decodes");
        message_decode(&seeds[0].1);
        frame_reader(&seeds[1].1);
        if let Some(dir) = std::env::var_os("FUSION_WRITE_FUZZ_SEEDS") {
            for (i, (name, bytes)) in seeds.iter().enumerate() {
                let d = std::path::Path::new(&dir).join(name);
                std::fs::create_dir_all(&d).expect("seed dir");
                std::fs::write(d.join(format!("seed-{i}")), bytes).expect("write seed");
            }
        }
    }

    #[test]
    fn a_stream_of_whole_frames_reads_back_every_frame() {
        let mut stream = vec![255u8];
        stream.extend(frames(&[vec![1, 2], vec![], vec![7; 100]]));
        frame_reader(&stream);
    }
}
