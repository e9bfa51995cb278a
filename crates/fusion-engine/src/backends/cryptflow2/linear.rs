//! The `cryptflow2` backend's linear layers: fusion-he's SIMD BFV layers
//! ([`fusion_he::simd`]) driven over the session's protocol channel.
//!
//! Setup: the client sends its public key and the Galois keys of the
//! power-of-two rotations and the row swap (every layer's rotations are
//! products of those). Each linear call: one query frame up (the client's
//! share, encrypted), one reply frame down; the lengths are known to both
//! from the public plan ([`SimdPlan::query_bytes_len`],
//! [`SimdPlan::reply_bytes_len`]) so a frame of any other length is refused
//! before anything is allocated for it. The server adds its own share, its
//! output share is `r + bias`, the client's `W·x − r` (all mod `p`). The
//! server's coefficients are the program's signed fixed-point integers,
//! embedded in `Z_p`. CPU-heavy steps run on tokio's blocking pool.

use std::sync::Arc;

use fusion_core::field::PrimeField;
use fusion_he::simd::{GaloisSet, SimdClient, SimdLinear, SimdParams, SimdPlan, SimdServer, wire};
use fusion_he::{HeError, LayerKind};
use fusion_net::Channel;
use fusion_nn::fixed::{FixedOp, FixedProgram, OpClass, PublicProgram};
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};

use crate::backends::cheetah::he::{BatchCache, blocking, layer_kind};
use crate::error::{SecureError, SecureResult};

/// The public plans of a program's linear steps for one batch size.
pub type Plans = Vec<Option<Arc<SimdPlan>>>;
/// The server's encoded layers for one batch size.
pub type Layers = Vec<Option<Arc<SimdLinear>>>;

fn fork<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// The SIMD plan of linear step `step` for `n` samples.
fn plan(
    params: &SimdParams,
    program: &PublicProgram,
    step: usize,
    n: usize,
) -> SecureResult<SimdPlan> {
    let name = &program.steps[step].name;
    let plan = match layer_kind(program, step, n)? {
        LayerKind::Fc(s) => SimdPlan::fc(params, s),
        LayerKind::Conv2d(s) => SimdPlan::conv2d(params, s),
        LayerKind::BatchNorm(s) => SimdPlan::affine(params, s),
    }
    .map_err(|e| SecureError::Config(format!("step `{name}`: no SIMD plan: {e}")))?;
    Ok(plan)
}

/// The plans of every linear step for `n` samples (`None` elsewhere).
pub fn plans(params: &SimdParams, program: &PublicProgram, n: usize) -> SecureResult<Plans> {
    (0..program.steps.len())
        .map(|i| {
            if program.steps[i].op.class() != OpClass::Linear {
                return Ok(None);
            }
            Ok(Some(Arc::new(plan(params, program, i, n)?)))
        })
        .collect()
}

/// Program coefficients (signed `Z_{2^l}` integers) as field elements.
fn embed(field: PrimeField, ring: fusion_core::ring::Ring, v: &[u64]) -> Vec<u64> {
    v.iter()
        .map(|&w| field.from_signed(ring.to_signed(w)))
        .collect()
}

/// The server's encoded layers for `n` samples.
pub fn server_layers(
    params: &SimdParams,
    program: &FixedProgram,
    n: usize,
) -> SecureResult<Layers> {
    let public = program.public();
    let field = params.field();
    let ring = program.ring();
    let e = |v: &[u64]| embed(field, ring, v);
    program
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.op.class() != OpClass::Linear {
                return Ok(None);
            }
            let plan = plan(params, &public, i, n)?;
            let layer = match &s.op {
                FixedOp::Dense(d) => SimdLinear::fc(plan, &e(&d.weight), Some(&e(&d.bias))),
                FixedOp::Conv2d(c) => SimdLinear::conv2d(plan, &e(&c.weight), Some(&e(&c.bias))),
                FixedOp::ChannelAffine(a) => {
                    SimdLinear::affine(plan, &e(&a.scale), Some(&e(&a.shift)))
                }
                _ => Err(HeError::InvalidShape("not a linear step".into())),
            }
            .map_err(|err| SecureError::Config(format!("step `{}`: {err}", s.name)))?;
            Ok(Some(Arc::new(layer)))
        })
        .collect()
}

/// The server's layers for `n` samples, from the cache or encoded (on the
/// blocking pool) and cached.
pub async fn encoded_layers(
    cache: &BatchCache<Layers>,
    params: &SimdParams,
    program: &Arc<FixedProgram>,
    n: usize,
) -> SecureResult<Arc<Layers>> {
    if let Some(l) = cache.get(n) {
        return Ok(l);
    }
    let (params, program) = (params.clone(), program.clone());
    let built = Arc::new(blocking(move || server_layers(&params, &program, n)).await?);
    cache.insert(n, built.clone());
    Ok(built)
}

/// The client's plans for `n` samples, cached.
pub async fn client_plans(
    cache: &BatchCache<Plans>,
    params: &SimdParams,
    program: &Arc<PublicProgram>,
    n: usize,
) -> SecureResult<Arc<Plans>> {
    if let Some(p) = cache.get(n) {
        return Ok(p);
    }
    let (params, program) = (params.clone(), program.clone());
    let built = Arc::new(blocking(move || plans(&params, &program, n)).await?);
    cache.insert(n, built.clone());
    Ok(built)
}

/// Client setup: a fresh key pair; sends the public key and the Galois keys
/// of `rotations`.
pub async fn client_setup<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    params: &SimdParams,
    rotations: &GaloisSet,
    rng: &mut R,
) -> SecureResult<Arc<SimdClient>> {
    let (params, rotations) = (params.clone(), rotations.clone());
    let mut r = fork(rng);
    let (client, pk, gk) = blocking(move || {
        let client = SimdClient::new(&params, &mut r);
        let (pk, gk) = client.setup_messages(&rotations, &mut r);
        Ok((client, pk, gk))
    })
    .await?;
    ch.send_frame(&pk).await?;
    ch.send_frame(&gk).await?;
    Ok(Arc::new(client))
}

/// Server setup: receives and checks the client's public key and Galois keys.
pub async fn server_setup(
    ch: &mut Channel,
    params: &SimdParams,
    rotations: &GaloisSet,
) -> SecureResult<Arc<SimdServer>> {
    let pk = ch.recv_exact(wire::public_key_len(params)).await?;
    let gk = ch
        .recv_exact(wire::galois_keys_len(params, rotations))
        .await?;
    let params = params.clone();
    blocking(move || {
        Ok(Arc::new(SimdServer::from_setup_messages(
            &params,
            &pk,
            Some(&gk),
        )?))
    })
    .await
}

/// Client side of one linear layer: its output share `W·x − r`.
pub async fn client_layer<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    client: &Arc<SimdClient>,
    plan: &Arc<SimdPlan>,
    x_client: Vec<u64>,
    rng: &mut R,
) -> SecureResult<Vec<u64>> {
    let mut r = fork(rng);
    let (c, p) = (client.clone(), plan.clone());
    let query = blocking(move || Ok(c.query_bytes(&p, &x_client, &mut r)?)).await?;
    ch.send_frame(&query).await?;
    let bytes = ch.recv_exact(plan.reply_bytes_len()).await?;
    let (c, p) = (client.clone(), plan.clone());
    blocking(move || Ok(c.decrypt_bytes(&p, bytes)?)).await
}

/// Server side of one linear layer: its output share `r + bias`.
pub async fn server_layer<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    server: &Arc<SimdServer>,
    layer: &Arc<SimdLinear>,
    x_server: Vec<u64>,
    rng: &mut R,
) -> SecureResult<Vec<u64>> {
    let bytes = ch.recv_exact(layer.plan().query_bytes_len()).await?;
    let mut r = fork(rng);
    let (s, l) = (server.clone(), layer.clone());
    let (reply, share) =
        blocking(move || Ok(l.respond_bytes(&s, &bytes, &x_server, &mut r)?)).await?;
    ch.send_frame(&reply).await?;
    Ok(share)
}
