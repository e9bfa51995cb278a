//! Configuration of a session, common to every backend: chunking, limits,
//! timeouts, what the client accepts, progress reports.
//!
//! The **server decides** the ring and fixed-point scale (by lowering its
//! model, [`fusion_nn::fixed::lower`]), the chunk size and the largest batch
//! ([`SessionParams`]) and, per backend, that backend's parameters (each
//! backend's own configuration type, e.g.
//! [`crate::backends::cheetah::config::CheetahConfig`]). It announces them in its
//! hello; the **client validates** them ([`SessionParams::validate`],
//! [`ClientPolicy`], the backend's [`crate::backend::Backend::join`]) and uses
//! exactly them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{SecureError, SecureResult};

/// Default number of samples per chunk (see [`ServerConfig::chunk`]).
pub const DEFAULT_CHUNK: usize = 256;
/// Largest chunk a server may announce or a client accept.
pub const MAX_CHUNK: usize = 1 << 16;
/// Default largest batch a server accepts in one request.
pub const DEFAULT_MAX_BATCH: usize = 1 << 20;
/// Default limit on every protocol step (one layer, one message).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);
/// Default limit on the client's hello: a client that connects and sends no
/// hello within it is dropped (see [`crate::SecureServer::set_hello_timeout`]),
/// separately from the step timeout.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The backend a client asks for when it names none.
pub const DEFAULT_BACKEND: &str = "cheetah";

/// The session parameters the server announces (besides its backend's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionParams {
    /// Samples per chunk: a batch of `N` samples runs as `ceil(N / chunk)`
    /// passes through the program (all of `chunk` samples but the last).
    pub chunk: u64,
    /// The largest batch the server accepts in one request.
    pub max_batch: u64,
}

impl SessionParams {
    /// Checks every field (the client calls this on the server's announcement).
    pub fn validate(&self) -> SecureResult<()> {
        if self.chunk == 0 || self.chunk > MAX_CHUNK as u64 {
            return Err(SecureError::Mismatch(format!(
                "chunk of {} samples is outside 1..={MAX_CHUNK}",
                self.chunk
            )));
        }
        if self.max_batch == 0 || self.max_batch > 1 << 40 {
            return Err(SecureError::Mismatch(format!(
                "maximum batch {} is outside 1..=2^40",
                self.max_batch
            )));
        }
        Ok(())
    }

    /// The chunk sizes of a batch of `n` samples.
    pub fn chunks(&self, n: usize) -> Vec<usize> {
        let c = usize::try_from(self.chunk).unwrap_or(usize::MAX).max(1);
        let mut out = Vec::with_capacity(n.div_ceil(c));
        let mut left = n;
        while left > 0 {
            let k = left.min(c);
            out.push(k);
            left -= k;
        }
        out
    }
}

/// The server's settings (every backend).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest chunk the server runs at once (the client may ask for less).
    pub chunk: usize,
    /// Largest batch accepted in one request.
    pub max_batch: usize,
    /// Limit on every protocol step and message wait.
    pub step_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            chunk: DEFAULT_CHUNK,
            max_batch: DEFAULT_MAX_BATCH,
            step_timeout: DEFAULT_STEP_TIMEOUT,
        }
    }
}

impl ServerConfig {
    /// Checks the settings.
    pub fn validate(&self) -> SecureResult<()> {
        if self.chunk == 0 || self.chunk > MAX_CHUNK {
            return Err(SecureError::Config(format!(
                "chunk {} outside 1..={MAX_CHUNK}",
                self.chunk
            )));
        }
        if self.max_batch == 0 {
            return Err(SecureError::Config("max batch must be positive".into()));
        }
        Ok(())
    }
}

/// What the client accepts from a server: everything `None` accepts any
/// valid value. The client always checks the announcement's consistency
/// (program structure, shapes, classes, preprocessing, session parameters;
/// the backend checks its own parameters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientPolicy {
    /// Required ring bits `l`.
    pub ring_bits: Option<u32>,
    /// Required fractional bits `f`.
    pub frac_bits: Option<u32>,
    /// Required number of classes.
    pub classes: Option<usize>,
    /// Required per-sample input length (raw features or pixels).
    pub input_len: Option<usize>,
    /// Required model name.
    pub model_name: Option<String>,
    /// Least statistical security per session of the server's HE noise
    /// flooding ([`crate::statsec`]; bits, `lambda_c - log2 M` as announced).
    /// A backend that reveals no flooded coefficients announces none and
    /// passes.
    pub min_stat_sec_bits: Option<u32>,
}

/// Progress of a batch, reported after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Steps done in this batch (over all chunks).
    pub done: usize,
    /// Steps in this batch (actions per pass times chunks).
    pub total: usize,
}

/// A progress callback.
pub type ProgressFn = std::sync::Arc<dyn Fn(Progress) + Send + Sync>;

/// The client's settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// Preferred chunk (the server's announced chunk wins if smaller).
    pub chunk: usize,
    /// Limit on every protocol step and message wait.
    pub step_timeout: Duration,
    /// What the client accepts.
    pub policy: ClientPolicy,
    /// Called after every step of a batch.
    pub progress: Option<ProgressFn>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("chunk", &self.chunk)
            .field("step_timeout", &self.step_timeout)
            .field("policy", &self.policy)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            chunk: DEFAULT_CHUNK,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            policy: ClientPolicy::default(),
            progress: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_batch_with_equal_chunks_but_the_last() {
        let p = SessionParams {
            chunk: 4,
            max_batch: 100,
        };
        assert_eq!(p.chunks(10), vec![4, 4, 2]);
        assert_eq!(p.chunks(4), vec![4]);
        assert!(p.chunks(0).is_empty());
        assert!(p.validate().is_ok());
        assert!(SessionParams { chunk: 0, ..p }.validate().is_err());
        assert!(SessionParams { max_batch: 0, ..p }.validate().is_err());
    }
}
