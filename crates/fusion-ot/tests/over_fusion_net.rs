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

/// Bytes both parties have sent on their sessions so far.
fn bytes_sent(a: &fusion_net::Session, b: &fusion_net::Session) -> u64 {
    a.report().total.bytes_sent + b.report().total.bytes_sent
}

/// A silent-OT instance's first run takes its PPRF base OTs from IKNP;
/// every later run takes them from the random OTs the previous run set
/// aside. Every run's OTs must still be correct random OTs, and a later run
/// must not pay IKNP's 128 bits per base OT again (the first run of `2^12`
/// OTs needs 1736 base OTs: about 28 kB of IKNP, plus CryProt's 128 base OTs).
#[tokio::test]
async fn silent_runs_after_the_first_take_their_base_ots_from_the_previous_run() {
    enough_rayon_threads();
    let (mut srv, mut cli) = local_pair(&NetConfig::default()).await.unwrap();
    let (mut r0, mut r1) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let mut s = Silent::sender(srv.sub_connection(), &mut r0);
    let mut c = Silent::receiver(cli.sub_connection(), &mut r1);
    let mut sent = Vec::new();
    for count in [1 << 12, 1 << 16, 1 << 12] {
        let before = bytes_sent(&srv, &cli);
        let (keys, (got, choices)) = tokio::try_join!(
            Silent::send(&mut s, count),
            Silent::receive(&mut c, count, &mut r1)
        )
        .unwrap();
        sent.push(bytes_sent(&srv, &cli) - before);
        assert_eq!(
            (keys.len(), got.len(), choices.len()),
            (count, count, count)
        );
        for i in 0..count {
            assert_eq!(
                got[i],
                keys[i][usize::from(choices[i])],
                "OT {i} of a run of {count}"
            );
            assert_ne!(keys[i][0], keys[i][1]);
        }
        let ones = choices.iter().filter(|&&b| b == 1).count();
        assert!(
            ones > count / 3 && ones < 2 * count / 3,
            "{ones} of {count} choices are 1"
        );
    }
    assert!(
        sent[2] + 20_000 < sent[0],
        "same-size runs sent {} bytes (IKNP base OTs) and {} bytes (bootstrapped)",
        sent[0],
        sent[2]
    );
}

/// The receiver's correction bits of bootstrapped base OTs are peer data: a
/// wrong length ends the run with an error, never a panic.
#[tokio::test]
async fn a_malformed_base_ot_correction_is_an_error() {
    use cryprot_core::Block;
    use cryprot_ot::silent_ot::{Error, SemiHonestSilentOtSender};
    use futures::SinkExt;
    enough_rayon_threads();
    let (mut srv, mut cli) = local_pair(&NetConfig::default()).await.unwrap();
    let mut sender = SemiHonestSilentOtSender::new(srv.sub_connection());
    let mut liar = cli.sub_connection();
    let count = 1 << 12;
    let base = vec![[Block::ZERO, Block::ONES]; 8192];
    let mut ots = vec![[Block::ZERO; 2]; count];
    let (result, _) = tokio::join!(
        sender.random_send_into_with_base(count, &base, &mut ots),
        async {
            let (mut tx, _rx) = liar.stream::<Vec<u8>>().await.unwrap();
            tx.send(vec![0u8; 3]).await.unwrap();
        }
    );
    assert!(
        matches!(result, Err(Error::BadBaseOtCorrection)),
        "{:?}",
        result.err()
    );
}
