//! The label-only oracle of `fusion attack muse`: against a server that
//! reveals only the class (output mode `label`, the secure argmax of
//! `fusion_engine::output_mode`), the malicious client still reads the
//! logits, as differences `d_c = z_c - z_0`, one bit per row.
//!
//! **How.** The argmax runs on the two parties' shares of the logits `z`,
//! and the client's share is the client's to change (the
//! [`ClientDeviation::before_output`](fusion_engine::behaviour::ClientDeviation::before_output)
//! hook). To compare `z_c` with `z_0` at a threshold `t`, the client adds
//! `-t` to its share of `z_c`, `-H` to every other class but 0 (`H` large,
//! so they never win), and nothing to `z_0`. The revealed label is `c`
//! exactly when `z_c - t > z_0`, that is `d_c > t` (a tie goes to the lower
//! index, 0). A [`Search`] per probe row and class finds `d_c` to one output
//! unit: a galloping phase finds a bracket (thresholds `0, ±1, ±4, ±16, ...`
//! in real units), then bisection narrows it. This is the share-shifting
//! attack with the label-only output of SEEK's setting (Chen and Fan, 2022)
//! but not SEEK's method: the shifts do the work that SEEK's input search
//! does, so label-only output costs the attack a factor of about
//! `(classes - 1) x` (rows per search) in rows, and stops nothing.
//!
//! **What it cannot read.** Only differences: any common offset added to
//! every logit leaves every label unchanged, so the last layer comes out as
//! `W_c - W_0`, `b_c - b_0` (row 0 all zero), the same classifier. The
//! hidden layers are read through that difference map, exactly as the
//! scores attack reads them through the full one.
//!
//! Each comparison re-runs the whole network on fresh shares, so the
//! server's truncation noise (an output unit or so) differs between the
//! rows of one search; the result is within that noise of the true
//! difference.

use std::sync::Arc;

use fusion_engine::SecureClient;

use super::shifts::{Probe, Steps};
use super::{Knobs, run_probes};
use crate::common::{CliError, failure};

/// One binary search for `d` (integer output units), given answers to
/// "is `d > t`?".
#[derive(Debug, Clone, Copy)]
pub struct Search {
    /// Largest threshold answered "above" (`d > lo`).
    lo: Option<i64>,
    /// Smallest threshold answered "not above" (`d <= hi`).
    hi: Option<i64>,
    /// One real unit in output units (the galloping phase's first step).
    unit: i64,
    /// Largest magnitude searched: beyond it `d` is taken as `±cap`.
    cap: i64,
}

impl Search {
    /// A search at output scale `2^scale`, over `[-cap, cap]`.
    pub fn new(scale: u32, cap: i64) -> Self {
        Search {
            lo: None,
            hi: None,
            unit: 1i64 << scale.min(40),
            cap: cap.max(1),
        }
    }

    /// The next threshold to ask, or `None` once `d` is known to one unit.
    pub fn next(&self) -> Option<i64> {
        match (self.lo, self.hi) {
            (None, None) => Some(0),
            // Galloping up: 1, 4, 16, ... real units above the last "above".
            (Some(lo), None) => (lo < self.cap).then(|| {
                if lo <= 0 {
                    self.unit.min(self.cap)
                } else {
                    lo.saturating_mul(4).min(self.cap)
                }
            }),
            (None, Some(hi)) => (hi > -self.cap).then(|| {
                if hi >= 0 {
                    (-self.unit).max(-self.cap)
                } else {
                    hi.saturating_mul(4).max(-self.cap)
                }
            }),
            (Some(lo), Some(hi)) => (hi - lo > 1).then(|| lo + (hi - lo) / 2),
        }
    }

    /// Records the answer for threshold `t`: `above` is `d > t`.
    pub fn answer(&mut self, t: i64, above: bool) {
        if above {
            self.lo = Some(self.lo.map_or(t, |lo| lo.max(t)));
        } else {
            self.hi = Some(self.hi.map_or(t, |hi| hi.min(t)));
        }
    }

    /// The result: the least value consistent with the answers (`hi`), or
    /// the cap it ran into.
    pub fn value(&self) -> i64 {
        match (self.lo, self.hi) {
            (_, Some(hi)) => hi,
            (Some(lo), None) => lo.max(self.cap),
            (None, None) => 0,
        }
    }
}

/// The logits of each probe as differences from class 0 (real units; entry
/// 0 is 0), read through a label-only server by one [`Search`] per probe
/// and class, all run side by side: every round asks one row per open
/// search.
pub async fn differences(
    client: &mut SecureClient,
    steps: &Arc<Steps>,
    probes: Vec<Probe>,
    k: &Knobs,
    what: &str,
    rows_so_far: &mut u64,
) -> Result<Vec<Vec<f64>>, CliError> {
    let classes = client.classes();
    let bits = client.program().fixed.ring.bits();
    // `H` keeps the hidden classes below both compared ones; thresholds stay
    // below `H / 2` so `z_c - t` stays inside the argmax's exact range
    // (`|x| < 2^(l-2)`) for logits below `2^(l-4)`.
    let hide = 1i64 << (bits - 3);
    let cap = 1i64 << (bits - 4);
    let mut searches: Vec<(usize, usize, Search)> = (0..probes.len())
        .flat_map(|p| (1..classes).map(move |c| (p, c, Search::new(steps.out_scale, cap))))
        .collect();
    let mut round = 0;
    loop {
        let open: Vec<(usize, i64)> = searches
            .iter()
            .enumerate()
            .filter_map(|(i, (_, _, s))| s.next().map(|t| (i, t)))
            .collect();
        if open.is_empty() {
            break;
        }
        round += 1;
        let asked: Vec<Probe> = open
            .iter()
            .map(|&(i, t)| {
                let (p, c, _) = searches[i];
                let shift: Vec<i64> = (0..classes)
                    .map(|j| match j {
                        0 => 0,
                        j if j == c => -t,
                        _ => -hide,
                    })
                    .collect();
                Probe {
                    logits: Some(Arc::new(shift)),
                    ..probes[p].clone()
                }
            })
            .collect();
        let label = format!("{what}, label round {round} ({} searches open)", open.len());
        let y = run_probes(client, steps, asked, k, &label, rows_so_far).await?;
        for (&(i, t), out) in open.iter().zip(&y) {
            let (_, c, s) = &mut searches[i];
            let got = fusion_attacks::dense::argmax(out);
            if got != 0 && got != *c {
                return Err(failure(format!(
                    "{what}: class {got} won a comparison of classes 0 and {c}: the shift that \
                     hides the other classes was not enough"
                )));
            }
            s.answer(t, got == *c);
        }
    }
    let scale = 2f64.powi(steps.out_scale as i32);
    let mut out = vec![vec![0.0; classes]; probes.len()];
    for (p, c, s) in &searches {
        out[*p][*c] = s.value() as f64 / scale;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solve(d: i64, scale: u32, cap: i64) -> (i64, usize) {
        let mut s = Search::new(scale, cap);
        let mut asked = 0;
        while let Some(t) = s.next() {
            s.answer(t, d > t);
            asked += 1;
            assert!(asked < 200, "the search does not end for d = {d}");
        }
        (s.value(), asked)
    }

    #[test]
    fn a_search_finds_every_difference_exactly_from_comparisons() {
        let cap = 1 << 30;
        for d in [
            0,
            1,
            -1,
            2,
            -2,
            4095,
            4096,
            4097,
            -4096,
            -4097,
            123_456,
            -987_654,
            cap - 1,
            -cap + 1,
        ] {
            assert_eq!(solve(d, 12, cap).0, d, "d = {d}");
        }
    }

    #[test]
    fn a_search_saturates_at_its_cap() {
        assert_eq!(solve(1 << 40, 12, 1 << 20).0, 1 << 20);
        assert_eq!(solve(-(1 << 40), 12, 1 << 20).0, -(1 << 20));
    }

    #[test]
    fn a_search_costs_about_the_bits_of_the_difference() {
        // |d| about 10 real units at 12 fractional bits: ~2 galloping
        // steps, then bisection of a bracket of 12 units (~16 bits).
        let (_, asked) = solve(10 * 4096 + 77, 12, 1 << 30);
        assert!((17..=22).contains(&asked), "{asked} comparisons");
    }
}
