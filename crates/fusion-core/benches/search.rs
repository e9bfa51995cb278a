//! Criterion bench of the paper's `Pi_Search` (and the slack-aware bound at
//! the chosen plan) for the R of the paper's Table I.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fusion_core::search::{SearchParams, search, slack_bound_for};

fn bench_search(c: &mut Criterion) {
    let mut g = c.benchmark_group("pi_search");
    for e in [3u32, 5, 7, 9, 13, 19] {
        let params = match SearchParams::with_defaults(1u64 << e) {
            Ok(p) => p,
            Err(err) => panic!("bad parameters: {err}"),
        };
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("R=2^{e}")),
            &params,
            |b, p| b.iter(|| search(black_box(p))),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("slack_bound_at_plan");
    let delta = "0.95".parse().expect("valid threshold");
    for e in [3u32, 5, 7, 9, 13, 19] {
        let params = SearchParams::with_defaults(1u64 << e).expect("valid parameters");
        let plan = search(&params).expect("a plan exists");
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("R=2^{e}")),
            &plan,
            |b, p| b.iter(|| slack_bound_for(black_box(p), delta)),
        );
    }
    g.finish();
}

criterion_group!(benches, bench_search);
criterion_main!(benches);
