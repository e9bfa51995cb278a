//! The thin async driver of fusion-he's linear layers over the session's
//! protocol channel ([`fusion_net::Channel`], the one framing layer).
//!
//! Setup sends the client's public key (and, with reply packing, its Galois
//! keys); every layer call is one query frame up and one reply frame down,
//! each of a length the receiver computes from the public plan
//! ([`PublicKeyMsg::expected_len`], [`GaloisKeyMsg::expected_len`],
//! [`Query::expected_len`], [`Reply::expected_len`]), so a frame of any other
//! length is refused before anything is allocated for it. The driver only
//! moves bytes: every step is an I/O-free function of fusion-he's client half
//! ([`HeClient::setup_messages`], [`HeClient::query_bytes`],
//! [`HeClient::decrypt_bytes`]) or server half
//! ([`HeServer::from_setup_messages`], [`ServerLinear::respond_bytes`]). The
//! CPU-heavy steps run on tokio's blocking pool (they use rayon inside).

use std::sync::Arc;

use fusion_he::{
    GaloisKeyMsg, HeClient, HeError, HeParams, HeServer, LinearPlan, PublicKeyMsg, Query, Reply,
    ServerLinear,
};
use fusion_net::Channel;
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};

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

/// Client side of one linear layer: returns the client's output share.
pub async fn client_layer<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    client: &Arc<HeClient>,
    plan: &Arc<LinearPlan>,
    x_client: Vec<u64>,
    rng: &mut R,
) -> SecureResult<(Vec<u64>, LayerTraffic)> {
    let mut r = fork(rng);
    let (c, p) = (client.clone(), plan.clone());
    let query = blocking(move || c.query_bytes(&p, &x_client, &mut r)).await?;
    ch.send_frame(&query).await?;
    let bytes = ch.recv_exact(Reply::expected_len(plan)).await?;
    let frame = fusion_net::message::HEADER_BYTES;
    let traffic = LayerTraffic {
        client_to_server: query.len() + frame,
        server_to_client: bytes.len() + frame,
    };
    let (c, p) = (client.clone(), plan.clone());
    let share = blocking(move || c.decrypt_bytes(&p, bytes)).await?;
    Ok((share, traffic))
}

/// Server side of one linear layer: returns the server's output share.
/// `x_server` is the server's input share (`None`: zero).
pub async fn server_layer<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    server: &Arc<HeServer>,
    layer: &Arc<ServerLinear>,
    x_server: Option<Vec<u64>>,
    rng: &mut R,
) -> SecureResult<(Vec<u64>, LayerTraffic)> {
    let bytes = ch.recv_exact(Query::expected_len(layer.plan())).await?;
    let frame = fusion_net::message::HEADER_BYTES;
    let up = bytes.len() + frame;
    let mut r = fork(rng);
    let (s, l) = (server.clone(), layer.clone());
    let (reply, share) =
        blocking(move || l.respond_bytes(&s, &bytes, x_server.as_deref(), &mut r)).await?;
    ch.send_frame(reply.as_bytes()).await?;
    Ok((
        share,
        LayerTraffic {
            client_to_server: up,
            server_to_client: reply.len() + frame,
        },
    ))
}
