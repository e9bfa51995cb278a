//! Measure the link emulator and print JSON.
//!
//! ```text
//! cargo run --release -p fusion-net --example link_measure -- [lan|wan|none] [--mtu 9000] [--quic-mib 64] [--udp-bytes 1472]
//! ```
//!
//! Prints one JSON object per preset: the settings, achieved UDP RTT
//! (sequential pings), UDP throughput (paced flood), QUIC goodput of a
//! fusion-net session over the relay, and the meter-vs-relay byte agreement.

use std::time::Duration;

use fusion_net::{
    LinkConfig, NetConfig,
    measure::{MeasureOptions, measure_link},
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut presets = Vec::new();
    let mut opts = MeasureOptions {
        udp_duration: Duration::from_secs(3),
        ..MeasureOptions::default()
    };
    let mut net = NetConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mtu" => net.max_mtu = args.next().ok_or("--mtu needs a value")?.parse()?,
            "--quic-mib" => {
                opts.quic_bytes = args
                    .next()
                    .ok_or("--quic-mib needs a value")?
                    .parse::<usize>()?
                    << 20
            }
            "--udp-bytes" => {
                opts.udp_datagram = args.next().ok_or("--udp-bytes needs a value")?.parse()?
            }
            p => presets.push(p.to_string()),
        }
    }
    if presets.is_empty() {
        presets = vec!["wan".into(), "lan".into()];
    }
    opts.net = net;
    for p in presets {
        let link = LinkConfig::preset(&p)?;
        let m = measure_link(link, &opts).await?;
        let mut v = serde_json::to_value(&m)?;
        v["preset"] = p.clone().into();
        v["max_mtu"] = opts.net.max_mtu.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
