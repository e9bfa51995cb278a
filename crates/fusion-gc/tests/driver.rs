//! The async driver over a real fusion-net session on 127.0.0.1 (QUIC + TLS),
//! with IKNP OT for the evaluator's labels: outputs, byte accounting by kind
//! (via a meter on the garbled-circuit channel), circuit-id replay and shape
//! mismatch refused by both parties. Bounded in time.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::mask;
use fusion_core::ring::Ring;
use fusion_gc::gadgets::relu::relu_circuit;
use fusion_gc::gadgets::{bits_to_values, values_to_bits};
use fusion_gc::session::{FRAME_HEADER_BYTES, HEADER_BYTES};
use fusion_gc::{Evaluator, Garbler, GcError, evaluate_remote, garble_remote};
use fusion_net::{Channel, Meter, NetConfig, Party, Session, local_pair};
use fusion_ot::{Iknp, OtConfig, OtEngine, Role};
use rand::{RngExt, SeedableRng, rngs::ChaCha20Rng};

const L: usize = 37;

#[tokio::test]
async fn driver_runs_relu_on_shares_over_fusion_net_with_iknp_ot() {
    tokio::time::timeout(Duration::from_secs(180), run())
        .await
        .expect("driver test timed out");
}

/// Both parties of one loopback session: IKNP OT engines and a metered
/// garbled-circuit channel each (the sessions are kept alive with them).
struct Parties {
    ot_g: OtEngine<Iknp>,
    ot_e: OtEngine<Iknp>,
    ch_g: Channel,
    ch_e: Channel,
    meter_g: Meter,
    meter_e: Meter,
    _sessions: (Session, Session),
}

async fn parties() -> Parties {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(8)
        .build_global();
    let (mut srv, mut cli) = local_pair(&NetConfig::default()).await.unwrap();
    let ring = Ring::new(37).unwrap();
    let cfg = OtConfig {
        min_refill: 1 << 13,
        ..OtConfig::default()
    };
    let (mut r0, mut r1) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let (ot_g, ot_e) = tokio::try_join!(
        OtEngine::<Iknp>::setup_on(srv.sub_connection(), None, Role::Server, ring, cfg, &mut r0),
        OtEngine::<Iknp>::setup_on(cli.sub_connection(), None, Role::Client, ring, cfg, &mut r1),
    )
    .unwrap();
    // The garbled-circuit channel, metered on its own meters.
    let (meter_g, meter_e) = (Meter::new(Party::Server), Meter::new(Party::Client));
    let (mut cs, mut cc) = (srv.sub_connection(), cli.sub_connection());
    let (ch_g, ch_e) = tokio::try_join!(
        Channel::open(&mut cs, Some(&meter_g), srv.message_config()),
        Channel::open(&mut cc, Some(&meter_e), cli.message_config()),
    )
    .unwrap();
    Parties {
        ot_g,
        ot_e,
        ch_g,
        ch_e,
        meter_g,
        meter_e,
        _sessions: (srv, cli),
    }
}

async fn run() {
    let Parties {
        mut ot_g,
        mut ot_e,
        mut ch_g,
        mut ch_e,
        meter_g,
        meter_e,
        _sessions,
    } = parties().await;
    let n = 300;
    let circuit = relu_circuit(L, n).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let xs: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask(L)).collect();
    let xg: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask(L)).collect();
    let r: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask(L)).collect();
    let xe: Vec<u64> = xs
        .iter()
        .zip(&xg)
        .map(|(x, g)| x.wrapping_sub(*g) & mask(L))
        .collect();
    let gvals: Vec<u64> = xg.iter().zip(&r).flat_map(|(&g, &r)| [g, r]).collect();
    let gbits = values_to_bits(&gvals, L);
    let ebits = values_to_bits(&xe, L);

    let mut garbler = Garbler::new();
    let mut evaluator = Evaluator::new();
    let mut rng_g = ChaCha20Rng::seed_from_u64(4);
    let (sg, (out, se)) = tokio::try_join!(
        garble_remote(
            &mut ch_g,
            &mut ot_g,
            &mut garbler,
            &circuit,
            &gbits,
            &mut rng_g
        ),
        evaluate_remote(&mut ch_e, &mut ot_e, &mut evaluator, &circuit, &ebits),
    )
    .unwrap();
    let z = bits_to_values(&out, L);
    for i in 0..n {
        let x = xs[i];
        let want = if x >> (L - 1) == 0 { x } else { 0 };
        assert_eq!(z[i].wrapping_add(r[i]) & mask(L), want, "element {i}");
    }

    // Byte accounting: tables exactly 32 per AND; everything the garbler sent
    // on the channel is header + labels + decoding bits + tables, plus 4
    // bytes of framing per frame; the OT is reported apart.
    let ands = circuit.and_count() as u64;
    assert_eq!(ands, (3 * (L - 1) * n) as u64);
    for s in [&sg, &se] {
        assert_eq!(s.table_bytes, 32 * ands);
        assert_eq!(s.garbler_label_bytes, 16 * (2 * L * n) as u64);
        assert_eq!(s.decoding_bytes, (L * n).div_ceil(8) as u64);
        assert_eq!(s.ot_transfers, (L * n) as u64);
        assert!(s.ot_message_bytes >= s.ot_transfers * 257 / 8);
    }
    let rg = meter_g.report().total;
    let re = meter_e.report().total;
    assert_eq!(rg.message_bytes_sent, sg.payload_bytes_sent());
    assert_eq!(rg.messages_sent, sg.frames_sent);
    assert_eq!(re.message_bytes_received, rg.message_bytes_sent);
    assert_eq!(re.message_bytes_sent, HEADER_BYTES as u64);
    assert_eq!(rg.message_bytes_received, HEADER_BYTES as u64);
    eprintln!(
        "{n} ReLUs mod 2^{L}: {ands} ANDs; tables {} B, garbler labels {} B, decoding {} B, \
         header {} B, framing {} B ({} frames), OT messages {} B for {} labels",
        sg.table_bytes,
        sg.garbler_label_bytes,
        sg.decoding_bytes,
        sg.header_bytes,
        sg.frames_sent * FRAME_HEADER_BYTES,
        sg.frames_sent,
        sg.ot_message_bytes,
        sg.ot_transfers
    );

    // Replay: a garbler reusing id 0 is refused by both parties after the
    // header flight, before anything secret is sent.
    let mut replay = Garbler::starting_at(0);
    let (a, b) = tokio::join!(
        garble_remote(
            &mut ch_g,
            &mut ot_g,
            &mut replay,
            &circuit,
            &gbits,
            &mut rng_g
        ),
        evaluate_remote(&mut ch_e, &mut ot_e, &mut evaluator, &circuit, &ebits),
    );
    assert!(
        matches!(a, Err(GcError::RepeatedCircuit { id: 0 })),
        "{a:?}"
    );
    assert!(
        matches!(b, Err(GcError::RepeatedCircuit { id: 0 })),
        "{b:?}"
    );

    // A shape mismatch is detected by both parties.
    let other = relu_circuit(L, n + 1).unwrap();
    let gbits2 = vec![false; other.garbler_input_count()];
    let (a, b) = tokio::join!(
        garble_remote(
            &mut ch_g,
            &mut ot_g,
            &mut garbler,
            &other,
            &gbits2,
            &mut rng_g
        ),
        evaluate_remote(&mut ch_e, &mut ot_e, &mut evaluator, &circuit, &ebits),
    );
    assert!(matches!(a, Err(GcError::Mismatch { .. })), "{a:?}");
    assert!(matches!(b, Err(GcError::Mismatch { .. })), "{b:?}");

    // The channel is still in step: the next circuit (a fresh id) runs.
    let (_, (out2, se2)) = tokio::try_join!(
        garble_remote(
            &mut ch_g,
            &mut ot_g,
            &mut garbler,
            &circuit,
            &gbits,
            &mut rng_g
        ),
        evaluate_remote(&mut ch_e, &mut ot_e, &mut evaluator, &circuit, &ebits),
    )
    .unwrap();
    assert_eq!(se2.circuit_id, 1, "the refused runs consumed no id");
    let z2 = bits_to_values(&out2, L);
    for i in 0..n {
        let x = xs[i];
        let want = if x >> (L - 1) == 0 { x } else { 0 };
        assert_eq!(z2[i].wrapping_add(r[i]) & mask(L), want);
    }
}

/// The header a garbler would send for `c` with id `id` (magic, id, shape,
/// 1 MiB table frames, floor 0), as 8 little-endian `u64`s.
fn header(c: &fusion_gc::Circuit, id: u64) -> Vec<u8> {
    [
        u64::from_le_bytes(*b"FUSIONGC"),
        id,
        c.and_count() as u64,
        c.garbler_input_count() as u64,
        c.evaluator_input_count() as u64,
        c.output_count() as u64,
        1 << 20,
        0,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect()
}

#[tokio::test]
async fn driver_reports_malformed_peer_frames_as_typed_errors() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let Parties {
            mut ot_e,
            mut ch_g,
            mut ch_e,
            _sessions,
            ..
        } = parties().await;
        let c = relu_circuit(8, 2).unwrap();
        let ebits = vec![false; c.evaluator_input_count()];
        let mut ev = Evaluator::new();
        // A bad magic.
        let mut h = header(&c, 0);
        h[0] ^= 1;
        let (sent, got) = tokio::join!(
            ch_g.exchange(&h, HEADER_BYTES),
            evaluate_remote(&mut ch_e, &mut ot_e, &mut ev, &c, &ebits),
        );
        sent.unwrap();
        assert!(matches!(got, Err(GcError::Malformed { .. })), "{got:?}");
        // A header of the wrong length.
        let cut = header(&c, 0);
        let (sent, got) = tokio::join!(
            ch_g.exchange(&cut[..40], HEADER_BYTES),
            evaluate_remote(&mut ch_e, &mut ot_e, &mut ev, &c, &ebits),
        );
        sent.unwrap();
        assert!(matches!(got, Err(GcError::Malformed { .. })), "{got:?}");
        // Garbler labels one byte short.
        let short = vec![0u8; 16 * c.garbler_input_count() - 1];
        let fake = async {
            ch_g.exchange(&header(&c, 0), HEADER_BYTES).await.unwrap();
            ch_g.send_frame(&short).await.unwrap();
        };
        let ((), got) = tokio::join!(
            fake,
            evaluate_remote(&mut ch_e, &mut ot_e, &mut ev, &c, &ebits)
        );
        assert!(
            matches!(
                got,
                Err(GcError::Malformed {
                    what: "garbler input labels",
                    ..
                })
            ),
            "{got:?}"
        );
        // Tables one AND gate too long.
        let labels = vec![0u8; 16 * c.garbler_input_count()];
        let long = vec![0u8; c.table_bytes() + 32];
        let fake = async {
            ch_g.exchange(&header(&c, 0), HEADER_BYTES).await.unwrap();
            ch_g.send_frame(&labels).await.unwrap();
            ch_g.send_frame(&[0u8; 2]).await.unwrap();
            ch_g.send_frame(&long).await.unwrap();
        };
        let ((), got) = tokio::join!(
            fake,
            evaluate_remote(&mut ch_e, &mut ot_e, &mut ev, &c, &ebits)
        );
        assert!(
            matches!(
                got,
                Err(GcError::Malformed {
                    what: "garbled tables",
                    ..
                })
            ),
            "{got:?}"
        );
        assert!(!ev.has_used(0), "nothing was evaluated");
    })
    .await
    .expect("malformed-frame test timed out");
}
