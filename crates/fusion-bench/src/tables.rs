//! `fusion-bench tables`: the shape of the Fusion paper's Tables II-IV, the
//! LevioSA comparison and Table VI, under the emulated `lan` / `wan` links.
//!
//! * **Tables II-IV** (`queries`): Fusion on the MNIST CNN — the zoo's
//!   `cnn-mnist` (Delphi/MiniONN shape, seeded random weights; not the shipped
//!   trained `mnist-cnn` model) — and on the CIFAR-10-shaped `cnn-cifar10`
//!   (synthetic inputs), for `R` in `--queries` (default `2^3, 2^5, 2^7, 2^9,
//!   2^11`) with `(B, T)` from `fusion_core::search` (the paper's bound,
//!   lambda 40, beta 100): `N = RB + T` samples in one batch.
//! * **LevioSA** (`leviosa`): `timit-dnn` with `R = 1845, B = 5, T = 100`
//!   (`N = 9325`).
//! * **Table VI** (`resnet`): `resnet50`, one sample per link, then per query
//!   for the same `R` as above.
//!
//! **Measured vs extrapolated.** A full `N` is far too large for a 2-core
//! machine, so each (network, link) is measured at a few small batch sizes
//! (`--batches-*`), time and bytes are fitted as `a + b n`
//! ([`crate::fit::LinearFit`]; one batch size: through the origin), and every
//! cell whose `N` (or `R`, for the baseline) was not itself measured is
//! evaluated from the fit and marked **extrapolated**. Setup (connect, HE
//! keys, OT) is one-time and reported apart. The **semi-honest baseline** is
//! the same engine on the `R` queries alone (no Fusion); Fusion's overhead is
//! `N / R` in samples, and the measured cost ratio is shown next to it.
//!
//! **Budget.** `--budget-s` bounds the whole run: each measurement gets the
//! remaining time as its limit, and measurements that no longer fit are
//! skipped (their rows are missing, and the run says so). ResNet50 runs one
//! sample if it fits in the remaining budget; extrapolating from a subset of
//! its layers is not implemented.

use std::path::PathBuf;
use std::time::Instant;

use fusion_core::search::{SearchParams, search};

use crate::error::{BenchError, Result};
use crate::fit::LinearFit;
use crate::infer::{InferOptions, InferResult, LinkKind, run_infer};
use crate::machine::{Machine, command_line, timestamp};
use crate::record::{Record, Sink, Table, TableRow};

/// Options of `fusion-bench tables`.
#[derive(Debug, Clone, clap::Args)]
pub struct TablesOptions {
    /// Emulated links, comma separated.
    #[arg(
        long,
        value_name = "LINK,...",
        value_delimiter = ',',
        default_value = "lan,wan"
    )]
    pub links: Vec<LinkKind>,
    /// Parts to run: queries (Tables II-IV), leviosa, resnet (Table VI).
    #[arg(
        long,
        value_name = "PART,...",
        value_delimiter = ',',
        default_value = "queries,leviosa,resnet"
    )]
    pub parts: Vec<String>,
    /// Time budget of the whole run in seconds.
    #[arg(long, value_name = "S", default_value_t = 14_400.0)]
    pub budget_s: f64,
    /// Numbers of queries R of Tables II-IV and VI.
    #[arg(
        long,
        value_name = "R,...",
        value_delimiter = ',',
        default_value = "8,32,128,512,8192,524288"
    )]
    pub queries: Vec<u64>,
    /// Batch sizes measured for cnn-mnist.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "8,32"
    )]
    pub batches_mnist: Vec<usize>,
    /// Batch sizes measured for cnn-cifar10.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "4,16"
    )]
    pub batches_cifar: Vec<usize>,
    /// Batch sizes measured for timit-dnn.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "2,8"
    )]
    pub batches_timit: Vec<usize>,
    /// Batch sizes measured for resnet50.
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_value = "1")]
    pub batches_resnet: Vec<usize>,
    /// Backends to measure, comma separated (`fusion backends`); every
    /// (backend, link, network) is measured and fitted on its own.
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        default_value = "cheetah"
    )]
    pub backends: Vec<String>,
    /// Seed of weights and inputs.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Output file (JSON Lines, appended).
    #[arg(long, value_name = "FILE", default_value = "results/tables.jsonl")]
    pub out: PathBuf,
    /// Measured batches of an earlier run (a results file or directory):
    /// a batch with the same backend, network, link, size and seed is taken
    /// from there (and copied to `--out`) instead of measured again, so the
    /// cells of other query counts come from the same measurements.
    #[arg(long, value_name = "FILE")]
    pub reuse: Option<PathBuf>,
}

/// One measured batch: samples, seconds, bytes, setup seconds, setup bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Samples.
    pub n: usize,
    /// Batch seconds.
    pub seconds: f64,
    /// Batch bytes (both directions).
    pub bytes: f64,
    /// Setup seconds.
    pub setup_s: f64,
    /// Setup bytes.
    pub setup_bytes: f64,
}

impl From<&InferResult> for Point {
    fn from(r: &InferResult) -> Self {
        Point {
            n: r.batch,
            seconds: r.wall_s,
            bytes: r.bytes_total as f64,
            setup_s: r.setup_s,
            setup_bytes: r.setup_bytes as f64,
        }
    }
}

/// A layout `(R, B, T)`.
pub type Layout = (u64, u64, u64);

/// The paper-bound layouts for `queries` (lambda 40, beta 100).
pub fn search_layouts(queries: &[u64]) -> Result<Vec<Layout>> {
    queries
        .iter()
        .map(|&r| {
            let p = search(
                &SearchParams::with_defaults(r).map_err(|e| BenchError::Usage(e.to_string()))?,
            )
            .map_err(|e| BenchError::Usage(e.to_string()))?;
            Ok((p.queries, p.copies, p.public))
        })
        .collect()
}

/// The rows of one (table, backend, network, link) from its measured points.
#[allow(clippy::too_many_arguments)]
pub fn rows_from_points(
    table: Table,
    backend: &str,
    net: &str,
    link: &str,
    points: &[Point],
    layouts: &[Layout],
    note: &str,
) -> Vec<TableRow> {
    let time = LinearFit::fit(
        &points
            .iter()
            .map(|p| (p.n as f64, p.seconds))
            .collect::<Vec<_>>(),
    );
    let bytes = LinearFit::fit(
        &points
            .iter()
            .map(|p| (p.n as f64, p.bytes))
            .collect::<Vec<_>>(),
    );
    let (Some(tf), Some(bf)) = (time, bytes) else {
        return Vec::new();
    };
    let k = points.len().max(1) as f64;
    let setup_s = points.iter().map(|p| p.setup_s).sum::<f64>() / k;
    let setup_bytes = points.iter().map(|p| p.setup_bytes).sum::<f64>() / k;
    let measured: Vec<usize> = points.iter().map(|p| p.n).collect();
    // A measured size uses its own figures (mean over its runs), not the fit.
    let cell = |n: u64, f: &LinearFit, pick: fn(&Point) -> f64| -> (f64, bool) {
        let hits: Vec<f64> = points
            .iter()
            .filter(|p| p.n as u64 == n)
            .map(pick)
            .collect();
        if hits.is_empty() {
            (f.at(n as f64), true)
        } else {
            (hits.iter().sum::<f64>() / hits.len() as f64, false)
        }
    };
    layouts
        .iter()
        .map(|&(r, b, t)| {
            let total = r * b + t;
            let (fusion_s, e1) = cell(total, &tf, |p| p.seconds);
            let (fusion_bytes, _) = cell(total, &bf, |p| p.bytes);
            let (baseline_s, e2) = cell(r, &tf, |p| p.seconds);
            let (baseline_bytes, _) = cell(r, &bf, |p| p.bytes);
            TableRow {
                table,
                backend: backend.into(),
                net: net.into(),
                link: link.into(),
                queries: r,
                copies: b,
                public: t,
                total,
                overhead: total as f64 / r as f64,
                baseline_s,
                baseline_bytes,
                fusion_s,
                fusion_bytes,
                per_query_s: fusion_s / r as f64,
                per_query_bytes: fusion_bytes / r as f64,
                setup_s,
                setup_bytes,
                extrapolated: e1,
                baseline_extrapolated: e2,
                measured_batches: measured.clone(),
                time_fit: Some(tf),
                bytes_fit: Some(bf),
                note: note.into(),
                machine: Machine::current(),
                timestamp: timestamp(),
                command: command_line(),
            }
        })
        .collect()
}

/// One (table, network) to measure: batch sizes, layouts and a note.
type Job<'a> = (Table, &'a str, &'a [usize], Vec<Layout>, &'a str);

struct Budget {
    start: Instant,
    total: f64,
}

impl Budget {
    fn remaining(&self) -> f64 {
        self.total - self.start.elapsed().as_secs_f64()
    }
}

#[allow(clippy::too_many_arguments)]
fn measure(
    o: &TablesOptions,
    reuse: &[InferResult],
    sink: &mut Sink,
    budget: &Budget,
    backend: &str,
    net: &str,
    link: LinkKind,
    batches: &[usize],
    skipped: &mut Vec<String>,
) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for &n in batches {
        if let Some(r) = reuse.iter().rev().find(|r| {
            r.backend == backend
                && r.net == net
                && r.link == link.name()
                && r.batch == n
                && r.seed == o.seed
                && r.output_mode == "logits"
        }) {
            eprintln!(
                "fusion-bench: {backend} {net} batch {n} over {}: reused ({:.3} s, {:.1} KiB)",
                link.name(),
                r.wall_s,
                r.bytes_total as f64 / 1024.0
            );
            points.push(Point::from(r));
            sink.write(&Record::Infer(Box::new(r.clone())))?;
            continue;
        }
        let left = budget.remaining();
        if left < 10.0 {
            skipped.push(format!(
                "{backend} {net} batch {n} over {}: budget exhausted",
                link.name()
            ));
            continue;
        }
        let mut io = InferOptions::new(net, n);
        io.backend = backend.to_string();
        io.link = link;
        io.seed = o.seed;
        io.timeout = left.ceil() as u64;
        if net == "timit-dnn" {
            // Three square activations: at l = 37, f = 12 the fixed-point
            // error is a few percent of the logits; 64 bits with f = 20 keep
            // it below 0.2% (fusion-nn's `timit_dnn_squares_stay_in_range`),
            // and SPU's peer runs 64-bit rings too.
            io.ring_bits = 64;
            io.frac_bits = 20;
        }
        match run_infer(&io) {
            Ok(r) => {
                eprintln!(
                    "fusion-bench: {backend} {net} batch {n} over {}: {:.3} s, {:.1} KiB, agreement {:.3}",
                    link.name(),
                    r.wall_s,
                    r.bytes_total as f64 / 1024.0,
                    r.argmax_agreement
                );
                points.push(Point::from(&r));
                sink.write(&Record::Infer(Box::new(r)))?;
            }
            Err(e) => {
                eprintln!(
                    "fusion-bench: {backend} {net} batch {n} over {}: {e}",
                    link.name()
                );
                skipped.push(format!(
                    "{backend} {net} batch {n} over {}: {e}",
                    link.name()
                ));
            }
        }
    }
    Ok(points)
}

/// Runs the tables; returns the rows (also appended to `--out`) and the list
/// of skipped measurements.
pub fn run_tables(o: &TablesOptions) -> Result<(Vec<TableRow>, Vec<String>)> {
    for p in &o.parts {
        if !["queries", "leviosa", "resnet"].contains(&p.as_str()) {
            return Err(BenchError::Usage(format!(
                "unknown part `{p}` (queries, leviosa, resnet)"
            )));
        }
    }
    if o.backends.is_empty() {
        return Err(BenchError::Usage(
            "--backends: name at least one backend".into(),
        ));
    }
    for b in &o.backends {
        fusion_engine::backends::by_name(b).map_err(|e| BenchError::Usage(e.to_string()))?;
    }
    let layouts = search_layouts(&o.queries)?;
    let reuse: Vec<InferResult> = match &o.reuse {
        Some(p) => crate::record::read_records(p)?
            .into_iter()
            .filter_map(|r| match r {
                Record::Infer(i) => Some(*i),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    };
    let mut sink = Sink::open(&o.out)?;
    let budget = Budget {
        start: Instant::now(),
        total: o.budget_s,
    };
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let has = |p: &str| o.parts.iter().any(|x| x == p);
    let mut jobs: Vec<Job<'_>> = Vec::new();
    if has("queries") {
        jobs.push((
            Table::Queries,
            "cnn-mnist",
            &o.batches_mnist,
            layouts.clone(),
            "zoo cnn-mnist (seeded random weights, synthetic inputs)",
        ));
        jobs.push((
            Table::Queries,
            "cnn-cifar10",
            &o.batches_cifar,
            layouts.clone(),
            "zoo cnn-cifar10: CIFAR-10-shaped variant, synthetic inputs",
        ));
    }
    if has("leviosa") {
        jobs.push((
            Table::Leviosa,
            "timit-dnn",
            &o.batches_timit,
            vec![(1845, 5, 100)],
            "LevioSA setting: R = 1845, B = 5, T = 100 (fixed, not searched); l = 64, f = 20",
        ));
    }
    if has("resnet") {
        jobs.push((
            Table::Resnet,
            "resnet50",
            &o.batches_resnet,
            layouts.clone(),
            "ResNet-50 v1.5, full network; per-sample cost scaled linearly (fit through the origin when one batch size)",
        ));
    }
    for backend in &o.backends {
        for &link in &o.links {
            for (table, net, batches, lay, note) in &jobs {
                let points = measure(
                    o,
                    &reuse,
                    &mut sink,
                    &budget,
                    backend,
                    net,
                    link,
                    batches,
                    &mut skipped,
                )?;
                let new = rows_from_points(*table, backend, net, link.name(), &points, lay, note);
                for r in &new {
                    sink.write(&Record::Table(r.clone()))?;
                }
                rows.extend(new);
            }
        }
    }
    Ok((rows, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(n: usize, s: f64, b: f64) -> Point {
        Point {
            n,
            seconds: s,
            bytes: b,
            setup_s: 1.0,
            setup_bytes: 100.0,
        }
    }

    #[test]
    fn rows_extrapolate_linearly_and_flag_unmeasured_cells() {
        let points = [pt(8, 3.0, 800.0), pt(32, 9.0, 2000.0)];
        let rows = rows_from_points(
            Table::Queries,
            "cheetah",
            "cnn-mnist",
            "lan",
            &points,
            &[(8, 4, 100), (1, 2, 30)],
            "",
        );
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(r.total, 132);
        // time = 1 + 0.25 n, bytes = 400 + 50 n
        assert!((r.fusion_s - 34.0).abs() < 1e-9);
        assert!((r.fusion_bytes - 7000.0).abs() < 1e-6);
        assert!((r.baseline_s - 3.0).abs() < 1e-12, "R = 8 was measured");
        assert!(!r.baseline_extrapolated);
        assert!((r.per_query_s - 34.0 / 8.0).abs() < 1e-12);
        assert!((r.overhead - 16.5).abs() < 1e-12);
        assert!(r.extrapolated);
        assert_eq!(r.measured_batches, vec![8, 32]);
        // N = 32 was measured: its own figures, not extrapolated (R = 1 is).
        let r = &rows[1];
        assert_eq!(r.total, 32);
        assert!((r.fusion_s - 9.0).abs() < 1e-12);
        assert!((r.baseline_s - 1.25).abs() < 1e-9);
        assert!(!r.extrapolated && r.baseline_extrapolated);
        assert_eq!(r.backend, "cheetah");
        assert!(
            rows_from_points(Table::Resnet, "aby", "x", "lan", &[], &[(1, 2, 3)], "").is_empty()
        );
    }

    #[test]
    fn search_layouts_follow_the_paper_bound() {
        let l = search_layouts(&[8, 1845]).expect("layouts");
        for &(r, b, t) in &l {
            assert!(b >= 2 && t >= 100, "({r}, {b}, {t})");
        }
        assert_eq!(l[0].0, 8);
    }
}
