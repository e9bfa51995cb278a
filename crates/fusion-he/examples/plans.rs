//! Prints the planner's choice, message sizes and noise budget for the benchmark layers.
//!
//! `cargo run --release -p fusion-he --example plans`

use fusion_core::ring::Ring;
use fusion_he::{Conv2dShape, FcShape, LinearPlan, Padding, PlanOptions, Preset};

fn main() -> Result<(), fusion_he::HeError> {
    let opts = PlanOptions::default();
    for (preset, l) in [(Preset::N4096, 37u32), (Preset::N8192, 64)] {
        let Ok(ring) = Ring::new(l) else { continue };
        let params = preset.params(ring)?;
        println!("{}", params.security_note());
        let layers = [
            (
                "FC 784->128, batch 128",
                LinearPlan::fc(&params, FcShape::new(128, 784, 128), &opts)?,
            ),
            (
                "FC 784->128, batch 1",
                LinearPlan::fc(&params, FcShape::new(1, 784, 128), &opts)?,
            ),
            (
                "MNIST conv1 28x28x1 5x5 16 VALID, batch 1",
                LinearPlan::conv2d(
                    &params,
                    Conv2dShape::new(1, 1, 28, 28, 16, 5, 1, Padding::Valid),
                    &opts,
                )?,
            ),
            (
                "MNIST conv1 28x28x1 5x5 16 VALID, batch 128",
                LinearPlan::conv2d(
                    &params,
                    Conv2dShape::new(128, 1, 28, 28, 16, 5, 1, Padding::Valid),
                    &opts,
                )?,
            ),
            (
                "LeNet conv2 14x14x32 5x5 64 SAME, batch 1",
                LinearPlan::conv2d(
                    &params,
                    Conv2dShape::new(1, 32, 14, 14, 64, 5, 1, Padding::Same),
                    &opts,
                )?,
            ),
            (
                "LeNet conv2 14x14x32 5x5 64 SAME, batch 128",
                LinearPlan::conv2d(
                    &params,
                    Conv2dShape::new(128, 32, 14, 14, 64, 5, 1, Padding::Same),
                    &opts,
                )?,
            ),
        ];
        for (name, plan) in layers {
            let s = plan.stats();
            let nz = plan.noise();
            println!(
                "  {name}: {:?}\n    cts in {} out {}, products {}, kernel polys {} (cached {}), up {} B, down {} B \
                 (uncompressed {} B, saved {:.1}%), est {:.1} ms\n    noise fan-in {}, flood 2^{}, layer noise 2^{:.1}, \
                 threshold 2^{:.1}, room {:.1} bits, margin {:.2} bits, flooding security at 2^15 weights {:.1} bits",
                plan.blocking(),
                s.input_cts,
                s.output_cts,
                s.products,
                s.weight_polys,
                s.weights_cached,
                s.bytes_up,
                s.bytes_down,
                s.bytes_down_uncompressed,
                100.0 * (1.0 - s.bytes_down as f64 / s.bytes_down_uncompressed as f64),
                s.est_seconds * 1e3,
                nz.noise_fan_in,
                nz.flood_bits,
                nz.layer_noise_log2,
                nz.threshold_log2,
                nz.room_bits,
                nz.margin_bits,
                nz.flood_security_bits(&params, 15),
            );
        }
    }
    Ok(())
}
