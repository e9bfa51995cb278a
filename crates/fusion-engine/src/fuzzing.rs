//! Fuzzing entry points for the decoders of peer bytes in this crate: the
//! session's control messages ([`crate::wire`]: [`ClientMsg`] on the server,
//! [`ServerMsg`] with the hello's validation on the client) and the cheetah
//! backend's announcement ([`crate::backend::Backend::join`]).
//!
//! Each function takes arbitrary bytes, runs one decoder on them and checks
//! its contract, panicking if the contract is broken (a panic is what a
//! fuzzer reports). The cargo-fuzz targets in `fuzz/` call these functions;
//! the crate's own tests call them with seeded random and mutated valid
//! inputs. Compiled for tests and with the `fuzzing` feature only.
//!
//! The contract: no panic; a decoding error is [`NetError::Malformed`], a
//! validation error [`SecureError::Malformed`] or [`SecureError::Mismatch`]
//! (or, for announced HE parameters the planner refuses, the HE parameter
//! errors); what decodes re-encodes to bytes that decode to the same value
//! (the hello carries JSON text, whose spacing is not canonical, so byte
//! identity holds for the client's messages only); frames are bounded by the
//! message layer, and nothing decoded is larger than the frame.

use fusion_he::HeError;
use fusion_net::NetError;
use fusion_net::message::{decode, encode};
use fusion_nn::fixed::{FixedProgram, PublicProgram};

use crate::backend::Backend;
use crate::backends::cheetah::Cheetah;
use crate::config::{ClientPolicy, SessionParams};
use crate::error::SecureError;
use crate::wire::{ClientHello, ClientMsg, ModelInfo, PROTOCOL, ServerHello, ServerMsg, VERSION};

/// A served program and its cheetah announcement (built once per thread).
pub struct Fixture {
    /// The zoo's `mlp-bc`, lowered.
    pub program: FixedProgram,
    /// Its public view.
    pub public: PublicProgram,
    /// The cheetah backend's announcement for it.
    pub announcement: String,
}

thread_local! {
    static FIXTURE: Fixture = {
        let model = fusion_nn::zoo::build("mlp-bc", 1).expect("zoo model");
        let program = fusion_nn::fixed::lower(&model, fusion_nn::eval::default_fixed_point())
            .expect("lowering");
        let public = program.public();
        let (_, announcement) = Cheetah::default().serve(&program).expect("cheetah serves");
        Fixture { program, public, announcement }
    };
}

/// Runs `f` with this thread's fixture.
pub fn with_fixture<T>(f: impl FnOnce(&Fixture) -> T) -> T {
    FIXTURE.with(f)
}

fn is_validation_error(e: &SecureError) -> bool {
    matches!(e, SecureError::Malformed(_) | SecureError::Mismatch(_))
}

fn is_refused_params(e: &SecureError) -> bool {
    is_validation_error(e)
        || matches!(
            e,
            SecureError::He(
                HeError::InvalidParams(_)
                    | HeError::InsecureModulus { .. }
                    | HeError::InsufficientFlooding { .. }
                    | HeError::InvalidShape(_)
            )
        )
}

/// The server's decoding of a client message: [`NetError::Malformed`] or a
/// message that re-encodes to exactly the frame (the client's messages have
/// no JSON inside, so their bincode form is canonical).
pub fn client_msg(data: &[u8]) {
    match decode::<ClientMsg>(data) {
        Ok(m) => {
            let again = encode(&m, u32::MAX).expect("a decoded message encodes");
            assert_eq!(again, data, "decode then encode changed the bytes");
            if let ClientMsg::Hello(h) = &m {
                // The server's first check of a hello.
                if let Err(e) = crate::wire::check_protocol(&h.protocol, h.version) {
                    assert!(is_validation_error(&e), "unexpected error {e:?}");
                }
            }
        }
        Err(NetError::Malformed(_)) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// The client's decoding of a server message, then, for a hello, its
/// validation ([`ServerHello::validate`] with the default policy) and the
/// cheetah backend's check of the announcement.
pub fn server_msg(data: &[u8]) {
    let m = match decode::<ServerMsg>(data) {
        Ok(m) => m,
        Err(NetError::Malformed(_)) => return,
        Err(e) => panic!("unexpected error {e:?}"),
    };
    let again = encode(&m, u32::MAX).expect("a decoded message encodes");
    let back: ServerMsg = decode(&again).expect("a re-encoded message decodes");
    assert_eq!(
        encode(&back, u32::MAX).expect("encodes"),
        again,
        "decode(encode(m)) differs from m"
    );
    if let ServerMsg::Hello(h) = &m {
        match h.validate(&ClientPolicy::default()) {
            Ok(()) => {
                if let Err(e) = Cheetah::default().join(&h.program, &h.announcement) {
                    assert!(is_refused_params(&e), "unexpected error {e:?}");
                }
            }
            Err(e) => assert!(is_validation_error(&e), "unexpected error {e:?}"),
        }
    }
}

/// The cheetah backend's check of an announcement (arbitrary text, as the
/// server may send it) for the fixture's program: accepted, or refused as
/// malformed, mismatched, or as HE parameters the planner refuses.
pub fn announcement(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    with_fixture(|fx| {
        if let Err(e) = Cheetah::default().join(&fx.public, text) {
            assert!(is_refused_params(&e), "unexpected error {e:?}");
        }
    })
}

/// A valid hello for the fixture's program.
pub fn sample_hello() -> ServerHello {
    with_fixture(|fx| ServerHello {
        protocol: PROTOCOL.into(),
        version: VERSION,
        model: ModelInfo {
            name: "mlp-bc".into(),
            description: "a test model".into(),
            classes: 2,
            preprocess: fusion_nn::model::Preprocess::Identity,
            output_error_bound: Some(0.01),
            input_bound: Some(1.0),
            value_bits: crate::server::announced_value_bits(&fx.program, Some(1.0)),
            output_mode: crate::output_mode::OutputMode::Logits,
        },
        program: fx.public.clone(),
        session: SessionParams {
            chunk: 16,
            max_batch: 1000,
        },
        backend: "cheetah".into(),
        announcement: fx.announcement.clone(),
        stat_sec: Some(crate::statsec::SessionFlooding {
            per_coefficient_bits: 40,
            max_revealed: 1 << 30,
        }),
    })
}

/// Valid inputs for each target (seeds for the fuzzer's corpus and the
/// mutation tests): `(target, input)`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let enc = |m: &dyn erased::Encode| m.encode();
    let mut out = vec![
        (
            "engine_client_msg",
            enc(&ClientMsg::Hello(ClientHello::new(16, "cheetah"))),
        ),
        (
            "engine_client_msg",
            enc(&ClientMsg::Batch(crate::wire::BatchRequest { samples: 5 })),
        ),
        ("engine_client_msg", enc(&ClientMsg::Finish)),
        (
            "engine_server_msg",
            enc(&ServerMsg::Hello(Box::new(sample_hello()))),
        ),
        (
            "engine_server_msg",
            enc(&ServerMsg::Unavailable {
                requested: "x".into(),
                offered: vec!["cheetah".into()],
            }),
        ),
        (
            "engine_server_msg",
            enc(&ServerMsg::Goodbye(Box::new(crate::wire::SessionEnd {
                batches: 1,
                samples: 2,
                report: fusion_net::Meter::new(fusion_net::Party::Server).report(),
            }))),
        ),
    ];
    out.push((
        "engine_announcement",
        with_fixture(|fx| fx.announcement.clone().into_bytes()),
    ));
    out
}

mod erased {
    /// Encodes any message (for the seed list).
    pub trait Encode {
        fn encode(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Vec<u8> {
            fusion_net::message::encode(self, u32::MAX).expect("encodes")
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::ChaCha20Rng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn target(name: &str) -> fn(&[u8]) {
        match name {
            "engine_client_msg" => client_msg,
            "engine_server_msg" => server_msg,
            "engine_announcement" => announcement,
            _ => panic!("no target {name}"),
        }
    }

    #[test]
    fn valid_messages_decode_validate_and_reencode() {
        let seeds = seeds();
        for (name, bytes) in &seeds {
            target(name)(bytes);
        }
        let hello = sample_hello();
        hello
            .validate(&ClientPolicy::default())
            .expect("the sample hello is valid");
        with_fixture(|fx| {
            Cheetah::default()
                .join(&fx.public, &fx.announcement)
                .expect("the announcement is accepted");
        });
        if let Some(dir) = std::env::var_os("FUSION_WRITE_FUZZ_SEEDS") {
            for (i, (name, bytes)) in seeds.iter().enumerate() {
                let d = std::path::Path::new(&dir).join(name);
                std::fs::create_dir_all(&d).expect("seed dir");
                std::fs::write(d.join(format!("seed-{i}")), bytes).expect("write seed");
            }
        }
    }

    #[test]
    fn the_output_mode_travels_in_the_hello_and_an_unknown_mode_is_refused() {
        use crate::output_mode::OutputMode;
        let bytes = |mode: OutputMode| {
            let mut h = sample_hello();
            h.model.output_mode = mode;
            encode(&ServerMsg::Hello(Box::new(h)), u32::MAX).expect("encodes")
        };
        let (logits, label) = (bytes(OutputMode::Logits), bytes(OutputMode::Label));
        match decode::<ServerMsg>(&label).expect("decodes") {
            ServerMsg::Hello(h) => assert_eq!(h.model.output_mode, OutputMode::Label),
            other => panic!("not a hello: {}", other.kind()),
        }
        // The mode is one byte apart; any other value is refused as malformed.
        assert_eq!(logits.len(), label.len());
        let at: Vec<usize> = (0..label.len())
            .filter(|&i| logits[i] != label[i])
            .collect();
        assert_eq!(at.len(), 1, "{at:?}");
        let mut bad = label.clone();
        bad[at[0]] = 7;
        assert!(matches!(
            decode::<ServerMsg>(&bad),
            Err(NetError::Malformed(_))
        ));
    }

    #[test]
    fn random_and_mutated_messages_decode_or_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let seeds = seeds();
        for _ in 0..400 {
            let (name, mut bytes) = seeds[rng.random_range(0..seeds.len())].clone();
            if rng.random_bool(0.2) {
                let len = rng.random_range(0..64);
                bytes = (0..len).map(|_| rng.random()).collect();
            } else {
                for _ in 0..rng.random_range(0..3) {
                    if bytes.is_empty() {
                        break;
                    }
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] = rng.random();
                }
                if rng.random_bool(0.1) {
                    let at = rng.random_range(0..=bytes.len());
                    bytes.truncate(at);
                }
            }
            target(name)(&bytes);
        }
    }
}
