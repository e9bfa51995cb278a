//! The engine over real fusion-net sessions (QUIC + TLS with certificate
//! pinning, fusion-net's flow-control limits) instead of CryProt's test
//! connection: the API takes any `cryprot_net::Connection`, here a
//! sub-connection of a `fusion_net::Session`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use fusion_core::ring::Ring;
use fusion_net::{NetConfig, local_pair};
use fusion_ot::{Iknp, OtEngine, OtFlavour, Role, Silent};
use rand::{SeedableRng, rngs::ChaCha20Rng};

async fn relu_truncate_and_mul_over_fusion_net<F: OtFlavour>() {
    enough_rayon_threads();
    let (mut srv, mut cli) = local_pair(&NetConfig::default()).await.unwrap();
    let ring = Ring::new(37).unwrap();
    let (mut r0, mut r1) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let (mut s, mut c) = tokio::try_join!(
        OtEngine::<F>::setup_with(
            srv.sub_connection(),
            Role::Server,
            ring,
            test_config(),
            &mut r0
        ),
        OtEngine::<F>::setup_with(
            cli.sub_connection(),
            Role::Client,
            ring,
            test_config(),
            &mut r1
        ),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let xs = inputs(ring, 2000, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    let (y0, y1) = tokio::try_join!(s.relu_truncate(&a, 12), c.relu_truncate(&b, 12)).unwrap();
    let (p0, p1) = tokio::try_join!(s.mul(&a, &b), c.mul(&b, &a)).unwrap();
    let y = open(ring, &y0, &y1);
    let p = open(ring, &p0, &p1);
    for (i, &x) in xs.iter().enumerate() {
        let v = ring.to_signed(x);
        let got = ring.to_signed(y[i]);
        let lowest = -(1i64 << (ring.bits() - 1)) + (1 << 12);
        if v < lowest {
            // Outside relu_truncate's contract (the 2^12 most negative values).
        } else if v < 0 {
            assert_eq!(got, 0);
        } else {
            assert!(got == v >> 12 || got == (v >> 12) - 1);
        }
        assert_eq!(p[i], ring.mul(x, x));
    }
}

#[tokio::test]
async fn silent_engine_runs_over_a_fusion_net_session() {
    relu_truncate_and_mul_over_fusion_net::<Silent>().await;
}

#[tokio::test]
async fn iknp_engine_runs_over_a_fusion_net_session() {
    relu_truncate_and_mul_over_fusion_net::<Iknp>().await;
}
