//! The session's control messages and their validation.
//!
//! Control messages travel on one fusion-net typed message stream per
//! direction (bincode, length-prefixed, frames bounded by
//! [`fusion_net::MessageConfig::max_frame_bytes`], every wait bounded by a
//! timeout). The backend's traffic runs on the streams it opens itself.
//!
//! # The session
//!
//! ```text
//! client                                   server
//!   Hello {protocol, version, chunk, backend} ->
//!                      <-  Hello {model, program view, session, backend's announcement}
//!                          (or Unavailable {offered backends}, or Refused,
//!                           or Busy {retry after S seconds}: the server runs
//!                           its maximum of sessions, or QuotaExceeded {when
//!                           the client's quota resets})
//!   [backend setup: keys, base OTs                                         <->]
//!   Batch {samples: N}                 ->                                       (repeat)
//!                      (the server may answer QuotaExceeded instead and end the session)
//!        for each chunk: preprocessing, the program's steps, output reveal <->
//!   Finish                             ->
//!                                      <-  Goodbye {server's meter report}
//! ```
//!
//! # Validation
//!
//! Every field is checked by its receiver before use: the server checks the
//! protocol name and version and the requested chunk and batch sizes; the
//! client checks the server's [`ServerHello`] completely
//! ([`ServerHello::validate`]): protocol and version, the public program's
//! structure ([`PublicProgram::validate`]; its type has no room for
//! coefficients), bounds on its size, the fixed-point parameters, the output
//! shape against the class count, the preprocessing against the input size,
//! the session parameters ([`SessionParams::validate`]) and its own
//! [`ClientPolicy`]; the backend's announcement is checked by the backend
//! ([`crate::backend::Backend::join`]).

use fusion_core::ring::FixedPoint;
use fusion_net::MeterReport;
use serde::{Deserialize, Serialize};

use crate::backend::check_announcement;
use crate::config::{ClientPolicy, SessionParams};
use crate::error::{SecureError, SecureResult};
use fusion_nn::fixed::{PublicOp, PublicProgram};
use fusion_nn::model::Preprocess;

/// The protocol name both parties send.
pub const PROTOCOL: &str = "fusion-secure-inference";
/// The protocol version this code speaks (3: the client names a backend, the
/// server announces the backend's parameters as its own JSON text; 4: the
/// server announces its output error bound; 5: the server announces the
/// statistical security of its HE flooding per session, [`ServerHello::stat_sec`],
/// and the accepted input box, [`ModelInfo::input_bound`]; 6: the server
/// announces its output mode, [`ModelInfo::output_mode`]; 7: the server
/// announces its magnitude bounds, [`ModelInfo::value_bits`]).
pub const VERSION: u32 = 7;
/// Longest wait a client takes from a busy refusal ([`ServerMsg::Busy`]),
/// seconds; a larger announced value is clamped to it.
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;
/// Longest backend name, bytes.
pub const MAX_BACKEND_NAME: usize = 64;
/// Most backends a server may list in a refusal.
pub const MAX_OFFERED: usize = 64;
/// Most steps an announced program may have.
pub const MAX_STEPS: usize = 1 << 12;
/// Most elements a per-sample value of an announced program may have.
pub const MAX_VALUE_ELEMENTS: usize = 1 << 24;
/// Most window entries per sample of a max pool in an announced program.
pub const MAX_WINDOW_ENTRIES: usize = 1 << 26;
/// Most coefficients (weights) one linear step of an announced program may
/// have: `in * out` for a dense layer, `in_channels * out_channels * k^2`
/// for a convolution (ResNet50's largest layer has 2.4 M). Bounds the HE
/// plan the client builds for the step.
pub const MAX_LAYER_WEIGHTS: u64 = 1 << 27;
/// Most multiply-accumulates per sample over all linear steps of an
/// announced program (ResNet50: about 4.1 G, i.e. `2^31.9`). Bounds the
/// work a server can make the client plan for and wait on.
pub const MAX_PROGRAM_MACS: u64 = 1 << 36;
/// Most elements per sample over all values of an announced program
/// (ResNet50 with its truncation steps: 37.6 M, `2^25.2`). Bounds the client's non-linear work
/// (OT per element) a server can ask for.
pub const MAX_PROGRAM_ELEMENTS: u64 = 1 << 28;
/// Largest output error bound a server may announce (score units).
pub const MAX_OUTPUT_ERROR_BOUND: f64 = 1e12;
/// Largest accepted input box a server may announce.
pub const MAX_INPUT_BOUND: f64 = 1e12;
/// Most classes an announced model may have.
pub const MAX_CLASSES: usize = 1 << 16;
/// Longest model name or step name, bytes.
pub const MAX_NAME: usize = 256;
/// Longest model description, bytes.
pub const MAX_DESCRIPTION: usize = 4096;

/// The client's first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// [`PROTOCOL`].
    pub protocol: String,
    /// [`VERSION`].
    pub version: u32,
    /// The chunk size the client prefers.
    pub chunk: u64,
    /// The backend the client wants to run.
    pub backend: String,
}

/// A batch request: the client states the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Samples in the batch (`N`).
    pub samples: u64,
}

/// Messages from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Opens the session.
    Hello(ClientHello),
    /// Starts a batch.
    Batch(BatchRequest),
    /// Ends the session.
    Finish,
}

/// The public facts about the served model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Number of classes (the output width).
    pub classes: u64,
    /// The public preprocessing the client applies before encoding.
    pub preprocess: Preprocess,
    /// A proven bound on how far an honest secure engine's output scores are
    /// from the plaintext fixed-point engine's, per entry, in score units
    /// ([`crate::bound::output_error_bound`]); `None` if the server has no
    /// finite bound. Clients that allow for near ties use it; a server that
    /// announces a wrong value cannot make a wrong label pass as verified
    /// (see `fusion_core::verify::Consistency::NearTies`).
    pub output_error_bound: Option<f64>,
    /// The accepted input box: the largest `|x|` of a preprocessed input
    /// entry the server accepts (`None`: unchecked). Outside it, values may
    /// wrap mod `2^l` and every copy would get the same wrong label, so the
    /// client refuses such samples before encoding them (see
    /// `fusion_nn::calibrate::RangeAnalysis`).
    pub input_bound: Option<f64>,
    /// The server's proven magnitude bounds: every value `v` of the program
    /// (index `0` the input, `i + 1` step `i`'s output) fits in
    /// `value_bits[v]` signed bits for every input in the box `input_bound`
    /// ([`crate::bound::range_analysis`], secure engine's deviation
    /// included). Empty: none announced (no box, or the range is not proven).
    /// Both parties build the schedule with them
    /// ([`crate::schedule::Schedule::with_bounds`]), so non-linear steps
    /// after a linear layer may compare fewer bits. Being computed from the
    /// weights, the widths reveal, per layer, the bit length of the largest
    /// row's `L1` norm times the box (docs/SECURITY.md, "Announced
    /// magnitude bounds"); a wrong width makes results wrong, which the
    /// checks catch, and costs the client no privacy.
    pub value_bits: Vec<u32>,
    /// What the client learns of each sample (chosen by the server;
    /// [`crate::output_mode`]).
    pub output_mode: crate::output_mode::OutputMode,
}

/// The server's answer to [`ClientHello`].
///
/// On the wire the program and the preprocessing travel as JSON text inside
/// the bincode message (their serde representations use internally tagged
/// enums, which bincode cannot decode); the text is parsed from the bounded
/// frame and then validated like everything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WireHello", try_from = "WireHello")]
pub struct ServerHello {
    /// [`PROTOCOL`].
    pub protocol: String,
    /// [`VERSION`].
    pub version: u32,
    /// The model's public metadata.
    pub model: ModelInfo,
    /// The program the parties execute, without the server's coefficients
    /// (a [`PublicProgram`], which cannot hold any); it carries the
    /// fixed-point parameters.
    pub program: PublicProgram,
    /// Chunking and batch limits.
    pub session: SessionParams,
    /// The backend that runs (the one the client asked for).
    pub backend: String,
    /// The backend's parameters, as the backend writes them (JSON text,
    /// checked by [`crate::backend::Backend::join`]).
    pub announcement: String,
    /// The statistical security of the backend's HE noise flooding: bits per
    /// revealed coefficient and the session's cap on revealed coefficients
    /// ([`crate::statsec`]); `None` for a backend that reveals no flooded
    /// coefficients. The client checks it against the backend's own
    /// announcement after [`crate::backend::Backend::join`].
    pub stat_sec: Option<crate::statsec::SessionFlooding>,
}

/// [`ServerHello`] as it travels: the program and preprocessing as JSON.
#[derive(Serialize, Deserialize)]
struct WireHello {
    protocol: String,
    version: u32,
    name: String,
    description: String,
    classes: u64,
    preprocess: String,
    output_error_bound: Option<f64>,
    input_bound: Option<f64>,
    value_bits: Vec<u32>,
    output_mode: crate::output_mode::OutputMode,
    program: String,
    session: SessionParams,
    backend: String,
    announcement: String,
    stat_sec: Option<crate::statsec::SessionFlooding>,
}

impl From<ServerHello> for WireHello {
    fn from(h: ServerHello) -> Self {
        WireHello {
            protocol: h.protocol,
            version: h.version,
            name: h.model.name,
            description: h.model.description,
            classes: h.model.classes,
            // Plain data: serialisation cannot fail.
            preprocess: serde_json::to_string(&h.model.preprocess).unwrap_or_default(),
            output_error_bound: h.model.output_error_bound,
            input_bound: h.model.input_bound,
            value_bits: h.model.value_bits,
            output_mode: h.model.output_mode,
            program: serde_json::to_string(&h.program).unwrap_or_default(),
            session: h.session,
            backend: h.backend,
            announcement: h.announcement,
            stat_sec: h.stat_sec,
        }
    }
}

impl TryFrom<WireHello> for ServerHello {
    type Error = String;

    fn try_from(w: WireHello) -> Result<Self, String> {
        Ok(ServerHello {
            protocol: w.protocol,
            version: w.version,
            model: ModelInfo {
                name: w.name,
                description: w.description,
                classes: w.classes,
                preprocess: serde_json::from_str(&w.preprocess)
                    .map_err(|e| format!("preprocessing: {e}"))?,
                output_error_bound: w.output_error_bound,
                input_bound: w.input_bound,
                value_bits: w.value_bits,
                output_mode: w.output_mode,
            },
            program: serde_json::from_str(&w.program).map_err(|e| format!("program: {e}"))?,
            session: w.session,
            backend: w.backend,
            announcement: w.announcement,
            stat_sec: w.stat_sec,
        })
    }
}

/// What the server reports when the session ends. (On the wire the meter
/// report travels as JSON text: its serde form flattens maps, which bincode
/// cannot encode.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WireEnd", try_from = "WireEnd")]
pub struct SessionEnd {
    /// Batches served in this session.
    pub batches: u64,
    /// Samples served in this session.
    pub samples: u64,
    /// The server's meter (bytes, rounds and time per phase and per
    /// schedule step).
    pub report: MeterReport,
}

#[derive(Serialize, Deserialize)]
struct WireEnd {
    batches: u64,
    samples: u64,
    report: String,
}

impl From<SessionEnd> for WireEnd {
    fn from(e: SessionEnd) -> Self {
        WireEnd {
            batches: e.batches,
            samples: e.samples,
            report: serde_json::to_string(&e.report).unwrap_or_default(),
        }
    }
}

impl TryFrom<WireEnd> for SessionEnd {
    type Error = String;

    fn try_from(w: WireEnd) -> Result<Self, String> {
        Ok(SessionEnd {
            batches: w.batches,
            samples: w.samples,
            report: serde_json::from_str(&w.report).map_err(|e| format!("meter report: {e}"))?,
        })
    }
}

/// Messages from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// Accepts the session.
    Hello(Box<ServerHello>),
    /// Refuses a request (the session then ends).
    Refused {
        /// Why.
        reason: String,
    },
    /// Refuses the session: the server does not offer the backend the
    /// client asked for.
    Unavailable {
        /// The backend the client asked for.
        requested: String,
        /// The backends the server offers.
        offered: Vec<String>,
    },
    /// Ends the session.
    Goodbye(Box<SessionEnd>),
    /// Refuses the session before any protocol work because the server runs
    /// as many sessions as it admits: the client may connect again after
    /// `retry_after_secs` seconds (the server's estimate).
    Busy {
        /// Suggested wait before a new attempt, seconds.
        retry_after_secs: u64,
    },
    /// Refuses the session, or the batch just requested (the session then
    /// ends), because the client's quota of samples for the current period
    /// is used up.
    QuotaExceeded(QuotaStatus),
}

/// A client's quota of samples per period, as a refusal states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaStatus {
    /// Samples per period.
    pub limit: u64,
    /// Samples used in the current period.
    pub used: u64,
    /// Samples the refused request asked for (0 at session start).
    pub requested: u64,
    /// The period, seconds.
    pub period_secs: u64,
    /// When the current period ends and the count starts again (Unix
    /// seconds, UTC).
    pub resets_at_unix: u64,
}

impl QuotaStatus {
    /// `resets_at_unix` as an RFC 3339 UTC time (`2026-12-05T20:00:00Z`).
    pub fn resets_at_utc(&self) -> String {
        rfc3339_utc(self.resets_at_unix)
    }
}

impl std::fmt::Display for QuotaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "quota of {} samples per {} s used up ({} used, {} requested); it resets at {}",
            self.limit,
            self.period_secs,
            self.used,
            self.requested,
            self.resets_at_utc()
        )
    }
}

/// Unix seconds as an RFC 3339 UTC time (proleptic Gregorian calendar).
pub fn rfc3339_utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

impl ServerMsg {
    /// A short name for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMsg::Hello(_) => "hello",
            ServerMsg::Refused { .. } => "refusal",
            ServerMsg::Unavailable { .. } => "backend refusal",
            ServerMsg::Goodbye(_) => "goodbye",
            ServerMsg::Busy { .. } => "busy refusal",
            ServerMsg::QuotaExceeded(_) => "quota refusal",
        }
    }
}

impl ClientMsg {
    /// A short name for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMsg::Hello(_) => "hello",
            ClientMsg::Batch(_) => "batch request",
            ClientMsg::Finish => "finish",
        }
    }
}

fn mismatch(msg: impl Into<String>) -> SecureError {
    SecureError::Mismatch(msg.into())
}

fn malformed(msg: impl Into<String>) -> SecureError {
    SecureError::Malformed(msg.into())
}

/// Checks the protocol name and version of a peer.
pub fn check_protocol(protocol: &str, version: u32) -> SecureResult<()> {
    if protocol != PROTOCOL {
        return Err(mismatch(format!(
            "the peer speaks `{}`, not `{PROTOCOL}`",
            protocol.chars().take(64).collect::<String>()
        )));
    }
    if version != VERSION {
        return Err(mismatch(format!(
            "the peer speaks protocol version {version}, this build speaks {VERSION}"
        )));
    }
    Ok(())
}

impl ClientHello {
    /// Our hello.
    pub fn new(chunk: usize, backend: &str) -> Self {
        ClientHello {
            protocol: PROTOCOL.into(),
            version: VERSION,
            chunk: chunk as u64,
            backend: backend.into(),
        }
    }
}

/// Checks a public program's structure and size (see the module docs).
pub fn validate_program(p: &PublicProgram) -> SecureResult<()> {
    if p.steps.len() > MAX_STEPS {
        return Err(malformed(format!(
            "the program has {} steps (at most {MAX_STEPS})",
            p.steps.len()
        )));
    }
    // The ring deserialises validated; the scale is not.
    FixedPoint::new(p.fixed.ring, p.fixed.frac_bits).map_err(|e| mismatch(e.to_string()))?;
    if p.fixed.ring.bits() < 4 {
        return Err(mismatch(format!(
            "a {}-bit ring is too small for the engine",
            p.fixed.ring.bits()
        )));
    }
    let elems = |shape: &[usize]| {
        fusion_nn::graph::checked_numel(shape)
            .filter(|&n| n <= MAX_VALUE_ELEMENTS)
            .ok_or_else(|| {
                malformed(format!(
                    "a value of shape {shape:?} has more than {MAX_VALUE_ELEMENTS} elements"
                ))
            })
    };
    if p.input_shape.len() > 4 || p.steps.iter().any(|s| s.shape.len() > 4) {
        return Err(malformed("a value has more than 4 dimensions".to_string()));
    }
    let mut total = elems(&p.input_shape)? as u64;
    for s in &p.steps {
        total = total.saturating_add(elems(&s.shape)? as u64);
        if total > MAX_PROGRAM_ELEMENTS {
            return Err(malformed(format!(
                "the program's values have more than {MAX_PROGRAM_ELEMENTS} elements per sample"
            )));
        }
        if s.name.len() > MAX_NAME {
            return Err(malformed("a step name is too long".to_string()));
        }
    }
    p.validate()
        .map_err(|e| malformed(format!("the program is inconsistent: {e}")))?;
    let ring = p.ring();
    let mut macs: u64 = 0;
    for (i, s) in p.steps.iter().enumerate() {
        if let Some((weights, step_macs)) = linear_cost(&s.op, &s.shape) {
            if weights > MAX_LAYER_WEIGHTS {
                return Err(malformed(format!(
                    "step {i}: a linear layer with {weights} weights (at most {MAX_LAYER_WEIGHTS})"
                )));
            }
            macs = macs.saturating_add(step_macs);
            if macs > MAX_PROGRAM_MACS {
                return Err(malformed(format!(
                    "the program needs more than {MAX_PROGRAM_MACS} multiply-accumulates per \
                     sample (by step {i})"
                )));
            }
        }
        match &s.op {
            PublicOp::MulConst { factor } if !ring.contains(*factor) => {
                return Err(malformed(format!(
                    "step {i}: constant factor outside the ring"
                )));
            }
            PublicOp::MaxPool { kernel, .. } => {
                let windows = fusion_nn::graph::checked_numel(&s.shape).unwrap_or(usize::MAX);
                if windows.saturating_mul(kernel.saturating_mul(*kernel)) > MAX_WINDOW_ENTRIES {
                    return Err(malformed(format!(
                        "step {i}: max pool with more than {MAX_WINDOW_ENTRIES} window entries"
                    )));
                }
            }
            _ => {}
        }
        if s.scale > 2 * p.fixed.frac_bits + 16 {
            return Err(malformed(format!(
                "step {i}: implausible scale {}",
                s.scale
            )));
        }
    }
    Ok(())
}

/// `(weights, multiply-accumulates per sample)` of a linear step with
/// per-sample output `shape`; `None` for other steps. Saturating: a hostile
/// size gives `u64::MAX`, which the limits refuse.
fn linear_cost(op: &PublicOp, shape: &[usize]) -> Option<(u64, u64)> {
    let m = |a: usize, b: usize| (a as u64).saturating_mul(b as u64);
    let out = fusion_nn::graph::checked_numel(shape).unwrap_or(usize::MAX) as u64;
    match *op {
        PublicOp::Dense {
            in_features,
            out_features,
        } => {
            let w = m(in_features, out_features);
            Some((w, w))
        }
        PublicOp::Conv2d {
            in_channels,
            out_channels,
            kernel,
            ..
        } => {
            let per_out = m(in_channels, kernel).saturating_mul(kernel as u64);
            Some((
                per_out.saturating_mul(out_channels as u64),
                per_out.saturating_mul(out),
            ))
        }
        PublicOp::ChannelAffine { .. } => Some((out, out)),
        _ => None,
    }
}

impl ServerHello {
    /// Checks everything the server announced, then the client's `policy`
    /// (see the module docs).
    pub fn validate(&self, policy: &ClientPolicy) -> SecureResult<()> {
        check_protocol(&self.protocol, self.version)?;
        let m = &self.model;
        if m.name.len() > MAX_NAME || m.description.len() > MAX_DESCRIPTION {
            return Err(malformed("model name or description too long"));
        }
        validate_program(&self.program)?;
        if let Some(b) = m.output_error_bound
            && !(b.is_finite() && (0.0..=MAX_OUTPUT_ERROR_BOUND).contains(&b))
        {
            return Err(malformed(format!(
                "output error bound {b} is not a number in [0, {MAX_OUTPUT_ERROR_BOUND}]"
            )));
        }
        if let Some(b) = m.input_bound
            && !(b.is_finite() && b > 0.0 && b <= MAX_INPUT_BOUND)
        {
            return Err(malformed(format!(
                "input bound {b} is not a number in (0, {MAX_INPUT_BOUND}]"
            )));
        }
        // The magnitude bounds: none, or one width in 1..=l per value (what
        // `Schedule::with_bounds` accepts).
        crate::schedule::Schedule::with_bounds(&self.program, &m.value_bits)?;
        let classes = usize::try_from(m.classes).unwrap_or(usize::MAX);
        if !(2..=MAX_CLASSES).contains(&classes) {
            return Err(mismatch(format!(
                "the model has {} classes (2..={MAX_CLASSES} supported)",
                m.classes
            )));
        }
        if self.program.output_shape() != [classes] {
            return Err(malformed(format!(
                "the program's output has shape {:?}, the model claims {classes} classes",
                self.program.output_shape()
            )));
        }
        let input_len: usize = self.program.input_shape.iter().product();
        m.preprocess
            .validate(input_len)
            .map_err(|e| malformed(format!("preprocessing: {e}")))?;
        self.session.validate()?;
        if self.backend.len() > MAX_BACKEND_NAME {
            return Err(malformed("backend name too long"));
        }
        check_announcement(&self.announcement)?;
        crate::statsec::check_announced(self.stat_sec.as_ref(), policy.min_stat_sec_bits)?;
        let fixed = self.program.fixed;
        if let Some(l) = policy.ring_bits
            && l != fixed.ring.bits()
        {
            return Err(mismatch(format!(
                "the server computes in Z_2^{}, we require l = {l}",
                fixed.ring.bits()
            )));
        }
        if let Some(f) = policy.frac_bits
            && f != fixed.frac_bits
        {
            return Err(mismatch(format!(
                "the server uses {} fractional bits, we require f = {f}",
                fixed.frac_bits
            )));
        }
        if let Some(c) = policy.classes
            && c != classes
        {
            return Err(mismatch(format!(
                "the server's model `{}` has {classes} classes, we expect {c}",
                m.name
            )));
        }
        if let Some(n) = policy.input_len
            && n != input_len
        {
            return Err(mismatch(format!(
                "the server's model `{}` takes samples of shape {:?} ({input_len} values), ours have {n} values",
                m.name, self.program.input_shape
            )));
        }
        if let Some(name) = &policy.model_name
            && name != &m.name
        {
            return Err(mismatch(format!(
                "the server serves model `{}`, we expect `{name}`",
                m.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn quota_reset_times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_796_500_800), "2026-12-05T20:00:00Z");
        assert_eq!(rfc3339_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    use super::*;

    fn hello() -> ServerHello {
        let model = fusion_nn::zoo::build("mlp-bc", 1).expect("zoo");
        let program = fusion_nn::fixed::lower(&model, fusion_nn::eval::default_fixed_point())
            .expect("lower")
            .public();
        ServerHello {
            protocol: PROTOCOL.into(),
            version: VERSION,
            model: ModelInfo {
                name: "mlp-bc".into(),
                description: String::new(),
                classes: 2,
                preprocess: Preprocess::Identity,
                output_error_bound: Some(0.01),
                input_bound: Some(1.0),
                value_bits: vec![20; program.steps.len() + 1],
                output_mode: crate::output_mode::OutputMode::Label,
            },
            program,
            session: SessionParams {
                chunk: 16,
                max_batch: 1000,
            },
            backend: "cheetah".into(),
            announcement: "{}".into(),
            stat_sec: Some(crate::statsec::SessionFlooding {
                per_coefficient_bits: 70,
                max_revealed: 1 << 30,
            }),
        }
    }

    #[test]
    fn a_consistent_hello_passes_and_policy_mismatches_are_refused() {
        let h = hello();
        assert!(h.validate(&ClientPolicy::default()).is_ok());
        let refuse = |p: ClientPolicy| matches!(h.validate(&p), Err(SecureError::Mismatch(_)));
        assert!(refuse(ClientPolicy {
            ring_bits: Some(64),
            ..ClientPolicy::default()
        }));
        assert!(refuse(ClientPolicy {
            input_len: Some(784),
            ..ClientPolicy::default()
        }));
        assert!(refuse(ClientPolicy {
            classes: Some(10),
            ..ClientPolicy::default()
        }));
        assert!(
            h.validate(&ClientPolicy {
                ring_bits: Some(37),
                frac_bits: Some(12),
                input_len: Some(30),
                classes: Some(2),
                ..ClientPolicy::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn inconsistent_announcements_are_refused() {
        let mut h = hello();
        h.version = VERSION + 1;
        assert!(h.validate(&ClientPolicy::default()).is_err());
        let mut h = hello();
        h.model.classes = 3;
        assert!(matches!(
            h.validate(&ClientPolicy::default()),
            Err(SecureError::Malformed(_))
        ));
        let mut h = hello();
        h.program.fixed.frac_bits = 30;
        assert!(h.validate(&ClientPolicy::default()).is_err());
        let mut h = hello();
        h.program.steps[0].op = PublicOp::MulConst { factor: 1 << 40 };
        assert!(matches!(
            h.validate(&ClientPolicy::default()),
            Err(SecureError::Malformed(_))
        ));
        let mut h = hello();
        h.program.steps[0].inputs = vec![5];
        assert!(h.validate(&ClientPolicy::default()).is_err());
        let mut h = hello();
        h.model.preprocess = Preprocess::Standardize {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        };
        assert!(h.validate(&ClientPolicy::default()).is_err());
        for b in [f64::NAN, -1.0, 0.0, f64::INFINITY, 1e13] {
            let mut h = hello();
            h.model.input_bound = Some(b);
            assert!(
                matches!(
                    h.validate(&ClientPolicy::default()),
                    Err(SecureError::Malformed(_))
                ),
                "input bound {b}"
            );
        }
        for b in [f64::NAN, -1.0, f64::INFINITY, 1e13] {
            let mut h = hello();
            h.model.output_error_bound = Some(b);
            assert!(
                matches!(
                    h.validate(&ClientPolicy::default()),
                    Err(SecureError::Malformed(_))
                ),
                "{b}"
            );
        }
        let mut h = hello();
        h.session.chunk = 0;
        assert!(h.validate(&ClientPolicy::default()).is_err());
        let mut h = hello();
        h.announcement = " ".repeat(crate::backend::MAX_ANNOUNCEMENT + 1);
        assert!(h.validate(&ClientPolicy::default()).is_err());
    }

    #[test]
    fn a_hello_below_the_clients_per_session_minimum_is_refused() {
        // 70 bits per coefficient, at most 2^30 revealed: 40 bits per session.
        let h = hello();
        let min = |bits| ClientPolicy {
            min_stat_sec_bits: Some(bits),
            ..ClientPolicy::default()
        };
        assert!(h.validate(&min(40)).is_ok());
        match h.validate(&min(41)) {
            Err(SecureError::Mismatch(m)) => assert!(m.contains("40.0 bits per session"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Out-of-range announcements are malformed, whatever the policy.
        let mut bad = hello();
        bad.stat_sec = Some(crate::statsec::SessionFlooding {
            per_coefficient_bits: 70,
            max_revealed: 0,
        });
        assert!(matches!(
            bad.validate(&ClientPolicy::default()),
            Err(SecureError::Malformed(_))
        ));
        // A backend without flooded coefficients announces none.
        let mut none = hello();
        none.stat_sec = None;
        assert!(none.validate(&min(128)).is_ok());
    }

    /// A hello whose program is `layers` dense `width -> width` steps.
    fn dense_hello(width: usize, layers: usize) -> ServerHello {
        let mut h = hello();
        let scale = h.program.fixed.frac_bits;
        h.program.input_shape = vec![width];
        h.program.steps = (0..layers)
            .map(|i| fusion_nn::fixed::PublicStep {
                name: format!("fc{i}"),
                op: PublicOp::Dense {
                    in_features: width,
                    out_features: width,
                },
                inputs: vec![i],
                shape: vec![width],
                scale,
            })
            .collect();
        h.model.classes = width as u64;
        h.model.value_bits = Vec::new();
        h
    }

    #[test]
    fn announced_value_bounds_must_give_one_width_in_the_ring_per_value() {
        let good = hello();
        assert!(good.validate(&ClientPolicy::default()).is_ok());
        let l = good.program.ring().bits();
        let n = good.model.value_bits.len();
        for bad in [vec![20; n - 1], vec![20; n + 1], vec![0; n], vec![l + 1; n]] {
            let mut h = hello();
            h.model.value_bits = bad;
            assert!(
                matches!(
                    h.validate(&ClientPolicy::default()),
                    Err(SecureError::Malformed(_))
                ),
                "{:?}",
                h.model.value_bits
            );
        }
        let mut none = hello();
        none.model.value_bits = Vec::new();
        assert!(none.validate(&ClientPolicy::default()).is_ok());
    }

    #[test]
    fn programs_beyond_the_work_limits_are_refused_before_any_planning() {
        // Within the limits: 2^26 weights per layer.
        assert!(
            dense_hello(1 << 13, 2)
                .validate(&ClientPolicy::default())
                .is_ok()
        );
        // One layer of 2^28 weights.
        match dense_hello(1 << 14, 1).validate(&ClientPolicy::default()) {
            Err(SecureError::Malformed(m)) => assert!(m.contains("weights"), "{m}"),
            other => panic!("{other:?}"),
        }
        // 1025 layers of 2^26 multiply-accumulates: more than 2^36 in all.
        match dense_hello(1 << 13, 1025).validate(&ClientPolicy::default()) {
            Err(SecureError::Malformed(m)) => assert!(m.contains("multiply-accumulates"), "{m}"),
            other => panic!("{other:?}"),
        }
        // 2^15 values of 2^13 elements: more than 2^28 elements in all
        // (checked before the step count, which is also too large here).
        match dense_hello(1 << 13, 1 << 15).validate(&ClientPolicy::default()) {
            Err(SecureError::Malformed(m)) => assert!(m.contains("steps"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Saturating sizes do not overflow into acceptance.
        let mut h = dense_hello(1 << 13, 1);
        h.program.steps[0].op = PublicOp::Dense {
            in_features: usize::MAX,
            out_features: usize::MAX,
        };
        assert!(h.validate(&ClientPolicy::default()).is_err());
    }

    #[test]
    fn the_largest_shipped_network_is_within_the_work_limits() {
        let model = fusion_nn::zoo::build("resnet50", 1).expect("zoo");
        let program = fusion_nn::fixed::lower(&model, fusion_nn::eval::default_fixed_point())
            .expect("lower")
            .public();
        validate_program(&program).expect("resnet50 is admitted");
        let elements: usize = program
            .steps
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        assert!(elements as u64 <= MAX_PROGRAM_ELEMENTS / 4, "{elements}");
        let macs: u64 = program
            .steps
            .iter()
            .filter_map(|s| linear_cost(&s.op, &s.shape))
            .map(|(_, m)| m)
            .sum();
        assert!((3_000_000_000..5_000_000_000).contains(&macs), "{macs}");
    }

    #[test]
    fn the_hello_survives_the_wire_and_garbage_does_not_decode() {
        let h = hello();
        let msg = ServerMsg::Hello(Box::new(h.clone()));
        let bytes = fusion_net::message::encode(&msg, 1 << 20).expect("encode");
        let back: ServerMsg = fusion_net::message::decode(&bytes).expect("decode");
        assert_eq!(back, msg);
        assert!(fusion_net::message::decode::<ServerMsg>(&bytes[..bytes.len() / 2]).is_err());
        let end = ServerMsg::Goodbye(Box::new(SessionEnd {
            batches: 2,
            samples: 7,
            report: fusion_net::Meter::new(fusion_net::Party::Server).report(),
        }));
        let bytes = fusion_net::message::encode(&end, 1 << 20).expect("encode");
        assert_eq!(
            fusion_net::message::decode::<ServerMsg>(&bytes).expect("decode"),
            end
        );
        let mut w = WireHello::from(h);
        w.program = "{\"steps\": 5}".into();
        assert!(ServerHello::try_from(w).is_err());
        // A server's program with its coefficients is not a public program.
        let model = fusion_nn::zoo::build("mlp-bc", 1).expect("zoo");
        let server =
            fusion_nn::fixed::lower(&model, fusion_nn::eval::default_fixed_point()).expect("lower");
        let mut w = WireHello::from(hello());
        w.program = serde_json::to_string(&server).expect("json");
        assert!(ServerHello::try_from(w).is_err());
    }
}
