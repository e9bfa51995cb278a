//! The `delphi` backend's linear layers, DELPHI-style (Mishra et al., USENIX
//! Security 2020, §4 "Linear layers"): the server's weights touch a client
//! secret only offline, under HE; online a linear layer is one message from
//! the client and a plaintext product on the server.
//!
//! * **Offline** ([`client_offline`], [`server_offline`], in the
//!   `Preprocessing` phase): for linear step `i` of the chunk the client
//!   draws a uniform mask `r_i` (the size of the step's input) and encrypts
//!   it under its own RLWE key; the server computes `W_i·r_i + b_i − s_i`
//!   homomorphically (fusion-he's coefficient-encoded layer, with its
//!   re-randomisation and noise flooding) for a fresh uniform share `s_i`
//!   and replies; the client decrypts its share `c_i`, so that
//!   `c_i + s_i = W_i·r_i + b_i`. This is exactly the HE protocol of the
//!   `cheetah` backend run on the input `r_i` with a zero server share
//!   (reused: [`crate::backends::cheetah::he_driver`]).
//! * **Online** ([`client_online`], [`server_online`]): the client sends
//!   `m = x_C − r_i` (packed, `⌈len·l/8⌉` bytes); the server computes
//!   `W_i·(x_S + m) + s_i` in the clear (the step without its bias) and the
//!   client keeps `c_i`. The shares sum to `W_i·(x − r_i) + W_i·r_i + b_i =
//!   W_i·x + b_i`.
//!
//! **Deviation from the paper.** DELPHI works in a prime field `Z_p` and uses
//! SEAL's SIMD (batching) encoding with rotations for `W·r`; here shares live
//! in `Z_{2^l}` (the engine's `Domain::Ring`) and `W·r` uses fusion-he's
//! coefficient encoding (Cheetah-style, no rotations). What each party learns
//! is the same; costs differ (ciphertext sizes, the server's HE work).
//!
//! **What each party learns.** The server sees RLWE ciphertexts under the
//! client's key (IND-CPA) and `m = x_C − r_i` with `r_i` uniform and used
//! once, i.e. uniformly random values. The client sees a flooded,
//! re-randomised reply that decrypts to `W_i·r_i + b_i − s_i` with `s_i`
//! uniform: its share, nothing about `W_i` beyond it.

use std::sync::Arc;

use fusion_core::ring::Ring;
use fusion_he::{HeClient, HeServer};
use fusion_net::Channel;
use fusion_nn::fixed::Step;
use fusion_nn::tensor::Tensor;
use rand::rngs::ChaCha20Rng;

use super::pack::{pack, recv_values};
use crate::backends::cheetah::he::{ServerStep, StepPlan, blocking};
use crate::backends::cheetah::he_driver;
use crate::error::{SecureError, SecureResult};

/// The client's offline state of one linear step of a chunk.
#[derive(Debug)]
pub struct ClientMask {
    /// The step.
    pub step: usize,
    /// The mask `r` of its input.
    pub r: Vec<u64>,
    /// The client's share of `W·r + b`.
    pub share: Vec<u64>,
}

/// The server's offline state of one linear step of a chunk.
#[derive(Debug)]
pub struct ServerMask {
    /// The step.
    pub step: usize,
    /// The server's share `s` of `W·r + b` (the client holds the rest).
    pub share: Vec<u64>,
}

/// Offline, client: draws the mask of step `step` (input `input_len`
/// elements) and obtains its share of `W·r + b`.
pub async fn client_offline(
    ch: &mut Channel,
    he: &Arc<HeClient>,
    plan: &StepPlan,
    step: usize,
    ring: Ring,
    rng: &mut ChaCha20Rng,
) -> SecureResult<ClientMask> {
    let r: Vec<u64> = (0..plan.input_len()).map(|_| ring.random(rng)).collect();
    let (share, _) = he_driver::client_layer(ch, he, plan, r.clone(), rng).await?;
    Ok(ClientMask { step, r, share })
}

/// Offline, server: answers the client's encrypted mask of step `step`.
pub async fn server_offline(
    ch: &mut Channel,
    he: &Arc<HeServer>,
    layer: &ServerStep,
    step: usize,
    rng: &mut ChaCha20Rng,
) -> SecureResult<ServerMask> {
    let (share, _) = he_driver::server_layer(ch, he, layer, None, rng).await?;
    Ok(ServerMask { step, share })
}

/// Online, client: sends its masked input `x_C − r`; returns its share.
pub async fn client_online(
    ch: &mut Channel,
    mask: ClientMask,
    x_c: &[u64],
    ring: Ring,
) -> SecureResult<Vec<u64>> {
    if x_c.len() != mask.r.len() {
        return Err(SecureError::Config(format!(
            "linear step {}: {} input shares where the mask has {}",
            mask.step,
            x_c.len(),
            mask.r.len()
        )));
    }
    let m: Vec<u64> = x_c
        .iter()
        .zip(&mask.r)
        .map(|(&x, &r)| ring.sub(x, r))
        .collect();
    ch.send_frame(&pack(&m, ring.bits())).await?;
    Ok(mask.share)
}

/// Online, server: receives the client's masked input and returns
/// `W·(x_S + m) + s` for the bias-free `step` on `n` samples of shape
/// `in_shape` (`x_s = None`: the server's share is zero).
pub async fn server_online(
    ch: &mut Channel,
    mask: ServerMask,
    step: Arc<Step>,
    in_shape: &[usize],
    n: usize,
    x_s: Option<Vec<u64>>,
    ring: Ring,
) -> SecureResult<Vec<u64>> {
    let len = n * in_shape.iter().product::<usize>();
    let what = format!("masked input of linear step {}", mask.step);
    let m = recv_values(ch, len, ring, &what).await?;
    let v: Vec<u64> = match x_s {
        Some(x) if x.len() == len => x.iter().zip(&m).map(|(&a, &b)| ring.add(a, b)).collect(),
        Some(x) => {
            return Err(SecureError::Config(format!(
                "linear step {}: {} input shares where {len} were expected",
                mask.step,
                x.len()
            )));
        }
        None => m,
    };
    let mut shape = vec![n];
    shape.extend_from_slice(in_shape);
    let share = mask.share;
    blocking(move || {
        let t = Tensor::new(shape, v)?;
        let y = step.apply(ring, &[&t])?.into_data();
        if y.len() != share.len() {
            return Err(SecureError::Config(format!(
                "linear step `{}`: {} outputs where the offline share has {}",
                step.name,
                y.len(),
                share.len()
            )));
        }
        Ok(y.iter()
            .zip(&share)
            .map(|(&a, &b)| ring.add(a, b))
            .collect())
    })
    .await
}
