//! # fusion-engine: the secure two-party inference engine (Cheetah-style, semi-honest)
//!
//! The server holds a model; the client holds samples. Together they run the
//! model's lowered fixed-point program ([`fusion_nn::fixed::FixedProgram`],
//! [`fusion_nn::fixed::lower`]) on additive shares in `Z_{2^l}`, **exactly the
//! program the plaintext fixed-point interpreter runs**: linear steps through
//! RLWE with coefficient encoding (fusion-he), local steps on each share, and
//! non-linear steps through OT (fusion-ot). Only the client learns the
//! outputs. The outputs equal the plaintext interpreter's up to the
//! documented one-bit truncation errors (see [`fusion_nn::fixed`] for the error
//! table; secure truncations return the floor or one less), so argmax and
//! logits agree with the fixed-point engine up to those errors.
//!
//! The engine runs any **backend** (a semi-honest two-party protocol suite
//! behind the per-layer seam of [`backend`]) with one session driver
//! ([`driver`]) that both parties share. Today's backend is [`backends::cheetah`].
//!
//! | module | what |
//! |---|---|
//! | [`backend`] | the seam: [`backend::Backend`] and the per-layer protocol traits; how to add a backend |
//! | [`backends`] | the backends and their registry ([`backends::cheetah`]) |
//! | [`domain`] | the share domain ([`Domain`]: `Z_2^l` or `Z_p`) and local steps on shares |
//! | [`schedule`] | how the program's steps run; ReLU-truncation fusion and non-negative truncations |
//! | [`driver`] | one pass of the schedule over a chunk, for either party; phases and timeouts |
//! | [`server`] | [`SecureServer`]: offers backends, serves sessions |
//! | [`client`] | [`SecureClient`]: names a backend, validates the server, runs batches; implements [`fusion_core::engine::Engine`] |
//! | [`behaviour`] | the server's behaviour hook (default honest) |
//! | [`cheats`] | cheating servers built on the hook, for tests, demos and experiments |
//! | [`output_mode`] | what the client learns: logits, only the label (secure argmax on the shares) or perturbed probabilities |
//! | [`reverse_sigmoid`] | the reverse-sigmoid output stage: softmax and Lee et al.'s perturbation on the shares |
//! | [`wire`] | the session's control messages (versioned, bounded, validated) |
//! | [`config`] | session parameters, server and client settings, client policy |
//! | [`stats`] | per-phase and per-batch figures; the cost rule |
//! | [`statsec`] | statistical security of the HE flooding per session; the cap on revealed coefficients |
//! | [`bound`] | worst-case deviation of the secure engine from the plaintext interpreter |
//! | [`error`] | [`SecureError`] |
//!
//! # A session
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use fusion_engine::{backends::cheetah::Cheetah, behaviour::Honest};
//! use fusion_engine::{ClientConfig, SecureClient, SecureServer, ServedModel, ServerConfig};
//! let model = ServedModel::load("data/models/bc-mlp".as_ref(), fusion_nn::eval::default_fixed_point())?;
//! let server = SecureServer::new(model, ServerConfig::default(), vec![Box::new(Cheetah::default())], Arc::new(Honest))?;
//! let (s, c) = fusion_net::local_pair(&fusion_net::NetConfig::default()).await?;
//! let mut srng = fusion_core::mix::os_rng()?; // ChaCha20, seeded by the OS
//! let mut crng = fusion_core::mix::os_rng()?;
//! let (served, logits) = tokio::join!(server.serve(s, &mut srng), async {
//!     let mut client = SecureClient::connect(c, ClientConfig::default(), &Cheetah::default(), &mut crng).await?;
//!     let logits = client.infer_raw(&[vec![0.0; 30]]).await?;   // raw features
//!     client.finish().await?;
//!     Ok::<_, fusion_engine::SecureError>(logits)
//! });
//! # let _ = (served?, logits?); Ok(()) }
//! ```
//!
//! # What each party learns
//!
//! * **Server**: the batch sizes, timing, and RLWE ciphertexts under the
//!   client's key (IND-CPA under decision-RLWE) and uniformly random shares,
//!   so nothing about the client's samples or outputs. It learns whether the
//!   client used its outputs only if the client tells it (e.g. by aborting in
//!   Fusion, a one-bit selective-failure channel per session).
//! * **Client**: the public view of the program (architecture, shapes, ring and
//!   scale, preprocessing, class count; no coefficients), the outputs of its
//!   samples (the logits, or in label mode only the class, as the server
//!   chooses: [`output_mode`]), and sizes and timing. HE replies are re-randomised and
//!   noise-flooded (fusion-he), so they reveal only the client's output share.
//!
//! # Threat model
//!
//! The two-party protocols are **semi-honest**. Against a **malicious server**
//! the engine gives the client's input privacy (everything the server sees is
//! encrypted or secret-shared), but not correctness: a server can return wrong
//! outputs (the cheat modes do exactly that). Fusion's mix-and-check
//! ([`fusion_core::engine::run_fusion`] with this engine) is what detects a
//! server that cheats on the outputs. The server's privacy holds against a
//! **semi-honest client** only: a client that shifts its shares can extract
//! weights from semi-honest protocols (MUSE, Lehmkuhl et al., USENIX Security
//! 2021). In logits mode any client learns full logits, which help model
//! extraction; the server can reveal only labels instead ([`output_mode`]),
//! or the paper's reverse-sigmoid perturbation of the probabilities, computed
//! on the shares ([`reverse_sigmoid`]). The public view, the preprocessing and the class count are
//! public by design.

pub mod backend;
pub mod backends;
pub mod behaviour;
pub mod bound;
pub mod cheats;
pub mod client;
pub mod config;
pub mod domain;
pub mod driver;
pub mod error;
pub mod estimate;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod output_mode;
pub mod reverse_sigmoid;
pub mod schedule;
pub mod server;
pub mod stats;
pub mod statsec;
pub mod wire;

pub use backend::Backend;
pub use client::SecureClient;
pub use config::{ClientConfig, ClientPolicy, Progress, ProgressFn, ServerConfig, SessionParams};
pub use domain::Domain;
pub use error::{SecureError, SecureResult};
pub use output_mode::OutputMode;
pub use schedule::Schedule;
pub use server::{BatchGate, SecureServer, ServedModel, SessionSummary};
pub use stats::{BatchStats, PhaseFigures, StepFigures};
pub use wire::{ModelInfo, ServerHello, SessionEnd};
