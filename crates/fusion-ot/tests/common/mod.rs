//! Shared helpers of the integration tests: a pair of engines over a local
//! QUIC connection, sharing and reconstruction, edge values.
#![allow(dead_code, clippy::unwrap_used)]

use cryprot_net::testing::local_conn;
use fusion_core::ring::Ring;
use fusion_ot::{Bits, OtConfig, OtEngine, OtFlavour, Role};
use rand::{SeedableRng, rngs::ChaCha20Rng};

/// Test configuration: small refills keep the tests fast.
pub fn test_config() -> OtConfig {
    OtConfig {
        min_refill: 1 << 13,
        ..OtConfig::default()
    }
}

/// CryProt's OT receivers block a rayon worker while they wait for the
/// network; with both parties of several concurrently running tests in one
/// process, the default pool (one thread per core) can run out. Give the
/// global pool enough threads (idempotent).
pub fn enough_rayon_threads() {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build_global();
}

/// Both parties' engines over a fresh local connection.
pub async fn pair<F: OtFlavour>(bits: u32, cfg: OtConfig, seed: u64) -> (OtEngine<F>, OtEngine<F>) {
    enough_rayon_threads();
    let ring = Ring::new(bits).unwrap();
    let (c0, c1) = local_conn().await.unwrap();
    let mut r0 = ChaCha20Rng::seed_from_u64(seed);
    let mut r1 = ChaCha20Rng::seed_from_u64(seed ^ 0xdead_beef);
    tokio::try_join!(
        OtEngine::<F>::setup_with(c0, Role::Server, ring, cfg, &mut r0),
        OtEngine::<F>::setup_with(c1, Role::Client, ring, cfg, &mut r1),
    )
    .unwrap()
}

/// Signed edge values of `Z_{2^l}` plus a few around `±2^{l-2}`.
pub fn edge_values(ring: Ring) -> Vec<i64> {
    let l = ring.bits();
    let min = ring.to_signed(1u64 << (l - 1));
    let max = ring.to_signed((1u64 << (l - 1)) - 1);
    let q = 1i64 << (l - 2);
    let mut v = vec![
        0,
        1,
        -1,
        2,
        -2,
        min,
        min + 1,
        min + 2,
        max,
        max - 1,
        max - 2,
        q,
        q - 1,
        -q,
        -q + 1,
        -q - 1,
    ];
    v.retain(|&x| x >= min && x <= max);
    v
}

/// Shares of each value: for edge cases the first share also takes edge
/// values (0, 1, -1, ±2^{l-1}) so that wrap-around is exercised; otherwise
/// uniform.
pub fn share(ring: Ring, xs: &[u64], rng: &mut ChaCha20Rng) -> (Vec<u64>, Vec<u64>) {
    let l = ring.bits();
    let special = [
        0u64,
        1,
        ring.mask(),
        1u64 << (l - 1),
        (1u64 << (l - 1)) - 1,
        (1u64 << (l - 1)) + 1,
    ];
    let mut a = Vec::with_capacity(xs.len());
    let mut b = Vec::with_capacity(xs.len());
    for (i, &x) in xs.iter().enumerate() {
        let x0 = if i % 3 == 0 {
            special[(i / 3) % special.len()]
        } else {
            ring.random(rng)
        };
        a.push(x0);
        b.push(ring.sub(x, x0));
    }
    (a, b)
}

/// `x0 + x1` elementwise.
pub fn open(ring: Ring, a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(&x, &y)| ring.add(x, y)).collect()
}

/// `a ⊕ b`.
pub fn open_bits(a: &Bits, b: &Bits) -> Vec<bool> {
    a.xor(b).to_bools()
}

/// Random ring elements plus all edge values (each edge value several times so
/// that it meets several kinds of shares).
pub fn inputs(ring: Ring, n: usize, rng: &mut ChaCha20Rng) -> Vec<u64> {
    let mut v: Vec<u64> = Vec::new();
    for _ in 0..6 {
        v.extend(edge_values(ring).into_iter().map(|x| ring.from_signed(x)));
    }
    v.extend((0..n).map(|_| ring.random(rng)));
    v
}

/// Values uniform in `[-2^{bound}, 2^{bound})` plus the edges of that range.
pub fn bounded(ring: Ring, bound: u32, n: usize, rng: &mut ChaCha20Rng) -> Vec<u64> {
    use rand::RngExt;
    let lo = -(1i64 << bound);
    let hi = (1i64 << bound) - 1;
    let mut v: Vec<i64> = Vec::new();
    for _ in 0..6 {
        v.extend([lo, lo + 1, lo + 2, -1, 0, 1, hi - 2, hi - 1, hi]);
    }
    v.extend((0..n).map(|_| rng.random_range(lo..=hi)));
    v.into_iter().map(|x| ring.from_signed(x)).collect()
}
