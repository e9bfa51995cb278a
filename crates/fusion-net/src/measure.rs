//! Measuring an emulated link: achieved RTT and throughput against the
//! settings, and the meter's agreement with the bytes the relay forwarded.
//!
//! Used by the `link_measure` example (prints JSON) and by the
//! ignored-by-default timing tests. Nothing here asserts timing.
//!
//! * **UDP RTT**: 64-byte pings through the relay to an echo socket, one at a
//!   time, a few ms apart (so no queueing).
//! * **UDP throughput**: a sender offers datagrams of a fixed size for a fixed
//!   time (paced at 1.25x the link rate, or as fast as it can for an unlimited
//!   link); the receiver's byte count between its first and last arrival gives
//!   the achieved rate. This is the link emulator's own capacity.
//! * **QUIC goodput**: a [`crate::local_pair_over_link`] session pair; the
//!   client sends `quic_bytes` in 1 MiB frames, the server answers with a
//!   one-byte frame after the last one. Goodput = payload / elapsed time
//!   (includes one RTT and congestion-control ramp-up).
//! * **Meter vs wire**: after the transfer, each party's metered datagram
//!   bytes are compared with what the relay received from / forwarded to it.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    config::NetConfig,
    conn::local_pair_over_link,
    error::{NetError, Result},
    relay::{LinkConfig, Relay, RelayStats},
};

/// What to measure and how much.
#[derive(Clone, Debug)]
pub struct MeasureOptions {
    /// Number of RTT pings.
    pub rtt_samples: usize,
    /// UDP flood duration.
    pub udp_duration: Duration,
    /// UDP payload size of the flood datagrams.
    pub udp_datagram: usize,
    /// Bytes moved over QUIC (0 skips the QUIC part).
    pub quic_bytes: usize,
    /// Connection parameters for the QUIC part.
    pub net: NetConfig,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions {
            rtt_samples: 200,
            udp_duration: Duration::from_secs(2),
            udp_datagram: 1472,
            quic_bytes: 64 << 20,
            net: NetConfig::default(),
        }
    }
}

/// Summary statistics of RTT samples, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RttSummary {
    /// Number of answered pings.
    pub samples: usize,
    /// Pings without an answer within 1 s.
    pub lost: usize,
    /// Minimum.
    pub min_ms: f64,
    /// Median.
    pub median_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// Result of the UDP flood.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UdpThroughput {
    /// Datagram payload size.
    pub datagram_bytes: usize,
    /// Offered load, MB/s (10^6 bytes).
    pub offered_mb_s: f64,
    /// Achieved receive rate, MB/s.
    pub achieved_mb_s: f64,
    /// Fraction of sent datagrams that did not arrive.
    pub loss: f64,
    /// Relay counters for the flood.
    pub relay: RelayStats,
}

/// Result of the QUIC transfer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuicTransfer {
    /// Payload bytes moved client -> server.
    pub payload_bytes: u64,
    /// Seconds from first send to the server's acknowledgement.
    pub seconds: f64,
    /// Payload MB/s.
    pub goodput_mb_s: f64,
    /// Client's metered UDP bytes sent.
    pub client_meter_sent: u64,
    /// Client's metered UDP bytes received.
    pub client_meter_received: u64,
    /// Server's metered UDP bytes sent.
    pub server_meter_sent: u64,
    /// Server's metered UDP bytes received.
    pub server_meter_received: u64,
    /// Relay counters for the session.
    pub relay: RelayStats,
    /// Relative differences between a meter counter and the matching relay
    /// counter, in this order: client sent vs relay c2s in, server received
    /// vs relay c2s out, server sent vs relay s2c in, client received vs
    /// relay s2c out. A sender-side difference also contains datagrams the
    /// kernel dropped at the relay's full socket buffer (real loss, not a
    /// metering error); receiver-side ones contain drops at the receiver's.
    pub meter_rel_diff: [f64; 4],
    /// Largest of `meter_rel_diff`.
    pub meter_max_rel_diff: f64,
}

/// Everything measured for one link setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkMeasurement {
    /// The emulated link.
    pub link: LinkConfig,
    /// Setting: RTT in ms.
    pub rtt_setting_ms: f64,
    /// Setting: rate in MB/s (`None` = unlimited).
    pub rate_setting_mb_s: Option<f64>,
    /// Measured RTT.
    pub udp_rtt: RttSummary,
    /// Measured UDP throughput.
    pub udp: UdpThroughput,
    /// Measured QUIC transfer, if requested.
    pub quic: Option<QuicTransfer>,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |e| NetError::io(what, e)
}

fn localhost() -> SocketAddr {
    (std::net::Ipv4Addr::LOCALHOST, 0).into()
}

/// Run all measurements for `link`.
pub async fn measure_link(link: LinkConfig, opts: &MeasureOptions) -> Result<LinkMeasurement> {
    let o = opts.clone();
    let (udp_rtt, udp) = tokio::task::spawn_blocking(move || -> Result<_> {
        Ok((measure_rtt(link, o.rtt_samples)?, measure_udp(link, &o)?))
    })
    .await
    .map_err(|e| NetError::Config(format!("measurement task failed: {e}")))??;
    let quic = if opts.quic_bytes > 0 {
        Some(measure_quic(link, opts).await?)
    } else {
        None
    };
    Ok(LinkMeasurement {
        link,
        rtt_setting_ms: link.rtt().as_secs_f64() * 1e3,
        rate_setting_mb_s: link.rate_bytes_per_sec.map(|r| r as f64 / 1e6),
        udp_rtt,
        udp,
        quic,
    })
}

/// Sequential pings through a relay with `link`.
pub fn measure_rtt(link: LinkConfig, samples: usize) -> Result<RttSummary> {
    let echo = UdpSocket::bind(localhost()).map_err(io("binding echo socket"))?;
    echo.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(io("echo timeout"))?;
    let echo_addr = echo.local_addr().map_err(io("echo address"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echo_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..n], from);
                }
            }
        })
    };
    let relay = Relay::start(localhost(), echo_addr, link)?;
    let client = UdpSocket::bind(localhost()).map_err(io("binding ping socket"))?;
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(io("ping timeout"))?;
    let mut rtts = Vec::with_capacity(samples);
    let mut lost = 0;
    let mut buf = [0u8; 2048];
    for i in 0..samples as u64 {
        let mut ping = [0u8; 64];
        ping[..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        client
            .send_to(&ping, relay.local_addr())
            .map_err(io("sending ping"))?;
        loop {
            match client.recv_from(&mut buf) {
                Ok((n, _)) if n >= 8 && buf[..8] == i.to_le_bytes() => {
                    rtts.push(t.elapsed().as_secs_f64() * 1e3);
                    break;
                }
                Ok(_) => continue,
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    drop(relay);
    let _ = echo_thread.join();
    rtts.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if rtts.is_empty() {
            f64::NAN
        } else {
            rtts[((rtts.len() - 1) as f64 * p).round() as usize]
        }
    };
    Ok(RttSummary {
        samples: rtts.len(),
        lost,
        min_ms: q(0.0),
        median_ms: q(0.5),
        p90_ms: q(0.9),
        max_ms: q(1.0),
    })
}

/// UDP flood through a relay with `link`.
pub fn measure_udp(link: LinkConfig, opts: &MeasureOptions) -> Result<UdpThroughput> {
    let size = opts.udp_datagram.clamp(16, 65_507);
    let sink = UdpSocket::bind(localhost()).map_err(io("binding sink"))?;
    {
        let s = socket2::SockRef::from(&sink);
        let _ = s.set_recv_buffer_size(4 << 20);
    }
    sink.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(io("sink timeout"))?;
    let sink_addr = sink.local_addr().map_err(io("sink address"))?;
    let relay = Relay::start(localhost(), sink_addr, link)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sink_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let mut bytes = 0u64;
            let mut packets = 0u64;
            let mut first: Option<Instant> = None;
            let mut last = Instant::now();
            let mut first_len = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = sink.recv(&mut buf) {
                    let now = Instant::now();
                    if first.is_none() {
                        first = Some(now);
                        first_len = n as u64;
                    }
                    last = now;
                    bytes += n as u64;
                    packets += 1;
                }
            }
            (bytes, packets, first, last, first_len)
        })
    };
    let sender = UdpSocket::bind(localhost()).map_err(io("binding sender"))?;
    {
        let s = socket2::SockRef::from(&sender);
        let _ = s.set_send_buffer_size(4 << 20);
    }
    sender
        .connect(relay.local_addr())
        .map_err(io("connecting sender"))?;
    let payload = vec![0x5au8; size];
    // Pace at 1.25x the link rate in 1 ms slices, or flood if unlimited.
    let per_ms = link
        .rate_bytes_per_sec
        .map(|r| ((r as f64 * 1.25 / 1000.0) / size as f64).ceil() as u64);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut slice = 0u64;
    while start.elapsed() < opts.udp_duration {
        match per_ms {
            Some(k) => {
                for _ in 0..k {
                    if sender.send(&payload).is_ok() {
                        sent += 1;
                    }
                }
                slice += 1;
                let next = start + Duration::from_millis(slice);
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            None => {
                for _ in 0..64 {
                    if sender.send(&payload).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    // Let the queue and the delay line drain.
    std::thread::sleep(link.one_way_delay + Duration::from_millis(300));
    let relay_stats = relay.stats();
    stop.store(true, Ordering::Relaxed);
    let (bytes, packets, first, last, first_len) = sink_thread
        .join()
        .map_err(|_| NetError::Config("sink thread panicked".into()))?;
    drop(relay);
    let achieved = match first {
        Some(f) if last > f => (bytes - first_len) as f64 / last.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    Ok(UdpThroughput {
        datagram_bytes: size,
        offered_mb_s: sent as f64 * size as f64 / send_secs / 1e6,
        achieved_mb_s: achieved / 1e6,
        loss: if sent == 0 {
            0.0
        } else {
            1.0 - packets as f64 / sent as f64
        },
        relay: relay_stats,
    })
}

/// QUIC bulk transfer through a relay with `link`, with meter comparison.
pub async fn measure_quic(link: LinkConfig, opts: &MeasureOptions) -> Result<QuicTransfer> {
    const CHUNK: usize = 1 << 20;
    let (mut server, mut client, relay) = local_pair_over_link(&opts.net, link).await?;
    let total = opts.quic_bytes;
    let recv_task = tokio::spawn(async move {
        let (mut tx, mut rx) = server.frame_channel().await?;
        let mut got = 0usize;
        while got < total {
            got += rx.recv_frame().await?.len();
        }
        tx.send_frame(&[1]).await?;
        Ok::<_, NetError>(server)
    });
    let (mut tx, mut rx) = client.frame_channel().await?;
    let chunk = vec![0xa5u8; CHUNK];
    let start = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK);
        tx.send_frame(&chunk[..n]).await?;
        left -= n;
    }
    let ack = rx.recv_frame().await?;
    let seconds = start.elapsed().as_secs_f64();
    if ack != [1] {
        return Err(NetError::Malformed("unexpected acknowledgement".into()));
    }
    let server = recv_task
        .await
        .map_err(|e| NetError::Config(format!("server task failed: {e}")))??;
    // Let the last ACKs cross the link before comparing counters.
    tokio::time::sleep(link.rtt() * 3 + Duration::from_millis(200)).await;
    let c = client.report().total;
    let s = server.report().total;
    let r = relay.stats();
    let rel = |a: u64, b: u64| {
        if a.max(b) == 0 {
            0.0
        } else {
            (a as f64 - b as f64).abs() / a.max(b) as f64
        }
    };
    let diff = [
        rel(c.bytes_sent, r.client_to_server.bytes_in),
        rel(s.bytes_received, r.client_to_server.bytes_out),
        rel(s.bytes_sent, r.server_to_client.bytes_in),
        rel(c.bytes_received, r.server_to_client.bytes_out),
    ];
    Ok(QuicTransfer {
        payload_bytes: total as u64,
        seconds,
        goodput_mb_s: total as f64 / seconds / 1e6,
        client_meter_sent: c.bytes_sent,
        client_meter_received: c.bytes_received,
        server_meter_sent: s.bytes_sent,
        server_meter_received: s.bytes_received,
        relay: r,
        meter_rel_diff: diff,
        meter_max_rel_diff: diff.into_iter().fold(0.0, f64::max),
    })
}
