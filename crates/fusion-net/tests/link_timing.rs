//! Timing checks of the link emulator: achieved RTT and rate within 20% of
//! the setting. Ignored by default (timing on a shared 2-core machine is
//! noisy); run with
//! `cargo test --release -p fusion-net --test link_timing -- --ignored --nocapture --test-threads 1`.

use std::time::Duration;

use fusion_net::{
    LinkConfig, NetConfig,
    measure::{MeasureOptions, measure_quic, measure_rtt, measure_udp},
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn within(measured: f64, setting: f64, tol: f64) -> bool {
    (measured - setting).abs() <= tol * setting
}

fn opts() -> MeasureOptions {
    MeasureOptions {
        rtt_samples: 100,
        udp_duration: Duration::from_secs(2),
        udp_datagram: 1472,
        quic_bytes: 32 << 20,
        net: NetConfig::default(),
    }
}

#[test]
#[ignore = "timing: run explicitly"]
fn wan_relay_rtt_and_rate_within_20_percent() -> TestResult {
    let link = LinkConfig::wan();
    let rtt = measure_rtt(link, 100)?;
    println!("wan rtt: {rtt:?}");
    assert!(within(rtt.median_ms, 40.0, 0.2), "{rtt:?}");
    let udp = measure_udp(link, &opts())?;
    println!("wan udp: {udp:?}");
    assert!(within(udp.achieved_mb_s, 44.0, 0.2), "{udp:?}");
    Ok(())
}

#[test]
#[ignore = "timing: run explicitly"]
fn lan_relay_rtt_and_rate_within_20_percent() -> TestResult {
    // Expected to FAIL on small machines for the rate: see the crate README
    // figures. RTT is checked against the 0.3 ms setting.
    let link = LinkConfig::lan();
    let rtt = measure_rtt(link, 200)?;
    println!("lan rtt: {rtt:?}");
    let mut o = opts();
    o.udp_datagram = 8972;
    let udp = measure_udp(link, &o)?;
    println!("lan udp: {udp:?}");
    assert!(within(rtt.median_ms, 0.3, 0.2), "{rtt:?}");
    assert!(within(udp.achieved_mb_s, 382.0, 0.2), "{udp:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing: run explicitly"]
async fn wan_quic_goodput_close_to_the_rate() -> TestResult {
    let q = measure_quic(LinkConfig::wan(), &opts()).await?;
    println!("wan quic: {}", serde_json::to_string_pretty(&q)?);
    assert!(q.meter_max_rel_diff < 0.02, "{q:?}");
    // Goodput includes slow start and one RTT; QUIC overhead is ~3%.
    assert!(q.goodput_mb_s > 0.6 * 44.0, "{q:?}");
    Ok(())
}
