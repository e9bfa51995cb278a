//! The crate's single error type.
//!
//! Variants keep apart what went wrong locally (I/O, configuration, TLS
//! material), what the network did (timeouts, closed connections) and what the
//! peer sent (malformed or oversized data, a certificate that does not match
//! the pin).

use std::{io, net::SocketAddr, path::PathBuf, time::Duration};

use crate::fingerprint::{Fingerprint, FingerprintParseError};

/// Result alias for this crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// Everything that can go wrong in `fusion-net`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Local I/O failed (sockets, files).
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A key or certificate file could not be read, parsed or written.
    #[error("TLS material error ({path}): {reason}", path = path.as_ref().map_or("<memory>".into(), |p| p.display().to_string()))]
    TlsMaterial {
        /// The file involved, if any.
        path: Option<PathBuf>,
        /// What is wrong with it.
        reason: String,
    },

    /// Building the TLS or QUIC configuration failed.
    #[error("TLS/QUIC configuration error: {0}")]
    Config(String),

    /// The server presented a certificate whose SHA-256 fingerprint is not the
    /// pinned one. The connection was refused before any application data.
    #[error(
        "server certificate does not match the pinned certificate: expected SHA-256 {expected}, server presented {presented}"
    )]
    PinMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The fingerprint of the certificate the server presented.
        presented: Fingerprint,
    },

    /// The QUIC/TLS handshake failed for another reason (unreachable server,
    /// handshake timeout, TLS alert, protocol mismatch).
    #[error("could not establish a connection to {addr}: {reason}")]
    Connect {
        /// The address we tried.
        addr: SocketAddr,
        /// Why it failed.
        reason: String,
    },

    /// A wait for the peer exceeded its configured limit.
    #[error("timed out after {after:?} while {what}")]
    Timeout {
        /// What we were waiting for.
        what: &'static str,
        /// The configured limit.
        after: Duration,
    },

    /// Nothing at all (not even acknowledgements or keep-alive replies)
    /// arrived from the peer for the QUIC idle timeout: the peer vanished.
    #[error("peer silent for the QUIC idle timeout while {what}: connection closed")]
    IdleTimeout {
        /// What we were doing.
        what: &'static str,
    },

    /// The QUIC connection or stream ended (peer closed it, it was reset).
    #[error("connection lost while {what}: {reason}")]
    ConnectionLost {
        /// What we were doing.
        what: &'static str,
        /// The transport's description.
        reason: String,
    },

    /// The peer closed its side of a message stream at a frame boundary.
    #[error("peer closed the message stream")]
    PeerClosed,

    /// The peer announced a frame larger than the configured maximum, or we
    /// tried to send one. Nothing of the frame body was read or allocated.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Announced (or attempted) length.
        len: u64,
        /// Configured maximum.
        max: u64,
    },

    /// The peer sent data that does not decode: truncated frame, bad
    /// encoding, trailing bytes.
    #[error("malformed data from peer: {0}")]
    Malformed(String),

    /// A message stream is unusable after an earlier error interrupted it in
    /// the middle of a frame (for example a timeout).
    #[error("message stream broken by an earlier error")]
    StreamBroken,

    /// Opening a stream on the cryprot connection failed.
    #[error("cannot open stream: {0}")]
    OpenStream(#[from] cryprot_net::ConnectionError),

    /// A link-emulation or connection parameter is invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
}

impl NetError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        NetError::Io {
            context: context.into(),
            source,
        }
    }

    /// Classify an I/O error coming out of a QUIC stream: transport-level
    /// failures (peer closed, reset, idle timeout) become
    /// [`NetError::ConnectionLost`], anything else [`NetError::Io`].
    pub(crate) fn from_stream_io(what: &'static str, err: io::Error) -> Self {
        use s2n_quic::{connection, stream};
        let inner = err.get_ref();
        let conn_err = inner.and_then(|i| {
            i.downcast_ref::<stream::Error>()
                .and_then(|e| match e {
                    stream::Error::ConnectionError { error, .. } => Some(*error),
                    _ => None,
                })
                .or_else(|| i.downcast_ref::<connection::Error>().copied())
        });
        if let Some(connection::Error::IdleTimerExpired { .. }) = conn_err {
            return NetError::IdleTimeout { what };
        }
        let is_transport = inner.is_some_and(|i| {
            i.is::<stream::Error>()
                || i.is::<connection::Error>()
                // cryprot's stream manager went away with the connection.
                // (it boxes the error twice).
                || i.is::<tokio::sync::oneshot::error::RecvError>()
                || i.is::<Box<tokio::sync::oneshot::error::RecvError>>()
        }) || matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotConnected
        );
        if is_transport {
            NetError::ConnectionLost {
                what,
                reason: err.to_string(),
            }
        } else {
            NetError::Io {
                context: what.to_string(),
                source: err,
            }
        }
    }

    /// True if this error means the peer did not answer in time (our own
    /// message timeout or QUIC's idle timeout).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            NetError::Timeout { .. } | NetError::IdleTimeout { .. }
        )
    }
}

impl From<FingerprintParseError> for NetError {
    fn from(e: FingerprintParseError) -> Self {
        NetError::InvalidParameter(e.to_string())
    }
}
