//! ReLU over fusion-net sessions through its link emulator, with the paper's
//! LAN (0.3 ms RTT, 382 MB/s) and WAN (40 ms RTT, 44 MB/s) settings: shows the
//! round cost (7 flights per ReLU call) and the OT flavours' bandwidth cost.
//! Prints one line per measurement (median of 3 runs).
//!
//! Run: `cargo bench -p fusion-ot --bench link`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use fusion_core::ring::Ring;
use fusion_net::{LinkConfig, NetConfig, local_pair_over_link};
use fusion_ot::{Iknp, OtConfig, OtEngine, OtFlavour, Role, Silent};
use rand::{SeedableRng, rngs::ChaCha20Rng};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run<F: OtFlavour>(link: LinkConfig, name: &str) {
    let (mut srv, mut cli, _relay) = local_pair_over_link(&NetConfig::default(), link)
        .await
        .unwrap();
    let ring = Ring::new(37).unwrap();
    let (mut r0, mut r1) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let cfg = OtConfig {
        min_refill: 1,
        ..OtConfig::default()
    };
    let (mut s, mut c) = tokio::try_join!(
        OtEngine::<F>::setup_with(srv.sub_connection(), Role::Server, ring, cfg, &mut r0),
        OtEngine::<F>::setup_with(cli.sub_connection(), Role::Client, ring, cfg, &mut r1),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for n in [1usize << 10, 1 << 15] {
        let xs: Vec<u64> = (0..n).map(|_| ring.random(&mut rng)).collect();
        let (a, b): (Vec<u64>, Vec<u64>) = xs.iter().map(|&x| ring.share(x, &mut rng)).unzip();
        let (mut e2e, mut online) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            // End to end: the call generates the ROTs it uses.
            let t = Instant::now();
            tokio::try_join!(s.relu(&a), c.relu(&b)).unwrap();
            e2e.push(t.elapsed());
            // Online only: ROTs generated beforehand (ReLU needs < 28 per element and direction).
            tokio::try_join!(s.preprocess_rots(28 * n), c.preprocess_rots(28 * n)).unwrap();
            let t = Instant::now();
            tokio::try_join!(s.relu(&a), c.relu(&b)).unwrap();
            online.push(t.elapsed());
        }
        println!(
            "{name} {:6} ReLU l=37 n={n:6}: end-to-end {:8.1} ms, online (ROTs preprocessed) {:8.1} ms",
            F::NAME,
            median(e2e).as_secs_f64() * 1e3,
            median(online).as_secs_f64() * 1e3,
        );
    }
}

fn main() {
    // Both parties share this process (see the engine's deployment notes).
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build_global();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (link, name) in [(LinkConfig::lan(), "LAN"), (LinkConfig::wan(), "WAN")] {
            run::<Silent>(link, name).await;
            run::<Iknp>(link, name).await;
        }
    });
}
