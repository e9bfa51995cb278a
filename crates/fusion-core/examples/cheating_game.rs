//! Prints the exact slack-aware cheating probability `P(k)` next to a Monte
//! Carlo estimate of the cheating game, for small batches.
//!
//! `cargo run --release -p fusion-core --example cheating_game [games]`

use fusion_core::security::{Layout, simulate, slack_bound, slack_probability};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

fn main() -> Result<(), fusion_core::Error> {
    let games: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut rng = ChaCha20Rng::seed_from_u64(2023);
    println!("games per (s, k): {games}");
    println!(
        "{:>12} {:>2} {:>2} {:>10} {:>10} {:>8}",
        "R,B,T", "s", "k", "exact", "simulated", "sigmas"
    );
    let mut worst: f64 = 0.0;
    for (r, b, t) in [(2u64, 2u64, 3u64), (3, 2, 4), (2, 3, 5)] {
        let layout = Layout::new(r, b, t)?;
        for s in 0..=3u64.min(t) {
            for k in 1..=layout.total() {
                let exact = slack_probability(layout, s, k);
                if exact.is_zero() {
                    continue;
                }
                let sim = simulate(layout, s, k, games, &mut rng)?;
                let dev = sim.deviation_in_sigmas(&exact);
                worst = worst.max(dev);
                println!(
                    "{:>12} {s:>2} {k:>2} {:>10.6} {:>10.6} {dev:>8.2}",
                    format!("{r},{b},{t}"),
                    exact.to_f64(),
                    sim.rate()
                );
            }
            let w = slack_bound(layout, s);
            println!(
                "{:>12} {s:>2}  max_k P(k) = {:.6} at k = {}",
                format!("{r},{b},{t}"),
                w.probability.to_f64(),
                w.corrupted
            );
        }
    }
    println!("largest deviation: {worst:.2} sigma");
    Ok(())
}
