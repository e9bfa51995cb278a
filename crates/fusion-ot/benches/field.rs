//! Criterion benchmarks of the prime-field path ([`FieldOtEngine`]): both
//! parties in one process over a local QUIC connection, the backend's 38-bit
//! prime `p = PrimeField::ntt_friendly(2^37, 2·8192)`, `m = 4`.
//!
//! Every iteration is end to end and includes generating the IKNP ROTs the
//! operation consumes (`min_refill = 1`). Throughput is reported by
//! criterion in elements per second. Bytes per element are measured once per
//! benchmark with `cryprot_net::metrics` (everything each party writes to
//! its QUIC streams, IKNP generation included) and printed as a table at the
//! end, beside the protocol-message share and the analytic formula.
//!
//! Run: `cargo bench -p fusion-ot --bench field`. Environment:
//! `FUSION_OT_BENCH_N` elements per call (default 2^12).
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cryprot_net::metrics::{CommLayerData, new_comm_layer};
use fusion_core::field::PrimeField;
use fusion_ot::{FieldOtConfig, FieldOtEngine, Role};
use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};
use tokio::runtime::Runtime;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Clone, Copy)]
enum Op {
    Millionaires,
    Drelu,
    Relu,
    Truncate,
    ReluTruncate,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Millionaires => "millionaires_38",
            Op::Drelu => "drelu",
            Op::Relu => "relu",
            Op::Truncate => "truncate_f12",
            Op::ReluTruncate => "relu_truncate_f12",
        }
    }
}

const OPS: [Op; 5] = [
    Op::Millionaires,
    Op::Drelu,
    Op::Relu,
    Op::Truncate,
    Op::ReluTruncate,
];

struct Meter {
    data: CommLayerData,
}

impl Meter {
    fn new() -> Self {
        let (layer, data) = new_comm_layer();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .unwrap();
        Meter { data }
    }

    fn measure<A: Future, B: Future>(&self, rt: &Runtime, fa: A, fb: B) -> (u64, u64) {
        self.data.reset();
        rt.block_on(async {
            let sa = tracing::trace_span!(target: "cryprot_metrics", "server", phase = "server");
            let sb = tracing::trace_span!(target: "cryprot_metrics", "client", phase = "client");
            tokio::join!(fa.instrument(sa), fb.instrument(sb));
        });
        let d = self.data.comm_data();
        let w = |p: &str| d.get(p).map_or(0, |c| c.write.bytes_with_sub_comm);
        (w("server"), w("client"))
    }
}

type Half<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

struct Inputs {
    a: Vec<u64>,
    b: Vec<u64>,
    ma: Vec<u64>,
    mb: Vec<u64>,
}

fn both_halves<'a>(
    op: Op,
    s: &'a mut FieldOtEngine,
    c: &'a mut FieldOtEngine,
    inp: &'a Inputs,
) -> (Half<'a>, Half<'a>) {
    macro_rules! halves {
        ($a:expr, $b:expr) => {
            (
                Box::pin(async move { $a.await.map(drop).unwrap() }),
                Box::pin(async move { $b.await.map(drop).unwrap() }),
            )
        };
    }
    match op {
        Op::Millionaires => halves!(s.millionaires(&inp.ma, 38), c.millionaires(&inp.mb, 38)),
        Op::Drelu => halves!(s.drelu(&inp.a), c.drelu(&inp.b)),
        Op::Relu => halves!(s.relu(&inp.a), c.relu(&inp.b)),
        Op::Truncate => halves!(s.truncate(&inp.a, 12), c.truncate(&inp.b, 12)),
        Op::ReluTruncate => halves!(s.relu_truncate(&inp.a, 12), c.relu_truncate(&inp.b, 12)),
    }
}

fn all(c: &mut Criterion) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build_global();
    let meter = Meter::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n: usize = std::env::var("FUSION_OT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 12);
    let f = PrimeField::ntt_friendly(1 << 37, 2 * 8192).unwrap();
    let cfg = FieldOtConfig {
        min_refill: 1,
        ..FieldOtConfig::default()
    };
    let (mut s, mut cl) = rt.block_on(async {
        let (c0, c1) = cryprot_net::testing::local_conn().await.unwrap();
        let mut r0 = ChaCha20Rng::seed_from_u64(1);
        let mut r1 = ChaCha20Rng::seed_from_u64(2);
        tokio::try_join!(
            FieldOtEngine::setup(c0, Role::Server, f, cfg, &mut r0),
            FieldOtEngine::setup(c1, Role::Client, f, cfg, &mut r1),
        )
        .unwrap()
    });
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let b36 = (1i64 << 36) - 1;
    let xs: Vec<u64> = (0..n)
        .map(|_| f.from_signed(rng.random_range(-b36..=b36)))
        .collect();
    let a: Vec<u64> = (0..n).map(|_| f.random(&mut rng)).collect();
    let b: Vec<u64> = xs.iter().zip(&a).map(|(&x, &s0)| f.sub(x, s0)).collect();
    let ma: Vec<u64> = (0..n).map(|_| rng.random_range(0..1u64 << 38)).collect();
    let mb: Vec<u64> = (0..n).map(|_| rng.random_range(0..1u64 << 38)).collect();
    let inp = Inputs { a, b, ma, mb };
    let mut rows = Vec::new();
    let mut group = c.benchmark_group("field/p38");
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    for op in OPS {
        let before = s.stats();
        let t = Instant::now();
        let total = {
            let (fa, fb) = both_halves(op, &mut s, &mut cl, &inp);
            meter.measure(&rt, fa, fb)
        };
        let secs = t.elapsed().as_secs_f64();
        let after = s.stats();
        let protocol =
            (after.bytes_sent - before.bytes_sent) + (after.bytes_received - before.bytes_received);
        let rots = after.rots_used - before.rots_used;
        let formula = match op {
            Op::Millionaires => s.millionaires_cost(n, 38),
            Op::Drelu => s.drelu_cost(n),
            Op::Relu => s.relu_cost(n),
            Op::Truncate => s.truncate_cost(n, 12),
            Op::ReluTruncate => s.relu_truncate_cost(n, 12),
        };
        rows.push((
            op.name(),
            total,
            protocol,
            after.flights - before.flights,
            rots,
            formula,
            secs,
        ));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(op.name(), |bch| {
            bch.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        let (fa, fb) = both_halves(op, &mut s, &mut cl, &inp);
                        tokio::join!(fa, fb);
                    }
                    t.elapsed()
                })
            })
        });
    }
    group.finish();
    let e = n as f64;
    println!();
    println!("n = {n}, p = {} ({} bits), m = 4", f.modulus(), f.bits());
    println!(
        "| op | bits/elem on the wire (all, measured) | protocol bits/elem (measured) \
         | formula: protocol + 2·128·ROTs bits/elem | flights | IKNP ROTs/elem/direction | one call (s) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, total, protocol, flights, rots, (fbits, frots), secs) in rows {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {flights} | {:.1} | {secs:.3} |",
            8.0 * (total.0 + total.1) as f64 / e,
            8.0 * protocol as f64 / e,
            (fbits as f64 + 2.0 * 128.0 * frots as f64) / e,
            rots as f64 / e,
        );
    }
}

criterion_group!(benches, all);
criterion_main!(benches);
