//! The thin async driver of fusion-he's linear layers over the session's
//! protocol channel ([`fusion_net::Channel`], the one framing layer).
//!
//! Setup sends the client's public key (and, with reply packing, its Galois
//! keys); every layer call is one query frame up and one reply frame down per
//! part of the step's plan ([`StepPlan`]: the client sends every part's query
//! before it reads a reply, so a call is two flights however many parts it
//! has), each of a length the receiver computes from the public plan
//! ([`PublicKeyMsg::expected_len`], [`GaloisKeyMsg::expected_len`],
//! [`Query::expected_len`], [`Reply::expected_len`]), so a frame of any other
//! length is refused before anything is allocated for it. The driver only
//! moves bytes: every step is an I/O-free function of fusion-he's client half
//! ([`HeClient::setup_messages`], [`HeClient::query_bytes`],
//! [`HeClient::decrypt_bytes`]) or server half
//! ([`HeServer::from_setup_messages`], [`fusion_he::ServerLinear::respond_bytes`]). The
//! CPU-heavy steps run on tokio's blocking pool (they use rayon inside).

use std::sync::Arc;

use fusion_he::{GaloisKeyMsg, HeClient, HeError, HeParams, HeServer, PublicKeyMsg, Query, Reply};
use fusion_net::Channel;
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};

use super::he::{ServerStep, StepPlan};
use crate::error::{SecureError, SecureResult};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HeError> + Send + 'static,
) -> SecureResult<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SecureError::Task(e.to_string()))??)
}

fn fork<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// Client setup: generates the key pair and sends the public key, then, if the
/// parameters enable response packing, the Galois keys
/// ([`HeParams::galois_key_bytes`] more bytes, once per session).
pub async fn client_setup<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    params: &HeParams,
    rng: &mut R,
) -> SecureResult<Arc<HeClient>> {
    let params = params.clone();
    let mut r = fork(rng);
    let (client, msg, gk) = blocking(move || {
        let client = HeClient::new(&params, &mut r);
        let (msg, gk) = client.setup_messages(&mut r)?;
        Ok((client, msg, gk))
    })
    .await?;
    ch.send_frame(msg.as_bytes()).await?;
    if let Some(gk) = gk {
        ch.send_frame(gk.as_bytes()).await?;
    }
    Ok(Arc::new(client))
}

/// Server setup: receives and checks the client's public key, and its Galois
/// keys if the parameters enable response packing.
pub async fn server_setup(ch: &mut Channel, params: &HeParams) -> SecureResult<Arc<HeServer>> {
    let bytes = ch.recv_exact(PublicKeyMsg::expected_len(params)).await?;
    let gk = if params.reply_packing_levels() > 0 {
        Some(ch.recv_exact(GaloisKeyMsg::expected_len(params)).await?)
    } else {
        None
    };
    let params = params.clone();
    let server = blocking(move || {
        Ok(Arc::new(HeServer::from_setup_messages(
            &params,
            &bytes,
            gk.as_deref(),
        )?))
    })
    .await?;
    Ok(server)
}

/// Bytes one layer call moved, per direction (payloads plus 4-byte frame headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerTraffic {
    /// Client to server.
    pub client_to_server: usize,
    /// Server to client.
    pub server_to_client: usize,
}

/// `x` cut into consecutive parts of lengths `lens`, or an error if the
/// lengths do not add up to `x.len()`. The first part is `x` itself
/// (truncated), so a step of one part copies nothing.
fn split(x: Vec<u64>, lens: &[usize], what: &'static str) -> SecureResult<Vec<Vec<u64>>> {
    if lens.iter().sum::<usize>() != x.len() {
        return Err(SecureError::Config(format!(
            "the {what} share of a linear step has {} elements, not what its HE plan takes",
            x.len()
        )));
    }
    let mut head = x;
    let mut parts: Vec<Vec<u64>> = lens
        .iter()
        .skip(1)
        .rev()
        .map(|&len| head.split_off(head.len() - len))
        .collect();
    parts.push(head);
    parts.reverse();
    Ok(parts)
}

/// Client side of one linear step: returns the client's output share. Sends
/// every part's query, then reads and decrypts every part's reply.
pub async fn client_layer<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    client: &Arc<HeClient>,
    plan: &StepPlan,
    x_client: Vec<u64>,
    rng: &mut R,
) -> SecureResult<(Vec<u64>, LayerTraffic)> {
    let frame = fusion_net::message::HEADER_BYTES;
    let mut traffic = LayerTraffic::default();
    let lens: Vec<usize> = plan.parts().iter().map(|p| p.input_len()).collect();
    let inputs = split(x_client, &lens, "client's")?;
    let mut queries = Vec::with_capacity(inputs.len());
    for (part, x) in plan.parts().iter().zip(inputs) {
        let mut r = fork(rng);
        let (c, p) = (client.clone(), part.clone());
        queries.push(blocking(move || c.query_bytes(&p, &x, &mut r)).await?);
    }
    for query in &queries {
        ch.send_frame(query).await?;
        traffic.client_to_server += query.len() + frame;
    }
    let mut share = Vec::with_capacity(plan.output_len());
    for part in plan.parts() {
        let bytes = ch.recv_exact(Reply::expected_len(part)).await?;
        traffic.server_to_client += bytes.len() + frame;
        let (c, p) = (client.clone(), part.clone());
        share.extend(blocking(move || c.decrypt_bytes(&p, bytes)).await?);
    }
    Ok((share, traffic))
}

/// Server side of one linear step: returns the server's output share.
/// `x_server` is the server's input share (`None`: zero). Answers the parts'
/// queries in order, each as soon as it has arrived.
pub async fn server_layer<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    server: &Arc<HeServer>,
    step: &ServerStep,
    x_server: Option<Vec<u64>>,
    rng: &mut R,
) -> SecureResult<(Vec<u64>, LayerTraffic)> {
    let frame = fusion_net::message::HEADER_BYTES;
    let mut traffic = LayerTraffic::default();
    let lens: Vec<usize> = step.parts().iter().map(|l| l.plan().input_len()).collect();
    let inputs: Vec<Option<Vec<u64>>> = match x_server {
        Some(x) => split(x, &lens, "server's")?.into_iter().map(Some).collect(),
        None => lens.iter().map(|_| None).collect(),
    };
    let mut share = Vec::new();
    for (layer, x) in step.parts().iter().zip(inputs) {
        let bytes = ch.recv_exact(Query::expected_len(layer.plan())).await?;
        traffic.client_to_server += bytes.len() + frame;
        let mut r = fork(rng);
        let (s, l) = (server.clone(), layer.clone());
        let (reply, part) =
            blocking(move || l.respond_bytes(&s, &bytes, x.as_deref(), &mut r)).await?;
        ch.send_frame(reply.as_bytes()).await?;
        traffic.server_to_client += reply.len() + frame;
        share.extend(part);
    }
    Ok((share, traffic))
}
