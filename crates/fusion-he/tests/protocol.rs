//! Both parties of every linear protocol against the naive plaintext ring
//! implementation, on random inputs and edge values (I/O-free API, messages
//! through their byte encodings).

use fusion_core::ring::Ring;
use fusion_he::{
    BatchNormShape, Blocking, Conv2dShape, FcShape, GaloisKeyMsg, HeClient, HeError, HeParams,
    HeServer, LayerKind, LinearPlan, Padding, PlanOptions, Preset, Query, Reply, ServerLinear,
    reference,
};
use rand::rngs::ChaCha20Rng;
use rand::{Rng, RngExt, SeedableRng};

fn ring(l: u32) -> Ring {
    Ring::new(l).expect("valid width")
}

/// Random ring elements with a few edge values in front.
fn shares(ring: Ring, len: usize, rng: &mut ChaCha20Rng) -> Vec<u64> {
    let edges = [
        0,
        1,
        ring.mask(),
        ring.mask() >> 1,
        (ring.mask() >> 1) + 1,
        2,
        ring.mask() - 1,
    ];
    (0..len)
        .map(|i| {
            if i < edges.len() {
                edges[i]
            } else {
                ring.random(rng)
            }
        })
        .collect()
}

/// Weights with signed value in `[-2^bits, 2^bits]`, including both ends.
fn weights(ring: Ring, len: usize, bits: u32, rng: &mut ChaCha20Rng) -> Vec<u64> {
    let b = if bits >= 63 { i64::MAX } else { 1i64 << bits };
    (0..len)
        .map(|i| match i {
            0 => ring.from_signed(-b),
            1 => ring.from_signed(b.min(ring.mask() as i64 >> 1)),
            2 => 0,
            _ => {
                if bits >= 63 {
                    ring.random(rng)
                } else {
                    ring.from_signed(rng.random_range(-b..=b))
                }
            }
        })
        .collect()
}

/// Runs client encrypt -> bytes -> server respond -> bytes -> client decrypt and
/// returns the reconstructed output.
fn run(
    params: &HeParams,
    plan: &LinearPlan,
    layer: &ServerLinear,
    x: &[u64],
    server_holds_share: bool,
    seed: u64,
) -> Vec<u64> {
    let mut crng = ChaCha20Rng::seed_from_u64(seed);
    let mut srng = ChaCha20Rng::seed_from_u64(seed + 1000);
    let r = params.ring();
    let client = HeClient::new(params, &mut crng);
    let pk_bytes = client.public_key_msg();
    let pk = fusion_he::PublicKeyMsg::decode(params, pk_bytes.as_bytes()).expect("pk decodes");
    let server = if params.reply_packing_levels() > 0 {
        let gk = client.galois_key_msg(&mut crng).expect("Galois keys");
        assert_eq!(gk.as_bytes().len(), params.galois_key_bytes());
        let gk = GaloisKeyMsg::decode(params, gk.as_bytes()).expect("Galois keys decode");
        HeServer::with_galois_keys(&pk, &gk).expect("server with Galois keys")
    } else {
        HeServer::new(&pk)
    };
    let (xc, xs): (Vec<u64>, Vec<u64>) = if server_holds_share {
        x.iter().map(|&v| r.share(v, &mut crng)).unzip()
    } else {
        (x.to_vec(), vec![0; x.len()])
    };
    let q = client.encrypt(plan, &xc, &mut crng).expect("encrypt");
    let qb = q.to_bytes(plan);
    assert_eq!(
        qb.len(),
        plan.stats().bytes_up - fusion_he::FRAME_HEADER_BYTES
    );
    let q = Query::from_bytes(plan, &qb).expect("query decodes");
    let (reply, ys) = layer
        .respond(
            &server,
            &q,
            if server_holds_share { Some(&xs) } else { None },
            &mut srng,
        )
        .expect("respond");
    assert_eq!(
        reply.len() + fusion_he::FRAME_HEADER_BYTES,
        plan.stats().bytes_down
    );
    let reply = Reply::from_bytes(plan, reply.as_bytes().to_vec()).expect("reply decodes");
    let yc = client.decrypt(plan, &reply).expect("decrypt");
    yc.iter()
        .zip(&ys)
        .map(|(&a, &b)| r.reconstruct(a, b))
        .collect()
}

#[test]
fn fc_batched_matches_plaintext_ring_exactly() {
    let params = Preset::N4096.params(ring(37)).unwrap();
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let shape = FcShape::new(9, 100, 30);
    let plan = LinearPlan::fc(&params, shape, &PlanOptions::default()).unwrap();
    let w = weights(r, 100 * 30, 16, &mut rng);
    let bias = shares(r, 30, &mut rng);
    let layer = ServerLinear::fc(plan.clone(), &w, Some(&bias)).unwrap();
    let x = shares(r, 9 * 100, &mut rng);
    let want = reference::fc(r, &shape, &x, &w, Some(&bias));
    assert_eq!(run(&params, &plan, &layer, &x, true, 1), want);
    assert_eq!(run(&params, &plan, &layer, &x, false, 2), want);
}

#[test]
fn fc_with_forced_blockings_matches_plaintext() {
    let params = Preset::N4096.params(ring(37)).unwrap();
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let shape = FcShape::new(5, 70, 13);
    let w = weights(r, 70 * 13, 12, &mut rng);
    let x = shares(r, 5 * 70, &mut rng);
    let want = reference::fc(r, &shape, &x, &w, None);
    // Uneven blocks in every dimension, including Cheetah's batch-1 encoding.
    for blk in [
        Blocking {
            images: 2,
            channels: 16,
            filters: 3,
            height: 1,
            width: 1,
        },
        Blocking {
            images: 1,
            channels: 70,
            filters: 13,
            height: 1,
            width: 1,
        },
        Blocking {
            images: 5,
            channels: 1,
            filters: 1,
            height: 1,
            width: 1,
        },
        Blocking {
            images: 3,
            channels: 33,
            filters: 40,
            height: 1,
            width: 1,
        },
    ] {
        let plan =
            LinearPlan::with_blocking(&params, LayerKind::Fc(shape), blk, &PlanOptions::default());
        let Ok(plan) = plan else {
            // filters beyond the layer are allowed only within N
            continue;
        };
        let layer = ServerLinear::fc(plan.clone(), &w, None).unwrap();
        assert_eq!(run(&params, &plan, &layer, &x, true, 3), want, "{blk:?}");
    }
}

#[test]
fn conv2d_valid_same_strided_and_tiled_match_plaintext() {
    let params = Preset::N4096.params(ring(37)).unwrap();
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let cases = [
        // MNIST CNN conv1, two images.
        Conv2dShape::new(2, 1, 28, 28, 4, 5, 1, Padding::Valid),
        // SAME padding, several channels.
        Conv2dShape::new(1, 6, 10, 9, 5, 3, 1, Padding::Same),
        // Stride 2 with SAME and odd sizes.
        Conv2dShape::new(2, 3, 11, 13, 4, 3, 2, Padding::Same),
        // Stride 3, explicit asymmetric padding, rectangular kernel.
        Conv2dShape {
            batch: 1,
            in_channels: 2,
            height: 12,
            width: 10,
            out_channels: 3,
            kernel_h: 4,
            kernel_w: 2,
            stride_h: 3,
            stride_w: 2,
            padding: Padding::Explicit {
                top: 1,
                bottom: 2,
                left: 0,
                right: 3,
            },
        },
        // A tensor larger than N: 3 x 40 x 40 = 4800 > 4096 forces tiling.
        Conv2dShape::new(1, 3, 40, 40, 2, 5, 1, Padding::Valid),
    ];
    for (k, shape) in cases.into_iter().enumerate() {
        let plan = LinearPlan::conv2d(&params, shape, &PlanOptions::default()).unwrap();
        let w = weights(r, shape.weight_len(), 14, &mut rng);
        let bias = shares(r, shape.out_channels, &mut rng);
        let layer = ServerLinear::conv2d(plan.clone(), &w, Some(&bias)).unwrap();
        let x = shares(r, shape.input_len(), &mut rng);
        let want = reference::conv2d(r, &shape, &x, &w, Some(&bias));
        assert_eq!(
            run(&params, &plan, &layer, &x, true, 30 + k as u64),
            want,
            "case {k}: {shape:?}"
        );
    }
}

#[test]
fn conv2d_forced_small_tiles_match_plaintext() {
    let params = Preset::N4096.params(ring(37)).unwrap();
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let shape = Conv2dShape::new(3, 5, 14, 14, 7, 5, 1, Padding::Same);
    let w = weights(r, shape.weight_len(), 10, &mut rng);
    let x = shares(r, shape.input_len(), &mut rng);
    let want = reference::conv2d(r, &shape, &x, &w, None);
    for blk in [
        Blocking {
            images: 1,
            channels: 2,
            filters: 3,
            height: 7,
            width: 9,
        },
        Blocking {
            images: 2,
            channels: 3,
            filters: 2,
            height: 18,
            width: 5,
        },
        Blocking {
            images: 3,
            channels: 1,
            filters: 1,
            height: 6,
            width: 6,
        },
    ] {
        let plan = LinearPlan::with_blocking(
            &params,
            LayerKind::Conv2d(shape),
            blk,
            &PlanOptions::default(),
        )
        .expect("blocking fits");
        let layer = ServerLinear::conv2d(plan.clone(), &w, None).unwrap();
        assert_eq!(run(&params, &plan, &layer, &x, true, 40), want, "{blk:?}");
    }
}

#[test]
fn batch_norm_matches_plaintext() {
    let params = Preset::N4096.params(ring(37)).unwrap();
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    for shape in [
        BatchNormShape::new(3, 16, 5, 5),
        BatchNormShape::new(2, 3, 40, 40),
    ] {
        let plan = LinearPlan::batch_norm(&params, shape, &PlanOptions::default()).unwrap();
        let scale = weights(r, shape.channels, 16, &mut rng);
        let shift = shares(r, shape.channels, &mut rng);
        let layer = ServerLinear::batch_norm(plan.clone(), &scale, Some(&shift)).unwrap();
        let x = shares(r, shape.len(), &mut rng);
        let want = reference::batch_norm(r, &shape, &x, &scale, Some(&shift));
        assert_eq!(run(&params, &plan, &layer, &x, true, 50), want, "{shape:?}");
    }
}

#[test]
fn full_range_weights_need_n8192_and_are_exact_there() {
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let shape = FcShape::new(3, 40, 6);
    // N = 4096 refuses full-range weights at 40 bits of flooding.
    let p4 = Preset::N4096.params(ring(37)).unwrap();
    let plan = LinearPlan::fc(&p4, shape, &PlanOptions::default()).unwrap();
    let w = weights(p4.ring(), 240, 36, &mut rng);
    assert!(matches!(
        ServerLinear::fc(plan, &w, None),
        Err(HeError::InsufficientFlooding { .. })
    ));
    for l in [37, 64] {
        let params = Preset::N8192.params(ring(l)).unwrap();
        let r = params.ring();
        let plan = LinearPlan::fc(&params, shape, &PlanOptions::default()).unwrap();
        let w = weights(r, 240, l - 1, &mut rng);
        let layer = ServerLinear::fc(plan.clone(), &w, None).unwrap();
        let x = shares(r, 3 * 40, &mut rng);
        let want = reference::fc(r, &shape, &x, &w, None);
        assert_eq!(
            run(&params, &plan, &layer, &x, true, 60 + l as u64),
            want,
            "l = {l}"
        );
    }
}

#[test]
fn conv2d_at_l64_matches_plaintext() {
    let params = Preset::N8192.params(ring(64)).unwrap();
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let shape = Conv2dShape::new(2, 3, 9, 9, 4, 3, 2, Padding::Same);
    let plan = LinearPlan::conv2d(&params, shape, &PlanOptions::default()).unwrap();
    let w = weights(r, shape.weight_len(), 63, &mut rng);
    let layer = ServerLinear::conv2d(plan.clone(), &w, None).unwrap();
    let x = shares(r, shape.input_len(), &mut rng);
    assert_eq!(
        run(&params, &plan, &layer, &x, true, 70),
        reference::conv2d(r, &shape, &x, &w, None)
    );
}

#[test]
fn small_rings_work_too() {
    for l in [8u32, 20, 41] {
        let params = Preset::N4096.params(ring(l)).unwrap();
        let r = params.ring();
        let mut rng = ChaCha20Rng::seed_from_u64(l as u64);
        let shape = FcShape::new(4, 33, 5);
        let plan = LinearPlan::fc(&params, shape, &PlanOptions::default()).unwrap();
        let w = weights(r, 33 * 5, (l - 1).min(12), &mut rng);
        let layer = ServerLinear::fc(plan.clone(), &w, None).unwrap();
        let x = shares(r, 4 * 33, &mut rng);
        assert_eq!(
            run(&params, &plan, &layer, &x, true, 80),
            reference::fc(r, &shape, &x, &w, None),
            "l = {l}"
        );
    }
}

#[test]
fn misuse_is_reported_not_panicking() {
    let params = Preset::N4096.params(ring(37)).unwrap();
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let shape = FcShape::new(2, 10, 3);
    let plan = LinearPlan::fc(&params, shape, &PlanOptions::default()).unwrap();
    let client = HeClient::new(&params, &mut rng);
    assert!(matches!(
        client.encrypt(&plan, &[0; 19], &mut rng),
        Err(HeError::InputLength { .. })
    ));
    let mut x = vec![0u64; 20];
    x[3] = 1 << 40;
    assert!(matches!(
        client.encrypt(&plan, &x, &mut rng),
        Err(HeError::NotInRing { index: 3, .. })
    ));
    assert!(ServerLinear::fc(plan.clone(), &[0; 29], None).is_err());
    assert!(ServerLinear::fc(plan.clone(), &[0; 30], Some(&[0; 2])).is_err());
    let conv = LinearPlan::conv2d(
        &params,
        Conv2dShape::new(1, 1, 4, 4, 1, 3, 1, Padding::Valid),
        &PlanOptions::default(),
    )
    .unwrap();
    assert!(ServerLinear::fc(conv, &[0; 9], None).is_err());
    // A plan for other parameters.
    let other = Preset::N4096.params(ring(38)).unwrap();
    let plan38 = LinearPlan::fc(&other, shape, &PlanOptions::default()).unwrap();
    assert!(matches!(
        client.encrypt(&plan38, &[0; 20], &mut rng),
        Err(HeError::ParamMismatch(_))
    ));
    let _ = r;
    let _: u64 = rng.next_u64();
}

#[test]
fn malformed_peer_messages_get_specific_errors() {
    let params = Preset::N4096.params(ring(37)).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let shape = FcShape::new(3, 20, 5);
    let plan = LinearPlan::fc(&params, shape, &PlanOptions::default()).unwrap();
    let client = HeClient::new(&params, &mut rng);
    let server = HeServer::new(client.public_key());
    let layer = ServerLinear::fc(plan.clone(), &[3; 100], None).unwrap();
    let good = client
        .encrypt(&plan, &[1; 60], &mut rng)
        .unwrap()
        .to_bytes(&plan);

    // Query: length, tag, count, residue range.
    assert!(matches!(
        Query::from_bytes(&plan, &good[..good.len() - 1]),
        Err(HeError::MessageLength { .. })
    ));
    assert!(matches!(
        Query::from_bytes(&plan, &[]),
        Err(HeError::MessageLength { .. })
    ));
    let mut bad = good.clone();
    bad[0] = 0x52;
    assert!(matches!(
        Query::from_bytes(&plan, &bad),
        Err(HeError::Malformed { .. })
    ));
    let mut bad = good.clone();
    bad[1] ^= 1;
    assert!(matches!(
        Query::from_bytes(&plan, &bad),
        Err(HeError::Malformed { .. })
    ));
    let mut bad = good.clone();
    for b in &mut bad[37..51] {
        *b = 0xff; // first coefficient = 2^109 - 1 > q - 1
    }
    assert!(matches!(
        Query::from_bytes(&plan, &bad),
        Err(HeError::CoefficientOutOfRange { index: 0, .. })
    ));

    // Reply: length, tag, padding.
    let q = Query::from_bytes(&plan, &good).unwrap();
    let (reply, _) = layer.respond(&server, &q, None, &mut rng).unwrap();
    let bytes = reply.as_bytes().to_vec();
    assert!(matches!(
        Reply::from_bytes(&plan, bytes[..bytes.len() - 1].to_vec()),
        Err(HeError::MessageLength { .. })
    ));
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(matches!(
        Reply::from_bytes(&plan, extra),
        Err(HeError::MessageLength { .. })
    ));
    let mut bad = bytes.clone();
    bad[0] = 0x51;
    assert!(matches!(
        Reply::from_bytes(&plan, bad),
        Err(HeError::Malformed { .. })
    ));
    // 15 results of 41 bits leave 1 padding bit in the last byte.
    assert_eq!(plan.stats().outputs, 15);
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] |= 0x80;
    assert!(matches!(
        Reply::from_bytes(&plan, bad),
        Err(HeError::Malformed { .. })
    ));
    assert!(Reply::from_bytes(&plan, bytes).is_ok());

    // Public key: other parameters, truncation, range.
    let pk = client.public_key_msg();
    let other = Preset::N4096.params(ring(41)).unwrap();
    assert!(matches!(
        fusion_he::PublicKeyMsg::decode(&other, pk.as_bytes()),
        Err(HeError::ParamMismatch(_))
    ));
    let b = pk.as_bytes();
    assert!(matches!(
        fusion_he::PublicKeyMsg::decode(&params, &b[..b.len() - 3]),
        Err(HeError::MessageLength { .. })
    ));
    assert!(matches!(
        fusion_he::PublicKeyMsg::decode(&params, &b[..3]),
        Err(HeError::MessageLength { .. })
    ));
    let mut bad = b.to_vec();
    let off = fusion_he::PublicKeyMsg::expected_len(&params) - params.poly_bytes();
    for x in &mut bad[off..off + 5] {
        *x = 0xff;
    }
    assert!(matches!(
        fusion_he::PublicKeyMsg::decode(&params, &bad),
        Err(HeError::CoefficientOutOfRange { .. })
    ));
}

// ---------------------------------------------------------------------------
// Response packing (opt-in: `ParamsBuilder::reply_packing`).

fn packed(preset: Preset, l: u32) -> HeParams {
    preset
        .builder(ring(l))
        .reply_packing(fusion_he::DEFAULT_PACKING_LEVELS)
        .build()
        .expect("packing parameters")
}

#[test]
fn packed_fc_batched_matches_plaintext_and_shrinks_the_reply() {
    let params = packed(Preset::N4096, 37);
    let plain = Preset::N4096.params(ring(37)).unwrap();
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(101);
    let shape = FcShape::new(16, 100, 30);
    let opts = PlanOptions::minimise_bytes();
    let plan = LinearPlan::fc(&params, shape, &opts).unwrap();
    let pk = *plan.packing().expect("a batched FC packs");
    assert!(pk.group >= 2 && pk.reply_cts < plan.result_cts(), "{pk:?}");
    let unpacked = LinearPlan::fc(&plain, shape, &opts).unwrap();
    assert!(
        plan.stats().bytes_down * 2 < unpacked.stats().bytes_down,
        "{:?} vs {:?}",
        plan.stats(),
        unpacked.stats()
    );
    let w = weights(r, 100 * 30, 16, &mut rng);
    let bias = shares(r, 30, &mut rng);
    let layer = ServerLinear::fc(plan.clone(), &w, Some(&bias)).unwrap();
    let x = shares(r, 16 * 100, &mut rng);
    let want = reference::fc(r, &shape, &x, &w, Some(&bias));
    assert_eq!(run(&params, &plan, &layer, &x, true, 1), want);
    assert_eq!(run(&params, &plan, &layer, &x, false, 2), want);
}

#[test]
fn packed_fc_with_forced_blockings_matches_plaintext() {
    let params = packed(Preset::N4096, 37);
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(102);
    let shape = FcShape::new(9, 70, 13);
    let w = weights(r, 70 * 13, 12, &mut rng);
    let x = shares(r, 9 * 70, &mut rng);
    let want = reference::fc(r, &shape, &x, &w, None);
    // Uneven blocks, several filters per block, partial and single-leaf last groups.
    let mut packed_plans = 0;
    for (nb, cb, mb) in [
        (4, 16, 3),
        (9, 32, 1),
        (2, 8, 13),
        (1, 64, 5),
        (3, 2, 1),
        (9, 70, 1),
    ] {
        let blk = Blocking {
            images: nb,
            channels: cb,
            filters: mb,
            height: 1,
            width: 1,
        };
        let plan =
            LinearPlan::with_blocking(&params, LayerKind::Fc(shape), blk, &PlanOptions::default())
                .expect("blocking fits");
        packed_plans += plan.packing().is_some() as usize;
        let layer = ServerLinear::fc(plan.clone(), &w, None).unwrap();
        assert_eq!(
            run(&params, &plan, &layer, &x, true, 3),
            want,
            "{blk:?} {:?}",
            plan.packing()
        );
    }
    assert!(packed_plans >= 4);
}

#[test]
fn packed_conv2d_matches_plaintext() {
    let params = packed(Preset::N4096, 37);
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(103);
    let cases = [
        // One output pixel per image (kernel = image): results have a stride.
        (Conv2dShape::new(64, 4, 4, 4, 8, 4, 1, Padding::Valid), true),
        // 1 x 1 output through a stride-2 kernel (space-to-depth channels).
        (Conv2dShape::new(48, 2, 6, 6, 3, 5, 2, Padding::Valid), true),
        // Dense output rows: no stride, the reply is sent unpacked.
        (
            Conv2dShape::new(2, 1, 28, 28, 4, 5, 1, Padding::Valid),
            false,
        ),
        (
            Conv2dShape::new(2, 3, 11, 13, 4, 3, 2, Padding::Same),
            false,
        ),
    ];
    for (k, (shape, packs)) in cases.into_iter().enumerate() {
        let plan = LinearPlan::conv2d(&params, shape, &PlanOptions::minimise_bytes()).unwrap();
        assert_eq!(
            plan.packing().is_some(),
            packs,
            "case {k}: {:?}",
            plan.blocking()
        );
        let w = weights(r, shape.weight_len(), 14, &mut rng);
        let bias = shares(r, shape.out_channels, &mut rng);
        let layer = ServerLinear::conv2d(plan.clone(), &w, Some(&bias)).unwrap();
        let x = shares(r, shape.input_len(), &mut rng);
        let want = reference::conv2d(r, &shape, &x, &w, Some(&bias));
        assert_eq!(
            run(&params, &plan, &layer, &x, true, 130 + k as u64),
            want,
            "case {k}: {shape:?}"
        );
    }
    // A forced blocking with several filters and images per polynomial.
    let shape = Conv2dShape::new(4, 2, 3, 3, 6, 3, 1, Padding::Valid);
    let blk = Blocking {
        images: 2,
        channels: 2,
        filters: 3,
        height: 3,
        width: 3,
    };
    let plan = LinearPlan::with_blocking(
        &params,
        LayerKind::Conv2d(shape),
        blk,
        &PlanOptions::default(),
    )
    .unwrap();
    assert!(plan.packing().is_some());
    let w = weights(r, shape.weight_len(), 14, &mut rng);
    let layer = ServerLinear::conv2d(plan.clone(), &w, None).unwrap();
    let x = shares(r, shape.input_len(), &mut rng);
    assert_eq!(
        run(&params, &plan, &layer, &x, true, 140),
        reference::conv2d(r, &shape, &x, &w, None)
    );
}

#[test]
fn packed_batch_norm_matches_plaintext() {
    let params = packed(Preset::N4096, 37);
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(104);
    // Per-feature scaling (1 x 1 spatial) with a power-of-two channel block packs.
    let shape = BatchNormShape::new(12, 40, 1, 1);
    let blk = Blocking {
        images: 12,
        channels: 4,
        filters: 4,
        height: 1,
        width: 1,
    };
    let plan = LinearPlan::with_blocking(
        &params,
        LayerKind::BatchNorm(shape),
        blk,
        &PlanOptions::default(),
    )
    .unwrap();
    assert!(plan.packing().is_some(), "{:?}", plan.blocking());
    let scale = weights(r, 40, 16, &mut rng);
    let shift = shares(r, 40, &mut rng);
    let layer = ServerLinear::batch_norm(plan.clone(), &scale, Some(&shift)).unwrap();
    let x = shares(r, shape.len(), &mut rng);
    let want = reference::batch_norm(r, &shape, &x, &scale, Some(&shift));
    assert_eq!(run(&params, &plan, &layer, &x, true, 150), want);
    // The planner's choice, packed or not, is exact too.
    for shape in [
        BatchNormShape::new(3, 16, 5, 5),
        BatchNormShape::new(64, 8, 1, 1),
    ] {
        let plan = LinearPlan::batch_norm(&params, shape, &PlanOptions::minimise_bytes()).unwrap();
        let scale = weights(r, shape.channels, 16, &mut rng);
        let layer = ServerLinear::batch_norm(plan.clone(), &scale, None).unwrap();
        let x = shares(r, shape.len(), &mut rng);
        assert_eq!(
            run(&params, &plan, &layer, &x, true, 151),
            reference::batch_norm(r, &shape, &x, &scale, None),
            "{shape:?} {:?}",
            plan.packing()
        );
    }
}

#[test]
fn packed_fc_at_l64_on_n8192_matches_plaintext() {
    let params = packed(Preset::N8192, 64);
    let r = params.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(105);
    let shape = FcShape::new(64, 256, 20);
    let plan = LinearPlan::fc(&params, shape, &PlanOptions::minimise_bytes()).unwrap();
    assert!(plan.packing().is_some(), "{:?}", plan.blocking());
    let w = weights(r, 256 * 20, 63, &mut rng);
    let layer = ServerLinear::fc(plan.clone(), &w, None).unwrap();
    let x = shares(r, 64 * 256, &mut rng);
    assert_eq!(
        run(&params, &plan, &layer, &x, true, 160),
        reference::fc(r, &shape, &x, &w, None)
    );
}

#[test]
fn packing_is_refused_without_galois_keys_and_keys_without_packing() {
    let params = packed(Preset::N4096, 37);
    let plain = Preset::N4096.params(ring(37)).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(106);
    let shape = FcShape::new(32, 128, 40);
    let plan = LinearPlan::fc(&params, shape, &PlanOptions::minimise_bytes()).unwrap();
    assert!(plan.packing().is_some());
    let client = HeClient::new(&params, &mut rng);
    let server = HeServer::new(client.public_key());
    assert!(!server.has_galois_keys());
    let layer = ServerLinear::fc(plan.clone(), &[1; 128 * 40], None).unwrap();
    let q = client.encrypt(&plan, &[0; 32 * 128], &mut rng).unwrap();
    assert!(matches!(
        layer.respond(&server, &q, None, &mut rng),
        Err(HeError::ParamMismatch(_))
    ));
    // No keys for parameters without packing; keys of one session are refused by another's.
    let plain_client = HeClient::new(&plain, &mut rng);
    assert!(matches!(
        plain_client.galois_keys(&mut rng),
        Err(HeError::InvalidParams(_))
    ));
    assert_eq!(plain.galois_key_bytes(), 0);
    let gk = client.galois_keys(&mut rng).unwrap();
    assert!(matches!(
        HeServer::with_galois_keys(plain_client.public_key(), &gk),
        Err(HeError::ParamMismatch(_))
    ));
}

#[test]
fn malformed_galois_keys_get_specific_errors() {
    let params = packed(Preset::N4096, 37);
    let mut rng = ChaCha20Rng::seed_from_u64(107);
    let client = HeClient::new(&params, &mut rng);
    let msg = client.galois_key_msg(&mut rng).unwrap();
    let good = msg.as_bytes();
    assert_eq!(good.len(), GaloisKeyMsg::expected_len(&params));
    assert!(GaloisKeyMsg::decode(&params, good).is_ok());
    // Length: truncated, extended, tiny.
    for bad in [&good[..good.len() - 1], &good[..3], &[][..]] {
        assert!(matches!(
            GaloisKeyMsg::decode(&params, bad),
            Err(HeError::MessageLength { .. })
        ));
    }
    let mut longer = good.to_vec();
    longer.push(0);
    assert!(matches!(
        GaloisKeyMsg::decode(&params, &longer),
        Err(HeError::MessageLength { .. })
    ));
    // Tag and count.
    let mut bad = good.to_vec();
    bad[0] = 0x50;
    assert!(matches!(
        GaloisKeyMsg::decode(&params, &bad),
        Err(HeError::Malformed { .. })
    ));
    let mut bad = good.to_vec();
    bad[1] ^= 1;
    assert!(matches!(
        GaloisKeyMsg::decode(&params, &bad),
        Err(HeError::Malformed { .. })
    ));
    // Other parameters (other ring, other depth, no packing at all).
    for other in [
        packed(Preset::N4096, 38),
        Preset::N4096
            .builder(ring(37))
            .reply_packing(5)
            .build()
            .unwrap(),
        Preset::N4096.params(ring(37)).unwrap(),
    ] {
        assert!(matches!(
            GaloisKeyMsg::decode(&other, good),
            Err(HeError::ParamMismatch(_))
        ));
    }
    // A residue above its prime, and non-zero padding.
    let off = good.len() - params.galois_key_bytes() + (7 + params.fingerprint().len() + 32);
    let mut bad = good.to_vec();
    for b in &mut bad[off..off + 5] {
        *b = 0xff;
    }
    assert!(matches!(
        GaloisKeyMsg::decode(&params, &bad),
        Err(HeError::CoefficientOutOfRange { index: 0, .. })
    ));
}
