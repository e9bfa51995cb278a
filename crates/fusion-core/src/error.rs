//! The crate's error type.

use std::fmt;

/// Which kind of sample an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// One of the client's private queries.
    Query,
    /// One of the labelled public samples.
    Public,
}

impl fmt::Display for SampleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SampleKind::Query => "query",
            SampleKind::Public => "public sample",
        })
    }
}

/// Everything that can go wrong in fusion-core.
///
/// Parameter errors (bad user input), malformed engine outputs (data coming
/// from the two-party engine, hence from an untrusted server) and engine
/// failures are kept apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is out of its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// No query samples were given (R must be at least 1).
    #[error("no queries: Fusion needs R >= 1 query samples")]
    NoQueries,
    /// Fewer than two copies per query (B must be at least 2).
    #[error("{0} copies per query: Fusion needs B >= 2")]
    TooFewCopies(u64),
    /// No public samples were given (T must be at least 1).
    #[error("no public samples: Fusion needs T >= 1 labelled public samples")]
    NoPublicSamples,
    /// A sample's shape differs from the first query's.
    #[error("{kind} {index} has shape {found}, but query 0 has shape {expected}")]
    ShapeMismatch {
        /// Query or public sample.
        kind: SampleKind,
        /// Its index in the input list.
        index: usize,
        /// The shape of query 0 (debug rendering).
        expected: String,
        /// The offending shape (debug rendering).
        found: String,
    },
    /// A public sample's label is not a valid class index.
    #[error("public sample {index} has label {label}, but there are only {classes} classes")]
    LabelOutOfRange {
        /// Its index in the public list.
        index: usize,
        /// The label given.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// The engine returned the wrong number of outputs.
    #[error("the engine returned {got} outputs for a batch of {expected} samples")]
    OutputCount {
        /// The batch size `N`.
        expected: usize,
        /// The number of outputs received.
        got: usize,
    },
    /// An engine output is malformed (for example, the wrong number of scores).
    #[error("engine output {position} is malformed: {reason}")]
    MalformedOutput {
        /// Its position in the mixed batch.
        position: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The engine failed to run the batch.
    #[error("the inference engine failed: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// One worker of a batch split across several engines
    /// ([`crate::split::SplitEngine`]) failed.
    #[error("worker {worker} failed: {source}")]
    Worker {
        /// The worker's index (in the order the workers were given).
        worker: usize,
        /// Its failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The operating system's randomness source failed.
    #[error("operating-system randomness is unavailable: {0}")]
    Entropy(String),
    /// No number of copies reaches the security target for the given batch.
    #[error(
        "no number of copies B in 2..={max_copies} gives a cheating probability <= 2^-{lambda} \
         with R = {queries} queries, T = {public} public samples and slack {slack}"
    )]
    NoSecureCopies {
        /// R.
        queries: u64,
        /// T.
        public: u64,
        /// s.
        slack: u64,
        /// The security parameter.
        lambda: u32,
        /// The largest B tried.
        max_copies: u64,
    },
}
