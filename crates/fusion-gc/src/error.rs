//! The crate's error type: I/O, malformed peer data, disagreement with the
//! peer on public parameters and bad caller input are kept apart.

/// Errors of garbling, evaluation, the wire format and the driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    /// The channel to the peer failed (connection lost, timeout, stream
    /// closed). A frame of the wrong length is [`GcError::Malformed`].
    #[error("channel: {0}")]
    Io(#[from] fusion_net::NetError),
    /// The oblivious transfer of the evaluator's input labels failed.
    #[error("oblivious transfer: {0}")]
    Ot(#[from] fusion_ot::Error),
    /// Garbled tables of the wrong size: a circuit with `A` AND gates has
    /// exactly `32·A` bytes of tables.
    #[error("malformed garbled tables: {got} bytes where {expected} were expected")]
    TableLength {
        /// Bytes expected (from the public circuit).
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// Wire labels of the wrong count or byte size (16 bytes per label).
    #[error(
        "malformed {what}: {got_bytes} bytes where {expected} labels (16 bytes each) were expected"
    )]
    LabelLength {
        /// Which labels.
        what: &'static str,
        /// Labels expected (from the public circuit).
        expected: usize,
        /// Bytes received.
        got_bytes: usize,
    },
    /// A vector of labels with the wrong number of labels for the circuit.
    #[error("wrong number of {what}: {got} where the circuit has {expected}")]
    LabelCount {
        /// Which labels.
        what: &'static str,
        /// Labels the circuit needs.
        expected: usize,
        /// Labels supplied.
        got: usize,
    },
    /// Other peer data that does not parse: a frame of another length than
    /// the public circuit implies, a bad header, non-zero padding bits.
    #[error("malformed {what} from the peer: {detail}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The peer's public parameters differ from ours (another circuit shape).
    #[error("parameter mismatch with the peer on {what}: ours {ours}, theirs {theirs}")]
    Mismatch {
        /// Which parameter.
        what: &'static str,
        /// Our value.
        ours: String,
        /// The peer's value.
        theirs: String,
    },
    /// The evaluator has already evaluated a garbled circuit with this id;
    /// a garbled circuit must never be evaluated twice.
    #[error("garbled circuit {id} was already evaluated; refusing to evaluate it again")]
    RepeatedCircuit {
        /// The circuit id.
        id: u64,
    },
    /// Invalid parameters or inputs supplied by the caller.
    #[error("invalid parameter: {0}")]
    Param(String),
}

/// Result alias.
pub type Result<T, E = GcError> = std::result::Result<T, E>;

pub(crate) fn param(msg: impl Into<String>) -> GcError {
    GcError::Param(msg.into())
}
