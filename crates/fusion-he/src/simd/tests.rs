//! Both parties in one process, fixed seeds, against a plaintext reference
//! modulo `p`; measured counts against the analytic ones; noise against its
//! worst-case bound.

use std::sync::OnceLock;

use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

use super::cipher::tests::decrypt_exact;
use super::*;
use crate::batchnorm::BatchNormShape;
use crate::conv2d::{Conv2dShape, Padding};
use crate::error::HeError;
use crate::fc::FcShape;
use fusion_core::field::PrimeField;

struct Fixture {
    params: SimdParams,
    client: SimdClient,
    server: SimdServer,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let params = SimdPreset::N8192.params().expect("params");
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let client = SimdClient::new(&params, &mut rng);
        let set = GaloisSet::power_of_two_rotations(params.degree(), true);
        let (pk, gk) = client.setup_messages(&set, &mut rng);
        let server = SimdServer::from_setup_messages(&params, &pk, Some(&gk)).expect("server");
        Fixture {
            params,
            client,
            server,
        }
    })
}

/// Random field elements with the edge values `0, 1, p - 1, (p-1)/2, (p+1)/2` first.
fn values(f: PrimeField, len: usize, rng: &mut ChaCha20Rng) -> Vec<u64> {
    let p = f.modulus();
    let edges = [0, 1, p - 1, p / 2, p / 2 + 1];
    (0..len)
        .map(|i| {
            if i < edges.len() {
                edges[i]
            } else {
                f.random(rng)
            }
        })
        .collect()
}

/// Values of one kind: random, all zero, all `p - 1`, all near `p/2`.
fn kind_values(f: PrimeField, len: usize, kind: u8, rng: &mut ChaCha20Rng) -> Vec<u64> {
    let p = f.modulus();
    match kind {
        0 => values(f, len, rng),
        1 => vec![0; len],
        2 => vec![p - 1; len],
        _ => (0..len).map(|i| p / 2 + (i as u64 & 1)).collect(),
    }
}

/// Runs the protocol over the byte-level halves; returns `y_c + y_s` and the measured counts.
fn run(layer: &SimdLinear, x: &[u64], seed: u64) -> (Vec<u64>, SimdCounts) {
    let fx = fixture();
    let plan = layer.plan();
    let f = fx.params.field();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let x_c: Vec<u64> = (0..x.len()).map(|_| f.random(&mut rng)).collect();
    let x_s: Vec<u64> = x.iter().zip(&x_c).map(|(&a, &b)| f.sub(a, b)).collect();
    let (mut crng, mut srng) = (
        ChaCha20Rng::seed_from_u64(seed + 1),
        ChaCha20Rng::seed_from_u64(seed + 2),
    );
    let query = fx.client.query_bytes(plan, &x_c, &mut crng).expect("query");
    assert_eq!(query.len(), plan.query_bytes_len());
    let q = SimdQuery::from_bytes(plan, &query).expect("decode query");
    let resp = layer
        .respond(&fx.server, &q, &x_s, &mut srng)
        .expect("respond");
    assert_eq!(resp.reply.as_bytes().len(), plan.reply_bytes_len());
    let y_c = fx
        .client
        .decrypt_bytes(plan, resp.reply.as_bytes().to_vec())
        .expect("decrypt");
    let y = y_c
        .iter()
        .zip(&resp.server_share)
        .map(|(&a, &b)| f.add(a, b))
        .collect();
    (y, resp.counts)
}

fn fc_reference(f: PrimeField, s: FcShape, w: &[u64], b: &[u64], x: &[u64]) -> Vec<u64> {
    let mut y = vec![0u64; s.batch * s.out_features];
    for v in 0..s.batch {
        for o in 0..s.out_features {
            let mut acc = b[o];
            for i in 0..s.in_features {
                acc = f.add(
                    acc,
                    f.mul(w[o * s.in_features + i], x[v * s.in_features + i]),
                );
            }
            y[v * s.out_features + o] = acc;
        }
    }
    y
}

fn conv_reference(f: PrimeField, s: Conv2dShape, w: &[u64], b: &[u64], x: &[u64]) -> Vec<u64> {
    let (pt, _, pl, _) = s.pads();
    let (oh, ow) = (s.out_height(), s.out_width());
    let mut y = vec![0u64; s.output_len()];
    for img in 0..s.batch {
        for o in 0..s.out_channels {
            for yy in 0..oh {
                for xx in 0..ow {
                    let mut acc = b[o];
                    for i in 0..s.in_channels {
                        for dy in 0..s.kernel_h {
                            for dx in 0..s.kernel_w {
                                let iy = (yy * s.stride_h + dy) as isize - pt as isize;
                                let ix = (xx * s.stride_w + dx) as isize - pl as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= s.height as isize
                                    || ix >= s.width as isize
                                {
                                    continue;
                                }
                                let xv = x[((img * s.in_channels + i) * s.height + iy as usize)
                                    * s.width
                                    + ix as usize];
                                let wv = w
                                    [((o * s.in_channels + i) * s.kernel_h + dy) * s.kernel_w + dx];
                                acc = f.add(acc, f.mul(wv, xv));
                            }
                        }
                    }
                    y[((img * s.out_channels + o) * oh + yy) * ow + xx] = acc;
                }
            }
        }
    }
    y
}

fn check_fc(shape: FcShape, kind: u8, seed: u64) -> SimdPlan {
    check_fc_with(shape, kind, seed, FcObjective::Bytes)
}

fn check_fc_with(shape: FcShape, kind: u8, seed: u64, objective: FcObjective) -> SimdPlan {
    let fx = fixture();
    let f = fx.params.field();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let plan = SimdPlan::fc_with(&fx.params, shape, objective).expect("plan");
    let w = kind_values(f, shape.in_features * shape.out_features, kind, &mut rng);
    let b = values(f, shape.out_features, &mut rng);
    let x = kind_values(f, shape.batch * shape.in_features, kind, &mut rng);
    let layer = SimdLinear::fc(plan.clone(), &w, Some(&b)).expect("layer");
    let (y, counts) = run(&layer, &x, seed);
    assert!(
        y == fc_reference(f, shape, &w, &b, &x),
        "FC {shape:?} kind {kind}"
    );
    assert_eq!(counts, plan.analytic_counts(), "FC {shape:?}");
    plan
}

fn check_conv(shape: Conv2dShape, kind: u8, seed: u64) -> SimdPlan {
    let fx = fixture();
    let f = fx.params.field();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let plan = SimdPlan::conv2d(&fx.params, shape).expect("plan");
    let w = kind_values(f, shape.weight_len(), kind, &mut rng);
    let b = values(f, shape.out_channels, &mut rng);
    let x = kind_values(f, shape.input_len(), kind, &mut rng);
    let layer = SimdLinear::conv2d(plan.clone(), &w, Some(&b)).expect("layer");
    let (y, counts) = run(&layer, &x, seed);
    assert!(
        y == conv_reference(f, shape, &w, &b, &x),
        "conv {shape:?} kind {kind}"
    );
    assert_eq!(counts, plan.analytic_counts(), "conv {shape:?}");
    plan
}

#[test]
fn fc_shares_reconstruct_w_x_plus_b_mod_p_and_counts_match_the_formulas() {
    for (i, shape) in [
        FcShape::new(1, 784, 128),
        FcShape::new(1, 100, 10),
        FcShape::new(3, 50, 7),
        FcShape::new(10, 300, 33),
        FcShape::new(2, 5000, 10),
        FcShape::new(1, 4097, 3),
        FcShape::new(5, 1, 1),
        // Two ciphertexts, one with a row mixing two vectors (wrap-around
        // diagonals) and one without.
        FcShape::new(2, 4, 4200),
    ]
    .into_iter()
    .enumerate()
    {
        let plan = check_fc(shape, 0, 100 + i as u64);
        eprintln!(
            "FC {shape:?}: {:?}, margin {:.1} bits",
            plan.analytic_counts(),
            plan.noise().margin_bits
        );
    }
}

#[test]
fn fc_planned_for_time_is_exact_and_counted() {
    for (i, shape) in [FcShape::new(6, 100, 40), FcShape::new(3, 50, 7)]
        .into_iter()
        .enumerate()
    {
        let fast = check_fc_with(shape, 0, 700 + i as u64, FcObjective::Rotations);
        let small = SimdPlan::fc(&fixture().params, shape).unwrap();
        assert!(fast.analytic_counts().rotations <= small.analytic_counts().rotations);
    }
}

#[test]
fn fc_is_exact_on_edge_inputs() {
    for kind in 1..=3 {
        check_fc(FcShape::new(2, 200, 20), kind, 200 + kind as u64);
    }
}

#[test]
fn batched_fc_packs_several_vectors_per_ciphertext() {
    let fx = fixture();
    let mixed = SimdPlan::fc(&fx.params, FcShape::new(2, 4, 4200)).unwrap();
    let super::plan::Circuit::Fc(c) = &mixed.circuit else {
        unreachable!()
    };
    assert_eq!(c.wrap, vec![true, false]);
    let plan = SimdPlan::fc(&fx.params, FcShape::new(128, 784, 128)).unwrap();
    // 8 blocks of 1024 slots: 8 vectors per ciphertext.
    assert_eq!(plan.input_cts(), 16);
    assert_eq!(plan.output_cts(), 16);
    // For time: one vector per row, no wrap-around diagonals.
    let fast = SimdPlan::fc_with(
        &fx.params,
        FcShape::new(128, 784, 128),
        FcObjective::Rotations,
    )
    .unwrap();
    assert_eq!(fast.input_cts(), 64);
    assert_eq!(fast.analytic_counts().rotations, 2304);
    assert!(plan.analytic_counts().rotations > 2304);
}

#[test]
fn conv_shares_reconstruct_the_convolution_mod_p_and_counts_match_the_formulas() {
    let explicit = Padding::Explicit {
        top: 1,
        bottom: 2,
        left: 0,
        right: 1,
    };
    for (i, shape) in [
        // MNIST CNN conv1 and conv2.
        Conv2dShape::new(1, 1, 28, 28, 16, 5, 1, Padding::Valid),
        Conv2dShape::new(1, 16, 12, 12, 16, 5, 1, Padding::Valid),
        // LeNet-like: 6 -> 16, 5x5 on 14x14; and 3x3 SAME with stride 2.
        Conv2dShape::new(1, 6, 14, 14, 16, 5, 1, Padding::Valid),
        Conv2dShape::new(1, 3, 9, 9, 5, 3, 2, Padding::Same),
        // 1x1, multi-channel, batch 2 with explicit asymmetric padding.
        Conv2dShape::new(1, 20, 6, 6, 40, 1, 1, Padding::Valid),
        Conv2dShape::new(2, 2, 7, 7, 3, 3, 1, explicit),
        Conv2dShape::new(1, 1, 5, 5, 1, 5, 2, Padding::Same),
    ]
    .into_iter()
    .enumerate()
    {
        let plan = check_conv(shape, 0, 300 + i as u64);
        eprintln!(
            "conv {shape:?}: {:?}, margin {:.1} bits",
            plan.analytic_counts(),
            plan.noise().margin_bits
        );
    }
}

#[test]
fn conv_is_exact_on_edge_inputs() {
    for kind in 1..=3 {
        check_conv(
            Conv2dShape::new(1, 3, 8, 8, 4, 3, 1, Padding::Same),
            kind,
            400 + kind as u64,
        );
    }
}

#[test]
fn affine_scales_every_channel_and_adds_the_shift() {
    let fx = fixture();
    let f = fx.params.field();
    for (i, shape) in [
        BatchNormShape {
            batch: 1,
            channels: 16,
            height: 24,
            width: 24,
        },
        BatchNormShape {
            batch: 3,
            channels: 5,
            height: 7,
            width: 9,
        },
    ]
    .into_iter()
    .enumerate()
    {
        for kind in 0..=3 {
            let mut rng = ChaCha20Rng::seed_from_u64(500 + i as u64);
            let plan = SimdPlan::affine(&fx.params, shape).unwrap();
            let scale = kind_values(f, shape.channels, kind, &mut rng);
            let shift = values(f, shape.channels, &mut rng);
            let len = shape.batch * shape.channels * shape.height * shape.width;
            let x = kind_values(f, len, kind, &mut rng);
            let layer = SimdLinear::affine(plan.clone(), &scale, Some(&shift)).unwrap();
            let (y, counts) = run(&layer, &x, 600 + kind as u64);
            let hw = shape.height * shape.width;
            for (j, &v) in y.iter().enumerate() {
                let c = j / hw % shape.channels;
                assert_eq!(v, f.add(f.mul(scale[c], x[j]), shift[c]), "{shape:?} {j}");
            }
            assert_eq!(counts, plan.analytic_counts());
        }
    }
}

#[test]
fn rotations_move_slots_and_add_at_most_the_key_switching_bound() {
    let fx = fixture();
    let params = &fx.params;
    let n = params.degree();
    let half = n / 2;
    let f = params.field();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let x = values(f, n, &mut rng);
    let plan = SimdPlan::affine(
        params,
        BatchNormShape {
            batch: 1,
            channels: 1,
            height: 1,
            width: n,
        },
    )
    .unwrap();
    let q = fx.client.encrypt(&plan, &x, &mut rng).unwrap();
    let he = params.he();
    let stride = he.primes().len() * n;
    let mut ct = vec![0u64; 2 * stride];
    ct[..stride].copy_from_slice(&q.cts);
    crate::poly::expand_uniform(he, &q.seed, 0, &mut ct[stride..]);
    for half in ct.chunks_exact_mut(stride) {
        crate::poly::normalize(he, half);
    }
    let sk = fx.client.secret_key();
    let (slots, fresh) = decrypt_exact(params, sk, &ct);
    eprintln!(
        "fresh noise 2^{fresh:.1}; first slots {:?} vs {:?}",
        &slots[..4],
        &x[..4]
    );
    assert_eq!(slots, x);
    let ctx = super::eval::Ctx::new(params, fx.server.rots.as_deref());
    for k in [1usize, 2, 5, 1000, half - 1] {
        let rot = ctx.rotate(k, &ct).unwrap();
        let (s, noise) = decrypt_exact(params, sk, &rot);
        for row in 0..2 {
            for i in 0..half {
                assert_eq!(s[row * half + i], x[row * half + (i + k) % half], "k {k}");
            }
        }
        let bound =
            (params.fresh_noise() + k.count_ones() as f64 * params.key_switch_noise()).log2();
        assert!(noise <= bound, "k {k}: 2^{noise:.1} > 2^{bound:.1}");
        eprintln!("rotation by {k}: noise 2^{noise:.1} (fresh 2^{fresh:.1}, bound 2^{bound:.1})");
    }
    let sw = ctx.apply(swap_element(n), &ct).unwrap();
    let (s, _) = decrypt_exact(params, sk, &sw);
    assert_eq!(&s[..half], &x[half..]);
    assert_eq!(&s[half..], &x[..half]);
}

/// Noise of the result ciphertexts before masking and flooding, measured by
/// exact decryption, against the worst case the plan floods for.
#[test]
fn measured_noise_stays_below_the_worst_case_bound() {
    let fx = fixture();
    let params = &fx.params;
    let f = params.field();
    let n = params.degree();
    let he = params.he();
    let stride = he.primes().len() * n;
    let sk = fx.client.secret_key();
    let cases: Vec<(&str, SimdPlan)> = vec![
        (
            "FC 784->128",
            SimdPlan::fc(params, FcShape::new(1, 784, 128)).unwrap(),
        ),
        (
            "FC 6000->100 (chunked)",
            SimdPlan::fc(params, FcShape::new(1, 6000, 100)).unwrap(),
        ),
        (
            "FC 784->128 b16",
            SimdPlan::fc(params, FcShape::new(16, 784, 128)).unwrap(),
        ),
        (
            "conv 5x5 64->64 on 12x12",
            SimdPlan::conv2d(
                params,
                Conv2dShape::new(1, 64, 12, 12, 64, 5, 1, Padding::Same),
            )
            .unwrap(),
        ),
    ];
    for (name, plan) in cases {
        let mut rng = ChaCha20Rng::seed_from_u64(77);
        let x = values(f, plan.layer.input_len(), &mut rng);
        let q = fx.client.encrypt(&plan, &x, &mut rng).unwrap();
        let inputs: Vec<Vec<u64>> = (0..plan.input_cts())
            .map(|i| {
                let mut ct = vec![0u64; 2 * stride];
                ct[..stride].copy_from_slice(&q.cts[i * stride..(i + 1) * stride]);
                crate::poly::expand_uniform(he, &q.seed, i as u64, &mut ct[stride..]);
                for half in ct.chunks_exact_mut(stride) {
                    crate::poly::normalize(he, half);
                }
                ct
            })
            .collect();
        let ctx = super::eval::Ctx::new(params, fx.server.rots.as_deref());
        let outs = match &plan.layer {
            SimdLayer::Fc(s) => {
                let w = values(f, s.in_features * s.out_features, &mut rng);
                let layer = SimdLinear::fc(plan.clone(), &w, None).unwrap();
                let super::server::Weights::Fc(fw) = &layer.weights else {
                    unreachable!()
                };
                let super::plan::Circuit::Fc(c) = &plan.circuit else {
                    unreachable!()
                };
                super::fc::eval(&ctx, c, fw, &inputs).unwrap()
            }
            SimdLayer::Conv2d(s) => {
                let w = values(f, s.weight_len(), &mut rng);
                let layer = SimdLinear::conv2d(plan.clone(), &w, None).unwrap();
                let super::server::Weights::Conv(cw) = &layer.weights else {
                    unreachable!()
                };
                let super::plan::Circuit::Conv(c) = &plan.circuit else {
                    unreachable!()
                };
                super::conv::eval(&ctx, c, cw, &inputs).unwrap()
            }
            SimdLayer::Affine(_) => unreachable!(),
        };
        let measured = outs
            .iter()
            .map(|ct| decrypt_exact(params, sk, ct).1)
            .fold(f64::MIN, f64::max);
        let nb = plan.noise();
        eprintln!(
            "| {name} | 2^{measured:.1} | 2^{:.1} | 2^{} | 2^{:.1} | {:.1} |",
            nb.noise_log2, nb.flood_bits, nb.threshold_log2, nb.margin_bits
        );
        assert!(
            measured < nb.noise_log2,
            "{name}: 2^{measured:.1} >= bound 2^{:.1}",
            nb.noise_log2
        );
        assert!(nb.margin_bits > 1.0 && nb.flood_security_bits() >= 41.0 - 1e-9);
    }
}

#[test]
fn plans_refuse_what_does_not_fit() {
    let fx = fixture();
    // Images larger than half a ciphertext.
    assert!(matches!(
        SimdPlan::conv2d(
            &fx.params,
            Conv2dShape::new(1, 1, 65, 65, 1, 3, 1, Padding::Valid)
        ),
        Err(HeError::InvalidShape(_))
    ));
    assert!(SimdPlan::fc(&fx.params, FcShape::new(0, 10, 10)).is_err());
    // A server without Galois keys cannot answer a rotating layer.
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let plan = SimdPlan::fc(&fx.params, FcShape::new(1, 16, 4)).unwrap();
    let w = vec![1u64; 64];
    let layer = SimdLinear::fc(plan.clone(), &w, None).unwrap();
    let pk = super::wire::decode_public_key(&fx.params, &fx.client.public_key_msg()).unwrap();
    let bare = SimdServer::new(&fx.params, &pk, None).unwrap();
    let q = fx.client.encrypt(&plan, &[0; 16], &mut rng).unwrap();
    assert!(matches!(
        layer.respond(&bare, &q, &[0; 16], &mut rng),
        Err(HeError::ParamMismatch(_))
    ));
    // Shares outside the field.
    let p = fx.params.field().modulus();
    assert!(fx.client.encrypt(&plan, &[p; 16], &mut rng).is_err());
    let _ = rng.random::<u64>();
}

/// One session on other parameters: FC and affine end to end.
fn other_prime_session(params: &SimdParams, rotate: bool, seed: u64) {
    let f = params.field();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let client = SimdClient::new(params, &mut rng);
    let n = params.degree();
    let (pk, gk) = client.setup_messages(&GaloisSet::power_of_two_rotations(n, true), &mut rng);
    let server = SimdServer::from_setup_messages(params, &pk, rotate.then_some(&gk[..])).unwrap();
    let mut prng = ChaCha20Rng::seed_from_u64(seed + 1);
    let mut call = |layer: &SimdLinear, x: &[u64]| -> Vec<u64> {
        let rng = &mut prng;
        let x_c: Vec<u64> = x.iter().map(|_| f.random(rng)).collect();
        let x_s: Vec<u64> = x.iter().zip(&x_c).map(|(&a, &b)| f.sub(a, b)).collect();
        let q = client.query_bytes(layer.plan(), &x_c, rng).unwrap();
        let (reply, y_s) = layer.respond_bytes(&server, &q, &x_s, rng).unwrap();
        let y_c = client.decrypt_bytes(layer.plan(), reply).unwrap();
        y_c.iter().zip(&y_s).map(|(&a, &b)| f.add(a, b)).collect()
    };
    let shape = BatchNormShape {
        batch: 2,
        channels: 3,
        height: 5,
        width: 5,
    };
    let scale = values(f, 3, &mut rng);
    let x = values(f, 150, &mut rng);
    let layer = SimdLinear::affine(SimdPlan::affine(params, shape).unwrap(), &scale, None).unwrap();
    let y = call(&layer, &x);
    for (j, &v) in y.iter().enumerate() {
        assert_eq!(v, f.mul(scale[j / 25 % 3], x[j]));
    }
    if rotate {
        let shape = FcShape::new(2, 100, 10);
        let w = values(f, 1000, &mut rng);
        let x = values(f, 200, &mut rng);
        let layer = SimdLinear::fc(SimdPlan::fc(params, shape).unwrap(), &w, None).unwrap();
        assert_eq!(call(&layer, &x), fc_reference(f, shape, &w, &[0; 10], &x));
    }
}

#[test]
fn other_primes_work_where_the_noise_budget_permits() {
    // A 46-bit prime at N = 8192.
    let big = PrimeField::ntt_friendly(1 << 45, 16384).unwrap();
    let params = SimdPreset::N8192.builder().field(big).build().unwrap();
    other_prime_session(&params, true, 31);
    // N = 4096 holds a 21-bit prime for the rotation-free affine layer only.
    let small = PrimeField::ntt_friendly(1 << 20, 8192).unwrap();
    let params = SimdPreset::N4096.builder().field(small).build().unwrap();
    assert!(SimdPlan::fc(&params, FcShape::new(1, 100, 10)).is_err());
    other_prime_session(&params, false, 32);
}
