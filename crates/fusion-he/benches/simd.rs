//! SIMD (batch-encoded BFV, SCI_HE-style) linear layers beside the
//! coefficient-encoded (Cheetah-style) path for the same shapes: FC 784 -> 128
//! at batch 1 and 128, and the MNIST CNN's first convolution (28x28x1, 5x5,
//! 16 filters, VALID), each end to end in one process over the byte-level
//! halves (client query bytes, server reply bytes, client decryption).
//!
//! SIMD: `SimdPreset::N8192` with the default prime `p > 2^37` (the
//! N = 4096 preset cannot hold it, see `fusion_he::simd::params`);
//! coefficient path: `Preset::N4096` at `l = 37` (as `benches/linear.rs`).
//! Bytes per direction (messages without transport framing), the one-off
//! setup bytes (public key and Galois keys) and the homomorphic operation
//! counts are printed once per layer.
//!
//! `cargo bench -p fusion-he --bench simd`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fusion_core::ring::Ring;
use fusion_he::simd::{SimdClient, SimdLinear, SimdPlan, SimdPreset, SimdServer};
use fusion_he::{
    Conv2dShape, FcShape, HeClient, HeServer, LinearPlan, Padding, PlanOptions, Preset,
    ServerLinear,
};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

enum Shape {
    Fc(FcShape),
    Conv(Conv2dShape),
}

fn shapes() -> Vec<(&'static str, Shape)> {
    vec![
        ("fc784x128_b1", Shape::Fc(FcShape::new(1, 784, 128))),
        ("fc784x128_b128", Shape::Fc(FcShape::new(128, 784, 128))),
        (
            "mnist_conv1_b1",
            Shape::Conv(Conv2dShape::new(1, 1, 28, 28, 16, 5, 1, Padding::Valid)),
        ),
    ]
}

fn simd(c: &mut Criterion) {
    let params = SimdPreset::N8192.params().expect("params");
    let f = params.field();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let client = SimdClient::new(&params, &mut rng);
    for (name, shape) in shapes() {
        // Fixed-point weights at f = 12 with |w| < 1, as in benches/linear.rs.
        let mut w = |len: usize| -> Vec<u64> {
            (0..len)
                .map(|_| f.from_signed(rng.random_range(-4096i64..=4096)))
                .collect()
        };
        let (plan, layer) = match shape {
            Shape::Fc(s) => {
                let plan = SimdPlan::fc(&params, s).expect("plan");
                let layer = SimdLinear::fc(plan.clone(), &w(784 * 128), None).expect("layer");
                (plan, layer)
            }
            Shape::Conv(s) => {
                let plan = SimdPlan::conv2d(&params, s).expect("plan");
                let layer =
                    SimdLinear::conv2d(plan.clone(), &w(s.weight_len()), None).expect("layer");
                (plan, layer)
            }
        };
        let (pk, gk) = client.setup_messages(plan.galois_elements(), &mut rng);
        let server = SimdServer::from_setup_messages(&params, &pk, Some(&gk)).expect("server");
        let len = plan.layer().input_len();
        let xc: Vec<u64> = (0..len).map(|_| f.random(&mut rng)).collect();
        let xs: Vec<u64> = (0..len).map(|_| f.random(&mut rng)).collect();
        let q = client.query_bytes(&plan, &xc, &mut rng).expect("query");
        let resp = layer
            .respond(
                &server,
                &fusion_he::simd::SimdQuery::from_bytes(&plan, &q).expect("q"),
                &xs,
                &mut rng,
            )
            .expect("respond");
        println!(
            "[simd] {name}: client->server {} B ({} cts), server->client {} B ({} cts); setup {} B \
             (public key {} B, {} Galois keys {} B); {:?}; noise margin {:.1} bits, flooding 2^{}",
            q.len(),
            plan.input_cts(),
            resp.reply.as_bytes().len(),
            plan.output_cts(),
            pk.len() + gk.len(),
            pk.len(),
            plan.galois_elements().elements().len(),
            gk.len(),
            resp.counts,
            plan.noise().margin_bits,
            plan.noise().flood_bits,
        );
        let mut g = c.benchmark_group(format!("simd/{name}"));
        g.sample_size(10).measurement_time(Duration::from_secs(10));
        g.bench_function("end_to_end_in_process", |b| {
            let mut rng = ChaCha20Rng::seed_from_u64(4);
            b.iter(|| {
                let q = client.query_bytes(&plan, &xc, &mut rng).expect("query");
                let (reply, _) = layer
                    .respond_bytes(&server, &q, &xs, &mut rng)
                    .expect("respond");
                client.decrypt_bytes(&plan, reply).expect("decrypt")
            })
        });
        g.finish();
    }
}

fn coefficient(c: &mut Criterion) {
    let ring = Ring::new(37).expect("ring");
    let params = Preset::N4096.params(ring).expect("params");
    let opts = PlanOptions::default();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let client = HeClient::new(&params, &mut rng);
    let server = HeServer::new(client.public_key());
    for (name, shape) in shapes() {
        let mut w = |len: usize| -> Vec<u64> {
            (0..len)
                .map(|_| ring.from_signed(rng.random_range(-4096i64..=4096)))
                .collect()
        };
        let (plan, layer) = match shape {
            Shape::Fc(s) => {
                let plan = LinearPlan::fc(&params, s, &opts).expect("plan");
                let layer = ServerLinear::fc(plan.clone(), &w(784 * 128), None).expect("layer");
                (plan, layer)
            }
            Shape::Conv(s) => {
                let plan = LinearPlan::conv2d(&params, s, &opts).expect("plan");
                let layer =
                    ServerLinear::conv2d(plan.clone(), &w(s.weight_len()), None).expect("layer");
                (plan, layer)
            }
        };
        let len = plan.input_len();
        let xc: Vec<u64> = (0..len).map(|_| ring.random(&mut rng)).collect();
        let xs: Vec<u64> = (0..len).map(|_| ring.random(&mut rng)).collect();
        let q = client.query_bytes(&plan, &xc, &mut rng).expect("query");
        let (reply, _) = layer
            .respond_bytes(&server, &q, Some(&xs), &mut rng)
            .expect("respond");
        println!(
            "[coefficient] {name}: client->server {} B ({} cts), server->client {} B ({} cts)",
            q.len(),
            plan.input_cts(),
            reply.as_bytes().len(),
            plan.output_cts(),
        );
        let mut g = c.benchmark_group(format!("coefficient/{name}"));
        g.sample_size(10).measurement_time(Duration::from_secs(10));
        g.bench_function("end_to_end_in_process", |b| {
            let mut rng = ChaCha20Rng::seed_from_u64(4);
            b.iter(|| {
                let q = client.query_bytes(&plan, &xc, &mut rng).expect("query");
                let (reply, _) = layer
                    .respond_bytes(&server, &q, Some(&xs), &mut rng)
                    .expect("respond");
                client
                    .decrypt_bytes(&plan, reply.as_bytes().to_vec())
                    .expect("decrypt")
            })
        });
        g.finish();
    }
}

criterion_group!(benches, simd, coefficient);
criterion_main!(benches);
