//! Multiplexer: `s ? b : a` bitwise on `l`-bit values, as
//! `a_i ⊕ (s ∧ (a_i ⊕ b_i))` (Kolesnikov–Sadeghi–Schneider, CANS 2009).
//!
//! | function | computes | AND gates |
//! |---|---|---|
//! | [`mux`] | `b` if `s` else `a` | `l` |

use crate::circuit::{Builder, Wire};
use crate::error::Result;
use crate::gadgets::check_same_width;

/// `b` if `s`, else `a` (`l` ANDs).
pub fn mux(bld: &mut Builder, s: Wire, a: &[Wire], b: &[Wire]) -> Result<Vec<Wire>> {
    check_same_width(a, b)?;
    Ok(a.iter()
        .zip(b)
        .map(|(&ai, &bi)| {
            let d = bld.xor(ai, bi);
            let t = bld.and(s, d);
            bld.xor(ai, t)
        })
        .collect())
}
