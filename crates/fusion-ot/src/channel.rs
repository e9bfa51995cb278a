//! The thin I/O driver: persistent QUIC stream pairs to the peer, used in
//! *flights*.
//!
//! A flight is one simultaneous exchange: both parties write their message and
//! read the peer's, whose length is computed from public parameters only (never
//! from a length field sent by the peer). A flight costs one one-way network
//! latency; the protocols in this crate are written so that every flight is
//! symmetric where possible, so that both directions are used at once.
//!
//! A session keeps its protocol streams for its whole life (rather than a new
//! stream per call), so that protocol data always arrives in order on one
//! stream and a message of call `k + 1` can never hold QUIC's shared
//! connection-level flow-control window while the peer still waits for the
//! tail of call `k` on another stream. (With s2n-quic's default windows,
//! where one stream may take the whole connection window, that interleaving
//! can deadlock.) The same concern makes the engine fence OT generation, which
//! runs on CryProt's own streams, with barrier flights.
//!
//! The first flight of every call carries an 18-byte [`CallHeader`] in both
//! directions, so that a peer running a different operation, size or parameter
//! set is detected ([`Error::PeerMismatch`]) instead of desynchronising.

use cryprot_net::{Connection, ReceiveStreamBytes, SendStreamBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// Identifies the operation of a protocol call in the [`CallHeader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Op {
    Millionaires = 1,
    Drelu = 2,
    Relu = 3,
    Truncate = 4,
    TruncateNonNeg = 5,
    TruncateExact = 6,
    ReluTruncate = 7,
    MaxLevel = 8,
    Mul = 9,
    Square = 10,
    B2a = 11,
    Mux = 12,
    And = 13,
    OneOfN = 14,
    Acot = 15,
    Setup = 16,
}

impl Op {
    fn from_u8(v: u8) -> Option<Op> {
        use Op::*;
        Some(match v {
            1 => Millionaires,
            2 => Drelu,
            3 => Relu,
            4 => Truncate,
            5 => TruncateNonNeg,
            6 => TruncateExact,
            7 => ReluTruncate,
            8 => MaxLevel,
            9 => Mul,
            10 => Square,
            11 => B2a,
            12 => Mux,
            13 => And,
            14 => OneOfN,
            15 => Acot,
            16 => Setup,
            _ => return None,
        })
    }
}

/// What both parties must agree on for one protocol call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallHeader {
    pub op: Op,
    pub ring_bits: u8,
    pub block_bits: u8,
    pub param: u32,
    pub n: u64,
}

const MAGIC: [u8; 2] = *b"FO";
const VERSION: u8 = 1;
pub(crate) const HEADER_LEN: usize = 18;

impl CallHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = VERSION;
        b[3] = self.op as u8;
        b[4] = self.ring_bits;
        b[5] = self.block_bits;
        b[6..10].copy_from_slice(&self.param.to_le_bytes());
        b[10..18].copy_from_slice(&self.n.to_le_bytes());
        b
    }

    fn render(bytes: &[u8; HEADER_LEN]) -> String {
        if bytes[0..2] != MAGIC || bytes[2] != VERSION {
            return format!("an unknown protocol (header {bytes:02x?})");
        }
        let op =
            Op::from_u8(bytes[3]).map_or_else(|| format!("op#{}", bytes[3]), |o| format!("{o:?}"));
        let mut p = [0u8; 4];
        p.copy_from_slice(&bytes[6..10]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&bytes[10..18]);
        format!(
            "{op}(n={}, l={}, m={}, param={})",
            u64::from_le_bytes(n),
            bytes[4],
            bytes[5],
            u32::from_le_bytes(p)
        )
    }
}

/// A pair of byte streams to the peer.
pub(crate) struct Channel {
    tx: SendStreamBytes,
    rx: ReceiveStreamBytes,
    header: Option<[u8; HEADER_LEN]>,
    /// Bytes written to the peer so far.
    pub sent: u64,
    /// Bytes read from the peer so far.
    pub received: u64,
    /// Flights performed so far.
    pub flights: u64,
}

impl Channel {
    /// Opens the streams on a fresh sub-connection of `conn`; both parties
    /// must open their channels in the same order.
    pub(crate) async fn open(conn: &mut Connection) -> Result<Channel> {
        let mut sub = conn.sub_connection();
        let (tx, rx) = sub.byte_stream().await?;
        Ok(Channel {
            tx,
            rx,
            header: None,
            sent: 0,
            received: 0,
            flights: 0,
        })
    }

    /// Attaches `header` to the next flight (the first flight of a call).
    pub(crate) fn set_header(&mut self, header: CallHeader) {
        self.header = Some(header.encode());
    }

    /// One flight: sends `out` and receives exactly `in_len` bytes, concurrently.
    /// On the first flight the peer's header is read and checked before the
    /// payload, so a peer expecting a different length is reported as a
    /// mismatch rather than a stalled read.
    pub(crate) async fn exchange(&mut self, out: &[u8], in_len: usize) -> Result<Vec<u8>> {
        let header = self.header.take();
        let hlen = if header.is_some() { HEADER_LEN } else { 0 };
        let mut buf = vec![0u8; in_len];
        let tx = &mut self.tx;
        let rx = &mut self.rx;
        let write = async {
            if let Some(h) = &header {
                tx.write_all(h).await?;
            }
            if !out.is_empty() {
                tx.write_all(out).await?;
            }
            AsyncWriteExt::flush(tx).await?;
            Ok::<_, Error>(())
        };
        let read = async {
            if let Some(ours) = &header {
                let mut theirs = [0u8; HEADER_LEN];
                rx.read_exact(&mut theirs).await?;
                if theirs != *ours {
                    return Err(Error::PeerMismatch {
                        ours: CallHeader::render(ours),
                        theirs: CallHeader::render(&theirs),
                    });
                }
            }
            if !buf.is_empty() {
                rx.read_exact(&mut buf).await?;
            }
            Ok::<_, Error>(())
        };
        tokio::try_join!(write, read)?;
        self.sent += (out.len() + hlen) as u64;
        self.received += (buf.len() + hlen) as u64;
        self.flights += 1;
        Ok(buf)
    }
}
