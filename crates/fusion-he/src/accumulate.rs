//! The server's products (step 2 of [`crate::linear`]): the layer's weights
//! encoded into kernel polynomials (Cheetah's coefficient encoding, see
//! [`crate::plan`]) in evaluation form, and the sums over channel blocks of
//! input ciphertext times kernel polynomial that give the result ciphertexts.
//!
//! **Computes.** For every result ciphertext `(nb, m, ti, tj)`:
//! `sum_cb in[nb, cb, ti, tj] * K[m, cb]` (both the `b` and the `a` part), in
//! evaluation form, with the factor `N^{-1}` of the inverse transform folded into
//! the kernel polynomials. The kernel polynomials are cached per layer when the
//! plan's budget allows ([`crate::PlanOptions::weight_cache_bytes`]), otherwise
//! transformed per group of filter blocks on every call.
//!
//! **Learns.** Nothing: local computation of the server on ciphertexts under the
//! client's key.

use rayon::prelude::*;

use crate::params::HeParams;
use crate::plan::LinearPlan;
use crate::poly;

/// Coefficients per product chunk (a multiple of 8 dividing every supported `N`).
pub(crate) const CHUNK: usize = 256;

/// A layer's weights: the canonical kernel and, if the plan caches them, the
/// kernel polynomials in evaluation form.
#[derive(Debug)]
pub(crate) struct Weights {
    /// Canonical kernel `K[m][c][kh][kw]` (dense) or per-channel scales (depthwise).
    pub(crate) kernel: Vec<u64>,
    /// Kernel polynomials in evaluation form times `N^{-1}`, index `mblk * cblk + c`.
    pub(crate) cache: Option<Vec<Option<Vec<u64>>>>,
}

impl Weights {
    /// Encodes `kernel` for `plan` (the cache only if the plan says so).
    pub(crate) fn new(plan: &LinearPlan, kernel: Vec<u64>) -> Self {
        let cache = plan.stats().weights_cached.then(|| {
            let c = &plan.layout.counts;
            (0..c.mblk * c.cblk)
                .into_par_iter()
                .map(|k| kernel_poly(plan, &kernel, k / c.cblk, k % c.cblk))
                .collect()
        });
        Weights { kernel, cache }
    }
}

/// Kernel polynomial `(mblk, cblk)` in evaluation form times `N^{-1}`, or `None` if zero.
fn kernel_poly(plan: &LinearPlan, kernel: &[u64], mblk: usize, cblk: usize) -> Option<Vec<u64>> {
    let params = &plan.params;
    let n = params.degree();
    let mut coeffs = vec![0u64; n];
    let mut poly = vec![0u64; params.primes().len() * n];
    kernel_poly_into(plan, kernel, mblk, cblk, &mut coeffs, &mut poly).then_some(poly)
}

/// Writes kernel polynomial `(mblk, cblk)` (evaluation form, times `N^{-1}`) into
/// `out`; returns `false` (and leaves `out` unspecified) if it is zero.
fn kernel_poly_into(
    plan: &LinearPlan,
    kernel: &[u64],
    mblk: usize,
    cblk: usize,
    coeffs: &mut [u64],
    out: &mut [u64],
) -> bool {
    if !plan.layout.kernel_block_used(mblk, cblk) {
        return false;
    }
    if !plan.layout.encode_kernel(kernel, mblk, cblk, coeffs) {
        return false;
    }
    let params = &plan.params;
    let n = params.degree();
    let ring = params.ring();
    let p = &params.inner;
    out.fill(0);
    for (j, &w) in coeffs.iter().enumerate() {
        if w == 0 {
            continue;
        }
        // The centred representative keeps the product noise small; the factor
        // N^{-1} of the inverse transform is folded in here.
        let v = ring.to_signed(w);
        for (i, &q) in p.primes.iter().enumerate() {
            let r = p.n_inv[i].mul(v.unsigned_abs(), q);
            out[i * n + j] = if v >= 0 || r == 0 { r } else { q - r };
        }
    }
    poly::fwd(params, out);
    true
}

/// Accumulates `sum_cb in[nb, cb, ti, tj] * kernel[m, cb]` (both `b` and `a`) for
/// every ciphertext of `cts` into `accs`, chunk-major: chunk `k` holds, for every
/// ciphertext, `CHUNK` coefficients of `b` then `CHUNK` of `a`. The chunks run in
/// parallel, so that every input, kernel and accumulator chunk is read from
/// memory once.
pub(crate) fn accumulate(
    plan: &LinearPlan,
    inputs: &Inputs<'_>,
    cts: &[CtIndex],
    kernels: &KernelBuf<'_>,
    accs: &mut Vec<u64>,
) {
    let params = &plan.params;
    let c = plan.layout.counts;
    let n = params.degree();
    let stride = params.primes().len() * n;
    let nprimes = params.primes().len();
    let chunks_per_prime = n / CHUNK;
    let per_chunk = cts.len() * 2 * CHUNK;
    accs.clear();
    accs.resize(nprimes * chunks_per_prime * per_chunk, 0);
    accs.par_chunks_mut(per_chunk)
        .enumerate()
        .for_each(|(k, region)| {
            let i = k / chunks_per_prime;
            let off = i * n + (k % chunks_per_prime) * CHUNK;
            let ntt = &params.inner.plans[i];
            for (li, &(_, nb, m, ti, tj)) in cts.iter().enumerate() {
                let (acc_b, acc_a) =
                    region[li * 2 * CHUNK..(li + 1) * 2 * CHUNK].split_at_mut(CHUNK);
                for cb in 0..c.cblk {
                    if let Some(w) = kernels.get(m, cb) {
                        let at = plan.layout.in_ct(nb, cb, ti, tj) * stride + off;
                        let w = &w[off..off + CHUNK];
                        ntt.mul_accumulate(acc_b, &inputs.b[at..at + CHUNK], w);
                        ntt.mul_accumulate(acc_a, &inputs.a[at..at + CHUNK], w);
                    }
                }
            }
        });
}

/// `(ciphertext, nblk, mblk, ti, tj)` of a result ciphertext.
pub(crate) type CtIndex = (usize, usize, usize, usize, usize);

/// The server's inputs of one call in evaluation form: `b` (with its own share
/// added) and the seeded `a`, `in_cts * L * N` residues each.
pub(crate) struct Inputs<'a> {
    pub(crate) b: &'a [u64],
    pub(crate) a: &'a [u64],
}

/// Kernel polynomials for the current group of filter blocks: from the weights'
/// cache, or transformed into a buffer for the listed filter blocks.
pub(crate) struct KernelBuf<'a> {
    plan: &'a LinearPlan,
    weights: &'a Weights,
    buf: Vec<u64>,
    present: Vec<bool>,
    /// Filter block -> slot in `buf` (`usize::MAX`: not loaded).
    slot: Vec<usize>,
}

impl<'a> KernelBuf<'a> {
    pub(crate) fn new(plan: &'a LinearPlan, weights: &'a Weights) -> Self {
        KernelBuf {
            plan,
            weights,
            buf: Vec::new(),
            present: Vec::new(),
            slot: if weights.cache.is_some() {
                Vec::new()
            } else {
                vec![usize::MAX; plan.layout.counts.mblk]
            },
        }
    }

    /// Transforms the kernel polynomials of filter blocks `ms` (without the cache).
    pub(crate) fn load(&mut self, ms: &[usize]) {
        let (plan, weights) = (self.plan, self.weights);
        if weights.cache.is_some() {
            return;
        }
        let params = &plan.params;
        let n = params.degree();
        let stride = params.primes().len() * n;
        let cblk = plan.layout.counts.cblk;
        self.slot.fill(usize::MAX);
        for (k, &m) in ms.iter().enumerate() {
            self.slot[m] = k;
        }
        let used = ms.len() * cblk;
        if self.buf.len() < used * stride {
            self.buf.resize(used * stride, 0);
        }
        self.present.clear();
        self.present.resize(used, false);
        self.buf[..used * stride]
            .par_chunks_mut(stride)
            .zip(self.present.par_iter_mut())
            .enumerate()
            .for_each_init(
                || vec![0u64; n],
                |coeffs, (k, (buf, present))| {
                    *present = kernel_poly_into(
                        plan,
                        &weights.kernel,
                        ms[k / cblk],
                        k % cblk,
                        coeffs,
                        buf,
                    );
                },
            );
    }

    fn get(&self, m: usize, cb: usize) -> Option<&[u64]> {
        let plan = self.plan;
        match &self.weights.cache {
            Some(cache) => cache[m * plan.layout.counts.cblk + cb].as_deref(),
            None => {
                let params = &plan.params;
                let stride = params.primes().len() * params.degree();
                let s = *self.slot.get(m)?;
                if s == usize::MAX {
                    return None;
                }
                let k = s * plan.layout.counts.cblk + cb;
                self.present[k].then(|| &self.buf[k * stride..(k + 1) * stride])
            }
        }
    }
}

/// Copies ciphertext `li` out of the chunk-major accumulators into `out` (`b` then
/// `a`, `L * N` residues each).
pub(crate) fn extract(
    params: &HeParams,
    accs: &[u64],
    per_chunk: usize,
    li: usize,
    out: &mut [u64],
) {
    let n = params.degree();
    let stride = params.primes().len() * n;
    let chunks_per_prime = n / CHUNK;
    let (b, a) = out.split_at_mut(stride);
    for k in 0..params.primes().len() * chunks_per_prime {
        let src = k * per_chunk + li * 2 * CHUNK;
        let dst = (k / chunks_per_prime) * n + (k % chunks_per_prime) * CHUNK;
        b[dst..dst + CHUNK].copy_from_slice(&accs[src..src + CHUNK]);
        a[dst..dst + CHUNK].copy_from_slice(&accs[src + CHUNK..src + 2 * CHUNK]);
    }
}
