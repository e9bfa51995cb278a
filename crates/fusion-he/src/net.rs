//! Thin async drivers over a [`cryprot_net::Connection`]. Setup opens one byte
//! stream pair, the session's [`HeChannel`] (the n-th `byte_stream` call on one side
//! pairs with the n-th on the other), and every layer call reuses it: one
//! length-prefixed frame each way, whose length is checked against the plan before
//! anything is allocated. Reusing the stream keeps QUIC's flow-control windows
//! warm (a fresh stream per call costs a window ramp-up on larger messages). The
//! CPU-heavy steps run on tokio's blocking pool (they use rayon inside).
//!
//! The drivers only move bytes: every step is a public I/O-free function of
//! the client's half ([`HeClient::setup_messages`], [`HeClient::query_bytes`],
//! [`HeClient::decrypt_bytes`]) or the server's half
//! ([`HeServer::from_setup_messages`], [`ServerLinear::respond_bytes`]), with
//! the frame lengths from [`PublicKeyMsg::expected_len`],
//! [`GaloisKeyMsg::expected_len`], [`Query::expected_len`] and
//! [`Reply::expected_len`], so that another driver can call them directly.

use std::sync::Arc;

use cryprot_net::{Connection, ReceiveStreamBytes, SendStreamBytes};
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::HeClient;
use crate::error::HeError;
use crate::params::HeParams;
use crate::plan::LinearPlan;
use crate::server::{HeServer, ServerLinear};
use crate::wire::{GaloisKeyMsg, PublicKeyMsg, Query, Reply};

/// Sends one frame: `u64` little-endian length, then the bytes.
async fn send_frame<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> Result<(), HeError> {
    w.write_all(&(bytes.len() as u64).to_le_bytes()).await?;
    w.write_all(bytes).await?;
    w.flush().await?;
    Ok(())
}

/// Receives one frame whose length must be exactly `expected`.
async fn recv_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    what: &'static str,
    expected: usize,
) -> Result<Vec<u8>, HeError> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len).await?;
    let len = u64::from_le_bytes(len);
    if len != expected as u64 {
        return Err(HeError::MessageLength {
            what,
            expected,
            found: usize::try_from(len).unwrap_or(usize::MAX),
        });
    }
    let mut buf = vec![0u8; expected];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HeError> + Send + 'static,
) -> Result<T, HeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HeError::Task(e.to_string()))?
}

fn fork<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// The byte streams of one session's HE messages, opened by the setup functions.
pub struct HeChannel {
    tx: SendStreamBytes,
    rx: ReceiveStreamBytes,
}

impl std::fmt::Debug for HeChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeChannel").finish_non_exhaustive()
    }
}

impl HeChannel {
    /// Opens the channel (pairs with the peer's `open` on the same connection).
    pub async fn open(conn: &mut Connection) -> Result<Self, HeError> {
        let (tx, rx) = conn.byte_stream().await?;
        Ok(HeChannel { tx, rx })
    }
}

/// Client setup: opens the session's channel, generates the key pair and sends
/// the public key, then, if the parameters enable response packing, the Galois
/// keys ([`HeParams::galois_key_bytes`] more bytes, once per session).
pub async fn client_setup<R: Rng + CryptoRng + ?Sized>(
    conn: &mut Connection,
    params: &HeParams,
    rng: &mut R,
) -> Result<(Arc<HeClient>, HeChannel), HeError> {
    let mut ch = HeChannel::open(conn).await?;
    let params = params.clone();
    let mut r = fork(rng);
    let (client, msg, gk) = blocking(move || {
        let client = HeClient::new(&params, &mut r);
        let (msg, gk) = client.setup_messages(&mut r)?;
        Ok((client, msg, gk))
    })
    .await?;
    send_frame(&mut ch.tx, msg.as_bytes()).await?;
    if let Some(gk) = gk {
        send_frame(&mut ch.tx, gk.as_bytes()).await?;
    }
    Ok((Arc::new(client), ch))
}

/// Server setup: opens the session's channel and receives and checks the
/// client's public key, and its Galois keys if the parameters enable response
/// packing.
pub async fn server_setup(
    conn: &mut Connection,
    params: &HeParams,
) -> Result<(Arc<HeServer>, HeChannel), HeError> {
    let mut ch = HeChannel::open(conn).await?;
    let bytes = recv_frame(&mut ch.rx, "public key", PublicKeyMsg::expected_len(params)).await?;
    let gk = if params.reply_packing_levels() > 0 {
        Some(
            recv_frame(
                &mut ch.rx,
                "Galois keys",
                GaloisKeyMsg::expected_len(params),
            )
            .await?,
        )
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
    Ok((server, ch))
}

/// Bytes one layer call moved, per direction (payloads plus 8-byte frame headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerTraffic {
    /// Client to server.
    pub client_to_server: usize,
    /// Server to client.
    pub server_to_client: usize,
}

/// Client side of one linear layer: returns the client's output share.
pub async fn client_layer<R: Rng + CryptoRng + ?Sized>(
    ch: &mut HeChannel,
    client: &Arc<HeClient>,
    plan: &Arc<LinearPlan>,
    x_client: Vec<u64>,
    rng: &mut R,
) -> Result<(Vec<u64>, LayerTraffic), HeError> {
    let mut r = fork(rng);
    let (c, p) = (client.clone(), plan.clone());
    let query = blocking(move || c.query_bytes(&p, &x_client, &mut r)).await?;
    send_frame(&mut ch.tx, &query).await?;
    let bytes = recv_frame(&mut ch.rx, "reply", Reply::expected_len(plan)).await?;
    let traffic = LayerTraffic {
        client_to_server: query.len() + 8,
        server_to_client: bytes.len() + 8,
    };
    let (c, p) = (client.clone(), plan.clone());
    let share = blocking(move || c.decrypt_bytes(&p, bytes)).await?;
    Ok((share, traffic))
}

/// Server side of one linear layer: returns the server's output share.
/// `x_server` is the server's input share (`None`: zero).
pub async fn server_layer<R: Rng + CryptoRng + ?Sized>(
    ch: &mut HeChannel,
    server: &Arc<HeServer>,
    layer: &Arc<ServerLinear>,
    x_server: Option<Vec<u64>>,
    rng: &mut R,
) -> Result<(Vec<u64>, LayerTraffic), HeError> {
    let bytes = recv_frame(&mut ch.rx, "query", Query::expected_len(layer.plan())).await?;
    let up = bytes.len() + 8;
    let mut r = fork(rng);
    let (s, l) = (server.clone(), layer.clone());
    let (reply, share) =
        blocking(move || l.respond_bytes(&s, &bytes, x_server.as_deref(), &mut r)).await?;
    send_frame(&mut ch.tx, reply.as_bytes()).await?;
    Ok((
        share,
        LayerTraffic {
            client_to_server: up,
            server_to_client: reply.len() + 8,
        },
    ))
}
