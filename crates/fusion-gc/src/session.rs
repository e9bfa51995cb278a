//! The thin async driver: one garbled circuit from the garbler to the
//! evaluator over a [`fusion_net::Channel`], the evaluator's input labels by
//! oblivious transfer ([`fusion_ot::OtEngine`] with the IKNP flavour).
//!
//! **Messages** (all lengths computed from the public circuit and checked by
//! the receiver; `F` is the table frame size, `min(1 MiB, max frame)` rounded
//! down to a multiple of 32 bytes, part of the header):
//!
//! 1. one flight, both directions: a [`HEADER_BYTES`]-byte header
//!    (magic, circuit id, AND gates, garbler inputs, evaluator inputs,
//!    outputs, `F`, smallest circuit id the evaluator accepts). Each party
//!    compares the shape with its own circuit ([`GcError::Mismatch`]); a
//!    circuit id below the evaluator's floor (one it already evaluated, or
//!    older) is refused by both parties ([`GcError::RepeatedCircuit`]) before
//!    anything secret is sent;
//! 2. garbler → evaluator, streamed in frames of at most `F` bytes: the
//!    garbler's input labels (`16` bytes each, sent directly), the output
//!    decoding bits (`⌈outputs/8⌉` bytes), the garbled tables (exactly
//!    `32` bytes per AND gate);
//! 3. the evaluator's input labels: one chosen-message OT of 128-bit blocks
//!    per evaluator input bit ([`fusion_ot::block_ot`]: 1 IKNP ROT, `1 + 256`
//!    bits, 2 flights per batch), the garbler as sender of `(W⁰, W¹)`.
//!
//! The computation is done by the state machines of [`crate::garble`] and
//! [`crate::evaluate`]; this module only moves bytes. The garbler learns
//! nothing; the evaluator learns the outputs. [`GcStats`] reports the bytes
//! of each kind apart (tables, labels, decoding bits, headers, frame headers
//! and the OT's protocol messages).

use fusion_net::{Channel, NetError};
use fusion_ot::{Bits, Iknp, OtEngine};
use rand::{CryptoRng, Rng};
use zeroize::Zeroize;

use crate::circuit::Circuit;
use crate::error::{GcError, Result};
use crate::evaluate::Evaluator;
use crate::garble::{GarbledCircuit, Garbler, TABLE_BYTES_PER_AND};
use crate::label::{LABEL_BYTES, Labels};

/// Bytes of the header each party sends (8 little-endian `u64`s).
pub const HEADER_BYTES: usize = 64;

/// Largest table frame (1 MiB).
pub const MAX_TABLE_FRAME: usize = 1 << 20;

/// Bytes of the frame header fusion-net puts before every frame payload.
pub const FRAME_HEADER_BYTES: u64 = 4;

const HEADER_WHAT: &str = "garbled-circuit header";

const MAGIC: u64 = u64::from_le_bytes(*b"FUSIONGC");

/// Bytes of one garbled-circuit run, by kind (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// The circuit id.
    pub circuit_id: u64,
    /// AND gates of the circuit.
    pub and_gates: u64,
    /// Garbled-table bytes (exactly `32 · and_gates`).
    pub table_bytes: u64,
    /// Bytes of the garbler's input labels, sent directly (16 per label).
    pub garbler_label_bytes: u64,
    /// Bytes of the output decoding bits.
    pub decoding_bytes: u64,
    /// Header bytes sent by this party.
    pub header_bytes: u64,
    /// Frames this party sent on the channel (header included).
    pub frames_sent: u64,
    /// Evaluator input labels transferred by OT.
    pub ot_transfers: u64,
    /// The OT engine's protocol message bytes sent and received during the
    /// transfer (IKNP's ROT generation, on CryProt's streams, not included).
    pub ot_message_bytes: u64,
}

impl GcStats {
    /// Framing overhead of the frames this party sent (4 bytes per frame).
    pub fn framing_bytes(&self) -> u64 {
        FRAME_HEADER_BYTES * self.frames_sent
    }

    /// Payload bytes this party sent on the channel (the garbler: header,
    /// labels, decoding bits, tables; the evaluator: the header).
    pub fn payload_bytes_sent(&self) -> u64 {
        self.header_bytes + self.garbler_label_bytes + self.decoding_bytes + self.table_bytes
    }
}

/// The header fields (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    id: u64,
    ands: u64,
    garbler_inputs: u64,
    evaluator_inputs: u64,
    outputs: u64,
    frame: u64,
    floor: u64,
}

impl Header {
    pub(crate) fn new(circuit: &Circuit, id: u64, frame: usize, floor: u64) -> Self {
        Header {
            id,
            ands: circuit.and_count() as u64,
            garbler_inputs: circuit.garbler_input_count() as u64,
            evaluator_inputs: circuit.evaluator_input_count() as u64,
            outputs: circuit.output_count() as u64,
            frame: frame as u64,
            floor,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        [
            MAGIC,
            self.id,
            self.ands,
            self.garbler_inputs,
            self.evaluator_inputs,
            self.outputs,
            self.frame,
            self.floor,
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != HEADER_BYTES {
            return Err(GcError::Malformed {
                what: HEADER_WHAT,
                detail: format!("{} bytes where {HEADER_BYTES} were expected", bytes.len()),
            });
        }
        let mut f = [0u64; HEADER_BYTES / 8];
        for (v, c) in f.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            *v = u64::from_le_bytes(w);
        }
        if f[0] != MAGIC {
            return Err(GcError::Malformed {
                what: HEADER_WHAT,
                detail: "bad magic".into(),
            });
        }
        Ok(Header {
            id: f[1],
            ands: f[2],
            garbler_inputs: f[3],
            evaluator_inputs: f[4],
            outputs: f[5],
            frame: f[6],
            floor: f[7],
        })
    }

    /// Compares the public shape (not the id or floor) with the peer's.
    fn check_shape(&self, theirs: &Header) -> Result<()> {
        let fields = [
            ("AND gates", self.ands, theirs.ands),
            ("garbler inputs", self.garbler_inputs, theirs.garbler_inputs),
            (
                "evaluator inputs",
                self.evaluator_inputs,
                theirs.evaluator_inputs,
            ),
            ("outputs", self.outputs, theirs.outputs),
            ("table frame size", self.frame, theirs.frame),
        ];
        for (what, ours, t) in fields {
            if ours != t {
                return Err(GcError::Mismatch {
                    what,
                    ours: ours.to_string(),
                    theirs: t.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// A channel error while receiving `what`: a frame of another length than
/// the public circuit implies is malformed peer data
/// ([`GcError::Malformed`]); anything else is I/O ([`GcError::Io`]).
fn recv_err(what: &'static str) -> impl FnOnce(NetError) -> GcError {
    move |e| match e {
        NetError::Malformed(detail) => GcError::Malformed { what, detail },
        NetError::FrameTooLarge { len, max } => GcError::Malformed {
            what,
            detail: format!("a frame of {len} bytes where at most {max} were expected"),
        },
        e => GcError::Io(e),
    }
}

/// The table frame size for this channel (module docs).
fn frame_size(ch: &Channel) -> Result<usize> {
    let max = usize::try_from(ch.config().max_frame_bytes).unwrap_or(usize::MAX);
    let f = MAX_TABLE_FRAME.min(max) / TABLE_BYTES_PER_AND * TABLE_BYTES_PER_AND;
    if f == 0 {
        return Err(GcError::Param(format!(
            "the channel's frames ({max} bytes) cannot hold one garbled table"
        )));
    }
    Ok(f)
}

/// Sends `bytes` in frames of at most `frame` bytes; returns the frame count.
async fn send_chunked(ch: &mut Channel, bytes: &[u8], frame: usize) -> Result<u64> {
    let mut n = 0;
    for c in bytes.chunks(frame) {
        ch.send_frame(c).await?;
        n += 1;
    }
    Ok(n)
}

/// Receives exactly `total` bytes in frames of exactly `min(frame, rest)`
/// bytes (as [`send_chunked`] sends them).
async fn recv_chunked(
    ch: &mut Channel,
    total: usize,
    frame: usize,
    what: &'static str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let len = frame.min(total - out.len());
        out.extend_from_slice(&ch.recv_exact(len).await.map_err(recv_err(what))?);
    }
    Ok(out)
}

/// Garbler side: garbles `circuit` with `garbler`, sends it and the labels
/// of the garbler's input `bits`, and transfers the evaluator's input labels
/// by OT (module docs). `rng` supplies `Δ` and the input labels.
pub async fn garble_remote<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    ot: &mut OtEngine<Iknp>,
    garbler: &mut Garbler,
    circuit: &Circuit,
    bits: &[bool],
    rng: &mut R,
) -> Result<GcStats> {
    circuit.check_inputs(
        "garbler input bits",
        bits.len(),
        circuit.garbler_input_count(),
    )?;
    let frame = frame_size(ch)?;
    let id = garbler.next_id();
    let ours = Header::new(circuit, id, frame, 0);
    let theirs = Header::decode(
        &ch.exchange(&ours.encode(), HEADER_BYTES)
            .await
            .map_err(recv_err(HEADER_WHAT))?,
    )?;
    ours.check_shape(&theirs)?;
    if id < theirs.floor {
        return Err(GcError::RepeatedCircuit { id });
    }
    let garbling = garbler.garble(circuit, rng)?;
    debug_assert_eq!(garbling.id(), id);
    let (gc, labels, pairs) = garbling.into_parts(bits)?;
    let mut stats = GcStats {
        circuit_id: id,
        and_gates: circuit.and_count() as u64,
        header_bytes: HEADER_BYTES as u64,
        frames_sent: 1,
        ot_transfers: pairs.len() as u64,
        ..GcStats::default()
    };
    let mut label_bytes = labels.to_bytes();
    drop(labels);
    let sent = send_chunked(ch, &label_bytes, frame).await;
    label_bytes.zeroize();
    stats.frames_sent += sent?;
    stats.garbler_label_bytes = (circuit.garbler_input_count() * LABEL_BYTES) as u64;
    let decoding = gc.decoding_bytes();
    stats.frames_sent += send_chunked(ch, &decoding, frame).await?;
    stats.decoding_bytes = decoding.len() as u64;
    let tables = gc.table_bytes();
    drop(gc);
    stats.frames_sent += send_chunked(ch, &tables, frame).await?;
    stats.table_bytes = tables.len() as u64;
    drop(tables);
    let before = ot.stats();
    let mut msgs = pairs.into_ot_pairs();
    let res = ot.ot_send_blocks(&msgs).await;
    msgs.zeroize();
    res?;
    let after = ot.stats();
    stats.ot_message_bytes = (after.bytes_sent + after.bytes_received)
        .saturating_sub(before.bytes_sent + before.bytes_received);
    Ok(stats)
}

/// Evaluator side: receives a garbled circuit for `circuit`, obtains the
/// labels of its input `bits` by OT, evaluates with `evaluator` (which
/// refuses a circuit id it has used) and returns the output bits.
pub async fn evaluate_remote(
    ch: &mut Channel,
    ot: &mut OtEngine<Iknp>,
    evaluator: &mut Evaluator,
    circuit: &Circuit,
    bits: &[bool],
) -> Result<(Vec<bool>, GcStats)> {
    circuit.check_inputs(
        "evaluator input bits",
        bits.len(),
        circuit.evaluator_input_count(),
    )?;
    let frame = frame_size(ch)?;
    let ours = Header::new(circuit, 0, frame, evaluator.floor());
    let theirs = Header::decode(
        &ch.exchange(&ours.encode(), HEADER_BYTES)
            .await
            .map_err(recv_err(HEADER_WHAT))?,
    )?;
    ours.check_shape(&theirs)?;
    let id = theirs.id;
    if id < ours.floor {
        return Err(GcError::RepeatedCircuit { id });
    }
    evaluator.check_fresh(id)?;
    let mut stats = GcStats {
        circuit_id: id,
        and_gates: circuit.and_count() as u64,
        header_bytes: HEADER_BYTES as u64,
        frames_sent: 1,
        ot_transfers: bits.len() as u64,
        ..GcStats::default()
    };
    let n_g = circuit.garbler_input_count();
    let label_len = n_g
        .checked_mul(LABEL_BYTES)
        .ok_or_else(|| GcError::Param("too many garbler inputs".into()))?;
    let mut label_bytes = recv_chunked(ch, label_len, frame, "garbler input labels").await?;
    let garbler_labels = Labels::from_bytes(&label_bytes, n_g, "garbler input labels");
    label_bytes.zeroize();
    let garbler_labels = garbler_labels?;
    let decoding = recv_chunked(
        ch,
        circuit.output_count().div_ceil(8),
        frame,
        "output decoding bits",
    )
    .await?;
    let tables = recv_chunked(ch, circuit.table_bytes(), frame, "garbled tables").await?;
    let gc = GarbledCircuit::from_bytes(circuit, id, &tables, &decoding)?;
    stats.garbler_label_bytes = label_len as u64;
    stats.decoding_bytes = decoding.len() as u64;
    stats.table_bytes = tables.len() as u64;
    drop(tables);
    let before = ot.stats();
    let mut got = ot.ot_receive_blocks(&Bits::from_bools(bits)).await?;
    let after = ot.stats();
    stats.ot_message_bytes = (after.bytes_sent + after.bytes_received)
        .saturating_sub(before.bytes_sent + before.bytes_received);
    let evaluator_labels = Labels(std::mem::take(&mut got));
    let out = evaluator.evaluate(circuit, gc, garbler_labels, evaluator_labels)?;
    Ok((out, stats))
}

/// Garbler side of the evaluator's input labels alone (for a circuit whose
/// tables travel separately, e.g. garbled offline): one chosen-message OT of
/// `(W⁰, W¹)` per evaluator input wire (the peer calls
/// [`receive_evaluator_labels`]). Returns the OT engine's protocol message
/// bytes.
pub async fn send_evaluator_labels(
    ot: &mut OtEngine<Iknp>,
    pairs: crate::label::EvaluatorInputPairs,
) -> Result<u64> {
    let before = ot.stats();
    let mut msgs = pairs.into_ot_pairs();
    let res = ot.ot_send_blocks(&msgs).await;
    msgs.zeroize();
    res?;
    let after = ot.stats();
    Ok((after.bytes_sent + after.bytes_received)
        .saturating_sub(before.bytes_sent + before.bytes_received))
}

/// Evaluator side of [`send_evaluator_labels`]: the labels of `bits`.
pub async fn receive_evaluator_labels(ot: &mut OtEngine<Iknp>, bits: &[bool]) -> Result<Labels> {
    let mut got = ot.ot_receive_blocks(&Bits::from_bools(bits)).await?;
    Ok(Labels(std::mem::take(&mut got)))
}
