//! Every protocol against plaintext, both parties over a local QUIC
//! connection, for both OT flavours and `l = 37` and `l = 64`, on random
//! inputs and edge values (0, ±1, next to ±2^{l-1} and ±2^{l-2}, shares that
//! wrap around). Seeded.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use fusion_core::ring::Ring;
use fusion_ot::{Bits, Iknp, OtConfig, OtFlavour, Silent};
use rand::{Rng, RngExt, SeedableRng, rngs::ChaCha20Rng};

const N: usize = 300;

/// Instantiates `check::<F>(l)` for both flavours and both ring sizes.
macro_rules! matrix {
    ($name:ident, $check:ident) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn silent_l37() {
                $check::<Silent>(37).await
            }
            #[tokio::test]
            async fn silent_l64() {
                $check::<Silent>(64).await
            }
            #[tokio::test]
            async fn iknp_l37() {
                $check::<Iknp>(37).await
            }
            #[tokio::test]
            async fn iknp_l64() {
                $check::<Iknp>(64).await
            }
        }
    };
}

fn seed(l: u32, tag: u64) -> u64 {
    tag * 1000 + u64::from(l)
}

fn floor_shift(ring: Ring, x: u64, f: u32) -> i64 {
    ring.to_signed(x) >> f
}

async fn check_millionaires<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 1)).await;
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 1));
    for bits in [1u32, 5, 12, l - 1, l.min(64)] {
        let m = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let mut a: Vec<u64> = (0..N).map(|_| rng.next_u64() & m).collect();
        let mut b: Vec<u64> = (0..N).map(|_| rng.next_u64() & m).collect();
        // equal values, extremes, and values differing only in the lowest bit
        for (x, y) in [
            (0, 0),
            (m, m),
            (0, m),
            (m, 0),
            (1, 0),
            (0, 1),
            (m - 1, m),
            (m, m - 1),
        ] {
            a.push(x & m);
            b.push(y & m);
        }
        for i in 0..20 {
            a.push(a[i]);
            b.push(a[i]);
            a.push(a[i] | 1);
            b.push(a[i] & !1);
        }
        let (g0, g1) =
            tokio::try_join!(s.millionaires(&a, bits), c.millionaires(&b, bits)).unwrap();
        let g = open_bits(&g0, &g1);
        for i in 0..a.len() {
            assert_eq!(g[i], a[i] > b[i], "bits {bits}: {} > {}", a[i], b[i]);
        }
    }
}
matrix!(
    millionaires_matches_plaintext_comparison,
    check_millionaires
);

async fn check_drelu<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 2)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 2));
    let xs = inputs(ring, N, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    let (d0, d1) = tokio::try_join!(s.drelu(&a), c.drelu(&b)).unwrap();
    let d = open_bits(&d0, &d1);
    for (i, &x) in xs.iter().enumerate() {
        assert_eq!(d[i], ring.to_signed(x) >= 0, "x = {}", ring.to_signed(x));
    }
}
matrix!(drelu_matches_the_sign_of_every_element, check_drelu);

async fn check_relu<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 3)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 3));
    let xs = inputs(ring, N, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    let ((y0, d0), (y1, d1)) =
        tokio::try_join!(s.relu_with_drelu(&a), c.relu_with_drelu(&b)).unwrap();
    let y = open(ring, &y0, &y1);
    let d = open_bits(&d0, &d1);
    for (i, &x) in xs.iter().enumerate() {
        assert_eq!(
            y[i],
            ring.from_signed(ring.to_signed(x).max(0)),
            "x = {}",
            ring.to_signed(x)
        );
        assert_eq!(d[i], ring.to_signed(x) >= 0);
    }
}
matrix!(relu_matches_plaintext_for_every_element, check_relu);

async fn check_truncate<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 4)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 4));
    // The stated range [-2^{l-2}, 2^{l-2}), including both ends.
    let xs = bounded(ring, l - 2, N, &mut rng);
    for f in [1u32, 12, l - 2] {
        let (a, b) = share(ring, &xs, &mut rng);
        let (t0, t1) = tokio::try_join!(s.truncate(&a, f), c.truncate(&b, f)).unwrap();
        let t = open(ring, &t0, &t1);
        let mut exact = 0;
        for (i, &x) in xs.iter().enumerate() {
            let want = floor_shift(ring, x, f);
            let got = ring.to_signed(t[i]);
            assert!(
                got == want || got == want - 1,
                "f {f}: x = {} -> {got}, floor {want}",
                ring.to_signed(x)
            );
            exact += usize::from(got == want);
        }
        // The error is a carry of random low bits: both outcomes occur.
        assert!(
            exact > 0 && (f == 1 || exact < xs.len()),
            "f {f}: {exact} exact of {}",
            xs.len()
        );
    }
}
matrix!(
    truncate_is_floor_or_one_less_on_the_quarter_range,
    check_truncate
);

async fn check_truncate_nonneg<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 5)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 5));
    let top = (1u64 << (l - 1)) - 1;
    let mut xs: Vec<u64> = (0..N).map(|_| rng.next_u64() & top).collect();
    for _ in 0..6 {
        xs.extend([0, 1, 2, top, top - 1, 1 << (l - 2), (1 << (l - 2)) - 1]);
    }
    for f in [1u32, 12, l - 1] {
        let (a, b) = share(ring, &xs, &mut rng);
        let (t0, t1) =
            tokio::try_join!(s.truncate_nonneg(&a, f), c.truncate_nonneg(&b, f)).unwrap();
        let t = open(ring, &t0, &t1);
        for (i, &x) in xs.iter().enumerate() {
            let want = floor_shift(ring, x, f);
            let got = ring.to_signed(t[i]);
            assert!(
                got == want || got == want - 1,
                "f {f}: x = {x} -> {got}, floor {want}"
            );
        }
    }
}
matrix!(
    truncate_nonneg_is_floor_or_one_less_on_nonnegative_inputs,
    check_truncate_nonneg
);

async fn check_truncate_exact<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 6)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 6));
    let xs = inputs(ring, N, &mut rng);
    for f in [1u32, 4, 12, l - 1] {
        let (a, b) = share(ring, &xs, &mut rng);
        let (t0, t1) = tokio::try_join!(s.truncate_exact(&a, f), c.truncate_exact(&b, f)).unwrap();
        let t = open(ring, &t0, &t1);
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!(
                ring.to_signed(t[i]),
                floor_shift(ring, x, f),
                "f {f}: x = {}",
                ring.to_signed(x)
            );
        }
    }
}
matrix!(
    truncate_exact_is_exact_for_every_element,
    check_truncate_exact
);

async fn check_relu_truncate<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 7)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 7));
    for f in [1u32, 12] {
        // The comparison skips the low d = min(f + 1, l - 2) bits: the contract
        // covers every x >= -2^(l-1) + 2^d.
        let d = (f + 1).min(l - 2);
        let lowest = ring.to_signed(ring.from_signed(i64::MIN >> (64 - l))) + (1i64 << d);
        let mut xs: Vec<u64> = inputs(ring, N, &mut rng)
            .into_iter()
            .filter(|&x| ring.to_signed(x) >= lowest)
            .collect();
        // Where the dropped bits' carry can flip the sign: 0 <= x < 2^d (the
        // output must still be floor(x / 2^f) or one less) and the lowest
        // values covered.
        for v in 0..(1i64 << d).min(64) {
            xs.extend(
                [v, (1i64 << d) - 1 - v, (1i64 << d) + v, -1 - v].map(|v| ring.from_signed(v)),
            );
        }
        xs.extend([lowest, lowest + 1, lowest + 2].map(|v| ring.from_signed(v)));
        let (a, b) = share(ring, &xs, &mut rng);
        let (t0, t1) = tokio::try_join!(s.relu_truncate(&a, f), c.relu_truncate(&b, f)).unwrap();
        let t = open(ring, &t0, &t1);
        for (i, &x) in xs.iter().enumerate() {
            let got = ring.to_signed(t[i]);
            if ring.to_signed(x) < 0 {
                assert_eq!(got, 0, "f {f}: x = {}", ring.to_signed(x));
            } else {
                let want = floor_shift(ring, x, f);
                assert!(
                    got == want || got == want - 1,
                    "f {f}: x = {} -> {got}",
                    ring.to_signed(x)
                );
            }
        }
    }
}
matrix!(
    relu_truncate_has_at_most_one_bit_error_above_the_lowest_excluded_values,
    check_relu_truncate
);

async fn check_relu_truncate_bounded<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 23)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 23));
    // (shift, input width): a working ring well inside Z_2^l, the narrowest
    // one the shift allows (w = f + 3), one just below l, and widths where
    // the protocol falls back to the whole ring (w >= l, shift < 3, w < f + 3;
    // there the whole ring's contract holds, as it does for every k < l).
    for (f, k) in [
        (12u32, 30u32),
        (12, 14),
        (12, l - 2),
        (12, l - 1),
        (1, 20),
        (12, 13),
    ] {
        // Inputs of k signed bits, with the edges of that range and the
        // values around 0 where the skipped bits' carry matters.
        let mut xs = bounded(ring, k - 1, 300, &mut rng);
        let d = (f + 1).min(k.saturating_sub(1));
        for v in 0..(1i64 << d).min(64) {
            xs.extend([v, (1i64 << d) - 1 - v, -1 - v].map(|v| ring.from_signed(v)));
        }
        let (a, b) = share(ring, &xs, &mut rng);
        let (t0, t1) = tokio::try_join!(
            s.relu_truncate_bounded(&a, f, k),
            c.relu_truncate_bounded(&b, f, k)
        )
        .unwrap();
        let t = open(ring, &t0, &t1);
        for (i, &x) in xs.iter().enumerate() {
            let got = ring.to_signed(t[i]);
            let v = ring.to_signed(x);
            if v < 0 {
                assert_eq!(got, 0, "f {f}, k {k}: x = {v}");
            } else {
                let want = floor_shift(ring, x, f);
                assert!(
                    got == want || got == want - 1,
                    "f {f}, k {k}: x = {v} -> {got}"
                );
            }
        }
    }
    // Fewer bits than the unbounded protocol on the same inputs, and exactly
    // the ROTs it is costed for (the engine checks that on every call).
    let xs = bounded(ring, 29, 2000, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    let sent = |s: &fusion_ot::OtEngine<F>| s.stats().bytes_sent;
    let before = sent(&s);
    tokio::try_join!(s.relu_truncate(&a, 12), c.relu_truncate(&b, 12)).unwrap();
    let full = sent(&s) - before;
    let before = sent(&s);
    tokio::try_join!(
        s.relu_truncate_bounded(&a, 12, 30),
        c.relu_truncate_bounded(&b, 12, 30)
    )
    .unwrap();
    let narrow = sent(&s) - before;
    assert!(narrow < full, "bounded {narrow} B, unbounded {full} B");
    let x = vec![0u64; 4];
    for k in [0, 1, l + 1] {
        assert!(s.relu_truncate_bounded(&x, 12, k).await.is_err(), "k {k}");
    }
}
matrix!(
    relu_truncate_of_inputs_of_known_width_keeps_the_one_bit_contract,
    check_relu_truncate_bounded
);

async fn check_relu_bounded<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 19)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 19));
    for k in [2u32, 3, 13, 26, l - 1, l] {
        // k-bit signed inputs, [-2^(k-1), 2^(k-1)), with their edges.
        let xs = if k == l {
            inputs(ring, 150, &mut rng)
        } else {
            bounded(ring, k - 1, 150, &mut rng)
        };
        let (a, b) = share(ring, &xs, &mut rng);
        let (y0, y1) = tokio::try_join!(s.relu_bounded(&a, k), c.relu_bounded(&b, k)).unwrap();
        let y = open(ring, &y0, &y1);
        for (i, &x) in xs.iter().enumerate() {
            let v = ring.to_signed(x);
            assert_eq!(ring.to_signed(y[i]), v.max(0), "k {k}: x = {v}");
        }
    }
    let x = vec![0u64; 4];
    for k in [0, 1, l + 1] {
        assert!(s.relu_bounded(&x, k).await.is_err(), "k {k}");
    }
}
matrix!(relu_on_inputs_of_known_width_is_exact, check_relu_bounded);

async fn check_max_pool_bounded<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 18)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 18));
    for k in [1u32, 2, 9, 25, l - 1] {
        // k-bit signed inputs: bounded() gives [-2^(k-1), 2^(k-1)) with its edges.
        let xs = if k == 1 {
            [-1i64, 0]
                .repeat(20)
                .into_iter()
                .map(|v| ring.from_signed(v))
                .collect()
        } else {
            bounded(ring, k - 1, 150, &mut rng)
        };
        let mut windows: Vec<Vec<usize>> = (0..60)
            .map(|j| {
                (0..1 + j % 5)
                    .map(|_| rng.random_range(0..xs.len()))
                    .collect()
            })
            .collect();
        windows.push(vec![0, 1, 2, 3]);
        let (a, b) = share(ring, &xs, &mut rng);
        let (m0, m1) = tokio::try_join!(
            s.max_pool_bounded(&a, &windows, k),
            c.max_pool_bounded(&b, &windows, k)
        )
        .unwrap();
        let m = open(ring, &m0, &m1);
        for (w, &got) in windows.iter().zip(&m) {
            let want = w.iter().map(|&i| ring.to_signed(xs[i])).max().unwrap();
            assert_eq!(ring.to_signed(got), want, "k {k}: window {w:?}");
        }
    }
    let x = vec![0u64; 4];
    for k in [0, l] {
        assert!(
            s.max_pool_bounded(&x, &[vec![0, 1]], k).await.is_err(),
            "k {k}"
        );
    }
}
matrix!(
    max_pool_on_inputs_of_known_width_matches_plaintext,
    check_max_pool_bounded
);

async fn check_max_pool<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 8)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 8));
    let xs = bounded(ring, l - 2, 200, &mut rng);
    // Windows of sizes 1..=9, some overlapping, some with repeated indices.
    let mut windows: Vec<Vec<usize>> = Vec::new();
    for k in 1..=9usize {
        for _ in 0..8 {
            windows.push((0..k).map(|_| rng.random_range(0..xs.len())).collect());
        }
    }
    windows.push((0..9).collect());
    windows.push(vec![3, 3, 3, 3]);
    let (a, b) = share(ring, &xs, &mut rng);
    let (m0, m1) = tokio::try_join!(s.max_pool(&a, &windows), c.max_pool(&b, &windows)).unwrap();
    let m = open(ring, &m0, &m1);
    for (w, &got) in windows.iter().zip(&m) {
        let want = w.iter().map(|&i| ring.to_signed(xs[i])).max().unwrap();
        assert_eq!(ring.to_signed(got), want, "window {w:?}");
    }
}
matrix!(max_pool_matches_plaintext_window_maxima, check_max_pool);

async fn check_mul<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 9)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 9));
    let xs = inputs(ring, N, &mut rng);
    let mut ys = inputs(ring, N, &mut rng);
    ys.reverse();
    let (xa, xb) = share(ring, &xs, &mut rng);
    let (ya, yb) = share(ring, &ys, &mut rng);
    let (p0, p1) = tokio::try_join!(s.mul(&xa, &ya), c.mul(&xb, &yb)).unwrap();
    let (q0, q1) = tokio::try_join!(s.square(&xa), c.square(&xb)).unwrap();
    let p = open(ring, &p0, &p1);
    let q = open(ring, &q0, &q1);
    for i in 0..xs.len() {
        assert_eq!(p[i], ring.mul(xs[i], ys[i]), "mul {i}");
        assert_eq!(q[i], ring.mul(xs[i], xs[i]), "square {i}");
    }
}
matrix!(mul_and_square_match_plaintext_products, check_mul);

async fn check_bit_blocks<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 10)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 10));
    let n = N + 5;
    let (b0, b1) = (Bits::random(n, &mut rng), Bits::random(n, &mut rng));
    let (y0, y1) = (Bits::random(n, &mut rng), Bits::random(n, &mut rng));
    let b = open_bits(&b0, &b1);
    let y = open_bits(&y0, &y1);
    // B2A
    let (a0, a1) = tokio::try_join!(s.b2a(&b0), c.b2a(&b1)).unwrap();
    let a = open(ring, &a0, &a1);
    for i in 0..n {
        assert_eq!(a[i], u64::from(b[i]), "b2a {i}");
    }
    // AND
    let (z0, z1) = tokio::try_join!(s.and(&b0, &y0), c.and(&b1, &y1)).unwrap();
    let z = open_bits(&z0, &z1);
    for i in 0..n {
        assert_eq!(z[i], b[i] & y[i], "and {i}");
    }
    // MUX, including x at the ring's edges
    let xs = inputs(ring, n, &mut rng);
    let (b0, b1) = (
        Bits::random(xs.len(), &mut rng),
        Bits::random(xs.len(), &mut rng),
    );
    let b = open_bits(&b0, &b1);
    let (xa, xb) = share(ring, &xs, &mut rng);
    let (m0, m1) = tokio::try_join!(s.mux(&b0, &xa), c.mux(&b1, &xb)).unwrap();
    let m = open(ring, &m0, &m1);
    for i in 0..xs.len() {
        assert_eq!(m[i], if b[i] { xs[i] } else { 0 }, "mux {i}");
    }
}
matrix!(b2a_and_and_mux_match_plaintext, check_bit_blocks);

async fn check_ot_blocks<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 11)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 11));
    // chosen-message 1-of-2 OT of 64-bit messages
    let msgs: Vec<[u64; 2]> = (0..N).map(|_| [rng.next_u64(), rng.next_u64()]).collect();
    let ch = Bits::random(N, &mut rng);
    let ((), got) = tokio::try_join!(s.ot_send(&msgs, 64), c.ot_receive(&ch, 64)).unwrap();
    for i in 0..N {
        assert_eq!(got[i], msgs[i][usize::from(ch.get(i))]);
    }
    // chosen-message 1-of-2 OT of 128-bit blocks
    let blocks: Vec<[u128; 2]> = (0..N)
        .map(|_| [rng.random::<u128>(), rng.random::<u128>()])
        .collect();
    let ((), got) = tokio::try_join!(s.ot_send_blocks(&blocks), c.ot_receive_blocks(&ch)).unwrap();
    for i in 0..N {
        assert_eq!(got[i], blocks[i][usize::from(ch.get(i))]);
    }
    // 1-of-16 OT of 5-bit messages, and 1-of-256 of 64-bit messages (key expansion)
    for (m, t) in [(4u32, 5u32), (8, 64)] {
        let nn = 1usize << m;
        let inst = 40;
        let mask = if t == 64 { u64::MAX } else { (1u64 << t) - 1 };
        let msgs: Vec<u64> = (0..inst * nn).map(|_| rng.next_u64() & mask).collect();
        let idx: Vec<u64> = (0..inst).map(|_| rng.random_range(0..nn as u64)).collect();
        let ((), got) = tokio::try_join!(
            s.ot_1_of_n_send(m, t, &msgs),
            c.ot_1_of_n_receive(m, t, &idx)
        )
        .unwrap();
        for i in 0..inst {
            assert_eq!(got[i], msgs[i * nn + idx[i] as usize], "1-of-{nn} {i}");
        }
    }
    // arithmetic COT, both directions
    let xs = inputs(ring, N, &mut rng);
    let bits = Bits::random(xs.len(), &mut rng);
    let (r, rb) = tokio::try_join!(s.acot_send(&xs), c.acot_receive(&bits)).unwrap();
    for i in 0..xs.len() {
        assert_eq!(
            ring.sub(rb[i], r[i]),
            if bits.get(i) { xs[i] } else { 0 },
            "acot {i}"
        );
    }
    let (rb, r) = tokio::try_join!(s.acot_receive(&bits), c.acot_send(&xs)).unwrap();
    for i in 0..xs.len() {
        assert_eq!(
            ring.sub(rb[i], r[i]),
            if bits.get(i) { xs[i] } else { 0 },
            "acot reversed {i}"
        );
    }
}
matrix!(
    ot_building_blocks_deliver_the_chosen_values,
    check_ot_blocks
);

async fn check_gilboa<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 14)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 14));
    // Every pair of edge values (0, ±1, ±2, ±2^{l-1}, ...) and random pairs.
    let edges: Vec<u64> = edge_values(ring)
        .into_iter()
        .map(|v| ring.from_signed(v))
        .collect();
    let mut a: Vec<u64> = Vec::new();
    let mut b: Vec<u64> = Vec::new();
    for &x in &edges {
        for &y in &edges {
            a.push(x);
            b.push(y);
        }
    }
    let xs = inputs(ring, N, &mut rng);
    let ys = inputs(ring, N, &mut rng);
    a.extend(&xs);
    b.extend(&ys);
    let (u, v) = tokio::try_join!(s.gilboa_send(&a), c.gilboa_receive(&b)).unwrap();
    for i in 0..a.len() {
        assert_eq!(ring.add(u[i], v[i]), ring.mul(a[i], b[i]), "product {i}");
    }
    // The other direction, and an empty call.
    let (v, u) = tokio::try_join!(s.gilboa_receive(&b), c.gilboa_send(&a)).unwrap();
    for i in 0..a.len() {
        assert_eq!(ring.add(u[i], v[i]), ring.mul(a[i], b[i]), "reversed {i}");
    }
    let (u, v) = tokio::try_join!(s.gilboa_send(&[]), c.gilboa_receive(&[])).unwrap();
    assert!(u.is_empty() && v.is_empty());
}
matrix!(gilboa_products_reconstruct_exactly, check_gilboa);

async fn check_division<F: OtFlavour>(l: u32) {
    let (mut s, mut c) = pair::<F>(l, test_config(), seed(l, 12)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 12));
    // |sum·round(2^12/9)| < 2^{l-24+4+9} < 2^{l-2}: inside the documented range
    let xs = bounded(ring, l - 24, N, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    // average pooling over 2x2 (power of two) and 3x3 windows
    for k in [4usize, 9] {
        let windows: Vec<Vec<usize>> = (0..40)
            .map(|_| (0..k).map(|_| rng.random_range(0..xs.len())).collect())
            .collect();
        let shift = 12;
        let (p0, p1) = tokio::try_join!(
            s.avg_pool(&a, &windows, shift),
            c.avg_pool(&b, &windows, shift)
        )
        .unwrap();
        let p = open(ring, &p0, &p1);
        for (w, &got) in windows.iter().zip(&p) {
            let sum: i64 = w.iter().map(|&i| ring.to_signed(xs[i])).sum();
            let want = sum as f64 / k as f64;
            let err = (ring.to_signed(got) as f64 - want).abs();
            let bound = sum.unsigned_abs() as f64 / 2f64.powi(shift as i32 + 1) + 2.0;
            assert!(
                err < bound,
                "k {k}: sum {sum} -> {}, error {err} > {bound}",
                ring.to_signed(got)
            );
        }
    }
}
matrix!(
    average_pooling_is_within_the_documented_error,
    check_division
);

// ---- behaviour that does not depend on the flavour or ring: Silent, l = 37 ----

#[tokio::test]
async fn truncate_outside_the_quarter_range_is_off_by_2_to_the_l_minus_f() {
    let (mut s, mut c) = pair::<Silent>(37, test_config(), 21).await;
    let ring = s.ring();
    let (l, f) = (37u32, 12u32);
    // x = 2^{l-2} + 5 is outside the range; with shares whose offset MSBs are
    // (1, 0) and no wrap, the wrap bit is mis-computed as 1.
    let x = (1u64 << (l - 2)) + 5;
    let x0 = ring.sub(1u64 << (l - 1), 1u64 << (l - 2)); // P0's offset share is 2^{l-1}
    let x1 = ring.sub(x, x0);
    let (v0, v1) = ([x0], [x1]);
    let (t0, t1) = tokio::try_join!(s.truncate(&v0, f), c.truncate(&v1, f)).unwrap();
    let got = ring.to_signed(ring.add(t0[0], t1[0]));
    let want = (x >> f) as i64;
    let off = got - want;
    assert!(
        off == -(1i64 << (l - f)) || off == -(1i64 << (l - f)) - 1,
        "off by {off}"
    );
}

#[tokio::test]
async fn millionaires_works_for_every_block_size() {
    for m in 1..=6u32 {
        let cfg = OtConfig {
            block_bits: m,
            ..test_config()
        };
        let (mut s, mut c) = pair::<Silent>(37, cfg, 30 + u64::from(m)).await;
        let ring = s.ring();
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let xs = inputs(ring, 100, &mut rng);
        let (a, b) = share(ring, &xs, &mut rng);
        let (y0, y1) = tokio::try_join!(s.relu(&a), c.relu(&b)).unwrap();
        let y = open(ring, &y0, &y1);
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!(y[i], ring.from_signed(ring.to_signed(x).max(0)), "m {m}");
        }
    }
}

#[tokio::test]
async fn chunked_runs_match_the_plaintext() {
    // Chunks of at most 100 elements and at most 3000 ROTs per direction and
    // run (ReLU-truncate: about 105 elements, mul at l = 37: 81 elements).
    let cfg = OtConfig {
        chunk: 100,
        max_rots: 3000,
        ..test_config()
    };
    let (mut s, mut c) = pair::<Silent>(37, cfg, 40).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let xs = inputs(ring, 250, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    let (y0, y1) = tokio::try_join!(s.relu_truncate(&a, 12), c.relu_truncate(&b, 12)).unwrap();
    let y = open(ring, &y0, &y1);
    let (d0, d1) = tokio::try_join!(s.drelu(&a), c.drelu(&b)).unwrap();
    let d = open_bits(&d0, &d1);
    let (p0, p1) = tokio::try_join!(s.mul(&a, &b), c.mul(&b, &a)).unwrap();
    let p = open(ring, &p0, &p1);
    for (i, &x) in xs.iter().enumerate() {
        let v = ring.to_signed(x);
        assert_eq!(p[i], ring.mul(x, x));
        assert_eq!(d[i], v >= 0);
        let got = ring.to_signed(y[i]);
        if v < -(1i64 << 36) + (1 << 13) {
            // Outside relu_truncate's contract (the 2^13 most negative values).
            continue;
        } else if v < 0 {
            assert_eq!(got, 0);
        } else {
            assert!(got == v >> 12 || got == (v >> 12) - 1);
        }
    }
}

/// Regression: back-to-back calls that each generate ~1M ROTs and send MBs of
/// protocol data used to deadlock on QUIC's connection-level flow control when
/// one party started writing protocol data while the other still read OT data.
/// The engine relies on fusion-net's window sizing (the connection window
/// holds 16 stream windows); CryProt's test connection (vendored) now sizes
/// its windows the same way. With s2n-quic's default windows (one stream
/// window is the whole connection window) this test deadlocked in about one
/// run in three and failed on the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_large_calls_do_not_deadlock() {
    let cfg = OtConfig {
        min_refill: 1,
        ..test_config()
    };
    let (mut s, mut c) = pair::<Iknp>(64, cfg, 90).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(91);
    let xs: Vec<u64> = (0..1 << 15).map(|_| ring.random(&mut rng)).collect();
    let (a, b) = share(ring, &xs, &mut rng);
    for _ in 0..8 {
        let (q0, q1) = tokio::try_join!(s.square(&a), c.square(&b)).unwrap();
        let (p0, p1) = tokio::try_join!(s.mul(&a, &b), c.mul(&b, &a)).unwrap();
        assert_eq!(open(ring, &q0, &q1), open(ring, &p0, &p1));
    }
}

#[tokio::test]
async fn flights_match_the_documented_round_counts() {
    let (mut s, mut c) = pair::<Silent>(37, test_config(), 50).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(51);
    let xs = inputs(ring, 100, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    let count = async |name: &str,
                       want: u64,
                       s: &mut fusion_ot::OtEngine,
                       c: &mut fusion_ot::OtEngine| {
        let before = s.stats().flights;
        match name {
            "drelu" => drop(tokio::try_join!(s.drelu(&a), c.drelu(&b)).unwrap()),
            "relu" => drop(tokio::try_join!(s.relu(&a), c.relu(&b)).unwrap()),
            "truncate" => drop(tokio::try_join!(s.truncate(&a, 12), c.truncate(&b, 12)).unwrap()),
            "mul" => drop(tokio::try_join!(s.mul(&a, &b), c.mul(&b, &a)).unwrap()),
            "exact" => {
                drop(tokio::try_join!(s.truncate_exact(&a, 12), c.truncate_exact(&b, 12)).unwrap())
            }
            // ReLU's flights on a 23-bit comparison (7: the low 13 bits are
            // not compared; the truncation runs concurrently, same round),
            // plus the extension after the 26-bit multiplexer
            "relu_truncate" => {
                drop(tokio::try_join!(s.relu_truncate(&a, 12), c.relu_truncate(&b, 12)).unwrap())
            }
            _ => unreachable!(),
        }
        assert_eq!(s.stats().flights - before, want, "{name}");
    };
    count("drelu", 6, &mut s, &mut c).await;
    count("relu", 7, &mut s, &mut c).await;
    count("truncate", 1, &mut s, &mut c).await;
    count("mul", 1, &mut s, &mut c).await;
    count("exact", 7, &mut s, &mut c).await;
    count("relu_truncate", 8, &mut s, &mut c).await;
}

#[tokio::test]
async fn a_peer_running_another_operation_is_detected() {
    let (mut s, mut c) = pair::<Silent>(37, test_config(), 60).await;
    let x = vec![1u64; 10];
    let (rs, rc) = tokio::join!(s.relu(&x), c.drelu(&x));
    assert!(
        matches!(rs, Err(fusion_ot::Error::PeerMismatch { .. })),
        "{rs:?}"
    );
    assert!(
        matches!(rc, Err(fusion_ot::Error::PeerMismatch { .. })),
        "{rc:?}"
    );
    // The session is unusable afterwards.
    assert!(matches!(s.relu(&x).await, Err(fusion_ot::Error::Poisoned)));
    // Same operation with another public parameter.
    let (mut s, mut c) = pair::<Silent>(37, test_config(), 61).await;
    let (rs, rc) = tokio::join!(s.truncate(&x, 12), c.truncate(&x, 11));
    assert!(matches!(rs, Err(fusion_ot::Error::PeerMismatch { .. })));
    assert!(matches!(rc, Err(fusion_ot::Error::PeerMismatch { .. })));
}

#[tokio::test]
async fn setup_detects_a_peer_with_another_configuration() {
    enough_rayon_threads();
    let ring = Ring::new(37).unwrap();
    let (c0, c1) = cryprot_net::testing::local_conn().await.unwrap();
    let mut r = ChaCha20Rng::seed_from_u64(70);
    let mut r2 = ChaCha20Rng::seed_from_u64(71);
    let other = OtConfig {
        max_rots: 1000,
        ..test_config()
    };
    let (a, b) = tokio::join!(
        fusion_ot::OtEngine::<Silent>::setup_with(
            c0,
            fusion_ot::Role::Server,
            ring,
            test_config(),
            &mut r
        ),
        fusion_ot::OtEngine::<Silent>::setup_with(
            c1,
            fusion_ot::Role::Client,
            ring,
            other,
            &mut r2
        ),
    );
    assert!(matches!(a, Err(fusion_ot::Error::PeerMismatch { .. })));
    assert!(matches!(b, Err(fusion_ot::Error::PeerMismatch { .. })));
}

#[tokio::test]
async fn invalid_inputs_are_rejected_and_empty_inputs_are_fine() {
    let (mut s, mut c) = pair::<Silent>(37, test_config(), 80).await;
    // not a ring element
    assert!(matches!(
        s.relu(&[1u64 << 40]).await,
        Err(fusion_ot::Error::Param(_))
    ));
    // shifts beyond the documented maxima
    assert!(matches!(
        s.truncate(&[0], 36).await,
        Err(fusion_ot::Error::Param(_))
    ));
    assert!(matches!(
        s.truncate_nonneg(&[0], 37).await,
        Err(fusion_ot::Error::Param(_))
    ));
    assert!(matches!(
        s.truncate_exact(&[0], 37).await,
        Err(fusion_ot::Error::Param(_))
    ));
    assert!(matches!(
        s.mul(&[0], &[0, 1]).await,
        Err(fusion_ot::Error::Param(_))
    ));
    assert!(matches!(
        s.max_pool(&[0], &[vec![]]).await,
        Err(fusion_ot::Error::Param(_))
    ));
    // empty batches need no communication and agree
    let empty: [u64; 0] = [];
    let (a, b) = tokio::try_join!(s.relu(&empty), c.relu(&empty)).unwrap();
    assert!(a.is_empty() && b.is_empty());
    // the session still works afterwards
    let ring = s.ring();
    let (v0, v1) = ([ring.from_signed(-3), 5], [0, 0]);
    let (y0, y1) = tokio::try_join!(s.relu(&v0), c.relu(&v1)).unwrap();
    assert_eq!(open(ring, &y0, &y1), vec![0, 5]);
}

/// The public ROT costs are exactly what the calls consume (with chunked
/// runs), so both parties can reserve a whole schedule's ROTs up front.
#[tokio::test]
async fn announced_rot_costs_are_what_the_calls_consume() {
    let cfg = OtConfig {
        chunk: 100,
        max_rots: 3000,
        ..test_config()
    };
    let (mut s, mut c) = pair::<Silent>(37, cfg, 60).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(61);
    let xs = inputs(ring, 250, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    let n = a.len();
    let windows: Vec<Vec<usize>> = vec![(0..9).collect(), vec![3, 4], vec![7], (10..15).collect()];
    let sizes: Vec<usize> = windows.iter().map(Vec::len).collect();
    let plans = [
        ("relu", s.relu_rots(n), c.relu_rots(n)),
        (
            "relu_truncate",
            s.relu_truncate_rots(n, 12),
            c.relu_truncate_rots(n, 12),
        ),
        ("truncate", s.truncate_rots(n, 12), c.truncate_rots(n, 12)),
        (
            "exact",
            s.truncate_exact_rots(n, 12),
            c.truncate_exact_rots(n, 12),
        ),
        ("square", s.square_rots(n), c.square_rots(n)),
        ("max_pool", s.max_pool_rots(&sizes), c.max_pool_rots(&sizes)),
        (
            "relu_bounded",
            s.relu_bounded_rots(n, 20),
            c.relu_bounded_rots(n, 20),
        ),
        (
            "max_pool_bounded",
            s.max_pool_bounded_rots(&sizes, 20),
            c.max_pool_bounded_rots(&sizes, 20),
        ),
        (
            "millionaires",
            s.millionaires_rots(n, 20),
            c.millionaires_rots(n, 20),
        ),
    ];
    let low = |v: &[u64]| -> Vec<u64> { v.iter().map(|&x| x & ((1 << 20) - 1)).collect() };
    let (ma, mb) = (low(&a), low(&b));
    for (name, cs, cc) in plans {
        // Mirrored: what one sends the other receives.
        assert_eq!((cs.0, cs.1), (cc.1, cc.0), "{name}");
        assert!(cs.0 + cs.1 > 0, "{name}");
        tokio::try_join!(
            s.preprocess_rots(cs.0.max(cs.1)),
            c.preprocess_rots(cs.0.max(cs.1))
        )
        .unwrap();
        let before = s.rots_available();
        let refills = s.stats().refills;
        match name {
            "relu" => drop(tokio::try_join!(s.relu(&a), c.relu(&b)).unwrap()),
            "relu_truncate" => {
                drop(tokio::try_join!(s.relu_truncate(&a, 12), c.relu_truncate(&b, 12)).unwrap())
            }
            "truncate" => drop(tokio::try_join!(s.truncate(&a, 12), c.truncate(&b, 12)).unwrap()),
            "exact" => {
                drop(tokio::try_join!(s.truncate_exact(&a, 12), c.truncate_exact(&b, 12)).unwrap())
            }
            "square" => drop(tokio::try_join!(s.square(&a), c.square(&b)).unwrap()),
            "max_pool" => {
                drop(tokio::try_join!(s.max_pool(&a, &windows), c.max_pool(&b, &windows)).unwrap())
            }
            "relu_bounded" => {
                drop(tokio::try_join!(s.relu_bounded(&ma, 20), c.relu_bounded(&mb, 20)).unwrap())
            }
            "max_pool_bounded" => drop(
                tokio::try_join!(
                    s.max_pool_bounded(&ma, &windows, 20),
                    c.max_pool_bounded(&mb, &windows, 20)
                )
                .unwrap(),
            ),
            "millionaires" => {
                drop(tokio::try_join!(s.millionaires(&ma, 20), c.millionaires(&mb, 20)).unwrap())
            }
            _ => unreachable!(),
        }
        assert_eq!(s.stats().refills, refills, "{name}: no refill needed");
        let after = s.rots_available();
        assert_eq!((before.0 - after.0, before.1 - after.1), cs, "{name}");
    }
    assert_eq!(s.truncate_rots(10, 0), (0, 0));
}

/// `schedule_rots` queues runs of at most `max_rots` (the flavour's own OTs
/// included) and returns at once; the
/// calls that follow consume the background runs (results checked) without
/// queuing more, and every queued ROT ends up in the pool.
async fn check_scheduled_rots_are_generated_in_the_background<F: OtFlavour>(l: u32) {
    let cfg = OtConfig {
        max_rots: 1 << 14,
        min_refill: 1 << 10,
        ..OtConfig::default()
    };
    let (mut s, mut c) = pair::<F>(l, cfg, seed(l, 40)).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(seed(l, 40));
    let xs = inputs(ring, 2000, &mut rng);
    let n = xs.len();
    let (a, b) = share(ring, &xs, &mut rng);
    let (need_s, need_r) = s.relu_rots(n);
    assert_eq!(c.relu_rots(n), (need_r, need_s), "mirrored");
    let (have_s, have_r) = s.rots_available();
    let st0 = s.stats();
    // Three ReLU batches' worth, far more than one run may hold.
    s.schedule_rots(3 * need_s, 3 * need_r).unwrap();
    c.schedule_rots(3 * need_r, 3 * need_s).unwrap();
    // Returned at once: nothing was collected yet.
    assert_eq!(s.rots_available(), (have_s, have_r));
    for _ in 0..3 {
        let (y0, y1) = tokio::try_join!(s.relu(&a), c.relu(&b)).unwrap();
        for (i, &x) in xs.iter().enumerate() {
            let want = ring.to_signed(x).max(0) as u64;
            assert_eq!(ring.add(y0[i], y1[i]), want, "relu at {i}");
        }
    }
    let st = s.stats();
    // No top-up: what was generated is exactly what `schedule_rots` queued,
    // the shortfall rounded up (to `min_refill` and the flavour's granularity).
    let (gen_s, gen_r) = (
        (st.rots_as_sender - st0.rots_as_sender) as usize,
        (st.rots_as_receiver - st0.rots_as_receiver) as usize,
    );
    let round = cfg.min_refill.max(F::GRANULARITY);
    for (made, need, have) in [(gen_s, need_s, have_s), (gen_r, need_r, have_r)] {
        assert!(made + have >= 3 * need && made + have < 3 * need + round);
    }
    assert_eq!(
        s.rots_available(),
        (have_s + gen_s - 3 * need_s, have_r + gen_r - 3 * need_r)
    );
    // In runs of at most `max_rots` per direction, the flavour's own OTs
    // (`run_overhead`) included.
    let g = F::GRANULARITY;
    let cap = (cfg.max_rots - F::run_overhead()) / g * g;
    let runs = gen_s.max(gen_r).div_ceil(cap) as u64;
    assert_eq!(st.refills - st0.refills, runs);
    assert!(runs >= 3, "the test should need several runs");
}
matrix!(
    scheduled_rots_are_generated_in_the_background,
    check_scheduled_rots_are_generated_in_the_background
);

/// Dropping both engines while background runs are queued ends the session
/// without hanging (the generator tasks are aborted).
#[tokio::test]
async fn dropping_the_engines_stops_queued_background_generation() {
    let (mut s, mut c) = pair::<Silent>(37, test_config(), 77).await;
    s.schedule_rots(1 << 22, 1 << 22).unwrap();
    c.schedule_rots(1 << 22, 1 << 22).unwrap();
    drop(s);
    drop(c);
    // A fresh pair still works in this runtime.
    let (mut s, mut c) = pair::<Silent>(37, test_config(), 78).await;
    let ring = s.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(79);
    let xs = inputs(ring, 50, &mut rng);
    let (a, b) = share(ring, &xs, &mut rng);
    let (y0, y1) = tokio::try_join!(s.relu(&a), c.relu(&b)).unwrap();
    for (i, &x) in xs.iter().enumerate() {
        assert_eq!(ring.add(y0[i], y1[i]), ring.to_signed(x).max(0) as u64);
    }
}
