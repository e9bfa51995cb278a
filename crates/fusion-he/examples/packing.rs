//! Bytes and time of the `mlp-mnist` and `cnn-mnist` linear layers with and without
//! response packing ([`fusion_he::pack`]) at `l = 37`, `N = 4096`, plus the one-off
//! setup bytes of the Galois keys.
//!
//! `cargo run --release -p fusion-he --example packing [-- reps]`
//!
//! Three configurations per layer: `default` (no packing, the time objective at
//! 382 MB/s), `packed` (packing on, same objective) and `packed-bytes` (packing on,
//! [`PlanOptions::minimise_bytes`]). Bytes are the exact wire sizes per call
//! including the 8-byte frame headers (as `fusion_he::net` sends them); times are
//! the medians of `reps` calls (default 5) of each step, wall clock, on this machine.
//! `HE_ONLY=<substring>` and `HE_CONFIG=<name>` restrict the layers and
//! configurations (for profiling).

use std::time::{Duration, Instant};

use fusion_core::ring::Ring;
use fusion_he::{
    Conv2dShape, DEFAULT_PACKING_LEVELS, FcShape, GaloisKeyMsg, HeClient, HeError, HeParams,
    HeServer, LayerKind, LinearPlan, Padding, PlanOptions, Preset, PublicKeyMsg, ServerLinear,
};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

mod common;
use common::cpu_seconds;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), HeError> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let ring = Ring::new(37).map_err(|e| HeError::InvalidParams(e.to_string()))?;
    let plain = Preset::N4096.params(ring)?;
    let packed = Preset::N4096
        .builder(ring)
        .reply_packing(DEFAULT_PACKING_LEVELS)
        .build()?;
    println!(
        "setup: public key {} B; Galois keys {} B ({} levels x {} digits x {} B); packing off: {} B",
        PublicKeyMsg::expected_len(&packed),
        GaloisKeyMsg::expected_len(&packed),
        packed.reply_packing_levels(),
        packed.key_switch_digits(),
        packed.poly_bytes(),
        GaloisKeyMsg::expected_len(&plain),
    );
    let layers: Vec<(&str, LayerKind)> = vec![
        (
            "fc 784->128 b128",
            LayerKind::Fc(FcShape::new(128, 784, 128)),
        ),
        (
            "fc 128->128 b128",
            LayerKind::Fc(FcShape::new(128, 128, 128)),
        ),
        ("fc 128->10 b128", LayerKind::Fc(FcShape::new(128, 128, 10))),
        (
            "mnist conv1 b16",
            LayerKind::Conv2d(Conv2dShape::new(16, 1, 28, 28, 16, 5, 1, Padding::Valid)),
        ),
        (
            "mnist conv2 b16",
            LayerKind::Conv2d(Conv2dShape::new(16, 16, 12, 12, 16, 5, 1, Padding::Valid)),
        ),
        ("fc 256->100 b16", LayerKind::Fc(FcShape::new(16, 256, 100))),
        ("fc 100->10 b16", LayerKind::Fc(FcShape::new(16, 100, 10))),
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let configs: [(&str, &HeParams, PlanOptions); 3] = [
        ("default", &plain, PlanOptions::default()),
        ("packed", &packed, PlanOptions::default()),
        ("packed-bytes", &packed, PlanOptions::minimise_bytes()),
    ];
    let mut totals = [(0usize, 0usize); 3];
    let only = std::env::var("HE_ONLY").unwrap_or_default();
    let only_cfg = std::env::var("HE_CONFIG").ok();
    for (name, kind) in layers {
        if !name.contains(&only) {
            continue;
        }
        let weights_len = match kind {
            LayerKind::Fc(s) => s.in_features * s.out_features,
            LayerKind::Conv2d(s) => s.weight_len(),
            LayerKind::BatchNorm(s) => s.channels,
        };
        // Fixed-point weights at f = 12 with |w| < 1.
        let w: Vec<u64> = (0..weights_len)
            .map(|_| ring.from_signed(rng.random_range(-4096i64..=4096)))
            .collect();
        for (k, (cname, params, opts)) in configs.iter().enumerate() {
            if only_cfg.as_deref().is_some_and(|c| c != *cname) {
                continue;
            }
            let plan = LinearPlan::new(params, kind, opts)?;
            let layer = match kind {
                LayerKind::Fc(_) => ServerLinear::fc(plan.clone(), &w, None)?,
                LayerKind::Conv2d(_) => ServerLinear::conv2d(plan.clone(), &w, None)?,
                LayerKind::BatchNorm(_) => ServerLinear::batch_norm(plan.clone(), &w, None)?,
            };
            let s = plan.stats();
            totals[k].0 += s.bytes_up;
            totals[k].1 += s.bytes_down;
            let mut crng = ChaCha20Rng::seed_from_u64(1);
            let client = HeClient::new(params, &mut crng);
            let server = if params.reply_packing_levels() > 0 {
                HeServer::with_galois_keys(client.public_key(), &client.galois_keys(&mut crng)?)?
            } else {
                HeServer::new(client.public_key())
            };
            let xc: Vec<u64> = (0..plan.input_len())
                .map(|_| ring.random(&mut crng))
                .collect();
            let xs: Vec<u64> = (0..plan.input_len())
                .map(|_| ring.random(&mut crng))
                .collect();
            let (mut te, mut tr, mut td) = (Vec::new(), Vec::new(), Vec::new());
            let mut cpu_respond = 0.0;
            for _ in 0..reps {
                let t0 = Instant::now();
                let q = client.encrypt(&plan, &xc, &mut crng)?;
                let t1 = Instant::now();
                let c0 = cpu_seconds();
                let (reply, _) = layer.respond(&server, &q, Some(&xs), &mut crng)?;
                cpu_respond += cpu_seconds() - c0;
                let t2 = Instant::now();
                let _ = client.decrypt(&plan, &reply)?;
                let t3 = Instant::now();
                te.push(t1 - t0);
                tr.push(t2 - t1);
                td.push(t3 - t2);
            }
            let pk = plan.packing();
            println!(
                "{name:17} {cname:12} up {:>9} B ({:>3} cts)  down {:>9} B ({:>4} cts{})  \
                 encrypt {:>7.1?}  respond {:>7.1?} (cpu {:>5.1} ms)  decrypt {:>7.1?}  blocking nb={} cb={} mb={} tile {}x{}{}",
                s.bytes_up,
                s.input_cts,
                s.bytes_down,
                s.output_cts,
                pk.map_or(String::new(), |p| format!(
                    " from {}, {} key switches",
                    plan.result_cts(),
                    p.key_switches
                )),
                median(te),
                median(tr),
                cpu_respond * 1e3 / reps as f64,
                median(td),
                plan.blocking().images,
                plan.blocking().channels,
                plan.blocking().filters,
                plan.blocking().height,
                plan.blocking().width,
                if s.weights_cached {
                    ""
                } else {
                    ", kernels uncached"
                },
            );
        }
    }
    for (k, (cname, ..)) in configs.iter().enumerate() {
        println!(
            "total {cname:12}: up {} B, down {} B, sum {} B",
            totals[k].0,
            totals[k].1,
            totals[k].0 + totals[k].1
        );
    }
    Ok(())
}
