//! The crate's error type.

/// What can go wrong in a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad arguments or an unusable configuration.
    #[error("usage: {0}")]
    Usage(String),
    /// File or process I/O.
    #[error("I/O: {0}")]
    Io(String),
    /// The peer process (our server party or the SPU peer) failed or said
    /// something we could not parse.
    #[error("peer process: {0}")]
    Peer(String),
    /// The secure session or the network failed.
    #[error("secure session: {0}")]
    Session(String),
    /// The run did not finish within its time limit.
    #[error("timeout: {0}")]
    Timeout(String),
}

/// Result with [`BenchError`].
pub type Result<T> = std::result::Result<T, BenchError>;

/// [`BenchError::Io`] with a context prefix.
pub(crate) fn io(what: impl std::fmt::Display, e: impl std::fmt::Display) -> BenchError {
    BenchError::Io(format!("{what}: {e}"))
}
