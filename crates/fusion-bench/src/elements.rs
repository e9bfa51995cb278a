//! `fusion-bench elements`: bits and wall time per element of the OT-based
//! non-linear primitives (millionaires' comparison, DReLU, ReLU, the
//! truncations, 2x2 max pooling) on the silent-OT engine, for the
//! per-element table of BENCHMARKS.md.
//!
//! Both parties run in this process, each with its own
//! [`fusion_ot::OtEngine<Silent>`] on a sub-connection of a real QUIC + TLS
//! session over 127.0.0.1 ([`fusion_net::local_pair`]), set up exactly as the
//! cheetah backend does (`OtEngine::setup_on` with the session's meter, the
//! default [`OtConfig`] apart from the millionaires' block size `--block-bits`,
//! silent OT). Before each call both parties top their ROT pools up for it with
//! [`OtEngine::preprocess_rots`] and wait for it, so that the call's figures
//! exclude generation (the backend instead queues a whole pass's ROTs with
//! [`OtEngine::schedule_rots`] and generates them in the background).
//!
//! Per operation and ring width `l`, on `n` elements, median of `--reps` calls:
//!
//! - **bits per element, total**: wire bytes (UDP payload of every QUIC
//!   datagram, both directions, [`fusion_net::Meter`]) of the refill plus the
//!   call, times 8, over `n`: ROT generation and QUIC framing included;
//! - **ROT generation** and **call** wire bits separately (a call needing more
//!   than [`OtConfig::max_rots`] ROTs per direction refills inside the call:
//!   `refills_in_call`);
//! - **protocol bits**: the engine's own message bytes, both directions
//!   ([`fusion_ot::Stats`]): without ROT generation and without QUIC framing,
//!   the figure papers usually quote;
//! - ROTs consumed and generated per element, flights per call;
//! - nanoseconds per element, refill plus call, and call alone.
//!
//! Every call's output is reconstructed and checked against the plaintext
//! result; a wrong result fails the run ([`BenchError::Session`]).
//!
//! What "element" means: one comparison of two private `l`-bit inputs
//! (millionaire; `P0` holds one input, `P1` the other), one shared ring element
//! (DReLU, ReLU, truncations), one 2x2 window (max of 4 shared elements,
//! 3 ReLUs in 2 rounds; the run uses `n` windows, `4n` inputs).

use std::time::Instant;

use fusion_core::ring::Ring;
use fusion_net::{NetConfig, Session, local_pair};
use fusion_ot::{Bits, OtConfig, OtEngine, Role, Silent, Stats};
use rand::{Rng, RngExt, SeedableRng, rngs::ChaCha20Rng};
use serde::{Deserialize, Serialize};

use crate::machine::{Machine, command_line, timestamp};
use crate::{BenchError, Result};

/// Options of `fusion-bench elements`.
#[derive(clap::Args, Debug, Clone)]
pub struct ElementsOptions {
    /// Elements per call (windows for maxpool).
    #[arg(long, value_name = "N", default_value_t = 1 << 16)]
    pub n: usize,
    /// Ring widths `l` (comma-separated); the millionaire compares `l`-bit inputs.
    #[arg(long, value_name = "L,...", value_delimiter = ',', default_values_t = [32u32, 37])]
    pub bits: Vec<u32>,
    /// Calls per (op, width); the figures are medians.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub reps: usize,
    /// Millionaires' block size `m` (radix `2^m`), as `OtConfig::block_bits`.
    #[arg(long, value_name = "M", default_value_t = 4)]
    pub block_bits: u32,
    /// Truncation shift (fractional bits).
    #[arg(long, value_name = "F", default_value_t = 12)]
    pub shift: u32,
    /// Operations (comma-separated; default all): millionaire, drelu, relu,
    /// truncate, truncate_nonneg, truncate_exact, relu_truncate, maxpool2x2.
    #[arg(long, value_name = "OP,...", value_delimiter = ',')]
    pub ops: Option<Vec<String>>,
    /// maxpool2x2: inputs of this many signed bits, `[-2^(K-1), 2^(K-1))`, and
    /// the comparisons read only as many bits (`OtEngine::max_pool_bounded`;
    /// what the engine's schedule does after a truncation). Default: inputs in
    /// `[-2^(l-2), 2^(l-2))`, `K = l - 1`.
    #[arg(long, value_name = "K")]
    pub maxpool_input_bits: Option<u32>,
    /// relu_truncate: inputs of this many signed bits, `[-2^(K-1),
    /// 2^(K-1))`, computed in `Z_2^(K+1)` (`OtEngine::relu_truncate_bounded`;
    /// what the engine's schedule does after a layer whose bound the server
    /// announced). Default: inputs in `[-2^(l-2), 2^(l-2))`, the whole ring.
    #[arg(long, value_name = "K")]
    pub relu_truncate_input_bits: Option<u32>,
    /// Seed of the inputs and of the protocol randomness (silent OT draws its
    /// own from the OS).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object per (op, width) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The primitives measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementOp {
    /// Millionaires' comparison `1{a > b}` of two private `l`-bit inputs.
    Millionaire,
    /// XOR shares of `1{x >= 0}`.
    Drelu,
    /// `max(x, 0)`.
    Relu,
    /// Cheetah's truncation with one-bit error, `x` in `[-2^{l-2}, 2^{l-2})`.
    Truncate,
    /// Truncation with known MSB (Cheetah §5.2), `x` in `[0, 2^{l-1})`.
    TruncateNonneg,
    /// Exact truncation, every `x`.
    TruncateExact,
    /// Fused `ReLU(x) >> f` with one-bit error, `x` in `[-2^{l-2}, 2^{l-2})`.
    ReluTruncate,
    /// Max of each 2x2 window (4 elements).
    Maxpool2x2,
}

impl ElementOp {
    /// All, in table order.
    pub const ALL: [ElementOp; 8] = [
        ElementOp::Millionaire,
        ElementOp::Drelu,
        ElementOp::Relu,
        ElementOp::Truncate,
        ElementOp::TruncateNonneg,
        ElementOp::TruncateExact,
        ElementOp::ReluTruncate,
        ElementOp::Maxpool2x2,
    ];

    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            ElementOp::Millionaire => "millionaire",
            ElementOp::Drelu => "drelu",
            ElementOp::Relu => "relu",
            ElementOp::Truncate => "truncate",
            ElementOp::TruncateNonneg => "truncate_nonneg",
            ElementOp::TruncateExact => "truncate_exact",
            ElementOp::ReluTruncate => "relu_truncate",
            ElementOp::Maxpool2x2 => "maxpool2x2",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        ElementOp::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| BenchError::Usage(format!("unknown op {s:?}")))
    }

    fn uses_shift(self) -> bool {
        matches!(
            self,
            ElementOp::Truncate
                | ElementOp::TruncateNonneg
                | ElementOp::TruncateExact
                | ElementOp::ReluTruncate
        )
    }
}

/// The figures of one (op, width).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ElementRow {
    /// Operation name ([`ElementOp::name`]).
    pub op: String,
    /// Ring width `l` (input width of the millionaire).
    pub bits: u32,
    /// Elements per call (windows for maxpool2x2).
    pub n: usize,
    /// Calls measured; figures are medians over them.
    pub reps: usize,
    /// Millionaires' block size `m`.
    pub block_bits: u32,
    /// Truncation shift, for the truncations.
    pub shift: Option<u32>,
    /// maxpool2x2: signed bits of the inputs the comparisons read (`None`:
    /// `l - 1`, the range contract).
    #[serde(default)]
    pub maxpool_input_bits: Option<u32>,
    /// relu_truncate: signed bits of the inputs (`None`: the range contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relu_truncate_input_bits: Option<u32>,
    /// Wire bits per element, both directions: ROT generation + call.
    pub bits_total: f64,
    /// Wire bits per element of the ROT refill before the call.
    pub bits_rot_gen: f64,
    /// Wire bits per element of the call itself.
    pub bits_call: f64,
    /// Protocol message bits per element, both directions (no ROT
    /// generation, no QUIC framing).
    pub bits_protocol: f64,
    /// ROTs consumed per element (both directions).
    pub rots_consumed: f64,
    /// ROTs generated per element by the refill (both directions).
    pub rots_generated: f64,
    /// Protocol flights of one call.
    pub flights: u64,
    /// ROT refills inside the call (most over the calls): non-zero when the
    /// call needs more than [`OtConfig::max_rots`] ROTs per direction, so that
    /// the refill before it (capped there, as in the cheetah backend) does not
    /// cover it; then `bits_call` and `ns_call` include that generation
    /// (`bits_protocol` never does).
    pub refills_in_call: u64,
    /// Nanoseconds per element, refill + call.
    pub ns_total: f64,
    /// Nanoseconds per element, call alone.
    pub ns_call: f64,
    /// Every call's output matched the plaintext result.
    pub correct: bool,
    /// OT flavour.
    pub ot: String,
    /// How the two parties were connected.
    pub transport: String,
    /// The command line.
    pub command: String,
    /// One-minute load average when the run started.
    pub loadavg_start: Option<f64>,
    /// The machine.
    pub machine: Machine,
    /// When the row was measured (UTC).
    pub timestamp: String,
}

/// One call's raw measurements.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    gen_bytes: u64,
    call_bytes: u64,
    protocol_bytes: u64,
    rots_consumed: u64,
    rots_generated: u64,
    flights: u64,
    refills_in_call: u64,
    secs_total: f64,
    secs_call: f64,
}

fn session_err(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Session(format!("{what}: {e}"))
}

/// The median of `v` (upper median for even lengths); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Wire bytes sent by both endpoints so far (= both directions).
fn wire(s: &Session, c: &Session) -> u64 {
    s.report().total.bytes_sent + c.report().total.bytes_sent
}

/// The inputs of one call, in the clear and as the parties' shares.
struct Case {
    /// Plaintext inputs (for the millionaire: `P0`'s values).
    x: Vec<u64>,
    /// `P1`'s millionaire inputs.
    y: Vec<u64>,
    s0: Vec<u64>,
    s1: Vec<u64>,
    windows: Vec<Vec<usize>>,
}

/// `mp_bits`: the signed width of a max pool's inputs; `rt_bits`: of a fused
/// ReLU-truncation's (`None`: the range contract).
fn make_case(
    op: ElementOp,
    ring: Ring,
    n: usize,
    mp_bits: u32,
    rt_bits: Option<u32>,
    rng: &mut ChaCha20Rng,
) -> Case {
    let l = ring.bits();
    let q = 1i64 << (l - 2);
    let rt = rt_bits.map_or(q, |k| 1i64 << (k - 1));
    let mp = 1i64 << (mp_bits - 1);
    let count = if op == ElementOp::Maxpool2x2 {
        4 * n
    } else {
        n
    };
    let x: Vec<u64> = (0..count)
        .map(|_| match op {
            ElementOp::Truncate => ring.from_signed(rng.random_range(-q..q)),
            ElementOp::ReluTruncate => ring.from_signed(rng.random_range(-rt..rt)),
            ElementOp::Maxpool2x2 => ring.from_signed(rng.random_range(-mp..mp)),
            ElementOp::TruncateNonneg => ring.reduce(rng.next_u64()) >> 1,
            _ => ring.random(rng),
        })
        .collect();
    let y: Vec<u64> = if op == ElementOp::Millionaire {
        (0..n).map(|_| ring.random(rng)).collect()
    } else {
        Vec::new()
    };
    let (s0, s1) = if op == ElementOp::Millionaire {
        (x.clone(), y.clone())
    } else {
        x.iter().map(|&v| ring.share(v, rng)).unzip()
    };
    let windows = if op == ElementOp::Maxpool2x2 {
        (0..n).map(|w| (4 * w..4 * w + 4).collect()).collect()
    } else {
        Vec::new()
    };
    Case {
        x,
        y,
        s0,
        s1,
        windows,
    }
}

/// The two parties' output shares of one call.
#[derive(Debug)]
pub enum Outputs {
    /// XOR-shared bits.
    Bits(Bits, Bits),
    /// Additive shares in the ring.
    Ring(Vec<u64>, Vec<u64>),
}

/// Checks reconstructed outputs against the plaintext. `x` are the inputs
/// (for the millionaire `P0`'s, `y` `P1`'s). Returns a description of the
/// first mismatch.
pub fn check(
    op: ElementOp,
    ring: Ring,
    shift: u32,
    x: &[u64],
    y: &[u64],
    out: &Outputs,
) -> std::result::Result<(), String> {
    let expect_len = if op == ElementOp::Maxpool2x2 {
        x.len() / 4
    } else {
        x.len()
    };
    let bad = |i: usize, got: String| Err(format!("{}: element {i}: got {got}", op.name()));
    match out {
        Outputs::Bits(a, b) => {
            if a.len() != expect_len || b.len() != expect_len {
                return Err(format!("{}: {} output bits", op.name(), a.len()));
            }
            for i in 0..expect_len {
                let got = a.get(i) ^ b.get(i);
                let want = match op {
                    ElementOp::Millionaire => x[i] > y[i],
                    ElementOp::Drelu => ring.to_signed(x[i]) >= 0,
                    _ => return Err(format!("{}: bit output", op.name())),
                };
                if got != want {
                    return bad(i, format!("{got}, want {want}"));
                }
            }
        }
        Outputs::Ring(a, b) => {
            if a.len() != expect_len || b.len() != expect_len {
                return Err(format!("{}: {} outputs", op.name(), a.len()));
            }
            for i in 0..expect_len {
                let got = ring.to_signed(ring.reconstruct(a[i], b[i]));
                let v = ring.to_signed(x[i]);
                let floor = v >> shift;
                let ok = match op {
                    ElementOp::Relu => got == v.max(0),
                    ElementOp::Truncate | ElementOp::TruncateNonneg => {
                        got == floor || got == floor - 1
                    }
                    ElementOp::TruncateExact => got == floor,
                    ElementOp::ReluTruncate => {
                        if v < 0 {
                            got == 0
                        } else {
                            got == floor || got == floor - 1
                        }
                    }
                    ElementOp::Maxpool2x2 => {
                        let m = x[4 * i..4 * i + 4]
                            .iter()
                            .map(|&e| ring.to_signed(e))
                            .max()
                            .unwrap_or(0);
                        got == m
                    }
                    _ => return Err(format!("{}: ring output", op.name())),
                };
                if !ok {
                    return bad(i, format!("{got} for input {v}"));
                }
            }
        }
    }
    Ok(())
}

type Engine = OtEngine<Silent>;

/// ROTs (as `P0`-sender, as `P0`-receiver) one call consumes.
fn planned_rots(
    e: &Engine,
    op: ElementOp,
    n: usize,
    shift: u32,
    mp_bits: u32,
    rt_bits: Option<u32>,
) -> (usize, usize) {
    match op {
        ElementOp::Millionaire => e.millionaires_rots(n, e.ring().bits()),
        ElementOp::Drelu | ElementOp::Relu => e.relu_rots(n),
        ElementOp::Truncate | ElementOp::TruncateNonneg => e.truncate_rots(n, shift),
        ElementOp::TruncateExact => e.truncate_exact_rots(n, shift),
        ElementOp::ReluTruncate => match rt_bits {
            Some(k) => e.relu_truncate_bounded_rots(n, shift, k),
            None => e.relu_truncate_rots(n, shift),
        },
        ElementOp::Maxpool2x2 => e.max_pool_bounded_rots(&vec![4; n], mp_bits),
    }
}

async fn call(
    op: ElementOp,
    s: &mut Engine,
    c: &mut Engine,
    case: &Case,
    shift: u32,
    mp_bits: u32,
    rt_bits: Option<u32>,
) -> fusion_ot::Result<Outputs> {
    let (a, b) = (&case.s0, &case.s1);
    Ok(match op {
        ElementOp::Millionaire => {
            let l = s.ring().bits();
            let (p, q) = tokio::try_join!(s.millionaires(a, l), c.millionaires(b, l))?;
            Outputs::Bits(p, q)
        }
        ElementOp::Drelu => {
            let (p, q) = tokio::try_join!(s.drelu(a), c.drelu(b))?;
            Outputs::Bits(p, q)
        }
        ElementOp::Relu => {
            let (p, q) = tokio::try_join!(s.relu(a), c.relu(b))?;
            Outputs::Ring(p, q)
        }
        ElementOp::Truncate => {
            let (p, q) = tokio::try_join!(s.truncate(a, shift), c.truncate(b, shift))?;
            Outputs::Ring(p, q)
        }
        ElementOp::TruncateNonneg => {
            let (p, q) =
                tokio::try_join!(s.truncate_nonneg(a, shift), c.truncate_nonneg(b, shift))?;
            Outputs::Ring(p, q)
        }
        ElementOp::TruncateExact => {
            let (p, q) = tokio::try_join!(s.truncate_exact(a, shift), c.truncate_exact(b, shift))?;
            Outputs::Ring(p, q)
        }
        ElementOp::ReluTruncate => {
            let (p, q) = match rt_bits {
                Some(k) => tokio::try_join!(
                    s.relu_truncate_bounded(a, shift, k),
                    c.relu_truncate_bounded(b, shift, k)
                )?,
                None => tokio::try_join!(s.relu_truncate(a, shift), c.relu_truncate(b, shift))?,
            };
            Outputs::Ring(p, q)
        }
        ElementOp::Maxpool2x2 => {
            let w = &case.windows;
            let (p, q) = tokio::try_join!(
                s.max_pool_bounded(a, w, mp_bits),
                c.max_pool_bounded(b, w, mp_bits)
            )?;
            Outputs::Ring(p, q)
        }
    })
}

fn rots_generated(st: &Stats) -> u64 {
    st.rots_as_sender + st.rots_as_receiver
}

/// One party pair (one QUIC session, one engine each) for ring width `l`.
struct Pair {
    ss: Session,
    cs: Session,
    s: Engine,
    c: Engine,
}

async fn setup(ring: Ring, block_bits: u32, rng: &mut ChaCha20Rng) -> Result<Pair> {
    let (mut ss, mut cs) = local_pair(&NetConfig::default())
        .await
        .map_err(|e| session_err("loopback connection", e))?;
    let cfg = OtConfig {
        block_bits,
        ..OtConfig::default()
    };
    let (s_conn, c_conn) = (ss.sub_connection(), cs.sub_connection());
    let mut r0 = ChaCha20Rng::seed_from_u64(rng.next_u64());
    let mut r1 = ChaCha20Rng::seed_from_u64(rng.next_u64());
    let (s, c) = tokio::try_join!(
        Engine::setup_on(s_conn, Some(ss.meter()), Role::Server, ring, cfg, &mut r0),
        Engine::setup_on(c_conn, Some(cs.meter()), Role::Client, ring, cfg, &mut r1),
    )
    .map_err(|e| session_err("OT setup", e))?;
    Ok(Pair { ss, cs, s, c })
}

async fn one_call(
    p: &mut Pair,
    op: ElementOp,
    ring: Ring,
    o: &ElementsOptions,
    rng: &mut ChaCha20Rng,
) -> Result<Sample> {
    let mp_bits = o.maxpool_bits(ring.bits());
    let rt_bits = o.relu_truncate_input_bits;
    let case = make_case(op, ring, o.n, mp_bits, rt_bits, rng);
    let (need_s, need_r) = planned_rots(&p.s, op, o.n, o.shift, mp_bits, rt_bits);
    let (have_s, have_r) = p.s.rots_available();
    let count = need_s
        .saturating_sub(have_s)
        .max(need_r.saturating_sub(have_r))
        .min(p.s.config().max_rots);
    let st0 = p.s.stats();
    let w0 = wire(&p.ss, &p.cs);
    let t0 = Instant::now();
    if count > 0 {
        tokio::try_join!(p.s.preprocess_rots(count), p.c.preprocess_rots(count))
            .map_err(|e| session_err("ROT refill", e))?;
    }
    let st1 = p.s.stats();
    let avail1 = p.s.rots_available();
    let w1 = wire(&p.ss, &p.cs);
    let t1 = Instant::now();
    let out = call(op, &mut p.s, &mut p.c, &case, o.shift, mp_bits, rt_bits)
        .await
        .map_err(|e| session_err(op.name(), e))?;
    let secs_call = t1.elapsed().as_secs_f64();
    let secs_total = t0.elapsed().as_secs_f64();
    let w2 = wire(&p.ss, &p.cs);
    let st2 = p.s.stats();
    let avail2 = p.s.rots_available();
    check(op, ring, o.shift, &case.x, &case.y, &out)
        .map_err(|e| BenchError::Session(format!("wrong result at l = {}: {e}", ring.bits())))?;
    // ROTs taken from the pools during the call (plus any generated inside it).
    let gen_in_call = rots_generated(&st2) - rots_generated(&st1);
    let consumed = (avail1.0 + avail1.1) as u64 + gen_in_call - (avail2.0 + avail2.1) as u64;
    Ok(Sample {
        gen_bytes: w1 - w0,
        call_bytes: w2 - w1,
        protocol_bytes: (st2.bytes_sent - st1.bytes_sent)
            + (st2.bytes_received - st1.bytes_received),
        rots_consumed: consumed,
        rots_generated: rots_generated(&st2) - rots_generated(&st0),
        flights: st2.flights - st1.flights,
        refills_in_call: st2.refills - st1.refills,
        secs_total,
        secs_call,
    })
}

fn row(
    op: ElementOp,
    l: u32,
    o: &ElementsOptions,
    samples: &[Sample],
    loadavg_start: Option<f64>,
) -> ElementRow {
    let n = o.n as f64;
    let med = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let bits = |b: u64| b as f64 * 8.0 / n;
    ElementRow {
        op: op.name().into(),
        bits: l,
        n: o.n,
        reps: samples.len(),
        block_bits: o.block_bits,
        shift: op.uses_shift().then_some(o.shift),
        maxpool_input_bits: (op == ElementOp::Maxpool2x2).then_some(o.maxpool_bits(l)),
        relu_truncate_input_bits: o
            .relu_truncate_input_bits
            .filter(|_| op == ElementOp::ReluTruncate),
        bits_total: med(&|s| bits(s.gen_bytes + s.call_bytes)),
        bits_rot_gen: med(&|s| bits(s.gen_bytes)),
        bits_call: med(&|s| bits(s.call_bytes)),
        bits_protocol: med(&|s| bits(s.protocol_bytes)),
        rots_consumed: med(&|s| s.rots_consumed as f64 / n),
        rots_generated: med(&|s| s.rots_generated as f64 / n),
        flights: samples.first().map_or(0, |s| s.flights),
        refills_in_call: samples.iter().map(|s| s.refills_in_call).max().unwrap_or(0),
        ns_total: med(&|s| s.secs_total * 1e9 / n),
        ns_call: med(&|s| s.secs_call * 1e9 / n),
        correct: true,
        ot: "silent".into(),
        transport: "QUIC+TLS over 127.0.0.1 (fusion_net::local_pair), both parties in one process"
            .into(),
        command: command_line(),
        loadavg_start,
        machine: Machine::current(),
        timestamp: timestamp(),
    }
}

impl ElementsOptions {
    /// The signed input width of the max pool's comparisons in `Z_2^l`:
    /// `--maxpool-input-bits`, else the range contract's `l - 1`.
    fn maxpool_bits(&self, l: u32) -> u32 {
        self.maxpool_input_bits.unwrap_or(l - 1)
    }

    fn validate(&self) -> Result<Vec<ElementOp>> {
        if self.n == 0 || self.reps == 0 {
            return Err(BenchError::Usage("--n and --reps must be positive".into()));
        }
        if self.bits.is_empty() {
            return Err(BenchError::Usage("--bits: give at least one width".into()));
        }
        for &l in &self.bits {
            if !(4..=63).contains(&l) {
                return Err(BenchError::Usage(format!("--bits {l}: outside 4..=63")));
            }
            if self.shift == 0 || self.shift + 2 > l {
                return Err(BenchError::Usage(format!(
                    "--shift {} must be in 1..=l-2 for l = {l}",
                    self.shift
                )));
            }
            if let Some(k) = self.relu_truncate_input_bits
                && !(2..l).contains(&k)
            {
                return Err(BenchError::Usage(format!(
                    "--relu-truncate-input-bits {k} must be in 2..=l-1 for l = {l}"
                )));
            }
            if let Some(k) = self.maxpool_input_bits
                && !(2..l).contains(&k)
            {
                return Err(BenchError::Usage(format!(
                    "--maxpool-input-bits {k} must be in 2..=l-1 for l = {l}"
                )));
            }
        }
        match &self.ops {
            None => Ok(ElementOp::ALL.to_vec()),
            Some(v) => v.iter().map(|s| ElementOp::parse(s)).collect(),
        }
    }
}

/// Runs the measurements; calls `emit` with each row as it is done.
pub fn run_elements(
    o: &ElementsOptions,
    mut emit: impl FnMut(&ElementRow),
) -> Result<Vec<ElementRow>> {
    let ops = o.validate()?;
    let loadavg_start = Machine::current().loadavg_1m;
    crate::infer::init_rayon();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::Io(format!("tokio runtime: {e}")))?;
    let mut rng = ChaCha20Rng::seed_from_u64(o.seed);
    let mut rows = Vec::new();
    rt.block_on(async {
        for &l in &o.bits {
            let ring = Ring::new(l).map_err(|e| BenchError::Usage(format!("--bits {l}: {e}")))?;
            let mut pair = setup(ring, o.block_bits, &mut rng).await?;
            for &op in &ops {
                let mut samples = Vec::with_capacity(o.reps);
                for _ in 0..o.reps {
                    samples.push(one_call(&mut pair, op, ring, o, &mut rng).await?);
                }
                let r = row(op, l, o, &samples, loadavg_start);
                emit(&r);
                rows.push(r);
            }
        }
        Ok::<(), BenchError>(())
    })?;
    Ok(rows)
}

/// The Markdown table of `rows` (without `--json`).
pub fn table(rows: &[ElementRow]) -> String {
    let mut s = String::from(
        "| op | l | n | bits/elem total | ROT gen | call (wire) | protocol | ROTs/elem | flights | ns/elem total | ns/elem call |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.0} | {:.0} |\n",
            r.op,
            r.bits,
            r.n,
            r.bits_total,
            r.bits_rot_gen,
            r.bits_call,
            r.bits_protocol,
            r.rots_consumed,
            r.flights,
            r.ns_total,
            r.ns_call
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Ring {
        Ring::new(16).unwrap()
    }

    #[test]
    fn wrong_comparison_bits_are_rejected() {
        let r = ring();
        let (x, y) = (vec![5, 2], vec![3, 2]);
        let right = Outputs::Bits(Bits::from_bools(&[true, false]), Bits::zeros(2));
        assert!(check(ElementOp::Millionaire, r, 4, &x, &y, &right).is_ok());
        let wrong = Outputs::Bits(Bits::from_bools(&[true, true]), Bits::zeros(2));
        assert!(check(ElementOp::Millionaire, r, 4, &x, &y, &wrong).is_err());
    }

    #[test]
    fn truncation_accepts_the_one_bit_error_and_nothing_more() {
        let r = ring();
        let x = vec![r.from_signed(-33)];
        // floor(-33 / 16) = -3; -4 is the allowed one-bit error; -2 is wrong.
        let out = |v: i64| Outputs::Ring(vec![r.from_signed(v)], vec![0]);
        assert!(check(ElementOp::Truncate, r, 4, &x, &[], &out(-3)).is_ok());
        assert!(check(ElementOp::Truncate, r, 4, &x, &[], &out(-4)).is_ok());
        assert!(check(ElementOp::Truncate, r, 4, &x, &[], &out(-2)).is_err());
        assert!(check(ElementOp::TruncateExact, r, 4, &x, &[], &out(-4)).is_err());
        assert!(check(ElementOp::ReluTruncate, r, 4, &x, &[], &out(0)).is_ok());
    }

    #[test]
    fn maxpool_checks_each_window_maximum() {
        let r = ring();
        let x: Vec<u64> = [1, -7, 4, 2, -3, -1, -9, -2]
            .iter()
            .map(|&v| r.from_signed(v))
            .collect();
        let right = Outputs::Ring(vec![4, r.from_signed(-1)], vec![0, 0]);
        assert!(check(ElementOp::Maxpool2x2, r, 4, &x, &[], &right).is_ok());
        let wrong = Outputs::Ring(vec![4, r.from_signed(-2)], vec![0, 0]);
        assert!(check(ElementOp::Maxpool2x2, r, 4, &x, &[], &wrong).is_err());
    }

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 4.0);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
