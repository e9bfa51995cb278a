//! The backend seam: what a semi-honest two-party inference protocol must
//! provide so that the session driver can run a model with it.
//!
//! Fusion (Dong et al., NDSS 2023) is a compiler over *any* semi-honest
//! secure-inference protocol; the paper's Table II instantiates it on ABY,
//! DELPHI, CrypTFlow2 and Cheetah. In this crate such a protocol is a
//! **backend**: a named bundle of per-layer protocols behind the traits of
//! this module. The session driver ([`crate::driver`]) owns everything else:
//! the handshake, the schedule of the program's steps (one shared
//! [`Schedule`] that both parties walk), local steps, chunking, timeouts,
//! per-phase metering, the server's behaviour hook and the reconstruction of
//! outputs. A backend never sees the control messages; the driver never sees
//! a backend's messages.
//!
//! # The traits
//!
//! | trait | role | called |
//! |---|---|---|
//! | [`Backend`] | name, summary; prepares the server's side for a model ([`Backend::serve`]) and validates the server's announcement on the client ([`Backend::join`]) | once per model / per session |
//! | [`PreparedBackend`] | the share [`Domain`]; opens one party's session ([`PreparedBackend::open`]: keys, base OTs) | once per session |
//! | [`LinearLayers`] | dense, convolution, per-channel affine (batch norm) on shares | per linear step |
//! | [`NonLinearLayers`] | ReLU, fused ReLU-truncation, truncation, max pool, square on shares | per non-linear step |
//! | [`Preprocessing`] | optional input-independent work before each pass (DELPHI's offline phase, ABY's triples, silent-OT generation) | per chunk, before its pass |
//! | [`OutputStage`] | reveals the program's output to the client (the logits, or in label mode the one-hot vector of [`crate::output_mode`]'s secure argmax, which runs on the other traits) | per chunk, after its pass |
//!
//! A per-party session object implements the last four ([`PartySession`]);
//! client and server each get their own object from the same
//! [`PreparedBackend::open`] and the driver calls the same methods on both in
//! the same order. Each call gets this party's share and returns this party's
//! share of the result in the backend's [`Domain`]: `Z_{2^l}` (Cheetah, ABY,
//! SCI_OT) or `Z_p` (CrypTFlow2's SCI_HE, DELPHI). Where a share is known to
//! be zero (the server's share of the model input) the driver says so, so a
//! backend can skip sending it.
//!
//! The seam fits, without change, HE linear layers (Cheetah's coefficient
//! encoding or SCI_HE's SIMD encoding: the party holds its key or the
//! client's public key and the encoded weights), OT- or triple-based linear
//! layers (ABY, SCI_OT: triples come from [`Preprocessing`]), OT-based
//! non-linear layers (silent OT, IKNP) and garbled-circuit non-linear layers
//! (DELPHI, ABY: circuits garbled in [`Preprocessing`], labels sent by OT in
//! [`NonLinearLayers::nonlinear`]).
//!
//! # Contract
//!
//! * **Semantics.** Each call computes exactly the op of the plaintext
//!   fixed-point interpreter ([`fusion_nn::fixed::Step::apply`]) on the
//!   reconstructed values, except that a truncation may return the floor or
//!   one less (the engine contract of [`fusion_nn::fixed`]). The driver's
//!   agreement tests check every backend against the interpreter.
//! * **Order.** Both parties call the same methods with the same public
//!   arguments in the same order; a backend may rely on it (and should detect
//!   a peer that does not, e.g. with a header, rather than desynchronise).
//! * **Messages.** A backend moves its messages itself, over the streams it
//!   opened in [`PreparedBackend::open`] on the session's connection; every
//!   byte lands in the session's meter, charged to the [`fusion_net::Phase`]
//!   the driver set for the call. Peer messages are untrusted: decode with
//!   bounds and return [`SecureError::Malformed`] (never panic).
//! * **Errors** end the session: after an error the driver calls nothing
//!   more on the session object.
//! * **Cost.** Work that depends only on public sizes belongs in
//!   [`Preprocessing`] (reported as its own phase and included in the
//!   per-batch totals); one-time work per session in
//!   [`PreparedBackend::open`] (reported as setup).
//!
//! # How to add a backend
//!
//! 1. Decide the share [`Domain`] and write a `struct` for your backend's
//!    configuration; implement [`Backend`] for it. [`Backend::serve`] checks
//!    that every step of the program has a protocol and picks parameters; it
//!    returns the announcement (JSON text) that [`Backend::join`] parses and
//!    validates on the client: reject anything you would not run with
//!    [`SecureError::Mismatch`].
//! 2. Implement [`PreparedBackend`]: `open` runs your setup over the
//!    [`SetupLink`] (open your streams on `link.session`, in the same order on
//!    both parties) and returns the per-party session object;
//!    `stat_security` states the statistical security of any HE noise
//!    flooding you reveal to the client ([`crate::statsec`]; `None` if none),
//!    and a backend that states one counts what it reveals and ends the
//!    session at the cap.
//!    `estimate` states the communication of one pass per step from public
//!    sizes ([`crate::estimate`]); `tests/estimate.rs` checks it against
//!    real sessions (add your backend there).
//! 3. Implement [`LinearLayers`], [`NonLinearLayers`], [`OutputStage`] and (if
//!    you have an offline phase) [`Preprocessing`] on the session object.
//!    Look the step up in the program by [`LinearCall::step`]; the op
//!    vocabulary of non-linear steps is [`NonLinearOp`].
//! 4. Register the backend in [`crate::backends`] (name, summary,
//!    constructor) so `fusion backends`, `fusion serve --backend` and
//!    `fusion query --backend` know it.
//! 5. Run the agreement tests with your backend (see `tests/secure.rs`: a
//!    backend is tested against the plaintext fixed-point interpreter on
//!    random and edge inputs, both parties in one test) and add it to the
//!    benchmark tables.
//!
//! `tests/reference_backend.rs` is a complete backend written only against
//! these traits (an insecure trusted-dealer reference in `Z_p`): a template
//! as well as a proof that the seam is enough.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use fusion_net::Session;
use fusion_nn::fixed::{FixedProgram, PublicProgram};
use rand::rngs::ChaCha20Rng;

use crate::domain::Domain;
use crate::error::{SecureError, SecureResult};
use crate::schedule::{NonLinearOp, Schedule};

/// The future a protocol call returns (boxed so that backends can be chosen
/// at run time; one allocation per layer call is negligible).
pub type ProtocolFuture<'a, T> = Pin<Box<dyn Future<Output = SecureResult<T>> + Send + 'a>>;

/// Most bytes of a backend's announcement (JSON text in the server's hello).
pub const MAX_ANNOUNCEMENT: usize = 64 << 10;

/// A semi-honest two-party inference protocol under a name (see the module
/// docs). The value carries the backend's configuration for this party.
pub trait Backend: Send + Sync {
    /// The name in the handshake and on the command line (`cheetah`).
    fn name(&self) -> &'static str;

    /// One line for `fusion backends`.
    fn summary(&self) -> &'static str;

    /// Server: prepares serving `program` (with its coefficients): checks that
    /// every step has a protocol, chooses parameters, and returns the prepared
    /// backend and its announcement (JSON text, at most
    /// [`MAX_ANNOUNCEMENT`] bytes) for the client.
    fn serve(&self, program: &FixedProgram) -> SecureResult<(Arc<dyn PreparedBackend>, String)>;

    /// Client: validates the server's `announcement` for the public
    /// `program` (no coefficients) and prepares the client's side.
    fn join(
        &self,
        program: &PublicProgram,
        announcement: &str,
    ) -> SecureResult<Arc<dyn PreparedBackend>>;
}

/// What a party's setup gets: the session (to open the backend's streams on
/// its connection), a randomness source and the step timeout.
pub struct SetupLink<'a> {
    /// The session; open streams with `session.sub_connection()` or
    /// `session.frame_channel()`, in the same order on both parties.
    pub session: &'a mut Session,
    /// This party's randomness (forked from the caller's CSPRNG).
    pub rng: ChaCha20Rng,
    /// Limit on any single wait inside the backend's setup.
    pub timeout: Duration,
}

/// A backend ready to run sessions for one program.
pub trait PreparedBackend: Send + Sync {
    /// The ring or field of the shares.
    fn domain(&self) -> Domain;

    /// A short description of the chosen parameters, for logs and reports.
    fn describe(&self) -> String;

    /// Runs this party's one-time session setup (keys, base OTs) with the
    /// peer and returns the per-party session object.
    fn open<'a>(&'a self, link: SetupLink<'a>) -> ProtocolFuture<'a, Box<dyn PartySession>>;

    /// The statistical security of the backend's HE noise flooding (bits per
    /// revealed coefficient and the session's cap, [`crate::statsec`]), as
    /// both parties derive it from the announcement; `None`
    /// for a backend that reveals no flooded coefficients. A backend that
    /// returns `Some` must end a session before it reveals more than the cap.
    /// (No default: a wrapper must forward it, or the hello would disagree
    /// with the wrapped backend's announcement.)
    fn stat_security(&self) -> Option<crate::statsec::SessionFlooding>;

    /// The estimated communication of one pass of `n` samples, step by step,
    /// from public sizes alone ([`crate::estimate`]). Both parties give the
    /// same answer. (No default: every backend states its costs.)
    fn estimate(&self, n: usize) -> SecureResult<crate::estimate::CostEstimate>;

    /// Server: does the per-model, input-independent work for chunks of `n`
    /// samples ahead of the first session (e.g. encoding weights). Default:
    /// nothing.
    fn precompute<'a>(&'a self, n: usize) -> ProtocolFuture<'a, ()> {
        let _ = n;
        Box::pin(async { Ok(()) })
    }
}

/// One party's side of a backend in one session: all four protocol traits.
pub trait PartySession:
    LinearLayers + NonLinearLayers + Preprocessing + OutputStage + Send
{
    /// Counters or parameters worth reporting (JSON object), e.g. OT counts.
    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// A linear step call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearCall {
    /// The step of the program ([`FixedProgram::steps`] index).
    pub step: usize,
    /// Samples in the chunk.
    pub n: usize,
    /// This party's input share is known to be zero (the server's share of
    /// the model input): the backend may skip sending it.
    pub input_is_zero: bool,
}

/// Linear steps whose coefficients the server holds: dense, convolution,
/// per-channel affine ([`fusion_nn::fixed::OpClass::Linear`]).
pub trait LinearLayers {
    /// This party's share of `step(x)` from its share `x` (`n` samples,
    /// batch-major).
    fn linear(&mut self, call: LinearCall, x: Vec<u64>) -> ProtocolFuture<'_, Vec<u64>>;
}

/// Interactive non-linear steps ([`NonLinearOp`]).
pub trait NonLinearLayers {
    /// This party's share of `op(x)` from its share `x` (`n` samples).
    fn nonlinear<'a>(
        &'a mut self,
        op: &'a NonLinearOp,
        x: Vec<u64>,
        n: usize,
    ) -> ProtocolFuture<'a, Vec<u64>>;
}

/// What one pass over a chunk will run (public): for [`Preprocessing`].
#[derive(Debug, Clone, Copy)]
pub struct PassPlan<'a> {
    /// The public program.
    pub program: &'a PublicProgram,
    /// The schedule both parties walk.
    pub schedule: &'a Schedule,
    /// Samples in the chunk.
    pub n: usize,
    /// A deviating client's hook and the chunk's first batch position
    /// (`None` for honest parties and for the output stages; see
    /// [`crate::behaviour::ClientDeviation`]). A backend that fixes the
    /// client's input to a non-linear step in preprocessing (the client's
    /// offline share of a linear layer's output, in `delphi` and `aby`)
    /// passes that share through [`PassPlan::as_fed_online`], so that a
    /// deviating client picks its garbled-circuit inputs offline as MUSE's
    /// attack on DELPHI does.
    pub deviation: Option<(&'a dyn crate::behaviour::ClientDeviation, usize)>,
}

impl PassPlan<'_> {
    /// The client's share `share` of the input of step `step`, known in
    /// preprocessing, as the client will feed it to that step online: the
    /// share itself for an honest client, the share after its hook for a
    /// deviating one (the same call the pass makes online).
    pub fn as_fed_online(&self, step: usize, mut share: Vec<u64>, domain: &Domain) -> Vec<u64> {
        if let Some((d, start)) = self.deviation {
            d.before_step(step, &mut share, start, self.n, domain);
        }
        share
    }
}

/// Input-independent work before a pass.
pub trait Preprocessing {
    /// Prepares everything the pass `plan` will consume that does not depend
    /// on inputs (correlated randomness, garbled circuits, OT pools). Both
    /// parties call it before every pass. Default: nothing.
    fn preprocess<'a>(&'a mut self, plan: PassPlan<'a>) -> ProtocolFuture<'a, ()> {
        let _ = plan;
        Box::pin(async { Ok(()) })
    }
}

/// The output of a chunk.
pub trait OutputStage {
    /// Reveals the program output of a chunk of `n` samples (`n x classes`
    /// shares `y`) to the client. The server gets `None`; the client gets the
    /// output as program values (ring elements of the program's ring).
    fn reveal(&mut self, y: Vec<u64>, n: usize) -> ProtocolFuture<'_, Option<Vec<u64>>>;
}

/// Checks an announcement's size before parsing it.
pub fn check_announcement(text: &str) -> SecureResult<()> {
    if text.len() > MAX_ANNOUNCEMENT {
        return Err(SecureError::Malformed(format!(
            "backend announcement of {} bytes (at most {MAX_ANNOUNCEMENT})",
            text.len()
        )));
    }
    Ok(())
}
