//! The crate's error type.

/// Errors of `fusion-he`. Parameter problems, local misuse, malformed peer data
/// and I/O are kept apart.
#[derive(Debug, thiserror::Error)]
pub enum HeError {
    /// Inconsistent or unsupported parameters.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// The modulus is too large for the requested lattice security.
    #[error(
        "insecure parameters: log2 q = {log2_q:.2} exceeds {max_log_q} bits, the maximum for N = {n} at \
         {level}-bit security with a ternary secret (HomomorphicEncryption.org standard, Table 1)"
    )]
    InsecureModulus {
        /// Ring degree.
        n: usize,
        /// Requested `log2 q`.
        log2_q: f64,
        /// The standard's maximum.
        max_log_q: u32,
        /// Security level in bits.
        level: u32,
    },
    /// The flooding cannot hide these weights at the required statistical security.
    #[error(
        "noise flooding reaches only {achieved:.1} bits of statistical security (need {required}) for weights \
         up to 2^{weight_bits} and noise fan-in {noise_fan_in}: use Preset::N8192 or smaller weights"
    )]
    InsufficientFlooding {
        /// Achieved bits per coefficient.
        achieved: f64,
        /// Required bits.
        required: u32,
        /// The weights' bound `|w| <= 2^weight_bits`.
        weight_bits: u32,
        /// Weight-polynomial coefficients summed per output coefficient.
        noise_fan_in: usize,
    },
    /// A layer shape that cannot be planned.
    #[error("invalid layer shape: {0}")]
    InvalidShape(String),
    /// A local input of the wrong length.
    #[error("{what} has {found} elements, expected {expected}")]
    InputLength {
        /// Which input.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A local input with bits above `l`.
    #[error("{what}[{index}] is not an element of Z_2^{bits}")]
    NotInRing {
        /// Which input.
        what: &'static str,
        /// Position of the first offending element.
        index: usize,
        /// `l`.
        bits: u32,
    },
    /// The peer uses other parameters.
    #[error("parameter mismatch: {0}")]
    ParamMismatch(String),
    /// A peer message of the wrong size.
    #[error("malformed {what}: {found} bytes, expected {expected}")]
    MessageLength {
        /// Which message.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Received size.
        found: usize,
    },
    /// A peer coefficient outside its modulus.
    #[error(
        "malformed {what}: value {value} at position {index} is not below its modulus {modulus}"
    )]
    CoefficientOutOfRange {
        /// Which message.
        what: &'static str,
        /// Position in the message.
        index: usize,
        /// The value.
        value: u128,
        /// Its modulus.
        modulus: u128,
    },
    /// Other malformed peer data.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// A broken internal invariant (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}
