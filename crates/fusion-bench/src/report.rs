//! `fusion-bench report`: renders the JSON Lines results as Markdown tables
//! and SVG charts (`BENCHMARKS.md`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Result, io};
use crate::machine::{Machine, timestamp};
use crate::paper;
use crate::record::{CompareRow, Record, Table, TableRow, read_records};
use crate::svg;

/// Options of `fusion-bench report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportOptions {
    /// Results directory (every `*.jsonl` in it) or one results file.
    #[arg(long = "in", value_name = "DIR", default_value = "results")]
    pub input: PathBuf,
    /// The Markdown file to write.
    #[arg(long, value_name = "FILE", default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// Where the SVG charts go (linked from the Markdown).
    #[arg(long, value_name = "DIR", default_value = "docs/bench")]
    pub svg_dir: PathBuf,
    /// A Markdown file appended as the closing note (where we stand).
    #[arg(long, value_name = "FILE")]
    pub note: Option<PathBuf>,
}

/// The criterion per-layer benches of the workspace and what they measure.
pub const CRITERION_BENCHES: [(&str, &str); 4] = [
    (
        "cargo bench -p fusion-core --bench search",
        "`Pi_Search` (paper Fig. 4) for the R of the paper's Table I, and the slack-aware bound at the chosen plan (criterion)",
    ),
    (
        "cargo bench -p fusion-ot --bench nonlinear",
        "OT non-linear layers end to end (ROT generation included), both parties over a local QUIC connection, silent OT vs IKNP, l = 37 and 64: ReLU, truncations, pools, square, raw ROT generation; throughput (criterion) plus a bytes-per-element table (`FUSION_OT_BENCH_N`, `FUSION_OT_BENCH_FILTER`)",
    ),
    (
        "cargo bench -p fusion-ot --bench link",
        "ReLU over fusion-net sessions through the LAN / WAN link emulator: round cost and the OT flavours' bandwidth cost (plain timing, median of 3; not criterion)",
    ),
    (
        "cargo bench -p fusion-he --bench linear",
        "RLWE linear layers at l = 37 (N = 4096; `FUSION_HE_L=64` for N = 8192): FC 784->128 at batch 128, cnn-mnist conv1, LeNet conv2, split into client encrypt / server respond / client decrypt and end to end over local QUIC, bytes per direction; `-- packing` compares reply packing on the mlp-mnist and cnn-mnist layers (criterion)",
    ),
];

fn kib(b: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b >= 10.0 * 1024.0 * MIB {
        format!("{:.1} GiB", b / 1024.0 / MIB)
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

fn secs(s: f64) -> String {
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

/// Relative link from the Markdown file's directory to `target`.
fn rel_link(md: &Path, target: &Path) -> String {
    let base = md.parent().unwrap_or(Path::new(""));
    let base = std::fs::canonicalize(if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    });
    let tgt = target
        .parent()
        .and_then(|p| {
            std::fs::canonicalize(if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            })
            .ok()
        })
        .map(|p| p.join(target.file_name().unwrap_or_default()));
    match (base, tgt) {
        (Ok(b), Some(t)) => t
            .strip_prefix(&b)
            .map_or_else(|_| t.display().to_string(), |r| r.display().to_string()),
        _ => target.display().to_string(),
    }
}

/// The rendered Markdown and the SVG files (path, content) it links.
pub struct Rendered {
    /// `BENCHMARKS.md` text.
    pub markdown: String,
    /// Charts to write.
    pub charts: Vec<(PathBuf, String)>,
}

/// Tables II-III with the backends side by side: per network and `(R, B)`,
/// each backend's Fusion bytes and LAN/WAN seconds beside the paper's, and
/// our bytes over the paper's, and a chart of bytes per sample (log scale,
/// one bar per backend). Rendered when the records hold `Queries` rows of
/// more than one backend.
fn backends_side_by_side(
    md: &mut String,
    tables: &[&TableRow],
    out: &Path,
    svg_dir: &Path,
    charts: &mut Vec<(PathBuf, String)>,
) {
    let rows: Vec<&&TableRow> = tables
        .iter()
        .filter(|t| t.table == Table::Queries)
        .collect();
    let mut backends: Vec<&str> = rows.iter().map(|r| r.backend.as_str()).collect();
    backends.sort_unstable();
    backends.dedup();
    if backends.len() < 2 {
        return;
    }
    // The paper's column order, then any others.
    backends.sort_by_key(|b| paper::BACKENDS.iter().position(|x| x == b).unwrap_or(99));
    let mut nets: Vec<&str> = rows.iter().map(|r| r.net.as_str()).collect();
    nets.sort_unstable();
    nets.dedup();
    for net in nets {
        let title = paper::table_name(net).unwrap_or(net);
        let _ = writeln!(
            md,
            "## {title}: the backends side by side\n\nFusion (`N = RB + T` samples in one batch, setup excluded) on `{net}`, each backend measured at the batch sizes of its rows in the table above and fitted per link; *(extrap.)* marks cells evaluated from the fit. `paper` is the published cell (MiB, seconds; `fusion_bench::paper`), `x` our bytes over the paper's.\n"
        );
        let _ = writeln!(
            md,
            "| R | B | N | backend | bytes | LAN | WAN | paper MiB | paper LAN | paper WAN | x bytes |"
        );
        let _ = writeln!(
            md,
            "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        let mut layouts: Vec<(u64, u64, u64)> = rows
            .iter()
            .filter(|r| r.net == net)
            .map(|r| (r.queries, r.copies, r.total))
            .collect();
        layouts.sort_unstable();
        layouts.dedup();
        for (r, b, n) in layouts {
            for backend in &backends {
                let find = |link: &str| {
                    rows.iter().find(|x| {
                        x.net == net
                            && x.backend == *backend
                            && x.link == link
                            && x.queries == r
                            && x.copies == b
                    })
                };
                let (lan, wan) = (find("lan"), find("wan"));
                let Some(any) = lan.or(wan) else { continue };
                let mark = |x: Option<&&&TableRow>| match x {
                    Some(x) if x.extrapolated => " *(extrap.)*",
                    _ => "",
                };
                let time = |x: Option<&&&TableRow>| x.map_or("-".to_string(), |x| secs(x.fusion_s));
                let paper = paper::cell(net, r, b, backend);
                let _ = writeln!(
                    md,
                    "| {r} | {b} | {n} | {backend} | {}{} | {}{} | {}{} | {} | {} | {} | {} |",
                    kib(any.fusion_bytes),
                    mark(lan.or(wan)),
                    time(lan),
                    mark(lan),
                    time(wan),
                    mark(wan),
                    paper.map_or("-".into(), |p| format!("{:.4}", p.mib)),
                    paper.map_or("-".into(), |p| format!("{:.4} s", p.lan_s)),
                    paper.map_or("-".into(), |p| format!("{:.4} s", p.wan_s)),
                    paper.map_or("-".into(), |p| format!(
                        "{:.1}",
                        any.fusion_bytes / (p.mib * 1024.0 * 1024.0)
                    )),
                );
            }
        }
        // Bytes per sample of the smallest layout, per backend and link.
        let first = rows
            .iter()
            .filter(|r| r.net == net)
            .map(|r| (r.queries, r.copies))
            .min();
        if let Some((r0, b0)) = first {
            let links = ["lan", "wan"];
            let series: Vec<(String, Vec<f64>)> = backends
                .iter()
                .map(|backend| {
                    let v = links
                        .iter()
                        .map(|link| {
                            rows.iter()
                                .find(|x| {
                                    x.net == net
                                        && x.backend == *backend
                                        && x.link == *link
                                        && x.queries == r0
                                        && x.copies == b0
                                })
                                .map_or(0.0, |x| {
                                    (x.fusion_bytes / x.total.max(1) as f64 / 1024.0)
                                        .max(1.0)
                                        .log10()
                                })
                        })
                        .collect();
                    (backend.to_string(), v)
                })
                .collect();
            let name = format!("backends-{net}.svg");
            let chart = svg::bar_chart(
                &format!("{title}: Fusion bytes per sample at R = {r0}, B = {b0} (log scale)"),
                "log10 KiB per sample",
                &links.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
                &series,
            );
            let p = svg_dir.join(&name);
            let _ = writeln!(md, "\n![{name}]({})", rel_link(out, &p));
            charts.push((p, chart));
        }
        let _ = writeln!(md);
    }
}

/// Renders records (pure: no file access except for relative links).
pub fn render(records: &[Record], out: &Path, svg_dir: &Path) -> Rendered {
    let mut md = String::new();
    let mut charts = Vec::new();
    let mut machines: Vec<String> = Vec::new();
    let mut note_machine = |m: &Machine| {
        let l = m.line();
        if !machines.contains(&l) {
            machines.push(l);
        }
    };
    let compares: Vec<&CompareRow> = records
        .iter()
        .filter_map(|r| match r {
            Record::Compare(c) => Some(c),
            _ => None,
        })
        .collect();
    let tables: Vec<&TableRow> = records
        .iter()
        .filter_map(|r| match r {
            Record::Table(t) => Some(t),
            _ => None,
        })
        .collect();
    for c in &compares {
        note_machine(&c.machine);
    }
    for t in &tables {
        note_machine(&t.machine);
    }
    for r in records {
        if let Record::Infer(i) = r {
            note_machine(&i.machine);
        }
    }
    let _ = writeln!(md, "# Fusion benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `fusion-bench report` on {} from the JSON Lines results; every table names the \
         command that produced it. Machine(s): {}.\n",
        timestamp(),
        if machines.is_empty() {
            "none recorded".to_string()
        } else {
            machines.join("; ")
        }
    );
    let _ = writeln!(
        md,
        "Our figures: two OS processes (client and server party) over QUIC + TLS on 127.0.0.1, \
         optionally through fusion-net's user-space LAN/WAN relay (in the client process). Bytes are \
         QUIC wire bytes (UDP payload) of the inference batch from the client's meter; setup \
         (connect, HE keys, OT setup) is reported apart. `argmax agreement` compares the secure \
         logits with the plaintext fixed-point engine run by the client process on the same seeded \
         model: a benchmark shortcut (a real client has no weights). Weights are seeded random, \
         inputs synthetic.\n"
    );

    // ---------------------------------------------------------------- compare
    if !compares.is_empty() {
        let _ = writeln!(md, "## Side by side with SPU (Cheetah, SecretFlow 0.9.5)\n");
        let _ = writeln!(
            md,
            "Same machine, same run, alternating ours and SPU. Bytes: inference only, both \
             directions (ours: QUIC UDP payload; SPU: TCP payload of its brpc link, framing and \
             output share included); time: batch wall time on the client, median over the measured \
             batches. Ratios are ours / SPU (below 1 means we are cheaper).\n"
        );
        let mut cmds: Vec<&str> = compares.iter().map(|c| c.command.as_str()).collect();
        cmds.dedup();
        for c in cmds {
            let _ = writeln!(md, "Command: `{c}`\n");
        }
        let _ = writeln!(
            md,
            "| net | batch | round | ours time | SPU time | time ratio | ours bytes | SPU bytes | bytes ratio | ours setup | SPU setup | agreement ours / SPU |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for c in &compares {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | **{:.2}** | {} | {} | **{:.2}** | {} / {} | {} / {} | {:.3} / {} |",
                c.net,
                c.batch,
                c.round,
                secs(c.ours_wall_s),
                secs(c.spu_wall_s),
                c.wall_ratio,
                kib(c.ours_bytes as f64),
                kib(c.spu_bytes as f64),
                c.bytes_ratio,
                secs(c.ours_setup_s),
                kib(c.ours_setup_bytes as f64),
                c.spu_setup_s.map_or("-".into(), secs),
                c.spu_setup_bytes.map_or("-".into(), |b| kib(b as f64)),
                c.ours_argmax_agreement,
                c.spu_argmax_agreement
                    .map_or("-".into(), |a| format!("{a:.3}"))
            );
        }
        // Charts: mean over rounds per (net, batch).
        let mut groups: BTreeMap<(String, usize), Vec<&CompareRow>> = BTreeMap::new();
        for c in &compares {
            groups.entry((c.net.clone(), c.batch)).or_default().push(c);
        }
        let cats: Vec<String> = groups.keys().map(|(n, b)| format!("{n} x{b}")).collect();
        let mean = |v: &[&CompareRow], f: fn(&CompareRow) -> f64| {
            v.iter().map(|c| f(c)).sum::<f64>() / v.len().max(1) as f64
        };
        let g: Vec<&Vec<&CompareRow>> = groups.values().collect();
        let bytes = svg::bar_chart(
            "Inference bytes per batch: ours vs SPU",
            "MiB",
            &cats,
            &[
                (
                    "Fusion (ours)".into(),
                    g.iter()
                        .map(|v| mean(v, |c| c.ours_bytes as f64) / 1048576.0)
                        .collect(),
                ),
                (
                    "SPU Cheetah".into(),
                    g.iter()
                        .map(|v| mean(v, |c| c.spu_bytes as f64) / 1048576.0)
                        .collect(),
                ),
            ],
        );
        let time = svg::bar_chart(
            "Batch wall time: ours vs SPU",
            "seconds",
            &cats,
            &[
                (
                    "Fusion (ours)".into(),
                    g.iter().map(|v| mean(v, |c| c.ours_wall_s)).collect(),
                ),
                (
                    "SPU Cheetah".into(),
                    g.iter().map(|v| mean(v, |c| c.spu_wall_s)).collect(),
                ),
            ],
        );
        for (name, content) in [("compare-bytes.svg", bytes), ("compare-time.svg", time)] {
            let p = svg_dir.join(name);
            let _ = writeln!(md, "\n![{name}]({})", rel_link(out, &p));
            charts.push((p, content));
        }
        let _ = writeln!(md);
    }

    // ---------------------------------------------------------------- tables
    let sections = [
        (
            Table::Queries,
            "Tables II-IV shape: Fusion for R queries",
            "`(B, T)` from `fusion_core::search` (paper bound, lambda 40, beta 100), `N = RB + T`.",
        ),
        (
            Table::Leviosa,
            "LevioSA setting (TIMIT DNN)",
            "`R = 1845, B = 5, T = 100`, `N = 9325`, synthetic inputs.",
        ),
        (
            Table::Resnet,
            "Table VI shape: ResNet50 per query",
            "ResNet-50 v1.5 on `[3, 224, 224]` synthetic inputs.",
        ),
    ];
    for (table, title, about) in sections {
        let rows: Vec<&&TableRow> = tables.iter().filter(|t| t.table == table).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "## {title}\n\n{about} Cells marked *(extrap.)* are evaluated from a linear fit `a + b n` of the measured batch sizes (listed per row); the semi-honest baseline runs the `R` queries alone on the same engine. Setup is one-time and not in the cells.\n"
        );
        let mut cmds: Vec<&str> = rows.iter().map(|r| r.command.as_str()).collect();
        cmds.sort_unstable();
        cmds.dedup();
        for c in cmds {
            let _ = writeln!(md, "Command: `{c}`\n");
        }
        let _ = writeln!(
            md,
            "| backend | net | link | R | B | T | N | N/R | baseline time | baseline bytes | Fusion time | Fusion bytes | per query | per query bytes | cost ratio | setup | measured n |"
        );
        let _ = writeln!(
            md,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in &rows {
            let mark = if r.extrapolated { " *(extrap.)*" } else { "" };
            let bmark = if r.baseline_extrapolated {
                " *(extrap.)*"
            } else {
                ""
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {}{bmark} | {}{bmark} | {}{mark} | {}{mark} | {} | {} | {:.2} | {} / {} | {} |",
                r.backend,
                r.net,
                r.link,
                r.queries,
                r.copies,
                r.public,
                r.total,
                r.overhead,
                secs(r.baseline_s),
                kib(r.baseline_bytes),
                secs(r.fusion_s),
                kib(r.fusion_bytes),
                secs(r.per_query_s),
                kib(r.per_query_bytes),
                r.fusion_s / r.baseline_s.max(1e-12),
                secs(r.setup_s),
                kib(r.setup_bytes),
                r.measured_batches
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let notes: Vec<&str> = {
            let mut n: Vec<&str> = rows.iter().map(|r| r.note.as_str()).collect();
            n.sort_unstable();
            n.dedup();
            n
        };
        for n in notes.iter().filter(|n| !n.is_empty()) {
            let _ = writeln!(md, "\nNote: {n}");
        }
        // Per-query time vs R, one line per (net, link).
        if table != Table::Leviosa {
            let mut qs: Vec<u64> = rows.iter().map(|r| r.queries).collect();
            qs.sort_unstable();
            qs.dedup();
            let mut series: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
            for r in &rows {
                let e = series
                    .entry(format!("{} {} {}", r.backend, r.net, r.link))
                    .or_insert_with(|| vec![None; qs.len()]);
                if let Some(i) = qs.iter().position(|&q| q == r.queries) {
                    e[i] = Some(r.per_query_s);
                }
            }
            let name = format!(
                "per-query-{}.svg",
                match table {
                    Table::Queries => "cnn",
                    Table::Leviosa => "leviosa",
                    Table::Resnet => "resnet50",
                }
            );
            let chart = svg::line_chart(
                &format!("{title}: Fusion time per query vs R"),
                "seconds per query (log)",
                &qs.iter().map(|q| format!("R={q}")).collect::<Vec<_>>(),
                &series.into_iter().collect::<Vec<_>>(),
            );
            let p = svg_dir.join(&name);
            let _ = writeln!(md, "\n![{name}]({})", rel_link(out, &p));
            charts.push((p, chart));
        }
        let _ = writeln!(md);
    }

    backends_side_by_side(&mut md, &tables, out, svg_dir, &mut charts);

    // ---------------------------------------------------------------- raw runs
    let infers: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Infer(i) => Some(i),
            _ => None,
        })
        .collect();
    if !infers.is_empty() {
        let _ = writeln!(md, "## Every measured batch (ours)\n");
        let _ = writeln!(
            md,
            "| net | batch | link | setup | wall | per sample | s->c | c->s | per sample bytes | agreement | max logit err | linear | nonlinear | load | when | command |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
        );
        for i in &infers {
            let ph = |n: &str| {
                i.phases
                    .iter()
                    .find(|p| p.name == n)
                    .map_or("-".into(), |p| {
                        format!(
                            "{} / {}",
                            secs(p.seconds),
                            kib((p.bytes_client_to_server + p.bytes_server_to_client) as f64)
                        )
                    })
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.2e} | {} | {} | {} | {} | `{}` |",
                i.net,
                i.batch,
                i.link,
                secs(i.setup_s),
                secs(i.wall_s),
                secs(i.per_sample_ms / 1e3),
                kib(i.bytes_server_to_client as f64),
                kib(i.bytes_client_to_server as f64),
                kib(i.per_sample_kib * 1024.0),
                i.argmax_agreement,
                i.max_logit_error,
                ph("linear"),
                ph("nonlinear"),
                i.machine
                    .loadavg_1m
                    .map_or("-".into(), |l| format!("{l:.2}")),
                i.timestamp,
                i.command
            );
        }
        let _ = writeln!(md);
    }
    let spus: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Spu(s) => Some(s),
            _ => None,
        })
        .collect();
    if !spus.is_empty() {
        let _ = writeln!(md, "## Every SPU run\n");
        let _ = writeln!(
            md,
            "| net | batch | wall (median) | bytes (median) | setup | agreement | when | command |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|---|");
        for s in &spus {
            let v = &s.result;
            let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | `{}` |",
                v.get("net").and_then(|x| x.as_str()).unwrap_or("?"),
                f("batch").map_or("?".into(), |b| format!("{b}")),
                f("wall_s_median").map_or("-".into(), secs),
                f("bytes_total_median").map_or("-".into(), kib),
                f("setup_s").map_or("-".into(), secs),
                f("argmax_agreement").map_or("-".into(), |a| format!("{a:.3}")),
                v.get("started_utc").and_then(|x| x.as_str()).unwrap_or("?"),
                s.command
            );
        }
        let _ = writeln!(md);
    }

    // ---------------------------------------------------------------- criterion
    let _ = writeln!(md, "## Criterion per-layer benches\n");
    let _ = writeln!(
        md,
        "Run with `CARGO_TARGET_DIR=... cargo bench -p CRATE --bench NAME`; check they build with \
         `cargo bench --no-run -p CRATE`. Reports land in `target*/criterion/`.\n"
    );
    let _ = writeln!(md, "| command | measures |\n|---|---|");
    for (c, what) in CRITERION_BENCHES {
        let _ = writeln!(md, "| `{c}` | {what} |");
    }
    Rendered {
        markdown: md,
        charts,
    }
}

/// Runs `report`: reads the records, writes the Markdown and the charts.
pub fn run_report(o: &ReportOptions) -> Result<()> {
    let records = read_records(&o.input)?;
    let mut r = render(&records, &o.out, &o.svg_dir);
    if let Some(n) = &o.note {
        let text = std::fs::read_to_string(n).map_err(|e| io(n.display(), e))?;
        r.markdown.push_str("\n## Closing note\n\n");
        r.markdown.push_str(text.trim_end());
        r.markdown.push('\n');
    }
    if !r.charts.is_empty() {
        std::fs::create_dir_all(&o.svg_dir).map_err(|e| io(o.svg_dir.display(), e))?;
    }
    for (p, content) in &r.charts {
        std::fs::write(p, content).map_err(|e| io(p.display(), e))?;
    }
    std::fs::write(&o.out, &r.markdown).map_err(|e| io(o.out.display(), e))?;
    eprintln!(
        "fusion-bench: wrote {} ({} records, {} charts)",
        o.out.display(),
        records.len(),
        r.charts.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Point, rows_from_points};

    fn machine() -> Machine {
        Machine {
            cores: 2,
            cpu_model: "Test CPU".into(),
            loadavg_1m: None,
        }
    }

    fn fixture() -> Vec<Record> {
        let mut out = vec![Record::Compare(CompareRow {
            round: 0,
            net: "mlp-mnist".into(),
            batch: 128,
            ours_wall_s: 1.0,
            spu_wall_s: 2.0,
            ours_bytes: 3 << 20,
            spu_bytes: 6 << 20,
            wall_ratio: 0.5,
            bytes_ratio: 0.5,
            ours_setup_s: 0.2,
            spu_setup_s: Some(4.0),
            ours_setup_bytes: 1000,
            spu_setup_bytes: Some(22_000_000),
            ours_argmax_agreement: 1.0,
            spu_argmax_agreement: Some(1.0),
            stat_sec_bits_per_coefficient: 40,
            stat_sec_bits_per_session: 10.0,
            ours_command: "fusion-bench infer --net mlp-mnist --batch 128".into(),
            spu_command: "python bench.py".into(),
            machine: machine(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            command: "fusion-bench compare".into(),
        })];
        let pts = [
            Point {
                n: 8,
                seconds: 3.0,
                bytes: 800.0,
                setup_s: 1.0,
                setup_bytes: 10.0,
            },
            Point {
                n: 32,
                seconds: 9.0,
                bytes: 2000.0,
                setup_s: 1.0,
                setup_bytes: 10.0,
            },
        ];
        for link in ["lan", "wan"] {
            for r in rows_from_points(
                Table::Queries,
                "cheetah",
                "cnn-mnist",
                link,
                &pts,
                &[(8, 4, 100), (32, 3, 100)],
                "fixture",
            ) {
                out.push(Record::Table(r));
            }
        }
        out
    }

    #[test]
    fn backends_are_rendered_side_by_side_with_the_papers_cells() {
        let pts = [
            Point {
                n: 8,
                seconds: 3.0,
                bytes: 8.0 * 1024.0 * 1024.0,
                setup_s: 1.0,
                setup_bytes: 10.0,
            },
            Point {
                n: 32,
                seconds: 9.0,
                bytes: 20.0 * 1024.0 * 1024.0,
                setup_s: 1.0,
                setup_bytes: 10.0,
            },
        ];
        let mut recs = Vec::new();
        for backend in ["cheetah", "aby"] {
            for link in ["lan", "wan"] {
                for r in rows_from_points(
                    Table::Queries,
                    backend,
                    "cnn-mnist",
                    link,
                    &pts,
                    &[(8, 8, 100)],
                    "",
                ) {
                    recs.push(Record::Table(r));
                }
            }
        }
        let md = render(&recs, Path::new("BENCHMARKS.md"), Path::new("docs/bench")).markdown;
        assert!(
            md.contains("## Table II (MNIST): the backends side by side"),
            "{md}"
        );
        // 164 samples: 4 + 0.5 * 164 = 86 MiB; the paper's ABY cell is
        // 27.4949 MiB (x 3.1), its Cheetah cell 0.1914 MiB (x 449.3).
        assert!(
            md.contains("| 8 | 8 | 164 | aby | 86.0 MiB *(extrap.)* |"),
            "{md}"
        );
        assert!(
            md.contains("| 27.4949 | 0.1211 s | 0.3843 s | 3.1 |"),
            "{md}"
        );
        assert!(
            md.contains("| 0.1914 | 0.0039 s | 0.0068 s | 449.3 |"),
            "{md}"
        );
        // ABY before Cheetah, as in the paper.
        let pos = |b: &str| md.find(&format!("| 8 | 8 | 164 | {b} |")).expect(b);
        assert!(pos("aby") < pos("cheetah"), "{md}");
    }

    #[test]
    fn the_report_renders_ratios_tables_and_charts_from_records() {
        let recs = fixture();
        // Records survive a JSON Lines round trip.
        for r in &recs {
            let line = serde_json::to_string(r).expect("json");
            assert_eq!(&serde_json::from_str::<Record>(&line).expect("parse"), r);
        }
        let r = render(&recs, Path::new("BENCHMARKS.md"), Path::new("docs/bench"));
        let md = &r.markdown;
        assert!(md.contains("## Side by side with SPU"), "{md}");
        assert!(
            md.contains("| mlp-mnist | 128 | 0 | 1.00 s | 2.00 s | **0.50** |"),
            "{md}"
        );
        assert!(md.contains("Command: `fusion-bench compare`"));
        assert!(md.contains("## Tables II-IV shape"));
        assert!(
            md.contains("| cheetah | cnn-mnist | lan | 8 | 4 | 100 | 132 | 16.50 |"),
            "{md}"
        );
        assert!(md.contains("*(extrap.)*"));
        assert!(md.contains("Test CPU"));
        assert!(md.contains("cargo bench -p fusion-ot --bench nonlinear"));
        let names: Vec<String> = r
            .charts
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "docs/bench/compare-bytes.svg",
                "docs/bench/compare-time.svg",
                "docs/bench/per-query-cnn.svg"
            ]
        );
        assert!(md.contains("(docs/bench/per-query-cnn.svg)"), "{md}");
        assert!(r.charts.iter().all(|(_, c)| c.starts_with("<svg")));
    }
}
