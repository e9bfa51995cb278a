//! [`Fingerprint`]: the SHA-256 fingerprint of a certificate, the identity a
//! client pins ([`crate::tls::ServerPin`]). Its own module so that the error
//! type can name it without depending on the TLS code.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// SHA-256 fingerprint of a DER-encoded certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of the given DER bytes.
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Lowercase hex with colons between bytes (`ab:cd:...`), as some tools
    /// print it. [`FromStr`] accepts both this and plain hex.
    pub fn to_colon_hex(&self) -> String {
        self.0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl fmt::Display for Fingerprint {
    /// Plain lowercase hex, 64 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A string that is not a SHA-256 fingerprint (converts into
/// [`crate::NetError::InvalidParameter`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate fingerprint must be 64 hex digits (SHA-256), got {input:?}: {reason}")]
pub struct FingerprintParseError {
    /// The input, trimmed.
    pub input: String,
    /// Why it does not parse.
    pub reason: String,
}

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    /// Parse 64 hex digits, optionally separated by `:`, case-insensitive, with
    /// an optional `sha256:` prefix.
    fn from_str(s: &str) -> Result<Self, FingerprintParseError> {
        let s = s.trim();
        let s = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .unwrap_or(s);
        let digits: String = s.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out).map_err(|e| FingerprintParseError {
            input: s.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Fingerprint(out))
    }
}
