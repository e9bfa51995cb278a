//! # fusion-he: homomorphic linear layers for Fusion's semi-honest engine
//!
//! RLWE (BFV-style) encryption over `Z_q[X]/(X^N + 1)` in RNS form, plaintext
//! modulus `t = 2^l` (`1 <= l <= 64`, the ring of [`fusion_core::ring`]), and
//! Cheetah's polynomial-coefficient encoding (Huang, Lu, Hong, Ding, USENIX
//! Security 2022, ePrint 2022/207) to evaluate the linear layers of a network on
//! additively shared inputs, producing additively shared outputs, exactly, with
//! no rotations:
//!
//! * [`fc`]: fully connected (HomFC, batched into matrix products);
//! * [`conv2d`]: 2-D convolution with strides, padding and tiling (HomConv);
//! * [`batchnorm`]: per-channel scaling / batch norm (HomBN);
//! * [`avgpool`]: average pooling's window sums, a local operation (no HE).
//!
//! The pieces, by role:
//!
//! * **Parameters**: [`params`] (presets with their security source, the
//!   validating builder, the key-switching gadget), [`noise`] (the noise bound,
//!   flooding and the server-privacy argument).
//! * **Keys**: [`keys`] (ternary secret key, zeroized; public key; Galois keys).
//! * **Encoding and plans** (public, both parties): [`encoding`] (Cheetah's
//!   coefficient encoding of the canonical convolution), the layer shapes
//!   [`fc`], [`conv2d`], [`batchnorm`], [`avgpool`], and [`plan`] (the planner).
//! * **The protocol**, I/O-free: [`linear`] (what it computes and who learns
//!   what), [`client`] (keys, queries, replies: [`HeClient::encrypt`] →
//!   [`ServerLinear::respond`] → [`HeClient::decrypt`]), [`server`] (session keys,
//!   encoded weights, answers; products and finalisation in private modules),
//!   [`galois`] and [`pack`] (key switching and response packing).
//! * **Messages**: [`wire`] (formats, bounded decoding). The crate does no
//!   I/O: a driver moves the messages of the byte-level halves
//!   [`HeClient::setup_messages`], [`HeClient::query_bytes`],
//!   [`HeClient::decrypt_bytes`], [`HeServer::from_setup_messages`],
//!   [`ServerLinear::respond_bytes`] (fusion-engine's `cheetah` backend drives
//!   them over its protocol channel).
//! * [`reference`](mod@reference): the plaintext oracle.
//! * [`simd`]: the other encoding, for shares modulo a prime `p`: BFV with
//!   batch (SIMD) encoding, rotations and Gazelle's layer algorithms, as
//!   CrypTFlow2's SCI_HE uses them ([`SimdClient`],
//!   [`SimdServer`], [`SimdLinear`],
//!   [`SimdPlan`]); the coefficient path above is unchanged.

//! # Protocol shape
//!
//! For every layer call the client sends one [`Query`] (its input share, encrypted,
//! the `a` polynomials given by one 32-byte seed) and the server answers with one
//! [`Reply`]; the client's output share is `W x - r`, the server's `r + bias`, exact
//! in `Z_{2^l}`. As in Cheetah, the server adds its own input share into the
//! ciphertexts (`Enc(x_c) + x_s`) instead of computing `W x_s` in the clear: this
//! costs one transform per input ciphertext instead of a plaintext convolution.
//! Server privacy comes from re-randomisation with the client's public key plus
//! noise flooding (statistical parameter 40 bits per sent coefficient by default),
//! then modulus switching, which also compresses the reply ([`noise`] has the
//! argument, the bounds and the margins). Both parties derive the same
//! [`LinearPlan`] from public data.
//!
//! # Response packing (opt-in)
//!
//! A reply ciphertext costs a whole `a` polynomial but often carries few results
//! (batched fully connected layers: `N / stride` per ciphertext). With
//! [`ParamsBuilder::reply_packing`] the server merges up to `2^levels` reply
//! ciphertexts into one with Galois automorphisms and key switching
//! (BumbleBee-style interleaving of PackLWEs; [`pack`], [`galois`]) before flooding,
//! modulus switching and sending; the client sends [`GaloisKeyMsg`] once at setup
//! ([`HeParams::galois_key_bytes`]: 1.17 MB at `N = 4096` with
//! [`DEFAULT_PACKING_LEVELS`]). [`PlanOptions::minimise_bytes`] then plans for the
//! fewest bytes: fewer upload ciphertexts, many cheap reply ciphertexts. The
//! default ([`Preset::params`], [`PlanOptions::default`]) is unchanged.
//!
//! ```no_run
//! # use fusion_core::ring::Ring;
//! # use fusion_he::*;
//! # use rand::{SeedableRng, rngs::ChaCha20Rng};
//! # fn main() -> Result<(), HeError> {
//! let params = Preset::N4096
//!     .builder(Ring::new(37).expect("l"))
//!     .reply_packing(DEFAULT_PACKING_LEVELS)
//!     .build()?;
//! let plan = LinearPlan::fc(&params, FcShape::new(128, 784, 128), &PlanOptions::minimise_bytes())?;
//! assert!(plan.packing().is_some());
//! let mut rng = ChaCha20Rng::seed_from_u64(1);
//! let client = HeClient::new(&params, &mut rng);
//! let keys = GaloisKeyMsg::decode(&params, client.galois_key_msg(&mut rng)?.as_bytes())?;
//! let server = HeServer::with_galois_keys(client.public_key(), &keys)?; // setup
//! # let _ = server; Ok(()) }
//! ```
//!
//! [`HeClient::setup_messages`] returns the Galois keys along with the public key
//! exactly when the parameters enable packing.
//!
//! ```no_run
//! use fusion_core::ring::Ring;
//! use fusion_he::{FcShape, HeClient, HeServer, LinearPlan, PlanOptions, Preset, Query, Reply, ServerLinear};
//! use rand::{SeedableRng, rngs::ChaCha20Rng};
//! # fn main() -> Result<(), fusion_he::HeError> {
//! let params = Preset::N4096.params(Ring::new(37).expect("l"))?;
//! let plan = LinearPlan::fc(&params, FcShape::new(128, 784, 128), &PlanOptions::default())?;
//! let (mut crng, mut srng) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
//! let client = HeClient::new(&params, &mut crng);                    // setup: keys
//! let server = HeServer::new(client.public_key());                   // setup: pk to the server
//! let (weights, x_c, x_s) = (vec![1u64; 784 * 128], vec![0u64; 128 * 784], vec![0u64; 128 * 784]);
//! let layer = ServerLinear::fc(plan.clone(), &weights, None)?;        // once per model
//! let query = client.encrypt(&plan, &x_c, &mut crng)?;               // client -> server
//! let query = Query::from_bytes(&plan, &query.to_bytes(&plan))?;
//! let (reply, y_s) = layer.respond(&server, &query, Some(&x_s), &mut srng)?; // server -> client
//! let reply = Reply::from_bytes(&plan, reply.as_bytes().to_vec())?;
//! let y_c = client.decrypt(&plan, &reply)?;                          // y_c + y_s = W x
//! # let _ = (y_c, y_s); Ok(()) }
//! ```

mod accumulate;
mod arith;
mod automorphism;
pub mod avgpool;
pub mod batchnorm;
pub mod client;
pub mod conv2d;
pub mod encoding;
mod error;
pub mod fc;
mod finalize;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod galois;
pub mod keys;
pub mod linear;
pub mod noise;
pub mod pack;
pub mod params;
pub mod plan;
mod poly;
pub mod query_rounding;
pub mod reference;
pub mod server;
pub mod simd;
#[doc(hidden)]
pub mod timing;
pub mod wire;

pub use avgpool::{PoolShape, avg_pool_window_sum};
pub use batchnorm::BatchNormShape;
pub use client::HeClient;
pub use conv2d::{Conv2dShape, Padding};
pub use encoding::{Blocking, Geometry};
pub use error::HeError;
pub use fc::FcShape;
pub use keys::{GaloisKeys, PublicKey, SecretKey};
pub use noise::{MAX_REVEALED_COEFFICIENTS, NoiseAnalysis, SessionFlooding};
pub use pack::ReplyPacking;
pub use params::{CBD_ETA, DEFAULT_PACKING_LEVELS, HeParams, ParamsBuilder, Preset, SecurityLevel};
pub use plan::{
    BYTES_FIRST_BANDWIDTH, FRAME_HEADER_BYTES, LayerKind, LinearPlan, PlanOptions, PlanStats,
};
pub use query_rounding::MAX_QUERY_ROUNDING_BITS;
pub use server::{HeServer, ServerLinear};
pub use simd::{
    GaloisSet, SimdClient, SimdCounts, SimdLayer, SimdLinear, SimdParams, SimdPlan, SimdPreset,
    SimdServer,
};
pub use wire::{GaloisKeyMsg, PublicKeyMsg, Query, Reply};
