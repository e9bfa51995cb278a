//! Garbling and evaluation throughput (AND gates per second) of the
//! half-gates garbler and evaluator on an AND-heavy circuit: `2^14` ReLUs on
//! additive shares mod `2^37` (`3 · 36 = 108` ANDs each, about 1.77 M ANDs).
//! No network: the state machines only.
//!
//! Two further groups feed the costing of MUSE's client-malicious defence
//! (Lehmkuhl, Mishra, Srinivasan, Popa, USENIX Security 2021;
//! docs/CLIENT-MALICIOUS.md):
//!
//! - `muse_relu_mod_p`: `2^12` ReLUs mod the 38-bit prime
//!   `p = PrimeField::ntt_friendly(2^37, 2 · 8192)` (the SIMD BFV plaintext
//!   prime of fusion-he, so that MACs and HE live in the same field), in
//!   MUSE's arrangement: the evaluator (client) supplies both its share of the
//!   ReLU input and the next layer's mask, the garbler (server) its share. The
//!   circuit's shape (ANDs, table bytes and input labels per ReLU) is printed.
//! - `gc_session`: `garble_remote` / `evaluate_remote` over a fusion-net
//!   loopback session (QUIC + TLS, IKNP for the evaluator's labels), for
//!   `2^12` ReLUs mod `2^37` (the `delphi` backend's arrangement) and for the
//!   mod-`p` circuit above: wall time per run (criterion) and, from one run,
//!   bytes per ReLU by kind ([`fusion_gc::session::GcStats`]; IKNP's ROT generation runs on
//!   CryProt's streams and is not in these figures, see
//!   `cargo bench -p fusion-ot --bench nonlinear`, `iknp/rot`).
//!
//! `cargo bench -p fusion-gc --bench gc [-- FILTER]`
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use fusion_core::field::PrimeField;
use fusion_core::ring::Ring;
use fusion_gc::circuit::{Builder, Circuit};
use fusion_gc::gadgets::relu::{relu_circuit, relu_shares_mod_p};
use fusion_gc::session::GcStats;
use fusion_gc::{Evaluator, Garbler, evaluate_remote, garble_remote};
use fusion_net::{Channel, NetConfig, local_pair};
use fusion_ot::{Iknp, OtConfig, OtEngine, Role};
use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};

const L: usize = 37;
const N: usize = 1 << 14;
/// ReLUs per circuit in the MUSE-shaped and session groups.
const N_MUSE: usize = 1 << 12;
/// Width of the mod-`p` shares (`p` has 38 bits).
const L_P: usize = 38;

fn bench(c: &mut Criterion) {
    let circuit = relu_circuit(L, N).unwrap();
    let ands = circuit.and_count() as u64;
    let gbits = vec![false; circuit.garbler_input_count()];
    let ebits = vec![true; circuit.evaluator_input_count()];
    let mut g = c.benchmark_group("half_gates");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ands));
    garble_and_evaluate(&mut g, &circuit, &gbits, &ebits, 1);
    g.finish();
}

/// Benchmarks `garble` and `evaluate` (one garbling per evaluation, with
/// the given inputs) of `circuit` in group `g`.
fn garble_and_evaluate(
    g: &mut BenchmarkGroup<'_, WallTime>,
    circuit: &Circuit,
    gbits: &[bool],
    ebits: &[bool],
    seed: u64,
) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut garbler = Garbler::new();
    g.bench_function("garble", |b| {
        b.iter(|| garbler.garble(circuit, &mut rng).unwrap());
    });
    let mut evaluator = Evaluator::new();
    g.bench_function("evaluate", |b| {
        b.iter_batched(
            || {
                let (gc, gl, pairs) = garbler
                    .garble(circuit, &mut rng)
                    .unwrap()
                    .into_parts(gbits)
                    .unwrap();
                (gc, gl, pairs.select(ebits).unwrap())
            },
            |(gc, gl, el)| evaluator.evaluate(circuit, gc, gl, el).unwrap(),
            BatchSize::PerIteration,
        );
    });
}

/// The plaintext prime of fusion-he's SIMD BFV preset `N = 8192`.
fn simd_prime() -> u64 {
    let p = PrimeField::ntt_friendly(1 << 37, 2 * 8192)
        .unwrap()
        .modulus();
    assert_eq!(64 - p.leading_zeros() as usize, L_P);
    p
}

/// `n` ReLUs mod `p` in MUSE's arrangement. Inputs: the garbler's `x_G[i]`;
/// the evaluator's `x_E[i], r[i]` (its share and the next layer's mask);
/// outputs `ReLU(x_G + x_E) − r mod p`.
fn muse_relu_circuit(n: usize, p: u64) -> Circuit {
    let mut b = Builder::new();
    let xg: Vec<_> = (0..n).map(|_| b.garbler_inputs(L_P)).collect();
    for x_g in &xg {
        let x_e = b.evaluator_inputs(L_P);
        let r = b.evaluator_inputs(L_P);
        let z = relu_shares_mod_p(&mut b, x_g, &x_e, &r, p).unwrap();
        b.outputs(&z);
    }
    b.finish()
}

/// Little-endian bits of `values`, `l` bits each.
fn bits(values: &[u64], l: usize) -> Vec<bool> {
    values
        .iter()
        .flat_map(|&v| (0..l).map(move |i| (v >> i) & 1 == 1))
        .collect()
}

/// Garbler and evaluator input bits of the MUSE-shaped circuit for
/// `n` random values mod `p`, checking the circuit in the clear on them.
fn muse_inputs(circuit: &Circuit, n: usize, p: u64) -> (Vec<bool>, Vec<bool>) {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let x: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
    let xg: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
    let r: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
    let xe: Vec<u64> = x.iter().zip(&xg).map(|(&x, &g)| (x + p - g) % p).collect();
    let ev: Vec<u64> = xe.iter().zip(&r).flat_map(|(&e, &r)| [e, r]).collect();
    let (gb, eb) = (bits(&xg, L_P), bits(&ev, L_P));
    let out = circuit.eval_plain(&gb, &eb).unwrap();
    for (i, (zb, (&x, &r))) in out.chunks(L_P).zip(x.iter().zip(&r)).enumerate() {
        let z: u64 = zb.iter().enumerate().map(|(k, &b)| u64::from(b) << k).sum();
        let relu = if x > (p - 1) / 2 { 0 } else { x };
        assert_eq!((z + r) % p, relu, "ReLU mod p, element {i}");
    }
    (gb, eb)
}

fn muse(c: &mut Criterion) {
    let p = simd_prime();
    let circuit = muse_relu_circuit(N_MUSE, p);
    let (gbits, ebits) = muse_inputs(&circuit, N_MUSE, p);
    let per = |x: usize| x as f64 / N_MUSE as f64;
    let ring_relu = relu_circuit(L, N_MUSE).unwrap();
    println!(
        "muse_relu_mod_p: p = {p} ({L_P} bits), {N_MUSE} ReLUs: {:.1} ANDs/ReLU, \
         {:.1} table bytes/ReLU, {:.1} garbler labels/ReLU ({:.1} B), \
         {:.1} evaluator input bits/ReLU, {:.1} output bits/ReLU; \
         ring mod 2^{L}: {:.1} ANDs/ReLU, {:.1} evaluator input bits/ReLU",
        per(circuit.and_count()),
        per(circuit.table_bytes()),
        per(circuit.garbler_input_count()),
        per(16 * circuit.garbler_input_count()),
        per(circuit.evaluator_input_count()),
        per(circuit.output_count()),
        per(ring_relu.and_count()),
        per(ring_relu.evaluator_input_count()),
    );
    let mut g = c.benchmark_group("muse_relu_mod_p");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N_MUSE as u64));
    garble_and_evaluate(&mut g, &circuit, &gbits, &ebits, 2);
    g.finish();
}

/// Both parties of one loopback fusion-net session (QUIC + TLS): IKNP OT
/// engines and a garbled-circuit channel each.
struct Parties {
    ot_g: OtEngine<Iknp>,
    ot_e: OtEngine<Iknp>,
    ch_g: Channel,
    ch_e: Channel,
    garbler: Garbler,
    evaluator: Evaluator,
    _sessions: (fusion_net::Session, fusion_net::Session),
}

async fn parties() -> Parties {
    let (mut srv, mut cli) = local_pair(&NetConfig::default()).await.unwrap();
    let ring = Ring::new(L as u32).unwrap();
    let cfg = OtConfig {
        min_refill: 1 << 16,
        ..OtConfig::default()
    };
    let (mut r0, mut r1) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let (ot_g, ot_e) = tokio::try_join!(
        OtEngine::<Iknp>::setup_on(srv.sub_connection(), None, Role::Server, ring, cfg, &mut r0),
        OtEngine::<Iknp>::setup_on(cli.sub_connection(), None, Role::Client, ring, cfg, &mut r1),
    )
    .unwrap();
    let (mut cs, mut cc) = (srv.sub_connection(), cli.sub_connection());
    let (ch_g, ch_e) = tokio::try_join!(
        Channel::open(&mut cs, None, srv.message_config()),
        Channel::open(&mut cc, None, cli.message_config()),
    )
    .unwrap();
    Parties {
        ot_g,
        ot_e,
        ch_g,
        ch_e,
        garbler: Garbler::new(),
        evaluator: Evaluator::new(),
        _sessions: (srv, cli),
    }
}

impl Parties {
    /// One garbled-circuit run; returns the garbler's statistics and the
    /// wall time.
    async fn run(
        &mut self,
        circuit: &Circuit,
        gbits: &[bool],
        ebits: &[bool],
    ) -> (GcStats, Duration) {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let t = Instant::now();
        let (sg, _) = tokio::try_join!(
            garble_remote(
                &mut self.ch_g,
                &mut self.ot_g,
                &mut self.garbler,
                circuit,
                gbits,
                &mut rng
            ),
            evaluate_remote(
                &mut self.ch_e,
                &mut self.ot_e,
                &mut self.evaluator,
                circuit,
                ebits
            ),
        )
        .unwrap();
        (sg, t.elapsed())
    }
}

fn session(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build_global();
    let p = simd_prime();
    let ring_circuit = relu_circuit(L, N_MUSE).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let ring_g = vec![false; ring_circuit.garbler_input_count()];
    let ring_e: Vec<bool> = (0..ring_circuit.evaluator_input_count())
        .map(|_| rng.random())
        .collect();
    let muse_circuit = muse_relu_circuit(N_MUSE, p);
    let (muse_g, muse_e) = muse_inputs(&muse_circuit, N_MUSE, p);
    // Set up on first use only: criterion calls a closure only when its id
    // passes the command line's filter.
    let mut state: Option<Parties> = None;
    let mut g = c.benchmark_group("gc_session");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N_MUSE as u64));
    for (name, circuit, gbits, ebits) in [
        ("relu_mod_2p37_delphi", &ring_circuit, &ring_g, &ring_e),
        ("relu_mod_p_muse_shape", &muse_circuit, &muse_g, &muse_e),
    ] {
        let mut printed = false;
        g.bench_function(name, |b| {
            let parties = state.get_or_insert_with(|| rt.block_on(parties()));
            if !printed {
                printed = true;
                let (s, t) = rt.block_on(parties.run(circuit, gbits, ebits));
                let n = N_MUSE as f64;
                println!(
                    "gc_session/{name}: {N_MUSE} ReLUs, one run {:.3} s; per ReLU: tables {:.1} B, \
                     garbler labels {:.1} B, decoding {:.2} B, header+framing {:.3} B, \
                     OT transfers {:.1}, OT messages {:.1} B (IKNP ROT generation not included)",
                    t.as_secs_f64(),
                    s.table_bytes as f64 / n,
                    s.garbler_label_bytes as f64 / n,
                    s.decoding_bytes as f64 / n,
                    (s.header_bytes + s.framing_bytes()) as f64 / n,
                    s.ot_transfers as f64 / n,
                    s.ot_message_bytes as f64 / n,
                );
            }
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += parties.run(circuit, gbits, ebits).await.1;
                    }
                    total
                })
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench, muse, session);
criterion_main!(benches);
