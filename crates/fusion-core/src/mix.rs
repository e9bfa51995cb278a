//! Building Fusion's mixed batch (paper section IV-A, Fig. 3, step 1).
//!
//! The client takes its `R` private queries, makes `B` copies of each, adds
//! `T` public samples whose labels it knows, and shuffles the `N = RB + T`
//! samples under a uniformly random permutation drawn from a CSPRNG
//! (Fisher-Yates with unbiased index sampling, [`uniform_below`]). It keeps the
//! permutation (the [`SecretMap`], zeroised on drop) to [`MixedBatch::unmix`]
//! the engine's outputs.
//!
//! What each party learns: the server sees only the batch size `N` and the
//! (encrypted or secret-shared) samples; to it, copies and public samples must
//! be indistinguishable, so every sample must have the same shape and encoding
//! (checked here through [`Shaped`] or a shape callback) and every batch must
//! use a fresh permutation (every constructor draws one). The client learns
//! everything.

use std::fmt::Debug;

use rand::rngs::{ChaCha20Rng, SysRng};
use rand::{CryptoRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::Error;
use crate::error::SampleKind;

/// A uniformly random integer in `0..n` (`n >= 1`), without modulo bias
/// (Lemire's multiply-and-reject method; rejected draws are redrawn).
///
/// # Panics
///
/// If `n == 0`.
pub fn uniform_below<R: Rng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    assert!(n > 0, "uniform_below(0)");
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        // 2^64 mod n: the number of low-word values to reject.
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// A sample type with a shape that must match across the whole batch.
pub trait Shaped {
    /// The shape (for a vector, its length; for a tensor, its dimensions).
    type Shape: PartialEq + Debug;
    /// This sample's shape.
    fn shape(&self) -> Self::Shape;
}

impl<T> Shaped for Vec<T> {
    type Shape = usize;
    fn shape(&self) -> usize {
        self.len()
    }
}

impl<T, const L: usize> Shaped for [T; L] {
    type Shape = usize;
    fn shape(&self) -> usize {
        L
    }
}

/// A public sample with its known label (a class index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labeled<S> {
    /// The sample.
    pub sample: S,
    /// Its class index, `< classes`.
    pub label: usize,
}

impl<S> Labeled<S> {
    /// A labelled sample.
    pub fn new(sample: S, label: usize) -> Self {
        Labeled { sample, label }
    }
}

/// The client's secret record of the shuffle: for each position of the mixed
/// batch, which item it holds. Item `x < RB` is copy `x % B` of query `x / B`;
/// item `RB + p` is public sample `p`. Zeroised on drop.
#[derive(Clone)]
pub struct SecretMap {
    queries: usize,
    copies: usize,
    labels: Vec<usize>,
    item_at: Vec<usize>,
}

impl Debug for SecretMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretMap")
            .field("queries", &self.queries)
            .field("copies", &self.copies)
            .field("public", &self.labels.len())
            .finish_non_exhaustive()
    }
}

impl Drop for SecretMap {
    fn drop(&mut self) {
        self.item_at.zeroize();
    }
}

/// Where an item sits in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Copy `copy` of query `query`.
    Query {
        /// Query index.
        query: usize,
        /// Copy index, `< B`.
        copy: usize,
    },
    /// Public sample `index`.
    Public {
        /// Index in the public list.
        index: usize,
    },
}

impl SecretMap {
    /// `R`.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// `B`.
    pub fn copies(&self) -> usize {
        self.copies
    }

    /// `T`.
    pub fn public(&self) -> usize {
        self.labels.len()
    }

    /// `N = RB + T`.
    pub fn total(&self) -> usize {
        self.item_at.len()
    }

    /// The public samples' labels, in input order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// What sits at `position` (`None` if out of range).
    pub fn slot(&self, position: usize) -> Option<Slot> {
        let item = *self.item_at.get(position)?;
        let rb = self.queries * self.copies;
        Some(if item < rb {
            Slot::Query {
                query: item / self.copies,
                copy: item % self.copies,
            }
        } else {
            Slot::Public { index: item - rb }
        })
    }
}

/// The engine's outputs put back in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmixed<O> {
    /// `queries[q][c]`: the output for copy `c` of query `q`.
    pub queries: Vec<Vec<O>>,
    /// `(output, true label)` for each public sample, in input order.
    pub public: Vec<(O, usize)>,
}

/// A shuffled batch and its secret map.
#[derive(Debug, Clone)]
pub struct MixedBatch<S> {
    samples: Vec<S>,
    map: SecretMap,
}

impl<S: Clone> MixedBatch<S> {
    /// Mixes `copies` copies of each query with the public samples under a
    /// permutation drawn from `rng`. Checks `R >= 1`, `B >= 2`, `T >= 1`,
    /// `classes >= 1`, labels `< classes` and that all samples have query 0's
    /// [`Shaped::shape`].
    pub fn new<R: Rng + CryptoRng + ?Sized>(
        queries: &[S],
        public: &[Labeled<S>],
        copies: usize,
        classes: usize,
        rng: &mut R,
    ) -> Result<Self, Error>
    where
        S: Shaped,
    {
        Self::new_with_shape(queries, public, copies, classes, S::shape, rng)
    }

    /// [`MixedBatch::new`] with the permutation drawn from a ChaCha20 generator
    /// seeded by the operating system.
    pub fn new_os_seeded(
        queries: &[S],
        public: &[Labeled<S>],
        copies: usize,
        classes: usize,
    ) -> Result<Self, Error>
    where
        S: Shaped,
    {
        let mut rng = os_rng()?;
        Self::new(queries, public, copies, classes, &mut rng)
    }

    /// [`MixedBatch::new`] for sample types without a [`Shaped`] impl: `shape`
    /// computes a comparable shape of each sample.
    pub fn new_with_shape<Sh, F, R>(
        queries: &[S],
        public: &[Labeled<S>],
        copies: usize,
        classes: usize,
        shape: F,
        rng: &mut R,
    ) -> Result<Self, Error>
    where
        Sh: PartialEq + Debug,
        F: Fn(&S) -> Sh,
        R: Rng + CryptoRng + ?Sized,
    {
        if copies < 2 {
            return Err(Error::TooFewCopies(copies as u64));
        }
        validate_with_shape(queries, public, classes, shape)?;
        let rb = queries.len().checked_mul(copies).ok_or_else(too_big)?;
        let total = rb.checked_add(public.len()).ok_or_else(too_big)?;

        let mut item_at: Vec<usize> = (0..total).collect();
        // Fisher-Yates: position i takes a uniform item among those left.
        for i in (1..total).rev() {
            let j = uniform_below(rng, i as u64 + 1) as usize;
            item_at.swap(i, j);
        }
        let samples = item_at
            .iter()
            .map(|&item| {
                if item < rb {
                    queries[item / copies].clone()
                } else {
                    public[item - rb].sample.clone()
                }
            })
            .collect();
        let map = SecretMap {
            queries: queries.len(),
            copies,
            labels: public.iter().map(|p| p.label).collect(),
            item_at,
        };
        Ok(MixedBatch { samples, map })
    }
}

impl<S> MixedBatch<S> {
    /// The shuffled samples to hand to the engine.
    pub fn samples(&self) -> &[S] {
        &self.samples
    }

    /// The secret map.
    pub fn map(&self) -> &SecretMap {
        &self.map
    }

    /// Splits into the samples and the secret map.
    pub fn into_parts(self) -> (Vec<S>, SecretMap) {
        (self.samples, self.map)
    }

    /// Puts the engine's outputs (one per position, in batch order) back in
    /// query/copy and public order. Fails if there are not exactly `N` outputs.
    pub fn unmix<O>(&self, outputs: Vec<O>) -> Result<Unmixed<O>, Error> {
        self.map.unmix(outputs)
    }
}

impl SecretMap {
    /// See [`MixedBatch::unmix`].
    pub fn unmix<O>(&self, outputs: Vec<O>) -> Result<Unmixed<O>, Error> {
        if outputs.len() != self.total() {
            return Err(Error::OutputCount {
                expected: self.total(),
                got: outputs.len(),
            });
        }
        let rb = self.queries * self.copies;
        let mut by_item: Vec<Option<O>> = (0..self.total()).map(|_| None).collect();
        for (o, &item) in outputs.into_iter().zip(&self.item_at) {
            by_item[item] = Some(o);
        }
        // item_at is a permutation, so every slot is filled exactly once.
        let mut items = by_item.into_iter().flatten();
        let queries: Vec<Vec<O>> = (0..self.queries)
            .map(|_| items.by_ref().take(self.copies).collect())
            .collect();
        let public: Vec<(O, usize)> = items.zip(self.labels.iter().copied()).collect();
        debug_assert_eq!(queries.iter().map(Vec::len).sum::<usize>(), rb);
        debug_assert_eq!(public.len(), self.labels.len());
        Ok(Unmixed { queries, public })
    }
}

/// Checks the inputs of a mix without drawing anything: `R >= 1`, `T >= 1`,
/// `classes >= 1`, public labels `< classes`, and every sample with query 0's
/// [`Shaped::shape`].
pub fn validate<S: Shaped>(
    queries: &[S],
    public: &[Labeled<S>],
    classes: usize,
) -> Result<(), Error> {
    validate_with_shape(queries, public, classes, S::shape)
}

/// [`validate`] with a shape callback.
pub fn validate_with_shape<S, Sh, F>(
    queries: &[S],
    public: &[Labeled<S>],
    classes: usize,
    shape: F,
) -> Result<(), Error>
where
    Sh: PartialEq + Debug,
    F: Fn(&S) -> Sh,
{
    let first = queries.first().ok_or(Error::NoQueries)?;
    if public.is_empty() {
        return Err(Error::NoPublicSamples);
    }
    if classes == 0 {
        return Err(Error::InvalidParameter {
            name: "classes",
            reason: "there must be at least one class".into(),
        });
    }
    let expected = shape(first);
    let mismatch = |kind, index, found: Sh| Error::ShapeMismatch {
        kind,
        index,
        expected: format!("{expected:?}"),
        found: format!("{found:?}"),
    };
    for (index, q) in queries.iter().enumerate().skip(1) {
        let found = shape(q);
        if found != expected {
            return Err(mismatch(SampleKind::Query, index, found));
        }
    }
    for (index, p) in public.iter().enumerate() {
        let found = shape(&p.sample);
        if found != expected {
            return Err(mismatch(SampleKind::Public, index, found));
        }
        if p.label >= classes {
            return Err(Error::LabelOutOfRange {
                index,
                label: p.label,
                classes,
            });
        }
    }
    Ok(())
}

fn too_big() -> Error {
    Error::InvalidParameter {
        name: "batch size",
        reason: "R*B + T overflows usize".into(),
    }
}

/// A ChaCha20 generator seeded from the operating system: the only source
/// of randomness `fusion serve`, `fusion query` and `fusion demo` use.
pub fn os_rng() -> Result<ChaCha20Rng, Error> {
    ChaCha20Rng::try_from_rng(&mut SysRng).map_err(|e| Error::Entropy(e.to_string()))
}

/// A **deterministic** ChaCha20 generator from a 64-bit seed, for
/// reproducible experiments and benchmarks only.
///
/// Anyone who knows `seed` predicts everything drawn from it: the secret
/// permutation, the masks, the HE keys. `fusion experiment` (with `--seed`)
/// and `fusion-bench` use it so that a run can be repeated; `fusion serve`,
/// `fusion query` and `fusion demo` have no seed option (they refuse
/// `--seed`) and draw from [`os_rng`] only.
pub fn seeded_rng_for_experiments(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    fn public(n: usize, dim: usize) -> Vec<Labeled<Vec<u32>>> {
        (0..n)
            .map(|i| Labeled::new(vec![1000 + i as u32; dim], i % 3))
            .collect()
    }

    #[test]
    fn batch_holds_b_copies_of_each_query_and_every_public_sample() {
        let queries: Vec<Vec<u32>> = (0..4).map(|q| vec![q; 3]).collect();
        let pubs = public(5, 3);
        let batch = MixedBatch::new(&queries, &pubs, 3, 3, &mut rng(1)).unwrap();
        assert_eq!(batch.samples().len(), 4 * 3 + 5);
        for q in 0..4u32 {
            assert_eq!(batch.samples().iter().filter(|s| s[0] == q).count(), 3);
        }
        for p in &pubs {
            assert_eq!(
                batch.samples().iter().filter(|s| **s == p.sample).count(),
                1
            );
        }
        // The map says where everything is.
        for pos in 0..batch.samples().len() {
            match batch.map().slot(pos).unwrap() {
                Slot::Query { query, .. } => assert_eq!(batch.samples()[pos], queries[query]),
                Slot::Public { index } => assert_eq!(batch.samples()[pos], pubs[index].sample),
            }
        }
        assert_eq!(batch.map().slot(17), None);
    }

    #[test]
    fn unmix_inverts_the_shuffle() {
        let queries: Vec<Vec<u32>> = (0..6).map(|q| vec![q; 2]).collect();
        let pubs = public(7, 2);
        let batch = MixedBatch::new(&queries, &pubs, 4, 3, &mut rng(2)).unwrap();
        // The "engine" echoes its input.
        let outs = batch.samples().to_vec();
        let un = batch.unmix(outs).unwrap();
        for (q, copies) in un.queries.iter().enumerate() {
            assert_eq!(copies.len(), 4);
            assert!(copies.iter().all(|c| *c == queries[q]));
        }
        for (i, (o, label)) in un.public.iter().enumerate() {
            assert_eq!(*o, pubs[i].sample);
            assert_eq!(*label, pubs[i].label);
        }
    }

    #[test]
    fn unmix_checks_the_output_count() {
        let queries = vec![vec![0u8; 2]];
        let batch = MixedBatch::new(
            &queries,
            &[Labeled::new(vec![1u8; 2], 0)],
            2,
            1,
            &mut rng(3),
        )
        .unwrap();
        assert!(matches!(
            batch.unmix(vec![0; 2]),
            Err(Error::OutputCount {
                expected: 3,
                got: 2
            })
        ));
        assert!(matches!(
            batch.unmix(vec![0; 4]),
            Err(Error::OutputCount {
                expected: 3,
                got: 4
            })
        ));
        assert!(batch.unmix(vec![0; 3]).is_ok());
    }

    #[test]
    fn invalid_inputs_give_typed_errors() {
        let q = vec![vec![0u8; 2]];
        let p = vec![Labeled::new(vec![1u8; 2], 1)];
        let r = &mut rng(4);
        assert!(matches!(
            MixedBatch::<Vec<u8>>::new(&[], &p, 2, 2, r),
            Err(Error::NoQueries)
        ));
        assert!(matches!(
            MixedBatch::new(&q, &p, 1, 2, r),
            Err(Error::TooFewCopies(1))
        ));
        assert!(matches!(
            MixedBatch::new(&q, &[], 2, 2, r),
            Err(Error::NoPublicSamples)
        ));
        assert!(matches!(
            MixedBatch::new(&q, &p, 2, 0, r),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            MixedBatch::new(&q, &p, 2, 1, r),
            Err(Error::LabelOutOfRange {
                index: 0,
                label: 1,
                classes: 1
            })
        ));
        let q2 = vec![vec![0u8; 2], vec![0u8; 3]];
        assert!(matches!(
            MixedBatch::new(&q2, &p, 2, 2, r),
            Err(Error::ShapeMismatch {
                kind: SampleKind::Query,
                index: 1,
                ..
            })
        ));
        let p2 = vec![Labeled::new(vec![1u8; 2], 0), Labeled::new(vec![1u8; 5], 0)];
        let err = MixedBatch::new(&q, &p2, 2, 2, r).unwrap_err();
        assert!(matches!(
            err,
            Error::ShapeMismatch {
                kind: SampleKind::Public,
                index: 1,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "public sample 1 has shape 5, but query 0 has shape 2"
        );
    }

    #[test]
    fn shape_callback_for_unshaped_types() {
        #[derive(Clone, Debug, PartialEq)]
        struct Img {
            h: usize,
            w: usize,
        }
        let q = vec![Img { h: 2, w: 2 }];
        let p = vec![Labeled::new(Img { h: 2, w: 3 }, 0)];
        let err = MixedBatch::new_with_shape(&q, &p, 2, 1, |i: &Img| (i.h, i.w), &mut rng(5));
        assert!(matches!(err, Err(Error::ShapeMismatch { .. })));
        let p = vec![Labeled::new(Img { h: 2, w: 2 }, 0)];
        assert!(
            MixedBatch::new_with_shape(&q, &p, 2, 1, |i: &Img| (i.h, i.w), &mut rng(5)).is_ok()
        );
    }

    #[test]
    fn os_seeded_constructor_works() {
        let q = vec![vec![0u8; 2]];
        let p = vec![Labeled::new(vec![1u8; 2], 0)];
        let b = MixedBatch::new_os_seeded(&q, &p, 3, 1).unwrap();
        assert_eq!(b.samples().len(), 4);
    }

    #[test]
    fn uniform_below_is_unbiased_on_a_small_range() {
        // 3 does not divide 2^64; each value should get 1/3 within 4 sigma.
        let mut r = rng(6);
        let n = 90_000;
        let mut counts = [0u32; 3];
        for _ in 0..n {
            counts[uniform_below(&mut r, 3) as usize] += 1;
        }
        let sigma = (n as f64 * (1.0 / 3.0) * (2.0 / 3.0)).sqrt();
        for c in counts {
            assert!(
                (c as f64 - n as f64 / 3.0).abs() < 4.0 * sigma,
                "{counts:?}"
            );
        }
        assert_eq!(uniform_below(&mut r, 1), 0);
        for _ in 0..1000 {
            assert!(uniform_below(&mut r, u64::MAX) < u64::MAX);
        }
    }

    #[test]
    fn permutation_is_uniform_over_all_orders() {
        // R = 1, B = 2, T = 1: three items, 3!/2! = 3 distinguishable layouts,
        // but the map distinguishes the copies: 3! = 6 permutations.
        let q = vec![vec![0u8]];
        let p = vec![Labeled::new(vec![1u8], 0)];
        let mut r = rng(7);
        let runs = 60_000;
        let mut counts = std::collections::HashMap::new();
        for _ in 0..runs {
            let b = MixedBatch::new(&q, &p, 2, 1, &mut r).unwrap();
            let key: Vec<_> = (0..3).map(|i| b.map().slot(i).unwrap()).collect();
            *counts.entry(format!("{key:?}")).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 6);
        let sigma = (runs as f64 * (1.0 / 6.0) * (5.0 / 6.0)).sqrt();
        for c in counts.values() {
            assert!(
                (*c as f64 - runs as f64 / 6.0).abs() < 4.0 * sigma,
                "{counts:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn unmix_of_a_relabelled_echo_recovers_every_item(
            r in 1usize..8, b in 2usize..5, t in 1usize..10, seed in any::<u64>()
        ) {
            let queries: Vec<Vec<usize>> = (0..r).map(|q| vec![q]).collect();
            let pubs: Vec<Labeled<Vec<usize>>> =
                (0..t).map(|i| Labeled::new(vec![100 + i], i % 2)).collect();
            let batch = MixedBatch::new(&queries, &pubs, b, 2, &mut rng(seed)).unwrap();
            let un = batch.unmix(batch.samples().to_vec()).unwrap();
            prop_assert_eq!(un.queries.len(), r);
            for (q, c) in un.queries.iter().enumerate() {
                prop_assert_eq!(c.len(), b);
                prop_assert!(c.iter().all(|s| s[0] == q));
            }
            for (i, (s, l)) in un.public.iter().enumerate() {
                prop_assert_eq!(s[0], 100 + i);
                prop_assert_eq!(*l, i % 2);
            }
        }
    }
}
