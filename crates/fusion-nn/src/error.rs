//! The one error type of this crate.
//!
//! Variants keep apart malformed files (architecture, weights, datasets), I/O
//! failures, graph/shape errors and bad arguments, so callers (the CLI maps them
//! to exit codes) can tell a user's mistake from a broken file.

use std::path::PathBuf;

/// Everything that can go wrong in `fusion-nn`.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A node's inputs do not have the shapes its operation needs.
    #[error("shape error at node `{node}` ({op}): {msg}")]
    Shape {
        /// The node's name.
        node: String,
        /// The node's operation (its JSON tag).
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The graph itself is malformed (dangling or forward references, duplicate
    /// names, wrong number of inputs, ...).
    #[error("invalid graph: {0}")]
    Graph(String),
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The architecture file (`model.json`) is not valid.
    #[error("bad architecture file {path}: {msg}")]
    Architecture {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The weights file is not a readable safetensors file, or a tensor in it is
    /// unusable (bad dtype, non-finite values, ...).
    #[error("bad weights file {path}: {msg}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A tensor the architecture needs is not in the weights file.
    #[error("weights file {path}: tensor `{name}` is missing")]
    MissingWeight {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor has another shape than the architecture implies.
    #[error(
        "weights file {path}: tensor `{name}` has shape {found:?}, the architecture needs {expected:?}"
    )]
    WeightShape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape the architecture implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The weights file holds a tensor no node of the architecture uses.
    #[error("weights file {path}: tensor `{name}` is not used by the architecture")]
    UnexpectedWeight {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A dataset file is malformed.
    #[error("bad dataset file {path}: {msg}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A dataset name the registry does not know.
    #[error("unknown dataset `{0}` (known: mnist, fashion-mnist, breast-cancer, digits)")]
    UnknownDataset(String),
    /// No data directory could be found.
    #[error("data directory not found: {0}")]
    DataDir(String),
    /// A batch does not have the shape the model or program expects.
    #[error(
        "input shape mismatch: expected {expected:?} per sample, got a batch of shape {found:?}"
    )]
    InputShape {
        /// The per-sample shape expected.
        expected: Vec<usize>,
        /// The batch shape given.
        found: Vec<usize>,
    },
    /// A tensor's data length does not match its shape.
    #[error("tensor of shape {shape:?} needs {expected} elements, got {found}")]
    TensorLength {
        /// The shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Length of the data.
        found: usize,
    },
    /// The model cannot be lowered to fixed point with these parameters
    /// (a weight out of range, a malformed program, ...).
    #[error("fixed point: {0}")]
    FixedPoint(String),
    /// A zoo network or training recipe name that does not exist.
    #[error("unknown {kind} `{name}` (known: {known})")]
    UnknownName {
        /// "network" or "recipe".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// Training failed or was asked something it cannot do.
    #[error("training: {0}")]
    Training(String),
    /// An ONNX file that cannot be decoded or is inconsistent (truncated, not
    /// ONNX, a tensor whose data does not match its dimensions, ...).
    #[error("malformed ONNX file: {0}")]
    Onnx(String),
    /// A well-formed ONNX graph with something the importer does not map
    /// (an operator, an attribute value, a dynamic dimension, ...).
    #[error("ONNX node `{node}` ({op}): {msg}")]
    OnnxUnsupported {
        /// The node's name (or `(graph)` / `(model)`).
        node: String,
        /// The operator type.
        op: String,
        /// What is not supported, and what is.
        msg: String,
    },
    /// Calibration found that a fixed-point format cannot hold the values
    /// (too little headroom), or the calibration data does not fit the model.
    #[error("calibration: {0}")]
    Calibration(String),
    /// An argument out of its domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl NnError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NnError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`NnError`].
pub type Result<T, E = NnError> = std::result::Result<T, E>;
