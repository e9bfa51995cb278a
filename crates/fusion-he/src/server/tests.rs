//! The noise tests of the server: measured noise before flooding (through the
//! test probe of [`crate::finalize::Flooding`]) and after modulus switching,
//! against the analytic bounds of [`crate::noise`].

use super::*;
use crate::client::HeClient;
use crate::{BatchNormShape, Conv2dShape, FcShape, Padding, PlanOptions, Preset, reference};
use fusion_core::ring::Ring;
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

struct Measured {
    pre_flood_log2: f64,
    final_log2: f64,
    samples: usize,
}

/// Runs `trials` calls and measures the noise of every result: before flooding
/// and modulus switching (at modulus q, three-prime presets only) and after, in
/// units of 2^(l + k_a).
fn measure(
    layer: &ServerLinear,
    want: &dyn Fn(&[u64]) -> Vec<u64>,
    trials: usize,
    seed: u64,
) -> Measured {
    let plan = layer.plan();
    let params = plan.params().clone();
    let p = &params.inner;
    let ring = params.ring();
    let n = p.n;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut pre_max = f64::NEG_INFINITY;
    let mut fin_max = 0f64;
    let mut samples = 0;
    for _ in 0..trials {
        let client = HeClient::new(&params, &mut rng);
        let server = if params.reply_packing_levels() > 0 {
            let gk = client.galois_keys(&mut rng).unwrap();
            HeServer::with_galois_keys(client.public_key(), &gk).unwrap()
        } else {
            HeServer::new(client.public_key())
        };
        let x: Vec<u64> = (0..plan.input_len())
            .map(|_| ring.random(&mut rng))
            .collect();
        let (xc, xs): (Vec<u64>, Vec<u64>) = x.iter().map(|&v| ring.share(v, &mut rng)).unzip();
        let y = want(&x);
        let q = client.encrypt(plan, &xc, &mut rng).unwrap();
        *layer.flood.probe.lock().unwrap() = Some(Vec::new());
        let (reply, ys) = layer.respond(&server, &q, Some(&xs), &mut rng).unwrap();
        let probed = layer.flood.probe.lock().unwrap().take().unwrap();
        assert_eq!(
            probed.len(),
            plan.output_cts(),
            "one probe per reply ciphertext"
        );
        // Before flooding, at modulus q (exact CRT with big integers).
        {
            use num_bigint::BigUint;
            use num_traits::ToPrimitive;
            let l = p.ring.bits();
            let qq: BigUint = p.primes.iter().map(|&x| BigUint::from(x)).product();
            let crt: Vec<BigUint> = p
                .primes
                .iter()
                .map(|&pi| {
                    let qs = &qq / pi;
                    let inv = crate::arith::inv_mod(
                        (&qs % pi).to_u64_digits().first().copied().unwrap_or(0),
                        pi,
                    );
                    (qs * inv) % &qq
                })
                .collect();
            let t = BigUint::from(1u8) << l;
            let half_q = &qq >> 1;
            for pr in probed {
                let mut a = pr.a.clone();
                crate::poly::fwd(&params, &mut a);
                crate::poly::normalize(&params, &mut a);
                let mut neg_as = vec![0u64; a.len()];
                crate::poly::mul_acc(&params, &mut neg_as, &a, client.secret_key().neg_s_ntt());
                crate::poly::inv(&params, &mut neg_as);
                for (idx, coef, b) in &pr.outputs {
                    let coef = *coef;
                    let mut phase = BigUint::from(0u8);
                    for (i, &pi) in p.primes.iter().enumerate() {
                        phase += &crt[i] * ((b[i] + pi - neg_as[i * n + coef]) % pi);
                    }
                    let phase = phase % &qq;
                    // round(q z / t)
                    let scaled = ((&qq * y[*idx] + (&t >> 1u8)) / &t) % &qq;
                    let e = (phase + &qq - scaled) % &qq;
                    let e = if e > half_q { &qq - e } else { e };
                    pre_max = pre_max.max(e.to_f64().unwrap_or(f64::INFINITY).log2());
                }
            }
        }
        // After: the client's phases.
        let mut off = 5;
        let ka = p.ring.bits() + p.k_a;
        for ct in 0..plan.output_cts() {
            let (sa, sb) = Reply::segment(plan, ct);
            for (idx, ph) in client.phases(plan, ct, &reply.bytes[off..off + sa + sb]) {
                let z = ring.sub(y[idx], ys[idx]) as u128;
                let eta = ph.wrapping_sub(z << p.k_a) & crate::arith::mask128(ka);
                let eta = if eta >> (ka - 1) == 1 {
                    (crate::arith::mask128(ka) - eta + 1) as f64
                } else {
                    eta as f64
                };
                fin_max = fin_max.max(eta);
                samples += 1;
            }
            off += sa + sb;
        }
        let yc = client.decrypt(plan, &reply).unwrap();
        for i in 0..y.len() {
            assert_eq!(ring.reconstruct(yc[i], ys[i]), y[i]);
        }
    }
    Measured {
        pre_flood_log2: pre_max.max(0.0),
        final_log2: fin_max.max(1.0).log2(),
        samples,
    }
}

fn check(name: &str, layer: &ServerLinear, m: &Measured) {
    let plan = layer.plan();
    let params = plan.params();
    let nz = plan.noise();
    let k_a = params.reply_a_extra_bits() as f64;
    let total_log2 = k_a - 1.0 - nz.margin_bits;
    // Packed: the high-probability bound of E + nu plus the worst-case
    // key-switching noise (which needs no flooding, see crate::pack).
    let ks = plan
        .packing()
        .map_or(0.0, |p| 2f64.powf(p.key_switch_noise_log2));
    let stat = (2f64.powf(nz.stat_noise_log2(params, layer.weight_bits())) + ks).log2();
    println!(
        "[noise] {name}: {} samples; {}before flooding max |E| = 2^{:.1} (high-probability bound 2^{stat:.1}, \
         worst case 2^{:.1}, room to the threshold 2^{:.1}: {:.1} bits); after switching max |eta| = 2^{:.2} \
         of threshold 2^{} (worst-case bound 2^{total_log2:.2}, margin {:.2} bits, measured margin {:.2} bits); \
         flooding 2^{} gives {:.1} bits at weights 2^{}",
        m.samples,
        plan.packing().map_or(String::new(), |p| format!(
            "packed {} -> {} cts (depth {}, worst-case key-switching noise 2^{:.1}); ",
            plan.result_cts(),
            p.reply_cts,
            p.depth,
            p.key_switch_noise_log2
        )),
        m.pre_flood_log2,
        nz.layer_noise_log2,
        nz.threshold_log2,
        nz.threshold_log2 - m.pre_flood_log2,
        m.final_log2,
        k_a - 1.0,
        nz.margin_bits,
        k_a - 1.0 - m.final_log2,
        nz.flood_bits,
        layer.flood_security_bits(),
        layer.weight_bits(),
    );
    assert!(
        m.pre_flood_log2 <= stat,
        "{name}: pre-flood noise above the high-probability bound"
    );
    assert!(m.pre_flood_log2 <= nz.layer_noise_log2);
    assert!(
        m.final_log2 <= total_log2 + 1e-9,
        "{name}: final noise above the worst-case bound"
    );
    assert!(m.final_log2 < k_a - 1.0);
}

/// `len` weights uniform in `[-2^bits, 2^bits]` (signed ring elements).
fn weights(rng: &mut ChaCha20Rng, ring: Ring, len: usize, bits: u32) -> Vec<u64> {
    (0..len)
        .map(|_| ring.from_signed(rng.random_range(-(1i64 << bits)..=(1i64 << bits))))
        .collect()
}

/// Measures an FC layer of `shape` with weights `w` on `params` over
/// `trials` calls and checks it against the bounds.
fn check_fc(name: &str, params: &HeParams, shape: FcShape, w: &[u64], trials: usize, seed: u64) {
    let r = params.ring();
    let plan = LinearPlan::fc(params, shape, &PlanOptions::default()).unwrap();
    let layer = ServerLinear::fc(plan, w, None).unwrap();
    let m = measure(
        &layer,
        &|x| reference::fc(r, &shape, x, w, None),
        trials,
        seed,
    );
    check(name, &layer, &m);
}

#[test]
fn measured_noise_stays_below_the_analytic_bounds() {
    let opts = PlanOptions::default();
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let p37 = Preset::N4096.params(Ring::new(37).unwrap()).unwrap();
    let r = p37.ring();
    // FC, N = 4096, l = 37, |w| <= 2^15.
    let shape = FcShape::new(16, 784, 16);
    let wf = weights(&mut rng, r, 784 * 16, 15);
    check_fc("fc 784->16 b16, N4096 l37", &p37, shape, &wf, 10, 1);
    // Convolution.
    let cs = Conv2dShape::new(2, 8, 12, 12, 8, 5, 1, Padding::Same);
    let wc = weights(&mut rng, r, cs.weight_len(), 15);
    let layer =
        ServerLinear::conv2d(LinearPlan::conv2d(&p37, cs, &opts).unwrap(), &wc, None).unwrap();
    let m = measure(&layer, &|x| reference::conv2d(r, &cs, x, &wc, None), 5, 2);
    check("conv 12x12x8 5x5 8 SAME b2, N4096 l37", &layer, &m);
    // Batch norm.
    let bs = BatchNormShape::new(4, 8, 10, 10);
    let wb = weights(&mut rng, r, 8, 15);
    let layer =
        ServerLinear::batch_norm(LinearPlan::batch_norm(&p37, bs, &opts).unwrap(), &wb, None)
            .unwrap();
    let m = measure(
        &layer,
        &|x| reference::batch_norm(r, &bs, x, &wb, None),
        5,
        3,
    );
    check("batch norm 10x10x8 b4, N4096 l37", &layer, &m);
    // Rounded queries (crate::query_rounding): FC and convolution with the
    // query's b rounded to multiples of 2^12; |w| <= 2^10, as for trained
    // fixed-point weights.
    let pr37 = Preset::N4096
        .builder(Ring::new(37).unwrap())
        .query_rounding(12)
        .build()
        .unwrap();
    let wf = weights(&mut rng, r, 784 * 16, 10);
    let name = "fc 784->16 b16, N4096 l37, queries rounded by 2^12";
    check_fc(name, &pr37, shape, &wf, 10, 11);
    let wc = weights(&mut rng, r, cs.weight_len(), 10);
    let layer =
        ServerLinear::conv2d(LinearPlan::conv2d(&pr37, cs, &opts).unwrap(), &wc, None).unwrap();
    let m = measure(&layer, &|x| reference::conv2d(r, &cs, x, &wc, None), 5, 12);
    check(
        "conv 12x12x8 5x5 8 SAME b2, N4096 l37, queries rounded by 2^12",
        &layer,
        &m,
    );
    // N = 8192, l = 64, full-range weights.
    let p64 = Preset::N8192.params(Ring::new(64).unwrap()).unwrap();
    let r64 = p64.ring();
    let shape = FcShape::new(8, 300, 8);
    let wf: Vec<u64> = (0..2400).map(|_| r64.random(&mut rng)).collect();
    check_fc(
        "fc 300->8 b8, N8192 l64, full-range weights",
        &p64,
        shape,
        &wf,
        4,
        4,
    );
    let pr64 = Preset::N8192
        .builder(Ring::new(64).unwrap())
        .query_rounding(20)
        .build()
        .unwrap();
    let name = "fc 300->8 b8, N8192 l64, full-range weights, queries rounded by 2^20";
    check_fc(name, &pr64, shape, &wf, 4, 10);
    // N = 8192 at l = 37 (the per-session setting) leaves room for much more:
    // rounding by 2^90 (multi-limb rounding), |w| <= 2^10.
    let pr8 = Preset::N8192
        .builder(Ring::new(37).unwrap())
        .query_rounding(90)
        .build()
        .unwrap();
    let w8 = weights(&mut ChaCha20Rng::seed_from_u64(102), r, 2400, 10);
    check_fc(
        "fc 300->8 b8, N8192 l37, queries rounded by 2^90",
        &pr8,
        shape,
        &w8,
        4,
        13,
    );

    // Response packing at the default depth: FC (batched, deepest groups),
    // a strided convolution and per-feature scaling; N = 8192, l = 64.
    let pk37 = Preset::N4096
        .builder(Ring::new(37).unwrap())
        .reply_packing(crate::DEFAULT_PACKING_LEVELS)
        .build()
        .unwrap();
    let bytes = PlanOptions::minimise_bytes();
    let mut rng2 = ChaCha20Rng::seed_from_u64(101);
    let mut rng = ChaCha20Rng::seed_from_u64(100);
    let mut w = |ring: Ring, len: usize, bits: u32| weights(&mut rng, ring, len, bits);
    let shape = FcShape::new(16, 784, 128);
    let wf = w(r, 784 * 128, 15);
    let plan = LinearPlan::fc(&pk37, shape, &bytes).unwrap();
    assert_eq!(plan.packing().map(|p| p.depth), Some(7));
    let layer = ServerLinear::fc(plan, &wf, None).unwrap();
    let m = measure(&layer, &|x| reference::fc(r, &shape, x, &wf, None), 2, 5);
    check("packed fc 784->128 b16, N4096 l37", &layer, &m);
    // The same with rounded queries (|w| <= 2^10).
    let pkr = Preset::N4096
        .builder(Ring::new(37).unwrap())
        .reply_packing(crate::DEFAULT_PACKING_LEVELS)
        .query_rounding(10)
        .build()
        .unwrap();
    let wf = w(r, 784 * 128, 10);
    let layer = ServerLinear::fc(LinearPlan::fc(&pkr, shape, &bytes).unwrap(), &wf, None).unwrap();
    let m = measure(&layer, &|x| reference::fc(r, &shape, x, &wf, None), 2, 9);
    check(
        "packed fc 784->128 b16, N4096 l37, queries rounded by 2^10",
        &layer,
        &m,
    );
    let cs = Conv2dShape::new(64, 4, 4, 4, 8, 4, 1, Padding::Valid);
    let wc = w(r, cs.weight_len(), 15);
    let plan = LinearPlan::conv2d(&pk37, cs, &bytes).unwrap();
    assert!(plan.packing().is_some());
    let layer = ServerLinear::conv2d(plan, &wc, None).unwrap();
    let m = measure(&layer, &|x| reference::conv2d(r, &cs, x, &wc, None), 3, 6);
    check("packed conv 4x4x4 4x4 8 VALID b64, N4096 l37", &layer, &m);
    let bs = BatchNormShape::new(64, 64, 1, 1);
    let wb = w(r, 64, 15);
    let blk = crate::Blocking {
        images: 64,
        channels: 4,
        filters: 4,
        height: 1,
        width: 1,
    };
    let plan =
        LinearPlan::with_blocking(&pk37, crate::LayerKind::BatchNorm(bs), blk, &bytes).unwrap();
    assert!(plan.packing().is_some());
    let layer = ServerLinear::batch_norm(plan, &wb, None).unwrap();
    let m = measure(
        &layer,
        &|x| reference::batch_norm(r, &bs, x, &wb, None),
        3,
        7,
    );
    check("packed per-feature scaling 64 b64, N4096 l37", &layer, &m);
    let pk64 = Preset::N8192
        .builder(Ring::new(64).unwrap())
        .reply_packing(crate::DEFAULT_PACKING_LEVELS)
        .build()
        .unwrap();
    let shape = FcShape::new(32, 256, 64);
    let wf: Vec<u64> = (0..256 * 64).map(|_| r64.random(&mut rng2)).collect();
    let plan = LinearPlan::fc(&pk64, shape, &bytes).unwrap();
    assert!(plan.packing().is_some());
    let layer = ServerLinear::fc(plan, &wf, None).unwrap();
    let m = measure(&layer, &|x| reference::fc(r64, &shape, x, &wf, None), 2, 8);
    check(
        "packed fc 256->64 b32, N8192 l64, full-range weights",
        &layer,
        &m,
    );
}

/// The byte-level halves an async driver calls: setup messages, query bytes,
/// reply bytes, with and without response packing.
#[test]
fn byte_level_halves_round_trip() {
    let ring = Ring::new(37).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    for levels in [0, crate::DEFAULT_PACKING_LEVELS] {
        let params = Preset::N4096
            .builder(ring)
            .reply_packing(levels)
            .build()
            .unwrap();
        let shape = FcShape::new(4, 20, 6);
        let plan = LinearPlan::fc(&params, shape, &PlanOptions::minimise_bytes()).unwrap();
        let w: Vec<u64> = (0..120)
            .map(|_| ring.from_signed(rng.random_range(-(1i64 << 15)..=(1i64 << 15))))
            .collect();
        let layer = ServerLinear::fc(plan.clone(), &w, None).unwrap();
        let client = HeClient::new(&params, &mut rng);
        let (pk, gk) = client.setup_messages(&mut rng).unwrap();
        assert_eq!(gk.is_some(), levels > 0);
        assert_eq!(pk.as_bytes().len(), PublicKeyMsg::expected_len(&params));
        let gk_bytes = gk.as_ref().map(|g| g.as_bytes());
        let server = HeServer::from_setup_messages(&params, pk.as_bytes(), gk_bytes).unwrap();
        assert_eq!(server.has_galois_keys(), levels > 0);
        // The Galois keys must come exactly when the parameters enable packing.
        let wrong = if levels > 0 {
            None
        } else {
            Some(pk.as_bytes())
        };
        assert!(matches!(
            HeServer::from_setup_messages(&params, pk.as_bytes(), wrong),
            Err(HeError::ParamMismatch(_))
        ));
        let x: Vec<u64> = (0..80).map(|_| ring.random(&mut rng)).collect();
        let (xc, xs): (Vec<u64>, Vec<u64>) = x.iter().map(|&v| ring.share(v, &mut rng)).unzip();
        let query = client.query_bytes(&plan, &xc, &mut rng).unwrap();
        assert_eq!(query.len(), Query::expected_len(&plan));
        let (reply, ys) = layer
            .respond_bytes(&server, &query, Some(&xs), &mut rng)
            .unwrap();
        assert_eq!(reply.len(), Reply::expected_len(&plan));
        let yc = client
            .decrypt_bytes(&plan, reply.as_bytes().to_vec())
            .unwrap();
        let want = reference::fc(ring, &shape, &x, &w, None);
        for i in 0..want.len() {
            assert_eq!(ring.reconstruct(yc[i], ys[i]), want[i]);
        }
    }
}
