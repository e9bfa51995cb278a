//! Response packing: the server merges many sparse reply ciphertexts into few
//! dense ones before flooding, modulus switching and sending them (opt-in:
//! [`crate::ParamsBuilder::reply_packing`]).
//!
//! # Why
//!
//! A reply ciphertext costs a whole `a` polynomial on the wire (`N (l + k_a)` bits)
//! but carries only the results the encoding put into it. Batched fully connected
//! layers are the worst case: with the input-saving blocking (a whole polynomial
//! of `nb` samples times `cb` inputs, one filter per kernel polynomial) every
//! result ciphertext holds `nb` results `N / nb` apart. Merging `G` of them into one
//! divides the `a` bytes by `G`, which makes "many small reply ciphertexts" cheap
//! and lets the planner minimise the *upload* instead ([`crate::plan`]).
//!
//! # What (BumbleBee's interleaving; Chen, Dai, Kim, Song, ACNS 2021, "PackLWEs")
//!
//! Let every result ciphertext `ct_0 .. ct_{G-1}` (`G = 2^K`) hold its results at
//! coefficients `off + s m` for a power of two `s >= G` (the plan's *stride*; other
//! coefficients hold unrelated partial sums, "garbage"). After multiplying by
//! `2^{-K} X^{-off}` (`2` is invertible modulo the odd `q`) they sit at multiples of
//! `2^K`. For `h = 2^{K-1}, ..., 2, 1` the server merges slot `i` and slot `i + h`
//! (`i < h`) into slot `i`:
//!
//! `E' = (E + X^h O) + tau_{N/h + 1}(E - X^h O)`.
//!
//! `tau = tau_{N/h+1}` maps `X^m` to `(-1)^(m/h) X^m` for multiples `m` of `h`: it fixes
//! multiples of `2h`, negates odd multiples of `h`, and maps every other position
//! to another such position. So at multiples of `2h`, `E'` holds `2 E` (the garbage
//! of `X^h O` there cancels); at odd multiples of `h` it holds `2 O` shifted by `h`
//! (the garbage of `E` there cancels); elsewhere garbage, which later levels
//! cancel the same way. After `K` levels, leaf `j`'s result from coefficient
//! `off + s m` sits at `s m + j` with factor `2^K`, which the pre-scaling removed:
//! the phase there is exactly the leaf's phase. `tau` is applied in evaluation form
//! (a permutation) followed by a key switch from `tau(s)` back to `s`
//! ([`crate::galois`]); each merge costs one key switch, a group of `n` leaves
//! `sum_k min(2^k, n)` (an empty child is a zero ciphertext: the merge is still
//! needed to cancel the other child's garbage). Groups are `G` consecutive result
//! ciphertexts; the last group may be smaller and uses `ceil(log2 n)` levels.
//!
//! Only layouts with a stride work: the projection `(1 + tau)` only ever fixes
//! the coefficient sets `2h Z`, so results that are adjacent in a polynomial
//! (convolutions with output tiles wider than one pixel, batch norm over a
//! spatial axis) cannot be separated from their garbage by automorphisms; such
//! plans are sent unpacked (their replies are already 60-90 % dense). Fully
//! connected layers, `1 x 1`-output convolutions and per-feature scaling get a
//! stride whenever the channel block is even; with packing on, the planner also
//! tries power-of-two channel blocks.
//!
//! # Order of operations and server privacy
//!
//! 1. Per result ciphertext (a *leaf*): add an encryption of zero under the
//!    client's public key, `(u pk0, u pk1 + e1)`, in evaluation form; scale by
//!    `2^{-K} X^{-off}`.
//! 2. Merge the leaves of a group (key switches with the client's Galois keys).
//! 3. At the root: add `e0` and the flooding `F` to the coefficients that are sent,
//!    switch modulus, subtract the mask, keep the result coefficients
//!    ([`crate::noise`] has the unpacked version of this step).
//!
//! The root phase at a sent coefficient is `q/t z + (E + nu)_leaf + K_s + F`, where
//! `(E + nu)_leaf` is exactly the leaf's weight- and `u`-dependent noise at that
//! result (the merges preserve useful coefficients exactly) and `K_s` the
//! key-switching noise. The simulation argument of [`crate::noise`] extends in two
//! hybrids. (i) The flooding `F`, fresh and uniform in `[-2^beta, 2^beta)`, hides
//! `(E + nu)_leaf` statistically exactly as before (same bound `E_stat`, same
//! statistical parameter, whatever `K_s` is). (ii) Now `u_i` occurs only in the
//! leaves' `a_i' = a_i + u_i pk1 + e1_i`, which decision-RLWE (secret `u_i`) makes
//! indistinguishable from uniform, independent of the weights. Everything the
//! client receives is then a public function of uniform `a_i'`, the Galois keys,
//! the output share `z` and `F`: the root's `a` part and the noise `K_s` depend only
//! on the `a_i'` and on the keys' noise, never on the weights, and the leaves'
//! garbage cancels exactly in the root's phase at every sent coefficient. So the
//! key-switching noise needs **no flooding**, which is what makes a cheap gadget
//! (one digit per RNS prime, digits of 36 bits) possible.
//!
//! # Noise: decryption still never fails
//!
//! Only `K_s` is new. One key switch adds at most `B = sum_G (Q_G - 1)/2 eta N`
//! per coefficient (all coefficients, garbage included); a merge at most doubles
//! both children's accumulated `K_s` (`tau` and `X^h` permute coefficients up to
//! sign), so after `K` levels `|K_s| <= B (4^K - 1) / 3`. The plan adds this worst
//! case to the layer noise in [`crate::noise::NoiseAnalysis`], and the flooding
//! width is chosen below the threshold as before. At `N = 4096`, `l = 37` (one
//! digit per prime): `B = 2^53.4`; `K = 5` gives `2^61.8`, `K = 7` gives `2^65.8`,
//! against a threshold of `2^70.7`: the flooding keeps `beta = 70` (so its
//! statistical security is unchanged) and the guaranteed margin after switching
//! is 0.48 bits at `K = 7` (0.54 bits unpacked). At `N = 8192` (two digits of three
//! primes) `B = 2^126.7`, `K = 7` gives `2^139`, against `2^152.7`. The builder
//! refuses depths whose worst case exceeds a sixteenth of the threshold. Measured
//! (`cargo test -p fusion-he --lib -- --nocapture`, lines `[ks]`, `[pack]`, `[noise]`):
//! `2^45` after one switch, `2^48.5` after 4 levels, `2^51.5` after 7 levels (FC
//! 784 -> 128 at batch 16), far below the worst cases.
//!
//! # Cost
//!
//! Per leaf two transforms per prime (`u`, `e1`) and a few pointwise products; per
//! merge `L` inverse and `L (L - 1)` forward transforms (one digit per prime) and
//! `2 L^2` pointwise products; per sent ciphertext `2 L` inverse transforms instead
//! of `3 L` per result ciphertext. Everything stays in evaluation form; groups and
//! the merges of one level run in parallel (rayon).

use rayon::prelude::*;

use crate::automorphism::PackTables;
use crate::galois::{KsScratch, PreparedGaloisKeys, key_switch};
use crate::params::HeParams;

/// How a plan packs its replies (see [`crate::pack`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReplyPacking {
    /// Every result coefficient is `offset + stride * m` (a power of two).
    pub stride: usize,
    /// `offset < stride`.
    pub offset: usize,
    /// Result ciphertexts merged per reply ciphertext (a power of two `<= stride`).
    pub group: usize,
    /// Merge levels of a full group, `log2 group`.
    pub depth: u32,
    /// Reply ciphertexts sent per call.
    pub reply_cts: usize,
    /// Key switches per call.
    pub key_switches: usize,
    /// `log2` of the worst-case key-switching noise at modulus `q`.
    pub key_switch_noise_log2: f64,
}

impl ReplyPacking {
    /// The packing of `leaves` result ciphertexts whose results sit at
    /// `offset + stride * m`, with up to `levels` merge levels; `None` if no two
    /// ciphertexts can be merged.
    pub(crate) fn new(
        params: &HeParams,
        leaves: usize,
        stride: usize,
        offset: usize,
        levels: u32,
    ) -> Option<Self> {
        let group = stride
            .min(1usize << levels.min(30))
            .min(leaves.next_power_of_two());
        if group < 2 || leaves < 2 {
            return None;
        }
        let depth = group.trailing_zeros();
        let reply_cts = leaves.div_ceil(group);
        let key_switches = (0..reply_cts)
            .map(|r| {
                let n = group.min(leaves - r * group);
                (0..group_depth(n))
                    .map(|k| (1usize << k).min(n))
                    .sum::<usize>()
            })
            .sum();
        let per = crate::params::ks_noise_per_switch(
            params.primes(),
            &params.inner.ks_groups,
            params.degree(),
        );
        Some(ReplyPacking {
            stride,
            offset,
            group,
            depth,
            reply_cts,
            key_switches,
            key_switch_noise_log2: crate::params::ks_noise_tree(per, depth).log2(),
        })
    }

    /// Result ciphertexts `[first, first + count)` of reply ciphertext `r`.
    pub(crate) fn leaves_of(&self, r: usize, leaves: usize) -> (usize, usize) {
        let first = r * self.group;
        (first, self.group.min(leaves - first))
    }
}

/// Merge levels of a group of `n` leaves: `ceil(log2 n)`.
pub(crate) fn group_depth(n: usize) -> u32 {
    n.next_power_of_two().trailing_zeros()
}

/// `v2`-stride of a set of integers given by generators of their differences: the
/// largest power of two dividing every generator (`cap` if there is none).
pub(crate) fn stride_of(generators: impl IntoIterator<Item = usize>, cap: usize) -> usize {
    generators
        .into_iter()
        .filter(|&g| g > 0)
        .map(|g| 1usize << g.trailing_zeros())
        .min()
        .unwrap_or(cap)
        .min(cap)
}

/// `x = -x` for a whole ciphertext (or polynomial): residue block `k` is modulo
/// prime `k mod L`.
#[cfg(test)]
fn negate(params: &HeParams, x: &mut [u64]) {
    let n = params.degree();
    for (&q, block) in params.primes().iter().cycle().zip(x.chunks_exact_mut(n)) {
        for v in block {
            *v = if *v == 0 { 0 } else { q - *v };
        }
    }
}

/// `acc -= rhs` for whole ciphertexts (or polynomials).
fn sub_assign(params: &HeParams, acc: &mut [u64], rhs: &[u64]) {
    let n = params.degree();
    for ((&q, a), r) in params
        .primes()
        .iter()
        .cycle()
        .zip(acc.chunks_exact_mut(n))
        .zip(rhs.chunks_exact(n))
    {
        crate::arith::sub_mod_slice(a, r, q);
    }
}

/// `acc += rhs` for whole ciphertexts (or polynomials).
fn add_assign(params: &HeParams, acc: &mut [u64], rhs: &[u64]) {
    let n = params.degree();
    for ((&q, a), r) in params
        .primes()
        .iter()
        .cycle()
        .zip(acc.chunks_exact_mut(n))
        .zip(rhs.chunks_exact(n))
    {
        crate::arith::add_mod_slice(a, r, q);
    }
}

/// Scratch memory of one merge.
struct MergeScratch {
    ks: KsScratch,
    /// `E - X^h O`, then its automorphism (`b` then `a`).
    t2: Vec<u64>,
    tau: Vec<u64>,
    ka: Vec<u64>,
}

impl MergeScratch {
    fn new(params: &HeParams) -> Self {
        let stride = params.primes().len() * params.degree();
        MergeScratch {
            ks: KsScratch::new(params),
            t2: vec![0u64; 2 * stride],
            tau: vec![0u64; 2 * stride],
            ka: vec![0u64; stride],
        }
    }
}

/// One merge at level `k` (`h = 2^k`), in place: `E <- E + X^h O + KS(tau(E - X^h O))`
/// with `tau = tau_{N/h + 1}`; `O = None` is a zero ciphertext. Ciphertexts are `b`
/// then `a`, each `L * N` residues in evaluation form scaled by `N^{-1}`.
fn merge(
    params: &HeParams,
    tables: &PackTables,
    keys: &PreparedGaloisKeys,
    k: usize,
    e: &mut [u64],
    o: Option<&mut [u64]>,
    s: &mut MergeScratch,
) {
    let stride = params.primes().len() * params.degree();
    s.t2.copy_from_slice(e);
    if let Some(o) = o {
        let (ob, oa) = o.split_at_mut(stride);
        tables.mul_monomial(&params.inner.plans, k, ob);
        tables.mul_monomial(&params.inner.plans, k, oa);
        sub_assign(params, &mut s.t2, o);
        add_assign(params, e, o);
    }
    let (tb, ta) = s.tau.split_at_mut(stride);
    tables.automorphism(k, &s.t2[..stride], tb);
    tables.automorphism(k, &s.t2[stride..], ta);
    let (eb, ea) = e.split_at_mut(stride);
    add_assign(params, eb, tb);
    key_switch(
        params,
        tables,
        &keys.levels[k],
        ta,
        eb,
        &mut s.ka,
        &mut s.ks,
    );
    add_assign(params, ea, &s.ka);
}

/// Merges the `leaves` ciphertexts stored one after the other in `buf` (`2 L N`
/// residues each) into the first one, in place, with `depth = ceil(log2 leaves)`
/// levels (missing leaves of the last level are zero); the merges of one level run
/// in parallel.
pub(crate) fn pack_group(
    params: &HeParams,
    tables: &PackTables,
    keys: &PreparedGaloisKeys,
    buf: &mut [u64],
    leaves: usize,
    depth: u32,
) {
    let ct = 2 * params.primes().len() * params.degree();
    let mut n = leaves;
    for k in (0..depth as usize).rev() {
        let h = 1usize << k;
        // Slots 0..n hold ciphertexts; h < n <= 2h.
        let (lo, hi) = buf[..n * ct].split_at_mut(h * ct);
        let mut odd: Vec<Option<&mut [u64]>> = hi.chunks_mut(ct).map(Some).collect();
        odd.resize_with(h, || None);
        lo.par_chunks_mut(ct).zip(odd.par_iter_mut()).for_each_init(
            || MergeScratch::new(params),
            |s, (e, o)| merge(params, tables, keys, k, e, o.as_deref_mut(), s),
        );
        n = h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::galois::{GaloisKeys, PreparedGaloisKeys};
    use crate::keys::SecretKey;
    use crate::poly;
    use rand::rngs::ChaCha20Rng;
    use rand::{Rng, SeedableRng};

    /// Packs noiseless encryptions of messages with values at multiples of
    /// `stride` and garbage elsewhere, and checks the merged phase: leaf `j`'s value
    /// at `s m` lands at `s m + j`, exactly up to the key-switching noise.
    #[test]
    fn merge_tree_interleaves_the_leaves() {
        let params = crate::Preset::N4096
            .builder(fusion_core::ring::Ring::new(37).unwrap())
            .reply_packing(4)
            .build()
            .unwrap();
        let n = params.degree();
        let stride_q = params.primes().len() * n;
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let sk = SecretKey::generate(&params, &mut rng);
        let keys = PreparedGaloisKeys::new(&GaloisKeys::generate(&sk, &mut rng));
        let tables = params.pack_tables();
        let ppk = crate::keys::PreparedPk::new(&sk.public_key(&mut rng));
        for (leaves, depth, s, off) in [
            (2usize, 1u32, 2usize, 0usize),
            (5, 3, 16, 15),
            (16, 4, 16, 3),
            (3, 2, 64, 63),
        ] {
            let c = crate::galois::inv_pow2(&params, depth);
            let scale = tables.scaled_monomial(params.primes(), -(off as i64), &c);
            let mut msgs = Vec::new();
            let mut cts: Vec<u64> = Vec::new();
            for _ in 0..leaves {
                let m: Vec<i64> = (0..n)
                    .map(|_| (rng.next_u64() % 2001) as i64 - 1000)
                    .collect();
                let mut ct = vec![0u64; 2 * stride_q];
                let (b, a) = ct.split_at_mut(stride_q);
                poly::expand_uniform(&params, &[leaves as u8; 32], msgs.len() as u64, a);
                // b = m - a s (true evaluations), then scale to N^{-1} form.
                poly::small_to_rns(&params, &m, b);
                poly::fwd(&params, b);
                poly::mul_acc(&params, b, a, sk.neg_s_ntt());
                poly::normalize(&params, b);
                poly::normalize(&params, a);
                if msgs.len() % 2 == 0 {
                    for (i, plan) in params.inner.plans.iter().enumerate() {
                        plan.mul_assign_normalize(
                            &mut b[i * n..(i + 1) * n],
                            &scale[i * n..(i + 1) * n],
                        );
                        plan.mul_assign_normalize(
                            &mut a[i * n..(i + 1) * n],
                            &scale[i * n..(i + 1) * n],
                        );
                    }
                } else {
                    // The server's leaf treatment: re-randomisation and scaling.
                    let mut tmp = vec![0u64; stride_q];
                    crate::finalize::finish_leaf(
                        &params, &ppk, &scale, &mut ct, &mut rng, &mut tmp,
                    );
                }
                msgs.push(m);
                cts.extend_from_slice(&ct);
            }
            pack_group(&params, tables, &keys, &mut cts, leaves, depth);
            let (b, a) = cts[..2 * stride_q].split_at_mut(stride_q);
            // phase = b + a s = b - a (-s)
            let mut neg = a.to_vec();
            negate(&params, &mut neg);
            let mut ph = b.to_vec();
            poly::mul_acc(&params, &mut ph, &neg, sk.neg_s_ntt());
            poly::inv(&params, &mut ph);
            let bound = 2f64.powf(
                ReplyPacking::new(&params, 1 << depth, 1 << depth, 0, depth)
                    .map_or(0.0, |p| p.key_switch_noise_log2),
            );
            let mut worst = 0f64;
            for (j, m) in msgs.iter().enumerate() {
                for pos in (0..n).step_by(s) {
                    let diff: Vec<u64> = params
                        .primes()
                        .iter()
                        .enumerate()
                        .map(|(i, &q)| {
                            (ph[i * n + pos + j] + q - m[pos + off].rem_euclid(q as i64) as u64) % q
                        })
                        .collect();
                    let d = crate::galois::tests::crt_centered_abs(&diff, params.primes());
                    worst = worst.max(d);
                    assert!(
                        d <= bound,
                        "leaves {leaves}: leaf {j} pos {pos}: off by 2^{:.1}",
                        d.log2()
                    );
                }
            }
            println!(
                "[pack] {leaves} leaves, depth {depth}: max key-switching noise 2^{:.1} (worst case 2^{:.1})",
                worst.log2(),
                bound.log2()
            );
        }
    }

    #[test]
    fn stride_is_the_lowest_power_of_two_of_the_generators() {
        assert_eq!(stride_of([32, 64 * 32], 4096), 32);
        assert_eq!(stride_of([28, 4096], 4096), 4);
        assert_eq!(stride_of([], 4096), 4096);
        assert_eq!(stride_of([0, 8192], 4096), 4096);
        assert_eq!(stride_of([1, 32], 4096), 1);
    }

    #[test]
    fn key_switch_counts_follow_the_tree() {
        let params = crate::Preset::N4096
            .builder(fusion_core::ring::Ring::new(37).unwrap())
            .reply_packing(7)
            .build()
            .unwrap();
        // 128 leaves at stride 32: 4 full groups of 32, 31 switches each.
        let p = ReplyPacking::new(&params, 128, 32, 31, 7).unwrap();
        assert_eq!(
            (p.group, p.reply_cts, p.key_switches, p.depth),
            (32, 4, 124, 5)
        );
        // 10 leaves in one group of 16: levels of 1, 2, 4, 8 merges, capped by 10.
        let p = ReplyPacking::new(&params, 10, 32, 0, 7).unwrap();
        assert_eq!(
            (p.group, p.reply_cts, p.key_switches),
            (16, 1, 1 + 2 + 4 + 8)
        );
        // A last group of one leaf needs no merge.
        let p = ReplyPacking::new(&params, 33, 32, 0, 7).unwrap();
        assert_eq!((p.reply_cts, p.key_switches), (2, 31));
        assert!(ReplyPacking::new(&params, 1, 32, 0, 7).is_none());
        assert!(ReplyPacking::new(&params, 8, 1, 0, 7).is_none());
        assert_eq!(group_depth(1), 0);
        assert_eq!(group_depth(5), 3);
    }
}
