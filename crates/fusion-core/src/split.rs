//! [`SplitEngine`]: one Fusion batch split across several engines (workers
//! holding the same model), for scale-out.
//!
//! **What it computes.** Given the mixed batch of `N` samples that
//! [`crate::engine::run_fusion`] has already shuffled under its secret
//! permutation, the client draws a *fresh, independent, uniformly random
//! balanced partition* of the `N` positions into `k` parts (sizes differ by at
//! most one), sends part `j` to worker `j` (in the partition's order), runs all
//! workers concurrently, and puts every output back at its position. The
//! checks then run on the whole batch with the global `R`, `B` and `T`, so the
//! verdict and the bound are exactly those of one server running the whole
//! batch.
//!
//! **Why the checks stay sound when all workers are one adversary.** Fusion's
//! bound (Dong et al., NDSS 2023, section IV-C; [`crate::security`]) needs
//! only that the server's choice of *which* positions to corrupt is
//! independent of the secret permutation that places query copies and public
//! samples. Let the workers collude and pool everything they see: worker `j`
//! sees `n_j` samples in some order, and the adversary picks any set of pairs
//! `(j, i)` ("worker `j`'s `i`-th sample") to corrupt. The map from pairs to
//! mixed-batch elements is the composition of the partition (a fixed
//! injection once drawn) with the mixing permutation, which is uniform and
//! independent of the partition; the composition is therefore a uniformly
//! random bijection, independent of everything the adversary sees (the part
//! sizes are public and carry no information about it). So the corrupted
//! elements are distributed exactly as for one server corrupting the same
//! number of positions, and [`crate::security::slack_bound`] applies
//! unchanged. Copies of one query are *not* kept together: keeping them on
//! one worker would let that worker answer them consistently with no risk,
//! which is precisely the freedom the bound forbids.
//!
//! **What it does not change.** Each worker learns only its part's size
//! (as a single server learns `N`). A worker that refuses or fails ends the
//! whole run with an error and no verdict, like a single server that aborts.
//! A deviation applied alike to every sample (a different model on one
//! worker) is caught exactly as on one server: by copy consistency where it
//! splits the copies of a query across workers, and by the public-accuracy
//! check.

use futures::future::join_all;
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom;
use rand::{CryptoRng, Rng, SeedableRng};

use crate::Error;
use crate::engine::{Engine, Output};

/// Several engines running one batch as a uniformly random partition of its
/// positions (see the module docs).
#[derive(Debug)]
pub struct SplitEngine<E> {
    workers: Vec<E>,
    rng: ChaCha20Rng,
    last: Vec<usize>,
}

impl<E> SplitEngine<E> {
    /// Workers `workers` (at least one); the partitions are drawn from a
    /// generator seeded from `rng`.
    pub fn new<G: Rng + CryptoRng + ?Sized>(workers: Vec<E>, rng: &mut G) -> Result<Self, Error> {
        if workers.is_empty() {
            return Err(Error::Worker {
                worker: 0,
                source: "a split engine needs at least one worker".into(),
            });
        }
        Ok(SplitEngine {
            workers,
            rng: ChaCha20Rng::from_rng(rng),
            last: Vec::new(),
        })
    }

    /// Samples each worker ran in the last batch (empty before the first).
    pub fn last_sizes(&self) -> &[usize] {
        &self.last
    }

    /// The workers, in the order given.
    pub fn workers(&self) -> &[E] {
        &self.workers
    }

    /// The workers back.
    pub fn into_workers(self) -> Vec<E> {
        self.workers
    }
}

/// A uniformly random partition of `0..n` into `k` parts whose sizes differ
/// by at most one (the first `n % k` parts have one more).
pub fn balanced_partition<G: Rng + ?Sized>(n: usize, k: usize, rng: &mut G) -> Vec<Vec<usize>> {
    let mut positions: Vec<usize> = (0..n).collect();
    positions.shuffle(rng);
    let k = k.max(1);
    let (base, extra) = (n / k, n % k);
    let mut parts = Vec::with_capacity(k);
    let mut start = 0;
    for j in 0..k {
        let len = base + usize::from(j < extra);
        parts.push(positions[start..start + len].to_vec());
        start += len;
    }
    parts
}

impl<S, E> Engine<S> for SplitEngine<E>
where
    S: Clone + Send + Sync,
    E: Engine<S> + Send,
{
    type Error = Error;

    fn infer(
        &mut self,
        batch: &[S],
    ) -> impl std::future::Future<Output = Result<Vec<Output>, Error>> + Send {
        let parts = balanced_partition(batch.len(), self.workers.len(), &mut self.rng);
        self.last = parts.iter().map(Vec::len).collect();
        let subs: Vec<Vec<S>> = parts
            .iter()
            .map(|p| p.iter().map(|&i| batch[i].clone()).collect())
            .collect();
        let n = batch.len();
        let workers = &mut self.workers;
        async move {
            let runs = workers
                .iter_mut()
                .zip(subs.iter())
                .filter(|(_, sub)| !sub.is_empty())
                .map(|(w, sub)| w.infer(sub));
            let results = join_all(runs).await;
            let mut outputs: Vec<Option<Output>> = vec![None; n];
            let busy = parts.iter().enumerate().filter(|(_, p)| !p.is_empty());
            for ((worker, part), result) in busy.zip(results) {
                let got = result.map_err(|e| Error::Worker {
                    worker,
                    source: Box::new(e),
                })?;
                if got.len() != part.len() {
                    return Err(Error::Worker {
                        worker,
                        source: format!("{} outputs for {} samples", got.len(), part.len()).into(),
                    });
                }
                for (&position, o) in part.iter().zip(got) {
                    outputs[position] = Some(o);
                }
            }
            // Every position is in exactly one part, so every slot is filled.
            outputs
                .into_iter()
                .enumerate()
                .map(|(position, o)| {
                    o.ok_or_else(|| Error::MalformedOutput {
                        position,
                        reason: "no worker returned this position".into(),
                    })
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FnEngine, FusionParams, run_fusion};
    use crate::mix::Labeled;
    use crate::verify::Verdict;

    fn public(n: usize) -> Vec<Labeled<Vec<f64>>> {
        (0..n)
            .map(|i| {
                let x = i as f64 - (n as f64 - 1.0) / 2.0;
                Labeled::new(vec![x], usize::from(x > 0.0))
            })
            .collect()
    }

    /// A plaintext engine from a function pointer.
    type Plain = FnEngine<fn(&Vec<f64>) -> Vec<f64>>;

    fn honest() -> Plain {
        FnEngine(|x: &Vec<f64>| vec![-x[0], x[0]])
    }

    #[test]
    fn partition_is_balanced_and_covers_every_position_once() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for (n, k) in [(0, 3), (1, 3), (10, 3), (180, 4), (7, 7), (5, 8)] {
            let parts = balanced_partition(n, k, &mut rng);
            assert_eq!(parts.len(), k);
            let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{sizes:?}");
            let mut all: Vec<usize> = parts.concat();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn partition_is_uniform_over_which_part_a_position_lands_in() {
        // Position 0 should land in each of 3 parts about a third of the time.
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut hits = [0u32; 3];
        for _ in 0..3000 {
            let parts = balanced_partition(9, 3, &mut rng);
            let j = parts.iter().position(|p| p.contains(&0)).unwrap();
            hits[j] += 1;
        }
        for h in hits {
            assert!((850..1150).contains(&h), "{hits:?}");
        }
    }

    #[test]
    fn honest_workers_are_accepted_with_the_outputs_of_one_engine() {
        let queries = vec![vec![0.5], vec![-2.0], vec![3.0]];
        let public = public(100);
        let params = FusionParams::new(2, "0.95".parse().unwrap());
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut split = SplitEngine::new(vec![honest(), honest(), honest()], &mut rng).unwrap();
        let report = futures::executor::block_on(run_fusion(
            &mut split, &queries, &public, &params, &mut rng,
        ))
        .unwrap();
        assert!(report.accepted());
        let labels: Vec<usize> = report
            .outputs()
            .unwrap()
            .iter()
            .map(|o| o.label())
            .collect();
        assert_eq!(labels, [1, 0, 1]);
        let n = report.parameters.total as usize;
        assert_eq!(split.last_sizes().iter().sum::<usize>(), n);
    }

    /// A worker that flips the label of every sample it runs: its part mixes
    /// copies of every query with public samples, so the checks catch it.
    #[test]
    fn one_cheating_worker_among_honest_ones_is_caught() {
        let queries: Vec<Vec<f64>> = (0..8).map(|i| vec![f64::from(i) - 3.5]).collect();
        let public = public(100);
        let params = FusionParams::new(2, "0.95".parse().unwrap());
        let flip: Plain = FnEngine(|x: &Vec<f64>| vec![x[0], -x[0]]);
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let mut split = SplitEngine::new(vec![honest(), honest(), flip], &mut rng).unwrap();
        let report = futures::executor::block_on(run_fusion(
            &mut split, &queries, &public, &params, &mut rng,
        ))
        .unwrap();
        assert!(matches!(report.verdict, Verdict::Abort { .. }));
    }

    #[test]
    fn a_failing_worker_names_itself() {
        struct Broken;
        impl Engine<Vec<f64>> for Broken {
            type Error = Error;
            fn infer(
                &mut self,
                _: &[Vec<f64>],
            ) -> impl std::future::Future<Output = Result<Vec<Output>, Error>> + Send {
                std::future::ready(Err(Error::Entropy("gone".into())))
            }
        }
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut split = SplitEngine::new(vec![Broken, Broken], &mut rng).unwrap();
        let batch = vec![vec![1.0]; 4];
        let err = futures::executor::block_on(split.infer(&batch)).unwrap_err();
        assert!(matches!(err, Error::Worker { worker: 0, .. }), "{err}");
    }

    #[test]
    fn no_workers_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        assert!(SplitEngine::<Plain>::new(vec![], &mut rng).is_err());
    }
}
