//! Statistical security of the HE noise flooding per session, and the cap
//! on the coefficients a session may reveal.
//!
//! The HE backends (`cheetah`, `delphi`) reveal to the client the flooded `b`
//! coefficients of every reply it decrypts; each is within statistical
//! distance `2^-lambda_c` of its simulation (fusion-he's
//! [`fusion_he::noise`] module, "Per session"). Over a session that reveals
//! at most `M` such coefficients the client's whole view of them is within
//! `M 2^-lambda_c` of its simulation from the output shares alone: the session
//! has `lambda_c - log2 M` bits of statistical security
//! ([`SessionFlooding::per_session_bits`]). The bound covers the flooded
//! coefficients only (the `a` parts of the replies are pseudorandom under
//! decision-RLWE, a computational assumption; the OT and garbled-circuit
//! messages have their own arguments).
//!
//! The server chooses `lambda_c` and `M` ([`StatSecTarget`]), builds its HE
//! parameters with `lambda_c` (a preset whose modulus admits it; larger
//! `lambda_c` needs `N = 8192`), announces both in its hello
//! ([`crate::ServerHello::stat_sec`]) and in the backend's announcement, and
//! counts the coefficients it reveals ([`RevealBudget`]): the number per
//! layer call is [`fusion_he::LinearPlan::revealed_coefficients`] (summed over
//! the parts of a step cut in two,
//! [`crate::backends::cheetah::he::StepPlan::revealed_coefficients`]), public,
//! so both parties count the same. Before a pass that would take the session
//! past `M` both parties end the session with
//! [`SecureError::RevealCapReached`], before any reply of that pass is sent.

use std::fmt;

pub use fusion_he::{MAX_REVEALED_COEFFICIENTS, SessionFlooding};

use crate::error::{SecureError, SecureResult};

/// Default statistical security per session (bits), `fusion serve --stat-sec`.
pub const DEFAULT_SESSION_BITS: u32 = 40;
/// Default cap on the flooded coefficients one session may reveal: `2^30`
/// (103,744 `cnn-mnist` samples of 10,350 coefficients each, 4.0 M `mlp-mnist`
/// samples of 266).
pub const DEFAULT_MAX_REVEALED: u64 = 1 << 30;
/// Per-coefficient statistical security of Cheetah and SPU (bits): the
/// like-for-like setting of the SPU comparisons.
pub const PER_COEFFICIENT_BASELINE_BITS: u32 = 40;

/// How the server sets the flooding's statistical security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatSecTarget {
    /// `bits` over the whole session of at most `max_revealed` revealed
    /// coefficients: `lambda_c = bits + ceil(log2 max_revealed)`.
    PerSession {
        /// Target bits per session.
        bits: u32,
        /// The session's cap on revealed coefficients.
        max_revealed: u64,
    },
    /// `lambda_c = bits` per revealed coefficient (Cheetah's and SPU's
    /// setting); the session still ends at `max_revealed`, and has
    /// `bits - log2 max_revealed` bits per session.
    PerCoefficient {
        /// Bits per revealed coefficient.
        bits: u32,
        /// The session's cap on revealed coefficients.
        max_revealed: u64,
    },
}

impl Default for StatSecTarget {
    /// 40 bits per coefficient at the default cap (the parameters Cheetah and
    /// SPU use; `fusion serve` defaults to 40 bits per session instead).
    fn default() -> Self {
        StatSecTarget::PerCoefficient {
            bits: PER_COEFFICIENT_BASELINE_BITS,
            max_revealed: DEFAULT_MAX_REVEALED,
        }
    }
}

impl StatSecTarget {
    /// [`DEFAULT_SESSION_BITS`] per session at the default cap.
    pub fn default_per_session() -> Self {
        StatSecTarget::PerSession {
            bits: DEFAULT_SESSION_BITS,
            max_revealed: DEFAULT_MAX_REVEALED,
        }
    }

    /// The per-coefficient parameter and the cap (an error names the range
    /// that is left).
    pub fn flooding(&self) -> SecureResult<SessionFlooding> {
        let f = match *self {
            StatSecTarget::PerSession { bits, max_revealed } => {
                SessionFlooding::for_session(bits, max_revealed)
            }
            StatSecTarget::PerCoefficient { bits, max_revealed } => {
                let f = SessionFlooding {
                    per_coefficient_bits: bits,
                    max_revealed,
                };
                f.validate().map(|()| f)
            }
        };
        f.map_err(|e| SecureError::Config(format!("statistical security: {e}")))
    }
}

impl fmt::Display for StatSecTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatSecTarget::PerSession { bits, max_revealed } => write!(
                f,
                "{bits} bits per session (at most {max_revealed} revealed coefficients)"
            ),
            StatSecTarget::PerCoefficient { bits, max_revealed } => write!(
                f,
                "{bits} bits per revealed coefficient (at most {max_revealed} per session)"
            ),
        }
    }
}

/// One line describing an announced setting, for reports.
pub fn describe(f: &SessionFlooding) -> String {
    format!(
        "{:.1} bits per session ({} bits per revealed HE coefficient, at most {} revealed \
         coefficients per session)",
        f.per_session_bits(),
        f.per_coefficient_bits,
        f.max_revealed
    )
}

/// Checks a server's announced setting (the client, on the hello): ranges
/// ([`SecureError::Malformed`]), then the client's minimum per session
/// ([`SecureError::Mismatch`]). `None` (no flooded coefficients) passes.
pub fn check_announced(
    announced: Option<&SessionFlooding>,
    min_bits: Option<u32>,
) -> SecureResult<()> {
    let Some(f) = announced else {
        return Ok(());
    };
    f.validate()
        .map_err(|e| SecureError::Malformed(format!("announced statistical security: {e}")))?;
    if let Some(min) = min_bits
        && f.per_session_bits() < min as f64
    {
        return Err(SecureError::Mismatch(format!(
            "the server's HE flooding gives {}, we require at least {min} bits per session",
            describe(f)
        )));
    }
    Ok(())
}

/// A session's count of revealed flooded coefficients against its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevealBudget {
    cap: u64,
    revealed: u64,
}

impl RevealBudget {
    /// An empty count for a session with `flooding`'s cap.
    pub fn new(flooding: &SessionFlooding) -> Self {
        RevealBudget {
            cap: flooding.max_revealed,
            revealed: 0,
        }
    }

    /// Coefficients revealed so far.
    pub fn revealed(&self) -> u64 {
        self.revealed
    }

    /// The cap.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Checks that `more` coefficients still fit under the cap, without
    /// counting them ([`SecureError::RevealCapReached`] otherwise).
    pub fn check(&self, more: u64) -> SecureResult<()> {
        match self.revealed.checked_add(more) {
            Some(total) if total <= self.cap => Ok(()),
            _ => Err(SecureError::RevealCapReached {
                cap: self.cap,
                revealed: self.revealed,
                needed: more,
            }),
        }
    }

    /// Counts `more` revealed coefficients, or refuses like
    /// [`RevealBudget::check`] (and counts nothing).
    pub fn charge(&mut self, more: u64) -> SecureResult<()> {
        self.check(more)?;
        self.revealed += more;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_the_call_that_would_pass_the_cap_and_counts_nothing_for_it() {
        let f = SessionFlooding {
            per_coefficient_bits: 40,
            max_revealed: 10,
        };
        let mut b = RevealBudget::new(&f);
        b.charge(6).unwrap();
        b.charge(4).unwrap();
        assert_eq!(b.revealed(), 10);
        match b.charge(1) {
            Err(SecureError::RevealCapReached {
                cap,
                revealed,
                needed,
            }) => assert_eq!((cap, revealed, needed), (10, 10, 1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.revealed(), 10);
        assert!(b.check(u64::MAX).is_err());
        assert!(b.check(0).is_ok());
    }

    #[test]
    fn targets_map_to_per_coefficient_bits_and_caps() {
        let s = StatSecTarget::default_per_session().flooding().unwrap();
        assert_eq!((s.per_coefficient_bits, s.max_revealed), (70, 1 << 30));
        let c = StatSecTarget::default().flooding().unwrap();
        assert_eq!(c.per_coefficient_bits, 40);
        assert_eq!(c.per_session_bits(), 10.0);
        let bad = StatSecTarget::PerCoefficient {
            bits: 200,
            max_revealed: 1,
        };
        assert!(matches!(bad.flooding(), Err(SecureError::Config(_))));
    }
}
