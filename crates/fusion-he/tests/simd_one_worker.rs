//! SIMD layers when one rayon worker encrypts several ciphertexts in a row
//! (its scratch buffers are reused): a regression test for scratch that was
//! truncated by `Vec::zeroize`, which made the second ciphertext panic in the
//! NTT. Both parties in one test, fixed seeds, against the plaintext product
//! mod `p`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fusion_he::FcShape;
use fusion_he::simd::{SimdClient, SimdLinear, SimdPlan, SimdPreset, SimdServer};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

#[test]
fn one_worker_encrypting_many_ciphertexts_gives_exact_shares() {
    let params = SimdPreset::N8192.params().unwrap();
    let f = params.field();
    let (n, d, o) = (24, 784, 10);
    let plan = SimdPlan::fc(&params, FcShape::new(n, d, o)).unwrap();
    assert!(
        plan.input_cts() >= 3,
        "{} input ciphertexts",
        plan.input_cts()
    );
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let w: Vec<u64> = (0..o * d)
        .map(|i| f.from_signed((i as i64 % 7) - 3))
        .collect();
    let x: Vec<u64> = (0..n * d)
        .map(|i| f.from_signed((i as i64 % 11) - 5))
        .collect();
    let xs: Vec<u64> = (0..n * d).map(|_| f.random(&mut rng)).collect();
    let xc: Vec<u64> = x.iter().zip(&xs).map(|(&a, &b)| f.sub(a, b)).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (yc, ys) = pool.install(|| {
        let client = SimdClient::new(&params, &mut rng);
        let (pk, gk) = client.setup_messages(plan.galois_elements(), &mut rng);
        let server = SimdServer::from_setup_messages(&params, &pk, Some(&gk)).unwrap();
        let layer = SimdLinear::fc(plan.clone(), &w, None).unwrap();
        let query = client.query_bytes(&plan, &xc, &mut rng).unwrap();
        let (reply, ys) = layer.respond_bytes(&server, &query, &xs, &mut rng).unwrap();
        (client.decrypt_bytes(&plan, reply).unwrap(), ys)
    });
    for s in 0..n {
        for j in 0..o {
            let want = (0..d).fold(0u64, |acc, i| f.add(acc, f.mul(w[j * d + i], x[s * d + i])));
            assert_eq!(
                f.add(yc[s * o + j], ys[s * o + j]),
                want,
                "sample {s}, output {j}"
            );
        }
    }
}
