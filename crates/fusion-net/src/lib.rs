//! # fusion-net: networking for Fusion's two parties
//!
//! QUIC+TLS connections with certificate pinning, bounded typed messages with
//! timeouts, per-phase byte metering and a user-space LAN/WAN link emulator.
//!
//! * [`conn`]: [`Server::bind`] / [`Server::accept`] (sessions one after
//!   another), [`connect`] (client, pins the server certificate), and
//!   [`local_pair`] / [`local_pair_over_link`] for tests and the local demo.
//!   A [`Session`] hands out the `cryprot_net::Connection` that CryProt's OT
//!   and our own protocols run on, plus its [`Meter`].
//! * [`tls`]: [`Identity`] (self-signed certificate + key, PEM files),
//!   [`ServerPin`] / [`Fingerprint`] and the pinning verifier (design in the
//!   module docs).
//! * [`message`]: length-prefixed frames and bincode-typed messages with a
//!   maximum frame size and timeouts on every wait.
//! * [`channel`]: [`Channel`], the one framing layer every protocol message
//!   goes through (frames of known length, flights, typed messages), and the
//!   flow-control rule that lets protocols switch channels without barriers.
//! * [`meter`]: wire bytes (UDP payload of QUIC datagrams), messages and
//!   rounds per named phase, as a serialisable [`MeterReport`].
//! * [`relay`]: UDP relay emulating a link (delay, token-bucket rate, drop-tail
//!   queue) with the paper's `lan` and `wan` presets; [`measure`] measures it.
//! * [`config`]: QUIC limits and timeouts ([`NetConfig`], [`MessageConfig`]).
//!
//! ```no_run
//! # async fn demo() -> fusion_net::Result<()> {
//! use fusion_net::{NetConfig, local_pair};
//! let (mut server, mut client) = local_pair(&NetConfig::default()).await?;
//! let (mut tx, _) = client.channel::<Vec<u64>, ()>().await?;
//! let (_, mut rx) = server.channel::<(), Vec<u64>>().await?;
//! {
//!     let _phase = client.meter().phase(fusion_net::Phase::Output);
//!     tx.send(&vec![1, 2, 3]).await?;
//! }
//! assert_eq!(rx.recv().await?, vec![1, 2, 3]);
//! println!("{}", client.report().to_json());
//! // OT: hand `client.sub_connection()` to a cryprot-ot sender/receiver.
//! # Ok(()) }
//! ```
//!
//! # Known limitation inherited from cryprot-net 0.2.5
//!
//! When the peer opens a stream, cryprot-net's stream manager reads a
//! peer-chosen `u32` length and allocates that many bytes for the stream id
//! before any of our checks run; a malicious peer can thus request up to
//! 4 GiB once per stream. Our own message decoding is bounded (see
//! [`message`]).

pub mod channel;
pub mod config;
pub mod conn;
pub mod error;
pub mod fingerprint;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod measure;
pub mod message;
pub mod meter;
pub mod relay;
pub mod tls;

pub use channel::Channel;
pub use config::{MAX_ACTIVE_STREAMS, MessageConfig, NetConfig};
pub use conn::{Server, Session, connect, connect_as, local_pair, local_pair_over_link};
pub use error::{NetError, Result};
pub use message::{FrameReceiver, FrameSender, MsgReceiver, MsgSender};
pub use meter::{
    Counters, Meter, MeterReport, Party, Phase, PhaseGuard, PhaseReport, StepGuard, StepReport,
};
pub use relay::{LinkConfig, Relay, RelayStats};
pub use tls::{ClientRoots, Fingerprint, Identity, PeerIdentity, ServerPin};

/// Re-export of the connection type sessions hand out.
pub use cryprot_net::Connection;
