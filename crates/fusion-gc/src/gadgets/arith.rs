//! Addition and subtraction of `l`-bit values mod `2^l` and mod a public `p`.
//!
//! **Ripple-carry adder with one AND per bit.** The carry out of bit `i` is
//! the majority `c_{i+1} = c_i ⊕ ((x_i ⊕ c_i) ∧ (y_i ⊕ c_i))` and the sum
//! bit `s_i = x_i ⊕ y_i ⊕ c_i` (free under free-XOR); the construction of
//! Boyar–Peralta–Pochuev / Kolesnikov–Sadeghi–Schneider (CANS 2009).
//! Subtraction is `x + ¬y + 1`; the borrow of `x − y` is `¬c_l`, i.e.
//! `x < y` for unsigned `x, y`.
//!
//! | function | computes | AND gates |
//! |---|---|---|
//! | [`add`] | `x + y mod 2^l` | `l − 1` |
//! | [`sub`] | `x − y mod 2^l` | `l − 1` |
//! | [`add_with_carry`] | `x + y` as `l` bits and the carry | `l` |
//! | [`sub_with_borrow`] | `x − y mod 2^l` and the borrow `[x < y]` | `l` |
//! | [`add_mod_p`] | `x + y mod p` for `x, y < p < 2^l` | `≤ 3l − 1` (`= 3l − 1` for odd `p`) |
//! | [`sub_mod_p`] | `x − y mod p` for `x, y < p < 2^l` | `2l − 1` |
//!
//! Mod `p`: `s = x + y` on `l + 1` bits, `t = s − p` with borrow `b = [s < p]`,
//! result `t + b·p mod 2^l` (the multiplication by the public `p` is free:
//! bit `i` of `b·p` is `b` or `0`). Subtraction: `d = x − y` with borrow `b`,
//! result `d + b·p mod 2^l`. Results for inputs `≥ p` are unspecified.

use crate::circuit::{Builder, Wire};
use crate::error::Result;
use crate::gadgets::{check_modulus, check_same_width, constant};

/// `x + y + cin` on `x.len()` bits; the carry out if `want_carry` (else
/// [`Wire::ZERO`]). One AND per carry computed.
fn adder(
    b: &mut Builder,
    x: &[Wire],
    y: &[Wire],
    cin: Wire,
    want_carry: bool,
) -> (Vec<Wire>, Wire) {
    let l = x.len();
    let mut c = cin;
    let mut s = Vec::with_capacity(l);
    for i in 0..l {
        let xy = b.xor(x[i], y[i]);
        s.push(b.xor(xy, c));
        if i + 1 < l || want_carry {
            let xc = b.xor(x[i], c);
            let yc = b.xor(y[i], c);
            let t = b.and(xc, yc);
            c = b.xor(c, t);
        } else {
            c = Wire::ZERO;
        }
    }
    (s, c)
}

fn not_all(b: &mut Builder, y: &[Wire]) -> Vec<Wire> {
    y.iter().map(|&w| b.not(w)).collect()
}

/// `x + y mod 2^l` (`l − 1` ANDs).
pub fn add(b: &mut Builder, x: &[Wire], y: &[Wire]) -> Result<Vec<Wire>> {
    check_same_width(x, y)?;
    Ok(adder(b, x, y, Wire::ZERO, false).0)
}

/// `x − y mod 2^l` (`l − 1` ANDs).
pub fn sub(b: &mut Builder, x: &[Wire], y: &[Wire]) -> Result<Vec<Wire>> {
    check_same_width(x, y)?;
    let ny = not_all(b, y);
    Ok(adder(b, x, &ny, Wire::ONE, false).0)
}

/// `x + y` as `l` sum bits and the carry out (`l` ANDs).
pub fn add_with_carry(b: &mut Builder, x: &[Wire], y: &[Wire]) -> Result<(Vec<Wire>, Wire)> {
    check_same_width(x, y)?;
    Ok(adder(b, x, y, Wire::ZERO, true))
}

/// `x − y mod 2^l` and the borrow `[x < y]` (unsigned; `l` ANDs).
pub fn sub_with_borrow(b: &mut Builder, x: &[Wire], y: &[Wire]) -> Result<(Vec<Wire>, Wire)> {
    check_same_width(x, y)?;
    let ny = not_all(b, y);
    let (d, c) = adder(b, x, &ny, Wire::ONE, true);
    let borrow = b.not(c);
    Ok((d, borrow))
}

/// `p·s mod 2^l` for a bit `s` (free).
fn scaled_constant(p: u64, l: usize, s: Wire) -> Vec<Wire> {
    constant(p, l)
        .into_iter()
        .map(|c| if c == Wire::ONE { s } else { Wire::ZERO })
        .collect()
}

/// `x + y mod p` for `x, y < p`, `2 <= p < 2^l` (at most `3l − 1` ANDs, exactly for odd `p`).
pub fn add_mod_p(b: &mut Builder, x: &[Wire], y: &[Wire], p: u64) -> Result<Vec<Wire>> {
    let l = check_same_width(x, y)?;
    check_modulus(p, l)?;
    let (mut s, c) = adder(b, x, y, Wire::ZERO, true);
    s.push(c);
    let np = not_all(b, &constant(p, l + 1));
    let (t, c2) = adder(b, &s, &np, Wire::ONE, true);
    let below = b.not(c2);
    let back = scaled_constant(p, l, below);
    Ok(adder(b, &t[..l], &back, Wire::ZERO, false).0)
}

/// `x − y mod p` for `x, y < p`, `2 <= p < 2^l` (`2l − 1` ANDs).
pub fn sub_mod_p(b: &mut Builder, x: &[Wire], y: &[Wire], p: u64) -> Result<Vec<Wire>> {
    let l = check_same_width(x, y)?;
    check_modulus(p, l)?;
    let (d, borrow) = sub_with_borrow(b, x, y)?;
    let back = scaled_constant(p, l, borrow);
    Ok(adder(b, &d, &back, Wire::ZERO, false).0)
}
