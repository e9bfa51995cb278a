//! ReLU on additive shares, with reconstruction and re-sharing inside the
//! circuit.
//!
//! **What it computes.** The garbler holds a share `x_G` and a fresh uniformly
//! random mask `r`, the evaluator a share `x_E`, with `x = x_G + x_E`
//! (mod `2^l`, or mod `p`). The circuit computes
//!
//! ```text
//! z = ReLU(x) − r        ReLU(x) = x if x ≥ 0 else 0
//! ```
//!
//! and outputs `z` to the evaluator: the evaluator's new share is `z`, the
//! garbler's is `r`, and `r + z = ReLU(x)`. Mod `2^l`, `x` is signed two's
//! complement (negative iff its top bit is set); mod `p`, `x` is negative
//! iff `x > (p − 1)/2`.
//!
//! **What each party learns.** The evaluator learns `z`, which is uniformly
//! random given its view because `r` is fresh and uniform; the garbler learns
//! nothing. This is the non-linear step of Fusion's (and DELPHI's / GAZELLE's)
//! garbled-circuit ReLU on secret shares.
//!
//! | function | computes | AND gates |
//! |---|---|---|
//! | [`relu_shares`] | mod `2^l` | `3(l − 1)`: reconstruct `l − 1`, zero-out `l − 1`, re-share `l − 1` |
//! | [`relu_shares_mod_p`] | mod `p` | `≤ 7l − 2`: reconstruct `≤ 3l − 1`, compare `≤ l`, zero-out `l`, re-share `2l − 1` |
//! | [`relu_circuit`] | `n` independent ReLUs mod `2^l` | `3n(l − 1)` |

use crate::circuit::{Builder, Circuit, Wire};
use crate::error::Result;
use crate::gadgets::arith::{add, add_mod_p, sub, sub_mod_p};
use crate::gadgets::compare::lt_unsigned;
use crate::gadgets::{check_modulus, check_same_width, constant};

/// `ReLU(x_G + x_E mod 2^l) − r mod 2^l` (`3(l − 1)` ANDs; module docs).
pub fn relu_shares(b: &mut Builder, x_g: &[Wire], x_e: &[Wire], r: &[Wire]) -> Result<Vec<Wire>> {
    let l = check_same_width(x_g, x_e)?;
    check_same_width(x_g, r)?;
    let x = add(b, x_g, x_e)?;
    let pos = b.not(x[l - 1]);
    let mut y: Vec<Wire> = x[..l - 1].iter().map(|&xi| b.and(xi, pos)).collect();
    y.push(Wire::ZERO);
    sub(b, &y, r)
}

/// `ReLU(x_G + x_E mod p) − r mod p` for shares and mask in `[0, p)`,
/// `2 <= p < 2^l` (module docs).
pub fn relu_shares_mod_p(
    b: &mut Builder,
    x_g: &[Wire],
    x_e: &[Wire],
    r: &[Wire],
    p: u64,
) -> Result<Vec<Wire>> {
    let l = check_same_width(x_g, x_e)?;
    check_same_width(x_g, r)?;
    check_modulus(p, l)?;
    let x = add_mod_p(b, x_g, x_e, p)?;
    let half = constant((p - 1) / 2, l);
    let neg = lt_unsigned(b, &half, &x)?;
    let pos = b.not(neg);
    let y: Vec<Wire> = x.iter().map(|&xi| b.and(xi, pos)).collect();
    sub_mod_p(b, &y, r, p)
}

/// A circuit of `n` independent [`relu_shares`] mod `2^l`. Inputs: the
/// garbler's are `x_G[0], r[0], x_G[1], r[1], …` (`l` bits each, least
/// significant first), the evaluator's `x_E[0], x_E[1], …`; outputs
/// `z[0], z[1], …` (`3n(l − 1)` ANDs).
pub fn relu_circuit(l: usize, n: usize) -> Result<Circuit> {
    crate::gadgets::check_width(l)?;
    let mut b = Builder::new();
    let mut ins = Vec::with_capacity(n);
    for _ in 0..n {
        let xg = b.garbler_inputs(l);
        let r = b.garbler_inputs(l);
        ins.push((xg, r));
    }
    for (xg, r) in &ins {
        let xe = b.evaluator_inputs(l);
        let z = relu_shares(&mut b, xg, &xe, r)?;
        b.outputs(&z);
    }
    Ok(b.finish())
}
