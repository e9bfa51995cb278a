//! `fusion-bench infer`: one secure batch of a zoo network, two OS processes.
//!
//! The calling process is the **client**. It spawns its own executable with
//! the hidden `party-server` subcommand ([`serve_party`]): the child builds
//! the same seeded zoo model (`fusion_nn::zoo::build(net, seed)`), binds
//! `127.0.0.1:0` with a fresh self-signed [`Identity`], prints one line
//! `LISTENING <addr> <sha256 fingerprint>` on stdout, serves exactly one
//! session and exits. The client pins that fingerprint and connects over
//! QUIC + TLS (fusion-net), directly (`--link none`) or through fusion-net's
//! user-space [`Relay`] running **in the client process** (`--link lan|wan`,
//! the paper's presets; the LAN run allows 9000-byte packets, see
//! [`InferOptions::mtu`]).
//!
//! The child dies with its parent: it exits when its stdin (a pipe held by
//! the parent) reaches end-of-file, every protocol step has a timeout, the
//! whole child run has a time limit, and the parent kills it on drop.
//!
//! # What is measured (client clock, client meter)
//!
//! * `setup_s`, `setup_bytes`: QUIC + TLS connect, the hello, HE key and OT
//!   setup ([`SecureClient::connect`]).
//! * `wall_s`: one batch ([`SecureClient::infer_encoded`]), median over the
//!   `--reps` measured batches after `--warmup` unmeasured ones. The server's
//!   HE encoding of the weights for the batch's chunk sizes is model load: the
//!   server party does it before it listens (the SPU peer likewise encodes its
//!   weights before its first inference), so it is in neither figure.
//! * `bytes_*`: wire bytes of the batch (UDP payload of QUIC datagrams) per
//!   direction, from the client's meter; `phases` splits them (and time) by
//!   engine phase (linear, nonlinear, local, output), `steps` by schedule
//!   step (every layer's name and kind, in schedule order; a step's bytes
//!   include the background random-OT generation running during it).
//! * `argmax_agreement`, `max_logit_error`: the secure logits against the
//!   plaintext fixed-point interpreter on the same encoded inputs, computed in
//!   the client process from the same seeded model. This is a **benchmark
//!   shortcut**: a real client never has the weights. With
//!   `--output-mode label` the client gets one-hot vectors: the argmax
//!   agreement compares their class, and `max_logit_error` is reported as 0
//!   (no logits to compare). With `--output-mode reverse-sigmoid` both
//!   figures compare the revealed `y_hat` with the plaintext fixed-point
//!   pipeline's (`fusion_nn::reverse_sigmoid`), the error in probability
//!   units. `output_mode` names the mode.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use fusion_engine::backends::cheetah::Cheetah;
use fusion_engine::backends::cheetah::config::{CheetahConfig, HeChoice, OtKind, RoundingChoice};
use fusion_engine::backends::cryptflow2::{Cryptflow2, Cryptflow2Config};
use fusion_engine::backends::delphi::{Delphi, DelphiConfig};
use fusion_engine::behaviour::Honest;
use fusion_engine::statsec::StatSecTarget;
use fusion_engine::{
    Backend, ClientConfig, PhaseFigures, SecureClient, SecureServer, ServedModel, ServerConfig,
    StepFigures,
};
use fusion_net::{Identity, LinkConfig, NetConfig, Relay, RelayStats, Server, ServerPin, connect};
use fusion_nn::fixed::{FixedProgram, argmax_signed};
use fusion_nn::{eval, zoo};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result, io};
use crate::machine::{Machine, timestamp};

/// The emulated link between the parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// Plain loopback, no relay.
    #[default]
    None,
    /// The paper's LAN through the relay: 0.3 ms RTT, 382 MB/s.
    Lan,
    /// The paper's WAN through the relay: 40 ms RTT, 44 MB/s.
    Wan,
}

impl LinkKind {
    /// `none`, `lan` or `wan`.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::None => "none",
            LinkKind::Lan => "lan",
            LinkKind::Wan => "wan",
        }
    }

    /// The relay's link, if any.
    pub fn link(self) -> Option<LinkConfig> {
        match self {
            LinkKind::None => None,
            LinkKind::Lan => Some(LinkConfig::lan()),
            LinkKind::Wan => Some(LinkConfig::wan()),
        }
    }

    /// Default largest IP packet: 9000 (jumbo frames) on the LAN, 1500 otherwise.
    pub fn default_mtu(self) -> u16 {
        match self {
            LinkKind::Lan => 9000,
            LinkKind::None | LinkKind::Wan => 1500,
        }
    }
}

impl std::str::FromStr for LinkKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(LinkKind::None),
            "lan" => Ok(LinkKind::Lan),
            "wan" => Ok(LinkKind::Wan),
            o => Err(format!("unknown link `{o}` (none, lan or wan)")),
        }
    }
}

/// How the server tunes the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineTuning {
    /// [`CheetahConfig::minimise_bytes`]: HE reply packing (Galois keys sent
    /// once per session), the bytes-first HE planner, 3-bit millionaires'
    /// blocks. What `fusion serve --minimise-bytes` runs.
    #[default]
    Bytes,
    /// [`CheetahConfig::default`]: no packing, the default planner and 4-bit
    /// blocks. What `fusion serve` runs by default.
    Default,
}

impl EngineTuning {
    /// `bytes` or `default`.
    pub fn name(self) -> &'static str {
        match self {
            EngineTuning::Bytes => "bytes",
            EngineTuning::Default => "default",
        }
    }

    /// The `cheetah` configuration it starts from.
    pub fn cheetah_config(self) -> CheetahConfig {
        match self {
            EngineTuning::Bytes => CheetahConfig::minimise_bytes(),
            EngineTuning::Default => CheetahConfig::default(),
        }
    }
}

/// Everything that defines one `infer` run.
#[derive(Debug, Clone, clap::Args)]
pub struct InferOptions {
    /// Zoo network: mlp-bc, mlp-mnist, cnn-mnist, cnn-cifar10, lenet, fmnist-cnn, timit-dnn, resnet50.
    #[arg(long, value_name = "NAME")]
    pub net: String,
    /// Samples in the batch.
    #[arg(long, value_name = "N")]
    pub batch: usize,
    /// Emulated link between the parties (the relay runs in the client process).
    #[arg(long, value_enum, default_value = "none")]
    pub link: LinkKind,
    /// Seed of the model weights and of the synthetic inputs.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// The two-party backend (see `fusion backends`).
    #[arg(long, value_name = "NAME", default_value = "cheetah")]
    pub backend: String,
    /// Backend `cheetah`: OT flavour of the non-linear layers, silent or iknp.
    #[arg(long, value_name = "FLAVOUR", default_value = "silent")]
    pub ot: OtKind,
    /// Measured batches (the reported time and bytes are medians).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub reps: usize,
    /// Unmeasured batches before the measured ones (same size).
    #[arg(long, value_name = "W", default_value_t = 0)]
    pub warmup: usize,
    /// Ring bits l.
    #[arg(long, value_name = "L", default_value_t = 37)]
    pub ring_bits: u32,
    /// Fractional bits f.
    #[arg(long, value_name = "F", default_value_t = 12)]
    pub frac_bits: u32,
    /// Backend `cheetah`: RLWE preset, auto, n4096 or n8192.
    #[arg(long, value_name = "PRESET", default_value = "auto")]
    pub he: String,
    /// Backend `cheetah`: query rounding, `auto` (the largest every layer
    /// admits), `off` or a number of bits (`fusion serve --query-rounding`).
    #[arg(long, value_name = "auto|off|BITS", default_value = "auto")]
    pub query_rounding: String,
    /// The input box the server announces (`fusion serve --input-bound`):
    /// `auto` is `1` for the pixel networks (inputs in `[0, 1)`) and none
    /// for the others (standard normal inputs have no bound), `off` none, or
    /// the largest `|x|`. With a box the server also announces the widths its
    /// range analysis proves (up to the first value over the ring's
    /// contract), and the fused ReLU-truncations after bounded layers compare
    /// fewer bits.
    #[arg(long, value_name = "auto|off|X", default_value = "auto")]
    pub input_bound: String,
    /// Largest chunk of samples run through the network at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub chunk: usize,
    /// Largest IP packet QUIC may use (default: 9000 on `lan`, else 1500).
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u16>,
    /// Time limit in seconds for the whole run (server process included).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub timeout: u64,
    /// Backend `cheetah`: engine tuning of the server, `bytes` (HE reply
    /// packing, bytes-first planner, 3-bit millionaires' blocks) or
    /// `default` (`fusion serve`'s defaults).
    #[arg(long, value_enum, default_value = "bytes")]
    pub engine: EngineTuning,
    /// Backend `cheetah`: the bandwidth, in bytes per second, at which the
    /// server's HE planner prices bytes against its estimated computation
    /// (`fusion_he::PlanOptions::bandwidth`), instead of the engine
    /// tuning's (`bytes`: 1e7, `default`: 3.82e8). `1` minimises bytes
    /// outright.
    #[arg(long, value_name = "BYTES_PER_S")]
    pub plan_bandwidth: Option<f64>,
    /// Flood the HE replies for BITS of statistical security per session (at
    /// most 2^30 revealed coefficients; `fusion serve`'s default is 40)
    /// instead of 40 bits per revealed coefficient, the like-for-like setting
    /// of Cheetah and SPU (the default here).
    #[arg(long, value_name = "BITS")]
    pub stat_sec_per_session: Option<u32>,
    /// What the server reveals: `logits`, `label` (a secure argmax on the
    /// shares) or `reverse-sigmoid[:BETA,GAMMA]` (the perturbed
    /// probabilities computed on the shares); the stages are metered in the
    /// output phase (the cost of the paper's Figure 7).
    #[arg(long, value_name = "MODE", default_value = "logits")]
    pub output_mode: String,
}

/// The server's flooding setting for `per_session` (see
/// [`InferOptions::stat_sec_per_session`]).
pub fn stat_sec_target(per_session: Option<u32>) -> StatSecTarget {
    match per_session {
        Some(bits) => StatSecTarget::PerSession {
            bits,
            max_revealed: fusion_engine::statsec::DEFAULT_MAX_REVEALED,
        },
        None => StatSecTarget::default(),
    }
}

impl InferOptions {
    /// Defaults for `net` and `batch` (as the command line's).
    pub fn new(net: &str, batch: usize) -> Self {
        InferOptions {
            net: net.into(),
            batch,
            link: LinkKind::None,
            seed: 0,
            backend: "cheetah".into(),
            ot: OtKind::Silent,
            reps: 1,
            warmup: 0,
            ring_bits: 37,
            frac_bits: 12,
            he: "auto".into(),
            query_rounding: "auto".into(),
            input_bound: "auto".into(),
            chunk: 256,
            mtu: None,
            timeout: 1800,
            engine: EngineTuning::Bytes,
            plan_bandwidth: None,
            stat_sec_per_session: None,
            output_mode: "logits".into(),
        }
    }

    /// The MTU in effect.
    pub fn mtu(&self) -> u16 {
        self.mtu.unwrap_or_else(|| self.link.default_mtu())
    }

    /// The equivalent `fusion-bench infer` command line.
    pub fn command(&self) -> String {
        let mut c = format!(
            "fusion-bench infer --net {} --batch {} --link {} --seed {} --ot {} --reps {} --warmup {}",
            self.net,
            self.batch,
            self.link.name(),
            self.seed,
            self.ot,
            self.reps,
            self.warmup
        );
        if (self.ring_bits, self.frac_bits) != (37, 12) {
            c += &format!(
                " --ring-bits {} --frac-bits {}",
                self.ring_bits, self.frac_bits
            );
        }
        if self.he != "auto" {
            c += &format!(" --he {}", self.he);
        }
        if self.query_rounding != "auto" {
            c += &format!(" --query-rounding {}", self.query_rounding);
        }
        if self.input_bound != "auto" {
            c += &format!(" --input-bound {}", self.input_bound);
        }
        if self.chunk != 256 {
            c += &format!(" --chunk {}", self.chunk);
        }
        if let Some(m) = self.mtu {
            c += &format!(" --mtu {m}");
        }
        if self.engine != EngineTuning::Bytes {
            c += &format!(" --engine {}", self.engine.name());
        }
        if let Some(b) = self.plan_bandwidth {
            c += &format!(" --plan-bandwidth {b}");
        }
        if self.backend != "cheetah" {
            c += &format!(" --backend {}", self.backend);
        }
        if let Some(b) = self.stat_sec_per_session {
            c += &format!(" --stat-sec-per-session {b}");
        }
        if self.output_mode != "logits" {
            c += &format!(" --output-mode {}", self.output_mode);
        }
        c + " --json"
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        if !zoo::NETS.contains(&self.net.as_str()) {
            return Err(BenchError::Usage(format!(
                "unknown network `{}` (one of {})",
                self.net,
                zoo::NETS.join(", ")
            )));
        }
        if self.batch == 0 || self.reps == 0 || self.chunk == 0 || self.timeout == 0 {
            return Err(BenchError::Usage(
                "--batch, --reps, --chunk and --timeout must be positive".into(),
            ));
        }
        eval::fixed_point(self.ring_bits, self.frac_bits)
            .map_err(|e| BenchError::Usage(e.to_string()))?;
        self.he.parse::<HeChoice>().map_err(BenchError::Usage)?;
        self.query_rounding
            .parse::<RoundingChoice>()
            .map_err(BenchError::Usage)?;
        input_bound_for(&self.net, &self.input_bound)?;
        self.output_mode
            .parse::<fusion_engine::OutputMode>()
            .map_err(|e| BenchError::Usage(format!("--output-mode: {e}")))?;
        fusion_engine::backends::by_name(&self.backend)
            .map_err(|e| BenchError::Usage(e.to_string()))?;
        let cheetah_only = [
            ("--ot", self.ot != OtKind::Silent),
            ("--he", self.he != "auto"),
            ("--query-rounding", self.query_rounding != "auto"),
            ("--engine", self.engine != EngineTuning::Bytes),
            ("--plan-bandwidth", self.plan_bandwidth.is_some()),
        ];
        if self.backend != "cheetah"
            && let Some((flag, _)) = cheetah_only.iter().find(|(_, set)| *set)
        {
            return Err(BenchError::Usage(format!(
                "{flag} belongs to backend `cheetah`, not to `{}`",
                self.backend
            )));
        }
        if self.mtu() < 1200 {
            return Err(BenchError::Usage("--mtu must be at least 1200".into()));
        }
        if let Some(b) = self.plan_bandwidth {
            let mut plan = CheetahConfig::default().plan;
            plan.bandwidth = b;
            plan.validate()
                .map_err(|e| BenchError::Usage(format!("--plan-bandwidth: {e}")))?;
        }
        Ok(())
    }

    fn net_config(&self) -> NetConfig {
        let t = Duration::from_secs(self.timeout);
        let mut net = NetConfig::default();
        net.messages = net.messages.with_timeout(t);
        net.max_mtu = self.mtu();
        net.idle_timeout = Duration::from_secs(120).min(t.max(Duration::from_secs(30)));
        net.keep_alive = Some(Duration::from_secs(10));
        net
    }

    fn child_args(&self) -> Vec<String> {
        vec![
            "party-server".into(),
            "--net".into(),
            self.net.clone(),
            "--batch".into(),
            self.batch.to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--backend".into(),
            self.backend.clone(),
            "--ot".into(),
            self.ot.to_string(),
            "--ring-bits".into(),
            self.ring_bits.to_string(),
            "--frac-bits".into(),
            self.frac_bits.to_string(),
            "--he".into(),
            self.he.clone(),
            "--query-rounding".into(),
            self.query_rounding.clone(),
            "--input-bound".into(),
            self.input_bound.clone(),
            "--chunk".into(),
            self.chunk.to_string(),
            "--mtu".into(),
            self.mtu().to_string(),
            "--timeout".into(),
            self.timeout.to_string(),
            "--engine".into(),
            self.engine.name().into(),
            "--output-mode".into(),
            self.output_mode.clone(),
        ]
        .into_iter()
        .chain(
            self.stat_sec_per_session
                .map(|b| ["--stat-sec-per-session".to_string(), b.to_string()])
                .into_iter()
                .flatten(),
        )
        .chain(
            self.plan_bandwidth
                .map(|b| ["--plan-bandwidth".to_string(), b.to_string()])
                .into_iter()
                .flatten(),
        )
        .collect()
    }
}

/// Bytes and seconds of one engine phase in the measured batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Phase name (`preprocessing`, `linear`, `nonlinear`, `local`, `output`).
    pub name: String,
    /// Client wall-clock seconds in the phase.
    pub seconds: f64,
    /// Bytes the client received (server to client).
    pub bytes_server_to_client: u64,
    /// Bytes the client sent (client to server).
    pub bytes_client_to_server: u64,
    /// Message flights.
    pub rounds: u64,
}

impl From<&PhaseFigures> for PhaseRecord {
    fn from(p: &PhaseFigures) -> Self {
        PhaseRecord {
            name: p.name.as_str().into(),
            seconds: p.seconds,
            bytes_server_to_client: p.bytes_received,
            bytes_client_to_server: p.bytes_sent,
            rounds: p.rounds,
        }
    }
}

/// Bytes and seconds of one schedule step in the measured batch (all its
/// chunks), from the client's meter: the wire bytes while the step was
/// current, including the connection's background traffic then (the
/// cheetah backend's random-OT generation runs beside the steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The program step's name (`conv1`, `conv1.trunc`, ...).
    pub name: String,
    /// `linear`, `local`, or the non-linear op (`relu_truncate`, `max_pool`, ...).
    pub kind: String,
    /// Client wall-clock seconds in the step.
    pub seconds: f64,
    /// Bytes the client received (server to client).
    pub bytes_server_to_client: u64,
    /// Bytes the client sent (client to server).
    pub bytes_client_to_server: u64,
    /// Message flights.
    pub rounds: u64,
}

impl From<&StepFigures> for StepRecord {
    fn from(p: &StepFigures) -> Self {
        StepRecord {
            name: p.name.clone(),
            kind: p.kind.clone(),
            seconds: p.seconds,
            bytes_server_to_client: p.bytes_received,
            bytes_client_to_server: p.bytes_sent,
            rounds: p.rounds,
        }
    }
}

/// The JSON object `fusion-bench infer --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferResult {
    /// Always `"fusion"`.
    pub peer: String,
    /// Zoo network.
    pub net: String,
    /// Samples per batch.
    pub batch: usize,
    /// `none`, `lan` or `wan`.
    pub link: String,
    /// The emulated link's parameters (absent for `none`).
    pub link_config: Option<LinkConfig>,
    /// Where the relay ran.
    pub relay: Option<String>,
    /// Largest IP packet QUIC could use.
    pub mtu: u16,
    /// Weights and inputs seed.
    pub seed: u64,
    /// Measured batches.
    pub reps: usize,
    /// Unmeasured batches before them.
    pub warmup: usize,
    /// Connect + hello + HE key + OT setup, client clock.
    pub setup_s: f64,
    /// Setup bytes, both directions.
    pub setup_bytes: u64,
    /// Setup bytes server to client.
    pub setup_bytes_server_to_client: u64,
    /// Setup bytes client to server.
    pub setup_bytes_client_to_server: u64,
    /// One batch's inference (median over `reps`), client clock.
    pub wall_s: f64,
    /// Every measured batch's time.
    pub wall_s_runs: Vec<f64>,
    /// Warm-up batches' times.
    pub warmup_s_runs: Vec<f64>,
    /// Inference bytes server to client (median batch).
    pub bytes_server_to_client: u64,
    /// Inference bytes client to server (median batch).
    pub bytes_client_to_server: u64,
    /// Both directions (median batch).
    pub bytes_total: u64,
    /// Both directions, every measured batch.
    pub bytes_total_runs: Vec<u64>,
    /// `wall_s / batch` in milliseconds.
    pub per_sample_ms: f64,
    /// `bytes_total / batch` in KiB.
    pub per_sample_kib: f64,
    /// Fraction of samples whose secure argmax equals the plaintext fixed-point engine's.
    pub argmax_agreement: f64,
    /// Largest absolute logit difference to the plaintext fixed-point engine.
    pub max_logit_error: f64,
    /// Samples checked (every batch, warm-ups included).
    pub checked_samples: usize,
    /// Per phase of the median batch, from the client's meter.
    pub phases: Vec<PhaseRecord>,
    /// Per schedule step of the median batch, in schedule order, from the
    /// client's meter (empty in records from before steps were metered).
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    /// Chunks the batch ran in.
    pub chunks: usize,
    /// Ring bits l.
    pub ring_bits: u32,
    /// Fractional bits f.
    pub frac_bits: u32,
    /// RLWE preset the server chose.
    pub he_preset: String,
    /// Engine tuning of the server (`bytes` or `default`).
    #[serde(default)]
    pub engine: EngineTuning,
    /// HE reply-packing levels the server announced (0: off).
    #[serde(default)]
    pub reply_packing: u32,
    /// The query rounding `d` the server announced (bits; 0: queries sent
    /// exactly).
    #[serde(default)]
    pub query_rounding_bits: u32,
    /// The magnitude bounds the server announced (`--input-bound`; signed
    /// bits per value, input first; empty: none).
    #[serde(default)]
    pub value_bits: Vec<u32>,
    /// OT flavour.
    pub ot: String,
    /// The two-party backend.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// What the server revealed: `logits` or `label` (secure argmax).
    #[serde(default = "default_output_mode")]
    pub output_mode: String,
    /// Bytes of the preprocessing phase of the median batch (included in
    /// `bytes_total`).
    #[serde(default)]
    pub preprocessing_bytes: u64,
    /// Client seconds of the preprocessing phase of the median batch
    /// (included in `wall_s`).
    #[serde(default)]
    pub preprocessing_s: f64,
    /// Bytes of the median batch outside preprocessing (`bytes_total −
    /// preprocessing_bytes`: for `delphi`, its online phase).
    #[serde(default)]
    pub online_bytes: u64,
    /// Client seconds of the median batch outside preprocessing (`wall_s −
    /// preprocessing_s`).
    #[serde(default)]
    pub online_s: f64,
    /// Total bytes the server reported for the whole session (its own meter).
    pub server_session_bytes: u64,
    /// Relay counters (emulated links only).
    pub relay_stats: Option<RelayStats>,
    /// Transport.
    pub transport: String,
    /// The machine.
    pub machine: Machine,
    /// When the run ended (UTC).
    pub timestamp: String,
    /// The flooding's statistical security per revealed HE coefficient, as
    /// the server announced it (40: Cheetah's and SPU's like-for-like
    /// setting; 0 in records from before it was reported).
    #[serde(default)]
    pub stat_sec_bits_per_coefficient: u32,
    /// The flooding's statistical security over the whole session:
    /// per coefficient minus `log2` of the announced cap on revealed
    /// coefficients.
    #[serde(default)]
    pub stat_sec_bits_per_session: f64,
    /// The announced cap on the coefficients a session may reveal.
    #[serde(default)]
    pub max_revealed_coefficients: u64,
    /// The equivalent command line.
    pub command: String,
}

fn default_output_mode() -> String {
    "logits".into()
}

impl InferResult {
    /// A short human summary.
    pub fn summary(&self) -> String {
        let kib = |b: u64| b as f64 / 1024.0;
        let mut s = format!(
            "{} batch {} over {} ({}: OT {}, HE {}, l = {}, f = {})\n  setup   {:>9.3} s {:>12.1} KiB\n  batch   {:>9.3} s {:>12.1} KiB  (s->c {:.1} KiB, c->s {:.1} KiB)\n  per sample {:.2} ms, {:.1} KiB; argmax agreement {:.4}, max logit error {:.3e} ({} samples)\n",
            self.net,
            self.batch,
            self.link,
            self.backend,
            self.ot,
            self.he_preset,
            self.ring_bits,
            self.frac_bits,
            self.setup_s,
            kib(self.setup_bytes),
            self.wall_s,
            kib(self.bytes_total),
            kib(self.bytes_server_to_client),
            kib(self.bytes_client_to_server),
            self.per_sample_ms,
            self.per_sample_kib,
            self.argmax_agreement,
            self.max_logit_error,
            self.checked_samples
        );
        s += &format!(
            "  flooding {} bits per revealed coefficient, {:.1} bits per session (cap {})\n",
            self.stat_sec_bits_per_coefficient,
            self.stat_sec_bits_per_session,
            self.max_revealed_coefficients
        );
        s += &format!(
            "  offline (preprocessing) {:.3} s {:.1} KiB; online {:.3} s {:.1} KiB\n",
            self.preprocessing_s,
            kib(self.preprocessing_bytes),
            self.online_s,
            kib(self.online_bytes)
        );
        for p in &self.phases {
            s += &format!(
                "    {:<10} {:>8.3} s  s->c {:>10.1} KiB  c->s {:>10.1} KiB\n",
                p.name,
                p.seconds,
                kib(p.bytes_server_to_client),
                kib(p.bytes_client_to_server)
            );
        }
        let mut slow: Vec<&StepRecord> = self.steps.iter().collect();
        slow.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        if !slow.is_empty() {
            s += &format!(
                "  slowest steps ({} of {}; all in the JSON):\n",
                slow.len().min(SUMMARY_STEPS),
                slow.len()
            );
        }
        for p in slow.iter().take(SUMMARY_STEPS) {
            s += &format!(
                "    {:<24} {:<15} {:>8.3} s  s->c {:>10.1} KiB  c->s {:>10.1} KiB\n",
                p.name,
                p.kind,
                p.seconds,
                kib(p.bytes_server_to_client),
                kib(p.bytes_client_to_server)
            );
        }
        s
    }
}

/// Steps the human summary lists (the slowest first).
const SUMMARY_STEPS: usize = 8;

/// The seed of the synthetic inputs for weights seed `seed`. It must differ
/// from the weights' seed: `zoo::build` and `zoo::synthetic_inputs` draw from
/// the same ChaCha20 stream for equal seeds, which would make the inputs
/// copies of the first layer's weight rows (and blow up square activations).
pub fn input_seed(seed: u64) -> u64 {
    seed ^ 0x1a9b_75ee_d000_0001
}

/// The plaintext fixed-point reference of a run: the program and the
/// encoded inputs (computed by the client process from the seeded model).
struct Reference {
    program: FixedProgram,
    x: Vec<u64>,
    y: Vec<u64>,
}

fn reference(o: &InferOptions) -> Result<Reference> {
    let fixed = eval::fixed_point(o.ring_bits, o.frac_bits)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let model = zoo::build(&o.net, o.seed).map_err(|e| BenchError::Usage(e.to_string()))?;
    let program =
        fusion_nn::fixed::lower(&model, fixed).map_err(|e| BenchError::Usage(e.to_string()))?;
    let raw = zoo::synthetic_inputs(&o.net, input_seed(o.seed), o.batch)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let pre = model
        .meta
        .preprocess
        .apply(&raw)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let x = program
        .encode_input(&pre)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let (y, trace) = program
        .run_traced(&x)
        .map_err(|e| BenchError::Session(format!("plaintext fixed-point run: {e}")))?;
    let bits_used = trace.iter().map(|s| s.bits_used).max().unwrap_or(0);
    if bits_used + 1 >= o.ring_bits {
        // The reference wraps around the ring: its outputs (and the secure
        // engine's, which follow different truncation errors) are meaningless.
        return Err(BenchError::Usage(format!(
            "{} with seed {} needs {bits_used} bits but the ring has {}: the fixed-point \
             values overflow; use a larger ring, e.g. --ring-bits 64 --frac-bits 20",
            o.net, o.seed, o.ring_bits
        )));
    }
    Ok(Reference {
        x: x.data().to_vec(),
        y: y.data().to_vec(),
        program,
    })
}

/// Argmax agreement and largest error of `got` against `want` (both
/// `samples x classes` ring elements at `scale` fractional bits).
pub fn compare_outputs(
    program: &FixedProgram,
    classes: usize,
    want: &[u64],
    got: &[u64],
    scale: u32,
) -> Result<(usize, usize, f64)> {
    let ring = program.ring();
    let n = want.len() / classes.max(1);
    let t = |v: &[u64]| {
        fusion_nn::tensor::RingTensor::new(vec![n, classes], v.to_vec())
            .map_err(|e| BenchError::Session(e.to_string()))
    };
    let (a, b) = (
        argmax_signed(ring, &t(want)?),
        argmax_signed(ring, &t(got)?),
    );
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    let max_dev = want
        .iter()
        .zip(got)
        .map(|(&x, &y)| (ring.to_signed(x) - ring.to_signed(y)).unsigned_abs())
        .max()
        .unwrap_or(0);
    let err = max_dev as f64 / 2f64.powi(scale as i32);
    Ok((agree, n, err))
}

/// What the client should receive in `mode` for the reference logits `y`
/// (`samples x classes` at the program's output scale), and its scale: the
/// logits themselves, or in reverse-sigmoid mode the plaintext fixed-point
/// pipeline's `y_hat` ([`fusion_nn::reverse_sigmoid::ReverseSigmoidTables`]).
pub fn expected_outputs(
    program: &FixedProgram,
    classes: usize,
    mode: fusion_engine::OutputMode,
    y: &[u64],
) -> Result<(Vec<u64>, u32)> {
    let ring = program.ring();
    let rs = mode
        .reverse_sigmoid()
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let Some(rs) = rs else {
        return Ok((y.to_vec(), program.output_scale()));
    };
    let tables =
        fusion_nn::reverse_sigmoid::ReverseSigmoidTables::for_program(rs, classes, program)
            .map_err(|e| BenchError::Usage(e.to_string()))?;
    let mut out = Vec::with_capacity(y.len());
    for row in y.chunks(classes.max(1)) {
        let z: Vec<i64> = row.iter().map(|&v| ring.to_signed(v)).collect();
        out.extend(
            tables
                .apply_fixed(&z)
                .into_iter()
                .map(|v| ring.from_signed(v)),
        );
    }
    Ok((out, program.fixed.frac_bits))
}

/// The server child process; killed (and reaped) on drop.
struct PartyProcess {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
}

impl Drop for PartyProcess {
    fn drop(&mut self) {
        // Closing stdin asks the child to exit; give it a moment, then kill.
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns the server party and reads its address and fingerprint.
fn spawn_server(o: &InferOptions) -> Result<(PartyProcess, SocketAddr, ServerPin)> {
    let exe = std::env::current_exe().map_err(|e| io("current executable", e))?;
    let mut child = Command::new(&exe)
        .args(o.child_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| io(format!("spawning {}", exe.display()), e))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let mut proc = PartyProcess { child, stdin };
    let stdout = stdout.ok_or_else(|| BenchError::Peer("no stdout pipe".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        // Drain the rest so the child never blocks on a full pipe.
        for _ in lines {}
    });
    let wait = Duration::from_secs(o.timeout);
    let line = match rx.recv_timeout(wait) {
        Ok(Some(Ok(l))) => l,
        Ok(_) => {
            let status = proc.child.wait().ok();
            return Err(BenchError::Peer(format!(
                "the server process ended before listening ({status:?})"
            )));
        }
        Err(_) => {
            return Err(BenchError::Timeout(format!(
                "the server process did not listen within {} s",
                wait.as_secs()
            )));
        }
    };
    let (addr, pin) = parse_listen_line(&line)?;
    let _ = &mut proc;
    Ok((proc, addr, pin))
}

/// Parses `LISTENING <addr> <fingerprint>`.
pub fn parse_listen_line(line: &str) -> Result<(SocketAddr, ServerPin)> {
    let bad = || BenchError::Peer(format!("unexpected line from the server process: {line:?}"));
    let mut it = line.split_whitespace();
    if it.next() != Some("LISTENING") {
        return Err(bad());
    }
    let addr: SocketAddr = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let pin = ServerPin::from_fingerprint_hex(it.next().ok_or_else(bad)?).map_err(|_| bad())?;
    Ok((addr, pin))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| io("async runtime", e))
}

/// Sizes rayon's pool as the `fusion` CLI does (OT receivers block workers).
pub fn init_rayon() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(cores.max(2) * 2)
        .build_global();
}

fn median_index(v: &[f64]) -> usize {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    idx[idx.len() / 2]
}

/// Runs `infer` (client side; spawns the server party). Progress on stderr.
pub fn run_infer(o: &InferOptions) -> Result<InferResult> {
    o.validate()?;
    init_rayon();
    eprintln!(
        "fusion-bench: {} batch {} over {}: building the reference ...",
        o.net,
        o.batch,
        o.link.name()
    );
    let reference = reference(o)?;
    let (proc, server_addr, pin) = spawn_server(o)?;
    let relay = match o.link.link() {
        Some(link) => Some(
            Relay::start((Ipv4Addr::LOCALHOST, 0).into(), server_addr, link)
                .map_err(|e| BenchError::Session(format!("relay: {e}")))?,
        ),
        None => None,
    };
    let addr = relay.as_ref().map_or(server_addr, Relay::local_addr);
    let net = o.net_config();
    let timeout = Duration::from_secs(o.timeout);
    // Asking for chunks of min(batch, chunk) makes the client plan its HE
    // layers for the (first) chunk size during setup, not inside the batch.
    let mut config = ClientConfig {
        chunk: o.chunk.min(o.batch),
        step_timeout: timeout,
        ..ClientConfig::default()
    };
    config.policy.ring_bits = Some(o.ring_bits);
    config.policy.frac_bits = Some(o.frac_bits);
    let backend = client_backend(o)?;
    let rt = runtime()?;
    let mut rng = fusion_core::mix::seeded_rng_for_experiments(o.seed ^ 0xc11e_4700);
    let x = reference.x.clone();
    let n = o.batch;
    let total_runs = o.warmup + o.reps;
    let outcome = rt.block_on(async {
        let work = async {
            let t0 = Instant::now();
            let session = connect(addr, &pin, &net)
                .await
                .map_err(|e| BenchError::Session(format!("connect: {e}")))?;
            let mut client = SecureClient::connect(session, config, backend.as_ref(), &mut rng)
                .await
                .map_err(|e| BenchError::Session(format!("setup: {e}")))?;
            let setup_s = t0.elapsed().as_secs_f64();
            let setup = client.report();
            eprintln!("fusion-bench: setup {setup_s:.2} s; running {total_runs} batch(es) of {n}");
            let mut runs = Vec::with_capacity(total_runs);
            for i in 0..total_runs {
                let t = Instant::now();
                let y = client
                    .infer_encoded(x.clone(), n)
                    .await
                    .map_err(|e| BenchError::Session(format!("batch {i}: {e}")))?;
                let secs = t.elapsed().as_secs_f64();
                let stats = client
                    .last_batch()
                    .cloned()
                    .ok_or_else(|| BenchError::Session("no batch figures".into()))?;
                eprintln!(
                    "fusion-bench: batch {}/{total_runs}{}: {secs:.3} s, {:.1} KiB",
                    i + 1,
                    if i < o.warmup { " (warm-up)" } else { "" },
                    (stats.bytes_sent + stats.bytes_received) as f64 / 1024.0
                );
                runs.push((secs, stats, y));
            }
            let announced: serde_json::Value =
                serde_json::from_str(&client.server_hello().announcement).unwrap_or_default();
            let he_preset = announced["he_preset"].as_str().unwrap_or("-").to_string();
            let reply_packing = announced["reply_packing"].as_u64().unwrap_or(0) as u32;
            let query_rounding = announced["query_rounding"].as_u64().unwrap_or(0) as u32;
            let stat_sec = client.server_hello().stat_sec;
            let value_bits = client.server_hello().model.value_bits.clone();
            let classes = client.classes();
            let end = client
                .finish()
                .await
                .map_err(|e| BenchError::Session(format!("finish: {e}")))?;
            Ok::<_, BenchError>((
                setup_s,
                setup,
                runs,
                (
                    he_preset,
                    reply_packing,
                    query_rounding,
                    stat_sec,
                    value_bits,
                ),
                classes,
                end,
            ))
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(BenchError::Timeout(format!(
                "the run did not finish within {} s",
                o.timeout
            ))),
        }
    });
    let relay_stats = relay.map(|r| {
        let s = r.stats();
        r.stop();
        s
    });
    drop(proc);
    let (
        setup_s,
        setup,
        runs,
        (he_preset, reply_packing, query_rounding_bits, stat_sec, value_bits),
        classes,
        end,
    ) = outcome?;
    let mut agree = 0;
    let mut checked = 0;
    let mut max_err = 0f64;
    let mode = o
        .output_mode
        .parse::<fusion_engine::OutputMode>()
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let (want, scale) = expected_outputs(&reference.program, classes, mode, &reference.y)?;
    for (_, _, y) in &runs {
        let (a, c, e) = compare_outputs(&reference.program, classes, &want, y, scale)?;
        agree += a;
        checked += c;
        max_err = max_err.max(e);
    }
    let measured = &runs[o.warmup..];
    let walls: Vec<f64> = measured.iter().map(|r| r.0).collect();
    let mid = &measured[median_index(&walls)];
    let stats = &mid.1;
    let bytes_total = stats.bytes_sent + stats.bytes_received;
    Ok(InferResult {
        peer: "fusion".into(),
        net: o.net.clone(),
        batch: n,
        link: o.link.name().into(),
        link_config: o.link.link(),
        relay: o
            .link
            .link()
            .map(|_| "fusion-net user-space UDP relay in the client process".into()),
        mtu: o.mtu(),
        seed: o.seed,
        reps: o.reps,
        warmup: o.warmup,
        setup_s,
        setup_bytes: setup.total.bytes_total(),
        setup_bytes_server_to_client: setup.total.bytes_received,
        setup_bytes_client_to_server: setup.total.bytes_sent,
        wall_s: mid.0,
        wall_s_runs: walls.clone(),
        warmup_s_runs: runs[..o.warmup].iter().map(|r| r.0).collect(),
        bytes_server_to_client: stats.bytes_received,
        bytes_client_to_server: stats.bytes_sent,
        bytes_total,
        bytes_total_runs: measured
            .iter()
            .map(|r| r.1.bytes_sent + r.1.bytes_received)
            .collect(),
        per_sample_ms: mid.0 * 1e3 / n as f64,
        per_sample_kib: bytes_total as f64 / 1024.0 / n as f64,
        argmax_agreement: agree as f64 / checked.max(1) as f64,
        // Label mode: the client has one-hot vectors, no logits to compare
        // (reverse sigmoid: the error of y_hat against the plaintext
        // pipeline's).
        max_logit_error: if o.output_mode == "label" {
            0.0
        } else {
            max_err
        },
        checked_samples: checked,
        phases: stats.phases.iter().map(PhaseRecord::from).collect(),
        steps: stats.steps.iter().map(StepRecord::from).collect(),
        chunks: stats.chunks,
        ring_bits: o.ring_bits,
        frac_bits: o.frac_bits,
        he_preset,
        engine: o.engine,
        reply_packing,
        query_rounding_bits,
        value_bits,
        // `delphi` and `aby` always run IKNP, `cryptflow2` KK13 and IKNP;
        // `--ot` belongs to `cheetah`.
        ot: if o.backend == fusion_engine::backends::delphi::NAME
            || o.backend == fusion_engine::backends::aby::NAME
        {
            "iknp".into()
        } else if o.backend == fusion_engine::backends::cryptflow2::NAME {
            "kk13+iknp".into()
        } else {
            o.ot.to_string()
        },
        backend: o.backend.clone(),
        output_mode: o.output_mode.clone(),
        preprocessing_bytes: stats.preprocessing.bytes_sent + stats.preprocessing.bytes_received,
        preprocessing_s: stats.preprocessing.seconds,
        online_bytes: bytes_total
            .saturating_sub(stats.preprocessing.bytes_sent + stats.preprocessing.bytes_received),
        online_s: (mid.0 - stats.preprocessing.seconds).max(0.0),
        server_session_bytes: end.report.total.bytes_total(),
        relay_stats,
        transport: "QUIC + TLS 1.3 (fusion-net, s2n-quic) over 127.0.0.1, two OS processes".into(),
        machine: Machine::current(),
        timestamp: timestamp(),
        stat_sec_bits_per_coefficient: stat_sec.map_or(0, |f| f.per_coefficient_bits),
        stat_sec_bits_per_session: stat_sec.map_or(0.0, |f| f.per_session_bits()),
        max_revealed_coefficients: stat_sec.map_or(0, |f| f.max_revealed),
        command: o.command(),
    })
}

fn default_backend() -> String {
    "cheetah".into()
}

/// The client's side of the backend of `o`.
fn client_backend(o: &InferOptions) -> Result<Box<dyn Backend>> {
    match o.backend.as_str() {
        "cheetah" => {
            let config = CheetahConfig {
                require_ot: Some(o.ot),
                ..CheetahConfig::default()
            };
            Ok(Box::new(Cheetah::new(config)))
        }
        other => {
            fusion_engine::backends::by_name(other).map_err(|e| BenchError::Usage(e.to_string()))
        }
    }
}

/// Options of the hidden `party-server` subcommand (the child process).
#[derive(Debug, Clone, clap::Args)]
pub struct PartyOptions {
    /// Zoo network.
    #[arg(long)]
    pub net: String,
    /// Batch size the client will send (the HE encodings are prepared for it).
    #[arg(long)]
    pub batch: usize,
    /// Weights seed.
    #[arg(long)]
    pub seed: u64,
    /// The backend.
    #[arg(long, default_value = "cheetah")]
    pub backend: String,
    /// OT flavour.
    #[arg(long)]
    pub ot: OtKind,
    /// Ring bits.
    #[arg(long)]
    pub ring_bits: u32,
    /// Fractional bits.
    #[arg(long)]
    pub frac_bits: u32,
    /// HE preset choice.
    #[arg(long)]
    pub he: String,
    /// Query rounding choice.
    #[arg(long, default_value = "auto")]
    pub query_rounding: String,
    /// Input box choice.
    #[arg(long, default_value = "auto")]
    pub input_bound: String,
    /// Statistical security per session (`None`: 40 bits per coefficient).
    #[arg(long)]
    pub stat_sec_per_session: Option<u32>,
    /// Chunk size.
    #[arg(long)]
    pub chunk: usize,
    /// Largest IP packet.
    #[arg(long)]
    pub mtu: u16,
    /// Time limit in seconds.
    #[arg(long)]
    pub timeout: u64,
    /// Engine tuning.
    #[arg(long, value_enum, default_value = "bytes")]
    pub engine: EngineTuning,
    /// The HE planner's bandwidth, overriding the tuning's.
    #[arg(long)]
    pub plan_bandwidth: Option<f64>,
    /// Output mode (`logits` or `label`).
    #[arg(long, default_value = "logits")]
    pub output_mode: String,
}

/// The input box of `--input-bound` for the zoo network `net` (see
/// [`InferOptions::input_bound`]).
pub fn input_bound_for(net: &str, choice: &str) -> Result<Option<f64>> {
    match choice.trim() {
        "auto" => Ok(match zoo::input_kind(net) {
            Ok(zoo::InputKind::Pixels) => Some(1.0),
            _ => None,
        }),
        "off" => Ok(None),
        x => match x.parse::<f64>() {
            Ok(b) if b.is_finite() && b > 0.0 => Ok(Some(b)),
            _ => Err(BenchError::Usage(format!(
                "--input-bound `{x}`: auto, off or a positive number"
            ))),
        },
    }
}

/// The server party: builds the seeded model, listens on 127.0.0.1:0, prints
/// `LISTENING <addr> <fingerprint>`, serves one session, returns. Exits the
/// process if stdin reaches end-of-file (the parent is gone).
pub fn serve_party(p: &PartyOptions) -> Result<()> {
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(4),
                Ok(_) => {}
            }
        }
    });
    init_rayon();
    let fixed = eval::fixed_point(p.ring_bits, p.frac_bits)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let model = zoo::build(&p.net, p.seed).map_err(|e| BenchError::Usage(e.to_string()))?;
    let mut served =
        ServedModel::from_model(&model, fixed).map_err(|e| BenchError::Usage(e.to_string()))?;
    served.input_bound = input_bound_for(&p.net, &p.input_bound)?;
    let timeout = Duration::from_secs(p.timeout);
    let config = ServerConfig {
        chunk: p.chunk,
        step_timeout: timeout,
        ..ServerConfig::default()
    };
    let backend: Box<dyn Backend> = match p.backend.as_str() {
        "cheetah" => {
            let mut c = p.engine.cheetah_config();
            if let Some(b) = p.plan_bandwidth {
                c.plan.bandwidth = b;
            }
            c.he = p.he.parse().map_err(BenchError::Usage)?;
            c.query_rounding = p.query_rounding.parse().map_err(BenchError::Usage)?;
            c.ot_flavour = p.ot;
            c.stat_sec = stat_sec_target(p.stat_sec_per_session);
            Box::new(Cheetah::new(c))
        }
        fusion_engine::backends::delphi::NAME => Box::new(Delphi::new(DelphiConfig {
            stat_sec: stat_sec_target(p.stat_sec_per_session),
            ..DelphiConfig::default()
        })),
        fusion_engine::backends::cryptflow2::NAME => Box::new(Cryptflow2::new(Cryptflow2Config {
            stat_sec: stat_sec_target(p.stat_sec_per_session),
            ..Cryptflow2Config::default()
        })),
        other => {
            fusion_engine::backends::by_name(other).map_err(|e| BenchError::Usage(e.to_string()))?
        }
    };
    let mut server = SecureServer::new(served, config, vec![backend], Arc::new(Honest))
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let mode = p
        .output_mode
        .parse::<fusion_engine::OutputMode>()
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    server
        .set_output_mode(mode)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let identity = Identity::generate(&[]).map_err(|e| BenchError::Session(e.to_string()))?;
    let opts = InferOptions {
        mtu: Some(p.mtu),
        timeout: p.timeout,
        ..InferOptions::new(&p.net, p.batch)
    };
    let net = opts.net_config();
    let rt = runtime()?;
    let mut rng = fusion_core::mix::os_rng().map_err(|e| BenchError::Session(e.to_string()))?;
    rt.block_on(async {
        let work = async {
            let mut listener = Server::bind((Ipv4Addr::LOCALHOST, 0).into(), &identity, net)
                .map_err(|e| BenchError::Session(format!("bind: {e}")))?;
            // Model load: encode the HE weights for this batch's chunk sizes
            // before listening, so the timed batch does not pay for it (the
            // SPU peer also encodes its weights before the first inference).
            let mut sizes = server.session_params(p.chunk).chunks(p.batch);
            sizes.sort_unstable();
            sizes.dedup();
            for m in sizes {
                server
                    .precompute(m)
                    .await
                    .map_err(|e| BenchError::Session(format!("encoding the weights: {e}")))?;
            }
            {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "LISTENING {} {}",
                    listener.local_addr(),
                    identity.fingerprint()
                )
                .and_then(|()| out.flush())
                .map_err(|e| io("stdout", e))?;
            }
            let session = listener
                .accept()
                .await
                .map_err(|e| BenchError::Session(format!("accept: {e}")))?;
            server
                .serve(session, &mut rng)
                .await
                .map_err(|e| BenchError::Session(format!("serve: {e}")))?;
            Ok::<_, BenchError>(())
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(BenchError::Timeout(format!(
                "server party: no completed session within {} s",
                p.timeout
            ))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_lines_parse_and_garbage_is_rejected() {
        let fp = "ab".repeat(32);
        let (a, pin) = parse_listen_line(&format!("LISTENING 127.0.0.1:4433 {fp}")).expect("ok");
        assert_eq!(a.port(), 4433);
        assert_eq!(pin.fingerprint().to_string(), fp);
        for bad in ["", "LISTENING", "HELLO 127.0.0.1:1 00", "LISTENING x:1 ab"] {
            assert!(parse_listen_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn command_lines_round_trip_the_options() {
        let mut o = InferOptions::new("mlp-bc", 4);
        o.link = LinkKind::Lan;
        assert_eq!(o.mtu(), 9000);
        assert!(o.command().contains("--net mlp-bc --batch 4 --link lan"));
        assert!(InferOptions::new("nope", 1).validate().is_err());
        assert!(InferOptions::new("mlp-bc", 0).validate().is_err());
        assert!(InferOptions::new("mlp-bc", 2).validate().is_ok());
    }
}
