//! Connection and message parameters.
//!
//! # QUIC limits and why
//!
//! The defaults are sized for the paper's WAN setting (44 MB/s, 40 ms RTT,
//! bandwidth-delay product 44 MB/s x 0.04 s = 1.76 MB) and for bulk OT
//! traffic, which CryProt pushes through a few streams at a time:
//!
//! | limit | default | reason |
//! |---|---|---|
//! | connection receive window (`data_window`) | 64 MiB | at least [`MAX_ACTIVE_STREAMS`] x `stream_window` (checked): streams the receiver is not reading yet can never exhaust it, so switching between protocol channels needs no barriers (see [`crate::channel`]) |
//! | per-stream receive window (`stream_window`) | 4 MiB | one bulk stream alone can fill the WAN pipe (2.3 x BDP) and a loopback link at > 1 GB/s with ms-scale RTT |
//! | per-stream send buffer (`send_buffer`) | 16 MiB | unacknowledged data a stream may hold: must exceed BDP or the sender stalls every RTT (s2n-quic's default of 4 MiB already would for 2-3 WAN streams in parallel; CryProt's own test setup uses 12 MiB) |
//! | concurrent unidirectional streams per direction (`max_streams`) | 64 | what the protocols need with a wide margin: every `byte_stream()` of every `sub_connection()` opens one stream per direction and the engine's sessions keep at most 8 open at once (the engine tests pass at 8 and stall at 2); a peer cannot hold more than this many streams (and their per-stream state) open against us |
//! | OS socket buffers (`socket_buffer`) | 4 MiB | absorbs bursts at LAN rates (Linux clamps it to `net.core.{r,w}mem_max`) |
//! | maximum IP packet size (`max_mtu`) | 1500 | Ethernet (UDP payload up to 1472 bytes over IPv4); s2n-quic probes the path MTU up to this. Raise to 9000 for jumbo-frame LANs or loopback experiments |
//! | handshake limit (`connect_timeout`) | 10 s | |
//! | QUIC idle timeout (`idle_timeout`) | 30 s | a peer that vanished (no packets at all, not even ACKs) ends the connection after this |
//! | keep-alive PING period (`keep_alive`) | 10 s | keeps an idle but healthy connection (long local computation on the other side) from hitting the idle timeout |
//! | goodbye wait (`close_linger`) | 5 s | ending a session waits this long for the peer to end it too |
//!
//! Memory: a peer can make us buffer at most `data_window` bytes of unread
//! data per connection; our own unacknowledged send data is at most
//! `send_buffer` per open stream.

/// How many streams of one connection may hold unread data at once without
/// any of them being starved by the connection-level window: the control
/// messages, a backend's channels and OT generation's streams together stay
/// below it. [`NetConfig`] refuses `data_window < MAX_ACTIVE_STREAMS x
/// stream_window`.
pub const MAX_ACTIVE_STREAMS: u64 = 16;

use std::time::Duration;

use s2n_quic::provider::limits::Limits;

use crate::error::{NetError, Result};

/// Parameters of typed message streams (see [`crate::message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageConfig {
    /// Largest frame (encoded message) accepted or sent, in bytes. A peer
    /// announcing more gets [`NetError::FrameTooLarge`] before anything is
    /// read. Receive buffers grow with the data actually received, so this is
    /// a cap, not a preallocation. Default 128 MiB.
    pub max_frame_bytes: u32,
    /// Longest wait for one incoming message (header and body). Default 300 s.
    pub recv_timeout: Duration,
    /// Longest wait to hand one outgoing message to QUIC (blocks only when
    /// flow control stalls because the peer stopped reading). Default 300 s.
    pub send_timeout: Duration,
}

impl Default for MessageConfig {
    fn default() -> Self {
        MessageConfig {
            max_frame_bytes: 128 << 20,
            recv_timeout: Duration::from_secs(300),
            send_timeout: Duration::from_secs(300),
        }
    }
}

impl MessageConfig {
    /// Same limits with both timeouts set to `t`.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.recv_timeout = t;
        self.send_timeout = t;
        self
    }
}

/// Parameters of a QUIC connection (both endpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Message stream parameters handed to every [`crate::Session`].
    pub messages: MessageConfig,
    /// Upper bound on connection establishment (QUIC + TLS handshake).
    pub connect_timeout: Duration,
    /// QUIC idle timeout: the connection closes if nothing arrives from the
    /// peer for this long.
    pub idle_timeout: Duration,
    /// Period of keep-alive PINGs; `None` disables them.
    pub keep_alive: Option<Duration>,
    /// Connection-level receive window in bytes (at most `u32::MAX`).
    pub data_window: u64,
    /// Per-stream receive window in bytes (at most `u32::MAX`).
    pub stream_window: u64,
    /// Per-stream send buffer in bytes.
    pub send_buffer: u32,
    /// Concurrently open unidirectional streams allowed per direction.
    pub max_streams: u64,
    /// Largest IP packet (MTU, including IP and UDP headers) s2n-quic may
    /// use; path MTU probing goes up to it.
    pub max_mtu: u16,
    /// Requested OS send and receive buffer of the UDP socket, in bytes.
    pub socket_buffer: usize,
    /// How long ending a session waits for the peer's goodbye before closing
    /// anyway (see [`crate::Session::finish`]).
    pub close_linger: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            messages: MessageConfig::default(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(10)),
            data_window: 64 << 20,
            stream_window: 4 << 20,
            send_buffer: 16 << 20,
            max_streams: 64,
            max_mtu: 1500,
            socket_buffer: 4 << 20,
            close_linger: Duration::from_secs(5),
        }
    }
}

impl NetConfig {
    /// Defaults with every timeout (messages, handshake, idle, goodbye) set
    /// to `t` and keep-alive at a third of it; convenient for tests.
    pub fn with_timeouts(mut self, t: Duration) -> Self {
        self.messages = self.messages.with_timeout(t);
        self.connect_timeout = t;
        self.idle_timeout = t;
        self.close_linger = t;
        self.keep_alive = Some(t / 3);
        self
    }

    /// Check the parameters and build s2n-quic's [`Limits`].
    pub(crate) fn limits(&self) -> Result<Limits> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            NetError::InvalidParameter(format!("{what}: {e}"))
        };
        if self.connect_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(NetError::InvalidParameter(
                "connect_timeout and idle_timeout must be positive".into(),
            ));
        }
        if let Some(k) = self.keep_alive
            && (k.is_zero() || k >= self.idle_timeout)
        {
            return Err(NetError::InvalidParameter(
                "keep_alive period must be positive and below idle_timeout".into(),
            ));
        }
        if self.data_window < MAX_ACTIVE_STREAMS.saturating_mul(self.stream_window) {
            return Err(NetError::InvalidParameter(format!(
                "data_window ({}) must be at least {MAX_ACTIVE_STREAMS} x stream_window ({}): \
                 otherwise unread streams can starve the one being read (see fusion_net::channel)",
                self.data_window, self.stream_window
            )));
        }
        if self.max_mtu < 1200 {
            return Err(NetError::InvalidParameter(
                "max_mtu must be at least 1200 (QUIC minimum)".into(),
            ));
        }
        let mut limits = Limits::new()
            .with_data_window(self.data_window)
            .map_err(|e| bad("data_window", &e))?
            .with_unidirectional_data_window(self.stream_window)
            .map_err(|e| bad("stream_window", &e))?
            .with_bidirectional_local_data_window(self.stream_window)
            .map_err(|e| bad("stream_window", &e))?
            .with_bidirectional_remote_data_window(self.stream_window)
            .map_err(|e| bad("stream_window", &e))?
            .with_max_send_buffer_size(self.send_buffer)
            .map_err(|e| bad("send_buffer", &e))?
            .with_max_open_local_unidirectional_streams(self.max_streams)
            .map_err(|e| bad("max_streams", &e))?
            .with_max_open_remote_unidirectional_streams(self.max_streams)
            .map_err(|e| bad("max_streams", &e))?
            .with_max_idle_timeout(self.idle_timeout)
            .map_err(|e| bad("idle_timeout", &e))?
            .with_max_handshake_duration(self.connect_timeout)
            .map_err(|e| bad("connect_timeout", &e))?;
        if let Some(k) = self.keep_alive {
            limits = limits
                .with_max_keep_alive_period(k)
                .map_err(|e| bad("keep_alive", &e))?;
        }
        Ok(limits)
    }
}
