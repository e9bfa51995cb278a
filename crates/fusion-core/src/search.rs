//! Parameter search: the paper's `Pi_Search` and a slack-aware variant.
//!
//! **`Pi_Search`** (Dong et al., NDSS 2023, section IV-C, Fig. 4): given the
//! number of queries `R`, the statistical security parameter `lambda` and the
//! minimum number of public samples `beta`, find the number of copies `B` and
//! public samples `T` minimising the amortised cost `(RB + T) / R` subject to
//! `R / C(RB + T, B) <= 2^-lambda` and `T >= max(beta, B)`, for
//! `B = 2..=lambda`. For each `B` the constraint is `C(RB + T, B) >= R 2^lambda`,
//! monotone in `T` (`C(n, B)` grows with `n`), so the smallest `T` is found by
//! exponential then binary search with exact big-integer binomials: no float
//! decides a boundary. Since `R` is fixed, costs are compared as the integers
//! `N = RB + T`; a later `B` replaces the best only if its `N` is strictly
//! smaller, so **ties go to the smallest `B`** (as in the paper's Fig. 4 loop),
//! which also leaves the most public samples. `B` stops growing once
//! `RB + max(beta, B)` alone reaches the best `N`. With `lambda = 40` and
//! `beta = 100` this reproduces the paper's Table I (tested).
//!
//! **Slack-aware search** ([`slack_search`]): the same optimisation against
//! the slack-aware bound of docs/DESIGN.md section 2 ([`crate::security::slack_bound`])
//! for a threshold `delta`, where `T` also sets the slack
//! `s = T - ceil(delta T)`. That bound is not monotone in `T` (the slack grows
//! in steps with `T`) and, for a fixed `delta < 1`, may never drop below
//! `2^-lambda` however large `T` is: a server corrupting one copy-group plus a
//! `q = min(1 - delta, 1/R)` fraction of the public samples wins with
//! probability about `R q^B (1 - q)^(RB - B)`. So the variant scans exactly:
//! the slack-aware bound is at least the paper's (its `k = B` term), so for
//! each `B` no `T` below the paper's smallest `T` can work; candidates
//! `(B, T)` are tried in order of increasing `N = RB + T` (ties: smallest `B`)
//! and the first that passes is optimal. A `B` is dropped when its `T` would
//! exceed `max_public`, or when a certified lower bound proves that no larger
//! `T` can pass: for `j = floor(q T) <= s`,
//! `P(B + j) >= R C(T, j) / C(N, B + j) >= R (q T / (T + RB))^B (1 - q)^(RB - B)`,
//! which increases with `T`; it is evaluated in truncated binary arithmetic
//! that only rounds down, so a "hopeless" verdict is a proof.

use num_bigint::BigUint;
use num_rational::Ratio;
use serde::Serialize;

use crate::Error;
use crate::Threshold;
use crate::exact::{LowerFloat, binom_at_least};
use crate::security::{self, Layout, MAX_TOTAL, Probability, WorstCase};

/// The paper's statistical security parameter.
pub const DEFAULT_LAMBDA: u32 = 40;
/// The paper's minimum number of public samples `beta`.
pub const DEFAULT_MIN_PUBLIC: u64 = 100;
/// Largest `R` accepted (`2^40`).
pub const MAX_QUERIES: u64 = 1 << 40;
/// Largest `lambda` accepted.
pub const MAX_LAMBDA: u32 = 256;
/// The smallest default cap on `T` for [`slack_search`] ([`default_max_public`]).
pub const DEFAULT_MAX_PUBLIC: u64 = 1 << 10;

/// The default cap on `T` for [`slack_search`]: `max(1024, 2 T_paper)` for
/// the paper's plan, so the paper's own `(B, T)` is always a candidate.
pub fn default_max_public(paper: &Plan) -> u64 {
    DEFAULT_MAX_PUBLIC.max(paper.public.saturating_mul(2))
}

/// The inputs of `Pi_Search`: `R`, `lambda`, `beta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SearchParams {
    queries: u64,
    lambda: u32,
    min_public: u64,
}

impl SearchParams {
    /// Needs `1 <= R <= 2^40`, `1 <= lambda <= 256`, `beta <= 2^40`.
    pub fn new(queries: u64, lambda: u32, min_public: u64) -> Result<Self, Error> {
        if queries == 0 {
            return Err(Error::NoQueries);
        }
        if queries > MAX_QUERIES {
            return Err(Error::InvalidParameter {
                name: "queries",
                reason: format!("R = {queries} exceeds 2^40"),
            });
        }
        if lambda == 0 || lambda > MAX_LAMBDA {
            return Err(Error::InvalidParameter {
                name: "lambda",
                reason: format!("{lambda} is outside 1..={MAX_LAMBDA}"),
            });
        }
        if min_public > 1 << 40 {
            return Err(Error::InvalidParameter {
                name: "min_public",
                reason: format!("{min_public} exceeds 2^40"),
            });
        }
        Ok(SearchParams {
            queries,
            lambda,
            min_public,
        })
    }

    /// `R` with the paper's `lambda = 40` and `beta = 100`.
    pub fn with_defaults(queries: u64) -> Result<Self, Error> {
        Self::new(queries, DEFAULT_LAMBDA, DEFAULT_MIN_PUBLIC)
    }

    /// `R`.
    pub fn queries(&self) -> u64 {
        self.queries
    }

    /// `lambda`.
    pub fn lambda(&self) -> u32 {
        self.lambda
    }

    /// `beta`.
    pub fn min_public(&self) -> u64 {
        self.min_public
    }

    /// The copies tried: `2..=max(lambda, 2)`.
    pub fn copies_range(&self) -> std::ops::RangeInclusive<u64> {
        2..=u64::from(self.lambda.max(2))
    }
}

/// A choice of `(B, T)` for `R` queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// `R`.
    pub queries: u64,
    /// `B`.
    pub copies: u64,
    /// `T`.
    pub public: u64,
}

impl Plan {
    /// `N = RB + T`.
    pub fn total(&self) -> u64 {
        self.queries * self.copies + self.public
    }

    /// The amortised cost `N / R` (samples run per query), exactly.
    pub fn cost(&self) -> Ratio<u64> {
        Ratio::new(self.total(), self.queries)
    }

    /// [`Plan::cost`] as the nearest `f64`, for display.
    pub fn cost_f64(&self) -> f64 {
        self.total() as f64 / self.queries as f64
    }

    /// The batch layout.
    pub fn layout(&self) -> Layout {
        // Plans are only built from validated layouts.
        Layout::new(self.queries, self.copies, self.public)
            .unwrap_or_else(|_| unreachable!("plans hold validated layouts"))
    }

    /// The paper's bound `R / C(N, B)` for this plan.
    pub fn paper_bound(&self) -> Probability {
        security::paper_bound(self.layout())
    }
}

/// The smallest `T >= max(beta, B)` with `C(RB + T, B) >= R 2^lambda` for
/// `copies = B`, or `None` if it would push `N` above `2^62`.
pub fn min_public(params: &SearchParams, copies: u64) -> Option<u64> {
    let r = params.queries;
    let rb = r.checked_mul(copies)?;
    let target = BigUint::from(r) << params.lambda;
    let ok = |t: u64| binom_at_least(rb + t, copies, &target);
    let start = params.min_public.max(copies);
    let limit = MAX_TOTAL.checked_sub(rb)?;
    if start > limit {
        return None;
    }
    if ok(start) {
        return Some(start);
    }
    // Exponential search for a passing T, then binary search in (lo, hi].
    let (mut lo, mut hi) = (start, start.max(1));
    loop {
        let next = hi.saturating_mul(2).min(limit);
        if next == hi {
            return None;
        }
        hi = next;
        if ok(hi) {
            break;
        }
        lo = hi;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// The paper's `Pi_Search` (Fig. 4): the `(B, T)` minimising `(RB + T) / R`
/// subject to `R / C(RB + T, B) <= 2^-lambda` and `T >= max(beta, B)`, for
/// `B in 2..=max(lambda, 2)`. Ties go to the smallest `B`.
pub fn search(params: &SearchParams) -> Result<Plan, Error> {
    let r = params.queries;
    let mut best: Option<Plan> = None;
    for b in params.copies_range() {
        let floor_n = r.saturating_mul(b).saturating_add(params.min_public.max(b));
        if best.is_some_and(|p| floor_n >= p.total()) {
            // N only grows with B from here on.
            break;
        }
        if let Some(t) = min_public(params, b) {
            let plan = Plan {
                queries: r,
                copies: b,
                public: t,
            };
            if best.is_none_or(|p| plan.total() < p.total()) {
                best = Some(plan);
            }
        }
    }
    best.ok_or_else(|| Error::InvalidParameter {
        name: "queries",
        reason: format!(
            "no (B, T) with N <= 2^62 reaches 2^-{} for R = {r}",
            params.lambda
        ),
    })
}

/// A plan found against the slack-aware bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackPlan {
    /// The chosen `(B, T)`.
    pub plan: Plan,
    /// The threshold it was chosen for.
    pub threshold: Threshold,
    /// `s = T - ceil(delta T)`.
    pub slack: u64,
    /// The slack-aware bound at this plan (`<= 2^-lambda`).
    pub worst: WorstCase,
}

/// The slack-aware bound for a plan and threshold, with the slack it implies.
pub fn slack_bound_for(plan: &Plan, threshold: Threshold) -> (u64, WorstCase) {
    let s = threshold.slack(plan.public);
    (s, security::slack_bound(plan.layout(), s))
}

/// `Pi_Search` against the slack-aware bound for threshold `delta`: the
/// `(B, T)` with `T <= max_public` minimising `N = RB + T` (ties: smallest `B`)
/// such that `max_k P(k) <= 2^-lambda` with slack `s = T - ceil(delta T)`.
/// `Ok(None)` if no such plan exists with `T <= max_public`.
pub fn slack_search(
    params: &SearchParams,
    threshold: Threshold,
    max_public: u64,
) -> Result<Option<SlackPlan>, Error> {
    let r = params.queries;
    let lambda = params.lambda;
    // q = min(1 - delta, 1/R), for the hopelessness proof.
    let (dn, dd) = (threshold.numer(), threshold.denom());
    let (q_num, q_den) = if u128::from(dd - dn) * u128::from(r) <= u128::from(dd) {
        (dd - dn, dd)
    } else {
        (1, r)
    };

    struct Candidate {
        copies: u64,
        next_public: u64,
        /// A lower bound on `R (1 - q)^(RB - B)`, or `None` when `q = 0`.
        tail: Option<LowerFloat>,
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    for b in params.copies_range() {
        let Some(t) = min_public(params, b) else {
            continue;
        };
        if t > max_public {
            continue;
        }
        let tail = (q_num > 0).then(|| {
            let one_minus_q =
                LowerFloat::from_ratio(&BigUint::from(q_den - q_num), &BigUint::from(q_den));
            LowerFloat::from_u64(r).mul(&one_minus_q.pow(r * b - b))
        });
        candidates.push(Candidate {
            copies: b,
            next_public: t,
            tail,
        });
    }

    loop {
        // The untried (B, T) with the smallest N, smallest B on ties.
        let Some(idx) = (0..candidates.len()).min_by_key(|&i| {
            (
                r * candidates[i].copies + candidates[i].next_public,
                candidates[i].copies,
            )
        }) else {
            return Ok(None);
        };
        let cand = &mut candidates[idx];
        let (b, t) = (cand.copies, cand.next_public);
        if let Some(tail) = &cand.tail {
            // R (q T / (T + RB))^B (1 - q)^(RB - B) > 2^-lambda proves that no
            // T' >= T passes for this B.
            let base = LowerFloat::from_ratio(
                &(BigUint::from(q_num) * t),
                &(BigUint::from(q_den) * (t + r * b)),
            );
            if base.pow(b).mul(tail).exceeds_pow2_neg(lambda) {
                candidates.swap_remove(idx);
                continue;
            }
        }
        let plan = Plan {
            queries: r,
            copies: b,
            public: t,
        };
        let (slack, worst) = slack_bound_for(&plan, threshold);
        if worst.probability.is_at_most_pow2_neg(lambda) {
            return Ok(Some(SlackPlan {
                plan,
                threshold,
                slack,
                worst,
            }));
        }
        if t >= max_public {
            candidates.swap_remove(idx);
        } else {
            cand.next_public = t + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::binom;

    #[test]
    fn reproduces_paper_table_1() {
        // Dong et al., Table I: lambda = 40, beta = T = 100.
        let table = [(3, 8), (5, 7), (7, 6), (9, 5), (13, 4), (19, 3)];
        for (e, b) in table {
            let p = search(&SearchParams::with_defaults(1 << e).unwrap()).unwrap();
            assert_eq!((p.copies, p.public), (b, 100), "R = 2^{e}");
            assert!(p.paper_bound().is_at_most_pow2_neg(40));
        }
    }

    #[test]
    fn min_public_is_the_exact_boundary() {
        // Without the beta floor the boundary is visible: T-1 fails, T passes.
        for (r, b) in [
            (8u64, 8u64),
            (8, 2),
            (1, 2),
            (32, 7),
            (1 << 19, 3),
            (1 << 19, 2),
            (3, 40),
        ] {
            let params = SearchParams::new(r, 40, 0).unwrap();
            let t = min_public(&params, b).unwrap();
            let target = BigUint::from(r) << 40u32;
            assert!(binom(r * b + t, b) >= target, "R={r} B={b} T={t}");
            if t > b {
                assert!(
                    binom(r * b + t - 1, b) < target,
                    "R={r} B={b} T={t} not minimal"
                );
            }
        }
    }

    #[test]
    fn search_result_is_optimal_by_brute_force() {
        for r in [1u64, 2, 3, 5, 8, 13, 100] {
            for lambda in [1u32, 2, 8, 20, 40] {
                for beta in [0u64, 1, 10, 100] {
                    let params = SearchParams::new(r, lambda, beta).unwrap();
                    let got = search(&params).unwrap();
                    // Brute force over all B with the per-B minimum T.
                    let mut best: Option<(u64, u64)> = None;
                    for b in params.copies_range() {
                        let t = min_public(&params, b).unwrap();
                        let n = r * b + t;
                        if best.is_none_or(|(bn, _)| n < bn) {
                            best = Some((n, b));
                        }
                    }
                    let (n, b) = best.unwrap();
                    assert_eq!(
                        (got.total(), got.copies),
                        (n, b),
                        "R={r} lambda={lambda} beta={beta}"
                    );
                    assert!(got.public >= beta.max(got.copies));
                }
            }
        }
    }

    #[test]
    fn invalid_search_parameters_are_rejected() {
        assert!(matches!(
            SearchParams::new(0, 40, 100),
            Err(Error::NoQueries)
        ));
        assert!(SearchParams::new(8, 0, 100).is_err());
        assert!(SearchParams::new(8, 257, 100).is_err());
        assert!(SearchParams::new((1 << 40) + 1, 40, 100).is_err());
    }

    #[test]
    fn slack_search_for_r8_at_095_needs_ten_copies() {
        let params = SearchParams::with_defaults(8).unwrap();
        let delta: Threshold = "0.95".parse().unwrap();
        let sp = slack_search(&params, delta, DEFAULT_MAX_PUBLIC)
            .unwrap()
            .unwrap();
        assert_eq!((sp.plan.copies, sp.plan.public, sp.slack), (10, 100, 5));
        assert!(sp.worst.probability.is_at_most_pow2_neg(40));
        // The paper's (8, 100) fails at this threshold, and no plan with
        // N = 8B + T <= 180 and B < 10 passes (ties go to the smaller B).
        for b in 2..10u64 {
            for t in 100..=(180 - 8 * b) {
                let plan = Plan {
                    queries: 8,
                    copies: b,
                    public: t,
                };
                let (_, w) = slack_bound_for(&plan, delta);
                assert!(!w.probability.is_at_most_pow2_neg(40), "B={b} T={t} passes");
            }
        }
    }

    #[test]
    fn slack_search_with_delta_one_matches_paper_search() {
        for e in [3u32, 5, 7, 9] {
            let params = SearchParams::with_defaults(1 << e).unwrap();
            let paper = search(&params).unwrap();
            let sp = slack_search(&params, Threshold::ONE, DEFAULT_MAX_PUBLIC)
                .unwrap()
                .unwrap();
            assert_eq!(sp.plan, paper, "R = 2^{e}");
            assert_eq!(sp.slack, 0);
        }
    }

    #[test]
    fn slack_search_proves_hopeless_thresholds() {
        // R = 1 with delta = 0.3: the server corrupts the query's B copies and
        // ~70% of the public samples; success ~0.7^B > 2^-40 for all B <= 40.
        let params = SearchParams::new(1, 40, 10).unwrap();
        let delta: Threshold = "0.3".parse().unwrap();
        assert_eq!(
            slack_search(&params, delta, DEFAULT_MAX_PUBLIC).unwrap(),
            None
        );
    }

    #[test]
    fn slack_search_large_r_equals_paper() {
        let params = SearchParams::with_defaults(1 << 19).unwrap();
        let delta: Threshold = "0.95".parse().unwrap();
        let sp = slack_search(&params, delta, DEFAULT_MAX_PUBLIC)
            .unwrap()
            .unwrap();
        assert_eq!((sp.plan.copies, sp.plan.public), (3, 100));
    }
}
