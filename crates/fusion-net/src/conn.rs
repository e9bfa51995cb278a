//! Server and client endpoints producing metered `cryprot_net` connections.
//!
//! * [`Server::bind`] + [`Server::accept`]: sessions one after another. A
//!   client that fails the handshake or vanishes never reaches `accept` or
//!   only ends its own session; the listener keeps running.
//! * [`connect`]: client side, pinning the server's certificate
//!   ([`ServerPin`]).
//! * [`local_pair`] / [`local_pair_over_link`]: both parties on 127.0.0.1 with
//!   a freshly generated certificate, for tests, benches and `fusion demo`.
//!
//! Each [`Session`] owns a `cryprot_net::Connection` (its stream manager is
//! already spawned on the current tokio runtime) and the connection's
//! [`Meter`]. All functions must run inside a tokio runtime.
//!
//! # Ending a session
//!
//! cryprot-net's stream manager keeps the QUIC connection referenced, and
//! keep-alive keeps it up, so a session must be ended explicitly:
//!
//! * [`Session::finish`] (normal end of a protocol): both parties exchange a
//!   goodbye on a reserved stream, so each knows the other is done (and has
//!   received what it needed), then the connection closes. Waits at most
//!   [`NetConfig::close_linger`] for the peer's goodbye.
//! * [`Session::close`] (error paths): closes at once; data not yet
//!   acknowledged by the peer is discarded, the peer's pending operations fail
//!   with [`NetError::ConnectionLost`].
//! * Dropping a session runs `finish` in the background.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use cryprot_net::Connection;
use s2n_quic::client::Connect;
use serde::{Serialize, de::DeserializeOwned};
use tracing::{debug, warn};

use crate::{
    config::{MessageConfig, NetConfig},
    error::{NetError, Result},
    message::{self, FrameReceiver, FrameSender, MsgReceiver, MsgSender},
    meter::{ConnContext, Meter, MeterReport, MeterSubscriber, Party},
    relay::{LinkConfig, Relay},
    tls::{ClientRoots, Identity, PeerIdentity, SERVER_NAME, ServerPin},
};

/// Application error code sent when a session is closed deliberately.
const CLOSE_CODE: u32 = 0;

/// Explicit cryprot stream id of the goodbye exchange (explicit ids do not
/// interfere with the implicit numbering of `byte_stream()` / `stream()`).
const GOODBYE_STREAM: u64 = u64::MAX - 0x6679;
const GOODBYE: &[u8] = b"fusion-net/goodbye";

/// One established, authenticated connection between the two parties.
pub struct Session {
    /// `None` once the session was finished or closed.
    conn: Option<Connection>,
    meter: Meter,
    handle: s2n_quic::connection::Handle,
    messages: MessageConfig,
    linger: std::time::Duration,
    peer: SocketAddr,
    peer_identity: std::sync::Arc<std::sync::OnceLock<PeerIdentity>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("party", &self.meter.party())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// The QUIC connection under a session's streams, kept to explain their
/// failures. A stream only learns that its connection went away (cryprot
/// reports "channel closed" or "unable to open stream"); the connection keeps
/// the reason, for example the TLS alert of a server that refused the
/// client's certificate, which arrives just after the client's handshake
/// completed. [`WhyLost::explain`] puts that reason into the error.
#[derive(Clone)]
pub(crate) struct WhyLost {
    handle: s2n_quic::connection::Handle,
    party: Party,
}

impl WhyLost {
    /// `e` unchanged unless it is a lost connection or a refused stream and
    /// the connection has closed: then [`NetError::ConnectionLost`] with the
    /// connection's own reason.
    pub(crate) fn explain(&self, e: NetError) -> NetError {
        let what = match &e {
            NetError::ConnectionLost { what, .. } => *what,
            NetError::OpenStream(_) => "opening a stream",
            _ => return e,
        };
        // `ping` only queues a PING frame on a live connection; on a closed
        // one it returns the error the connection was closed with.
        let mut handle = self.handle.clone();
        let Err(closed) = handle.ping() else {
            return e;
        };
        NetError::ConnectionLost {
            what,
            reason: describe_close(closed, self.party),
        }
    }
}

/// A connection's close reason, with what a TLS alert from the server means
/// to a client: in TLS 1.3 the client's handshake completes before the
/// server has checked the client's last flight, so the server's verdict on
/// the client certificate arrives as such an alert, during the handshake,
/// while the session is being set up or on its first use (which of these
/// depends on timing). Every path that reports a closed connection goes
/// through here, so the hint does not depend on the race.
fn describe_close(closed: s2n_quic::connection::Error, party: Party) -> String {
    let text = closed.to_string();
    let tls_alert_from_server = matches!(
        closed,
        s2n_quic::connection::Error::Transport { code, initiator, .. }
            if initiator.is_remote() && (0x100..=0x1ff).contains(&code.as_u64())
    ) && party == Party::Client;
    if tls_alert_from_server {
        format!(
            "{text} (the server refused the end of our TLS handshake: \
             no client certificate, or one it does not accept)"
        )
    } else {
        text
    }
}

impl Session {
    fn start(mut quic: s2n_quic::Connection, config: &NetConfig) -> Result<Self> {
        let (meter, peer_identity) = quic
            .query_event_context(|c: &ConnContext| (c.meter.clone(), c.peer.clone()))
            .map_err(|e| NetError::Config(format!("connection has no meter: {e}")))?;
        let party = meter.party();
        let lost = |e: s2n_quic::connection::Error| NetError::ConnectionLost {
            what: "setting up the session",
            reason: describe_close(e, party),
        };
        if config.keep_alive.is_some() {
            quic.keep_alive(true).map_err(lost)?;
        }
        let peer = quic.remote_addr().map_err(lost)?;
        let handle = quic.handle();
        let (conn, manager) = Connection::new(quic);
        tokio::spawn(manager.start());
        Ok(Session {
            conn: Some(conn),
            meter,
            handle,
            messages: config.messages.clone(),
            linger: config.close_linger,
            peer,
            peer_identity,
        })
    }

    fn conn_mut(&mut self) -> &mut Connection {
        // `conn` is only taken by `finish`, `close` and `drop`, which consume
        // the session.
        match self.conn.as_mut() {
            Some(c) => c,
            None => unreachable!("session connection taken before the session ended"),
        }
    }

    /// Installs a send filter on the connection: every stream opened from
    /// now on (by us, our backends and CryProt alike) passes its outgoing
    /// bytes through it. For fault-injection tests only (a test plays a peer
    /// that corrupts a chosen stream at a chosen offset); the product never
    /// calls it.
    pub fn set_send_filter(&mut self, filter: std::sync::Arc<dyn cryprot_net::SendFilter>) {
        self.conn_mut().set_send_filter(filter);
    }

    /// Which side this is.
    pub fn party(&self) -> Party {
        self.meter.party()
    }

    /// The peer's UDP address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Who the peer is by the certificate it presented in the handshake: on
    /// a server with client authentication
    /// ([`Server::bind_with_client_auth`]), the client's verified identity;
    /// on a client, the (pinned) server's. `None` if the peer presented no
    /// certificate.
    pub fn peer_identity(&self) -> Option<PeerIdentity> {
        self.peer_identity.get().cloned()
    }

    /// The connection's traffic meter.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Snapshot of the meter.
    pub fn report(&self) -> MeterReport {
        self.meter.report()
    }

    /// Message stream limits and timeouts of this session.
    pub fn message_config(&self) -> &MessageConfig {
        &self.messages
    }

    /// The underlying CryProt connection (hand it, or better a
    /// [`Session::sub_connection`], to OT code).
    pub fn connection(&mut self) -> &mut Connection {
        self.conn_mut()
    }

    /// A new independent sub-connection (the n-th call pairs with the peer's
    /// n-th call); its traffic is metered on this session's meter. It stops
    /// working when the session ends.
    pub fn sub_connection(&mut self) -> Connection {
        self.conn_mut().sub_connection()
    }

    /// Open a typed message stream pair (send `S`, receive `R`).
    pub async fn channel<S: Serialize, R: DeserializeOwned>(
        &mut self,
    ) -> Result<(MsgSender<S>, MsgReceiver<R>)> {
        let (tx, rx) = self.frame_channel().await?;
        Ok((MsgSender::new(tx), MsgReceiver::new(rx)))
    }

    /// Open a protocol [`crate::Channel`] (metered on this session's meter,
    /// with the session's message limits).
    pub async fn protocol_channel(&mut self) -> Result<crate::Channel> {
        let (tx, rx) = self.frame_channel().await?;
        Ok(crate::Channel::new(tx, rx))
    }

    /// Open a raw frame stream pair.
    pub async fn frame_channel(&mut self) -> Result<(FrameSender, FrameReceiver)> {
        let (meter, messages) = (self.meter.clone(), self.messages.clone());
        let why = self.why_lost();
        let r = message::frame_channel(self.conn_mut(), Some(&meter), &messages).await;
        let (tx, rx) = r.map_err(|e| why.explain(e))?;
        Ok((tx.explained_by(why.clone()), rx.explained_by(why)))
    }

    /// What explains this session's transport failures (see [`WhyLost`]).
    fn why_lost(&self) -> WhyLost {
        WhyLost {
            handle: self.handle.clone(),
            party: self.meter.party(),
        }
    }

    /// End the session normally: tell the peer we are done, wait (at most
    /// `close_linger`) until it says the same, then close the connection.
    /// Returns [`NetError::Timeout`] if the peer did not finish in time (the
    /// connection is closed anyway).
    pub async fn finish(mut self) -> Result<()> {
        let conn = self.conn.take();
        let r = match &conn {
            Some(c) => goodbye(c, self.linger).await,
            None => Ok(()),
        };
        self.handle.close(CLOSE_CODE.into());
        drop(conn);
        r
    }

    /// Close the QUIC connection now (for error paths): unacknowledged data
    /// is discarded, the peer's pending and future operations fail with
    /// [`NetError::ConnectionLost`].
    pub fn close(mut self) {
        self.conn = None;
        self.handle.close(CLOSE_CODE.into());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let handle = self.handle.clone();
        let linger = self.linger;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = goodbye(&conn, linger).await;
                    handle.close(CLOSE_CODE.into());
                    drop(conn);
                });
            }
            Err(_) => handle.close(CLOSE_CODE.into()),
        }
    }
}

/// Send our goodbye on the reserved stream and wait for the peer's.
async fn goodbye(conn: &Connection, linger: std::time::Duration) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let (mut send, mut recv) = conn
            .byte_stream_with_id(cryprot_net::Id::new(GOODBYE_STREAM))
            .await?;
        send.write_all(GOODBYE)
            .await
            .map_err(|e| NetError::from_stream_io("saying goodbye", e))?;
        send.finish().map_err(|e| NetError::ConnectionLost {
            what: "saying goodbye",
            reason: e.to_string(),
        })?;
        let mut buf = [0u8; GOODBYE.len()];
        recv.read_exact(&mut buf)
            .await
            .map_err(|e| NetError::from_stream_io("waiting for the peer's goodbye", e))?;
        if buf != GOODBYE {
            return Err(NetError::Malformed("unexpected goodbye from peer".into()));
        }
        Ok(())
    };
    match tokio::time::timeout(linger, exchange).await {
        Ok(r) => r,
        Err(_) => Err(NetError::Timeout {
            what: "waiting for the peer to finish the session",
            after: linger,
        }),
    }
}

/// A listening endpoint.
pub struct Server {
    endpoint: s2n_quic::Server,
    config: NetConfig,
    local: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local)
            .finish_non_exhaustive()
    }
}

fn io_provider(addr: SocketAddr, config: &NetConfig) -> Result<s2n_quic::provider::io::Default> {
    let io = |e: std::io::Error| NetError::io(format!("setting up UDP socket on {addr}"), e);
    s2n_quic::provider::io::Default::builder()
        .with_receive_address(addr)
        .map_err(io)?
        .with_max_mtu(config.max_mtu)
        .map_err(io)?
        .with_recv_buffer_size(config.socket_buffer)
        .map_err(io)?
        .with_send_buffer_size(config.socket_buffer)
        .map_err(io)?
        .build()
        .map_err(io)
}

impl Server {
    /// Listen on `addr` (port 0 picks a free port) with the given identity.
    pub fn bind(addr: SocketAddr, identity: &Identity, config: NetConfig) -> Result<Self> {
        Self::bind_with_client_auth(addr, identity, None, config)
    }

    /// Like [`Server::bind`]; with `clients`, only clients presenting a
    /// certificate that chains to one of these CAs complete the handshake
    /// (mutual TLS; see [`crate::tls`]). Others fail the handshake and never
    /// reach [`Server::accept`].
    pub fn bind_with_client_auth(
        addr: SocketAddr,
        identity: &Identity,
        clients: Option<&ClientRoots>,
        config: NetConfig,
    ) -> Result<Self> {
        let limits = config.limits()?;
        let cfg = |e: &dyn std::fmt::Display| NetError::Config(e.to_string());
        let endpoint = s2n_quic::Server::builder()
            .with_tls(identity.server_tls(clients)?)
            .map_err(|e| cfg(&e))?
            .with_io(io_provider(addr, &config)?)
            .map_err(|e| cfg(&e))?
            .with_limits(limits)
            .map_err(|e| cfg(&e))?
            .with_event(MeterSubscriber {
                party: Party::Server,
            })
            .map_err(|e| cfg(&e))?
            .start()
            .map_err(|e| {
                NetError::io(
                    format!("starting QUIC server on {addr}"),
                    std::io::Error::other(e.to_string()),
                )
            })?;
        let local = endpoint
            .local_addr()
            .map_err(|e| NetError::io("reading the server address", e))?;
        Ok(Server {
            endpoint,
            config,
            local,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The configuration sessions get.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Wait for the next client that completes the handshake. Handshake
    /// failures are handled inside the QUIC endpoint and never surface here;
    /// a connection that dies before its session is set up is logged and
    /// skipped. Errors only if the endpoint itself has stopped.
    pub async fn accept(&mut self) -> Result<Session> {
        loop {
            let Some(quic) = self.endpoint.accept().await else {
                return Err(NetError::ConnectionLost {
                    what: "accepting connections",
                    reason: "the QUIC server endpoint stopped".into(),
                });
            };
            match Session::start(quic, &self.config) {
                Ok(s) => {
                    debug!(peer = %s.peer, "accepted session");
                    return Ok(s);
                }
                Err(e) => warn!(error = %e, "dropping a connection that failed session setup"),
            }
        }
    }
}

/// Connect to a server whose certificate must match `pin`.
///
/// Errors: [`NetError::PinMismatch`] if the server presents another
/// certificate, [`NetError::Connect`] for any other handshake failure
/// (including no answer within `config.connect_timeout`).
pub async fn connect(addr: SocketAddr, pin: &ServerPin, config: &NetConfig) -> Result<Session> {
    connect_as(addr, pin, None, config).await
}

/// Like [`connect`], presenting `client` as the client certificate (for a
/// server with client authentication). A server that does not accept the
/// certificate ends the connection in or right after the handshake: the
/// error is [`NetError::Connect`] or, on the first use of the session,
/// [`NetError::ConnectionLost`] naming the TLS alert.
pub async fn connect_as(
    addr: SocketAddr,
    pin: &ServerPin,
    client: Option<&Identity>,
    config: &NetConfig,
) -> Result<Session> {
    let limits = config.limits()?;
    let (tls, mismatch) = pin.client_tls(client)?;
    let local: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let cfg = |e: &dyn std::fmt::Display| NetError::Config(e.to_string());
    let client = s2n_quic::Client::builder()
        .with_tls(tls)
        .map_err(|e| cfg(&e))?
        .with_io(io_provider(local, config)?)
        .map_err(|e| cfg(&e))?
        .with_limits(limits)
        .map_err(|e| cfg(&e))?
        .with_event(MeterSubscriber {
            party: Party::Client,
        })
        .map_err(|e| cfg(&e))?
        .start()
        .map_err(|e| NetError::io("starting QUIC client", std::io::Error::other(e.to_string())))?;
    let attempt = client.connect(Connect::new(addr).with_server_name(SERVER_NAME));
    // s2n-quic enforces connect_timeout as the handshake limit; the outer
    // timeout is a backstop.
    let backstop = config.connect_timeout + std::time::Duration::from_secs(1);
    let result = tokio::time::timeout(backstop, attempt).await;
    let presented = mismatch.lock().ok().and_then(|s| *s);
    if let Some(presented) = presented {
        return Err(NetError::PinMismatch {
            expected: pin.fingerprint(),
            presented,
        });
    }
    let quic = match result {
        Err(_) => {
            return Err(NetError::Connect {
                addr,
                reason: format!("no handshake within {:?}", config.connect_timeout),
            });
        }
        Ok(Err(e)) => {
            return Err(NetError::Connect {
                addr,
                reason: describe_close(e, Party::Client),
            });
        }
        Ok(Ok(c)) => c,
    };
    Session::start(quic, config)
}

/// A metered server/client session pair over 127.0.0.1, authenticated with a
/// freshly generated throw-away certificate. Returns `(server, client)`.
pub async fn local_pair(config: &NetConfig) -> Result<(Session, Session)> {
    let identity = Identity::generate(&[])?;
    let mut server = Server::bind((Ipv4Addr::LOCALHOST, 0).into(), &identity, config.clone())?;
    let addr = server.local_addr();
    let pin = identity.pin();
    let (s, c) = tokio::join!(server.accept(), connect(addr, &pin, config));
    Ok((s?, c?))
}

/// Like [`local_pair`], but the client reaches the server through a link
/// emulator ([`Relay`]) on 127.0.0.1. Returns `(server, client, relay)`; keep
/// the relay alive as long as the sessions are used.
pub async fn local_pair_over_link(
    config: &NetConfig,
    link: LinkConfig,
) -> Result<(Session, Session, Relay)> {
    let identity = Identity::generate(&[])?;
    let mut server = Server::bind((Ipv4Addr::LOCALHOST, 0).into(), &identity, config.clone())?;
    let relay = Relay::start((Ipv4Addr::LOCALHOST, 0).into(), server.local_addr(), link)?;
    let pin = identity.pin();
    let (s, c) = tokio::join!(server.accept(), connect(relay.local_addr(), &pin, config));
    Ok((s?, c?, relay))
}
