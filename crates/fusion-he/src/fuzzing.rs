//! Fuzzing entry points for the decoders of peer bytes in this crate
//! ([`crate::wire`]): the public key, the Galois keys, a query and a reply
//! (checked, then decrypted by a fixed client).
//!
//! Each function takes arbitrary bytes, runs one decoder on them and checks
//! its contract, panicking if the contract is broken (a panic is what a
//! fuzzer reports). The cargo-fuzz targets in `fuzz/` call these functions;
//! the crate's own tests call them with seeded random and mutated valid
//! inputs. Compiled for tests and with the `fuzzing` feature only.
//!
//! The contract of every decoder: no panic; an error is one of the
//! malformed-peer-data variants ([`HeError::MessageLength`],
//! [`HeError::Malformed`], [`HeError::CoefficientOutOfRange`]) or, for the
//! parameter fingerprint of a key, [`HeError::ParamMismatch`]; what decodes
//! re-encodes to the same bytes; nothing is allocated before the length has
//! been checked against the public parameters (so at most the input's size).
//!
//! The parameters are small (`N = 1024`, two 30-bit primes, built
//! without the security checks) so that a fuzzer finds the exact lengths.
//!
//! The SIMD path ([`crate::simd`]) has its own entry points
//! ([`simd_public_key`], [`simd_galois_keys`], [`simd_query`], [`simd_reply`],
//! seeds from [`simd_seeds`]) with the same contract, on the `N = 8192` preset
//! (its noise budget refuses smaller rings), one Galois element and small
//! plans.

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use crate::error::HeError;
use crate::fc::FcShape;
use crate::params::{HeParams, ParamsBuilder};
use crate::plan::{LinearPlan, PlanOptions};
use crate::wire::{GaloisKeyMsg, PublicKeyMsg, Query};
use crate::{Conv2dShape, HeClient, Padding};
use fusion_core::ring::Ring;

/// Parameters, plans and a client shared by every call (built once per thread).
pub struct Fixture {
    /// `N = 1024`, two 30-bit primes, no packing.
    pub params: HeParams,
    /// `N = 1024`, two 30-bit primes, one packing level.
    pub packed_params: HeParams,
    /// Plans whose replies the reply target decodes (index: first input byte).
    pub plans: Vec<LinearPlan>,
    /// A client for `params`.
    pub client: HeClient,
    /// A client for `packed_params`.
    pub packed_client: HeClient,
    /// A plan whose queries are rounded to multiples of `2^7`
    /// ([`crate::query_rounding`]), and its client.
    pub rounded: (LinearPlan, HeClient),
}

impl Fixture {
    fn new() -> Self {
        let ring = Ring::new(16).expect("ring");
        let params = ParamsBuilder::new(ring, 10, vec![30, 30]).build_unchecked();
        let packed_params = ParamsBuilder::new(ring, 10, vec![30, 30])
            .reply_packing(1)
            .build_unchecked();
        let opts = PlanOptions::default();
        let plans = vec![
            LinearPlan::fc(&params, FcShape::new(1, 16, 8), &opts).expect("fc plan"),
            LinearPlan::conv2d(
                &params,
                Conv2dShape::new(1, 2, 6, 6, 2, 3, 1, Padding::Same),
                &opts,
            )
            .expect("conv plan"),
            LinearPlan::fc(
                &packed_params,
                FcShape::new(4, 16, 8),
                &PlanOptions::minimise_bytes(),
            )
            .expect("packed fc plan"),
        ];
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let client = HeClient::new(&params, &mut rng);
        let packed_client = HeClient::new(&packed_params, &mut rng);
        let rounded_params = ParamsBuilder::new(ring, 10, vec![30, 30])
            .query_rounding(7)
            .build_unchecked();
        let rounded = (
            LinearPlan::fc(&rounded_params, FcShape::new(1, 16, 8), &opts).expect("rounded plan"),
            HeClient::new(&rounded_params, &mut rng),
        );
        Fixture {
            params,
            packed_params,
            plans,
            client,
            packed_client,
            rounded,
        }
    }

    /// The client whose parameters are `plan`'s.
    pub fn client_for(&self, plan: &LinearPlan) -> &HeClient {
        if *plan.params() == self.params {
            &self.client
        } else {
            &self.packed_client
        }
    }
}

thread_local! {
    static FIXTURE: Fixture = Fixture::new();
}

/// Runs `f` with this thread's fixture.
pub fn with_fixture<T>(f: impl FnOnce(&Fixture) -> T) -> T {
    FIXTURE.with(f)
}

fn is_peer_data_error(e: &HeError) -> bool {
    matches!(
        e,
        HeError::MessageLength { .. }
            | HeError::Malformed { .. }
            | HeError::CoefficientOutOfRange { .. }
    )
}

/// [`PublicKeyMsg::decode`]: a peer data error, a fingerprint mismatch, or a
/// key that re-encodes to exactly the input.
pub fn public_key(data: &[u8]) {
    with_fixture(|fx| match PublicKeyMsg::decode(&fx.params, data) {
        Ok(pk) => assert_eq!(PublicKeyMsg::encode(&pk).as_bytes(), data, "re-encoding"),
        Err(HeError::ParamMismatch(_)) => {}
        Err(e) => assert!(is_peer_data_error(&e), "unexpected error {e:?}"),
    })
}

/// [`GaloisKeyMsg::decode`] (packing parameters): as [`public_key`].
pub fn galois_keys(data: &[u8]) {
    with_fixture(|fx| match GaloisKeyMsg::decode(&fx.packed_params, data) {
        Ok(gk) => assert_eq!(GaloisKeyMsg::encode(&gk).as_bytes(), data, "re-encoding"),
        Err(HeError::ParamMismatch(_)) => {}
        Err(e) => assert!(is_peer_data_error(&e), "unexpected error {e:?}"),
    })
}

/// [`Query::from_bytes`] for the first plan and for the plan with rounded
/// queries: each a peer data error or a query that re-encodes to exactly the
/// input.
pub fn query(data: &[u8]) {
    with_fixture(|fx| {
        for plan in [&fx.plans[0], &fx.rounded.0] {
            match Query::from_bytes(plan, data) {
                Ok(q) => assert_eq!(q.to_bytes(plan), data, "re-encoding"),
                Err(e) => assert!(is_peer_data_error(&e), "unexpected error {e:?}"),
            }
        }
    })
}

/// [`HeClient::decrypt_bytes`] of a reply: the first byte picks the plan, the
/// rest is the reply. A peer data error, or an output share of the layer's
/// output length with every value in the ring.
pub fn reply(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    with_fixture(|fx| {
        let plan = &fx.plans[pick as usize % fx.plans.len()];
        let client = fx.client_for(plan);
        match client.decrypt_bytes(plan, bytes.to_vec()) {
            Ok(out) => {
                assert_eq!(out.len(), plan.output_len(), "output length");
                let ring = plan.params().ring();
                assert!(
                    out.iter().all(|&v| ring.contains(v)),
                    "output outside the ring"
                );
            }
            Err(e) => assert!(is_peer_data_error(&e), "unexpected error {e:?}"),
        }
    })
}

/// Valid messages for each target (seeds for the fuzzer's corpus and the
/// mutation tests): `(target, input)`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    with_fixture(|fx| {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mut out = vec![
            (
                "he_public_key",
                fx.client.public_key_msg().as_bytes().to_vec(),
            ),
            (
                "he_galois_keys",
                fx.packed_client
                    .galois_key_msg(&mut rng)
                    .expect("galois keys")
                    .as_bytes()
                    .to_vec(),
            ),
        ];
        let plan = &fx.plans[0];
        let x: Vec<u64> = (0..plan.input_len()).map(|i| i as u64).collect();
        out.push((
            "he_query",
            fx.client.query_bytes(plan, &x, &mut rng).expect("query"),
        ));
        for (i, plan) in fx.plans.iter().enumerate() {
            let len = crate::wire::Reply::expected_len(plan);
            let mut r = vec![0u8; len];
            r[0] = crate::wire::TAG_REPLY;
            r[1..5].copy_from_slice(&(plan.output_cts() as u32).to_le_bytes());
            let mut input = vec![i as u8];
            input.extend(r);
            out.push(("he_reply", input));
        }
        let (plan, client) = &fx.rounded;
        let x: Vec<u64> = (0..plan.input_len()).map(|i| 3 * i as u64).collect();
        out.push((
            "he_query",
            client
                .query_bytes(plan, &x, &mut rng)
                .expect("rounded query"),
        ));
        out
    })
}

/// The SIMD fixture: the `N = 8192` preset, a client, its keys for one
/// Galois element, and a per-channel affine and a small FC plan.
pub struct SimdFixture {
    /// The parameters.
    pub params: crate::simd::SimdParams,
    /// A client.
    pub client: crate::simd::SimdClient,
    /// The Galois set of the keys (one element).
    pub set: crate::simd::GaloisSet,
    /// Plans whose queries and replies the targets decode.
    pub plans: Vec<crate::simd::SimdPlan>,
}

impl SimdFixture {
    fn new() -> Self {
        use crate::simd::{GaloisSet, SimdClient, SimdPlan, SimdPreset};
        let params = SimdPreset::N8192.params().expect("simd params");
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let client = SimdClient::new(&params, &mut rng);
        let n = params.degree();
        let set =
            GaloisSet::from_elements(n, vec![crate::simd::rotation_element(n, 1)]).expect("set");
        let plans = vec![
            SimdPlan::affine(
                &params,
                crate::BatchNormShape {
                    batch: 1,
                    channels: 2,
                    height: 3,
                    width: 3,
                },
            )
            .expect("affine plan"),
            SimdPlan::fc(&params, FcShape::new(1, 8, 2)).expect("fc plan"),
        ];
        SimdFixture {
            params,
            client,
            set,
            plans,
        }
    }
}

thread_local! {
    static SIMD_FIXTURE: SimdFixture = SimdFixture::new();
}

/// Runs `f` with this thread's SIMD fixture.
pub fn with_simd_fixture<T>(f: impl FnOnce(&SimdFixture) -> T) -> T {
    SIMD_FIXTURE.with(f)
}

/// [`crate::simd::wire::decode_public_key`]: a peer data error, a
/// fingerprint mismatch, or a key that re-encodes to exactly the input.
pub fn simd_public_key(data: &[u8]) {
    with_simd_fixture(
        |fx| match crate::simd::wire::decode_public_key(&fx.params, data) {
            Ok(pk) => assert_eq!(
                crate::simd::wire::encode_public_key(&fx.params, &pk),
                data,
                "re-encoding"
            ),
            Err(HeError::ParamMismatch(_)) => {}
            Err(e) => assert!(is_peer_data_error(&e), "unexpected error {e:?}"),
        },
    )
}

/// [`crate::simd::wire::decode_galois_keys`]: as [`simd_public_key`].
pub fn simd_galois_keys(data: &[u8]) {
    with_simd_fixture(
        |fx| match crate::simd::wire::decode_galois_keys(&fx.params, data) {
            Ok(gk) => assert_eq!(
                crate::simd::wire::encode_galois_keys(&gk),
                data,
                "re-encoding"
            ),
            Err(HeError::ParamMismatch(_)) => {}
            Err(e) => assert!(is_peer_data_error(&e), "unexpected error {e:?}"),
        },
    )
}

/// [`crate::simd::SimdQuery::from_bytes`] for the first plan: a peer data
/// error or a query that re-encodes to exactly the input.
pub fn simd_query(data: &[u8]) {
    with_simd_fixture(|fx| {
        let plan = &fx.plans[0];
        match crate::simd::SimdQuery::from_bytes(plan, data) {
            Ok(q) => assert_eq!(q.to_bytes(plan), data, "re-encoding"),
            Err(e) => assert!(is_peer_data_error(&e), "unexpected error {e:?}"),
        }
    })
}

/// [`crate::simd::SimdClient::decrypt_bytes`]: the first byte picks the
/// plan, the rest is the reply. A peer data error, or an output share of the
/// layer's length with every value below `p`.
pub fn simd_reply(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    with_simd_fixture(|fx| {
        let plan = &fx.plans[pick as usize % fx.plans.len()];
        match fx.client.decrypt_bytes(plan, bytes.to_vec()) {
            Ok(out) => {
                assert_eq!(out.len(), plan.layer().output_len(), "output length");
                let f = fx.params.field();
                assert!(out.iter().all(|&v| f.contains(v)), "output outside Z_p");
            }
            Err(e) => assert!(is_peer_data_error(&e), "unexpected error {e:?}"),
        }
    })
}

/// Valid SIMD messages for each target: `(target, input)`.
pub fn simd_seeds() -> Vec<(&'static str, Vec<u8>)> {
    with_simd_fixture(|fx| {
        let mut rng = ChaCha20Rng::seed_from_u64(19);
        let (pk, gk) = fx.client.setup_messages(&fx.set, &mut rng);
        let plan = &fx.plans[0];
        let x: Vec<u64> = (0..plan.layer().input_len()).map(|i| i as u64).collect();
        let mut out = vec![
            ("simd_public_key", pk),
            ("simd_galois_keys", gk),
            (
                "simd_query",
                fx.client.query_bytes(plan, &x, &mut rng).expect("query"),
            ),
        ];
        for (i, plan) in fx.plans.iter().enumerate() {
            let mut r = vec![0u8; plan.reply_bytes_len()];
            r[0] = crate::simd::wire::TAG_REPLY;
            r[1..5].copy_from_slice(&(plan.output_cts() as u32).to_le_bytes());
            let mut input = vec![i as u8];
            input.extend(r);
            out.push(("simd_reply", input));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::RngExt;

    use super::*;

    fn target(name: &str) -> fn(&[u8]) {
        match name {
            "he_public_key" => public_key,
            "he_galois_keys" => galois_keys,
            "he_query" => query,
            "he_reply" => reply,
            _ => panic!("no target {name}"),
        }
    }

    #[test]
    fn valid_messages_decode_and_reencode_identically() {
        let seeds = seeds();
        for (name, bytes) in &seeds {
            target(name)(bytes);
        }
        with_fixture(|fx| {
            let pk = &seeds[0].1;
            PublicKeyMsg::decode(&fx.params, pk).expect("the client's key decodes");
            let q = &seeds[2].1;
            Query::from_bytes(&fx.plans[0], q).expect("the client's query decodes");
            let rq = &seeds.last().expect("seeds").1;
            Query::from_bytes(&fx.rounded.0, rq).expect("the rounded query decodes");
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
    fn out_of_range_residues_are_reported_as_such() {
        let mut pk = seeds()[0].1.clone();
        with_fixture(|fx| {
            let off = 7 + fx.params.fingerprint().len() + 32;
            // The first residue: 30 bits of ones, above the prime.
            pk[off..off + 3].fill(0xff);
            pk[off + 3] |= 0x3f;
            assert!(matches!(
                PublicKeyMsg::decode(&fx.params, &pk),
                Err(HeError::CoefficientOutOfRange { index: 0, .. })
            ));
        });
        public_key(&pk);
    }

    #[test]
    fn rounded_query_coefficients_above_the_largest_value_are_reported_as_such() {
        let mut q = seeds().last().expect("seeds").1.clone();
        with_fixture(|fx| {
            let plan = &fx.rounded.0;
            // 37 header and seed bytes, then the first coefficient: all ones.
            let bits = plan.params().query_coeff_bits() as usize;
            q[37..37 + bits.div_ceil(8)].fill(0xff);
            assert!(matches!(
                Query::from_bytes(plan, &q),
                Err(HeError::CoefficientOutOfRange { index: 0, .. })
            ));
        });
        query(&q);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_bytes_are_rejected_as_peer_data_errors(
            data in prop::collection::vec(any::<u8>(), 0..64),
            which in 0usize..4,
        ) {
            let name = ["he_public_key", "he_galois_keys", "he_query", "he_reply"][which];
            target(name)(&data);
        }

        #[test]
        fn mutated_messages_decode_canonically_or_are_peer_data_errors(
            which in 0usize..7,
            seed in any::<u64>(),
            edits in 0usize..6,
            cut in any::<bool>(),
        ) {
            let seeds = seeds();
            let (name, mut bytes) = seeds[which % seeds.len()].clone();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            for _ in 0..edits {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            if cut {
                let at = rng.random_range(0..=bytes.len());
                bytes.truncate(at);
            }
            target(name)(&bytes);
        }
    }

    fn simd_target(name: &str) -> fn(&[u8]) {
        match name {
            "simd_public_key" => simd_public_key,
            "simd_galois_keys" => simd_galois_keys,
            "simd_query" => simd_query,
            "simd_reply" => simd_reply,
            _ => panic!("no target {name}"),
        }
    }

    #[test]
    fn valid_simd_messages_decode_and_reencode_identically() {
        let seeds = simd_seeds();
        for (name, bytes) in &seeds {
            simd_target(name)(bytes);
        }
        with_simd_fixture(|fx| {
            crate::simd::wire::decode_public_key(&fx.params, &seeds[0].1).expect("pk decodes");
            crate::simd::wire::decode_galois_keys(&fx.params, &seeds[1].1).expect("gk decodes");
            crate::simd::SimdQuery::from_bytes(&fx.plans[0], &seeds[2].1).expect("query decodes");
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn random_bytes_are_rejected_as_simd_peer_data_errors(
            data in prop::collection::vec(any::<u8>(), 0..96),
            which in 0usize..4,
        ) {
            let name = ["simd_public_key", "simd_galois_keys", "simd_query", "simd_reply"][which];
            simd_target(name)(&data);
        }

        #[test]
        fn mutated_simd_messages_decode_canonically_or_are_peer_data_errors(
            which in 0usize..5,
            seed in any::<u64>(),
            edits in 0usize..6,
            cut in any::<bool>(),
        ) {
            let seeds = simd_seeds();
            let (name, mut bytes) = seeds[which % seeds.len()].clone();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            for _ in 0..edits {
                // Half of the edits hit the headers, where the checks are.
                let i = if rng.random::<bool>() {
                    rng.random_range(0..bytes.len().min(64))
                } else {
                    rng.random_range(0..bytes.len())
                };
                bytes[i] = rng.random();
            }
            if cut {
                let at = rng.random_range(0..=bytes.len());
                bytes.truncate(at);
            }
            simd_target(name)(&bytes);
        }
    }
}
