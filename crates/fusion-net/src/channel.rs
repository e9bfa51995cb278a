//! The protocol channel: the one framing layer every protocol message of the
//! engine goes through.
//!
//! A [`Channel`] is one `cryprot_net` byte stream per direction carrying the
//! frames of [`crate::message`] (4-byte big-endian length, payload), so every
//! message is bounded, time-limited and counted on the session's [`Meter`]
//! (bytes, messages and rounds, charged to the meter's current
//! [`crate::Phase`]). It offers the three shapes the protocols need:
//!
//! * **frames** whose length the receiver knows in advance
//!   ([`Channel::recv_exact`]: a frame of any other length is
//!   [`NetError::Malformed`], and nothing larger than expected is buffered),
//!   or bounds ([`Channel::recv_frame`]);
//! * **flights** ([`Channel::exchange`]): both parties send one frame and
//!   receive the peer's at the same time, its length computed from public
//!   parameters (one one-way latency for both directions);
//! * **typed messages** ([`Channel::send`], [`Channel::recv`]): bincode in a
//!   frame.
//!
//! Protocol code computes messages; the channel moves and meters them.
//!
//! # Flow control across channels
//!
//! Several channels share one QUIC connection. QUIC limits unread data per
//! stream (`stream_window`) and per connection (`data_window`); the
//! connection limit is shared by all streams. If streams the receiver is not
//! reading yet could fill the connection window, data on the stream it *is*
//! reading could stall behind them, and a protocol that switches channels
//! (say from OT flights to an HE query) could deadlock. [`crate::NetConfig`]
//! therefore keeps `data_window >= MAX_ACTIVE_STREAMS x stream_window`
//! (checked when a connection is made): no set of up to that many streams can
//! exhaust the connection window, so a sequential protocol needs no barriers
//! between channels.

use serde::{Serialize, de::DeserializeOwned};

use cryprot_net::Connection;

use crate::config::MessageConfig;
use crate::error::{NetError, Result};
use crate::message::{FrameReceiver, FrameSender, decode, encode, frame_channel};
use crate::meter::Meter;

/// A framed, metered, bounded stream pair to the peer (see the module docs).
pub struct Channel {
    tx: FrameSender,
    rx: FrameReceiver,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel over an open frame stream pair.
    pub fn new(tx: FrameSender, rx: FrameReceiver) -> Self {
        Channel { tx, rx }
    }

    /// Opens a channel on `conn` (the n-th stream opened on a connection
    /// pairs with the peer's n-th), metered on `meter`.
    pub async fn open(
        conn: &mut Connection,
        meter: Option<&Meter>,
        config: &MessageConfig,
    ) -> Result<Self> {
        let (tx, rx) = frame_channel(conn, meter, config).await?;
        Ok(Channel { tx, rx })
    }

    /// The channel's limits.
    pub fn config(&self) -> &MessageConfig {
        self.tx.config()
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        self.tx.send_frame(payload).await
    }

    /// Receives one frame of any length up to the configured maximum.
    pub async fn recv_frame(&mut self) -> Result<Vec<u8>> {
        self.rx.recv_frame().await
    }

    /// Receives one frame that must be exactly `len` bytes long.
    pub async fn recv_exact(&mut self, len: usize) -> Result<Vec<u8>> {
        let max = u32::try_from(len).map_err(|_| NetError::FrameTooLarge {
            len: len as u64,
            max: u64::from(u32::MAX),
        })?;
        let body = self.rx.recv_frame_at_most(max).await?;
        if body.len() != len {
            return Err(NetError::Malformed(format!(
                "a frame of {} bytes where {len} were expected",
                body.len()
            )));
        }
        Ok(body)
    }

    /// One flight: sends `out` and receives a frame of exactly `in_len`
    /// bytes, concurrently.
    pub async fn exchange(&mut self, out: &[u8], in_len: usize) -> Result<Vec<u8>> {
        let (tx, rx) = (&mut self.tx, &mut self.rx);
        let max = u32::try_from(in_len).map_err(|_| NetError::FrameTooLarge {
            len: in_len as u64,
            max: u64::from(u32::MAX),
        })?;
        let (_, body) = tokio::try_join!(tx.send_frame(out), rx.recv_frame_at_most(max))?;
        if body.len() != in_len {
            return Err(NetError::Malformed(format!(
                "a frame of {} bytes where {in_len} were expected",
                body.len()
            )));
        }
        Ok(body)
    }

    /// One flight whose incoming frame may be up to the configured maximum
    /// (the caller checks it): for a first flight that carries a header the
    /// caller wants to compare before the length.
    pub async fn exchange_any(&mut self, out: &[u8]) -> Result<Vec<u8>> {
        let (tx, rx) = (&mut self.tx, &mut self.rx);
        let (_, body) = tokio::try_join!(tx.send_frame(out), rx.recv_frame())?;
        Ok(body)
    }

    /// Sends a typed message.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        let bytes = encode(msg, self.tx.config().max_frame_bytes)?;
        self.tx.send_frame(&bytes).await
    }

    /// Receives a typed message.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.rx.recv_frame().await?;
        decode(&bytes)
    }
}
