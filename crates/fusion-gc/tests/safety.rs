//! Safety of the garbling API: one evaluation per circuit id, exact table
//! sizes, and typed errors (never panics) for malformed or mis-sized data.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use fusion_gc::gadgets::relu::relu_circuit;
use fusion_gc::{Builder, Circuit, Evaluator, GarbledCircuit, Garbler, GcError, Labels};
use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};

fn small() -> Circuit {
    relu_circuit(8, 3).unwrap()
}

#[test]
fn evaluator_refuses_a_circuit_id_it_already_evaluated() {
    let c = small();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let g = vec![false; c.garbler_input_count()];
    let e = vec![true; c.evaluator_input_count()];
    let mut ev = Evaluator::new();
    // Two garblers that (wrongly) start at the same id.
    for round in 0..2 {
        let (gc, gl, pairs) = Garbler::starting_at(5)
            .garble(&c, &mut rng)
            .unwrap()
            .into_parts(&g)
            .unwrap();
        assert_eq!(gc.id(), 5);
        let res = ev.evaluate(&c, gc, gl, pairs.select(&e).unwrap());
        if round == 0 {
            assert_eq!(res.unwrap(), c.eval_plain(&g, &e).unwrap());
            assert!(ev.has_used(5));
            assert_eq!(ev.floor(), 6);
        } else {
            assert!(matches!(res, Err(GcError::RepeatedCircuit { id: 5 })));
        }
    }
}

#[test]
fn a_garbler_numbers_its_circuits_and_uses_fresh_tables_each_time() {
    let c = small();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut g = Garbler::new();
    let a = g.garble(&c, &mut rng).unwrap();
    let b = g.garble(&c, &mut rng).unwrap();
    assert_eq!((a.id(), b.id(), g.next_id()), (0, 1, 2));
    let bits = vec![false; c.garbler_input_count()];
    let (ga, _, _) = a.into_parts(&bits).unwrap();
    let (gb, _, _) = b.into_parts(&bits).unwrap();
    assert_ne!(ga.table_bytes(), gb.table_bytes());
}

#[test]
fn garbled_tables_are_exactly_32_bytes_per_and_gate() {
    for (l, n) in [(8usize, 1usize), (37, 17), (64, 5)] {
        let c = relu_circuit(l, n).unwrap();
        assert_eq!(c.and_count(), 3 * (l - 1) * n);
        assert_eq!(c.table_bytes(), 32 * c.and_count());
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (gc, labels, pairs) = Garbler::new()
            .garble(&c, &mut rng)
            .unwrap()
            .into_parts(&vec![true; c.garbler_input_count()])
            .unwrap();
        assert_eq!(gc.and_count(), c.and_count());
        assert_eq!(gc.table_bytes().len(), 32 * c.and_count());
        assert_eq!(gc.decoding_bytes().len(), c.output_count().div_ceil(8));
        assert_eq!(labels.to_bytes().len(), 16 * c.garbler_input_count());
        assert_eq!(pairs.len(), c.evaluator_input_count());
    }
}

#[test]
fn truncated_or_extended_tables_and_decoding_bits_are_typed_errors() {
    let c = small();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (gc, _, _) = Garbler::new()
        .garble(&c, &mut rng)
        .unwrap()
        .into_parts(&vec![false; c.garbler_input_count()])
        .unwrap();
    let t = gc.table_bytes();
    let d = gc.decoding_bytes();
    let want = 32 * c.and_count();
    assert!(GarbledCircuit::from_bytes(&c, 0, &t, &d).is_ok());
    let mut longer = t.clone();
    longer.extend_from_slice(&[0; 32]);
    for bad in [&t[..t.len() - 1], &t[..t.len() - 32], &[][..], &longer[..]] {
        match GarbledCircuit::from_bytes(&c, 0, bad, &d) {
            Err(GcError::TableLength { expected, got }) => {
                assert_eq!((expected, got), (want, bad.len()));
            }
            other => panic!("expected TableLength, got {other:?}"),
        }
    }
    let mut d_long = d.clone();
    d_long.push(0);
    for bad in [&d[..d.len() - 1], &d_long[..]] {
        assert!(matches!(
            GarbledCircuit::from_bytes(&c, 0, &t, bad),
            Err(GcError::Malformed { .. })
        ));
    }
}

#[test]
fn wrong_label_and_input_counts_are_typed_errors() {
    let c = small();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let ng = c.garbler_input_count();
    let ne = c.evaluator_input_count();
    let garbling = Garbler::new().garble(&c, &mut rng).unwrap();
    assert!(matches!(
        Garbler::new()
            .garble(&c, &mut rng)
            .unwrap()
            .into_parts(&vec![false; ng + 1]),
        Err(GcError::LabelCount { .. })
    ));
    let (gc, gl, pairs) = garbling.into_parts(&vec![false; ng]).unwrap();
    // Garbler labels on the wire with a missing byte or a missing label.
    let bytes = gl.to_bytes();
    for cut in [1usize, 16] {
        assert!(matches!(
            Labels::from_bytes(&bytes[..bytes.len() - cut], ng, "garbler input labels"),
            Err(GcError::LabelLength { .. })
        ));
    }
    // Evaluating with one label too few.
    let short = Labels::from_bytes(&bytes[..bytes.len() - 16], ng - 1, "x").unwrap();
    let el = pairs.select(&vec![false; ne]).unwrap();
    let mut ev = Evaluator::new();
    assert!(matches!(
        ev.evaluate(&c, gc, short, el),
        Err(GcError::LabelCount { expected, got, .. }) if expected == ng && got == ng - 1
    ));
    // The refused evaluation did not burn the id.
    assert!(!ev.has_used(0));
    let pairs = Garbler::new()
        .garble(&c, &mut rng)
        .unwrap()
        .into_parts(&vec![false; ng])
        .unwrap()
        .2;
    assert!(matches!(
        pairs.select(&[true]),
        Err(GcError::LabelCount { .. })
    ));
}

#[test]
fn a_garbled_circuit_of_another_shape_is_a_mismatch() {
    let c = small();
    let other = relu_circuit(8, 4).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let (gc, gl, pairs) = Garbler::new()
        .garble(&other, &mut rng)
        .unwrap()
        .into_parts(&vec![false; other.garbler_input_count()])
        .unwrap();
    let el = pairs
        .select(&vec![false; other.evaluator_input_count()])
        .unwrap();
    assert!(matches!(
        Evaluator::new().evaluate(&c, gc, gl, el),
        Err(GcError::Mismatch { .. })
    ));
}

#[test]
fn random_and_tampered_tables_evaluate_without_panicking() {
    let c = small();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut ev = Evaluator::new();
    for id in 0..16u64 {
        let t: Vec<u8> = (0..c.table_bytes()).map(|_| rng.random()).collect();
        let gc = GarbledCircuit::from_bytes(&c, id, &t, &[0; 3]).unwrap();
        let gl = Labels::from_bytes(
            &vec![7; 16 * c.garbler_input_count()],
            c.garbler_input_count(),
            "g",
        )
        .unwrap();
        let el = Labels::from_bytes(
            &vec![9; 16 * c.evaluator_input_count()],
            c.evaluator_input_count(),
            "e",
        )
        .unwrap();
        assert_eq!(ev.evaluate(&c, gc, gl, el).unwrap().len(), c.output_count());
    }
}

#[test]
fn constant_outputs_are_decoded_without_labels() {
    let mut b = Builder::new();
    let x = b.garbler_input();
    let y = b.evaluator_input();
    let z = b.and(x, y);
    b.outputs(&[z, fusion_gc::Wire::ONE, fusion_gc::Wire::ZERO]);
    let c = b.finish();
    for (g, e) in [(false, false), (true, false), (true, true)] {
        assert_eq!(
            common::run_garbled(&c, &[g], &[e], 8),
            vec![g & e, true, false]
        );
    }
}
