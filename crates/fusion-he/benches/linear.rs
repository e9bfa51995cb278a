//! Linear-layer benchmarks at `l = 37` (`N = 4096`; `FUSION_HE_L=64` uses `N = 8192`): FC 784 -> 128 at batch 128,
//! the MNIST CNN's first convolution (28x28x1, 5x5, 16 filters, VALID) and LeNet's
//! second convolution (14x14x32, 5x5, 64 filters, SAME), each split into the three
//! steps (client encrypt, server respond, client decrypt) and end to end over a
//! local QUIC connection. Bytes per direction are printed once per layer.
//!
//! `cargo bench -p fusion-he --bench linear` (convolutions at batch 1;
//! `FUSION_HE_CONV_BATCH=128` for batch 128)

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use fusion_core::ring::Ring;
use fusion_he::{
    Conv2dShape, FcShape, HeClient, HeServer, LinearPlan, Padding, PlanOptions, Preset, Query,
    Reply, ServerLinear, client_layer, client_setup, server_layer, server_setup,
};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

struct Case {
    name: &'static str,
    plan: LinearPlan,
    layer: ServerLinear,
}

fn cases(l: u32, batch_conv: usize) -> Vec<Case> {
    let ring = Ring::new(l).expect("ring");
    let preset = if l <= 41 {
        Preset::N4096
    } else {
        Preset::N8192
    };
    let params = preset.params(ring).expect("params");
    let opts = PlanOptions::default();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    // Fixed-point weights at f = 12 with |w| < 1.
    let mut w = |len: usize| -> Vec<u64> {
        (0..len)
            .map(|_| ring.from_signed(rng.random_range(-4096i64..=4096)))
            .collect()
    };
    let fc = FcShape::new(128, 784, 128);
    let fc_plan = LinearPlan::fc(&params, fc, &opts).expect("plan");
    let fc_layer = ServerLinear::fc(fc_plan.clone(), &w(784 * 128), None).expect("layer");
    let c1 = Conv2dShape::new(batch_conv, 1, 28, 28, 16, 5, 1, Padding::Valid);
    let c1_plan = LinearPlan::conv2d(&params, c1, &opts).expect("plan");
    let c1_layer = ServerLinear::conv2d(c1_plan.clone(), &w(c1.weight_len()), None).expect("layer");
    let c2 = Conv2dShape::new(batch_conv, 32, 14, 14, 64, 5, 1, Padding::Same);
    let c2_plan = LinearPlan::conv2d(&params, c2, &opts).expect("plan");
    let c2_layer = ServerLinear::conv2d(c2_plan.clone(), &w(c2.weight_len()), None).expect("layer");
    let names: [&'static str; 3] = if batch_conv == 1 {
        ["fc784x128_b128", "mnist_conv1_b1", "lenet_conv2_b1"]
    } else {
        ["fc784x128_b128", "mnist_conv1_b128", "lenet_conv2_b128"]
    };
    vec![
        Case {
            name: names[0],
            plan: fc_plan,
            layer: fc_layer,
        },
        Case {
            name: names[1],
            plan: c1_plan,
            layer: c1_layer,
        },
        Case {
            name: names[2],
            plan: c2_plan,
            layer: c2_layer,
        },
    ]
}

fn report(case: &Case) {
    let s = case.plan.stats();
    println!(
        "[bytes] {}: blocking {:?}; client->server {} B ({} cts), server->client {} B ({} cts; {} B uncompressed, \
         {:.1}% saved); noise margin {:.2} bits, flooding {:.1} bits at weight bound 2^{}",
        case.name,
        case.plan.blocking(),
        s.bytes_up,
        s.input_cts,
        s.bytes_down,
        s.output_cts,
        s.bytes_down_uncompressed,
        100.0 * (1.0 - s.bytes_down as f64 / s.bytes_down_uncompressed as f64),
        case.plan.noise().margin_bits,
        case.layer.flood_security_bits(),
        case.layer.weight_bits(),
    );
}

fn steps(c: &mut Criterion, cases: &[Case]) {
    let ring = cases[0].plan.params().ring();
    for case in cases {
        report(case);
        let params = case.plan.params();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let client = HeClient::new(params, &mut rng);
        let server = HeServer::new(client.public_key());
        let xc: Vec<u64> = (0..case.plan.input_len())
            .map(|_| ring.random(&mut rng))
            .collect();
        let xs: Vec<u64> = (0..case.plan.input_len())
            .map(|_| ring.random(&mut rng))
            .collect();
        let query = client.encrypt(&case.plan, &xc, &mut rng).expect("encrypt");
        let qbytes = query.to_bytes(&case.plan);
        let (reply, _) = case
            .layer
            .respond(&server, &query, Some(&xs), &mut rng)
            .expect("respond");
        let rbytes = reply.as_bytes().to_vec();
        let mut g = c.benchmark_group(case.name);
        g.sample_size(10).measurement_time(Duration::from_secs(8));
        g.bench_function("client_encrypt", |b| {
            b.iter(|| {
                client
                    .encrypt(&case.plan, &xc, &mut rng)
                    .expect("encrypt")
                    .to_bytes(&case.plan)
            })
        });
        g.bench_function("server_respond", |b| {
            b.iter(|| {
                let q = Query::from_bytes(&case.plan, &qbytes).expect("query");
                case.layer
                    .respond(&server, &q, Some(&xs), &mut rng)
                    .expect("respond")
            })
        });
        g.bench_function("client_decrypt", |b| {
            b.iter(|| {
                let r = Reply::from_bytes(&case.plan, rbytes.clone()).expect("reply");
                client.decrypt(&case.plan, &r).expect("decrypt")
            })
        });
        g.finish();
    }
}

fn end_to_end(c: &mut Criterion, cases: Vec<Case>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let params = cases[0].plan.params().clone();
    let ring = params.ring();
    let (mut sconn, mut cconn) = rt
        .block_on(cryprot_net::testing::local_conn())
        .expect("local connection");
    let ((client, mut cch), (server, mut sch)) = rt.block_on(async {
        let mut crng = ChaCha20Rng::seed_from_u64(2);
        let (c, s) = tokio::join!(
            client_setup(&mut cconn, &params, &mut crng),
            server_setup(&mut sconn, &params)
        );
        (c.expect("client setup"), s.expect("server setup"))
    });
    for case in cases {
        let plan = Arc::new(case.plan.clone());
        let layer = Arc::new(case.layer);
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let xc: Vec<u64> = (0..plan.input_len())
            .map(|_| ring.random(&mut rng))
            .collect();
        let xs: Vec<u64> = (0..plan.input_len())
            .map(|_| ring.random(&mut rng))
            .collect();
        let mut g = c.benchmark_group(case.name);
        g.sample_size(10).measurement_time(Duration::from_secs(10));
        g.bench_function("end_to_end_local_quic", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut crng = ChaCha20Rng::seed_from_u64(4);
                    let mut srng = ChaCha20Rng::seed_from_u64(5);
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (cres, sres) = tokio::join!(
                            client_layer(&mut cch, &client, &plan, xc.clone(), &mut crng),
                            server_layer(&mut sch, &server, &layer, Some(xs.clone()), &mut srng)
                        );
                        let ((_, t), _) = (cres.expect("client"), sres.expect("server"));
                        assert_eq!(t.client_to_server, plan.stats().bytes_up);
                        assert_eq!(t.server_to_client, plan.stats().bytes_down);
                    }
                    start.elapsed()
                })
            })
        });
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    let batch = std::env::var("FUSION_HE_CONV_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let l = std::env::var("FUSION_HE_L")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(37);
    let cs = cases(l, batch);
    steps(c, &cs);
    end_to_end(c, cs);
}

criterion_group!(linear, benches);
criterion_main!(linear);
