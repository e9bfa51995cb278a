//! dudect-style timing test of the samplers of secret values and of the
//! noise arithmetic (Reparaz, Balasch, Verbauwhede, "Dude, is my code
//! constant time?", DATE 2017).
//!
//! For each operation, inputs of two classes are timed in random order:
//! class 0 a *fixed* secret (every sampled value the same, e.g. a key of all
//! `-1`), class 1 a *random* one, both drawn from the same amount of
//! randomness (so that rejection sampling, which depends only on public-size
//! uniform bytes, takes the same path). Welch's t-statistic of the two timing
//! samples is computed on all measurements and on measurements cropped at
//! several percentiles (as dudect does); `|t| < 4.5` on every one passes.
//! A control (the former branching lift `c >= 0 ? c : p - |c|`) is timed too
//! so that the run shows what the test can detect; it is not a pass/fail
//! item.
//!
//! `cargo bench -p fusion-he --bench dudect` prints one JSON object;
//! `DUDECT_SAMPLES` sets the measurements per operation (default 200000).

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Instant;

use fusion_core::ring::Ring;
use fusion_he::timing;
use fusion_he::{HeParams, Preset};
use rand::rand_core::{TryCryptoRng, TryRng};
use rand::rngs::ChaCha20Rng;
use rand::{Rng, RngExt, SeedableRng};

/// The limbs of the flooding test's fixed class (digits of e).
const FIXED_LIMB: u64 = 0x2b7e_1516_28ae_d2a6;

/// An RNG that replays prepared words (the class's randomness).
struct Replay<'a> {
    words: &'a [u64],
    pos: usize,
}

impl TryRng for Replay<'_> {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let w = self.words[self.pos % self.words.len()];
        self.pos += 1;
        Ok(w)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let w = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        Ok(())
    }
}

impl TryCryptoRng for Replay<'_> {}

/// Welch's t per cropping level (`p100`: all measurements).
type TValues = Vec<(String, f64)>;

/// Welch's t-statistic of two samples.
fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let stats = |x: &[f64]| {
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        let v = x.iter().map(|&y| (y - m).powi(2)).sum::<f64>() / (n - 1.0);
        (n, m, v)
    };
    let (na, ma, va) = stats(a);
    let (nb, mb, vb) = stats(b);
    (ma - mb) / (va / na + vb / nb).sqrt()
}

/// t on all measurements and cropped at each percentile of the pooled timings.
fn t_values(times: &[(u8, f64)]) -> Vec<(String, f64)> {
    let mut sorted: Vec<f64> = times.iter().map(|&(_, t)| t).collect();
    sorted.sort_by(f64::total_cmp);
    let mut out = Vec::new();
    for pct in [100.0, 99.0, 95.0, 90.0, 75.0, 50.0] {
        let cut = sorted[((sorted.len() - 1) as f64 * pct / 100.0) as usize];
        let pick = |class: u8| -> Vec<f64> {
            times
                .iter()
                .filter(|&&(c, t)| c == class && t <= cut)
                .map(|&(_, t)| t)
                .collect()
        };
        let (a, b) = (pick(0), pick(1));
        if a.len() > 10 && b.len() > 10 {
            out.push((format!("p{pct}"), welch_t(&a, &b)));
        }
    }
    out
}

/// Times `run` on `samples` inputs of random classes; `prepare(class, rng)`
/// builds an input outside the timed region.
fn measure<I>(
    samples: usize,
    seed: u64,
    mut prepare: impl FnMut(u8, &mut ChaCha20Rng) -> I,
    mut run: impl FnMut(&mut I),
) -> Vec<(u8, f64)> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(samples);
    // Warm-up.
    for _ in 0..samples / 100 + 10 {
        let mut input = prepare(rng.random::<u8>() & 1, &mut rng);
        run(&mut input);
    }
    for _ in 0..samples {
        let class = rng.random::<u8>() & 1;
        let mut input = prepare(class, &mut rng);
        let t0 = Instant::now();
        run(black_box(&mut input));
        let dt = t0.elapsed();
        black_box(&input);
        out.push((class, dt.as_nanos() as f64));
    }
    out
}

/// Random words whose bytes avoid 255 (no rejection in the ternary sampler);
/// class 0: every byte a multiple of 3 (every coefficient `-1`).
fn ternary_words(class: u8, count: usize, rng: &mut ChaCha20Rng) -> Vec<u64> {
    (0..count)
        .map(|_| {
            // The same draws for both classes: only the values differ.
            let bytes: [u8; 8] = std::array::from_fn(|_| {
                let b = rng.random_range(0..255u8);
                if class == 0 { 3 * (b % 85) } else { b }
            });
            u64::from_le_bytes(bytes)
        })
        .collect()
}

/// A small signed value per coefficient: class 0 all `-21`, class 1 uniform in `-21..=21`.
fn small_values(class: u8, n: usize, rng: &mut ChaCha20Rng) -> Vec<i64> {
    (0..n)
        .map(|_| {
            let v = rng.random_range(-21..=21i64);
            if class == 0 { -21 } else { v }
        })
        .collect()
}

fn main() {
    let samples: usize = std::env::var("DUDECT_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let ring = Ring::new(37).expect("ring");
    let params: HeParams = Preset::N4096.params(ring).expect("params");
    let p0 = params.primes()[0];
    let lp = params.primes().len();
    // Operations on 512 coefficients per measurement (ternary and CBD need N).
    const M: usize = 512;
    let n = params.degree();
    let mut results: Vec<(&str, &str, TValues)> = Vec::new();

    let mut out = vec![0u64; lp * n];
    results.push((
        "ternary secret key (sample_ternary + small_to_rns)",
        "class 0: every coefficient -1; class 1: uniform; no rejected byte in either",
        t_values(&measure(
            samples / 4,
            1,
            |c, rng| ternary_words(c, n / 8 + 1, rng),
            |w| timing::ternary_secret(&params, &mut Replay { words: w, pos: 0 }, &mut out),
        )),
    ));
    results.push((
        "CBD noise (sample_cbd + small_to_rns)",
        "class 0: all-zero words (every e = 0); class 1: uniform words",
        t_values(&measure(
            samples / 4,
            2,
            |c, rng| -> Vec<u64> {
                (0..n)
                    .map(|_| {
                        let w = rng.next_u64();
                        if c == 0 { 0 } else { w }
                    })
                    .collect()
            },
            |w| timing::cbd_noise(&params, &mut Replay { words: w, pos: 0 }, &mut out),
        )),
    ));
    results.push((
        "noise addition (add_signed_mod: e0, e1 of the reply)",
        "uniform residues; class 0: every e = -21; class 1: uniform in -21..=21",
        t_values(&measure(
            samples,
            3,
            |c, rng| {
                let x: Vec<u64> = (0..M).map(|_| rng.random_range(0..p0)).collect();
                (x, small_values(c, M, rng))
            },
            |(x, e)| timing::add_noise(x, e, p0),
        )),
    ));
    let beta = 100;
    let mut fout = vec![0u64; M];
    results.push((
        "flooding term (flood_residue, beta = 100)",
        "class 0: one fixed U in every measurement; class 1: U uniform in [0, 2^(beta+1))",
        t_values(&measure(
            samples,
            4,
            |c, rng| -> Vec<u64> {
                (0..2 * M)
                    .map(|k| {
                        let w = rng.next_u64();
                        // Class 0 is one fixed U (the same non-zero
                        // limbs in every measurement: an all-zero class
                        // would also exercise the CPU's handling of zero
                        // operands, which is not what is tested here).
                        let w = if c == 0 { FIXED_LIMB } else { w };
                        if k % 2 == 0 {
                            w
                        } else {
                            w & ((1 << (beta + 1 - 64)) - 1)
                        }
                    })
                    .collect()
            },
            |l| timing::flooding(&params, beta, l, &mut fout),
        )),
    ));
    let mut eout = vec![0u64; lp * n];
    results.push((
        "client encoding with noise (encode_scaled)",
        "class 0: message all zero; class 1: uniform in the ring; same randomness source",
        t_values(&measure(
            samples / 8,
            5,
            |c, rng| -> (Vec<u64>, [u8; 32]) {
                let msg = (0..n)
                    .map(|_| {
                        let v = ring.random(rng);
                        if c == 0 { 0 } else { v }
                    })
                    .collect();
                (msg, rng.random())
            },
            |(msg, seed)| {
                let mut r = ChaCha20Rng::from_seed(*seed);
                timing::encode_with_noise(&params, msg, &mut r, &mut eout)
            },
        )),
    ));
    // Control: the former lift with a branch on the sign.
    let control = t_values(&measure(
        samples,
        6,
        |c, rng| (vec![0u64; M], small_values(c, M, rng)),
        |(o, e)| {
            for (o, &c) in o.iter_mut().zip(e.iter()) {
                *o = if black_box(c) >= 0 {
                    c as u64
                } else {
                    p0 - c.unsigned_abs()
                };
            }
        },
    ));

    // Control: a deliberately variable-time loop (skips the work for
    // negative values), to show that the harness detects a leak.
    let leaky = t_values(&measure(
        samples,
        7,
        |c, rng| (vec![0u64; M], small_values(c, M, rng)),
        |(o, e)| {
            for (o, &c) in o.iter_mut().zip(e.iter()) {
                if black_box(c) >= 0 {
                    *o = black_box((c as u64).wrapping_mul(0x9e37_79b9) % p0);
                }
            }
        },
    ));

    let fmt = |ts: &[(String, f64)]| {
        ts.iter()
            .map(|(k, t)| format!("\"{k}\": {t:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let max_abs = |ts: &[(String, f64)]| ts.iter().map(|(_, t)| t.abs()).fold(0.0, f64::max);
    let mut json = String::from("{\n  \"threshold\": 4.5,\n  \"samples\": ");
    json += &format!("{samples},\n  \"samplers\": [\n");
    let mut all_pass = true;
    for (i, (name, classes, ts)) in results.iter().enumerate() {
        let m = max_abs(ts);
        all_pass &= m < 4.5;
        json += &format!(
            "    {{\"name\": \"{name}\", \"classes\": \"{classes}\", \"t\": {{{}}}, \"max_abs_t\": {m:.3}, \"pass\": {}}}{}\n",
            fmt(ts),
            m < 4.5,
            if i + 1 < results.len() { "," } else { "" }
        );
    }
    json += &format!(
        "  ],\n  \"control_former_branching_lift\": {{\"t\": {{{}}}, \"max_abs_t\": {:.3}}},\n  \"control_deliberately_leaky\": {{\"t\": {{{}}}, \"max_abs_t\": {:.3}}},\n  \"all_pass\": {all_pass}\n}}",
        fmt(&control),
        max_abs(&control),
        fmt(&leaky),
        max_abs(&leaky)
    );
    println!("{json}");
}
