//! `fusion netem`: a user-space link emulator between client and server (this
//! kernel has no `netem` qdisc). Clients connect to `--listen`; datagrams are
//! forwarded to `--forward` and back through an emulated link with one-way
//! delay, token-bucket rate limit and drop-tail queue (`fusion_net::relay`).
//!
//! Presets from the paper: `lan` (0.3 ms RTT, 382 MB/s) and `wan` (40 ms RTT,
//! 44 MB/s); explicit options override the preset's values. Runs until Ctrl-C
//! (or `--duration`), printing counters to stderr every `--stats-every`
//! seconds and a final JSON summary to stdout.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use fusion_net::{LinkConfig, Relay};

/// Arguments of `fusion netem`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address clients send to, e.g. 127.0.0.1:4434.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Address of the server, e.g. 127.0.0.1:4433.
    #[arg(long, value_name = "ADDR")]
    forward: SocketAddr,
    /// Link preset: lan, wan or none (no delay, no limit).
    #[arg(long, value_name = "PRESET", default_value = "none")]
    preset: String,
    /// One-way delay in milliseconds (RTT is twice this).
    #[arg(long, value_name = "MS")]
    delay_ms: Option<f64>,
    /// Rate limit in megabits per second (10^6 bit/s, as tc uses); 44 MB/s = 352 Mbit/s.
    #[arg(long, value_name = "MBIT/S", conflicts_with = "rate_mbytes")]
    rate_mbps: Option<f64>,
    /// Rate limit in megabytes per second (10^6 bytes/s, as the paper states them).
    #[arg(long, value_name = "MB/S")]
    rate_mbytes: Option<f64>,
    /// Remove the rate limit of the preset.
    #[arg(long, conflicts_with_all = ["rate_mbps", "rate_mbytes"])]
    unlimited_rate: bool,
    /// Queue limit in datagrams waiting for transmission (drop-tail).
    #[arg(long, value_name = "PACKETS")]
    queue: Option<usize>,
    /// Token-bucket depth in bytes (0 = one datagram, i.e. pure line rate).
    #[arg(long, value_name = "BYTES")]
    burst_bytes: Option<u64>,
    /// Seconds between counter lines on stderr (0 = none).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    stats_every: f64,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
}

fn secs(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{name} must be a non-negative number"))
}

fn link_from(args: &Args) -> Result<LinkConfig, String> {
    let mut link = LinkConfig::preset(&args.preset).map_err(|e| e.to_string())?;
    if let Some(ms) = args.delay_ms {
        link.one_way_delay = secs("delay-ms", ms / 1e3)?;
    }
    let rate = match (args.rate_mbps, args.rate_mbytes) {
        (Some(mbit), _) => Some(mbit * 1e6 / 8.0),
        (_, Some(mbyte)) => Some(mbyte * 1e6),
        _ => None,
    };
    if let Some(r) = rate {
        if !(r.is_finite() && r >= 1.0) {
            return Err("rate must be positive".into());
        }
        link.rate_bytes_per_sec = Some(r.round() as u64);
    }
    if args.unlimited_rate {
        link.rate_bytes_per_sec = None;
    }
    if let Some(q) = args.queue {
        link.queue_packets = q;
    }
    if let Some(b) = args.burst_bytes {
        link.burst_bytes = b;
    }
    link.validate().map_err(|e| e.to_string())?;
    Ok(link)
}

/// Run `fusion netem`.
pub fn run(args: Args) -> ExitCode {
    let link = match link_from(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let every = match secs("stats-every", args.stats_every) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let duration = match args.duration.map(|d| secs("duration", d)).transpose() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let relay = match Relay::start(args.listen, args.forward, link) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "netem: {} -> {} | one-way delay {:.3} ms (RTT {:.3} ms), rate {}, queue {} datagrams",
        relay.local_addr(),
        args.forward,
        link.one_way_delay.as_secs_f64() * 1e3,
        link.rtt().as_secs_f64() * 1e3,
        link.rate_bytes_per_sec
            .map_or("unlimited".to_string(), |r| format!(
                "{:.1} MB/s",
                r as f64 / 1e6
            )),
        link.queue_packets,
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        let stop = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(if every.is_zero() {
            Duration::from_secs(3600)
        } else {
            every
        });
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {
                    if !every.is_zero() {
                        let s = relay.stats();
                        eprintln!(
                            "c->s {} pkts {} B ({} dropped) | s->c {} pkts {} B ({} dropped)",
                            s.client_to_server.packets_out, s.client_to_server.bytes_out,
                            s.client_to_server.packets_dropped,
                            s.server_to_client.packets_out, s.server_to_client.bytes_out,
                            s.server_to_client.packets_dropped,
                        );
                    }
                }
            }
        }
    });
    let summary = serde_json::json!({ "link": link, "stats": relay.stats() });
    relay.stop();
    println!("{summary}");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Result<LinkConfig, String> {
        let mut argv = vec!["x", "--listen", "127.0.0.1:1", "--forward", "127.0.0.1:2"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        link_from(&cli.args)
    }

    #[test]
    fn presets_and_overrides() -> Result<(), String> {
        assert_eq!(parse(&["--preset", "wan"])?, LinkConfig::wan());
        let l = parse(&["--preset", "wan", "--delay-ms", "5", "--rate-mbps", "80"])?;
        assert_eq!(l.one_way_delay, Duration::from_millis(5));
        assert_eq!(l.rate_bytes_per_sec, Some(10_000_000));
        let l = parse(&["--rate-mbytes", "44", "--queue", "50"])?;
        assert_eq!(l.rate_bytes_per_sec, Some(44_000_000));
        assert_eq!(l.queue_packets, 50);
        assert!(parse(&["--preset", "mars"]).is_err());
        assert!(parse(&["--queue", "0"]).is_err());
        assert!(parse(&["--delay-ms", "-1"]).is_err());
        assert!(parse(&["--rate-mbps", "1", "--rate-mbytes", "1"]).is_err());
        Ok(())
    }
}
