//! Per-connection, per-phase traffic metering.
//!
//! # What is counted
//!
//! * **Wire bytes**: the UDP payload of every QUIC datagram this endpoint sends
//!   or receives on the connection (QUIC headers, TLS handshake, ACKs,
//!   retransmissions, padding and encryption tags included; IP and UDP headers
//!   excluded, add 28 bytes per datagram for IPv4 if you want them). Counted by
//!   an s2n-quic event subscriber (`DatagramSent` / `DatagramReceived`
//!   events), i.e. exactly what the socket hands to / gets from the kernel.
//!   Datagrams not belonging to a connection (stray packets) are not counted.
//! * **Messages**: frames sent/received through this crate's message streams
//!   ([`crate::message`]), with their payload bytes. Traffic that goes through
//!   raw `cryprot_net` streams (CryProt's OT) shows up in the wire bytes but
//!   not in the message counts.
//! * **Rounds**: the number of *message flights* seen by this party. The
//!   party's sequence of message events (sends and receives, in the order they
//!   complete locally) is cut into maximal runs of the same direction; each run
//!   is one flight, and `rounds` counts them. A strict ping-pong of k
//!   request/response pairs is 2k rounds for both parties; k messages sent back
//!   to back without waiting is one round. Round trips that cost latency are
//!   about `rounds / 2`. Messages on concurrently used sub-connections
//!   interleave, so there `rounds` is an upper bound on the protocol's
//!   sequential round complexity. A round is charged to the phase in which its
//!   first message occurred.
//! * **Time**: wall-clock time each phase was the current one.
//!
//! # Phases
//!
//! Phases are a closed set, [`Phase`] (one per stage of a two-party
//! inference session: connect, setup, preprocessing, linear, non-linear,
//! local, output), so a typo cannot open a new bucket and every report has the
//! same names. The connection starts in [`Phase::Connect`] (handshake).
//! [`Meter::set_phase`] switches, [`Meter::phase`] switches and returns a guard
//! that switches back on drop. A phase used again accumulates into the same
//! entry. Bytes are
//! charged to the phase that is current when the datagram is sent or
//! received; ACKs and retransmissions of data sent just before a switch may
//! land in the next phase (a few hundred bytes per switch). The phase is per
//! connection: all sub-connections share it.
//!
//! # Steps
//!
//! Within the phases, a driver may also label what it is doing with a free-form
//! **step** ([`Meter::step`]: a phase, a name and a kind, e.g. a layer's name and
//! `linear`; the phase and the step switch together); the two-party engine
//! labels every action of its schedule. A step is charged exactly like a phase (the wire bytes, messages and flights while
//! it is current, and its wall-clock time), a step used again accumulates into
//! the same entry, and outside any step nothing is charged to one. Since the
//! meter is per connection, a step's bytes include whatever else the connection
//! carried while it was current (say, random-OT generation running in the
//! background): they say where the link was busy, not which protocol sent what.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Which side of the protocol an endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    /// Holds the model; accepts connections.
    Server,
    /// Holds the inputs; connects.
    Client,
}

/// The stage of a session that traffic and time are charged to.
///
/// The set is closed on purpose: every party, backend and report uses these
/// names (serialised in lowercase: `connect`, `setup`, `preprocessing`,
/// `linear`, `nonlinear`, `local`, `output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// QUIC + TLS handshake (the phase a connection starts in).
    Connect,
    /// One-time session setup: hello, keys, base OTs.
    Setup,
    /// Input-independent work per batch (e.g. OT generation, offline phases).
    Preprocessing,
    /// Linear layers.
    Linear,
    /// Non-linear layers.
    #[serde(rename = "nonlinear")]
    NonLinear,
    /// Local steps (no traffic by design).
    Local,
    /// Batch requests, output reveal, goodbye.
    Output,
}

impl Phase {
    /// Every phase, in session order.
    pub const ALL: [Phase; 7] = [
        Phase::Connect,
        Phase::Setup,
        Phase::Preprocessing,
        Phase::Linear,
        Phase::NonLinear,
        Phase::Local,
        Phase::Output,
    ];

    /// The phase's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Setup => "setup",
            Phase::Preprocessing => "preprocessing",
            Phase::Linear => "linear",
            Phase::NonLinear => "nonlinear",
            Phase::Local => "local",
            Phase::Output => "output",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Traffic counters (see the module docs for definitions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// Messages (frames) sent through message streams.
    pub messages_sent: u64,
    /// Messages (frames) received through message streams.
    pub messages_received: u64,
    /// Payload bytes of messages sent (frame bodies, without the 4-byte header).
    pub message_bytes_sent: u64,
    /// Payload bytes of messages received.
    pub message_bytes_received: u64,
    /// Message flights (see module docs).
    pub rounds: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.datagrams_sent += o.datagrams_sent;
        self.datagrams_received += o.datagrams_received;
        self.messages_sent += o.messages_sent;
        self.messages_received += o.messages_received;
        self.message_bytes_sent += o.message_bytes_sent;
        self.message_bytes_received += o.message_bytes_received;
        self.rounds += o.rounds;
    }

    /// Wire bytes in both directions.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
}

/// One phase's share of the traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// The phase.
    pub name: Phase,
    /// Seconds during which this phase was current.
    pub seconds: f64,
    /// Traffic charged to the phase.
    #[serde(flatten)]
    pub counters: Counters,
}

/// A party's traffic, as data. Serialise it with serde (e.g. `serde_json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeterReport {
    /// Whose view this is.
    pub party: Party,
    /// Seconds since the connection started.
    pub seconds: f64,
    /// Sum over all phases.
    pub total: Counters,
    /// Per phase, in order of first use.
    pub phases: Vec<PhaseReport>,
    /// Per step ([`Meter::step`]), in order of first use; empty if no step was
    /// labelled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepReport>,
}

/// One step's share of the traffic ([`Meter::step`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// Its kind (free-form, given by the driver).
    pub kind: String,
    /// Seconds during which this step was current.
    pub seconds: f64,
    /// Traffic charged to the step.
    #[serde(flatten)]
    pub counters: Counters,
}

impl MeterReport {
    /// One report for several connections that ran side by side (one
    /// party's sessions with several workers): counters are summed, per
    /// phase and in total; seconds are the longest of the reports (per phase
    /// and in total), since the connections ran concurrently. `None` for no
    /// reports. The party is the first report's.
    pub fn concurrent(reports: &[MeterReport]) -> Option<MeterReport> {
        let first = reports.first()?;
        let mut merged = MeterReport {
            party: first.party,
            seconds: 0.0,
            total: Counters::default(),
            phases: Vec::new(),
            steps: Vec::new(),
        };
        for r in reports {
            merged.seconds = merged.seconds.max(r.seconds);
            merged.total.add(&r.total);
            merge_entries(
                &mut merged.phases,
                &r.phases,
                |a, b| a.name == b.name,
                |p| (&mut p.seconds, &mut p.counters),
            );
            merge_entries(
                &mut merged.steps,
                &r.steps,
                |a, b| a.name == b.name && a.kind == b.kind,
                |p| (&mut p.seconds, &mut p.counters),
            );
        }
        Some(merged)
    }

    /// The phase's figures, if it was used.
    pub fn phase(&self, phase: Phase) -> Option<&PhaseReport> {
        self.phases.iter().find(|p| p.name == phase)
    }

    /// The step's figures, if it was labelled.
    pub fn step(&self, name: &str, kind: &str) -> Option<&StepReport> {
        self.steps.iter().find(|p| p.name == name && p.kind == kind)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Adds every entry of `from` to the entry of `into` that `same` matches
/// (reports of connections that ran side by side: seconds the longest,
/// counters summed), or appends it. `parts` gives an entry's seconds and
/// counters.
fn merge_entries<T: Clone>(
    into: &mut Vec<T>,
    from: &[T],
    same: impl Fn(&T, &T) -> bool,
    parts: impl Fn(&mut T) -> (&mut f64, &mut Counters),
) {
    for p in from {
        match into.iter_mut().find(|m| same(m, p)) {
            Some(m) => {
                let mut p = p.clone();
                let (ps, pc) = parts(&mut p);
                let (s, c) = parts(m);
                *s = s.max(*ps);
                c.add(pc);
            }
            None => into.push(p.clone()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Direction {
    Sent,
    Received,
}

struct PhaseAcc {
    name: Phase,
    counters: Counters,
    time: Duration,
}

struct StepAcc {
    name: String,
    kind: String,
    counters: Counters,
    time: Duration,
}

struct State {
    current: usize,
    /// The current step (an index into `steps`), if any, and since when.
    step: Option<(usize, Instant)>,
    steps: Vec<StepAcc>,
    /// The phase most recently entered with [`Meter::phase`] (not restored
    /// when its guard drops: after a failure it says where the session was).
    entered: Phase,
    since: Instant,
    phases: Vec<PhaseAcc>,
    last_message: Option<Direction>,
}

struct Inner {
    party: Party,
    created: Instant,
    state: Mutex<State>,
}

/// Traffic meter of one connection (cheap to clone; clones share counters).
#[derive(Clone)]
pub struct Meter(Arc<Inner>);

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("party", &self.0.party)
            .field("phase", &self.current_phase())
            .finish()
    }
}

impl Meter {
    /// A fresh meter in phase [`Phase::Connect`].
    pub fn new(party: Party) -> Self {
        let now = Instant::now();
        Meter(Arc::new(Inner {
            party,
            created: now,
            state: Mutex::new(State {
                current: 0,
                step: None,
                steps: Vec::new(),
                entered: Phase::Connect,
                since: now,
                phases: vec![PhaseAcc {
                    name: Phase::Connect,
                    counters: Counters::default(),
                    time: Duration::ZERO,
                }],
                last_message: None,
            }),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave counters inconsistent
        // beyond one lost increment, so recover from poisoning.
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Which party this meter belongs to.
    pub fn party(&self) -> Party {
        self.0.party
    }

    /// The current phase.
    pub fn current_phase(&self) -> Phase {
        let st = self.state();
        st.phases[st.current].name
    }

    /// The phase most recently entered with [`Meter::phase`], even if its
    /// guard has since been dropped (say, by a panic unwinding): where a
    /// failed session was when it failed.
    pub fn last_entered(&self) -> Phase {
        self.state().entered
    }

    /// Make `name` the current phase; returns the previous phase.
    pub fn set_phase(&self, name: Phase) -> Phase {
        self.state().switch_phase(name, Instant::now())
    }

    /// Switch to phase `name` until the guard is dropped, then back.
    #[must_use = "the phase ends when the guard is dropped"]
    pub fn phase(&self, name: Phase) -> PhaseGuard {
        let previous = self.set_phase(name);
        self.state().entered = name;
        PhaseGuard {
            meter: self.clone(),
            previous,
        }
    }

    /// Make `phase` the current phase and step `name` (of kind `kind`) the
    /// current step until the guard is dropped, then restore the previous
    /// phase; a step that was current ends. Phase and step switch together
    /// (under one lock), so everything charged to the step is charged to
    /// `phase` too. See the module docs.
    #[must_use = "the step ends when the guard is dropped"]
    pub fn step(&self, phase: Phase, name: &str, kind: &str) -> StepGuard {
        let mut st = self.state();
        let now = Instant::now();
        let previous = st.switch_phase(phase, now);
        st.entered = phase;
        st.end_step(now);
        let idx = match st
            .steps
            .iter()
            .position(|p| p.name == name && p.kind == kind)
        {
            Some(i) => i,
            None => {
                st.steps.push(StepAcc {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    counters: Counters::default(),
                    time: Duration::ZERO,
                });
                st.steps.len() - 1
            }
        };
        st.step = Some((idx, now));
        StepGuard {
            meter: self.clone(),
            idx,
            previous,
        }
    }

    /// Snapshot of all counters.
    pub fn report(&self) -> MeterReport {
        let st = self.state();
        let now = Instant::now();
        let mut total = Counters::default();
        let phases = st
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                total.add(&p.counters);
                let mut time = p.time;
                if i == st.current {
                    time += now.saturating_duration_since(st.since);
                }
                PhaseReport {
                    name: p.name,
                    seconds: time.as_secs_f64(),
                    counters: p.counters,
                }
            })
            .collect();
        let steps = st
            .steps
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut time = p.time;
                if let Some((cur, since)) = st.step
                    && cur == i
                {
                    time += now.saturating_duration_since(since);
                }
                StepReport {
                    name: p.name.clone(),
                    kind: p.kind.clone(),
                    seconds: time.as_secs_f64(),
                    counters: p.counters,
                }
            })
            .collect();
        MeterReport {
            party: self.0.party,
            seconds: now.saturating_duration_since(self.0.created).as_secs_f64(),
            total,
            phases,
            steps,
        }
    }

    pub(crate) fn record_datagram(&self, dir: Direction, len: usize) {
        let mut st = self.state();
        st.each_counter(|c| match dir {
            Direction::Sent => {
                c.bytes_sent += len as u64;
                c.datagrams_sent += 1;
            }
            Direction::Received => {
                c.bytes_received += len as u64;
                c.datagrams_received += 1;
            }
        });
    }

    pub(crate) fn record_message(&self, dir: Direction, payload_len: usize) {
        let mut st = self.state();
        let new_flight = st.last_message != Some(dir);
        st.last_message = Some(dir);
        st.each_counter(|c| {
            if new_flight {
                c.rounds += 1;
            }
            match dir {
                Direction::Sent => {
                    c.messages_sent += 1;
                    c.message_bytes_sent += payload_len as u64;
                }
                Direction::Received => {
                    c.messages_received += 1;
                    c.message_bytes_received += payload_len as u64;
                }
            }
        });
    }
}

impl State {
    /// Makes `name` the current phase at `now`; returns the previous one.
    fn switch_phase(&mut self, name: Phase, now: Instant) -> Phase {
        let cur = self.current;
        self.phases[cur].time += now.saturating_duration_since(self.since);
        self.since = now;
        let prev = self.phases[cur].name;
        self.current = match self.phases.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                self.phases.push(PhaseAcc {
                    name,
                    counters: Counters::default(),
                    time: Duration::ZERO,
                });
                self.phases.len() - 1
            }
        };
        prev
    }

    /// Applies `f` to the current phase's counters and the current step's.
    fn each_counter(&mut self, mut f: impl FnMut(&mut Counters)) {
        let cur = self.current;
        f(&mut self.phases[cur].counters);
        if let Some((i, _)) = self.step {
            f(&mut self.steps[i].counters);
        }
    }

    /// Ends the current step, if any, charging it the time since it began.
    fn end_step(&mut self, now: Instant) {
        if let Some((i, since)) = self.step.take() {
            self.steps[i].time += now.saturating_duration_since(since);
        }
    }
}

/// Restores the previous phase when dropped (see [`Meter::phase`]).
#[derive(Debug)]
pub struct PhaseGuard {
    meter: Meter,
    previous: Phase,
}

impl Drop for PhaseGuard {
    fn drop(&mut self) {
        self.meter.set_phase(self.previous);
    }
}

/// Ends its step when dropped (see [`Meter::step`]), unless another step was
/// made current since, and restores the phase that was current before it.
#[derive(Debug)]
pub struct StepGuard {
    meter: Meter,
    idx: usize,
    previous: Phase,
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        let mut st = self.meter.state();
        let now = Instant::now();
        if matches!(st.step, Some((i, _)) if i == self.idx) {
            st.end_step(now);
        }
        st.switch_phase(self.previous, now);
    }
}

/// s2n-quic event subscriber that gives every connection its own [`Meter`]
/// and counts its datagrams.
pub(crate) struct MeterSubscriber {
    pub(crate) party: Party,
}

/// Per-connection state of [`MeterSubscriber`]: the meter and the peer's
/// certificate once the handshake has produced it.
#[derive(Clone, Debug)]
pub(crate) struct ConnContext {
    pub(crate) meter: Meter,
    pub(crate) peer: Arc<std::sync::OnceLock<crate::tls::PeerIdentity>>,
}

impl s2n_quic::provider::event::Subscriber for MeterSubscriber {
    type ConnectionContext = ConnContext;

    fn create_connection_context(
        &mut self,
        _meta: &s2n_quic::provider::event::ConnectionMeta,
        _info: &s2n_quic::provider::event::ConnectionInfo<'_>,
    ) -> ConnContext {
        ConnContext {
            meter: Meter::new(self.party),
            peer: Arc::new(std::sync::OnceLock::new()),
        }
    }

    fn on_tls_exporter_ready(
        &mut self,
        context: &mut ConnContext,
        _meta: &s2n_quic::provider::event::ConnectionMeta,
        event: &s2n_quic::provider::event::events::TlsExporterReady<'_>,
    ) {
        // The handshake is complete: the peer's certificate (if it sent one)
        // has passed our verifier.
        if let Ok(chain) = event.session.peer_cert_chain_der()
            && let Some(end_entity) = chain.first()
        {
            let _ = context
                .peer
                .set(crate::tls::PeerIdentity::of_der(end_entity));
        }
    }

    fn on_datagram_sent(
        &mut self,
        context: &mut ConnContext,
        _meta: &s2n_quic::provider::event::ConnectionMeta,
        event: &s2n_quic::provider::event::events::DatagramSent,
    ) {
        context
            .meter
            .record_datagram(Direction::Sent, usize::from(event.len));
    }

    fn on_datagram_received(
        &mut self,
        context: &mut ConnContext,
        _meta: &s2n_quic::provider::event::ConnectionMeta,
        event: &s2n_quic::provider::event::events::DatagramReceived,
    ) {
        context
            .meter
            .record_datagram(Direction::Received, usize::from(event.len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_accumulate_and_guards_restore() {
        let m = Meter::new(Party::Client);
        m.record_datagram(Direction::Sent, 100);
        {
            let _g = m.phase(Phase::Linear);
            m.record_datagram(Direction::Sent, 10);
            m.record_datagram(Direction::Received, 20);
            {
                let _h = m.phase(Phase::NonLinear);
                m.record_datagram(Direction::Received, 7);
            }
            assert_eq!(m.current_phase(), Phase::Linear);
        }
        assert_eq!(m.current_phase(), Phase::Connect);
        m.set_phase(Phase::Linear);
        m.record_datagram(Direction::Sent, 1);
        let r = m.report();
        assert_eq!(r.party, Party::Client);
        let lin = r.phase(Phase::Linear).map(|p| p.counters);
        assert_eq!(
            lin.map(|c| (c.bytes_sent, c.bytes_received)),
            Some((11, 20))
        );
        assert_eq!(
            r.phase(Phase::NonLinear).map(|p| p.counters.bytes_received),
            Some(7)
        );
        assert_eq!(r.total.bytes_sent, 111);
        assert_eq!(r.total.bytes_received, 27);
        assert_eq!(r.total.datagrams_sent, 3);
        assert_eq!(r.phases.len(), 3);
        let json = r.to_json();
        let back: MeterReport = serde_json::from_str(&json).expect("report round-trips");
        assert_eq!(back, r);
    }

    #[test]
    fn steps_are_charged_like_phases_and_end_with_their_guard() {
        let m = Meter::new(Party::Client);
        m.record_datagram(Direction::Sent, 100);
        {
            let _s = m.step(Phase::Linear, "conv1", "linear");
            assert_eq!(m.current_phase(), Phase::Linear);
            m.record_datagram(Direction::Sent, 10);
            m.record_message(Direction::Sent, 6);
            std::thread::sleep(Duration::from_millis(2));
        }
        // The phase before the step is back; outside any step traffic is
        // charged to the phase only.
        assert_eq!(m.current_phase(), Phase::Connect);
        m.record_datagram(Direction::Received, 50);
        {
            let _s = m.step(Phase::NonLinear, "relu1", "relu");
            m.record_datagram(Direction::Received, 20);
            // A new step ends the current one; the old guard then leaves it alone.
            let _t = m.step(Phase::Linear, "conv1", "linear");
            m.record_datagram(Direction::Received, 3);
        }
        assert_eq!(m.current_phase(), Phase::Connect);
        m.record_datagram(Direction::Received, 1000);
        let r = m.report();
        assert_eq!(r.steps.len(), 2);
        let conv = r.step("conv1", "linear").expect("conv1 labelled");
        assert_eq!(
            (conv.counters.bytes_sent, conv.counters.bytes_received),
            (10, 3)
        );
        assert_eq!((conv.counters.messages_sent, conv.counters.rounds), (1, 1));
        assert!(conv.seconds >= 0.002, "{}", conv.seconds);
        let relu = r.step("relu1", "relu").expect("relu1 labelled");
        assert_eq!(relu.counters.bytes_received, 20);
        // Everything charged to a step was charged to its phase.
        assert_eq!(
            r.phase(Phase::Linear).map(|p| p.counters.bytes_total()),
            Some(13)
        );
        assert_eq!(
            r.phase(Phase::NonLinear).map(|p| p.counters.bytes_total()),
            Some(20)
        );
        assert!(r.step("conv1", "relu").is_none());
        assert_eq!(r.total.bytes_received, 1073);
        let back: MeterReport = serde_json::from_str(&r.to_json()).expect("report round-trips");
        assert_eq!(back, r);
        // Two workers' reports: step bytes add up, seconds are the longest.
        let both = MeterReport::concurrent(&[r.clone(), r.clone()]).expect("two reports");
        let c2 = both.step("conv1", "linear").expect("merged");
        assert_eq!(c2.counters.bytes_sent, 20);
        assert_eq!(c2.seconds, conv.seconds);
    }

    #[test]
    fn rounds_count_direction_changes() {
        let m = Meter::new(Party::Server);
        // S S R S R R R S: flights SS | R | S | RRR | S = 5
        for d in [
            Direction::Sent,
            Direction::Sent,
            Direction::Received,
            Direction::Sent,
            Direction::Received,
            Direction::Received,
            Direction::Received,
            Direction::Sent,
        ] {
            m.record_message(d, 3);
        }
        let t = m.report().total;
        assert_eq!(t.rounds, 5);
        assert_eq!(t.messages_sent, 4);
        assert_eq!(t.messages_received, 4);
        assert_eq!(t.message_bytes_sent, 12);
    }
}
