//! Exact cheating probabilities for Fusion's mix-and-check, and a Monte Carlo
//! simulator of the cheating game.
//!
//! # The game
//!
//! The client mixes `B` copies of each of its `R` queries with `T` public
//! samples (`N = RB + T` positions) under a secret uniformly random
//! permutation. The server, which sees only encryptions or random shares,
//! corrupts the outputs at a set of `k` positions. Since the permutation is
//! uniform and secret, this is the same as corrupting a uniformly random
//! `k`-subset of the positions. The client accepts if all copies of each query
//! agree and at least `ceil(delta T)` public samples are right. With an honest
//! model that is perfect on the public samples (the worst case for the client)
//! the server wins, i.e. changes a query's answer undetected, iff the corrupted
//! positions are the union of `i >= 1` whole copy-groups and `j <= s` public
//! samples, where `s = T - ceil(delta T)` is the threshold's *slack*
//! ([`crate::Threshold::slack`]).
//!
//! # The bounds
//!
//! - The paper (Dong et al., NDSS 2023, section IV-C and Fig. 4) assumes
//!   `delta = 1` and bounds the success of corrupting `i` whole groups,
//!   `P(i) = C(R,i) / C(N, iB)`, by its value at `i = 1` summed over the
//!   groups: [`paper_bound`] `= R / C(N, B)`.
//! - [`exact_group_bound`] is the exact `max_i C(R,i) / C(N, iB)`.
//! - docs/DESIGN.md section 2 corrects the analysis for the slack:
//!   `P(k) = sum_{i >= 1, 0 <= j <= s, iB + j = k} C(R,i) C(T,j) / C(N,k)`
//!   ([`slack_probability`]) and the bound is `max_k P(k)` ([`slack_bound`]).
//!   With `s = 0` it equals the exact group bound; it is never below the
//!   paper's bound (the `k = B` term is `R / C(N, B)`). For `R = 8, B = 8,
//!   T = 100, delta = 0.95` (`s = 5`) it is about `2^-33.2`, not `2^-40`.
//!
//! All results are exact rationals ([`Probability`]); `log2` is for display.
//!
//! # Why the maximum over `k` is cheap even for `R = 2^19`
//!
//! **Lemma.** For `1 <= i <= R`, `0 <= j <= T`:
//! `C(N, iB + j) >= C(R,i)^B C(T,j)`. *Proof:* split the `N` positions into
//! `B` blocks of `R` and one block of `T`; picking `i` positions in each
//! `R`-block and `j` in the `T`-block gives `C(R,i)^B C(T,j)` distinct
//! `(iB + j)`-subsets.
//!
//! Hence every term satisfies `C(R,i) C(T,j) / C(N, iB + j) <= C(R,i)^(1-B)`.
//! `P(k)` has at most `m = min(floor(s/B) + 1, R)` terms. If all its terms
//! have `t < i < R - t`, then `C(R,i) >= C(R, t+1)` (binomials are unimodal
//! and symmetric), so `P(k) <= m C(R, t+1)^(1-B)`. The `k` that may have a
//! term with `i <= t` are `k <= tB + s`; those with a term `i >= R - t` are
//! `k >= (R - t)B`. [`slack_bound`] therefore evaluates, for `t = 1, 2, ...`,
//! all `k` in `[B, tB + s]` and `[(R - t)B, RB + s]` exactly, and stops as
//! soon as `m C(R, t+1)^(1-B)` is at most the largest exact value found: no
//! unevaluated `k` can beat it. Near `i = R` the binomials `C(N, k)` have
//! about `T log N` bits, which is slow for large `T`; before evaluating that
//! side the loop tries a second, certified bound on its terms,
//! `C(R,a) C(aB+T, aB) / C(RB, aB) (T/N)^(T-s)` for `a = R - i <= t`
//! (derived in the source), evaluated with upward rounding, and skips the
//! side when it is dominated too. `C(R, t+1)^(B-1)` grows like
//! `(R/t)^(t(B-1))`, so for the paper's parameters the loop ends at `t = 2` or
//! `3` (a few dozen values of `k`), while small `R` are simply enumerated in
//! full. Ties between several `k` are broken towards the smallest `k`. The
//! tests compare this against full enumeration ([`slack_bound_exhaustive`]).

use std::fmt;

use num_bigint::{BigInt, BigUint};
use num_rational::BigRational;
use num_traits::{ToPrimitive, Zero};
use rand::{CryptoRng, Rng};
use serde::Serialize;

use crate::Error;
use crate::exact::{UpperFloat, binom, log2_big};
use crate::mix::uniform_below;

/// The largest batch size `N` the analysis accepts (`2^62`, to keep all index
/// arithmetic in `u64` exact).
pub const MAX_TOTAL: u64 = 1 << 62;

/// The shape of a mixed batch: `R` queries, `B` copies of each, `T` public
/// samples, `N = RB + T` positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Layout {
    queries: u64,
    copies: u64,
    public: u64,
}

impl Layout {
    /// `R` queries, `B` copies, `T` public samples. Needs `R >= 1`, `B >= 1`
    /// and `N = RB + T <= 2^62`. (`B = 1` and `T = 0` are allowed here so the
    /// formulas can be studied at the edges; [`crate::mix`] demands `B >= 2`
    /// and `T >= 1`.)
    pub fn new(queries: u64, copies: u64, public: u64) -> Result<Self, Error> {
        if queries == 0 {
            return Err(Error::NoQueries);
        }
        if copies == 0 {
            return Err(Error::TooFewCopies(0));
        }
        let total = queries
            .checked_mul(copies)
            .and_then(|q| q.checked_add(public))
            .filter(|&n| n <= MAX_TOTAL)
            .ok_or_else(|| Error::InvalidParameter {
                name: "batch size",
                reason: format!("R*B + T = {queries}*{copies} + {public} exceeds 2^62"),
            })?;
        debug_assert!(total >= 1);
        Ok(Layout {
            queries,
            copies,
            public,
        })
    }

    /// `R`.
    pub const fn queries(self) -> u64 {
        self.queries
    }

    /// `B`.
    pub const fn copies(self) -> u64 {
        self.copies
    }

    /// `T`.
    pub const fn public(self) -> u64 {
        self.public
    }

    /// `N = RB + T`.
    pub const fn total(self) -> u64 {
        self.queries * self.copies + self.public
    }
}

/// An exact probability (a non-negative rational in lowest terms).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Probability(BigRational);

impl Probability {
    /// `num / den`, reduced. `den` must be non-zero.
    pub(crate) fn from_parts(num: BigUint, den: BigUint) -> Self {
        debug_assert!(!den.is_zero());
        Probability(BigRational::new(BigInt::from(num), BigInt::from(den)))
    }

    /// The exact value.
    pub fn ratio(&self) -> &BigRational {
        &self.0
    }

    /// `log2` of the value (`-inf` for 0), to about 15 significant digits.
    /// For display: decisions use [`Probability::is_at_most_pow2_neg`].
    pub fn log2(&self) -> f64 {
        let (n, d) = (self.0.numer().magnitude(), self.0.denom().magnitude());
        if n.is_zero() {
            return f64::NEG_INFINITY;
        }
        log2_big(n) - log2_big(d)
    }

    /// The nearest `f64` (0 when it underflows). For display and statistics.
    pub fn to_f64(&self) -> f64 {
        self.0.to_f64().unwrap_or(0.0)
    }

    /// Whether the value is `<= 2^-lambda`, exactly.
    pub fn is_at_most_pow2_neg(&self, lambda: u32) -> bool {
        let n = self.0.numer().magnitude();
        let d = self.0.denom().magnitude();
        (n << lambda as u64) <= *d
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Probability {
    /// `2^-33.24` (or `0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            f.write_str("0")
        } else {
            write!(f, "2^{:.2}", self.log2())
        }
    }
}

/// The worst case of a maximisation over the number of corrupted positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorstCase {
    /// The maximum probability.
    pub probability: Probability,
    /// The smallest number `k` of corrupted positions attaining it.
    pub corrupted: u64,
}

/// The paper's bound `R / C(N, B)` (section IV-C). It can exceed 1 for tiny
/// batches: it is a union bound, not a probability.
pub fn paper_bound(layout: Layout) -> Probability {
    Probability::from_parts(
        BigUint::from(layout.queries),
        binom(layout.total(), layout.copies),
    )
}

/// `C(R,i) / C(N, iB)`: the probability that corrupting a random set of `iB`
/// positions hits exactly `i` whole copy-groups (with `delta = 1`). Zero for
/// `i = 0` or `i > R`.
pub fn group_probability(layout: Layout, groups: u64) -> Probability {
    if groups == 0 || groups > layout.queries {
        return Probability::from_parts(BigUint::zero(), BigUint::from(1u32));
    }
    Probability::from_parts(
        binom(layout.queries, groups),
        binom(layout.total(), groups * layout.copies),
    )
}

/// The exact `max_{1 <= i <= R} C(R,i) / C(N, iB)`; `corrupted` is `iB` for
/// the smallest maximising `i`. Equal to [`slack_bound`] with `s = 0`.
pub fn exact_group_bound(layout: Layout) -> WorstCase {
    slack_bound(layout, 0)
}

/// The slack-aware `P(k) = sum_{i>=1, 0<=j<=s, iB+j=k} C(R,i) C(T,j) / C(N,k)`:
/// the probability that corrupting a uniformly random `k`-subset of the
/// positions goes undetected and changes at least one query. `s` above `T`
/// is treated as `T`; `k > N` gives 0.
pub fn slack_probability(layout: Layout, slack: u64, corrupted: u64) -> Probability {
    let terms = Terms::new(layout, slack);
    if corrupted > layout.total() {
        return Probability::from_parts(BigUint::zero(), BigUint::from(1u32));
    }
    let mut cr = BinomRow::new(layout.queries);
    let num = terms.numerator(corrupted, &mut cr);
    Probability::from_parts(num, binom(layout.total(), corrupted))
}

/// The slack-aware bound `max_k P(k)` (docs/DESIGN.md section 2), computed exactly
/// with the early stop proved in the module documentation.
pub fn slack_bound(layout: Layout, slack: u64) -> WorstCase {
    let terms = Terms::new(layout, slack);
    let (r, b, s, n) = (layout.queries, layout.copies, terms.s, layout.total());
    let kmax = r * b + s;
    let mut cr = BinomRow::new(r);
    let mut best = Best::new();

    // Low side: next k to evaluate upwards and C(N, k) for it.
    let mut low_k = b;
    let mut low_c = binom(n, low_k);
    // High side: next k to evaluate downwards and C(N, k) for it.
    let mut high_k = kmax;
    let mut high_c: Option<BigUint> = None;
    // Terms per k.
    let m = (s / b + 1).min(r);

    // (T/N)^(T-s), shared by the high-side bounds; computed on first use.
    let mut far: Option<UpperFloat> = None;

    let mut t: u64 = 1;
    loop {
        let low_target = t.saturating_mul(b).saturating_add(s).min(kmax);
        while low_k <= low_target && low_k <= high_k {
            best.offer(terms.numerator(low_k, &mut cr), &low_c, low_k);
            low_c = low_c * (n - low_k) / (low_k + 1);
            low_k += 1;
        }
        if low_k > high_k {
            break;
        }
        // Every unevaluated k only has terms with i > t. Try to bound them
        // all without touching the (possibly huge) binomials near k = N.
        let far = far.get_or_insert_with(|| {
            UpperFloat::from_ratio(&BigUint::from(layout.public), &BigUint::from(n))
                .pow(layout.public - s)
        });
        if rest_is_dominated(layout, t, m, far, &best, &mut cr) {
            break;
        }
        // Otherwise evaluate the high side exactly.
        let high_target = r.saturating_sub(t).saturating_mul(b).max(b);
        while high_k >= high_target && high_k >= low_k {
            let c = high_c.get_or_insert_with(|| binom(n, high_k));
            best.offer(terms.numerator(high_k, &mut cr), c, high_k);
            *c = &*c * high_k / (n - high_k + 1);
            high_k -= 1;
        }
        if low_k > high_k || 2 * t + 2 > r {
            // Everything evaluated, or no i strictly between t and R - t:
            // the unevaluated k have no terms at all.
            break;
        }
        // Remaining k have all their terms with t < i < R - t:
        // P(k) <= m / C(R, t+1)^(B-1).
        let c = num_traits::pow(cr.get(t + 1).clone(), (b - 1) as usize);
        if best.dominates(m, &c) {
            break;
        }
        t += 1;
    }
    best.finish()
}

/// [`slack_bound`] by full enumeration of `k = 1..=N`: the reference the fast
/// version is tested against. Cost grows with `N`; use for small batches.
pub fn slack_bound_exhaustive(layout: Layout, slack: u64) -> WorstCase {
    let terms = Terms::new(layout, slack);
    let n = layout.total();
    let mut cr = BinomRow::new(layout.queries);
    let mut best = Best::new();
    for k in 1..=n {
        best.offer(terms.numerator(k, &mut cr), &binom(n, k), k);
    }
    best.finish()
}

/// Whether every `P(k)` whose terms all have `i > t` is at most the best
/// value so far: terms with `t < i < R - t` are at most `C(R, t+1)^(1-B)`
/// (the lemma), and terms with `i = R - a >= R - t` are at most
/// `UB_a = C(R,a) C(aB + T, aB) / C(RB, aB) * (T/N)^(T-s)`. (Proof of the
/// latter: with `b = T - j >= T - s` and `c = N - k = aB + b`,
/// `C(N,c) C(c,b) = C(N,b) C(N-b, aB)`, so the term equals
/// `C(R,a) C(T,b) C(c,b) / (C(N,b) C(N-b, aB))`; then
/// `C(T,b)/C(N,b) <= (T/N)^b <= (T/N)^(T-s)`, `C(c,b) <= C(aB+T, aB)` and
/// `C(N-b, aB) >= C(RB, aB)`.) Each `P(k)` has at most `m` terms.
fn rest_is_dominated(
    layout: Layout,
    t: u64,
    m: u64,
    far: &UpperFloat,
    best: &Best,
    cr: &mut BinomRow,
) -> bool {
    let (r, b, tt) = (layout.queries, layout.copies, layout.public);
    let limit_den = &best.den * m;
    // Middle: t < i < R - t.
    if t + 1 < r.saturating_sub(t) {
        let c = num_traits::pow(cr.get(t + 1).clone(), (b - 1) as usize);
        if !best.dominates(m, &c) {
            return false;
        }
    }
    // High: i = R - a with a <= t and i > t.
    let a_max = t.min(r.saturating_sub(t + 1));
    for a in 0..=a_max {
        let ab = a * b;
        let ub =
            UpperFloat::from_ratio(&(cr.get(a) * binom(ab + tt, ab)), &binom(r * b, ab)).mul(far);
        if !ub.at_most(&best.num, &limit_den) {
            return false;
        }
    }
    true
}

/// `C(R, x)` for `x = 0, 1, ...`, grown on demand, read symmetrically.
struct BinomRow {
    r: u64,
    row: Vec<BigUint>,
}

impl BinomRow {
    fn new(r: u64) -> Self {
        BinomRow {
            r,
            row: vec![BigUint::from(1u32)],
        }
    }

    /// `C(R, i)` for `0 <= i <= R`.
    fn get(&mut self, i: u64) -> &BigUint {
        let x = i.min(self.r - i);
        while (self.row.len() as u64) <= x {
            let prev = self.row.len() as u64 - 1;
            let next = self.row[prev as usize].clone() * (self.r - prev) / (prev + 1);
            self.row.push(next);
        }
        &self.row[x as usize]
    }
}

/// The numerators `sum_i C(R,i) C(T, k - iB)`.
struct Terms {
    layout: Layout,
    /// `min(s, T)`.
    s: u64,
    /// `C(T, j)` for `j = 0..=s`.
    ct: Vec<BigUint>,
}

impl Terms {
    fn new(layout: Layout, slack: u64) -> Self {
        let s = slack.min(layout.public);
        let mut ct = Vec::with_capacity(s as usize + 1);
        ct.push(BigUint::from(1u32));
        for j in 0..s {
            let next = ct[j as usize].clone() * (layout.public - j) / (j + 1);
            ct.push(next);
        }
        Terms { layout, s, ct }
    }

    fn numerator(&self, k: u64, cr: &mut BinomRow) -> BigUint {
        let (r, b) = (self.layout.queries, self.layout.copies);
        let i_lo = k.saturating_sub(self.s).div_ceil(b).max(1);
        let i_hi = (k / b).min(r);
        let mut sum = BigUint::zero();
        for i in i_lo..=i_hi {
            let j = k - i * b;
            sum += cr.get(i) * &self.ct[j as usize];
        }
        sum
    }
}

/// The running maximum of `num / den` over `k`, smallest `k` on ties.
struct Best {
    num: BigUint,
    den: BigUint,
    k: u64,
    /// `log2(num / den)`, to skip exact comparisons that cannot succeed.
    log2: f64,
}

/// How far below the best `log2` a candidate must be to be rejected without
/// an exact comparison. `log2_big` is accurate to far better than `1e-9` for
/// numbers of up to `2^40` bits, so a candidate rejected this way is smaller
/// for sure; anything closer is compared exactly.
const LOG2_MARGIN: f64 = 1e-6;

impl Best {
    fn new() -> Self {
        Best {
            num: BigUint::zero(),
            den: BigUint::from(1u32),
            k: 0,
            log2: f64::NEG_INFINITY,
        }
    }

    fn offer(&mut self, num: BigUint, den: &BigUint, k: u64) {
        if num.is_zero() {
            return;
        }
        let log2 = log2_big(&num) - log2_big(den);
        if log2 < self.log2 - LOG2_MARGIN {
            return;
        }
        let lhs = &num * &self.den;
        let rhs = &self.num * den;
        if lhs > rhs || (lhs == rhs && k < self.k) {
            self.num = num;
            self.den = den.clone();
            self.k = k;
            self.log2 = log2;
        }
    }

    /// Whether `m / c <= num / den`.
    fn dominates(&self, m: u64, c: &BigUint) -> bool {
        &self.den * m <= &self.num * c
    }

    fn finish(self) -> WorstCase {
        WorstCase {
            probability: Probability::from_parts(self.num, self.den),
            corrupted: self.k,
        }
    }
}

/// The outcome of [`simulate`]: `wins` undetected corruptions in `games` games.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Simulation {
    /// Number of games played.
    pub games: u64,
    /// Number of games the server won.
    pub wins: u64,
}

impl Simulation {
    /// The empirical win rate.
    pub fn rate(&self) -> f64 {
        self.wins as f64 / self.games as f64
    }

    /// How many standard deviations the empirical rate lies from `p`
    /// (binomial standard deviation `sqrt(p (1 - p) / games)`). When `p` is 0
    /// or 1 the result is 0 if the rate equals `p` exactly and infinite otherwise.
    pub fn deviation_in_sigmas(&self, p: &Probability) -> f64 {
        let p = p.to_f64();
        let diff = (self.rate() - p).abs();
        let sigma = (p * (1.0 - p) / self.games as f64).sqrt();
        if sigma == 0.0 {
            if diff == 0.0 { 0.0 } else { f64::INFINITY }
        } else {
            diff / sigma
        }
    }
}

/// Plays the cheating game `games` times: each game the server corrupts a
/// uniformly random `k`-subset of the `N` positions (drawn with a partial
/// Fisher-Yates shuffle and unbiased sampling from `rng`), and wins iff the
/// corrupted positions are `i >= 1` whole copy-groups plus at most `s` public
/// samples. The exact win probability is [`slack_probability`]`(layout, s, k)`.
/// Memory and time per game are `O(N)`: meant for small batches.
pub fn simulate<G: Rng + CryptoRng + ?Sized>(
    layout: Layout,
    slack: u64,
    corrupted: u64,
    games: u64,
    rng: &mut G,
) -> Result<Simulation, Error> {
    let n = layout.total();
    if corrupted > n {
        return Err(Error::InvalidParameter {
            name: "corrupted positions",
            reason: format!("k = {corrupted} exceeds N = {n}"),
        });
    }
    if n > 1 << 24 {
        return Err(Error::InvalidParameter {
            name: "batch size",
            reason: format!("the simulator keeps O(N) state; N = {n} is above 2^24"),
        });
    }
    let (r, b) = (layout.queries as usize, layout.copies as usize);
    let query_positions = r * b;
    let mut positions: Vec<usize> = (0..n as usize).collect();
    let mut hits = vec![0usize; r];
    let mut touched = Vec::with_capacity(corrupted as usize);
    let mut wins = 0u64;
    for _ in 0..games {
        // Partial Fisher-Yates: positions[..k] becomes a uniform k-subset
        // whatever order the array is in.
        for i in 0..corrupted as usize {
            let j = i + uniform_below(rng, n - i as u64) as usize;
            positions.swap(i, j);
        }
        let mut public_hits = 0u64;
        for &p in &positions[..corrupted as usize] {
            if p < query_positions {
                let g = p / b;
                if hits[g] == 0 {
                    touched.push(g);
                }
                hits[g] += 1;
            } else {
                public_hits += 1;
            }
        }
        let whole = touched.iter().all(|&g| hits[g] == b);
        if !touched.is_empty() && whole && public_hits <= slack {
            wins += 1;
        }
        for g in touched.drain(..) {
            hits[g] = 0;
        }
    }
    Ok(Simulation { games, wins })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::ChaCha20Rng};

    fn layout(r: u64, b: u64, t: u64) -> Layout {
        Layout::new(r, b, t).unwrap()
    }

    #[test]
    fn design_example_r8_b8_t100_delta095_is_about_2_pow_minus_33() {
        let l = layout(8, 8, 100);
        let s = "0.95".parse::<crate::Threshold>().unwrap().slack(100);
        assert_eq!(s, 5);
        let w = slack_bound(l, s);
        assert!(
            (w.probability.log2() - (-33.242)).abs() < 0.01,
            "{}",
            w.probability.log2()
        );
        assert_eq!(w.corrupted, 13); // one group of 8 plus all 5 free public samples
        assert!(w.probability.is_at_most_pow2_neg(33));
        assert!(!w.probability.is_at_most_pow2_neg(34));
        // The paper's bound for the same batch claims 2^-40.3.
        let paper = paper_bound(l);
        assert!((paper.log2() - (-40.311)).abs() < 0.01, "{}", paper.log2());
        assert!(paper.is_at_most_pow2_neg(40));
    }

    #[test]
    fn paper_bound_matches_hand_computation() {
        // R=2, B=2, T=3: N=7, 2 / C(7,2) = 2/21.
        let p = paper_bound(layout(2, 2, 3));
        assert_eq!(p.ratio(), &BigRational::new(2.into(), 21.into()));
        // group probabilities: i=1: 2/21, i=2: 1/C(7,4) = 1/35.
        assert_eq!(
            group_probability(layout(2, 2, 3), 2).ratio(),
            &BigRational::new(1.into(), 35.into())
        );
        assert!(group_probability(layout(2, 2, 3), 3).is_zero());
        assert!(group_probability(layout(2, 2, 3), 0).is_zero());
    }

    #[test]
    fn slack_zero_equals_exact_group_bound_and_groups_max_at_one_when_t_ge_b() {
        for r in 1..=6 {
            for b in 1..=4 {
                for t in 0..=6 {
                    let l = layout(r, b, t);
                    let w = exact_group_bound(l);
                    let direct = (1..=r).map(|i| group_probability(l, i)).max().unwrap();
                    assert_eq!(w.probability, direct, "R={r} B={b} T={t}");
                    if t >= b && b >= 2 {
                        assert_eq!(w.probability, paper_bound(l), "R={r} B={b} T={t}");
                        assert_eq!(w.corrupted, b);
                    }
                }
            }
        }
    }

    #[test]
    fn fast_slack_bound_equals_full_enumeration() {
        for r in 1..=9 {
            for b in 1..=4 {
                for t in [0, 1, 2, 3, 5, 8] {
                    for s in [0, 1, 2, 3, 4, 7, 100] {
                        let l = layout(r, b, t);
                        assert_eq!(
                            slack_bound(l, s),
                            slack_bound_exhaustive(l, s),
                            "R={r} B={b} T={t} s={s}"
                        );
                    }
                }
            }
        }
        // Larger R, where the early stop actually triggers.
        for (r, b, t, s) in [
            (64, 3, 20, 2),
            (200, 2, 100, 5),
            (100, 3, 10, 4),
            (40, 5, 30, 12),
            (30, 2, 400, 20),
            (5, 3, 300, 15),
            (3, 4, 200, 199),
            (50, 3, 2, 2),
        ] {
            let l = layout(r, b, t);
            assert_eq!(
                slack_bound(l, s),
                slack_bound_exhaustive(l, s),
                "R={r} B={b} T={t} s={s}"
            );
        }
    }

    #[test]
    fn slack_bound_dominates_paper_bound_and_grows_with_slack() {
        let l = layout(32, 7, 100);
        let mut prev = paper_bound(l);
        for s in 0..=10 {
            let w = slack_bound(l, s);
            assert!(w.probability >= prev, "s={s}");
            prev = w.probability;
        }
    }

    #[test]
    fn large_r_slack_bound_is_fast_and_close_to_paper() {
        // R = 2^19, B = 3, T = 100 (paper Table I): 2^-40.17; slack 5 barely matters.
        let l = layout(1 << 19, 3, 100);
        let paper = paper_bound(l);
        let w = slack_bound(l, 5);
        assert!((paper.log2() + 40.170).abs() < 0.01);
        assert_eq!(w.probability, paper);
        assert_eq!(w.corrupted, 3);
    }

    #[test]
    fn slack_probability_is_the_hand_formula() {
        // R=2, B=2, T=3, s=1, k=3: pairs (i=1, j=1): 2*3 / C(7,3) = 6/35.
        let p = slack_probability(layout(2, 2, 3), 1, 3);
        assert_eq!(p.ratio(), &BigRational::new(6.into(), 35.into()));
        // k=4, s=2: (i=2,j=0) + (i=1,j=2): 1 + 2*3 = 7 over C(7,4)=35.
        let p = slack_probability(layout(2, 2, 3), 2, 4);
        assert_eq!(p.ratio(), &BigRational::new(1.into(), 5.into()));
        assert!(slack_probability(layout(2, 2, 3), 0, 3).is_zero());
        assert!(slack_probability(layout(2, 2, 3), 3, 8).is_zero());
    }

    #[test]
    fn monte_carlo_agrees_with_formulas_within_4_sigma() {
        let mut rng = ChaCha20Rng::seed_from_u64(0xF051_0001);
        let games = 100_000;
        for (r, b, t) in [(2u64, 2u64, 3u64), (3, 2, 4)] {
            let l = layout(r, b, t);
            for s in 0..=3u64 {
                for k in 1..=l.total() {
                    let exact = slack_probability(l, s, k);
                    let sim = simulate(l, s, k, games, &mut rng).unwrap();
                    let dev = sim.deviation_in_sigmas(&exact);
                    assert!(
                        dev <= 4.0,
                        "R={r} B={b} T={t} s={s} k={k}: simulated {} vs exact {} ({dev:.2} sigma)",
                        sim.rate(),
                        exact.to_f64()
                    );
                }
            }
        }
    }

    #[test]
    fn simulate_rejects_k_above_n() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert!(simulate(layout(2, 2, 3), 0, 8, 10, &mut rng).is_err());
    }

    #[test]
    fn layout_validation() {
        assert!(matches!(Layout::new(0, 2, 3), Err(Error::NoQueries)));
        assert!(matches!(Layout::new(1, 0, 3), Err(Error::TooFewCopies(0))));
        assert!(Layout::new(u64::MAX, 2, 0).is_err());
        assert_eq!(layout(8, 8, 100).total(), 164);
    }

    #[test]
    fn pow2_comparison_is_exact_at_the_boundary() {
        let p = Probability::from_parts(BigUint::from(1u32), BigUint::from(1u64 << 40));
        assert!(p.is_at_most_pow2_neg(40));
        assert!(!p.is_at_most_pow2_neg(41));
        assert_eq!(p.log2(), -40.0);
        let q =
            Probability::from_parts(BigUint::from(1u64 << 40) + 1u32, BigUint::from(1u128 << 80));
        assert!(!q.is_at_most_pow2_neg(40));
    }
}
