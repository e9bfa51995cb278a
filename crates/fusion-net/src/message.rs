//! Bounded, length-checked message streams with timeouts.
//!
//! # Wire format
//!
//! A message stream is one `cryprot_net` byte stream per direction carrying
//! frames: a 4-byte big-endian length `n` followed by `n` payload bytes.
//! Typed streams ([`MsgSender`] / [`MsgReceiver`]) encode a `serde` value as
//! the payload with bincode 1 (fixed-width little-endian integers, length
//! prefixes as `u64`); raw frame streams ([`FrameSender`] / [`FrameReceiver`])
//! carry caller-encoded bytes (for bit-packed shares, say).
//!
//! # Untrusted input
//!
//! * A header announcing more than [`MessageConfig::max_frame_bytes`] is
//!   rejected with [`NetError::FrameTooLarge`] before any body byte is read
//!   or any buffer is sized from it.
//! * The body buffer grows only with bytes actually received (never
//!   preallocated from the announced length beyond 64 KiB).
//! * End of stream inside a frame, undecodable payloads and payloads with
//!   trailing bytes are [`NetError::Malformed`]; end of stream exactly at a
//!   frame boundary is [`NetError::PeerClosed`].
//! * bincode decodes from the bounded in-memory frame with a byte limit equal
//!   to the frame length, so nested length prefixes cannot make it allocate
//!   much more than the frame itself.
//! * Every receive (and every send, which can block on flow control) is
//!   bounded by the configured timeout ([`NetError::Timeout`]). An error in the
//!   middle of a frame leaves the stream unusable ([`NetError::StreamBroken`]
//!   afterwards), since frame boundaries are lost.
//!
//! Each completed frame is counted on the connection's [`Meter`].

use std::marker::PhantomData;

use bincode::Options;
use cryprot_net::{Connection, ReceiveStreamBytes, SendStreamBytes};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::conn::WhyLost;
use crate::{
    config::MessageConfig,
    error::{NetError, Result},
    meter::{Direction, Meter},
};

/// Frame header length in bytes.
pub const HEADER_BYTES: usize = 4;

/// Initial body buffer; larger frames grow the buffer as data arrives.
const INITIAL_BODY_CAPACITY: usize = 64 << 10;

fn bincode_opts() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
}

/// Encode a value the way [`MsgSender`] does (useful to precompute sizes).
pub fn encode<T: Serialize + ?Sized>(msg: &T, max_frame_bytes: u32) -> Result<Vec<u8>> {
    let bytes = bincode_opts()
        .serialize(msg)
        .map_err(|e| NetError::InvalidParameter(format!("message does not serialize: {e}")))?;
    if bytes.len() as u64 > u64::from(max_frame_bytes) {
        return Err(NetError::FrameTooLarge {
            len: bytes.len() as u64,
            max: u64::from(max_frame_bytes),
        });
    }
    Ok(bytes)
}

/// Decode a frame payload the way [`MsgReceiver`] does.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    bincode_opts()
        .with_limit(payload.len() as u64)
        .reject_trailing_bytes()
        .deserialize(payload)
        .map_err(|e| NetError::Malformed(format!("message does not decode: {e}")))
}

/// Sending half of a raw frame stream.
pub struct FrameSender<W = SendStreamBytes> {
    stream: W,
    meter: Option<Meter>,
    config: MessageConfig,
    broken: bool,
    why_lost: Option<WhyLost>,
}

/// Receiving half of a raw frame stream.
pub struct FrameReceiver<R = ReceiveStreamBytes> {
    stream: R,
    meter: Option<Meter>,
    config: MessageConfig,
    state: RecvState,
    why_lost: Option<WhyLost>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Ready,
    Broken,
    Closed,
}

/// `e` explained by the connection's own reason when the stream knows its
/// connection (see [`WhyLost`]).
fn explain(why: &Option<WhyLost>, e: NetError) -> NetError {
    match why {
        Some(why) => why.explain(e),
        None => e,
    }
}

impl<W: AsyncWrite + Unpin> FrameSender<W> {
    /// Wrap any byte sink (a QUIC stream, or an in-memory pipe in tests).
    pub fn new(stream: W, meter: Option<Meter>, config: MessageConfig) -> Self {
        FrameSender {
            stream,
            meter,
            config,
            broken: false,
            why_lost: None,
        }
    }

    /// Explain transport failures by the connection's own reason.
    pub(crate) fn explained_by(mut self, why: WhyLost) -> Self {
        self.why_lost = Some(why);
        self
    }

    /// Send one frame.
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        if self.broken {
            return Err(NetError::StreamBroken);
        }
        let max = self.config.max_frame_bytes;
        if payload.len() as u64 > u64::from(max) {
            return Err(NetError::FrameTooLarge {
                len: payload.len() as u64,
                max: u64::from(max),
            });
        }
        // `max` is a u32, so the length fits the header.
        let header = (payload.len() as u32).to_be_bytes();
        self.broken = true;
        let stream = &mut self.stream;
        let write = async {
            stream.write_all(&header).await?;
            stream.write_all(payload).await?;
            // A no-op for QUIC streams (does not wait for ACKs), needed for
            // buffered writers.
            stream.flush().await
        };
        match tokio::time::timeout(self.config.send_timeout, write).await {
            Err(_) => Err(NetError::Timeout {
                what: "sending a message",
                after: self.config.send_timeout,
            }),
            Ok(Err(e)) => Err(explain(
                &self.why_lost,
                NetError::from_stream_io("sending a message", e),
            )),
            Ok(Ok(())) => {
                self.broken = false;
                if let Some(m) = &self.meter {
                    m.record_message(Direction::Sent, payload.len());
                }
                Ok(())
            }
        }
    }

    /// Close the stream (the peer's next receive gets
    /// [`NetError::PeerClosed`]).
    pub async fn close(&mut self) -> Result<()> {
        let t = self.config.send_timeout;
        match tokio::time::timeout(t, self.stream.shutdown()).await {
            Err(_) => Err(NetError::Timeout {
                what: "closing a message stream",
                after: t,
            }),
            Ok(r) => r.map_err(|e| {
                explain(
                    &self.why_lost,
                    NetError::from_stream_io("closing a message stream", e),
                )
            }),
        }
    }

    /// The stream's configuration.
    pub fn config(&self) -> &MessageConfig {
        &self.config
    }
}

impl<R: AsyncRead + Unpin> FrameReceiver<R> {
    /// Wrap any byte source.
    pub fn new(stream: R, meter: Option<Meter>, config: MessageConfig) -> Self {
        FrameReceiver {
            stream,
            meter,
            config,
            state: RecvState::Ready,
            why_lost: None,
        }
    }

    /// Explain transport failures by the connection's own reason.
    pub(crate) fn explained_by(mut self, why: WhyLost) -> Self {
        self.why_lost = Some(why);
        self
    }

    /// Receive one frame (bounded by `max_frame_bytes` and `recv_timeout`).
    pub async fn recv_frame(&mut self) -> Result<Vec<u8>> {
        let max = self.config.max_frame_bytes;
        self.recv_frame_at_most(max).await
    }

    /// Receive one frame of at most `max` bytes (and at most
    /// `max_frame_bytes`): a longer announced frame is
    /// [`NetError::FrameTooLarge`] before any body byte is read.
    pub async fn recv_frame_at_most(&mut self, max: u32) -> Result<Vec<u8>> {
        match self.state {
            RecvState::Ready => {}
            RecvState::Broken => return Err(NetError::StreamBroken),
            RecvState::Closed => return Err(NetError::PeerClosed),
        }
        self.state = RecvState::Broken;
        let t = self.config.recv_timeout;
        let max = max.min(self.config.max_frame_bytes);
        match tokio::time::timeout(t, read_frame(&mut self.stream, max)).await {
            Err(_) => Err(NetError::Timeout {
                what: "receiving a message",
                after: t,
            }),
            Ok(Err(NetError::PeerClosed)) => {
                self.state = RecvState::Closed;
                Err(NetError::PeerClosed)
            }
            Ok(Err(e)) => Err(explain(&self.why_lost, e)),
            Ok(Ok(body)) => {
                self.state = RecvState::Ready;
                if let Some(m) = &self.meter {
                    m.record_message(Direction::Received, body.len());
                }
                Ok(body)
            }
        }
    }

    /// The stream's configuration.
    pub fn config(&self) -> &MessageConfig {
        &self.config
    }
}

async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R, max: u32) -> Result<Vec<u8>> {
    const WHAT: &str = "receiving a message";
    let mut header = [0u8; HEADER_BYTES];
    let mut got = 0;
    while got < HEADER_BYTES {
        let n = stream
            .read(&mut header[got..])
            .await
            .map_err(|e| NetError::from_stream_io(WHAT, e))?;
        if n == 0 {
            return Err(if got == 0 {
                NetError::PeerClosed
            } else {
                NetError::Malformed(format!(
                    "stream ended inside a frame header ({got} of {HEADER_BYTES} bytes)"
                ))
            });
        }
        got += n;
    }
    let len = u32::from_be_bytes(header);
    if len > max {
        return Err(NetError::FrameTooLarge {
            len: u64::from(len),
            max: u64::from(max),
        });
    }
    let len = len as usize;
    let mut body = Vec::with_capacity(len.min(INITIAL_BODY_CAPACITY));
    let n = stream
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| NetError::from_stream_io(WHAT, e))?;
    if n != len {
        return Err(NetError::Malformed(format!(
            "stream ended inside a frame body ({n} of {len} bytes)"
        )));
    }
    Ok(body)
}

/// Sending half of a typed message stream.
pub struct MsgSender<T, W = SendStreamBytes> {
    frames: FrameSender<W>,
    _msg: PhantomData<fn(&T)>,
}

/// Receiving half of a typed message stream.
pub struct MsgReceiver<T, R = ReceiveStreamBytes> {
    frames: FrameReceiver<R>,
    _msg: PhantomData<fn() -> T>,
}

impl<T: Serialize, W: AsyncWrite + Unpin> MsgSender<T, W> {
    /// Typed view of a frame sender.
    pub fn new(frames: FrameSender<W>) -> Self {
        MsgSender {
            frames,
            _msg: PhantomData,
        }
    }

    /// Encode and send one message.
    pub async fn send(&mut self, msg: &T) -> Result<()> {
        let bytes = encode(msg, self.frames.config.max_frame_bytes)?;
        self.frames.send_frame(&bytes).await
    }

    /// Close the stream.
    pub async fn close(&mut self) -> Result<()> {
        self.frames.close().await
    }

    /// The underlying frame sender.
    pub fn into_frames(self) -> FrameSender<W> {
        self.frames
    }
}

impl<T: DeserializeOwned, R: AsyncRead + Unpin> MsgReceiver<T, R> {
    /// Typed view of a frame receiver.
    pub fn new(frames: FrameReceiver<R>) -> Self {
        MsgReceiver {
            frames,
            _msg: PhantomData,
        }
    }

    /// Receive and decode one message.
    pub async fn recv(&mut self) -> Result<T> {
        let body = self.frames.recv_frame().await?;
        decode(&body)
    }

    /// The underlying frame receiver.
    pub fn into_frames(self) -> FrameReceiver<R> {
        self.frames
    }
}

/// Open a raw frame stream pair on `conn` (the n-th call pairs with the
/// peer's n-th call of this or any other stream-opening method on the
/// matching connection).
pub async fn frame_channel(
    conn: &mut Connection,
    meter: Option<&Meter>,
    config: &MessageConfig,
) -> Result<(FrameSender, FrameReceiver)> {
    let t = config.send_timeout;
    let (send, recv) = match tokio::time::timeout(t, conn.byte_stream()).await {
        Err(_) => {
            return Err(NetError::Timeout {
                what: "opening a stream",
                after: t,
            });
        }
        Ok(r) => r?,
    };
    Ok((
        FrameSender::new(send, meter.cloned(), config.clone()),
        FrameReceiver::new(recv, meter.cloned(), config.clone()),
    ))
}

/// Open a typed message stream pair on `conn`: send `S`, receive `R`.
pub async fn channel<S: Serialize, R: DeserializeOwned>(
    conn: &mut Connection,
    meter: Option<&Meter>,
    config: &MessageConfig,
) -> Result<(MsgSender<S>, MsgReceiver<R>)> {
    let (s, r) = frame_channel(conn, meter, config).await?;
    Ok((MsgSender::new(s), MsgReceiver::new(r)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::Deserialize;
    use tokio::io::duplex;

    use super::*;
    use crate::meter::Party;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        id: u32,
        shares: Vec<u64>,
        note: String,
    }

    fn cfg(max: u32) -> MessageConfig {
        MessageConfig {
            max_frame_bytes: max,
            recv_timeout: Duration::from_secs(2),
            send_timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn typed_messages_round_trip_and_are_counted() -> Result<()> {
        let (a, b) = duplex(1 << 16);
        let meter = Meter::new(Party::Client);
        let mut tx: MsgSender<Msg, _> =
            MsgSender::new(FrameSender::new(a, Some(meter.clone()), cfg(1 << 20)));
        let mut rx: MsgReceiver<Msg, _> =
            MsgReceiver::new(FrameReceiver::new(b, Some(meter.clone()), cfg(1 << 20)));
        let m = Msg {
            id: 7,
            shares: vec![0, 1, u64::MAX, 1 << 36],
            note: "hello".into(),
        };
        tx.send(&m).await?;
        tx.send(&m).await?;
        assert_eq!(rx.recv().await?, m);
        assert_eq!(rx.recv().await?, m);
        tx.close().await?;
        assert!(matches!(rx.recv().await, Err(NetError::PeerClosed)));
        let t = meter.report().total;
        assert_eq!((t.messages_sent, t.messages_received), (2, 2));
        // send, send, recv, recv: two flights.
        assert_eq!(t.rounds, 2);
        Ok(())
    }

    #[tokio::test]
    async fn oversized_header_is_rejected_without_reading_the_body() {
        let (mut a, b) = duplex(1 << 16);
        let mut rx = FrameReceiver::new(b, None, cfg(1000));
        a.write_all(&1001u32.to_be_bytes()).await.ok();
        let r = rx.recv_frame().await;
        assert!(
            matches!(
                r,
                Err(NetError::FrameTooLarge {
                    len: 1001,
                    max: 1000
                })
            ),
            "{r:?}"
        );
        // Frame boundaries are lost now.
        assert!(matches!(rx.recv_frame().await, Err(NetError::StreamBroken)));
        // A 4 GiB announcement is rejected just as cheaply.
        let (mut a, b) = duplex(64);
        let mut rx = FrameReceiver::new(b, None, cfg(1000));
        a.write_all(&u32::MAX.to_be_bytes()).await.ok();
        assert!(matches!(
            rx.recv_frame().await,
            Err(NetError::FrameTooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn oversized_send_is_refused_locally() {
        let (a, _b) = duplex(64);
        let mut tx: MsgSender<Vec<u8>, _> = MsgSender::new(FrameSender::new(a, None, cfg(16)));
        let r = tx.send(&vec![0u8; 100]).await;
        assert!(matches!(r, Err(NetError::FrameTooLarge { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn truncated_frames_are_malformed() {
        // Body shorter than announced, then EOF.
        let (mut a, b) = duplex(1024);
        let mut rx = FrameReceiver::new(b, None, cfg(1000));
        a.write_all(&10u32.to_be_bytes()).await.ok();
        a.write_all(&[1, 2, 3]).await.ok();
        drop(a);
        let r = rx.recv_frame().await;
        assert!(matches!(r, Err(NetError::Malformed(_))), "{r:?}");
        // Header cut short.
        let (mut a, b) = duplex(1024);
        let mut rx = FrameReceiver::new(b, None, cfg(1000));
        a.write_all(&[0, 0]).await.ok();
        drop(a);
        let r = rx.recv_frame().await;
        assert!(matches!(r, Err(NetError::Malformed(_))), "{r:?}");
    }

    #[tokio::test]
    async fn undecodable_payloads_are_malformed() -> Result<()> {
        let (a, b) = duplex(1 << 16);
        let mut raw = FrameSender::new(a, None, cfg(1 << 20));
        let mut rx: MsgReceiver<Msg, _> =
            MsgReceiver::new(FrameReceiver::new(b, None, cfg(1 << 20)));
        // A Vec length prefix claiming 2^60 elements in a 20-byte frame.
        let mut bogus = 1u32.to_le_bytes().to_vec();
        bogus.extend_from_slice(&(1u64 << 60).to_le_bytes());
        bogus.extend_from_slice(&[0u8; 8]);
        raw.send_frame(&bogus).await?;
        assert!(matches!(rx.recv().await, Err(NetError::Malformed(_))));
        // Valid message followed by trailing garbage.
        let mut ok = encode(
            &Msg {
                id: 1,
                shares: vec![],
                note: String::new(),
            },
            1 << 20,
        )?;
        ok.push(0xff);
        raw.send_frame(&ok).await?;
        assert!(matches!(rx.recv().await, Err(NetError::Malformed(_))));
        // Invalid UTF-8 in the string.
        let mut bad_utf8 = 2u32.to_le_bytes().to_vec();
        bad_utf8.extend_from_slice(&0u64.to_le_bytes());
        bad_utf8.extend_from_slice(&2u64.to_le_bytes());
        bad_utf8.extend_from_slice(&[0xc3, 0x28]);
        raw.send_frame(&bad_utf8).await?;
        assert!(matches!(rx.recv().await, Err(NetError::Malformed(_))));
        // The stream is still in sync after decode errors.
        let good = Msg {
            id: 3,
            shares: vec![5],
            note: "ok".into(),
        };
        raw.send_frame(&encode(&good, 1 << 20)?).await?;
        assert_eq!(rx.recv().await?, good);
        Ok(())
    }

    #[tokio::test]
    async fn silent_peer_times_out_within_the_limit() {
        let (_a, b) = duplex(64);
        let mut c = cfg(1000);
        c.recv_timeout = Duration::from_millis(200);
        let mut rx = FrameReceiver::new(b, None, c);
        let start = std::time::Instant::now();
        let r = rx.recv_frame().await;
        assert!(matches!(r, Err(NetError::Timeout { .. })), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
