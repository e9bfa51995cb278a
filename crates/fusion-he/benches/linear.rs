//! Linear-layer benchmarks at `l = 37` (`N = 4096`; `FUSION_HE_L=64` uses `N = 8192`): FC 784 -> 128 at batch 128,
//! the MNIST CNN's first convolution (28x28x1, 5x5, 16 filters, VALID) and LeNet's
//! second convolution (14x14x32, 5x5, 64 filters, SAME), each split into the three
//! steps (client encrypt, server respond, client decrypt) and end to end in
//! one process over the byte-level halves (query bytes, reply bytes; the
//! network is measured by `fusion-bench infer`). Bytes per direction are
//! printed once per layer.
//!
//! `cargo bench -p fusion-he --bench linear` (convolutions at batch 1;
//! `FUSION_HE_CONV_BATCH=128` for batch 128)
//!
//! The `packing/*` groups compare response packing ([`fusion_he::pack`]) on the
//! `mlp-mnist` and `cnn-mnist` layers at `l = 37`: FC 784 -> 128, 128 -> 128 and
//! 128 -> 10 at batch 128, and the MNIST CNN's two convolutions at batch 16, each
//! `plain` (packing off, the default time objective) and `packed` (packing on,
//! `PlanOptions::minimise_bytes`), end to end in one process. Bytes per
//! direction and the one-off Galois-key setup bytes are printed.
//! `cargo bench -p fusion-he --bench linear -- packing` runs only these.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fusion_core::ring::Ring;
use fusion_he::{
    Conv2dShape, DEFAULT_PACKING_LEVELS, FcShape, GaloisKeyMsg, HeClient, HeParams, HeServer,
    LayerKind, LinearPlan, Padding, PlanOptions, Preset, PublicKeyMsg, Query, Reply, ServerLinear,
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

/// The client and server of `params` after the setup messages.
fn session(params: &HeParams) -> (HeClient, HeServer) {
    let mut crng = ChaCha20Rng::seed_from_u64(2);
    let client = HeClient::new(params, &mut crng);
    let (pk, gk) = client.setup_messages(&mut crng).expect("setup messages");
    let server =
        HeServer::from_setup_messages(params, pk.as_bytes(), gk.as_ref().map(|g| g.as_bytes()))
            .expect("server setup");
    (client, server)
}

/// One layer end to end over the byte-level halves; returns the bytes
/// up and down (with the transport's frame headers, as the plan counts them).
fn layer_call(
    client: &HeClient,
    server: &HeServer,
    plan: &LinearPlan,
    layer: &ServerLinear,
    xc: &[u64],
    xs: &[u64],
    rng: &mut ChaCha20Rng,
) -> (usize, usize) {
    let q = client.query_bytes(plan, xc, rng).expect("query");
    let (reply, _) = layer
        .respond_bytes(server, &q, Some(xs), rng)
        .expect("respond");
    let down = reply.as_bytes().len();
    client
        .decrypt_bytes(plan, reply.as_bytes().to_vec())
        .expect("decrypt");
    let frame = fusion_he::FRAME_HEADER_BYTES;
    (q.len() + frame, down + frame)
}

fn end_to_end(c: &mut Criterion, cases: Vec<Case>) {
    let params = cases[0].plan.params().clone();
    let ring = params.ring();
    let (client, server) = session(&params);
    for case in cases {
        let plan = case.plan;
        let layer = case.layer;
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let xc: Vec<u64> = (0..plan.input_len())
            .map(|_| ring.random(&mut rng))
            .collect();
        let xs: Vec<u64> = (0..plan.input_len())
            .map(|_| ring.random(&mut rng))
            .collect();
        let mut g = c.benchmark_group(case.name);
        g.sample_size(10).measurement_time(Duration::from_secs(10));
        g.bench_function("end_to_end_in_process", |b| {
            let mut rng = ChaCha20Rng::seed_from_u64(4);
            b.iter(|| {
                let (up, down) = layer_call(&client, &server, &plan, &layer, &xc, &xs, &mut rng);
                assert_eq!(up, plan.stats().bytes_up);
                assert_eq!(down, plan.stats().bytes_down);
            })
        });
        g.finish();
    }
}

/// `plain` and `packed` end to end over local QUIC for the `mlp-mnist` and
/// `cnn-mnist` layers (see the module docs).
fn packing(c: &mut Criterion) {
    let ring = Ring::new(37).expect("ring");
    let plain = Preset::N4096.params(ring).expect("params");
    let packed = Preset::N4096
        .builder(ring)
        .reply_packing(DEFAULT_PACKING_LEVELS)
        .build()
        .expect("params");
    println!(
        "[setup] public key {} B; Galois keys {} B with packing ({} levels x {} digits), 0 B without",
        PublicKeyMsg::expected_len(&packed),
        GaloisKeyMsg::expected_len(&packed),
        packed.reply_packing_levels(),
        packed.key_switch_digits(),
    );
    let layers: [(&str, LayerKind); 5] = [
        ("fc784x128_b128", LayerKind::Fc(FcShape::new(128, 784, 128))),
        ("fc128x128_b128", LayerKind::Fc(FcShape::new(128, 128, 128))),
        ("fc128x10_b128", LayerKind::Fc(FcShape::new(128, 128, 10))),
        (
            "mnist_conv1_b16",
            LayerKind::Conv2d(Conv2dShape::new(16, 1, 28, 28, 16, 5, 1, Padding::Valid)),
        ),
        (
            "mnist_conv2_b16",
            LayerKind::Conv2d(Conv2dShape::new(16, 16, 12, 12, 16, 5, 1, Padding::Valid)),
        ),
    ];
    let configs: [(&str, &HeParams, PlanOptions); 2] = [
        ("plain", &plain, PlanOptions::default()),
        ("packed", &packed, PlanOptions::minimise_bytes()),
    ];
    for (cname, params, opts) in configs {
        let (client, server) = session(params);
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for (name, kind) in layers {
            let plan = Arc::new(LinearPlan::new(params, kind, &opts).expect("plan"));
            let wlen = match kind {
                LayerKind::Fc(s) => s.in_features * s.out_features,
                LayerKind::Conv2d(s) => s.weight_len(),
                LayerKind::BatchNorm(s) => s.channels,
            };
            let w: Vec<u64> = (0..wlen)
                .map(|_| ring.from_signed(rng.random_range(-4096i64..=4096)))
                .collect();
            let layer = Arc::new(
                match kind {
                    LayerKind::Fc(_) => ServerLinear::fc((*plan).clone(), &w, None),
                    LayerKind::Conv2d(_) => ServerLinear::conv2d((*plan).clone(), &w, None),
                    LayerKind::BatchNorm(_) => ServerLinear::batch_norm((*plan).clone(), &w, None),
                }
                .expect("layer"),
            );
            let s = plan.stats();
            println!(
                "[bytes] packing/{name}/{cname}: client->server {} B ({} cts), server->client {} B ({} cts{}); \
                 blocking {:?}, kernels cached {}",
                s.bytes_up,
                s.input_cts,
                s.bytes_down,
                s.output_cts,
                plan.packing().map_or(String::new(), |p| format!(
                    " packed from {}, {} key switches",
                    plan.result_cts(),
                    p.key_switches
                )),
                plan.blocking(),
                s.weights_cached,
            );
            let xc: Vec<u64> = (0..plan.input_len())
                .map(|_| ring.random(&mut rng))
                .collect();
            let xs: Vec<u64> = (0..plan.input_len())
                .map(|_| ring.random(&mut rng))
                .collect();
            let mut g = c.benchmark_group(format!("packing/{name}"));
            g.sample_size(10).measurement_time(Duration::from_secs(6));
            g.bench_function(format!("{cname}_end_to_end_in_process"), |b| {
                let mut rng = ChaCha20Rng::seed_from_u64(4);
                b.iter(|| {
                    let (up, down) =
                        layer_call(&client, &server, &plan, &layer, &xc, &xs, &mut rng);
                    assert_eq!(up, plan.stats().bytes_up);
                    assert_eq!(down, plan.stats().bytes_down);
                })
            });
            g.bench_function(format!("{cname}_server_respond"), |b| {
                let mut crng = ChaCha20Rng::seed_from_u64(6);
                let local = HeClient::new(params, &mut crng);
                let srv = if params.reply_packing_levels() > 0 {
                    HeServer::with_galois_keys(
                        local.public_key(),
                        &local.galois_keys(&mut crng).expect("keys"),
                    )
                    .expect("server")
                } else {
                    HeServer::new(local.public_key())
                };
                let q = local.encrypt(&plan, &xc, &mut crng).expect("encrypt");
                b.iter(|| {
                    layer
                        .respond(&srv, &q, Some(&xs), &mut crng)
                        .expect("respond")
                })
            });
            g.finish();
        }
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

criterion_group!(linear, benches, packing);
criterion_main!(linear);
