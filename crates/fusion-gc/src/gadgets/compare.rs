//! Comparison of `l`-bit values: `[x < y]`, unsigned and signed (two's
//! complement).
//!
//! Unsigned: the borrow of `x − y`, i.e. the negated carry out of
//! `x + ¬y + 1` along the one-AND-per-bit carry chain of [`crate::gadgets::arith`]
//! (sum bits are not computed). Signed: the same after flipping both sign
//! bits (free), since `x ↦ x ⊕ 2^{l−1}` maps signed order to unsigned order.
//!
//! | function | computes | AND gates |
//! |---|---|---|
//! | [`lt_unsigned`] | `[x < y]`, `x, y ∈ [0, 2^l)` | `l` |
//! | [`lt_signed`] | `[x < y]`, `x, y ∈ [−2^{l−1}, 2^{l−1})` | `l` |

use crate::circuit::{Builder, Wire};
use crate::error::Result;
use crate::gadgets::check_same_width;

/// `[x < y]` for unsigned `l`-bit `x, y` (`l` ANDs).
pub fn lt_unsigned(b: &mut Builder, x: &[Wire], y: &[Wire]) -> Result<Wire> {
    check_same_width(x, y)?;
    let mut c = Wire::ONE;
    for (&xi, &yi) in x.iter().zip(y) {
        let nyi = b.not(yi);
        let xc = b.xor(xi, c);
        let yc = b.xor(nyi, c);
        let t = b.and(xc, yc);
        c = b.xor(c, t);
    }
    Ok(b.not(c))
}

/// `[x < y]` for signed (two's complement) `l`-bit `x, y` (`l` ANDs).
pub fn lt_signed(b: &mut Builder, x: &[Wire], y: &[Wire]) -> Result<Wire> {
    let l = check_same_width(x, y)?;
    let mut xs = x.to_vec();
    let mut ys = y.to_vec();
    xs[l - 1] = b.not(x[l - 1]);
    ys[l - 1] = b.not(y[l - 1]);
    lt_unsigned(b, &xs, &ys)
}
