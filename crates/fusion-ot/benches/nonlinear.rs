//! Criterion benchmarks of the OT-based non-linear layers: both parties in one
//! process over a local QUIC connection (`cryprot_net::testing::local_conn`),
//! silent OT vs IKNP, `l = 37` and `l = 64`.
//!
//! Every iteration is end to end: it includes generating the ROTs the
//! operation consumes (the engine is configured to generate exactly what is
//! needed, `min_refill = 1`). Throughput is reported by criterion in
//! elements per second. Bytes per element are measured once per benchmark
//! with `cryprot_net::metrics` (all bytes each party writes to its QUIC
//! streams, OT generation included) and printed as a table at the end,
//! together with the protocol-message share from [`fusion_ot::Stats`].
//!
//! Run: `cargo bench -p fusion-ot --bench nonlinear`. Environment:
//! `FUSION_OT_BENCH_N` elements per call (default 2^15),
//! `FUSION_OT_BENCH_ROTS` ROTs for the raw OT benchmark (default 2^20),
//! `FUSION_OT_BENCH_FILTER` a substring of the benchmark ids to run
//! (e.g. `silent/l37`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cryprot_net::metrics::{CommLayerData, new_comm_layer};
use fusion_core::ring::Ring;
use fusion_ot::{Iknp, OtConfig, OtEngine, OtFlavour, Role, Silent};
use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};
use tokio::runtime::Runtime;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Clone, Copy)]
enum Op {
    Drelu,
    Relu,
    Truncate,
    TruncateExact,
    ReluTruncate,
    Mul,
    Square,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Drelu => "drelu",
            Op::Relu => "relu",
            Op::Truncate => "truncate_f12",
            Op::TruncateExact => "truncate_exact_f12",
            Op::ReluTruncate => "relu_truncate_f12",
            Op::Mul => "mul",
            Op::Square => "square",
        }
    }
}

const OPS: [Op; 7] = [
    Op::Drelu,
    Op::Relu,
    Op::Truncate,
    Op::TruncateExact,
    Op::ReluTruncate,
    Op::Mul,
    Op::Square,
];

struct Inputs {
    a: Vec<u64>,
    b: Vec<u64>,
    /// Shares of values in [-2^{l-2}, 2^{l-2}) for the bounded truncation.
    ta: Vec<u64>,
    tb: Vec<u64>,
}

struct Row {
    id: String,
    elems: usize,
    /// Bytes written by server and client (everything, OT generation included).
    total: (u64, u64),
    /// Protocol-message bytes, both directions (excluding OT generation).
    protocol: u64,
    flights: u64,
    rots: u64,
    secs: f64,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether a benchmark id passes the `FUSION_OT_BENCH_FILTER` substring filter.
fn selected(id: &str) -> bool {
    std::env::var("FUSION_OT_BENCH_FILTER").map_or(true, |f| id.contains(&f))
}

/// The byte counter: a `cryprot_net::metrics` layer as the global tracing
/// subscriber. It counts the writes inside the two per-party spans of a
/// measurement; writes outside any such span (the timed runs) are ignored.
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

    /// Bytes written by each party while `fa` / `fb` run on `rt`.
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

/// The two parties' halves of one operation, as separate futures.
fn both_halves<'a, F: OtFlavour>(
    op: Op,
    s: &'a mut OtEngine<F>,
    c: &'a mut OtEngine<F>,
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
        Op::Drelu => halves!(s.drelu(&inp.a), c.drelu(&inp.b)),
        Op::Relu => halves!(s.relu(&inp.a), c.relu(&inp.b)),
        Op::Truncate => halves!(s.truncate(&inp.ta, 12), c.truncate(&inp.tb, 12)),
        Op::TruncateExact => halves!(s.truncate_exact(&inp.a, 12), c.truncate_exact(&inp.b, 12)),
        Op::ReluTruncate => halves!(s.relu_truncate(&inp.a, 12), c.relu_truncate(&inp.b, 12)),
        // x = y = a + b: the server passes (a, b), the client (b, a).
        Op::Mul => halves!(s.mul(&inp.a, &inp.b), c.mul(&inp.b, &inp.a)),
        Op::Square => halves!(s.square(&inp.a), c.square(&inp.b)),
    }
}

fn bench_flavour<F: OtFlavour>(
    c: &mut Criterion,
    rt: &Runtime,
    meter: &Meter,
    l: u32,
    rows: &mut Vec<Row>,
) {
    let ids: Vec<(Op, String)> = OPS
        .iter()
        .map(|&op| (op, format!("{}/l{l}/{}", F::NAME, op.name())))
        .filter(|(_, id)| selected(id))
        .collect();
    if ids.is_empty() {
        return;
    }
    let n = env_usize("FUSION_OT_BENCH_N", 1 << 15);
    let ring = Ring::new(l).unwrap();
    let cfg = OtConfig {
        min_refill: 1,
        ..OtConfig::default()
    };
    let (mut s, mut cl) = rt.block_on(async {
        let (c0, c1) = cryprot_net::testing::local_conn().await.unwrap();
        let mut r0 = ChaCha20Rng::seed_from_u64(1);
        let mut r1 = ChaCha20Rng::seed_from_u64(2);
        tokio::try_join!(
            OtEngine::<F>::setup_with(c0, Role::Server, ring, cfg, &mut r0),
            OtEngine::<F>::setup_with(c1, Role::Client, ring, cfg, &mut r1),
        )
        .unwrap()
    });
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let xs: Vec<u64> = (0..n).map(|_| ring.random(&mut rng)).collect();
    let q = 1i64 << (l - 2);
    let ts: Vec<u64> = (0..n)
        .map(|_| ring.from_signed(rng.random_range(-q..q)))
        .collect();
    let split = |v: &[u64], rng: &mut ChaCha20Rng| -> (Vec<u64>, Vec<u64>) {
        v.iter().map(|&x| ring.share(x, rng)).unzip()
    };
    let (a, b) = split(&xs, &mut rng);
    let (ta, tb) = split(&ts, &mut rng);
    let inp = Inputs { a, b, ta, tb };

    let mut group = c.benchmark_group(format!("{}/l{l}", F::NAME));
    for (op, id) in ids {
        // Bytes and counters of one call.
        let before = s.stats();
        let t = Instant::now();
        let total = {
            let (fa, fb) = both_halves(op, &mut s, &mut cl, &inp);
            meter.measure(rt, fa, fb)
        };
        let secs = t.elapsed().as_secs_f64();
        let after = s.stats();
        rows.push(Row {
            id,
            elems: n,
            total,
            protocol: (after.bytes_sent - before.bytes_sent)
                + (after.bytes_received - before.bytes_received),
            flights: after.flights - before.flights,
            rots: (after.rots_as_sender - before.rots_as_sender)
                + (after.rots_as_receiver - before.rots_as_receiver),
            secs,
        });
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
}

/// Raw ROT generation of one OT instance (one direction): the resource every
/// protocol consumes.
fn bench_rots<F: OtFlavour>(c: &mut Criterion, rt: &Runtime, meter: &Meter, rows: &mut Vec<Row>) {
    let id = format!("{}/rot/rot_generation", F::NAME);
    if !selected(&id) {
        return;
    }
    let count = env_usize("FUSION_OT_BENCH_ROTS", 1 << 20).next_multiple_of(128);
    let (mut snd, mut rcv) = rt.block_on(async {
        let (c0, c1) = cryprot_net::testing::local_conn().await.unwrap();
        let mut r = ChaCha20Rng::seed_from_u64(4);
        (F::sender(c0, &mut r), F::receiver(c1, &mut r))
    });
    let mut r = ChaCha20Rng::seed_from_u64(5);
    // Warm up: base OTs.
    rt.block_on(async {
        tokio::try_join!(F::send(&mut snd, 128), F::receive(&mut rcv, 128, &mut r)).unwrap()
    });
    let t = Instant::now();
    let total = meter.measure(
        rt,
        async { F::send(&mut snd, count).await.unwrap() },
        async { F::receive(&mut rcv, count, &mut r).await.unwrap() },
    );
    rows.push(Row {
        id,
        elems: count,
        total,
        protocol: 0,
        flights: 0,
        rots: count as u64,
        secs: t.elapsed().as_secs_f64(),
    });
    let mut group = c.benchmark_group(format!("{}/rot", F::NAME));
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function("rot_generation", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    tokio::try_join!(
                        F::send(&mut snd, count),
                        F::receive(&mut rcv, count, &mut r)
                    )
                    .unwrap();
                }
                t.elapsed()
            })
        })
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    // Both parties share this process: leave room for CryProt's OT workers,
    // which block a rayon thread while they wait for the network.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build_global();
    let meter = Meter::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    bench_rots::<Silent>(c, &rt, &meter, &mut rows);
    bench_rots::<Iknp>(c, &rt, &meter, &mut rows);
    for l in [37u32, 64] {
        bench_flavour::<Silent>(c, &rt, &meter, l, &mut rows);
        bench_flavour::<Iknp>(c, &rt, &meter, l, &mut rows);
    }
    println!();
    println!(
        "| benchmark | elements | bytes/elem S->C | bytes/elem C->S | bytes/elem total \
         | protocol-only bytes/elem | flights | ROTs/elem | one call (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let e = r.elems as f64;
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} | {:.3} |",
            r.id,
            r.elems,
            r.total.0 as f64 / e,
            r.total.1 as f64 / e,
            (r.total.0 + r.total.1) as f64 / e,
            r.protocol as f64 / e,
            r.flights,
            r.rots as f64 / e,
            r.secs
        );
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = all
}
criterion_main!(benches);
