//! One secure batch of a zoo network, both parties in one process over
//! `fusion_net::local_pair` (real QUIC + TLS on 127.0.0.1, no link emulation),
//! no warm-up. Prints one JSON object: setup and batch wall seconds, wire
//! bytes per direction and per meter phase, per schedule action (linear /
//! non-linear step: bytes and seconds as the client's meter saw them), and
//! the argmax agreement with the plaintext fixed-point engine.
//!
//! ```text
//! cargo run --release -p fusion-engine --example zoo_infer -- --net mlp-mnist --batch 128
//! ```
//!
//! Options: `--net NAME` (zoo name), `--batch N`, `--seed S` (weights and
//! inputs), `--chunk C`, `--ot silent|iknp`, `--packing on|off` (HE reply
//! packing, announced by the server; default: the server's default),
//! `--minimise-bytes` (start from `ServerConfig::minimise_bytes()`),
//! `--block-bits M` (millionaires' block size, announced), `--max-rots R`
//! (most ROTs per OT run and refill, announced), `--plan-bandwidth B` (the HE planner's assumed bandwidth in bytes per second,
//! announced; `1` minimises bytes), `--steps` (include the per-action table).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use fusion_engine::backends::cheetah::Cheetah;
use fusion_engine::backends::cheetah::config::{CheetahConfig, OtKind};
use fusion_engine::behaviour::Honest;
use fusion_engine::{
    ClientConfig, Progress, SecureClient, SecureError, SecureServer, ServedModel, ServerConfig,
};
use fusion_net::{Counters, NetConfig, local_pair};
use fusion_nn::fixed::argmax_signed;
use fusion_nn::tensor::RingTensor;
use fusion_nn::{eval, zoo};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use serde_json::json;

struct Args {
    net: String,
    batch: usize,
    seed: u64,
    chunk: usize,
    ot: OtKind,
    packing: Option<bool>,
    steps: bool,
    bandwidth: Option<f64>,
    block_bits: Option<u32>,
    max_rots: Option<usize>,
    bytes: bool,
}

fn parse() -> Args {
    let mut a = Args {
        net: "mlp-mnist".into(),
        batch: 128,
        seed: 1,
        chunk: fusion_engine::config::DEFAULT_CHUNK,
        ot: OtKind::Silent,
        packing: None,
        steps: false,
        bandwidth: None,
        block_bits: None,
        max_rots: None,
        bytes: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--net" => a.net = v(),
            "--batch" => a.batch = v().parse().expect("--batch N"),
            "--seed" => a.seed = v().parse().expect("--seed S"),
            "--chunk" => a.chunk = v().parse().expect("--chunk C"),
            "--ot" => a.ot = v().parse().expect("--ot silent|iknp"),
            "--packing" => {
                a.packing = Some(match v().as_str() {
                    "on" => true,
                    "off" => false,
                    o => panic!("--packing on|off, got {o}"),
                })
            }
            "--steps" => a.steps = true,
            "--minimise-bytes" => a.bytes = true,
            "--max-rots" => a.max_rots = Some(v().parse().expect("--max-rots R")),
            "--block-bits" => a.block_bits = Some(v().parse().expect("--block-bits M")),
            "--plan-bandwidth" => a.bandwidth = Some(v().parse().expect("--plan-bandwidth B/s")),
            o => panic!("unknown option {o}"),
        }
    }
    a
}

fn delta(a: &Counters, b: &Counters) -> (u64, u64) {
    (
        a.bytes_sent.saturating_sub(b.bytes_sent),
        a.bytes_received.saturating_sub(b.bytes_received),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(cores.max(2) * 2)
        .build_global();
    let model = zoo::build(&a.net, a.seed)?;
    let fixed = eval::default_fixed_point();
    let served = ServedModel::from_model(&model, fixed)?;
    let program = served.program.clone();
    let ring = program.ring();
    let x = zoo::synthetic_inputs(&a.net, a.seed + 1000, a.batch)?;
    let x = model.meta.preprocess.apply(&x)?;
    let xe: RingTensor = program.encode_input(&x)?;
    let reference = program.run(&xe)?;

    let mut config = if a.bytes {
        CheetahConfig::minimise_bytes()
    } else {
        CheetahConfig::default()
    };
    if let Some(r) = a.max_rots {
        config.ot.max_rots = r;
    }
    if let Some(m) = a.block_bits {
        config.ot.block_bits = m;
    }
    config.ot_flavour = a.ot;
    if let Some(b) = a.bandwidth {
        config.plan.bandwidth = b;
        config.plan.weight_cache_bytes = config
            .plan
            .weight_cache_bytes
            .max(fusion_he::PlanOptions::minimise_bytes().weight_cache_bytes);
    }
    if let Some(p) = a.packing {
        config.reply_packing = p;
    }
    let t_enc = Instant::now();
    let server_config = ServerConfig {
        chunk: a.chunk,
        ..ServerConfig::default()
    };
    let server = SecureServer::new(
        served,
        server_config,
        vec![Box::new(Cheetah::new(config))],
        Arc::new(Honest),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Encoding the server's weights is a one-off per model and batch size.
    rt.block_on(server.precompute(a.batch.min(a.chunk)))?;
    let encode_s = t_enc.elapsed().as_secs_f64();
    let mut srng = ChaCha20Rng::seed_from_u64(a.seed + 11);
    let mut crng = ChaCha20Rng::seed_from_u64(a.seed + 12);
    let batch = a.batch;
    let chunk = a.chunk;
    let log: Arc<Mutex<Vec<(usize, Counters, f64)>>> = Arc::new(Mutex::new(Vec::new()));
    let (out, server_report) = rt.block_on(async {
        let (s, c) = local_pair(&NetConfig::default()).await?;
        let client = async {
            let t0 = Instant::now();
            let cc = ClientConfig {
                chunk,
                ..ClientConfig::default()
            };
            let mut client = SecureClient::connect(c, cc, &Cheetah::default(), &mut crng).await?;
            let setup_s = t0.elapsed().as_secs_f64();
            let setup_report = client.report();
            let meter = client.meter();
            let (l2, t1) = (log.clone(), Instant::now());
            client.set_progress(Some(Arc::new(move |p: Progress| {
                let r = meter.report();
                l2.lock()
                    .expect("log")
                    .push((p.done, r.total, t1.elapsed().as_secs_f64()));
            })));
            let start = client.report().total;
            let y = client.infer_encoded(xe.data().to_vec(), batch).await?;
            let stats = client.last_batch().cloned().expect("stats");
            let schedule = client.schedule().clone();
            let ot_stats = client.backend_stats().to_string();
            let end = client.finish().await?;
            Ok::<_, SecureError>((
                y,
                setup_s,
                setup_report,
                start,
                stats,
                schedule,
                ot_stats,
                end,
            ))
        };
        let (srv, cli) = tokio::join!(server.serve(s, &mut srng), client);
        let summary = srv?;
        Ok::<_, Box<dyn std::error::Error>>((cli?, summary.report))
    })?;
    let (y, setup_s, setup_report, start, stats, schedule, ot_stats, _end) = out;
    let got = RingTensor::new(reference.shape().to_vec(), y)?;
    let ra = argmax_signed(ring, &reference);
    let ga = argmax_signed(ring, &got);
    let agree = ra.iter().zip(&ga).filter(|(p, q)| p == q).count();

    let setup = setup_report
        .phase(fusion_net::Phase::Setup)
        .map(|p| p.counters);
    let connect = setup_report
        .phase(fusion_net::Phase::Connect)
        .map(|p| p.counters);
    let mut steps = Vec::new();
    if a.steps {
        let log = log.lock().expect("log");
        let per_pass = schedule.actions.len();
        let (mut prev, mut prev_t) = (start, 0.0);
        for &(done, c, t) in log.iter() {
            let act = &schedule.actions[(done - 1) % per_pass];
            let step = &program.steps[act.step];
            let (up, down) = delta(&c, &prev);
            steps.push(json!({
                "step": step.name,
                "kind": act.kind.tag(),
                "chunk": (done - 1) / per_pass,
                "client_to_server": up,
                "server_to_client": down,
                "seconds": t - prev_t,
            }));
            prev = c;
            prev_t = t;
        }
    }
    let phases: Vec<_> = stats
        .phases
        .iter()
        .map(|p| {
            json!({
                "phase": p.name,
                "seconds": p.seconds,
                "client_to_server": p.bytes_sent,
                "server_to_client": p.bytes_received,
                "rounds": p.rounds,
            })
        })
        .collect();
    let out = json!({
        "net": a.net,
        "batch": a.batch,
        "chunk": a.chunk,
        "ot": a.ot.to_string(),
        "backend": server.backend_descriptions(),
        "server_encode_s": encode_s,
        "setup_s": setup_s,
        "setup_client_to_server": setup.map_or(0, |c| c.bytes_sent),
        "setup_server_to_client": setup.map_or(0, |c| c.bytes_received),
        "connect_bytes": connect.map_or(0, |c| c.bytes_total()),
        "wall_s": stats.seconds,
        "bytes_client_to_server": stats.bytes_sent,
        "bytes_server_to_client": stats.bytes_received,
        "bytes_total": stats.bytes_sent + stats.bytes_received,
        "per_sample_ms": stats.seconds * 1e3 / a.batch as f64,
        "per_sample_kib": (stats.bytes_sent + stats.bytes_received) as f64 / 1024.0 / a.batch as f64,
        "argmax_agreement": agree as f64 / ra.len().max(1) as f64,
        "phases": phases,
        "steps": steps,
        "ot_stats": ot_stats,
        "server_total_bytes": server_report.total.bytes_total(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
