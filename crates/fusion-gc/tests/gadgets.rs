//! Every gadget, garbled and evaluated (both parties in one process, fixed
//! seeds), equals the plaintext function on random and edge inputs, with the
//! documented AND count.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{edges, mask, run_garbled};
use fusion_gc::gadgets::{arith, bits_to_values, compare, max, mux, relu, values_to_bits};
use fusion_gc::{Builder, Wire};
use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};

type Binary = fn(&mut Builder, &[Wire], &[Wire]) -> Vec<Wire>;

/// Random pairs plus every pair of edge values (and of `extra` values).
fn pairs(l: usize, extra: &[u64], bound: Option<u64>, seed: u64) -> Vec<(u64, u64)> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut vals: Vec<u64> = edges(l).into_iter().chain(extra.iter().copied()).collect();
    if let Some(p) = bound {
        vals.retain(|&v| v < p);
    }
    let mut out: Vec<(u64, u64)> = vals
        .iter()
        .flat_map(|&a| vals.iter().map(move |&b| (a, b)))
        .collect();
    for _ in 0..64 {
        let (mut a, mut b) = (rng.random::<u64>() & mask(l), rng.random::<u64>() & mask(l));
        if let Some(p) = bound {
            (a, b) = (a % p, b % p);
        }
        out.push((a, b));
    }
    out
}

/// Builds one circuit with `gadget(x_i, y_i)` for every pair (`x` the
/// garbler's, `y` the evaluator's), checks its AND count and the garbled
/// outputs against `want`.
fn check_binary(
    l: usize,
    out_bits: usize,
    ps: &[(u64, u64)],
    gadget: Binary,
    want: impl Fn(u64, u64) -> u64,
    ands_each: usize,
) {
    let mut b = Builder::new();
    let mut xs = Vec::new();
    for _ in ps {
        let x = b.garbler_inputs(l);
        xs.push(x);
    }
    for x in &xs {
        let y = b.evaluator_inputs(l);
        let o = gadget(&mut b, x, &y);
        assert_eq!(o.len(), out_bits);
        b.outputs(&o);
    }
    let c = b.finish();
    assert_eq!(c.and_count(), ps.len() * ands_each, "AND count");
    let g: Vec<u64> = ps.iter().map(|p| p.0).collect();
    let e: Vec<u64> = ps.iter().map(|p| p.1).collect();
    let out = run_garbled(&c, &values_to_bits(&g, l), &values_to_bits(&e, l), l as u64);
    let got = bits_to_values(&out, out_bits);
    for (i, &(x, y)) in ps.iter().enumerate() {
        assert_eq!(got[i], want(x, y), "l = {l}, x = {x}, y = {y}");
    }
}

fn signed(v: u64, l: usize) -> i128 {
    let v = i128::from(v);
    if v >> (l - 1) & 1 == 1 {
        v - (1i128 << l)
    } else {
        v
    }
}

#[test]
fn add_and_sub_mod_2_to_the_l_match_plaintext_with_l_minus_1_ands() {
    for l in [1usize, 5, 37, 64] {
        let ps = pairs(l, &[], None, 1);
        check_binary(
            l,
            l,
            &ps,
            |b, x, y| arith::add(b, x, y).unwrap(),
            |x, y| x.wrapping_add(y) & mask(l),
            l - 1,
        );
        check_binary(
            l,
            l,
            &ps,
            |b, x, y| arith::sub(b, x, y).unwrap(),
            |x, y| x.wrapping_sub(y) & mask(l),
            l - 1,
        );
    }
}

#[test]
fn add_with_carry_and_sub_with_borrow_match_plaintext_with_l_ands() {
    for l in [5usize, 37, 64] {
        let ps = pairs(l, &[], None, 2);
        check_binary(
            l,
            l + 1,
            &ps,
            |b, x, y| {
                let (mut s, c) = arith::add_with_carry(b, x, y).unwrap();
                s.push(c);
                s
            },
            |x, y| {
                let s = u128::from(x) + u128::from(y);
                // 64-bit case: the carry is bit 64, beyond what `from_bits` reads.
                (s & ((1u128 << (l + 1)) - 1)) as u64
            },
            l,
        );
        check_binary(
            l,
            l + 1,
            &ps,
            |b, x, y| {
                let (mut d, br) = arith::sub_with_borrow(b, x, y).unwrap();
                d.push(br);
                d
            },
            |x, y| {
                let d = x.wrapping_sub(y) & mask(l);
                if l == 64 {
                    d
                } else {
                    d | (u64::from(x < y) << l)
                }
            },
            l,
        );
    }
}

const PRIMES: [(usize, u64); 4] = [
    (2, 3),
    (16, 65521),
    (31, 2_147_483_647),
    (61, (1 << 61) - 1),
];

#[test]
fn add_and_sub_mod_p_match_plaintext_including_p_minus_1() {
    for (l, p) in PRIMES {
        let extra = [p - 1, p - 2, p / 2, p / 2 + 1];
        let ps = pairs(l, &extra, Some(p), 3);
        let (mp, pp) = (p, l);
        assert_eq!(pp, l);
        let add: Binary = match p {
            3 => |b, x, y| arith::add_mod_p(b, x, y, 3).unwrap(),
            65521 => |b, x, y| arith::add_mod_p(b, x, y, 65521).unwrap(),
            2_147_483_647 => |b, x, y| arith::add_mod_p(b, x, y, 2_147_483_647).unwrap(),
            _ => |b, x, y| arith::add_mod_p(b, x, y, (1 << 61) - 1).unwrap(),
        };
        let sub: Binary = match p {
            3 => |b, x, y| arith::sub_mod_p(b, x, y, 3).unwrap(),
            65521 => |b, x, y| arith::sub_mod_p(b, x, y, 65521).unwrap(),
            2_147_483_647 => |b, x, y| arith::sub_mod_p(b, x, y, 2_147_483_647).unwrap(),
            _ => |b, x, y| arith::sub_mod_p(b, x, y, (1 << 61) - 1).unwrap(),
        };
        check_binary(l, l, &ps, add, |x, y| (x + y) % mp, 3 * l - 1);
        check_binary(l, l, &ps, sub, |x, y| (x + mp - y) % mp, 2 * l - 1);
    }
}

#[test]
fn mod_p_gadgets_refuse_a_modulus_out_of_range() {
    let mut b = Builder::new();
    let x = b.garbler_inputs(8);
    let y = b.evaluator_inputs(8);
    for p in [0u64, 1, 256, 1000] {
        assert!(arith::add_mod_p(&mut b, &x, &y, p).is_err(), "p = {p}");
        assert!(arith::sub_mod_p(&mut b, &x, &y, p).is_err(), "p = {p}");
    }
    let z = b.evaluator_inputs(7);
    assert!(arith::add(&mut b, &x, &z).is_err(), "widths differ");
}

#[test]
fn unsigned_and_signed_less_than_match_plaintext_with_l_ands() {
    for l in [1usize, 5, 37, 64] {
        let mut ps = pairs(l, &[], None, 4);
        ps.extend((0..8).map(|i| ((i * 77) & mask(l), (i * 77) & mask(l))));
        check_binary(
            l,
            1,
            &ps,
            |b, x, y| vec![compare::lt_unsigned(b, x, y).unwrap()],
            |x, y| u64::from(x < y),
            l,
        );
        check_binary(
            l,
            1,
            &ps,
            |b, x, y| vec![compare::lt_signed(b, x, y).unwrap()],
            |x, y| u64::from(signed(x, l) < signed(y, l)),
            l,
        );
    }
}

#[test]
fn multiplexer_selects_by_an_evaluator_bit_with_l_ands() {
    let l = 37;
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let cases: Vec<(u64, u64, bool)> = (0..64)
        .map(|i| {
            let a = rng.random::<u64>() & mask(l);
            let c = if i % 5 == 0 {
                a
            } else {
                rng.random::<u64>() & mask(l)
            };
            (a, c, i % 2 == 0)
        })
        .collect();
    let mut b = Builder::new();
    let mut ins = Vec::new();
    for _ in &cases {
        ins.push((b.garbler_inputs(l), b.garbler_inputs(l)));
    }
    for (x, y) in &ins {
        let s = b.evaluator_input();
        let o = mux::mux(&mut b, s, x, y).unwrap();
        b.outputs(&o);
    }
    let c = b.finish();
    assert_eq!(c.and_count(), cases.len() * l);
    let g: Vec<u64> = cases.iter().flat_map(|&(a, c, _)| [a, c]).collect();
    let e: Vec<bool> = cases.iter().map(|&(_, _, s)| s).collect();
    let got = bits_to_values(&run_garbled(&c, &values_to_bits(&g, l), &e, 6), l);
    for (i, &(a, c, s)) in cases.iter().enumerate() {
        assert_eq!(got[i], if s { c } else { a });
    }
}

/// `(x_G, x_E, r)` for each `x` of `xs` with random shares and masks.
fn shares(xs: &[u64], modulus: u128, seed: u64) -> Vec<(u64, u64, u64)> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    xs.iter()
        .map(|&x| {
            let g = (u128::from(rng.random::<u64>()) % modulus) as u64;
            let r = (u128::from(rng.random::<u64>()) % modulus) as u64;
            let e = ((u128::from(x) + modulus - u128::from(g)) % modulus) as u64;
            (g, e, r)
        })
        .collect()
}

#[test]
fn relu_on_shares_mod_2_to_the_l_reconstructs_and_masks_with_3_l_minus_1_ands() {
    for l in [2usize, 8, 37, 64] {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut xs = edges(l);
        xs.extend((0..64).map(|_| rng.random::<u64>() & mask(l)));
        let sh = shares(&xs, 1u128 << l, 8);
        let c = relu::relu_circuit(l, xs.len()).unwrap();
        assert_eq!(c.and_count(), 3 * (l - 1) * xs.len());
        let g: Vec<u64> = sh.iter().flat_map(|&(g, _, r)| [g, r]).collect();
        let e: Vec<u64> = sh.iter().map(|&(_, e, _)| e).collect();
        let z = bits_to_values(
            &run_garbled(&c, &values_to_bits(&g, l), &values_to_bits(&e, l), 9),
            l,
        );
        for (i, &x) in xs.iter().enumerate() {
            let want = if signed(x, l) >= 0 { x } else { 0 };
            assert_eq!(
                z[i].wrapping_add(sh[i].2) & mask(l),
                want,
                "l = {l}, x = {x}"
            );
        }
    }
}

#[test]
fn relu_on_shares_mod_p_reconstructs_and_masks() {
    for (l, p) in PRIMES {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let mut xs = vec![0, 1, p - 1, p - 2, (p - 1) / 2, p / 2 + 1];
        xs.extend((0..32).map(|_| rng.random::<u64>() % p));
        let sh = shares(&xs, u128::from(p), 11);
        let mut b = Builder::new();
        let mut ins = Vec::new();
        for _ in &xs {
            ins.push((b.garbler_inputs(l), b.garbler_inputs(l)));
        }
        for (xg, r) in &ins {
            let xe = b.evaluator_inputs(l);
            let z = relu::relu_shares_mod_p(&mut b, xg, &xe, r, p).unwrap();
            b.outputs(&z);
        }
        let c = b.finish();
        assert!(c.and_count() <= (7 * l - 2) * xs.len());
        let g: Vec<u64> = sh.iter().flat_map(|&(g, _, r)| [g, r]).collect();
        let e: Vec<u64> = sh.iter().map(|&(_, e, _)| e).collect();
        let z = bits_to_values(
            &run_garbled(&c, &values_to_bits(&g, l), &values_to_bits(&e, l), 12),
            l,
        );
        for (i, &x) in xs.iter().enumerate() {
            let want = if x <= (p - 1) / 2 { x } else { 0 };
            assert_eq!((z[i] + sh[i].2) % p, want, "p = {p}, x = {x}");
        }
    }
}

#[test]
fn max_of_k_signed_values_matches_plaintext_including_ties() {
    let l = 16;
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    for k in [1usize, 2, 3, 5, 9] {
        let mut sets: Vec<Vec<u64>> = (0..16)
            .map(|_| (0..k).map(|_| rng.random::<u64>() & mask(l)).collect())
            .collect();
        sets.push(vec![7; k]); // all tied
        sets.push(
            (0..k)
                .map(|i| if i % 2 == 0 { mask(l) } else { 0 })
                .collect(),
        ); // -1 vs 0
        sets.push(
            (0..k)
                .map(|i| {
                    if i == k - 1 {
                        1 << (l - 1)
                    } else {
                        (1 << (l - 1)) - 1
                    }
                })
                .collect(),
        );
        let mut b = Builder::new();
        let ins: Vec<Vec<Vec<Wire>>> = sets
            .iter()
            .map(|_| (0..k).map(|_| b.garbler_inputs(l)).collect())
            .collect();
        for x in &ins {
            let m = max::max_signed(&mut b, x).unwrap();
            b.outputs(&m);
        }
        let c = b.finish();
        assert_eq!(c.and_count(), sets.len() * 2 * l * (k - 1));
        let g: Vec<u64> = sets.iter().flatten().copied().collect();
        let got = bits_to_values(&run_garbled(&c, &values_to_bits(&g, l), &[], 14), l);
        for (i, s) in sets.iter().enumerate() {
            let want = s.iter().copied().max_by_key(|&v| signed(v, l)).unwrap();
            assert_eq!(got[i], want, "k = {k}, values {s:?}");
        }
    }
}

#[test]
fn max_of_shares_reconstructs_and_masks() {
    let (l, k) = (37usize, 4usize);
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let mut sets: Vec<Vec<u64>> = (0..16)
        .map(|_| (0..k).map(|_| rng.random::<u64>() & mask(l)).collect())
        .collect();
    sets.push(vec![mask(l); k]);
    sets.push(vec![0, mask(l), 0, 1 << (l - 1)]);
    let mut b = Builder::new();
    let mut ins = Vec::new();
    for _ in &sets {
        let xg: Vec<Vec<Wire>> = (0..k).map(|_| b.garbler_inputs(l)).collect();
        let r = b.garbler_inputs(l);
        ins.push((xg, r));
    }
    for (xg, r) in &ins {
        let xe: Vec<Vec<Wire>> = (0..k).map(|_| b.evaluator_inputs(l)).collect();
        let z = max::max_shares(&mut b, xg, &xe, r).unwrap();
        b.outputs(&z);
    }
    let c = b.finish();
    assert_eq!(
        c.and_count(),
        sets.len() * ((k + 1) * (l - 1) + 2 * l * (k - 1))
    );
    let mut g = Vec::new();
    let mut e = Vec::new();
    let mut rs = Vec::new();
    for (i, s) in sets.iter().enumerate() {
        let sh = shares(s, 1u128 << l, 16 + i as u64);
        g.extend(sh.iter().map(|t| t.0));
        g.push(sh[0].2);
        rs.push(sh[0].2);
        e.extend(sh.iter().map(|t| t.1));
    }
    let z = bits_to_values(
        &run_garbled(&c, &values_to_bits(&g, l), &values_to_bits(&e, l), 17),
        l,
    );
    for (i, s) in sets.iter().enumerate() {
        let want = s.iter().copied().max_by_key(|&v| signed(v, l)).unwrap();
        assert_eq!(z[i].wrapping_add(rs[i]) & mask(l), want);
    }
}
