//! The thin I/O driver: the OT protocols' flights over fusion-net's
//! [`fusion_net::Channel`], the one framing layer of every protocol message.
//!
//! A flight is one simultaneous exchange: both parties send one frame and
//! read the peer's, whose length is computed from public parameters only
//! (a frame of another length is an error, and nothing larger is buffered).
//! A flight costs one one-way network latency; the protocols in this crate
//! are written so that every flight is symmetric where possible, so that
//! both directions are used at once. Frames are metered on the session's
//! meter when the engine was set up with one ([`crate::OtEngine::setup_on`]).
//!
//! A session keeps its protocol channels for its whole life, so protocol data
//! always arrives in order. Switching between these channels, CryProt's OT
//! generation streams and other protocols' channels on the same QUIC
//! connection needs no barrier: fusion-net sizes the connection's
//! flow-control window so that streams not being read cannot starve the one
//! being read (see [`fusion_net::channel`]).
//!
//! The first flight of every call carries an 18-byte [`CallHeader`] in both
//! directions, so that a peer running a different operation, size or parameter
//! set is detected ([`Error::PeerMismatch`]) instead of desynchronising.

use cryprot_net::Connection;
use fusion_net::{MessageConfig, Meter};

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
    BlockOt = 17,
    Gilboa = 18,
    FieldSetup = 19,
    FieldMillionaires = 20,
    FieldDrelu = 21,
    FieldRelu = 22,
    FieldTruncate = 23,
    Kkot = 24,
    FieldMux = 25,
    FieldReluTruncate = 26,
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
            17 => BlockOt,
            18 => Gilboa,
            19 => FieldSetup,
            20 => FieldMillionaires,
            21 => FieldDrelu,
            22 => FieldRelu,
            23 => FieldTruncate,
            24 => Kkot,
            25 => FieldMux,
            26 => FieldReluTruncate,
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
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
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

/// Largest flight frame: the flights' lengths are exact (computed from
/// public sizes), so this only caps what a call may ask for.
const MAX_FLIGHT: u32 = 1 << 30;

/// A protocol channel to the peer, with flight counters.
pub(crate) struct Channel {
    ch: fusion_net::Channel,
    header: Option<[u8; HEADER_LEN]>,
    /// Bytes written to the peer so far (frames, headers included).
    pub sent: u64,
    /// Bytes read from the peer so far (frames, headers included).
    pub received: u64,
    /// Flights performed so far.
    pub flights: u64,
}

impl Channel {
    /// Opens the channel on `conn` (both parties open their channels in the
    /// same order), metered on `meter`.
    pub(crate) async fn open(conn: &mut Connection, meter: Option<&Meter>) -> Result<Channel> {
        let config = MessageConfig {
            max_frame_bytes: MAX_FLIGHT,
            ..MessageConfig::default()
        };
        let ch = fusion_net::Channel::open(conn, meter, &config).await?;
        Ok(Channel {
            ch,
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

    /// One flight: sends `out` and receives exactly `in_len` bytes,
    /// concurrently. On the first flight of a call the header travels in
    /// front of the payload and the peer's is compared first, so a peer
    /// running something else is reported as a mismatch rather than as a
    /// length error.
    pub(crate) async fn exchange(&mut self, out: &[u8], in_len: usize) -> Result<Vec<u8>> {
        let frame = fusion_net::message::HEADER_BYTES;
        let buf = match self.header.take() {
            None => {
                if out.len() > MAX_FLIGHT as usize || in_len > MAX_FLIGHT as usize {
                    return Err(Error::Malformed {
                        what: "flight",
                        detail: "a flight larger than 1 GiB",
                    });
                }
                let buf = self.ch.exchange(out, in_len).await?;
                self.sent += (out.len() + frame) as u64;
                self.received += (buf.len() + frame) as u64;
                buf
            }
            Some(ours) => {
                let mut msg = Vec::with_capacity(HEADER_LEN + out.len());
                msg.extend_from_slice(&ours);
                msg.extend_from_slice(out);
                let got = self.ch.exchange_any(&msg).await?;
                self.sent += (msg.len() + frame) as u64;
                self.received += (got.len() + frame) as u64;
                first_flight_payload(&ours, &got, in_len)?
            }
        };
        self.flights += 1;
        Ok(buf)
    }
}

/// Checks the peer's first flight of a call, `got`: its header must be
/// `ours`, then exactly `in_len` payload bytes follow, which are returned.
pub(crate) fn first_flight_payload(
    ours: &[u8; HEADER_LEN],
    got: &[u8],
    in_len: usize,
) -> Result<Vec<u8>> {
    let theirs: [u8; HEADER_LEN] = got
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::Malformed {
            what: "call header",
            detail: "the peer's first flight is shorter than a header",
        })?;
    if theirs != *ours {
        return Err(Error::PeerMismatch {
            ours: CallHeader::render(ours),
            theirs: CallHeader::render(&theirs),
        });
    }
    if got.len() != HEADER_LEN + in_len {
        return Err(Error::Malformed {
            what: "flight",
            detail: "the peer's flight has another length",
        });
    }
    Ok(got[HEADER_LEN..].to_vec())
}
