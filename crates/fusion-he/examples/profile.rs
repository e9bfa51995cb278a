//! Times the three steps of a layer call and reports wall and process CPU time
//! (CPU time is the more stable figure on a shared machine).
//!
//! `cargo run --release -p fusion-he --example profile -- fc|conv1|conv2 [batch]`
//!
//! Environment: `HE_CACHE=<bytes>` sets the server's kernel-cache budget;
//! `HE_BLK=nb,cb,mb` forces the FC blocking.

use std::time::Instant;

use fusion_core::ring::Ring;
use fusion_he::{
    Conv2dShape, FcShape, HeClient, HeServer, LinearPlan, Padding, PlanOptions, Preset,
    ServerLinear,
};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

mod common;
use common::cpu_seconds;

fn main() -> Result<(), fusion_he::HeError> {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("fc");
    let batch: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1);
    let ring = Ring::new(37).map_err(|e| fusion_he::HeError::InvalidParams(e.to_string()))?;
    let params = Preset::N4096.params(ring)?;
    let mut opts = PlanOptions::default();
    if let Ok(v) = std::env::var("HE_CACHE") {
        opts.weight_cache_bytes = v.parse().unwrap_or(0);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut w = |len: usize| -> Vec<u64> {
        (0..len)
            .map(|_| ring.from_signed(rng.random_range(-4096i64..=4096)))
            .collect()
    };
    let t = Instant::now();
    let (plan, layer) = match which {
        "fc" => {
            let shape = FcShape::new(128, 784, 128);
            let p = match std::env::var("HE_BLK").ok().map(|v| {
                v.split(',')
                    .filter_map(|x| x.parse().ok())
                    .collect::<Vec<usize>>()
            }) {
                Some(b) if b.len() == 3 => LinearPlan::with_blocking(
                    &params,
                    fusion_he::LayerKind::Fc(shape),
                    fusion_he::Blocking {
                        images: b[0],
                        channels: b[1],
                        filters: b[2],
                        height: 1,
                        width: 1,
                    },
                    &opts,
                )?,
                _ => LinearPlan::fc(&params, shape, &opts)?,
            };
            let l = ServerLinear::fc(p.clone(), &w(784 * 128), None)?;
            (p, l)
        }
        "conv1" => {
            let s = Conv2dShape::new(batch, 1, 28, 28, 16, 5, 1, Padding::Valid);
            let p = LinearPlan::conv2d(&params, s, &opts)?;
            let l = ServerLinear::conv2d(p.clone(), &w(s.weight_len()), None)?;
            (p, l)
        }
        _ => {
            let s = Conv2dShape::new(batch, 32, 14, 14, 64, 5, 1, Padding::Same);
            let p = LinearPlan::conv2d(&params, s, &opts)?;
            let l = ServerLinear::conv2d(p.clone(), &w(s.weight_len()), None)?;
            (p, l)
        }
    };
    println!(
        "{which} batch {batch}: {:?} {:?}; setup {:?}",
        plan.blocking(),
        plan.stats(),
        t.elapsed()
    );
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let client = HeClient::new(&params, &mut rng);
    let server = HeServer::new(client.public_key());
    let xc: Vec<u64> = (0..plan.input_len())
        .map(|_| ring.random(&mut rng))
        .collect();
    let xs: Vec<u64> = (0..plan.input_len())
        .map(|_| ring.random(&mut rng))
        .collect();
    for _ in 0..3 {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let q = client.encrypt(&plan, &xc, &mut rng)?;
        let (c1, t1) = (cpu_seconds(), Instant::now());
        let (reply, _) = layer.respond(&server, &q, Some(&xs), &mut rng)?;
        let (c2, t2) = (cpu_seconds(), Instant::now());
        let _ = client.decrypt(&plan, &reply)?;
        let (c3, t3) = (cpu_seconds(), Instant::now());
        println!(
            "encrypt {:?} (cpu {:.3}s)  respond {:?} (cpu {:.3}s)  decrypt {:?} (cpu {:.3}s)",
            t1 - t0,
            c1 - c0,
            t2 - t1,
            c2 - c1,
            t3 - t2,
            c3 - c2
        );
    }
    Ok(())
}
