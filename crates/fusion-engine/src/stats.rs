//! Per-phase figures of a session and of each batch.
//!
//! Phases ([`fusion_net::Phase`], both parties):
//!
//! | phase | what |
//! |---|---|
//! | `connect` | QUIC + TLS handshake (fusion-net) |
//! | `setup` | hello exchange and the backend's one-time setup (keys, base OTs) |
//! | `preprocessing` | the backend's input-independent work per pass (e.g. OT generation) |
//! | `linear` | linear layers (including waiting for the peer's computation) |
//! | `nonlinear` | non-linear layers |
//! | `local` | local steps (no traffic) |
//! | `output` | batch requests, output reveal, the goodbye |
//!
//! Bytes are wire bytes (UDP payload of QUIC datagrams, see
//! [`fusion_net::meter`]); time is wall-clock time while the phase was current.
//!
//! **Cost rule (every backend)**: a batch's totals ([`BatchStats::bytes_sent`],
//! [`BatchStats::bytes_received`], [`BatchStats::seconds`]) include everything
//! spent on the batch, preprocessing included; only the one-time session
//! setup (`connect`, `setup`) is reported apart. Preprocessing is also
//! reported on its own ([`BatchStats::preprocessing`]).

use fusion_net::{Counters, MeterReport, Phase};
use serde::{Deserialize, Serialize};

/// One phase's figures over some interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseFigures {
    /// The phase.
    pub name: Phase,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Wire bytes sent.
    pub bytes_sent: u64,
    /// Wire bytes received.
    pub bytes_received: u64,
    /// Message flights on fusion-net message streams.
    pub rounds: u64,
}

/// One schedule step's figures over some interval ([`fusion_net::Meter::step`]:
/// the wire bytes and time while the step was current, background traffic of
/// the connection included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFigures {
    /// The program step's name.
    pub name: String,
    /// The action's kind (`linear`, `local`, or the non-linear op's tag).
    pub kind: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Wire bytes sent.
    pub bytes_sent: u64,
    /// Wire bytes received.
    pub bytes_received: u64,
    /// Message flights on fusion-net message streams.
    pub rounds: u64,
}

/// What [`BatchStats::concurrent`] does alike to phase and step figures.
trait Figures: Clone {
    /// Whether `other` is the figures of the same phase or step.
    fn same(&self, other: &Self) -> bool;
    /// Seconds, bytes sent, bytes received and rounds.
    fn totals(&mut self) -> (&mut f64, &mut u64, &mut u64, &mut u64);
}

impl Figures for PhaseFigures {
    fn same(&self, other: &Self) -> bool {
        self.name == other.name
    }
    fn totals(&mut self) -> (&mut f64, &mut u64, &mut u64, &mut u64) {
        (
            &mut self.seconds,
            &mut self.bytes_sent,
            &mut self.bytes_received,
            &mut self.rounds,
        )
    }
}

impl Figures for StepFigures {
    fn same(&self, other: &Self) -> bool {
        self.name == other.name && self.kind == other.kind
    }
    fn totals(&mut self) -> (&mut f64, &mut u64, &mut u64, &mut u64) {
        (
            &mut self.seconds,
            &mut self.bytes_sent,
            &mut self.bytes_received,
            &mut self.rounds,
        )
    }
}

/// Adds `p` to its entry of `into` (parts that ran side by side: seconds the
/// longest, bytes and rounds summed), or appends it.
fn merge<F: Figures>(into: &mut Vec<F>, p: &F) {
    match into.iter_mut().find(|m| m.same(p)) {
        Some(m) => {
            let mut p = p.clone();
            let (ps, pa, pb, pr) = p.totals();
            let (s, a, b, r) = m.totals();
            *s = s.max(*ps);
            *a += *pa;
            *b += *pb;
            *r += *pr;
        }
        None => into.push(p.clone()),
    }
}

impl BatchStats {
    /// One batch's figures from parts of it that ran side by side on
    /// several workers: samples, chunks and bytes are summed, rounds summed,
    /// seconds the longest (per phase and in total). `None` for no parts.
    pub fn concurrent(parts: &[BatchStats]) -> Option<BatchStats> {
        let first = parts.first()?;
        let mut out = BatchStats {
            samples: 0,
            chunks: 0,
            seconds: 0.0,
            bytes_sent: 0,
            bytes_received: 0,
            preprocessing: PhaseFigures {
                bytes_sent: 0,
                bytes_received: 0,
                rounds: 0,
                seconds: 0.0,
                ..first.preprocessing.clone()
            },
            phases: Vec::new(),
            steps: Vec::new(),
        };
        for b in parts {
            out.samples += b.samples;
            out.chunks += b.chunks;
            out.seconds = out.seconds.max(b.seconds);
            out.bytes_sent += b.bytes_sent;
            out.bytes_received += b.bytes_received;
            let mut pre = vec![out.preprocessing.clone()];
            merge(&mut pre, &b.preprocessing);
            out.preprocessing = pre.remove(0);
            for p in &b.phases {
                merge(&mut out.phases, p);
            }
            for p in &b.steps {
                merge(&mut out.steps, p);
            }
        }
        Some(out)
    }

    /// The figures of a batch of `samples` samples in `chunks` chunks that
    /// took `seconds`, from meter snapshots taken before and after it.
    pub fn between(
        before: &MeterReport,
        after: &MeterReport,
        samples: usize,
        chunks: usize,
        seconds: f64,
    ) -> Self {
        let phases = phase_delta(before, after);
        let pre = phases.iter().find(|p| p.name == Phase::Preprocessing);
        BatchStats {
            samples,
            chunks,
            seconds,
            bytes_sent: after.total.bytes_sent - before.total.bytes_sent,
            bytes_received: after.total.bytes_received - before.total.bytes_received,
            preprocessing: PhaseFigures {
                name: Phase::Preprocessing,
                seconds: pre.map_or(0.0, |p| p.seconds),
                bytes_sent: pre.map_or(0, |p| p.bytes_sent),
                bytes_received: pre.map_or(0, |p| p.bytes_received),
                rounds: pre.map_or(0, |p| p.rounds),
            },
            phases,
            steps: step_delta(before, after),
        }
    }
}

/// One batch's figures, from the client's meter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStats {
    /// Samples in the batch.
    pub samples: usize,
    /// Chunks it ran in.
    pub chunks: usize,
    /// Wall-clock seconds of the whole batch.
    pub seconds: f64,
    /// Wire bytes sent.
    pub bytes_sent: u64,
    /// Wire bytes received.
    pub bytes_received: u64,
    /// The preprocessing phase alone (included in the totals).
    pub preprocessing: PhaseFigures,
    /// Per phase.
    pub phases: Vec<PhaseFigures>,
    /// Per schedule step, in order of first use (all chunks of the batch
    /// together).
    #[serde(default)]
    pub steps: Vec<StepFigures>,
}

fn sub(a: &Counters, b: &Counters) -> Counters {
    Counters {
        bytes_sent: a.bytes_sent.saturating_sub(b.bytes_sent),
        bytes_received: a.bytes_received.saturating_sub(b.bytes_received),
        datagrams_sent: a.datagrams_sent.saturating_sub(b.datagrams_sent),
        datagrams_received: a.datagrams_received.saturating_sub(b.datagrams_received),
        messages_sent: a.messages_sent.saturating_sub(b.messages_sent),
        messages_received: a.messages_received.saturating_sub(b.messages_received),
        message_bytes_sent: a.message_bytes_sent.saturating_sub(b.message_bytes_sent),
        message_bytes_received: a
            .message_bytes_received
            .saturating_sub(b.message_bytes_received),
        rounds: a.rounds.saturating_sub(b.rounds),
    }
}

/// The per-phase figures between two snapshots of the same meter (phases
/// with neither time nor traffic in between are left out).
pub fn phase_delta(before: &MeterReport, after: &MeterReport) -> Vec<PhaseFigures> {
    after
        .phases
        .iter()
        .filter_map(|p| {
            let (c, seconds) = entry_delta(
                (&p.counters, p.seconds),
                before.phase(p.name).map(|q| (&q.counters, q.seconds)),
            )?;
            Some(PhaseFigures {
                name: p.name,
                seconds,
                bytes_sent: c.bytes_sent,
                bytes_received: c.bytes_received,
                rounds: c.rounds,
            })
        })
        .collect()
}

/// The per-step figures between two snapshots of the same meter (steps
/// with neither time nor traffic in between are left out).
pub fn step_delta(before: &MeterReport, after: &MeterReport) -> Vec<StepFigures> {
    after
        .steps
        .iter()
        .filter_map(|p| {
            let (c, seconds) = entry_delta(
                (&p.counters, p.seconds),
                before
                    .step(&p.name, &p.kind)
                    .map(|q| (&q.counters, q.seconds)),
            )?;
            Some(StepFigures {
                name: p.name.clone(),
                kind: p.kind.clone(),
                seconds,
                bytes_sent: c.bytes_sent,
                bytes_received: c.bytes_received,
                rounds: c.rounds,
            })
        })
        .collect()
}

/// One phase's or step's traffic and seconds between two snapshots: `now`
/// in the later one, `then` in the earlier one (`None`: not used yet).
/// `None` if neither time nor traffic passed in between.
fn entry_delta(now: (&Counters, f64), then: Option<(&Counters, f64)>) -> Option<(Counters, f64)> {
    let (c0, t0) = then.map_or((Counters::default(), 0.0), |(c, t)| (*c, t));
    let c = sub(now.0, &c0);
    let seconds = (now.1 - t0).max(0.0);
    (seconds > 0.0 || c.bytes_total() > 0).then_some((c, seconds))
}

/// All phases of a report as [`PhaseFigures`].
pub fn phases(report: &MeterReport) -> Vec<PhaseFigures> {
    report
        .phases
        .iter()
        .map(|p| PhaseFigures {
            name: p.name,
            seconds: p.seconds,
            bytes_sent: p.counters.bytes_sent,
            bytes_received: p.counters.bytes_received,
            rounds: p.counters.rounds,
        })
        .collect()
}

/// Human-readable bytes (KiB/MiB/GiB, binary).
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b < 1024.0 {
        format!("{b:.0} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_net::{Meter, Party};

    #[test]
    fn concurrent_parts_sum_bytes_and_rounds_and_keep_the_longest_seconds() {
        let phase = |name, seconds, bytes| PhaseFigures {
            name,
            seconds,
            bytes_sent: bytes,
            bytes_received: 2 * bytes,
            rounds: 3,
        };
        let step = |name: &str, kind: &str, seconds, bytes| StepFigures {
            name: name.into(),
            kind: kind.into(),
            seconds,
            bytes_sent: bytes,
            bytes_received: 2 * bytes,
            rounds: 1,
        };
        let part = |s: f64, bytes: u64, extra: bool| BatchStats {
            samples: 4,
            chunks: 1,
            seconds: s,
            bytes_sent: bytes,
            bytes_received: 2 * bytes,
            preprocessing: phase(Phase::Preprocessing, s / 4.0, bytes / 4),
            phases: vec![phase(Phase::Linear, s / 2.0, bytes / 2)],
            steps: [step("fc1", "linear", s / 2.0, bytes / 2)]
                .into_iter()
                .chain(extra.then(|| step("fc1", "relu", 0.5, 7)))
                .collect(),
        };
        let both = BatchStats::concurrent(&[part(2.0, 400, false), part(4.0, 800, true)])
            .expect("two parts");
        assert_eq!((both.samples, both.chunks, both.seconds), (8, 2, 4.0));
        assert_eq!((both.bytes_sent, both.bytes_received), (1200, 2400));
        assert_eq!(
            both.preprocessing,
            PhaseFigures {
                rounds: 6,
                ..phase(Phase::Preprocessing, 1.0, 300)
            }
        );
        assert_eq!(
            both.phases,
            vec![PhaseFigures {
                rounds: 6,
                ..phase(Phase::Linear, 2.0, 600)
            }]
        );
        assert_eq!(
            both.steps,
            vec![
                StepFigures {
                    rounds: 2,
                    ..step("fc1", "linear", 2.0, 600)
                },
                step("fc1", "relu", 0.5, 7),
            ]
        );
        assert!(BatchStats::concurrent(&[]).is_none());
    }

    #[test]
    fn deltas_only_show_what_happened_in_between() {
        let m = Meter::new(Party::Client);
        let before = m.report();
        {
            let _g = m.phase(Phase::Linear);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let after = m.report();
        let d = phase_delta(&before, &after);
        assert!(d.iter().any(|p| p.name == Phase::Linear && p.seconds > 0.0));
        assert!(d.iter().all(|p| p.bytes_sent == 0));
        assert!(step_delta(&before, &after).is_empty());
        {
            let _s = m.step(Phase::Linear, "fc1", "linear");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let later = m.report();
        let s = step_delta(&after, &later);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].name.as_str(), s[0].kind.as_str()), ("fc1", "linear"));
        assert!(s[0].seconds >= 0.002);
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.00 MiB");
    }
}
