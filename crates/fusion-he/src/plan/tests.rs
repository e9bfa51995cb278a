//! Tests of the planner and of the encoding: naive products through the index
//! maps, packed layouts, the options.

use super::*;

#[test]
fn distinct_ceils_lists_every_block_size() {
    assert_eq!(distinct_ceils(10, 100), vec![10, 5, 4, 3, 2, 1]);
    assert_eq!(distinct_ceils(7, 3), vec![3, 2, 1]);
    assert_eq!(distinct_ceils(1, 1), vec![1]);
    for total in 1..200 {
        let v = distinct_ceils(total, usize::MAX);
        for k in 1..=total {
            assert!(v.contains(&total.div_ceil(k)));
        }
    }
}

use crate::params::ParamsBuilder;
use crate::{BatchNormShape, Conv2dShape, Padding, reference};
use fusion_core::ring::Ring;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

/// Negacyclic product over `Z_{2^64}` (then reduced mod `2^l` by the caller).
fn negacyclic_wrapping(a: &[u64], b: &[u64]) -> Vec<u64> {
    let n = a.len();
    let mut out = vec![0u64; n];
    for (i, &x) in a.iter().enumerate() {
        if x == 0 {
            continue;
        }
        for (j, &y) in b.iter().enumerate() {
            if y == 0 {
                continue;
            }
            let p = x.wrapping_mul(y);
            if i + j < n {
                out[i + j] = out[i + j].wrapping_add(p);
            } else {
                out[i + j - n] = out[i + j - n].wrapping_sub(p);
            }
        }
    }
    out
}

/// Encodes with `plan`, multiplies the plaintext polynomials naively, decodes,
/// and returns the layer output (server weights `kernel` in canonical form).
fn encode_multiply_decode(plan: &LinearPlan, x: &[u64], kernel: &[u64]) -> Vec<u64> {
    let n = plan.params.degree();
    let ring = plan.params.ring();
    let c = plan.layout.counts;
    let xc = plan.canonical_input(x).into_owned();
    let mut out = vec![u64::MAX; plan.output_len()];
    for ct in 0..c.out_cts {
        let (nb, m, ti, tj) = plan.layout.out_index(ct);
        let mut acc = vec![0u64; n];
        for cb in 0..c.cblk {
            let mut w = vec![0u64; n];
            if !plan.layout.kernel_block_used(m, cb)
                || !plan.layout.encode_kernel(kernel, m, cb, &mut w)
            {
                continue;
            }
            let mut xin = vec![0u64; n];
            let i = plan.layout.in_ct(nb, cb, ti, tj);
            assert_eq!(plan.layout.in_index(i), (nb, cb, ti, tj));
            plan.layout.encode_input(&xc, i, &mut xin);
            for (a, p) in acc.iter_mut().zip(negacyclic_wrapping(&xin, &w)) {
                *a = a.wrapping_add(p);
            }
        }
        let mut count = 0;
        plan.layout.for_each_output(ct, |coef, idx| {
            assert_eq!(out[idx], u64::MAX, "output {idx} produced twice");
            out[idx] = ring.reduce(acc[coef]);
            count += 1;
        });
        assert_eq!(count, plan.out_values(ct));
    }
    assert!(
        out.iter().all(|&v| v != u64::MAX),
        "an output was never produced"
    );
    out
}

fn small_params() -> HeParams {
    ParamsBuilder::new(Ring::new(16).unwrap(), 10, vec![30, 30]).build_unchecked()
}

fn random(ring: Ring, len: usize, rng: &mut ChaCha20Rng) -> Vec<u64> {
    (0..len).map(|_| ring.random(rng)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn conv_encoding_matches_naive_convolution(
        batch in 1usize..=3, ch in 1usize..=4, h in 1usize..=9, w in 1usize..=9, filters in 1usize..=4,
        k in 1usize..=3, stride in 1usize..=2, pad in 0usize..=2,
        nb in 1usize..=3, cb in 1usize..=4, mb in 1usize..=4, hb in 1usize..=9, wb in 1usize..=9, seed in any::<u64>(),
    ) {
        let params = small_params();
        let ring = params.ring();
        let shape = Conv2dShape::new(batch, ch, h, w, filters, k, stride, Padding::Explicit { top: pad, bottom: pad, left: pad, right: 0 });
        let blk = Blocking { images: nb, channels: cb, filters: mb, height: hb, width: wb };
        let plan = LinearPlan::with_blocking(&params, LayerKind::Conv2d(shape), blk, &PlanOptions::default());
        // Shapes or blockings that do not fit are rejected, never mis-planned.
        prop_assume!(plan.is_ok());
        let plan = plan.unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let x = random(ring, shape.input_len(), &mut rng);
        let wt = random(ring, shape.weight_len(), &mut rng);
        let got = encode_multiply_decode(&plan, &x, &shape.canonical_kernel(&wt));
        prop_assert_eq!(got, reference::conv2d(ring, &shape, &x, &wt, None));
    }

    #[test]
    fn depthwise_encoding_matches_naive_scaling(
        batch in 1usize..=3, ch in 1usize..=6, h in 1usize..=5, w in 1usize..=5,
        nb in 1usize..=3, cb in 1usize..=4, wb in 1usize..=25, seed in any::<u64>(),
    ) {
        let params = small_params();
        let ring = params.ring();
        let shape = BatchNormShape::new(batch, ch, h, w);
        let blk = Blocking { images: nb, channels: cb, filters: cb, height: 1, width: wb };
        let plan = LinearPlan::with_blocking(&params, LayerKind::BatchNorm(shape), blk, &PlanOptions::default());
        prop_assume!(plan.is_ok());
        let plan = plan.unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let x = random(ring, shape.len(), &mut rng);
        let scale = random(ring, ch, &mut rng);
        let got = encode_multiply_decode(&plan, &x, &scale);
        prop_assert_eq!(got, reference::batch_norm(ring, &shape, &x, &scale, None));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// With packing, the stride formula agrees with the actual coefficients
    /// (otherwise planning fails) and every reply value of a packed ciphertext
    /// has its own coefficient below N, each output exactly once.
    #[test]
    fn packed_reply_layouts_are_injective(
        batch in 1usize..=9, ch in 1usize..=40, hw in 1usize..=4, filters in 1usize..=12,
        k in 1usize..=3, full in any::<bool>(), nb in 1usize..=6, cb in 1usize..=16, mb in 1usize..=6, hb in 1usize..=4,
    ) {
        let params = crate::Preset::N4096
            .builder(Ring::new(37).unwrap())
            .reply_packing(6)
            .build()
            .unwrap();
        let n = params.degree();
        let k = if full { hw } else { k.min(hw) };
        let shape = Conv2dShape::new(batch, ch, hw, hw, filters, k, 1, Padding::Valid);
        let blk = Blocking { images: nb, channels: cb, filters: mb, height: hb.max(k), width: hw };
        let plan = LinearPlan::with_blocking(&params, LayerKind::Conv2d(shape), blk, &PlanOptions::default());
        prop_assume!(!matches!(plan, Err(HeError::InvalidShape(_))));
        let plan = plan.unwrap();
        let mut seen = vec![false; plan.output_len()];
        for r in 0..plan.output_cts() {
            let mut coefs = std::collections::HashSet::new();
            let mut count = 0;
            plan.for_each_reply_value(r, |coef, idx| {
                assert!(coef < n);
                assert!(coefs.insert(coef), "coefficient {coef} used twice");
                assert!(!seen[idx]);
                seen[idx] = true;
                count += 1;
            });
            prop_assert_eq!(count, plan.reply_values(r));
        }
        prop_assert!(seen.iter().all(|&s| s));
        if let Some(pk) = plan.packing() {
            prop_assert!(pk.group >= 2 && pk.group <= pk.stride && pk.stride.is_power_of_two());
            prop_assert_eq!(pk.reply_cts, plan.result_cts().div_ceil(pk.group));
        }
    }
}

#[test]
fn plan_options_are_validated_and_serialised() {
    for ok in [
        PlanOptions::default(),
        PlanOptions::minimise_bytes(),
        PlanOptions::bytes_first(),
    ] {
        ok.validate().unwrap();
        let json = serde_json::to_string(&ok).unwrap();
        assert_eq!(serde_json::from_str::<PlanOptions>(&json).unwrap(), ok);
    }
    // The wire form: the field names, threads as u32, the cache budget as u64.
    let json = serde_json::to_value(PlanOptions::default()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"bandwidth": 382e6, "threads": 2, "weight_cache_bytes": 256u64 << 20})
    );
    let edge = PlanOptions {
        bandwidth: 1e15,
        threads: 4096,
        weight_cache_bytes: 1 << 40,
    };
    edge.validate().unwrap();
    let d = PlanOptions::default();
    let bad = [
        PlanOptions {
            bandwidth: f64::NAN,
            ..d
        },
        PlanOptions {
            bandwidth: f64::INFINITY,
            ..d
        },
        PlanOptions {
            bandwidth: 0.5,
            ..d
        },
        PlanOptions {
            bandwidth: 1.1e15,
            ..d
        },
        PlanOptions { threads: 0, ..d },
        PlanOptions { threads: 4097, ..d },
        PlanOptions {
            weight_cache_bytes: (1 << 40) + 1,
            ..d
        },
    ];
    let params = crate::Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
    let shape = crate::FcShape::new(1, 8, 8);
    for o in bad {
        assert!(
            matches!(o.validate(), Err(HeError::InvalidParams(_))),
            "{o:?}"
        );
        // The planner refuses them too.
        assert!(matches!(
            LinearPlan::new(&params, LayerKind::Fc(shape), &o),
            Err(HeError::InvalidParams(_))
        ));
    }
    assert!(
        serde_json::from_str::<PlanOptions>(
            r#"{"bandwidth": 1.0, "threads": 4294967296, "weight_cache_bytes": 0}"#
        )
        .is_err()
    );
}

#[test]
fn bytes_first_trades_a_few_bytes_only_for_much_computation() {
    let ring = Ring::new(37).unwrap();
    let params = crate::Preset::N4096
        .builder(ring)
        .reply_packing(crate::DEFAULT_PACKING_LEVELS)
        .build()
        .unwrap();
    let (min, first) = (PlanOptions::minimise_bytes(), PlanOptions::bytes_first());
    let compute = |p: &LinearPlan, o: &PlanOptions| {
        let s = p.stats();
        s.est_seconds - (s.bytes_up + s.bytes_down) as f64 / o.bandwidth
    };
    // ResNet50's last stage: 7 x 7 pixels, 1 x 1 convolutions, 512 <-> 2048 channels.
    let wide = LayerKind::Conv2d(Conv2dShape::new(1, 512, 7, 7, 2048, 1, 1, Padding::Valid));
    let a = LinearPlan::new(&params, wide, &min).unwrap();
    let b = LinearPlan::new(&params, wide, &first).unwrap();
    let (bytes_a, bytes_b) = (
        a.stats().bytes_up + a.stats().bytes_down,
        b.stats().bytes_up + b.stats().bytes_down,
    );
    assert!(bytes_b > bytes_a, "{bytes_b} vs {bytes_a}");
    let saved = compute(&a, &first) - compute(&b, &first);
    // Each extra byte buys at least 0.1 µs of estimated computation.
    assert!(
        saved >= (bytes_b - bytes_a) as f64 / BYTES_FIRST_BANDWIDTH,
        "{saved} s for {} bytes",
        bytes_b - bytes_a
    );
    assert!(saved > 0.3, "{saved}");
    // A small layer keeps its byte-minimal plan.
    let small = LayerKind::Conv2d(Conv2dShape::new(16, 1, 28, 28, 16, 5, 1, Padding::Valid));
    let (a, b) = (
        LinearPlan::new(&params, small, &min).unwrap(),
        LinearPlan::new(&params, small, &first).unwrap(),
    );
    assert_eq!(a.blocking(), b.blocking());
    assert_eq!(
        a.stats().bytes_up + a.stats().bytes_down,
        b.stats().bytes_up + b.stats().bytes_down
    );
}

#[test]
fn planner_fills_the_ring_and_respects_the_bound() {
    let params = crate::Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
    let shape = Conv2dShape::new(4, 32, 14, 14, 64, 5, 1, Padding::Same);
    let plan = LinearPlan::new(&params, LayerKind::Conv2d(shape), &PlanOptions::default()).unwrap();
    let b = plan.blocking();
    assert!(b.images * b.channels * b.filters * b.height * b.width <= 4096);
    assert!(b.height >= 5 && b.width >= 5);
    // Both parties derive the same plan.
    let again =
        LinearPlan::new(&params, LayerKind::Conv2d(shape), &PlanOptions::default()).unwrap();
    assert_eq!(plan.blocking(), again.blocking());
    // Oversized blockings are refused.
    let too_big = Blocking {
        images: 2,
        channels: 32,
        filters: 4,
        height: 18,
        width: 18,
    };
    assert!(
        LinearPlan::with_blocking(
            &params,
            LayerKind::Conv2d(shape),
            too_big,
            &PlanOptions::default()
        )
        .is_err()
    );
}

#[test]
fn a_call_reveals_one_flooded_coefficient_per_output_value() {
    let ring = Ring::new(37).unwrap();
    let params = crate::Preset::N4096.params(ring).unwrap();
    let packed = crate::Preset::N4096
        .builder(ring)
        .reply_packing(4)
        .build()
        .unwrap();
    let kinds = [
        LayerKind::Conv2d(Conv2dShape::new(3, 4, 12, 12, 6, 3, 1, Padding::Same)),
        LayerKind::Fc(crate::FcShape::new(5, 300, 40)),
        LayerKind::BatchNorm(BatchNormShape::new(2, 8, 7, 7)),
    ];
    for kind in kinds {
        for p in [&params, &packed] {
            let plan = LinearPlan::new(p, kind, &PlanOptions::default()).unwrap();
            assert_eq!(plan.revealed_coefficients(), plan.output_len(), "{kind:?}");
            let b_values: usize = (0..plan.output_cts()).map(|r| plan.reply_values(r)).sum();
            assert_eq!(plan.revealed_coefficients(), b_values);
        }
    }
}
