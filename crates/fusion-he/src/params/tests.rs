//! Tests of the presets, the builder's checks and the fingerprint.

use super::*;

fn ring(l: u32) -> Ring {
    Ring::new(l).unwrap()
}

#[test]
fn presets_meet_the_standard_table() {
    for (preset, l) in [
        (Preset::N4096, 37),
        (Preset::N8192, 37),
        (Preset::N8192, 64),
    ] {
        let p = preset.params(ring(l)).unwrap();
        assert!(p.log2_q() <= SecurityLevel::Bits128.max_log_q(p.degree()).unwrap() as f64);
        assert!(p.log2_q() > SecurityLevel::Bits128.max_log_q(p.degree()).unwrap() as f64 - 0.1);
        for &q in p.primes() {
            assert_eq!(q % (2 * p.degree() as u64), 1);
        }
        assert!(p.security_note().contains("HomomorphicEncryption.org"));
    }
}

#[test]
fn builder_rejects_moduli_above_the_table() {
    let err = ParamsBuilder::new(ring(37), 12, vec![40, 40, 40])
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            HeError::InsecureModulus {
                n: 4096,
                max_log_q: 109,
                ..
            }
        ),
        "{err}"
    );
    let err = Preset::N4096
        .builder(ring(37))
        .security(SecurityLevel::Bits192)
        .build()
        .unwrap_err();
    assert!(matches!(err, HeError::InsecureModulus { .. }));
}

#[test]
fn builder_rejects_inconsistent_combinations() {
    // t = 2^64 leaves no flooding room in 109 bits.
    assert!(matches!(
        Preset::N4096.params(ring(64)),
        Err(HeError::InvalidParams(_))
    ));
    assert!(ParamsBuilder::new(ring(37), 9, vec![30]).build().is_err());
    assert!(
        ParamsBuilder::new(ring(37), 12, vec![62, 40])
            .build()
            .is_err()
    );
    assert!(
        Preset::N4096
            .builder(ring(37))
            .reply_b_extra_bits(0)
            .build()
            .is_err()
    );
    assert!(
        Preset::N4096
            .builder(ring(37))
            .reply_a_extra_bits(3)
            .reply_b_extra_bits(4)
            .build()
            .is_err()
    );
    assert!(
        Preset::N4096
            .builder(ring(37))
            .stat_sec_bits(10)
            .build()
            .is_err()
    );
}

#[test]
fn smallest_preset_follows_ring_and_weights() {
    assert_eq!(
        Preset::smallest_for(ring(37), 16, 1 << 14).unwrap(),
        Preset::N4096
    );
    assert_eq!(
        Preset::smallest_for(ring(37), 36, 1 << 14).unwrap(),
        Preset::N8192
    );
    assert_eq!(
        Preset::smallest_for(ring(64), 16, 1 << 14).unwrap(),
        Preset::N8192
    );
    assert_eq!(
        Preset::smallest_for(ring(64), 63, 1 << 14).unwrap(),
        Preset::N8192
    );
}

#[test]
fn packing_depth_is_checked_against_the_noise_room() {
    let p = Preset::N4096
        .builder(ring(37))
        .reply_packing(DEFAULT_PACKING_LEVELS)
        .build()
        .unwrap();
    assert_eq!((p.reply_packing_levels(), p.key_switch_digits()), (7, 3));
    assert_eq!(
        p.galois_key_bytes(),
        7 + p.fingerprint().len() + 32 + 21 * p.poly_bytes()
    );
    // Packing changes the fingerprint, so that both parties must agree on it.
    assert_ne!(p, Preset::N4096.params(ring(37)).unwrap());
    assert_eq!(
        Preset::N4096.params(ring(37)).unwrap().galois_key_bytes(),
        0
    );
    // l = 41 leaves room for 5 levels only; the error says so.
    let err = Preset::N4096
        .builder(ring(41))
        .reply_packing(7)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("at most 5 levels"), "{err}");
    assert!(
        Preset::N4096
            .builder(ring(41))
            .reply_packing(5)
            .build()
            .is_ok()
    );
    assert!(
        Preset::N4096
            .builder(ring(37))
            .reply_packing(13)
            .build()
            .is_err()
    );
    // N = 8192: two digits of three primes, every l.
    for l in [37, 64] {
        let p = Preset::N8192
            .builder(ring(l))
            .reply_packing(DEFAULT_PACKING_LEVELS)
            .build()
            .unwrap();
        assert_eq!(p.key_switch_digits(), 2);
    }
}

#[test]
fn preset_text_and_wire_forms() {
    for (p, text) in [(Preset::N4096, "n4096"), (Preset::N8192, "n8192")] {
        assert_eq!(p.to_string(), text);
        assert_eq!(text.parse::<Preset>().unwrap(), p);
        assert_eq!(text.to_uppercase().parse::<Preset>().unwrap(), p);
        assert_eq!(format!(" {} ", p.degree()).parse::<Preset>().unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Preset>(&json).unwrap(), p);
    }
    assert_eq!(serde_json::to_string(&Preset::N4096).unwrap(), "\"N4096\"");
    let err = "n2048".parse::<Preset>().unwrap_err();
    assert!(matches!(err, HeError::InvalidParams(_)));
    let msg = err.to_string();
    for choice in ["n4096", "4096", "n8192", "8192"] {
        assert!(msg.contains(choice), "{msg}");
    }
}

#[test]
fn fingerprint_distinguishes_parameter_sets() {
    let a = Preset::N4096.params(ring(37)).unwrap();
    let b = Preset::N4096.params(ring(41)).unwrap();
    let c = Preset::N4096.params(ring(37)).unwrap();
    assert_ne!(a, b);
    assert_eq!(a, c);
}

#[test]
fn per_session_forty_bits_at_a_2_pow_30_cap_fit_n8192_but_not_n4096() {
    let s = crate::SessionFlooding::for_session(40, 1 << 30).unwrap();
    assert_eq!(s.per_coefficient_bits, 70);
    assert_eq!(s.per_session_bits(), 40.0);
    let l = 37;
    // N = 8192 admits lambda_c = 70: the builder's q condition holds and the
    // flooding of a 3136-input FC with 2^16-bounded weights reaches it.
    let p = Preset::N8192
        .builder(ring(l))
        .stat_sec_bits(s.per_coefficient_bits)
        .build()
        .unwrap();
    assert_eq!(p.stat_sec_bits(), 70);
    assert!(p.log2_q() >= (l + 1 + s.per_coefficient_bits + 20) as f64);
    let a = crate::NoiseAnalysis::new(&p, 8 * 3136).unwrap();
    assert!(a.check_flooding(&p, 16).unwrap() >= 70.0);
    // N = 4096's q (2^109) is below l + 1 + 70 + 20 = 128 bits: refused.
    let p4 = Preset::N4096.params(ring(l)).unwrap();
    assert!(p4.log2_q() < (l + 1 + s.per_coefficient_bits + 20) as f64);
    match Preset::N4096
        .builder(ring(l))
        .stat_sec_bits(s.per_coefficient_bits)
        .build()
    {
        Err(HeError::InvalidParams(m)) => assert!(m.contains("70-bit flooding"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn session_caps_round_up_to_a_power_of_two_and_ranges_are_checked() {
    let s = crate::SessionFlooding::for_session(40, (1 << 20) + 1).unwrap();
    assert_eq!(s.per_coefficient_bits, 61);
    assert!(s.per_session_bits() >= 40.0);
    assert_eq!(
        crate::SessionFlooding::for_session(40, 1)
            .unwrap()
            .per_coefficient_bits,
        40
    );
    assert!(crate::SessionFlooding::for_session(40, 0).is_err());
    assert!(crate::SessionFlooding::for_session(40, (1 << 48) + 1).is_err());
    assert!(crate::SessionFlooding::for_session(100, 1 << 40).is_err());
    let bad = crate::SessionFlooding {
        per_coefficient_bits: 19,
        max_revealed: 1,
    };
    assert!(bad.validate().is_err());
}
