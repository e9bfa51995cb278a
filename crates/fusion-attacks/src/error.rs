//! The crate's error type.

use fusion_nn::NnError;

/// Errors of the attacks and oracles. I/O (loading models and data), bad
/// parameters, unsupported models and oracle failures are kept apart so that a
/// command line can map them to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    /// Loading a model or a data set failed.
    #[error("loading failed: {0}")]
    Io(NnError),
    /// A parameter is out of range (a budget of 0, an empty seed set, ...).
    #[error("bad parameter: {0}")]
    BadParameter(String),
    /// The attack or oracle does not support this model or output mode.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The oracle could not answer (an engine error).
    #[error("oracle failed: {0}")]
    Oracle(String),
    /// Training or evaluating the attacker's own (substitute or recovered) model failed.
    #[error("attacker model: {0}")]
    Model(NnError),
}

/// Result with [`AttackError`].
pub type Result<T> = std::result::Result<T, AttackError>;
