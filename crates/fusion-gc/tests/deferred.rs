//! Deferred garbling ([`fusion_gc::Garbling::into_deferred`]): the garbler's
//! input bits are fixed after garbling, part of them early
//! ([`fusion_gc::GarblerInputPairs::split_front`]) and the rest later; the
//! evaluation equals the plaintext circuit, and wrong label counts are
//! refused.
#![allow(clippy::unwrap_used, missing_docs)]

use fusion_gc::gadgets::{bits_to_values, relu, values_to_bits};
use fusion_gc::{Builder, Evaluator, Garbler, GcError};
use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};

#[test]
fn deferred_garbler_inputs_evaluate_like_the_plain_circuit() {
    let l = 13;
    let n = 20;
    let mask = (1u64 << l) - 1;
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    // Garbler inputs: masks r first (known early), then shares x_G.
    let mut b = Builder::new();
    let rs: Vec<_> = (0..n).map(|_| b.garbler_inputs(l)).collect();
    let xgs: Vec<_> = (0..n).map(|_| b.garbler_inputs(l)).collect();
    for (xg, r) in xgs.iter().zip(&rs) {
        let xe = b.evaluator_inputs(l);
        let z = relu::relu_shares(&mut b, xg, &xe, r).unwrap();
        b.outputs(&z);
    }
    let c = b.finish();
    let r: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();
    let xg: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();
    let xe: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();

    let mut g = Garbler::new();
    let (gc, pairs, epairs) = g.garble(&c, &mut rng).unwrap().into_deferred();
    assert_eq!(pairs.len(), 2 * n * l);
    let (mut labels, rest) = pairs.split_front(&values_to_bits(&r, l)).unwrap();
    assert_eq!(rest.len(), n * l);
    labels.append(rest.select(&values_to_bits(&xg, l)).unwrap());
    let elabels = epairs.select(&values_to_bits(&xe, l)).unwrap();
    let out = Evaluator::new().evaluate(&c, gc, labels, elabels).unwrap();
    let z = bits_to_values(&out, l);
    let half = 1u64 << (l - 1);
    for i in 0..n {
        let x = xg[i].wrapping_add(xe[i]) & mask;
        let relu = if x >= half { 0 } else { x };
        assert_eq!(z[i].wrapping_add(r[i]) & mask, relu, "element {i}");
    }
    let plain = c
        .eval_plain(
            &[values_to_bits(&r, l), values_to_bits(&xg, l)].concat(),
            &values_to_bits(&xe, l),
        )
        .unwrap();
    assert_eq!(plain, out);
}

#[test]
fn deferred_pairs_refuse_wrong_bit_counts() {
    let mut b = Builder::new();
    let x = b.garbler_inputs(4);
    let y = b.evaluator_inputs(4);
    let o = fusion_gc::gadgets::arith::add(&mut b, &x, &y).unwrap();
    b.outputs(&o);
    let c = b.finish();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (_, pairs, _) = Garbler::new().garble(&c, &mut rng).unwrap().into_deferred();
    assert!(matches!(
        pairs.split_front(&[true; 5]),
        Err(GcError::LabelCount { .. })
    ));
    let (_, pairs, _) = Garbler::new().garble(&c, &mut rng).unwrap().into_deferred();
    assert!(matches!(
        pairs.select(&[true; 3]),
        Err(GcError::LabelCount { .. })
    ));
}
