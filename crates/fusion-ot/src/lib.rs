//! # fusion-ot: OT-based non-linear layers for Fusion's semi-honest engine
//!
//! Millionaires' comparison, DReLU, ReLU, truncation, max and average pooling,
//! products and squares on additive shares in `Z_{2^l}`
//! ([`fusion_core::ring::Ring`], `1 < l <= 64`), after CrypTFlow2 (Rathee et
//! al., CCS 2020, ePrint 2020/1002) and Cheetah (Huang et al., USENIX
//! Security 2022, ePrint 2022/207), on CryProt's random OT.
//!
//! ## Use
//!
//! Each party creates one [`OtEngine`] per session over a dedicated
//! connection and then calls the same methods in the same order with its own
//! shares:
//!
//! ```no_run
//! # async fn demo(conn: cryprot_net::Connection) -> fusion_ot::Result<()> {
//! use fusion_core::ring::Ring;
//! use fusion_ot::{OtEngine, Role, Silent};
//! use rand::{SeedableRng, rngs::ChaCha20Rng};
//!
//! let ring = Ring::new(37).expect("37 bits");
//! let mut rng = ChaCha20Rng::seed_from_u64(1); // use SysRng-seeded RNGs in production
//! let mut ot = OtEngine::<Silent>::setup(conn, Role::Server, ring, &mut rng).await?;
//! let x_share: Vec<u64> = vec![0; 1024];
//! let y = ot.relu_truncate(&x_share, 12).await?; // shares of ReLU(x) >> 12
//! # let _ = y; Ok(()) }
//! ```
//!
//! ## Building blocks
//!
//! Everything consumes one resource, random OT with random choice bits
//! (ROT), generated in bulk in both directions ([`flavour`]): each party is
//! sender of one OT instance and receiver of another, on separate
//! sub-connections, set up once per session.
//!
//! | block | file | flights | ROTs | bits on the wire |
//! |---|---|---|---|---|
//! | chosen-message 1-of-2 OT | [`one_of_n`] (`m = 1`) | 2 | 1 | `1 + 2t` |
//! | chosen-message 1-of-2 OT of 128-bit blocks | [`block_ot`] | 2 | 1 | `1 + 256` |
//! | 1-of-`2^m` OT of `t`-bit messages | [`one_of_n`] | 2 | `m` | `m + 2^m·t` |
//! | arithmetic COT over `Z_{2^k}` | [`acot`] | 1 (random choice) or 2 | 1 | `k` (`+1`) |
//! | AND of shared bits | [`and`], [`triples`] | 1 | 2 | 4 |
//! | multiplexer `b·x` | [`mux`] | 1 | 2 | `2l + 2` |
//! | B2A | [`b2a`] | 1 | 1 | `l + 2` |
//! | product `a·b`, `a` sender's, `b` receiver's (Gilboa, ABY's triples) | [`gilboa`] | 2 | `l` | `l + l(l+1)/2` |
//!
//! ## Protocols
//!
//! [`millionaires`], [`drelu`], [`relu`], [`truncate`] (one-bit error, one
//! flight), [`truncate_exact`] (exact), [`relu_truncate`] (fused; its comparison
//! skips the truncated bits), [`maxpool`] (optionally on inputs of known
//! width, comparing fewer bits), [`avgpool`], [`mul`], [`square`]. Each module
//! states what it computes, its source, its error and range assumptions, what
//! each party learns and its cost. Batches are processed in the same flights
//! (up to [`OtConfig::chunk`] elements per run), and message computation runs
//! on the rayon pool (`cryprot_core::tokio_rayon::spawn_compute`), off the
//! async runtime.
//!
//! ### Truncation error statement
//!
//! - [`OtEngine::truncate`]: for `-2^{l-2} <= x < 2^{l-2}`, the output is
//!   `⌊x/2^f⌋` or `⌊x/2^f⌋ - 1` (floor = arithmetic shift right).
//! - [`OtEngine::truncate_nonneg`]: same for `0 <= x < 2^{l-1}`.
//! - [`OtEngine::relu_truncate`]: for every `x >= -2^{l-1} + 2^{min(f+1, l-2)}`
//!   (so every `|x| < 2^{l-2}`), `0` if `x < 0`, else `⌊x/2^f⌋` or
//!   `⌊x/2^f⌋ - 1`.
//! - [`OtEngine::truncate_exact`]: exactly `⌊x/2^f⌋` for every `x`.
//!
//! ## Prime-field path (CrypTFlow2's SCI_HE)
//!
//! [`FieldOtEngine`] runs the non-linear layers on additive shares in a
//! prime field `Z_p` ([`fusion_core::field::PrimeField`], odd `p < 2^62`),
//! as CrypTFlow2's SCI_HE does, on **IKNP** random OT ([`Iknp`]) and
//! **KK13** 1-out-of-`N` OT extension ([`kk13`], 256-bit Walsh–Hadamard
//! code; its 256 base OTs per direction are IKNP ROTs). No silent OT is
//! used anywhere on this path, and it shares no state with [`OtEngine`]
//! (own channel, OT instances and pools), so the ring path's bytes and time
//! are unchanged.
//!
//! | method | file | result | error / range |
//! |---|---|---|---|
//! | `kkot_send`/`kkot_receive`, `kkot_*_random` | [`kk13`] | 1-of-`2^m` OT | exact |
//! | `millionaires` | [`field_millionaires`] | XOR shares of `1{a > b}` | exact |
//! | `drelu` | [`field_drelu`] | XOR shares of `1{x >= 0}` (centred `x`) | exact, every `x ∈ Z_p` |
//! | `relu` | [`field_relu`] (+ [`field_mux`]) | `max(x, 0)` | exact, every `x ∈ Z_p` |
//! | `relu_truncate` | [`field_relu_truncate`] | `⌊max(x, 0) / 2^f⌋` | exact, every `x ∈ Z_p` |
//! | `truncate` | [`field_truncate`] | `⌊x / 2^f⌋` | exact for `x >= -K`, `K = 2^f⌊(p-1)/2^{f+1}⌋` |
//! | `max`, `maxpool` | [`maxpool`] helpers | window maxima | exact for inputs in `(-p/4, p/4)` |
//!
//! Each party calls the same methods in the same order with its own shares,
//! as with [`OtEngine`]; batches of up to [`FieldOtConfig::chunk`] elements
//! run in the same flights.
//!
//! ## Deployment notes
//!
//! - **Threads.** CryProt's OT receivers (and IKNP senders) block a rayon
//!   worker while waiting for the network. [`OtEngine`] generates its ROTs in a
//!   background task (`supply` module, [`OtEngine::schedule_rots`]) that runs
//!   one OT instance at a time, so each party needs one rayon thread for
//!   generation (two when both parties run in one process, as in the tests;
//!   [`OtConfig::parallel_ot`] needs twice that) and one more for protocol
//!   computation to overlap with it. Generation never waits for protocol
//!   computation, so with fewer threads the two take turns instead.
//! - **QUIC flow control.** With s2n-quic's defaults a single stream may hold
//!   the whole connection-level window, so two protocols on different streams
//!   whose phases overlap could deadlock. fusion-net sizes the connection
//!   window to at least [`fusion_net::MAX_ACTIVE_STREAMS`] stream windows
//!   (checked), so no stream that is not being read can starve the one that
//!   is: the engine's flights, CryProt's generation streams (read by the
//!   generator task while the engine goes on) and other protocols (HE) on the
//!   same connection need no barriers between them. ([`FieldOtEngine`] still
//!   generates in the foreground, bracketed by one-byte barrier flights.)
//! - **Speed.** CryProt's silent-OT encoder has an SSE4.1 fast path that is
//!   only compiled in with `-C target-feature=+sse4.1` (or
//!   `-C target-cpu=native`).
//!
//! ## Security notes
//!
//! - **Semi-honest** security only, for both flavours. A malicious peer can
//!   make outputs wrong (Fusion's mix-and-check catches a malicious server's
//!   wrong outputs at the application level) and may learn more than its
//!   output share.
//! - **What leaks:** nothing beyond each party's output share, in the
//!   semi-honest model; the sizes, public parameters (ring, shift, window
//!   shapes, block size) and the sequence of operations are public. Every
//!   opened value is one-time padded by OT-derived randomness.
//! - **No secret-dependent branching or indexing** in OT selections: choice
//!   bits select via `subtle` (`ConditionallySelectable`) or masks; the
//!   millionaires' sender builds its tables from shifts of its secret block and
//!   the receiver extracts its slot with a shift (constant-time on x86-64 and
//!   AArch64). Branches in the code depend on public data only (opened values,
//!   roles, sizes).
//! - **Randomness is explicit:** all protocol randomness comes from a
//!   ChaCha20 stream seeded from the RNG passed to [`OtEngine::setup`]; IKNP
//!   is seeded from it too. CryProt's silent OT draws its internal randomness
//!   from the operating system (`rand::make_rng`) and cannot be seeded.
//! - **Peer data** is read with lengths computed from public parameters only
//!   and checked; every call starts with a header exchange that detects a peer
//!   running a different operation ([`Error::PeerMismatch`]).
//! - ROT keys are wiped from memory when dropped (`zeroize`).

// Protocol code walks several parallel arrays (shares, keys, choices) by index.
#![allow(clippy::needless_range_loop)]

pub mod acot;
pub mod and;
pub mod avgpool;
pub mod b2a;
mod bits;
pub mod block_ot;
mod channel;
mod ctx;
pub mod drelu;
mod engine;
mod error;
pub mod extend;
mod field_costs;
pub mod field_drelu;
mod field_engine;
pub mod field_millionaires;
pub mod field_mux;
pub mod field_relu;
pub mod field_relu_truncate;
pub mod field_truncate;
pub mod flavour;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod gilboa;
pub mod kk13;
pub mod maxpool;
pub mod millionaires;
pub mod mul;
pub mod mux;
pub mod one_of_n;
mod pool;
pub mod relu;
pub mod relu_truncate;
pub mod square;
mod supply;
#[cfg(test)]
mod testutil;
pub mod triples;
pub mod truncate;
pub mod truncate_exact;
pub mod wrap;

pub use bits::Bits;
pub use ctx::Role;
pub use engine::{MAX_CONFIG_SIZE, OtConfig, OtEngine, Stats};
pub use error::{Error, Result};
pub use field_costs::{FieldCost, FieldCosts};
pub use field_engine::{FieldOtConfig, FieldOtEngine, FieldStats};
pub use flavour::{Iknp, OtFlavour, Silent, SilentReceiver, SilentSender};
