//! The backends: named bundles of per-layer protocols behind the seam of
//! [`crate::backend`], and the registry the command-line tools read.
//!
//! | name | what |
//! |---|---|
//! | [`cheetah`] | Cheetah: RLWE coefficient-encoded linear layers, OT non-linear layers, `Z_2^l` |
//! | [`delphi`] | DELPHI: offline HE masks and garbled circuits, online masked linear layers and GC evaluation (IKNP), `Z_2^l` |
//! | [`cryptflow2`] | CrypTFlow2's SCI_HE: SIMD BFV linear layers (Gazelle, Halevi–Shoup), field millionaires on KK13 and IKNP OT, `Z_p` |
//! | [`aby`] | ABY: arithmetic sharing with OT-generated (Gilboa, IKNP) multiplication triples for linear layers, Yao sharing (A2Y, garbled circuits, Y2A) for ReLU, max pool and truncation, `Z_2^l` |
//!
//! A server offers one or more backends; the client names one in its hello
//! and the server refuses a backend it does not offer
//! ([`crate::SecureError::BackendUnavailable`]).

pub mod aby;
pub mod cheetah;
pub mod cryptflow2;
pub mod delphi;

use crate::backend::Backend;
use crate::error::{SecureError, SecureResult};

/// A backend's entry in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendInfo {
    /// The name in the handshake and on the command line.
    pub name: &'static str,
    /// One line for `fusion backends`.
    pub summary: &'static str,
}

/// Every backend this build offers.
pub const AVAILABLE: &[BackendInfo] = &[
    BackendInfo {
        name: cheetah::NAME,
        summary: cheetah::SUMMARY,
    },
    BackendInfo {
        name: delphi::NAME,
        summary: delphi::SUMMARY,
    },
    BackendInfo {
        name: aby::NAME,
        summary: aby::SUMMARY,
    },
    BackendInfo {
        name: cryptflow2::NAME,
        summary: cryptflow2::SUMMARY,
    },
];

/// The names of [`AVAILABLE`].
pub fn names() -> Vec<&'static str> {
    AVAILABLE.iter().map(|b| b.name).collect()
}

/// The backend `name` with its default configuration; an unknown name is an
/// error naming the available ones.
pub fn by_name(name: &str) -> SecureResult<Box<dyn Backend>> {
    match name {
        cheetah::NAME => Ok(Box::new(cheetah::Cheetah::default())),
        delphi::NAME => Ok(Box::new(delphi::Delphi::default())),
        aby::NAME => Ok(Box::new(aby::Aby::default())),
        cryptflow2::NAME => Ok(Box::new(cryptflow2::Cryptflow2::default())),
        other => Err(SecureError::UnknownBackend {
            name: other.chars().take(64).collect(),
            available: names().join(", "),
        }),
    }
}
