//! User-space link emulation: a UDP relay with delay, rate limit and a
//! drop-tail queue.
//!
//! The kernel here has no `netem`, so the parties talk through a relay:
//! the client sends to the relay's `listen` address, the relay forwards each
//! datagram to `forward` (the server) from a per-client upstream socket and
//! sends the server's replies back to that client.
//!
//! # Link model (per direction, both directions alike)
//!
//! Each direction is one emulated link: a router queue feeding a line with a
//! token-bucket rate limit, followed by a fixed propagation delay.
//!
//! * **Rate**: token bucket with rate `rate_bytes_per_sec` and depth
//!   `burst_bytes` (at least one datagram). A datagram leaves the queue as soon
//!   as the bucket holds its size in tokens, after every earlier datagram left
//!   (FIFO). With depth one datagram this is a line-rate shaper.
//! * **Queue**: at most `queue_packets` datagrams may wait for their
//!   departure; a datagram arriving at a full queue is dropped (drop-tail,
//!   like a router or Linux's default `txqueuelen` of 1000).
//! * **Delay**: each datagram is delivered `one_way_delay` after its
//!   departure, so RTT = 2 x `one_way_delay` + queueing + the relay's own
//!   processing time.
//!
//! Departure times are computed exactly in virtual time when a datagram
//! arrives; one thread per direction sleeps until each delivery time and sends.
//! Sleeping uses the OS timer for waits above ~0.2 ms and yields for the last
//! stretch, so sub-millisecond delays (the LAN preset) are reproduced to a few
//! tens of microseconds when the machine is not overloaded. (tokio's timer has
//! 1 ms granularity, which is why the relay runs on plain threads.)
//!
//! # Presets (paper, section V)
//!
//! | preset | RTT | rate | queue |
//! |---|---|---|---|
//! | `lan` | 0.3 ms | 382 MB/s | 1000 datagrams |
//! | `wan` | 40 ms | 44 MB/s | 1000 datagrams |
//!
//! MB = 10^6 bytes. Rates apply to UDP payload bytes. A user-space relay on a
//! small machine may not reach the LAN rate; measure it (see
//! [`crate::measure`]).

use std::{
    collections::HashMap,
    io::ErrorKind,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::error::{NetError, Result};

/// Largest UDP datagram the relay forwards.
const MAX_DATAGRAM: usize = 65_535;
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// A client flow without packets for this long is forgotten.
const FLOW_IDLE: Duration = Duration::from_secs(120);
/// At most this many concurrent client flows.
const MAX_FLOWS: usize = 256;
/// OS socket buffer requested for relay sockets.
const SOCKET_BUFFER: usize = 4 << 20;
/// Below this remaining wait the egress thread yields instead of sleeping.
const SPIN_BELOW: Duration = Duration::from_micros(200);

/// Parameters of the emulated link (applied to each direction).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkConfig {
    /// Propagation delay per direction (RTT is twice this). Serialised as
    /// `one_way_delay_ms` (float milliseconds).
    #[serde(rename = "one_way_delay_ms", with = "duration_ms")]
    pub one_way_delay: Duration,
    /// Rate limit in UDP payload bytes per second; `None` = unlimited.
    pub rate_bytes_per_sec: Option<u64>,
    /// Token-bucket depth in bytes (0 means one datagram: pure line rate).
    pub burst_bytes: u64,
    /// Drop-tail limit: datagrams waiting for departure.
    pub queue_packets: usize,
}

impl LinkConfig {
    /// The paper's LAN: 0.3 ms RTT, 382 MB/s.
    pub fn lan() -> Self {
        LinkConfig {
            one_way_delay: Duration::from_micros(150),
            rate_bytes_per_sec: Some(382_000_000),
            burst_bytes: 0,
            queue_packets: 1000,
        }
    }

    /// The paper's WAN: 40 ms RTT, 44 MB/s.
    pub fn wan() -> Self {
        LinkConfig {
            one_way_delay: Duration::from_millis(20),
            rate_bytes_per_sec: Some(44_000_000),
            burst_bytes: 0,
            queue_packets: 1000,
        }
    }

    /// No delay, no rate limit (a plain forwarder, for measuring the relay).
    pub fn unlimited() -> Self {
        LinkConfig {
            one_way_delay: Duration::ZERO,
            rate_bytes_per_sec: None,
            burst_bytes: 0,
            queue_packets: 100_000,
        }
    }

    /// `"lan"`, `"wan"` or `"none"`.
    pub fn preset(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "lan" => Ok(Self::lan()),
            "wan" => Ok(Self::wan()),
            "none" | "unlimited" => Ok(Self::unlimited()),
            other => Err(NetError::InvalidParameter(format!(
                "unknown link preset {other:?} (expected lan, wan or none)"
            ))),
        }
    }

    /// Emulated round-trip time without queueing.
    pub fn rtt(&self) -> Duration {
        self.one_way_delay * 2
    }

    /// Check the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.rate_bytes_per_sec == Some(0) {
            return Err(NetError::InvalidParameter("rate must be positive".into()));
        }
        if self.queue_packets == 0 {
            return Err(NetError::InvalidParameter(
                "queue must hold at least one datagram".into(),
            ));
        }
        if self.one_way_delay > Duration::from_secs(10) {
            return Err(NetError::InvalidParameter(
                "one-way delay above 10 s is not supported".into(),
            ));
        }
        Ok(())
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1e3)
            .map_err(|_| D::Error::custom("delay must be a non-negative number of milliseconds"))
    }
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    /// Datagrams received by the relay.
    pub packets_in: u64,
    /// UDP payload bytes received by the relay.
    pub bytes_in: u64,
    /// Datagrams forwarded.
    pub packets_out: u64,
    /// UDP payload bytes forwarded.
    pub bytes_out: u64,
    /// Datagrams dropped because the queue was full.
    pub packets_dropped: u64,
    /// Bytes of dropped datagrams.
    pub bytes_dropped: u64,
    /// Forwarding failures reported by the OS (e.g. destination gone).
    pub send_errors: u64,
    /// Largest number of datagrams seen waiting in the queue.
    pub max_queue_packets: u64,
}

/// Counters of both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStats {
    /// Client (sender to `listen`) to server (`forward`).
    pub client_to_server: DirectionStats,
    /// Server to client.
    pub server_to_client: DirectionStats,
}

#[derive(Default)]
struct DirCounters {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    packets_dropped: AtomicU64,
    bytes_dropped: AtomicU64,
    send_errors: AtomicU64,
    max_queue_packets: AtomicU64,
}

impl DirCounters {
    fn snapshot(&self) -> DirectionStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DirectionStats {
            packets_in: g(&self.packets_in),
            bytes_in: g(&self.bytes_in),
            packets_out: g(&self.packets_out),
            bytes_out: g(&self.bytes_out),
            packets_dropped: g(&self.packets_dropped),
            bytes_dropped: g(&self.bytes_dropped),
            send_errors: g(&self.send_errors),
            max_queue_packets: g(&self.max_queue_packets),
        }
    }
}

/// Where a delivered datagram goes.
enum Dest {
    /// To the server, through this flow's upstream socket.
    Upstream(Arc<UdpSocket>),
    /// To this client, through the listening socket.
    Client(SocketAddr),
}

struct Packet {
    deliver_at: Instant,
    data: Vec<u8>,
    dest: Dest,
}

/// Token bucket + drop-tail queue in virtual time.
struct Shaper {
    link: LinkConfig,
    origin: Instant,
    /// Tokens (bytes) at `t_last`.
    tokens: f64,
    /// Virtual time (seconds since origin) of the last departure.
    t_last: f64,
    /// Departure times (seconds since origin) of datagrams still queued.
    queued: std::collections::VecDeque<f64>,
}

impl Shaper {
    fn new(link: LinkConfig, origin: Instant) -> Self {
        Shaper {
            link,
            origin,
            // Start with a full bucket (clamped to the depth on first use).
            tokens: f64::MAX,
            t_last: 0.0,
            queued: Default::default(),
        }
    }

    /// Departure time of a datagram of `len` bytes arriving at `now`, or
    /// `None` if the queue is full.
    fn admit(&mut self, now: Instant, len: usize) -> Option<(Instant, usize)> {
        let a = now.saturating_duration_since(self.origin).as_secs_f64();
        while self.queued.front().is_some_and(|&d| d <= a) {
            self.queued.pop_front();
        }
        if self.queued.len() >= self.link.queue_packets {
            return None;
        }
        let dep = match self.link.rate_bytes_per_sec {
            None => a,
            Some(rate) => {
                let rate = rate as f64;
                let len = len as f64;
                let depth = (self.link.burst_bytes as f64).max(len);
                // FIFO: not before the previous departure.
                let t0 = a.max(self.t_last);
                let tokens0 = (self.tokens + rate * (t0 - self.t_last)).min(depth);
                let dep = if tokens0 >= len {
                    t0
                } else {
                    t0 + (len - tokens0) / rate
                };
                let tokens_dep = (tokens0 + rate * (dep - t0)).min(depth);
                self.tokens = tokens_dep - len;
                self.t_last = dep;
                dep
            }
        };
        if dep > a {
            self.queued.push_back(dep);
        }
        let at = self.origin + Duration::from_secs_f64(dep) + self.link.one_way_delay;
        Some((at, self.queued.len()))
    }
}

struct Direction {
    shaper: Mutex<Shaper>,
    tx: Mutex<mpsc::Sender<Packet>>,
    counters: DirCounters,
}

impl Direction {
    fn offer(&self, now: Instant, data: Vec<u8>, dest: Dest) {
        let len = data.len();
        self.counters.packets_in.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_in
            .fetch_add(len as u64, Ordering::Relaxed);
        let admitted = match self.shaper.lock() {
            Ok(mut s) => s.admit(now, len),
            Err(_) => None,
        };
        match admitted {
            None => {
                self.counters
                    .packets_dropped
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_dropped
                    .fetch_add(len as u64, Ordering::Relaxed);
            }
            Some((deliver_at, depth)) => {
                self.counters
                    .max_queue_packets
                    .fetch_max(depth as u64, Ordering::Relaxed);
                let sent = self.tx.lock().ok().map(|tx| {
                    tx.send(Packet {
                        deliver_at,
                        data,
                        dest,
                    })
                });
                if !matches!(sent, Some(Ok(()))) {
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

struct Shared {
    stop: AtomicBool,
    c2s: Direction,
    s2c: Direction,
}

/// A running relay. Dropping it stops its threads (within ~50 ms).
pub struct Relay {
    local: SocketAddr,
    forward: SocketAddr,
    link: LinkConfig,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("listen", &self.local)
            .field("forward", &self.forward)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

fn udp_socket(bind: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(bind);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: Linux clamps to net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&bind.into())?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(POLL))?;
    Ok(s)
}

fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl Relay {
    /// Start relaying datagrams arriving at `listen` to `forward` (and the
    /// replies back) over the emulated link. Port 0 picks a free port.
    pub fn start(listen: SocketAddr, forward: SocketAddr, link: LinkConfig) -> Result<Relay> {
        link.validate()?;
        let sock = Arc::new(
            udp_socket(listen)
                .map_err(|e| NetError::io(format!("binding relay on {listen}"), e))?,
        );
        let local = sock
            .local_addr()
            .map_err(|e| NetError::io("reading relay address", e))?;
        let origin = Instant::now();
        let (c2s_tx, c2s_rx) = mpsc::channel();
        let (s2c_tx, s2c_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            c2s: Direction {
                shaper: Mutex::new(Shaper::new(link, origin)),
                tx: Mutex::new(c2s_tx),
                counters: DirCounters::default(),
            },
            s2c: Direction {
                shaper: Mutex::new(Shaper::new(link, origin)),
                tx: Mutex::new(s2c_tx),
                counters: DirCounters::default(),
            },
        });
        let mut threads = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(f)
                .map_err(|e| NetError::io("spawning relay thread", e))
        };
        {
            let shared = shared.clone();
            let sock = sock.clone();
            threads.push(spawn(
                "relay-egress-c2s",
                Box::new(move || egress(&shared, c2s_rx, &sock, true)),
            )?);
        }
        {
            let shared = shared.clone();
            let sock = sock.clone();
            threads.push(spawn(
                "relay-egress-s2c",
                Box::new(move || egress(&shared, s2c_rx, &sock, false)),
            )?);
        }
        {
            let shared = shared.clone();
            threads.push(spawn(
                "relay-front",
                Box::new(move || front(&shared, &sock, forward)),
            )?);
        }
        debug!(%local, %forward, ?link, "relay started");
        Ok(Relay {
            local,
            forward,
            link,
            shared,
            threads,
        })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The emulated link.
    pub fn link(&self) -> LinkConfig {
        self.link
    }

    /// Counters so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            client_to_server: self.shared.c2s.counters.snapshot(),
            server_to_client: self.shared.s2c.counters.snapshot(),
        }
    }

    /// Block the current thread until the relay is stopped by another thread
    /// holding a [`RelayStopper`] (used by `fusion netem`).
    pub fn stopper(&self) -> RelayStopper {
        RelayStopper(self.shared.clone())
    }

    /// Stop and join the relay's threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Handle that can stop a relay from elsewhere (e.g. a Ctrl-C handler).
#[derive(Clone)]
pub struct RelayStopper(Arc<Shared>);

impl std::fmt::Debug for RelayStopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayStopper")
    }
}

impl RelayStopper {
    /// Ask the relay to stop.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }

    /// Whether stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.stop.load(Ordering::SeqCst)
    }
}

struct Flow {
    upstream: Arc<UdpSocket>,
    last_seen: Instant,
    closed: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Reads datagrams from clients, creates flows, feeds the c2s direction.
fn front(shared: &Arc<Shared>, sock: &Arc<UdpSocket>, forward: SocketAddr) {
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last_sweep = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now.duration_since(last_sweep) > Duration::from_secs(1) {
            last_sweep = now;
            flows.retain(|client, f| {
                let keep = now.duration_since(f.last_seen) < FLOW_IDLE;
                if !keep {
                    debug!(%client, "relay flow expired");
                    f.closed.store(true, Ordering::Relaxed);
                }
                keep
            });
        }
        let (n, client) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => {
                // e.g. ICMP port unreachable surfacing as ECONNREFUSED.
                debug!(error = %e, "relay front recv");
                continue;
            }
        };
        let now = Instant::now();
        if !flows.contains_key(&client) {
            if flows.len() >= MAX_FLOWS {
                shared
                    .c2s
                    .counters
                    .packets_dropped
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match new_flow(shared, sock, forward, client) {
                Ok(f) => {
                    flows.insert(client, f);
                }
                Err(e) => {
                    warn!(error = %e, %client, "relay cannot open upstream socket");
                    continue;
                }
            }
        }
        let Some(flow) = flows.get_mut(&client) else {
            continue;
        };
        flow.last_seen = now;
        shared.c2s.offer(
            now,
            buf[..n].to_vec(),
            Dest::Upstream(flow.upstream.clone()),
        );
    }
    for (_, mut f) in flows.drain() {
        f.closed.store(true, Ordering::Relaxed);
        if let Some(t) = f.thread.take() {
            let _ = t.join();
        }
    }
}

fn new_flow(
    shared: &Arc<Shared>,
    _listen: &Arc<UdpSocket>,
    forward: SocketAddr,
    client: SocketAddr,
) -> std::io::Result<Flow> {
    let up = udp_socket(unspecified_like(forward))?;
    up.connect(forward)?;
    let upstream = Arc::new(up);
    let closed = Arc::new(AtomicBool::new(false));
    let thread = {
        let shared = shared.clone();
        let upstream = upstream.clone();
        let closed = closed.clone();
        std::thread::Builder::new()
            .name("relay-back".into())
            .spawn(move || back(&shared, &upstream, &closed, client))?
    };
    debug!(%client, "relay flow opened");
    Ok(Flow {
        upstream,
        last_seen: Instant::now(),
        closed,
        thread: Some(thread),
    })
}

/// Reads the server's replies for one client flow, feeds the s2c direction.
fn back(shared: &Arc<Shared>, upstream: &UdpSocket, closed: &AtomicBool, client: SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stop.load(Ordering::Relaxed) && !closed.load(Ordering::Relaxed) {
        match upstream.recv(&mut buf) {
            Ok(n) => shared
                .s2c
                .offer(Instant::now(), buf[..n].to_vec(), Dest::Client(client)),
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                debug!(error = %e, "relay back recv");
                // Avoid a hot loop on persistent errors (server gone).
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// Sleeps until each datagram's delivery time and sends it.
fn egress(shared: &Arc<Shared>, rx: mpsc::Receiver<Packet>, listen: &UdpSocket, c2s: bool) {
    let counters = if c2s {
        &shared.c2s.counters
    } else {
        &shared.s2c.counters
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let p = match rx.recv_timeout(POLL) {
            Ok(p) => p,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        wait_until(p.deliver_at, &shared.stop);
        let r = match &p.dest {
            Dest::Upstream(s) => s.send(&p.data),
            Dest::Client(addr) => listen.send_to(&p.data, addr),
        };
        match r {
            Ok(n) => {
                counters.packets_out.fetch_add(1, Ordering::Relaxed);
                counters.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                counters.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn wait_until(t: Instant, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        if now >= t || stop.load(Ordering::Relaxed) {
            return;
        }
        let left = t - now;
        if left > SPIN_BELOW {
            std::thread::sleep((left - SPIN_BELOW / 2).min(POLL));
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaper_spaces_packets_at_the_rate_and_drops_when_full() {
        let link = LinkConfig {
            one_way_delay: Duration::from_millis(10),
            rate_bytes_per_sec: Some(1_000_000),
            burst_bytes: 0,
            queue_packets: 3,
        };
        let t0 = Instant::now();
        let mut s = Shaper::new(link, t0);
        // Five 1000-byte datagrams at once: 1 ms apart at 1 MB/s; the first
        // finds a full bucket and leaves at once.
        let mut deps = Vec::new();
        for _ in 0..5 {
            deps.push(s.admit(t0, 1000));
        }
        let at = |i: usize| {
            deps[i]
                .map(|(t, _)| t.duration_since(t0).as_secs_f64())
                .unwrap_or(f64::NAN)
        };
        for (i, want) in [0.010, 0.011, 0.012, 0.013].into_iter().enumerate() {
            assert!(
                (at(i) - want).abs() < 1e-6,
                "packet {i}: {} vs {want}",
                at(i)
            );
        }
        // Three are waiting now: the queue of 3 is full.
        assert!(deps[4].is_none());
        // After the queue drained, packets are admitted again.
        let later = t0 + Duration::from_millis(10);
        assert!(s.admit(later, 1000).is_some());
    }

    #[test]
    fn shaper_burst_lets_a_burst_through_then_limits() {
        let link = LinkConfig {
            one_way_delay: Duration::ZERO,
            rate_bytes_per_sec: Some(1_000_000),
            burst_bytes: 3000,
            queue_packets: 100,
        };
        let t0 = Instant::now();
        let mut s = Shaper::new(link, t0);
        let d: Vec<f64> = (0..5)
            .filter_map(|_| s.admit(t0, 1000))
            .map(|(t, _)| t.duration_since(t0).as_secs_f64())
            .collect();
        assert_eq!(d.len(), 5);
        assert!(d[0] < 1e-9 && d[1] < 1e-9 && d[2] < 1e-9);
        assert!((d[3] - 0.001).abs() < 1e-6 && (d[4] - 0.002).abs() < 1e-6);
    }

    #[test]
    fn presets_match_the_paper() -> Result<()> {
        assert_eq!(LinkConfig::preset("lan")?.rtt(), Duration::from_micros(300));
        assert_eq!(LinkConfig::preset("WAN")?.rtt(), Duration::from_millis(40));
        assert_eq!(LinkConfig::wan().rate_bytes_per_sec, Some(44_000_000));
        assert_eq!(LinkConfig::lan().rate_bytes_per_sec, Some(382_000_000));
        assert!(LinkConfig::preset("moon").is_err());
        let json =
            serde_json::to_value(LinkConfig::wan()).map_err(|e| NetError::Config(e.to_string()))?;
        assert_eq!(json["one_way_delay_ms"], 20.0);
        let back: LinkConfig =
            serde_json::from_value(json).map_err(|e| NetError::Config(e.to_string()))?;
        assert_eq!(back, LinkConfig::wan());
        Ok(())
    }

    #[test]
    fn relay_forwards_both_ways_and_counts() -> Result<()> {
        let server = UdpSocket::bind("127.0.0.1:0").map_err(|e| NetError::io("bind", e))?;
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| NetError::io("timeout", e))?;
        let server_addr = server.local_addr().map_err(|e| NetError::io("addr", e))?;
        let relay = Relay::start(
            "127.0.0.1:0"
                .parse()
                .map_err(|_| NetError::Config("addr".into()))?,
            server_addr,
            LinkConfig::unlimited(),
        )?;
        let client = UdpSocket::bind("127.0.0.1:0").map_err(|e| NetError::io("bind", e))?;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| NetError::io("timeout", e))?;
        let mut buf = [0u8; 64];
        for i in 0..10u8 {
            client
                .send_to(&[i; 10], relay.local_addr())
                .map_err(|e| NetError::io("send", e))?;
            let (n, from) = server
                .recv_from(&mut buf)
                .map_err(|e| NetError::io("recv", e))?;
            assert_eq!(&buf[..n], &[i; 10]);
            server
                .send_to(&[i; 20], from)
                .map_err(|e| NetError::io("send", e))?;
            let (n, from) = client
                .recv_from(&mut buf)
                .map_err(|e| NetError::io("recv", e))?;
            assert_eq!(from, relay.local_addr());
            assert_eq!(&buf[..n], &[i; 20]);
        }
        // The egress thread counts a datagram right after sending it.
        std::thread::sleep(Duration::from_millis(100));
        let st = relay.stats();
        assert_eq!(st.client_to_server.packets_out, 10);
        assert_eq!(st.client_to_server.bytes_out, 100);
        assert_eq!(st.server_to_client.bytes_out, 200);
        assert_eq!(st.server_to_client.packets_dropped, 0);
        Ok(())
    }
}
