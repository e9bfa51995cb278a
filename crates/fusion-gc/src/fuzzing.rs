//! Fuzzing entry points for the decoders of peer bytes in this crate: the
//! garbler's header and the garbled material (input labels, output
//! decoding bits, tables), all sized by a public circuit.
//!
//! Each function takes arbitrary bytes, runs the decoders on them and checks
//! their contract, panicking if the contract is broken (a panic is what a
//! fuzzer reports). The cargo-fuzz targets in `fuzz/` call these functions;
//! this module's tests call them with seeded random and mutated valid
//! inputs. Compiled for tests and with the `fuzzing` feature only.
//!
//! The contract: no panic; material of exactly the size the public circuit
//! implies (and zero padding bits) is accepted and re-encodes to the same
//! bytes, anything else is [`GcError::Malformed`], [`GcError::TableLength`]
//! or [`GcError::LabelLength`]; accepted material of any content evaluates
//! without a panic (to some output bits: garbage in, garbage out), once.

use crate::circuit::{Builder, Circuit};
use crate::error::GcError;
use crate::evaluate::Evaluator;
use crate::gadgets::{arith, compare, max, relu};
use crate::garble::GarbledCircuit;
use crate::label::{LABEL_BYTES, Labels};
use crate::session::{HEADER_BYTES, Header};

/// One of a few small public circuits, chosen by `selector`.
fn circuit(selector: u8) -> Circuit {
    let l = 2 + usize::from(selector >> 2) % 9;
    if selector.is_multiple_of(4) {
        return relu::relu_circuit(l, 1 + usize::from(selector >> 4) % 3)
            .expect("a valid ReLU circuit");
    }
    let mut b = Builder::new();
    let x = b.garbler_inputs(l);
    let y = b.evaluator_inputs(l);
    let out = match selector % 4 {
        1 => vec![compare::lt_signed(&mut b, &x, &y).expect("valid widths")],
        2 => arith::add_mod_p(&mut b, &x, &y, (1 << (l - 1)) + 1).expect("valid widths"),
        _ => max::max_signed(&mut b, &[x, y]).expect("valid widths"),
    };
    b.outputs(&out);
    b.finish()
}

/// The garbler's 64-byte header: whatever decodes, re-encodes to the same
/// bytes; anything else is [`GcError::Malformed`].
pub fn header(data: &[u8]) {
    match Header::decode(data) {
        Ok(h) => {
            assert_eq!(data.len(), HEADER_BYTES);
            assert_eq!(h.encode(), data, "the header does not re-encode");
        }
        Err(GcError::Malformed { .. }) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// Garbled material for a public circuit: byte 0 picks the circuit, bytes
/// 1-2 (little endian) cut the rest into garbler labels, decoding bits and
/// tables (the cut is arbitrary, so most inputs have wrong sizes). What is
/// accepted must have exactly the implied sizes, re-encode to the same
/// bytes, and evaluate without a panic under random evaluator labels.
/// Returns whether the material was accepted and evaluated.
pub fn garbled_material(data: &[u8]) -> bool {
    if data.len() < 3 {
        return false;
    }
    let c = circuit(data[0]);
    let rest = &data[3..];
    let cut = usize::from(u16::from_le_bytes([data[1], data[2]]));
    // Bytes of labels, then of decoding bits, then the tables.
    let n_labels = (cut & 0x3ff).min(rest.len());
    let n_decoding = (cut >> 10).min(rest.len() - n_labels);
    let (labels, more) = rest.split_at(n_labels);
    let (decoding, tables) = more.split_at(n_decoding);

    let labels = match Labels::from_bytes(labels, c.garbler_input_count(), "garbler labels") {
        Ok(l) => {
            assert_eq!(labels.len(), c.garbler_input_count() * LABEL_BYTES);
            assert_eq!(l.to_bytes(), labels, "labels do not re-encode");
            Some(l)
        }
        Err(GcError::LabelLength { .. } | GcError::Malformed { .. }) => {
            assert_ne!(labels.len(), c.garbler_input_count() * LABEL_BYTES);
            None
        }
        Err(e) => panic!("unexpected label error {e:?}"),
    };
    let gc = match GarbledCircuit::from_bytes(&c, 7, tables, decoding) {
        Ok(gc) => {
            assert_eq!(tables.len(), c.table_bytes());
            assert_eq!(decoding.len(), c.output_count().div_ceil(8));
            assert_eq!(gc.table_bytes(), tables, "tables do not re-encode");
            assert_eq!(
                gc.decoding_bytes(),
                decoding,
                "decoding bits do not re-encode"
            );
            Some(gc)
        }
        Err(GcError::TableLength { .. } | GcError::Malformed { .. }) => None,
        Err(e) => panic!("unexpected material error {e:?}"),
    };
    let (Some(labels), Some(gc)) = (labels, gc) else {
        return false;
    };
    // Evaluator labels from the input itself: any 128-bit values.
    let ev_labels = Labels(
        (0..c.evaluator_input_count())
            .map(|i| u128::from(data[i % data.len()]) << (i % 120))
            .collect(),
    );
    let mut ev = Evaluator::new();
    let out = ev
        .evaluate(&c, gc, labels, ev_labels)
        .expect("well-sized material evaluates");
    assert_eq!(out.len(), c.output_count());
    assert!(ev.has_used(7), "the circuit id is spent");
    true
}

#[cfg(test)]
mod tests {
    use rand::rngs::ChaCha20Rng;
    use rand::{Rng, RngExt, SeedableRng};

    use super::*;
    use crate::garble::Garbler;

    fn random_bytes(rng: &mut ChaCha20Rng, max: usize) -> Vec<u8> {
        let n = rng.random_range(0..max);
        let mut v = vec![0u8; n];
        rng.fill_bytes(&mut v);
        v
    }

    /// A correctly sized fuzz input for circuit `sel`, from a real garbling.
    fn valid_material(sel: u8, rng: &mut ChaCha20Rng) -> Vec<u8> {
        let c = circuit(sel);
        let g = Garbler::new().garble(&c, rng).unwrap();
        let bits = vec![true; c.garbler_input_count()];
        let (gc, labels, _) = g.into_parts(&bits).unwrap();
        let (l, d, t) = (labels.to_bytes(), gc.decoding_bytes(), gc.table_bytes());
        let cut = (l.len() | (d.len() << 10)) as u16;
        let mut out = vec![sel];
        out.extend_from_slice(&cut.to_le_bytes());
        out.extend(l);
        out.extend(d);
        out.extend(t);
        out
    }

    #[test]
    fn random_bytes_are_rejected_or_decoded_canonically() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        for _ in 0..3000 {
            header(&random_bytes(&mut rng, 80));
            garbled_material(&random_bytes(&mut rng, 4000));
        }
    }

    #[test]
    fn mutated_valid_material_is_rejected_or_evaluates_without_panic() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        for k in 0..400u32 {
            let mut v = valid_material((k % 256) as u8, &mut rng);
            assert!(
                garbled_material(&v),
                "valid material for circuit {}",
                k % 256
            );
            match k % 3 {
                0 => {
                    let i = rng.random_range(0..v.len());
                    v[i] ^= 1 << (k % 8);
                }
                1 => {
                    v.pop();
                }
                _ => v.push(0),
            }
            // A size change is always refused; a flipped bit may be accepted.
            let accepted = garbled_material(&v);
            assert!(
                k.is_multiple_of(3) || !accepted,
                "a resized input was accepted"
            );
        }
        let mut h = Header::new(&circuit(0), 3, 1 << 20, 0).encode();
        header(&h);
        h[0] ^= 1;
        header(&h);
    }
}
