//! The secure engine's error type.
//!
//! The engine's one error enum. The variants keep apart what a caller must tell apart: the
//! transport failing or timing out, the peer sending malformed data, the peer
//! announcing parameters we refuse, the server refusing us, and local mistakes.

use std::time::Duration;

use fusion_nn::error::NnError;

/// Everything that can go wrong in a secure inference session.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    /// The connection or a message stream failed (includes the peer closing
    /// early and fusion-net's own message timeouts).
    #[error("network: {0}")]
    Net(#[from] fusion_net::NetError),
    /// A homomorphic linear layer failed (including malformed HE frames from
    /// the peer; backends built on fusion-he).
    #[error("linear layer (HE): {0}")]
    He(#[from] fusion_he::HeError),
    /// An OT-based protocol failed (including a peer running another
    /// operation; backends built on fusion-ot).
    #[error("non-linear layer (OT): {0}")]
    Ot(#[from] fusion_ot::Error),
    /// A protocol step did not finish in time.
    #[error("timed out after {after:?} while {what}")]
    Timeout {
        /// The step.
        what: String,
        /// The limit.
        after: Duration,
    },
    /// The peer sent a message that is not what the protocol expects at this
    /// point, or that fails validation (lengths, ranges, shapes).
    #[error("malformed message from the peer: {0}")]
    Malformed(String),
    /// The peer announced parameters or a model we refuse (version, ring,
    /// shapes, classes, OT flavour, ...).
    #[error("refusing the peer's parameters: {0}")]
    Mismatch(String),
    /// The server refused our request (its stated reason).
    #[error("the server refused: {0}")]
    Refused(String),
    /// The server runs as many sessions as it admits and refused this one
    /// before any protocol work; a new attempt after `retry_after_secs`
    /// seconds may be admitted.
    #[error("the server is busy, retry after {retry_after_secs} seconds")]
    Busy {
        /// The server's suggested wait, seconds.
        retry_after_secs: u64,
    },
    /// The client's quota of samples for the current period is used up
    /// (the server's refusal states when it resets).
    #[error("the server refused: {0}")]
    QuotaExceeded(crate::wire::QuotaStatus),
    /// The server does not offer the backend the client asked for.
    #[error("the server does not offer backend `{requested}` (it offers: {offered})")]
    BackendUnavailable {
        /// The backend asked for.
        requested: String,
        /// The backends the server offers, comma-separated.
        offered: String,
    },
    /// No backend of this name exists in this build.
    #[error("unknown backend `{name}` (available: {available})")]
    UnknownBackend {
        /// The name given.
        name: String,
        /// The available backends, comma-separated.
        available: String,
    },
    /// A local model or program error (lowering, shapes of our own inputs).
    #[error("model: {0}")]
    Model(#[from] NnError),
    /// Our own configuration or arguments are invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The session reached its cap on revealed HE coefficients
    /// ([`crate::statsec`]): the next pass would reveal `needed` more flooded
    /// coefficients after `revealed`, past the cap `cap` up to which the
    /// announced statistical security per session holds. The session ends
    /// before any reply of that pass; a new session starts a new count.
    #[error(
        "the session's cap of {cap} revealed HE coefficients is reached ({revealed} revealed, \
         the next pass needs {needed} more): the per-session statistical security holds only up \
         to the cap; open a new session"
    )]
    RevealCapReached {
        /// The session's cap.
        cap: u64,
        /// Coefficients revealed so far.
        revealed: u64,
        /// Coefficients the refused pass (or call) would reveal.
        needed: u64,
    },
    /// A background task failed.
    #[error("background task failed: {0}")]
    Task(String),
    /// A session's task panicked (in our code or in a dependency); only that
    /// session ended.
    #[error("session panicked during {phase}: {message}")]
    Panicked {
        /// The phase the session had last entered.
        phase: fusion_net::Phase,
        /// The panic's message.
        message: String,
    },
}

impl SecureError {
    /// Whether the failure is the peer's announced parameters or model not
    /// matching what we accept (a configuration problem rather than a fault).
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            SecureError::Mismatch(_)
                | SecureError::BackendUnavailable { .. }
                | SecureError::UnknownBackend { .. }
        )
    }
}

/// Result with [`SecureError`].
pub type SecureResult<T> = std::result::Result<T, SecureError>;
