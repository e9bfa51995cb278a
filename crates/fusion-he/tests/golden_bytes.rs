//! Every message of a layer call under fixed seeds, against digests taken
//! before the samplers and the noise arithmetic were made branch-free: the
//! constant-time forms draw the same randomness and compute the same values.
//!
//! The queries' digests were retaken when queries moved to their rounded,
//! coefficient-form encoding (`fusion_he::query_rounding`): at `d = 0` the same
//! `b` travels as integers modulo `q` instead of NTT residues, and the reply and
//! the server's share, which the server computes from the decoded `b`, kept
//! their digests from the branching samplers.

use fusion_core::ring::Ring;
use fusion_he::{
    DEFAULT_PACKING_LEVELS, FcShape, HeClient, HeServer, LinearPlan, PlanOptions, Preset,
    ServerLinear,
};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

/// FNV-1a, 64 bits.
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Digests of the public key, the Galois keys, the query, the reply and the
/// server's share for one FC call (`packing`: with response packing).
fn call_digests(packing: bool) -> [u64; 5] {
    let ring = Ring::new(37).expect("ring");
    let mut b = Preset::N4096.builder(ring);
    if packing {
        b = b.reply_packing(DEFAULT_PACKING_LEVELS);
    }
    let params = b.build().expect("params");
    let opts = if packing {
        PlanOptions::minimise_bytes()
    } else {
        PlanOptions::default()
    };
    let plan = LinearPlan::fc(&params, FcShape::new(4, 64, 16), &opts).expect("plan");
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    let client = HeClient::new(&params, &mut rng);
    let (pk, gk) = client.setup_messages(&mut rng).expect("setup");
    let server =
        HeServer::from_setup_messages(&params, pk.as_bytes(), gk.as_ref().map(|g| g.as_bytes()))
            .expect("server");
    let weights: Vec<u64> = (0..64 * 16u64)
        .map(|i| ring.from_signed((i % 7) as i64 - 3))
        .collect();
    let layer = ServerLinear::fc(plan.clone(), &weights, None).expect("layer");
    let x: Vec<u64> = (0..4 * 64u64)
        .map(|i| ring.reduce(i * 0x9e37_79b9))
        .collect();
    let query = client.query_bytes(&plan, &x, &mut rng).expect("query");
    let (reply, share) = layer
        .respond_bytes(&server, &query, None, &mut rng)
        .expect("reply");
    let share_bytes: Vec<u8> = share.iter().flat_map(|v| v.to_le_bytes()).collect();
    [
        digest(pk.as_bytes()),
        gk.map_or(0, |g| digest(g.as_bytes())),
        digest(&query),
        digest(reply.as_bytes()),
        digest(&share_bytes),
    ]
}

#[test]
fn layer_call_messages_are_bit_identical_to_the_branching_samplers_output() {
    let got = [call_digests(false), call_digests(true)];
    assert_eq!(got, GOLDEN);
}

/// Taken at commit 8cc0e5f (branching samplers).
const GOLDEN: [[u64; 5]; 2] = [
    [
        0x219d_1fd5_226f_ee47,
        0,
        0x1b1d_8fe2_8e66_4207, // query (rounded encoding, d = 0)
        0x374e_9670_8b74_5f9c,
        0x1c01_3909_60b9_e2d3,
    ],
    [
        0x8a26_e571_1292_355c,
        0x91e7_e45d_a399_b0cb,
        0x6faf_0f3b_7d26_99d7, // query (rounded encoding, d = 0)
        0xe9d0_17a3_f7e3_6e34,
        0x1d32_e6e7_d319_ce5f,
    ],
];
