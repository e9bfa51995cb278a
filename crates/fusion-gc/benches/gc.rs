//! Garbling and evaluation throughput (AND gates per second) of the
//! half-gates garbler and evaluator on an AND-heavy circuit: `2^14` ReLUs on
//! additive shares mod `2^37` (`3 · 36 = 108` ANDs each, about 1.77 M ANDs).
//! No network: the state machines only.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fusion_gc::gadgets::relu::relu_circuit;
use fusion_gc::{Evaluator, Garbler};
use rand::{SeedableRng, rngs::ChaCha20Rng};

const L: usize = 37;
const N: usize = 1 << 14;

fn bench(c: &mut Criterion) {
    let circuit = relu_circuit(L, N).unwrap();
    let ands = circuit.and_count() as u64;
    let gbits = vec![false; circuit.garbler_input_count()];
    let ebits = vec![true; circuit.evaluator_input_count()];
    let mut g = c.benchmark_group("half_gates");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ands));
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut garbler = Garbler::new();
    g.bench_function("garble", |b| {
        b.iter(|| garbler.garble(&circuit, &mut rng).unwrap());
    });
    let mut evaluator = Evaluator::new();
    g.bench_function("evaluate", |b| {
        b.iter_batched(
            || {
                let (gc, gl, pairs) = garbler
                    .garble(&circuit, &mut rng)
                    .unwrap()
                    .into_parts(&gbits)
                    .unwrap();
                (gc, gl, pairs.select(&ebits).unwrap())
            },
            |(gc, gl, el)| evaluator.evaluate(&circuit, gc, gl, el).unwrap(),
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
