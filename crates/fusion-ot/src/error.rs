//! The crate's error type: I/O, malformed peer data, peer disagreement and bad
//! parameters are kept apart.

/// Errors of the OT engine and its protocols.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening a stream on the connection failed.
    #[error("connection error: {0}")]
    Connection(#[from] cryprot_net::ConnectionError),
    /// Reading from or writing to the peer failed (includes the peer closing early).
    #[error("i/o error talking to the peer: {0}")]
    Io(#[from] std::io::Error),
    /// The protocol channel failed: the connection, a timeout, or a frame
    /// from the peer that is malformed or of the wrong length.
    #[error("channel: {0}")]
    Net(#[from] fusion_net::NetError),
    /// The underlying OT extension (silent OT or IKNP) failed.
    #[error("{flavour} OT extension failed: {source}")]
    Ot {
        /// The OT flavour.
        flavour: &'static str,
        /// The error reported by CryProt.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A message from the peer had the wrong length or shape.
    #[error("malformed {what} from the peer: {detail}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What was wrong.
        detail: &'static str,
    },
    /// The peer runs a different operation, size or parameter set for this call
    /// (detected from the per-call header both parties exchange).
    #[error("peer disagrees on the operation: we run {ours}, the peer runs {theirs}")]
    PeerMismatch {
        /// Our call header, rendered.
        ours: String,
        /// The peer's call header, rendered.
        theirs: String,
    },
    /// Invalid parameters or inputs supplied by the caller.
    #[error("invalid parameter: {0}")]
    Param(String),
    /// An earlier protocol call of this session failed or was cancelled part
    /// way; the parties' states may have diverged, so the session refuses to
    /// continue. Set up a new session.
    #[error("the session is unusable after an earlier failed or cancelled call")]
    Poisoned,
    /// An internal invariant failed (a bug in this crate, not a peer problem).
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// A compute task on the worker pool panicked.
    #[error("a compute task panicked")]
    ComputePanic,
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn param(msg: impl Into<String>) -> Error {
    Error::Param(msg.into())
}
