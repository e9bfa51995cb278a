//! # SIMD (batch-encoded) BFV linear layers, as CrypTFlow2's SCI_HE does them
//!
//! **What it computes.** The linear layers of a network on additive shares
//! modulo a prime `p`: the client holds `x_c`, the server `x_s` and the
//! weights `W` (and a bias `beta`), with `x = x_c + x_s mod p`; at the end the
//! client holds `y_c = W x - r` and the server `y_s = r + beta`, so
//! `y_c + y_s = W x + beta mod p`, exactly, with `r` fresh and uniform in
//! every slot. Layers: fully connected ([`fc`]: Halevi-Shoup diagonals in
//! Gazelle's hybrid form, batches packed several vectors per ciphertext when
//! they fit, inputs longer than half a ciphertext in chunks), 2-D convolution
//! ([`conv`]: Gazelle's packed convolution with channel replication, strides,
//! zero padding, any channel counts), per-channel affine ([`affine`]). The
//! scheme is BFV (Brakerski, ePrint 2012/078; Fan and Vercauteren, ePrint
//! 2012/144) over `Z_q[X]/(X^N + 1)` with plaintext modulus `p = 1 mod 2N`
//! and batch encoding ([`encoder`]; Gentry, Halevi, Smart, EUROCRYPT 2012),
//! rotations by Galois automorphisms and key switching ([`rotation`]), the
//! layer algorithms of Gazelle (Juvekar, Vaikuntanathan, Chandrakasan,
//! USENIX Security 2018) and Halevi and Shoup (CRYPTO 2014) as used by
//! CrypTFlow2's SCI_HE (Rathee et al., CCS 2020; EzPC `SCI/src/LinearHE`).
//!
//! **Protocol** (I/O-free, byte-level halves for a driver):
//!
//! 1. Setup: the client sends its public key and the Galois keys of the
//!    rotations the session's layers use ([`SimdClient::setup_messages`],
//!    [`SimdServer::from_setup_messages`]; [`SimdPlan::galois_elements`]
//!    lists a layer's elements, [`GaloisSet::union`] merges them).
//! 2. The client encrypts its share, placed in the plan's slots, under its
//!    secret key; the `a` polynomials come from one 32-byte seed
//!    ([`SimdClient::query_bytes`]).
//! 3. The server adds its own share into the ciphertexts, evaluates the layer
//!    homomorphically, subtracts a fresh uniform mask `r` in every slot,
//!    re-randomises with a public-key encryption of zero, floods every `b`
//!    coefficient, switches modulus and replies
//!    ([`SimdLinear::respond_bytes`]); its share is `r + beta`.
//! 4. The client decrypts its share `W x - r` ([`SimdClient::decrypt_bytes`]).
//!
//! **What each party learns.** The server sees the client's public key, its
//! Galois keys (RLWE samples under `s`; circular security, as every rotating
//! library assumes) and IND-CPA (decision-RLWE) ciphertexts under the
//! client's key: nothing about `x_c`. The client sees only replies that are
//! re-randomised (the `a` part is `a + u pk1 + e1`, pseudorandom under RLWE
//! with secret `u`) and flooded, and that decrypt to its masked share
//! `W x - r`, uniform in every slot (also in the slots that carry no output:
//! their partial sums are masked too).
//!
//! **Noise and flooding.** All bounds are worst cases over all randomness
//! ([`params`] has them): fresh input noise `eta + 1`, `B_ks` per key switch,
//! a factor `N (p - 1)/2` per plaintext product, `1/2` for the mask and
//! `(2N + 1) eta` for the re-randomisation; each plan sums them along its
//! circuit into `E_det` ([`SimdPlan::noise`]). The flooding is uniform in
//! `[-2^beta, 2^beta)` with `beta = ceil(log2 E_det) + lambda` (`lambda` =
//! [`SimdParams::stat_sec_bits`], default 40, as [`crate::noise`]), so each
//! revealed coefficient's distribution is within `2^-(lambda+1)` of one
//! independent of the server's data; a reply reveals `N` coefficients per
//! ciphertext ([`SimdPlan::revealed_coefficients`]; per-session accounting as
//! in [`crate::noise::SessionFlooding`]). A plan is refused unless
//! `E_det + 2^beta` stays below the decryption threshold after the reply's
//! modulus switch, so decryption cannot fail.
//!
//! Measured at the default `N = 8192`, `p = 2^37 + 34 * 2^14 + 1` (noise of
//! the result ciphertexts before masking and flooding, by exact decryption;
//! units of `q`; `cargo test -p fusion-he --lib measured_noise -- --nocapture`):
//!
//! | layer | measured max | worst case `E_det` | flooding `2^beta` | threshold | margin (bits) |
//! |---|---|---|---|---|---|
//! | FC 784 -> 128 | 2^95.9 | 2^116.4 | 2^157 | 2^180.0 | 23.0 |
//! | FC 6000 -> 100 (chunked) | 2^97.1 | 2^120.2 | 2^161 | 2^180.0 | 19.0 |
//! | FC 784 -> 128, batch 16 | 2^94.9 | 2^118.4 | 2^159 | 2^180.0 | 21.0 |
//! | conv 5x5, 64 -> 64 on 12x12 | 2^94.3 | 2^118.0 | 2^159 | 2^180.0 | 21.0 |
//!
//! The margin is what is left between `E_det + 2^beta` and the threshold;
//! the worst case is 20-25 bits above the measured noise (it assumes every
//! digit, error and weight coefficient at its extreme), which only widens the
//! flooding. `N = 4096` cannot hold `p > 2^37` at all (see
//! [`SimdPreset::N4096`]).
//!
//! **Cost** (`cargo bench -p fusion-he --bench simd`, 2 shared cores, medians
//! of end-to-end calls in one process; the coefficient path at `N = 4096`,
//! `l = 37` for comparison):
//!
//! | layer | SIMD bytes up / down | SIMD time | coefficient bytes up / down | coefficient time |
//! |---|---|---|---|---|
//! | FC 784 -> 128, batch 1 | 223 269 / 101 381 | 93 ms | 279 077 / 133 784 | 9.8 ms |
//! | FC 784 -> 128, batch 128 | 3 571 749 / 1 622 021 | 16.8 s | 2 790 437 / 3 491 845 | 0.36 s |
//! | MNIST conv1 (28x28x1, 5x5, 16) | 223 269 / 202 757 | 167 ms | 55 845 / 153 733 | 4.2 ms |
//!
//! plus the one-off setup: public key 223 333 B and 1.34 MB per Galois
//! element (6 digits of `L N` residues): 13.4 MB for the 10 elements of
//! FC 784 -> 128 at batch 1, 16.1 MB for the 12 at batch 128, 5.4 MB for
//! the 4 of conv1. Key switching (36 NTTs per switch without a special
//! modulus) dominates the time: FC at batch 128 does 4144 switches.
//!
//! **Deviations from SCI_HE.** (1) Server privacy: SCI_HE adds
//! `SMUDGING_BITLEN = 108 - bitlength` bits of flooding without a stated
//! bound; here the width is derived from the worst-case noise and `lambda`,
//! and the ciphertext is re-randomised with the client's public key (SCI_HE
//! adds an encryption of the mask made from a client-sent zero ciphertext).
//! (2) Key switching uses one digit per RNS prime of `q` and no special
//! modulus (SEAL's hybrid key switching); Galois keys cover the left rotations
//! by powers of two and the row swap, and a rotation by `k` costs
//! `popcount(k)` switches. (3) Replies are switched to powers of two
//! (`2^k_a`, `2^k_b`) instead of SEAL's last prime. (4) FC input rotations
//! are made as a binary tree (one switch each) and batches share
//! ciphertexts; convolutions replicate the input channels in both rows and
//! refuse images larger than half a ciphertext (SCI_HE tiles them).
//! (5) No hoisting.

pub mod affine;
mod cipher;
pub mod client;
pub mod conv;
pub mod encoder;
mod eval;
pub mod fc;
pub mod params;
pub mod plan;
pub mod rotation;
pub mod server;
pub mod wire;

pub use client::SimdClient;
pub use encoder::BatchEncoder;
pub use fc::FcObjective;
pub use params::{SimdNoise, SimdParams, SimdParamsBuilder, SimdPreset};
pub use plan::{SimdCounts, SimdLayer, SimdPlan};
pub use rotation::{GaloisSet, SimdGaloisKeys, rotation_element, swap_element};
pub use server::{SimdLinear, SimdResponse, SimdServer};
pub use wire::{SimdQuery, SimdReply};

#[cfg(test)]
mod tests;
