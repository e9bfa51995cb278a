//! The BFV batch encoder: `N` plaintext slots in `Z_p`, as two rows of `N / 2`,
//! mapped to a polynomial of `Z_p[X]/(X^N + 1)` by the inverse NTT modulo `p`.
//!
//! **Computes.** For a prime `p = 1 mod 2N` the polynomial `X^N + 1` splits into
//! `N` linear factors modulo `p`, one per primitive `2N`-th root of unity `psi^e`
//! (`e` odd), and `Z_p[X]/(X^N + 1)` is isomorphic to `Z_p^N` by evaluation
//! (CRT). The slots are ordered as in SEAL and the BFV/BGV literature
//! (Gentry, Halevi, Smart, "Fully homomorphic encryption with polylog
//! overhead", EUROCRYPT 2012; Halevi and Shoup, CRYPTO 2014): slot `i` of row 0
//! is the evaluation at `psi^(3^i mod 2N)`, slot `i` of row 1 at
//! `psi^(-3^i mod 2N)`, `0 <= i < N / 2`. Then the Galois automorphism
//! `X -> X^(3^k)` rotates both rows left by `k` (slot `i` receives slot `i + k`
//! mod `N / 2`) and `X -> X^(2N - 1)` swaps the rows ([`super::rotation`]).
//! Products and sums of polynomials are slot-wise products and sums.
//!
//! **Learns.** Public, local arithmetic: no messages.

use fusion_core::field::PrimeField;
use tfhe_ntt::prime64::Plan;

use crate::arith::{inv_mod, mul_mod};
use crate::error::HeError;

/// The slot encoder for one prime `p = 1 mod 2N` and degree `N`.
#[derive(Debug)]
pub struct BatchEncoder {
    n: usize,
    field: PrimeField,
    plan: Plan,
    /// Evaluation index (in `tfhe-ntt`'s order) of every slot.
    slot_to_eval: Vec<u32>,
    n_inv: u64,
}

impl BatchEncoder {
    /// The encoder for `Z_p[X]/(X^N + 1)`; `p` must be `1 mod 2N`.
    pub fn new(field: PrimeField, n: usize) -> Result<Self, HeError> {
        let p = field.modulus();
        if !n.is_power_of_two() || n < 32 {
            return Err(HeError::InvalidParams(format!(
                "batch encoding needs a power-of-two degree >= 32, got {n}"
            )));
        }
        if p % (2 * n as u64) != 1 {
            return Err(HeError::InvalidParams(format!(
                "plaintext prime {p} is not 1 mod 2N = {}: no batch encoding",
                2 * n
            )));
        }
        let plan = Plan::try_new(n, p).ok_or_else(|| {
            HeError::InvalidParams(format!("tfhe-ntt cannot build a plan for N = {n}, p = {p}"))
        })?;
        // The transform of X holds every evaluation point.
        let mut x = vec![0u64; n];
        x[1] = 1;
        plan.fwd(&mut x);
        let two_n = 2 * n;
        let psi = x[0];
        let mut exp_of = std::collections::HashMap::with_capacity(n);
        let mut v = 1u64;
        for e in 0..two_n {
            if e % 2 == 1 {
                exp_of.insert(v, e);
            }
            v = mul_mod(v, psi, p);
        }
        if v != 1 {
            return Err(HeError::Internal("NTT root has the wrong order".into()));
        }
        let mut eval_of_exp = vec![u32::MAX; two_n];
        for (t, r) in x.iter().enumerate() {
            match exp_of.get(r) {
                Some(&e) => eval_of_exp[e] = t as u32,
                None => return Err(HeError::Internal("NTT point is not a root".into())),
            }
        }
        let half = n / 2;
        let mut slot_to_eval = vec![0u32; n];
        let mut g = 1usize;
        for i in 0..half {
            slot_to_eval[i] = eval_of_exp[g];
            slot_to_eval[half + i] = eval_of_exp[two_n - g];
            g = g * 3 % two_n;
        }
        if slot_to_eval.contains(&u32::MAX) {
            return Err(HeError::Internal("slot layout is not a bijection".into()));
        }
        Ok(BatchEncoder {
            n,
            field,
            plan,
            slot_to_eval,
            n_inv: inv_mod(n as u64, p),
        })
    }

    /// The number of slots, `N`.
    pub fn slots(&self) -> usize {
        self.n
    }

    /// The slot field.
    pub fn field(&self) -> PrimeField {
        self.field
    }

    /// The coefficients (in `[0, p)`) of the polynomial whose slots are `slots`
    /// (`N` values in `[0, p)`).
    pub fn encode(&self, slots: &[u64]) -> Result<Vec<u64>, HeError> {
        self.check(slots, "slots")?;
        let mut out = vec![0u64; self.n];
        self.encode_into(slots, &mut out);
        Ok(out)
    }

    /// The slots of the polynomial with coefficients `coeffs` (`N` values in `[0, p)`).
    pub fn decode(&self, coeffs: &[u64]) -> Result<Vec<u64>, HeError> {
        self.check(coeffs, "coefficients")?;
        let mut out = vec![0u64; self.n];
        self.decode_into(coeffs, &mut out);
        Ok(out)
    }

    fn check(&self, v: &[u64], what: &'static str) -> Result<(), HeError> {
        if v.len() != self.n {
            return Err(HeError::InputLength {
                what,
                expected: self.n,
                found: v.len(),
            });
        }
        if let Some(i) = v.iter().position(|&x| !self.field.contains(x)) {
            return Err(HeError::Malformed {
                what,
                detail: format!("value at {i} is not below p"),
            });
        }
        Ok(())
    }

    /// [`BatchEncoder::encode`] into `out` (lengths `N`, values reduced).
    pub(crate) fn encode_into(&self, slots: &[u64], out: &mut [u64]) {
        let p = self.field.modulus();
        for (s, &t) in slots.iter().zip(&self.slot_to_eval) {
            out[t as usize] = mul_mod(*s, self.n_inv, p);
        }
        self.plan.inv(out);
    }

    /// [`BatchEncoder::decode`] into `out`.
    pub(crate) fn decode_into(&self, coeffs: &[u64], out: &mut [u64]) {
        let mut ev = coeffs.to_vec();
        self.plan.fwd(&mut ev);
        for (o, &t) in out.iter_mut().zip(&self.slot_to_eval) {
            *o = ev[t as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automorphism::automorphism_coeffs;
    use crate::poly::naive_negacyclic;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    fn enc(n: usize) -> BatchEncoder {
        let f = PrimeField::ntt_friendly(1 << 37, 2 * n as u64).expect("prime");
        BatchEncoder::new(f, n).expect("encoder")
    }

    fn random_slots(f: PrimeField, n: usize, seed: u64) -> Vec<u64> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let p = f.modulus();
        (0..n)
            .map(|i| match i {
                0 => 0,
                1 => p - 1,
                2 => p / 2,
                3 => p / 2 + 1,
                _ => f.random(&mut rng),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn encode_then_decode_is_the_identity(seed in any::<u64>(), logn in 5u32..=13) {
            let n = 1usize << logn;
            let e = enc(n);
            let v = random_slots(e.field(), n, seed);
            let c = e.encode(&v).unwrap();
            prop_assert!(c.iter().all(|&x| x < e.field().modulus()));
            prop_assert_eq!(e.decode(&c).unwrap(), v);
        }

        #[test]
        fn slotwise_product_is_the_negacyclic_product_mod_p(seed in any::<u64>(), logn in 5u32..=9) {
            let n = 1usize << logn;
            let e = enc(n);
            let f = e.field();
            let a = random_slots(f, n, seed);
            let b = random_slots(f, n, seed ^ 0x55);
            let prod = naive_negacyclic(&e.encode(&a).unwrap(), &e.encode(&b).unwrap(), f.modulus());
            let want: Vec<u64> = a.iter().zip(&b).map(|(&x, &y)| f.mul(x, y)).collect();
            prop_assert_eq!(e.decode(&prod).unwrap(), want);
        }

        #[test]
        fn galois_elements_rotate_rows_and_swap_them(seed in any::<u64>(), logn in 5u32..=10, k in 0usize..2000) {
            let n = 1usize << logn;
            let half = n / 2;
            let k = k % half;
            let e = enc(n);
            let f = e.field();
            let p = f.modulus();
            let v = random_slots(f, n, seed);
            let c: Vec<i64> = e.encode(&v).unwrap().iter().map(|&x| f.to_signed(x)).collect();
            let apply = |g: usize| -> Vec<u64> {
                let t: Vec<u64> = automorphism_coeffs(&c, g).iter().map(|&x| f.from_signed(x)).collect();
                e.decode(&t).unwrap()
            };
            let g = (0..k).fold(1usize, |acc, _| acc * 3 % (2 * n));
            let rot = apply(g);
            for row in 0..2 {
                for i in 0..half {
                    prop_assert_eq!(rot[row * half + i], v[row * half + (i + k) % half]);
                }
            }
            let sw = apply(2 * n - 1);
            for i in 0..half {
                prop_assert_eq!(sw[i], v[half + i]);
                prop_assert_eq!(sw[half + i], v[i]);
            }
            prop_assert!(p > 0);
        }
    }

    #[test]
    fn encoder_rejects_primes_without_roots_and_bad_inputs() {
        let f = PrimeField::new(1_000_000_007).unwrap();
        assert!(BatchEncoder::new(f, 1024).is_err());
        let e = enc(32);
        assert!(matches!(
            e.encode(&[0; 31]),
            Err(HeError::InputLength { .. })
        ));
        let mut v = vec![0u64; 32];
        v[5] = e.field().modulus();
        assert!(e.encode(&v).is_err());
    }
}
