//! End-to-end tests of fusion-net over real QUIC+TLS on 127.0.0.1.
//!
//! All waits are bounded (short timeouts in `cfg()`, plus an outer
//! `tokio::time::timeout` on every test body), so a regression fails instead
//! of hanging.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cryprot_ot::{
    RotReceiver, RotSender,
    extension::{SemiHonestOtExtensionReceiver, SemiHonestOtExtensionSender},
    random_choices,
};
use fusion_net::{
    ClientRoots, FrameReceiver, Identity, LinkConfig, MsgReceiver, NetConfig, NetError, Party,
    Phase, Relay, Server, ServerPin, connect, connect_as, local_pair, local_pair_over_link,
};
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Connection parameters with short timeouts so failures surface quickly.
fn cfg() -> NetConfig {
    NetConfig::default().with_timeouts(Duration::from_secs(3))
}

fn localhost() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

/// Every test body runs under this bound.
const TEST_LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future<Output = TestResult>>(f: F) -> TestResult {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .map_err(|_| "test exceeded its time limit")?
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Query { id: u32, shares: Vec<u64> },
    Answer { id: u32, logits: Vec<i64> },
}

#[tokio::test]
async fn connect_transfer_and_meter_per_phase() -> TestResult {
    bounded(async {
        let (mut server, mut client) = local_pair(&cfg()).await?;
        assert_eq!(server.party(), Party::Server);
        assert_eq!(client.party(), Party::Client);
        let (mut c_tx, mut c_rx) = client.channel::<Msg, Msg>().await?;
        let (mut s_tx, mut s_rx) = server.channel::<Msg, Msg>().await?;

        // Three request/response exchanges in phase "online".
        let shares: Vec<u64> = (0..250_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9))
            .collect();
        {
            let _c = client.meter().phase(Phase::Linear);
            let _s = server.meter().phase(Phase::Linear);
            for id in 0..3u32 {
                let q = Msg::Query {
                    id,
                    shares: shares.clone(),
                };
                c_tx.send(&q).await?;
                assert_eq!(s_rx.recv().await?, q);
                let a = Msg::Answer {
                    id,
                    logits: vec![-1, 0, i64::from(id)],
                };
                s_tx.send(&a).await?;
                assert_eq!(c_rx.recv().await?, a);
            }
        }
        // Let trailing ACKs settle, then compare both views.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = client.report();
        let s = server.report();
        let payload = 3 * 8 * shares.len() as u64;
        let c_on = c
            .phase(Phase::Linear)
            .ok_or("client has no online phase")?
            .counters;
        let s_on = s
            .phase(Phase::Linear)
            .ok_or("server has no online phase")?
            .counters;
        assert_eq!((c_on.messages_sent, c_on.messages_received), (3, 3));
        assert_eq!((s_on.messages_sent, s_on.messages_received), (3, 3));
        // Strict ping-pong of 3 pairs = 6 flights for both parties.
        assert_eq!(c_on.rounds, 6);
        assert_eq!(s_on.rounds, 6);
        assert!(c_on.message_bytes_sent > payload);
        // Wire bytes cover the payload plus a few percent of QUIC overhead.
        assert!(c_on.bytes_sent > payload, "{c_on:?}");
        assert!((c_on.bytes_sent as f64) < payload as f64 * 1.10, "{c_on:?}");
        // The handshake is charged to "connect".
        let c_conn = c.phase(Phase::Connect).ok_or("no connect phase")?.counters;
        assert!(c_conn.bytes_sent >= 1200 && c_conn.bytes_received > 0);
        // What one side sent, the other received (up to rare kernel drops on
        // a busy machine; the exact check against the relay is in
        // `meter_agrees_with_bytes_forwarded_by_the_relay`).
        let close = |a: u64, b: u64| (a as f64 - b as f64).abs() <= 0.03 * a.max(b) as f64;
        assert!(
            close(c.total.bytes_sent, s.total.bytes_received),
            "{c:?} {s:?}"
        );
        assert!(
            close(s.total.bytes_sent, c.total.bytes_received),
            "{c:?} {s:?}"
        );
        let json = serde_json::to_value(&c)?;
        assert_eq!(json["party"], "client");
        assert!(json["phases"][1]["bytes_sent"].as_u64().is_some());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn meter_agrees_with_bytes_forwarded_by_the_relay() -> TestResult {
    bounded(async {
        // A modest rate keeps the relay from being overrun on a busy
        // machine (kernel socket-buffer drops would be real loss, which the
        // meters rightly count on one side only).
        let link = LinkConfig {
            one_way_delay: Duration::from_millis(1),
            rate_bytes_per_sec: Some(100_000_000),
            burst_bytes: 0,
            queue_packets: 10_000,
        };
        let (mut server, mut client, relay) = local_pair_over_link(&cfg(), link).await?;
        let (mut tx, _rx) = client.frame_channel().await?;
        let (mut ack_tx, mut rx) = server.frame_channel().await?;
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..8 {
            tx.send_frame(&chunk).await?;
        }
        for _ in 0..8 {
            assert_eq!(rx.recv_frame().await?.len(), chunk.len());
        }
        ack_tx.send_frame(b"done").await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let c = client.report().total;
        let s = server.report().total;
        let r = relay.stats();
        let rel = |a: u64, b: u64| (a as f64 - b as f64).abs() / a.max(b).max(1) as f64;
        let diffs = [
            rel(c.bytes_sent, r.client_to_server.bytes_in),
            rel(s.bytes_received, r.client_to_server.bytes_out),
            rel(s.bytes_sent, r.server_to_client.bytes_in),
            rel(c.bytes_received, r.server_to_client.bytes_out),
        ];
        assert!(c.bytes_sent > 8 << 20);
        for d in diffs {
            assert!(d < 0.02, "meter vs relay differ by {d}: {c:?} {s:?} {r:?}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn wrong_certificate_is_refused_and_the_server_keeps_serving() -> TestResult {
    bounded(async {
        let dir = tempfile::tempdir()?;
        let real = Identity::generate(&[])?;
        let impostor = Identity::generate(&[])?;
        let (impostor_cert, _) = impostor.write_pem_files(dir.path())?;
        let mut server = Server::bind(localhost(), &real, cfg())?;
        let addr = server.local_addr();
        let serve = tokio::spawn(async move {
            // Only the good client gets through; the refused handshakes never
            // surface as sessions.
            let mut s = server.accept().await?;
            let (mut tx, _rx) = s.channel::<String, ()>().await?;
            tx.send(&"welcome".to_string()).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, NetError>(())
        });

        // Pin by certificate file: the impostor's certificate.
        let pin_file = ServerPin::from_cert_file(&impostor_cert)?;
        match connect(addr, &pin_file, &cfg()).await {
            Err(NetError::PinMismatch {
                expected,
                presented,
            }) => {
                assert_eq!(expected, impostor.fingerprint());
                assert_eq!(presented, real.fingerprint());
            }
            other => return Err(format!("expected PinMismatch, got {other:?}").into()),
        }
        // Pin by fingerprint: a different one.
        let mut wrong = real.fingerprint().0;
        wrong[31] ^= 1;
        let pin_fp = ServerPin::from_fingerprint_hex(&hex::encode(wrong))?;
        let err = connect(addr, &pin_fp, &cfg()).await;
        assert!(matches!(err, Err(NetError::PinMismatch { .. })), "{err:?}");

        // The right fingerprint (as `fusion keygen` prints it) works, and the
        // listener survived the refused clients.
        let pin_ok = ServerPin::from_arg(&real.fingerprint().to_string())?;
        let mut good = connect(addr, &pin_ok, &cfg()).await?;
        let (_tx, mut rx) = good.channel::<(), String>().await?;
        assert_eq!(rx.recv().await?, "welcome");
        serve.await??;
        Ok(())
    })
    .await
}

/// A client the server does not accept may see its connect succeed (TLS 1.3:
/// the server checks the client's certificate after the client's Finished)
/// but never a working session: the first exchange fails. Either way the
/// error says it was about the certificate (the server's TLS alert arrives
/// just after the client's handshake completes, so either step may fail).
async fn refused_by_the_server(attempt: fusion_net::Result<fusion_net::Session>) -> bool {
    let err = match attempt {
        Err(e) => e,
        Ok(mut s) => {
            let r = async {
                let (_tx, mut rx) = s.channel::<(), String>().await?;
                rx.recv().await
            }
            .await;
            s.close();
            match r {
                Ok(_) => return false,
                Err(e) => e,
            }
        }
    };
    let says = err.to_string();
    assert!(says.to_lowercase().contains("certificate"), "{says}");
    true
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_of_the_client_ca_and_names_them() -> TestResult {
    bounded(async {
        let server_id = Identity::generate(&[])?;
        let ca = Identity::generate_client_ca()?;
        let alice = ca.issue_client("alice")?;
        let other_ca = Identity::generate_client_ca()?;
        let mallory = other_ca.issue_client("alice")?;
        let roots = ClientRoots::from_identity(&ca)?;
        let mut server =
            Server::bind_with_client_auth(localhost(), &server_id, Some(&roots), cfg())?;
        let addr = server.local_addr();
        let serve = tokio::spawn(async move {
            // Only alice's connection becomes a session.
            let mut s = server.accept().await?;
            let who = s.peer_identity();
            let (mut tx, _rx) = s.channel::<String, ()>().await?;
            tx.send(&"welcome".to_string()).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, NetError>(who)
        });
        let pin = server_id.pin();
        // No client certificate; a certificate of another CA (same name).
        assert!(refused_by_the_server(connect(addr, &pin, &cfg()).await).await);
        assert!(refused_by_the_server(connect_as(addr, &pin, Some(&mallory), &cfg()).await).await);
        // Alice is admitted and the server knows her name.
        let mut good = connect_as(addr, &pin, Some(&alice), &cfg()).await?;
        let (_tx, mut rx) = good.channel::<(), String>().await?;
        assert_eq!(rx.recv().await?, "welcome");
        let who = serve.await??.ok_or("the server saw no client identity")?;
        assert_eq!(who.common_name.as_deref(), Some("alice"));
        assert_eq!(who.fingerprint, alice.fingerprint());
        // The client sees the pinned server's certificate.
        let server_seen = good.peer_identity().ok_or("no server identity")?;
        assert_eq!(server_seen.fingerprint, server_id.fingerprint());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn vanished_peer_gives_an_error_within_the_timeout() -> TestResult {
    bounded(async {
        // The relay is the only path between the parties; stopping it makes
        // the client vanish from the server's point of view (no packets, no
        // close), as if its machine lost power.
        // Message timeout below the QUIC idle timeout: ours fires first.
        let mut net = cfg();
        net.messages.recv_timeout = Duration::from_secs(2);
        net.idle_timeout = Duration::from_secs(6);
        let (mut server, mut client, relay) =
            local_pair_over_link(&net, LinkConfig::unlimited()).await?;
        let (mut tx, _) = client.frame_channel().await?;
        let (_, mut rx) = server.frame_channel().await?;
        tx.send_frame(&[1; 1000]).await?;
        assert_eq!(rx.recv_frame().await?.len(), 1000);
        relay.stop();
        tx.send_frame(&[2; 1000]).await.ok();
        let t = Instant::now();
        let err = rx.recv_frame().await;
        let waited = t.elapsed();
        let err = err.err().ok_or("receive from a vanished peer succeeded")?;
        eprintln!("vanished peer: {err} after {waited:?}");
        assert!(matches!(err, NetError::Timeout { .. }), "{err:?}");
        assert!(waited < Duration::from_secs(3), "waited {waited:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn closed_peer_mid_transfer_gives_connection_lost() -> TestResult {
    bounded(async {
        let (mut server, mut client) = local_pair(&cfg()).await?;
        let (mut tx, _) = client.frame_channel().await?;
        let (_, mut rx) = server.frame_channel().await?;
        let big = vec![3u8; 4 << 20];
        tx.send_frame(&big[..1 << 20]).await?;
        assert_eq!(rx.recv_frame().await?.len(), 1 << 20);
        // Start a 4 MiB frame, then close the connection under it.
        let sender = tokio::spawn(async move {
            let r = tx.send_frame(&big).await;
            client.close();
            r
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let t = Instant::now();
        let mut outcome = rx.recv_frame().await;
        // The frame may have gone through before the close; the next one cannot.
        if outcome.is_ok() {
            outcome = rx.recv_frame().await;
        }
        let err = outcome.err().ok_or("receive after close succeeded")?;
        eprintln!("closed peer: {err} after {:?}", t.elapsed());
        assert!(
            matches!(
                err,
                NetError::ConnectionLost { .. } | NetError::Malformed(_) | NetError::PeerClosed
            ),
            "{err:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let _ = sender.await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn finishing_both_sessions_closes_the_connection_promptly() -> TestResult {
    bounded(async {
        let (mut server, mut client) = local_pair(&cfg()).await?;
        let (mut tx, _) = client.channel::<u32, ()>().await?;
        let (_, mut rx) = server.channel::<(), u32>().await?;
        tx.send(&5).await?;
        assert_eq!(rx.recv().await?, 5);
        // A sub-connection taken before the end stops working after it.
        let mut leftover = client.sub_connection();
        let t = Instant::now();
        let (a, b) = tokio::join!(server.finish(), client.finish());
        a?;
        b?;
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        let after = async {
            let (mut s, _) = leftover.byte_stream().await?;
            tokio::io::AsyncWriteExt::write_all(&mut s, b"late").await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }
        .await;
        assert!(after.is_err(), "stream on a finished connection worked");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn dropped_session_delivers_its_data_then_ends_the_connection() -> TestResult {
    bounded(async {
        // Long message and idle timeouts: only the goodbye logic can end the
        // client's wait quickly.
        let mut net = cfg();
        net.messages = net.messages.with_timeout(Duration::from_secs(20));
        net.idle_timeout = Duration::from_secs(20);
        net.keep_alive = Some(Duration::from_secs(5));
        net.close_linger = Duration::from_secs(1);
        let (mut server, mut client) = local_pair(&net).await?;
        let (mut tx, _) = server.frame_channel().await?;
        let (_, mut rx) = client.frame_channel().await?;
        let big = vec![1u8; 4 << 20];
        tx.send_frame(&big).await?;
        drop(tx);
        drop(server);
        // Everything sent before the drop arrives...
        assert_eq!(rx.recv_frame().await?, big);
        // ...then the connection ends within the linger time.
        let (_, mut rx2) = client.frame_channel().await?;
        let t = Instant::now();
        let err = rx2.recv_frame().await.err().ok_or("receive succeeded")?;
        assert!(matches!(err, NetError::ConnectionLost { .. }), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        Ok(())
    })
    .await
}

/// Child-process half of `killed_client_process_...`: connects and streams
/// frames until killed. Does nothing unless started by that test.
#[tokio::test]
#[ignore = "helper: runs only as a child process of another test"]
async fn child_client_streams_until_killed() -> TestResult {
    let (Ok(addr), Ok(pin)) = (
        std::env::var("FUSION_NET_CHILD_ADDR"),
        std::env::var("FUSION_NET_CHILD_PIN"),
    ) else {
        return Ok(());
    };
    let mut s = connect(
        addr.parse()?,
        &ServerPin::from_fingerprint_hex(&pin)?,
        &cfg(),
    )
    .await?;
    let (mut tx, _) = s.frame_channel().await?;
    let chunk = vec![9u8; 64 << 10];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        tx.send_frame(&chunk).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::test]
async fn killed_client_process_gives_an_error_and_the_server_keeps_serving() -> TestResult {
    bounded(async {
        let identity = Identity::generate(&[])?;
        // QUIC idle timeout below the message timeout: the transport notices
        // the dead peer first.
        let mut net = cfg();
        net.idle_timeout = Duration::from_secs(2);
        net.keep_alive = Some(Duration::from_millis(500));
        net.messages.recv_timeout = Duration::from_secs(20);
        let mut server = Server::bind(localhost(), &identity, net.clone())?;
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "child_client_streams_until_killed",
                "--ignored",
                "--quiet",
            ])
            .env("FUSION_NET_CHILD_ADDR", server.local_addr().to_string())
            .env("FUSION_NET_CHILD_PIN", identity.fingerprint().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let result = async {
            let mut session = server.accept().await?;
            let (_, mut rx) = session.frame_channel().await?;
            for _ in 0..5 {
                assert_eq!(rx.recv_frame().await?.len(), 64 << 10);
            }
            child.kill()?;
            let t = Instant::now();
            let err = loop {
                // Frames already in flight may still arrive.
                match rx.recv_frame().await {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            eprintln!("killed peer: {err} after {:?}", t.elapsed());
            assert!(matches!(err, NetError::IdleTimeout { .. }), "{err:?}");
            assert!(err.is_timeout());
            assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }
        .await;
        let _ = child.kill();
        let _ = child.wait();
        result?;
        // The listener still serves the next client.
        let addr = server.local_addr();
        let pin = identity.pin();
        let (s, c) = tokio::join!(server.accept(), connect(addr, &pin, &net));
        let (mut s, mut c) = (s?, c?);
        let (mut tx, _) = c.channel::<u8, ()>().await?;
        let (_, mut rx) = s.channel::<(), u8>().await?;
        tx.send(&42).await?;
        assert_eq!(rx.recv().await?, 42);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn oversized_and_malformed_frames_from_the_peer_are_rejected() -> TestResult {
    bounded(async {
        let mut net = cfg();
        net.messages.max_frame_bytes = 1 << 16;
        let (mut server, mut client) = local_pair(&net).await?;

        // 1) A header announcing 4 GiB on a raw stream.
        let (mut raw, _) = client.connection().byte_stream().await?;
        let (_, frames) = server.frame_channel().await?;
        let mut rx: FrameReceiver = frames;
        raw.write_all(&u32::MAX.to_be_bytes()).await?;
        let r = rx.recv_frame().await;
        assert!(
            matches!(r, Err(NetError::FrameTooLarge { len, max }) if len == u64::from(u32::MAX) && max == 1 << 16),
            "{r:?}"
        );

        // 2) Just over the limit.
        let (mut raw, _) = client.connection().byte_stream().await?;
        let (_, mut rx) = server.frame_channel().await?;
        raw.write_all(&((1u32 << 16) + 1).to_be_bytes()).await?;
        assert!(matches!(
            rx.recv_frame().await,
            Err(NetError::FrameTooLarge { .. })
        ));

        // 3) A frame cut short by the end of the stream.
        let (mut raw, _) = client.connection().byte_stream().await?;
        let (_, mut rx) = server.frame_channel().await?;
        raw.write_all(&100u32.to_be_bytes()).await?;
        raw.write_all(&[0u8; 10]).await?;
        raw.finish()?;
        let r = rx.recv_frame().await;
        assert!(matches!(r, Err(NetError::Malformed(_))), "{r:?}");

        // 4) A well-framed payload that does not decode as the expected type.
        let (mut raw, _) = client.connection().byte_stream().await?;
        let (_, frames) = server.frame_channel().await?;
        let mut typed: MsgReceiver<Msg> = MsgReceiver::new(frames);
        raw.write_all(&5u32.to_be_bytes()).await?;
        raw.write_all(&[9, 0, 0, 0, 1]).await?; // variant 9 does not exist
        let r = typed.recv().await;
        assert!(matches!(r, Err(NetError::Malformed(_))), "{r:?}");

        // 5) Sending more than the limit is refused locally.
        let (mut tx, _) = client.frame_channel().await?;
        let r = tx.send_frame(&vec![0u8; (1 << 16) + 1]).await;
        assert!(matches!(r, Err(NetError::FrameTooLarge { .. })), "{r:?}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cryprot_ot_extension_runs_over_fusion_net_sessions() -> TestResult {
    bounded(async {
        const COUNT: usize = 4096;
        let (mut server, mut client) = local_pair(&cfg()).await?;
        let _sp = server.meter().phase(Phase::NonLinear);
        let _cp = client.meter().phase(Phase::NonLinear);
        let mut sender = SemiHonestOtExtensionSender::new_with_rng(
            server.sub_connection(),
            StdRng::seed_from_u64(1),
        );
        let mut choice_rng = StdRng::seed_from_u64(2);
        let choices = random_choices(COUNT, &mut choice_rng);
        let mut receiver = SemiHonestOtExtensionReceiver::new_with_rng(
            client.sub_connection(),
            StdRng::seed_from_u64(3),
        );
        let (sent, received) = tokio::try_join!(sender.send(COUNT), receiver.receive(&choices))?;
        assert_eq!(sent.len(), COUNT);
        for ((r, s), c) in received.iter().zip(&sent).zip(&choices) {
            assert_eq!(*r, s[usize::from(c.unwrap_u8())]);
            assert_ne!(s[0], s[1]);
        }
        // A second batch on the same sub-connections keeps working.
        let more = random_choices(COUNT, &mut choice_rng);
        let (sent2, received2) = tokio::try_join!(sender.send(COUNT), receiver.receive(&more))?;
        for ((r, s), c) in received2.iter().zip(&sent2).zip(&more) {
            assert_eq!(*r, s[usize::from(c.unwrap_u8())]);
        }
        // The OT traffic is metered in the "ot" phase (base OTs plus two
        // extension batches: at least 2 x 4096 x 16 bytes of correction bits).
        let ot = client.report();
        let ot = ot.phase(Phase::NonLinear).ok_or("no ot phase")?.counters;
        assert!(ot.bytes_sent > 2 * COUNT as u64 * 16, "{ot:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn relay_emulates_delay_on_a_quic_session() -> TestResult {
    // Not a timing assertion on the relay's precision: only that a 2 x 25 ms
    // delay line cannot be crossed faster than 50 ms.
    bounded(async {
        let link = LinkConfig {
            one_way_delay: Duration::from_millis(25),
            ..LinkConfig::unlimited()
        };
        let (mut server, mut client, relay) = local_pair_over_link(&cfg(), link).await?;
        let (mut c_tx, mut c_rx) = client.channel::<u32, u32>().await?;
        let (mut s_tx, mut s_rx) = server.channel::<u32, u32>().await?;
        // Warm up: stream set-up.
        c_tx.send(&0).await?;
        s_rx.recv().await?;
        s_tx.send(&0).await?;
        c_rx.recv().await?;
        let t = Instant::now();
        c_tx.send(&1).await?;
        let v = s_rx.recv().await?;
        s_tx.send(&(v + 1)).await?;
        assert_eq!(c_rx.recv().await?, 2);
        assert!(
            t.elapsed() >= Duration::from_millis(50),
            "{:?}",
            t.elapsed()
        );
        assert!(relay.stats().client_to_server.packets_out > 0);
        Ok(())
    })
    .await
}

#[test]
fn relay_rejects_invalid_links() {
    let bad = LinkConfig {
        rate_bytes_per_sec: Some(0),
        ..LinkConfig::wan()
    };
    assert!(Relay::start(localhost(), localhost(), bad).is_err());
    let bad = LinkConfig {
        queue_packets: 0,
        ..LinkConfig::wan()
    };
    assert!(matches!(
        Relay::start(localhost(), localhost(), bad),
        Err(NetError::InvalidParameter(_))
    ));
}
