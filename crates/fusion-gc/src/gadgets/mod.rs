//! Gadgets: sub-circuits on `l`-bit values for the backends' non-linear
//! layers. A value is a `Vec<Wire>` (or `&[Wire]`) of `l` bits, least
//! significant first; `l` is a public parameter and every gadget's AND count
//! depends on `l` only (and on the public constant `p` where there is one),
//! never on data. The costs (AND gates, i.e. `32` bytes of tables each) are
//! stated in each module and checked by the tests.
//!
//! | gadget | computes | AND gates |
//! |---|---|---|
//! | [`arith::add`], [`arith::sub`] | `x ± y mod 2^l` | `l − 1` |
//! | [`arith::add_mod_p`] | `x + y mod p` (`x, y < p < 2^l`) | `≤ 3l − 1` (`=` for odd `p`) |
//! | [`arith::sub_mod_p`] | `x − y mod p` | `2l − 1` |
//! | [`compare::lt_unsigned`], [`compare::lt_signed`] | `x < y` | `l` |
//! | [`mux::mux`] | `s ? b : a` | `l` |
//! | [`relu::relu_shares`] | `ReLU(x_G + x_E mod 2^l) − r mod 2^l` | `3(l − 1)` |
//! | [`relu::relu_shares_mod_p`] | the same mod `p` | `≤ 7l` |
//! | [`max::max_signed`] | max of `k` signed values | `2l(k − 1)` |
//! | [`max::max_shares`] | `max_i(x_{G,i} + x_{E,i}) − r mod 2^l` | `(k + 1)(l − 1) + 2l(k − 1)` |

pub mod arith;
pub mod compare;
pub mod max;
pub mod mux;
pub mod relu;

use crate::circuit::Wire;
use crate::error::{Result, param};

/// The public constant `v` as `l` constant wires (`v < 2^l`, `l <= 64`).
pub fn constant(v: u64, l: usize) -> Vec<Wire> {
    (0..l)
        .map(|i| Wire::constant(i < 64 && (v >> i) & 1 == 1))
        .collect()
}

/// The `l` bits of `v`, least significant first (the input encoding of an
/// `l`-bit value).
pub fn to_bits(v: u64, l: usize) -> Vec<bool> {
    (0..l).map(|i| i < 64 && (v >> i) & 1 == 1).collect()
}

/// The value of `bits` (least significant first, at most 64).
pub fn from_bits(bits: &[bool]) -> u64 {
    bits.iter()
        .take(64)
        .enumerate()
        .fold(0, |acc, (i, &b)| acc | (u64::from(b) << i))
}

/// The input bits of `values`, `l` bits each, concatenated.
pub fn values_to_bits(values: &[u64], l: usize) -> Vec<bool> {
    values.iter().flat_map(|&v| to_bits(v, l)).collect()
}

/// The `l`-bit values of `bits` (a multiple of `l` long).
pub fn bits_to_values(bits: &[bool], l: usize) -> Vec<u64> {
    bits.chunks(l.max(1)).map(from_bits).collect()
}

/// Checks `1 <= l <= 64`.
pub(crate) fn check_width(l: usize) -> Result<()> {
    if !(1..=64).contains(&l) {
        return Err(param(format!("bit width {l} is not in 1..=64")));
    }
    Ok(())
}

/// Checks that the values have `l` bits each and the same width.
pub(crate) fn check_same_width(x: &[Wire], y: &[Wire]) -> Result<usize> {
    if x.len() != y.len() {
        return Err(param(format!(
            "operands of {} and {} bits",
            x.len(),
            y.len()
        )));
    }
    check_width(x.len())?;
    Ok(x.len())
}

/// Checks `2 <= p < 2^l`.
pub(crate) fn check_modulus(p: u64, l: usize) -> Result<()> {
    check_width(l)?;
    if p < 2 || (l < 64 && p >> l != 0) {
        return Err(param(format!("modulus {p} is not in 2..2^{l}")));
    }
    Ok(())
}
