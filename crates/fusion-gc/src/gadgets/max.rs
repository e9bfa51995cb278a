//! Maximum of `k` signed `l`-bit values, on plain wires or on additive shares
//! (Fusion's max pooling).
//!
//! **What it computes.** [`max_signed`]: a balanced tournament of
//! `k − 1` pairwise maxima `max(a, b) = [a < b] ? b : a` (signed comparison
//! of [`crate::gadgets::compare`] and the multiplexer of
//! [`crate::gadgets::mux`]); equal values (ties) give that value.
//! [`max_shares`]: the garbler holds shares `x_{G,i}` and a fresh uniform
//! mask `r`, the evaluator `x_{E,i}`; the circuit reconstructs
//! `x_i = x_{G,i} + x_{E,i} mod 2^l`, takes the signed maximum and outputs
//! `z = max_i x_i − r mod 2^l` to the evaluator, whose share it is (the
//! garbler's is `r`). The evaluator learns `z` only (uniform given `r`), the
//! garbler nothing.
//!
//! | function | computes | AND gates |
//! |---|---|---|
//! | [`max_signed`] | `max_i x_i` | `2l(k − 1)` |
//! | [`max_shares`] | `max_i (x_{G,i} + x_{E,i}) − r mod 2^l` | `(k + 1)(l − 1) + 2l(k − 1)` |

use crate::circuit::{Builder, Wire};
use crate::error::{Result, param};
use crate::gadgets::arith::{add, sub};
use crate::gadgets::check_same_width;
use crate::gadgets::compare::lt_signed;
use crate::gadgets::mux::mux;

/// The signed maximum of `xs` (`k >= 1` values of `l` bits; `2l(k − 1)`
/// ANDs).
pub fn max_signed(b: &mut Builder, xs: &[Vec<Wire>]) -> Result<Vec<Wire>> {
    let Some(first) = xs.first() else {
        return Err(param("maximum of no values"));
    };
    for x in xs {
        check_same_width(first, x)?;
    }
    let mut layer: Vec<Vec<Wire>> = xs.to_vec();
    while layer.len() > 1 {
        let mut next = Vec::with_capacity(layer.len().div_ceil(2));
        let mut it = layer.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(c) => {
                    let lt = lt_signed(b, &a, &c)?;
                    next.push(mux(b, lt, &a, &c)?);
                }
                None => next.push(a),
            }
        }
        layer = next;
    }
    Ok(layer.pop().unwrap_or_default())
}

/// `max_i (x_{G,i} + x_{E,i}) − r mod 2^l` (module docs).
pub fn max_shares(
    b: &mut Builder,
    x_g: &[Vec<Wire>],
    x_e: &[Vec<Wire>],
    r: &[Wire],
) -> Result<Vec<Wire>> {
    if x_g.len() != x_e.len() {
        return Err(param(format!(
            "{} garbler shares and {} evaluator shares",
            x_g.len(),
            x_e.len()
        )));
    }
    let xs = x_g
        .iter()
        .zip(x_e)
        .map(|(g, e)| add(b, g, e))
        .collect::<Result<Vec<_>>>()?;
    let m = max_signed(b, &xs)?;
    check_same_width(&m, r)?;
    sub(b, &m, r)
}
