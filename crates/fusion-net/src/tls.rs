//! TLS identities and certificate pinning.
//!
//! # Design
//!
//! The server authenticates with a self-signed certificate made by
//! `fusion keygen` ([`Identity::generate`] + [`Identity::write_pem_files`]).
//! There is no certificate authority: the client **pins** the server's
//! certificate, given either as the PEM file the server operator handed out or
//! as the hex SHA-256 fingerprint of its DER encoding (what `fusion keygen`
//! prints). Both forms reduce to one [`Fingerprint`].
//!
//! QUIC's TLS 1.3 handshake runs through rustls (s2n-quic's
//! `provider-tls-rustls`; packet protection stays in s2n-quic, both on
//! aws-lc). The client uses a custom rustls `ServerCertVerifier` that
//!
//! 1. accepts the server's end-entity certificate only if the SHA-256 of its
//!    DER bytes equals the pin (no chain building, no name or date checks:
//!    the pin *is* the identity, so a name mismatch or an expired date of a
//!    self-signed certificate carries no information), and
//! 2. checks the handshake signature (`CertificateVerify`) with that
//!    certificate's public key through rustls' standard WebPKI signature
//!    verification, so the server must hold the private key.
//!
//! On mismatch the verifier records the presented fingerprint and the
//! handshake fails with a TLS alert before any application data is
//! exchanged; [`crate::connect`] turns that into [`NetError::PinMismatch`].
//!
//! Why not s2n-tls (s2n-quic's default TLS)? Trusting exactly the pinned
//! certificate as the only root would cover file pinning, but fingerprint-only
//! pinning needs a custom validation hook, which s2n-tls exposes only behind
//! its `unstable-crl` feature and only *after* its own X.509 validation. The
//! rustls verifier handles both pin forms with one small, stable mechanism.
//!
//! Session resumption and 0-RTT are disabled on both sides, so every
//! connection re-authenticates the server against the pin.
//!
//! # Client authentication (mutual TLS)
//!
//! Clients are authenticated by certificates signed by a client CA:
//! [`Identity::generate_client_ca`] makes the CA (`fusion keygen --ca`),
//! [`Identity::issue_client`] a client certificate with the client's name as
//! its subject common name and the `clientAuth` extended key usage
//! (`fusion keygen --client NAME --ca DIR`). A server given [`ClientRoots`]
//! ([`crate::Server::bind_with_client_auth`]) requires a client certificate
//! that chains to one of them (rustls' WebPKI client verifier: signature,
//! validity dates, key usage) in the TLS handshake; a client without one, or
//! with one from another CA, fails the handshake and never reaches
//! [`crate::Server::accept`], so no session, no protocol work. The accepted
//! client's identity ([`PeerIdentity`]: the SHA-256 of its certificate and
//! its common name) is available on the session
//! ([`crate::Session::peer_identity`]). Without client roots the server
//! accepts any client (no client certificate is asked for).
//!
//! Key generation uses rcgen on aws-lc-rs (ECDSA P-256); its randomness comes
//! from aws-lc's OS-seeded DRBG (rcgen does not accept an external RNG).

use std::{
    fmt,
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
};
use zeroize::Zeroizing;

use crate::error::{NetError, Result};
pub use crate::fingerprint::Fingerprint;

/// ALPN protocol identifier of Fusion's two-party connections.
pub const ALPN: &[u8] = b"fusion/1";

/// Server name the client sends (SNI). It is not checked: the pin is the
/// identity. `fusion keygen` includes it in the certificate's names anyway.
pub const SERVER_NAME: &str = "fusion-server";

/// File name of the certificate written by [`Identity::write_pem_files`].
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key written by [`Identity::write_pem_files`].
pub const KEY_FILE: &str = "key.pem";
/// Subject common name of a client CA made by [`Identity::generate_client_ca`]
/// (client certificates name it as their issuer).
pub const CLIENT_CA_NAME: &str = "Fusion client CA";
/// Longest client name accepted by [`Identity::issue_client`], bytes.
pub const MAX_CLIENT_NAME: usize = 64;

/// A server's TLS identity: a certificate and its private key.
///
/// The key bytes are zeroized when the identity is dropped.
pub struct Identity {
    cert_der: CertificateDer<'static>,
    key_der: Zeroizing<Vec<u8>>,
    key_kind: KeyKind,
}

#[derive(Clone, Copy, Debug)]
enum KeyKind {
    Pkcs8,
    Sec1,
    Pkcs1,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Generate a fresh self-signed certificate (ECDSA P-256) valid for the
    /// given DNS names (plus [`SERVER_NAME`]).
    pub fn generate(names: &[String]) -> Result<Self> {
        let mut all: Vec<String> = vec![SERVER_NAME.to_string()];
        for n in names {
            if !all.contains(n) {
                all.push(n.clone());
            }
        }
        let mut params = rcgen::CertificateParams::new(all).map_err(|e| NetError::TlsMaterial {
            path: None,
            reason: format!("invalid certificate names: {e}"),
        })?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Fusion server");
        let key = rcgen::KeyPair::generate().map_err(|e| NetError::TlsMaterial {
            path: None,
            reason: format!("key generation failed: {e}"),
        })?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| NetError::TlsMaterial {
                path: None,
                reason: format!("self-signing failed: {e}"),
            })?;
        let identity = Identity {
            cert_der: cert.der().clone(),
            key_der: Zeroizing::new(key.serialize_der()),
            key_kind: KeyKind::Pkcs8,
        };
        identity.check()?;
        Ok(identity)
    }

    /// Generate a client CA (`fusion keygen --ca`): a self-signed CA
    /// certificate (ECDSA P-256, subject CN [`CLIENT_CA_NAME`], may sign end
    /// entities only) and its key. Servers trust it with
    /// [`ClientRoots::from_cert_file`]; [`Identity::issue_client`] signs
    /// client certificates with it.
    pub fn generate_client_ca() -> Result<Self> {
        let key = rcgen::KeyPair::generate().map_err(|e| NetError::TlsMaterial {
            path: None,
            reason: format!("key generation failed: {e}"),
        })?;
        let cert = ca_params()
            .self_signed(&key)
            .map_err(|e| NetError::TlsMaterial {
                path: None,
                reason: format!("self-signing the CA failed: {e}"),
            })?;
        let identity = Identity {
            cert_der: cert.der().clone(),
            key_der: Zeroizing::new(key.serialize_der()),
            key_kind: KeyKind::Pkcs8,
        };
        identity.check()?;
        Ok(identity)
    }

    /// Issue a client certificate (`fusion keygen --client NAME --ca DIR`):
    /// ECDSA P-256, subject CN `name` (1 to [`MAX_CLIENT_NAME`] bytes of
    /// ASCII letters, digits, `.`, `_`, `-`, `@`), extended key usage
    /// `clientAuth`, signed by this identity, which must be a client CA made
    /// by [`Identity::generate_client_ca`] (its subject is rebuilt from
    /// [`CLIENT_CA_NAME`]; a certificate whose subject differs is refused).
    pub fn issue_client(&self, name: &str) -> Result<Self> {
        check_client_name(name)?;
        let ca_key =
            rcgen::KeyPair::try_from(&self.private_key()).map_err(|e| NetError::TlsMaterial {
                path: None,
                reason: format!("CA key unusable: {e}"),
            })?;
        let issuer_params = ca_params();
        if common_name(&self.cert_der).as_deref() != Some(CLIENT_CA_NAME) {
            return Err(NetError::TlsMaterial {
                path: None,
                reason: format!(
                    "not a client CA made by `fusion keygen --ca` (its subject is not CN={CLIENT_CA_NAME})"
                ),
            });
        }
        let issuer = rcgen::Issuer::new(issuer_params, ca_key);
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().map_err(|e| NetError::TlsMaterial {
            path: None,
            reason: format!("key generation failed: {e}"),
        })?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| NetError::TlsMaterial {
                path: None,
                reason: format!("signing the client certificate failed: {e}"),
            })?;
        let identity = Identity {
            cert_der: cert.der().clone(),
            key_der: Zeroizing::new(key.serialize_der()),
            key_kind: KeyKind::Pkcs8,
        };
        identity.check()?;
        Ok(identity)
    }

    /// The certificate's subject common name, if it has one.
    pub fn common_name(&self) -> Option<String> {
        common_name(&self.cert_der)
    }

    /// Parse a PEM certificate (the first `CERTIFICATE` block is used) and a
    /// PEM private key (PKCS#8, SEC1 or PKCS#1), checking that they match.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        Self::from_pem_inner(cert_pem, key_pem, None, None)
    }

    /// Read an identity from PEM files (as written by `fusion keygen`).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self> {
        let cert_pem = fs::read(cert).map_err(|e| NetError::TlsMaterial {
            path: Some(cert.to_path_buf()),
            reason: e.to_string(),
        })?;
        let key_pem = Zeroizing::new(fs::read(key).map_err(|e| NetError::TlsMaterial {
            path: Some(key.to_path_buf()),
            reason: e.to_string(),
        })?);
        Self::from_pem_inner(&cert_pem, &key_pem, Some(cert), Some(key))
    }

    fn from_pem_inner(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_path: Option<&Path>,
        key_path: Option<&Path>,
    ) -> Result<Self> {
        let cert_der = first_cert_der(cert_pem).map_err(|reason| NetError::TlsMaterial {
            path: cert_path.map(Path::to_path_buf),
            reason,
        })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| NetError::TlsMaterial {
            path: key_path.map(Path::to_path_buf),
            reason: format!("no private key found in PEM: {e}"),
        })?;
        let (key_kind, key_der) = match &key {
            PrivateKeyDer::Pkcs8(k) => (KeyKind::Pkcs8, k.secret_pkcs8_der().to_vec()),
            PrivateKeyDer::Sec1(k) => (KeyKind::Sec1, k.secret_sec1_der().to_vec()),
            PrivateKeyDer::Pkcs1(k) => (KeyKind::Pkcs1, k.secret_pkcs1_der().to_vec()),
            _ => {
                return Err(NetError::TlsMaterial {
                    path: key_path.map(Path::to_path_buf),
                    reason: "unsupported private key format".into(),
                });
            }
        };
        drop(key);
        let identity = Identity {
            cert_der,
            key_der: Zeroizing::new(key_der),
            key_kind,
        };
        identity.check().map_err(|e| match e {
            NetError::TlsMaterial { reason, .. } => NetError::TlsMaterial {
                path: key_path.map(Path::to_path_buf),
                reason,
            },
            other => other,
        })?;
        Ok(identity)
    }

    /// Check that the key is usable and matches the certificate.
    fn check(&self) -> Result<()> {
        let provider = quic_crypto_provider();
        let ck = rustls::sign::CertifiedKey::from_der(
            vec![self.cert_der.clone()],
            self.private_key(),
            &provider,
        )
        .map_err(|e| NetError::TlsMaterial {
            path: None,
            reason: format!("private key unusable or does not match the certificate: {e}"),
        })?;
        ck.keys_match().map_err(|e| NetError::TlsMaterial {
            path: None,
            reason: format!("private key does not match the certificate: {e}"),
        })
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        let bytes = self.key_der.to_vec();
        match self.key_kind {
            KeyKind::Pkcs8 => PrivateKeyDer::Pkcs8(bytes.into()),
            KeyKind::Sec1 => PrivateKeyDer::Sec1(bytes.into()),
            KeyKind::Pkcs1 => PrivateKeyDer::Pkcs1(bytes.into()),
        }
    }

    /// SHA-256 fingerprint of the certificate (what clients pin).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.cert_der)
    }

    /// The certificate as PEM (public; hand it to clients).
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// The certificate's DER bytes.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The pin a client needs to connect to a server with this identity.
    pub fn pin(&self) -> ServerPin {
        ServerPin(self.fingerprint())
    }

    /// Write `cert.pem` and `key.pem` into `dir` (created if missing). The key
    /// file is created with mode 0600 on Unix; existing files are not
    /// overwritten.
    pub fn write_pem_files(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        self.write_pem_files_named(dir, CERT_FILE, KEY_FILE)
    }

    /// Like [`Identity::write_pem_files`] with other file names (e.g. a
    /// client's `NAME.pem` and `NAME-key.pem`).
    pub fn write_pem_files_named(
        &self,
        dir: &Path,
        cert_file: &str,
        key_file: &str,
    ) -> Result<(PathBuf, PathBuf)> {
        fs::create_dir_all(dir)
            .map_err(|e| NetError::io(format!("creating {}", dir.display()), e))?;
        let cert_path = dir.join(cert_file);
        let key_path = dir.join(key_file);
        for p in [&cert_path, &key_path] {
            if p.exists() {
                return Err(NetError::TlsMaterial {
                    path: Some(p.clone()),
                    reason: "file exists; refusing to overwrite".into(),
                });
            }
        }
        let key_label = match self.key_kind {
            KeyKind::Pkcs8 => "PRIVATE KEY",
            KeyKind::Sec1 => "EC PRIVATE KEY",
            KeyKind::Pkcs1 => "RSA PRIVATE KEY",
        };
        let key_pem = Zeroizing::new(pem_encode(key_label, &self.key_der));
        write_new_file(&key_path, key_pem.as_bytes(), true)?;
        write_new_file(&cert_path, self.cert_pem().as_bytes(), false)?;
        Ok((cert_path, key_path))
    }

    /// The rustls server configuration for QUIC with this identity.
    /// With `clients`, a client must present a certificate chaining to one
    /// of its roots (see the module docs).
    pub(crate) fn server_tls(
        &self,
        clients: Option<&ClientRoots>,
    ) -> Result<s2n_quic::provider::tls::rustls::Server> {
        let provider = Arc::new(quic_crypto_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::Config(e.to_string()))?;
        let builder = match clients {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.roots.clone(),
                    provider,
                )
                .build()
                .map_err(|e| NetError::Config(format!("client certificate verifier: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(vec![self.cert_der.clone()], self.private_key())
            .map_err(|e| NetError::Config(format!("server certificate: {e}")))?;
        config.ignore_client_order = true;
        config.max_fragment_size = None;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.send_tls13_tickets = 0;
        config.max_early_data_size = 0;
        Ok(s2n_quic::provider::tls::rustls::Server::from(config))
    }
}

/// What the client requires of the server's certificate: its SHA-256
/// fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerPin(pub Fingerprint);

impl ServerPin {
    /// Pin the certificate in a PEM file (the first `CERTIFICATE` block).
    pub fn from_cert_file(path: &Path) -> Result<Self> {
        let pem = fs::read(path).map_err(|e| NetError::TlsMaterial {
            path: Some(path.to_path_buf()),
            reason: e.to_string(),
        })?;
        let der = first_cert_der(&pem).map_err(|reason| NetError::TlsMaterial {
            path: Some(path.to_path_buf()),
            reason,
        })?;
        Ok(ServerPin(Fingerprint::of_der(&der)))
    }

    /// Pin the certificate in PEM text.
    pub fn from_cert_pem(pem: &[u8]) -> Result<Self> {
        let der =
            first_cert_der(pem).map_err(|reason| NetError::TlsMaterial { path: None, reason })?;
        Ok(ServerPin(Fingerprint::of_der(&der)))
    }

    /// Pin a hex SHA-256 fingerprint (see [`Fingerprint`]'s `FromStr`).
    pub fn from_fingerprint_hex(s: &str) -> Result<Self> {
        Ok(ServerPin(s.parse()?))
    }

    /// Interpret a command-line argument: an existing file is a PEM
    /// certificate, anything else must be a hex fingerprint.
    pub fn from_arg(arg: &str) -> Result<Self> {
        let p = Path::new(arg);
        if p.is_file() {
            Self::from_cert_file(p)
        } else {
            Self::from_fingerprint_hex(arg)
        }
    }

    /// The pinned fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.0
    }

    /// Build the client TLS provider; the returned slot records the
    /// fingerprint the server presented if it did not match.
    pub(crate) fn client_tls(
        &self,
        client: Option<&Identity>,
    ) -> Result<(s2n_quic::provider::tls::rustls::Client, MismatchSlot)> {
        let provider = Arc::new(quic_crypto_provider());
        let slot: MismatchSlot = Arc::new(Mutex::new(None));
        let verifier = PinVerifier {
            pin: self.0,
            algorithms: provider.signature_verification_algorithms,
            mismatch: slot.clone(),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match client {
            None => config.with_no_client_auth(),
            Some(id) => config
                .with_client_auth_cert(vec![id.cert_der.clone()], id.private_key())
                .map_err(|e| NetError::Config(format!("client certificate: {e}")))?,
        };
        config.max_fragment_size = None;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        config.enable_early_data = false;
        Ok((s2n_quic::provider::tls::rustls::Client::from(config), slot))
    }
}

/// The client CAs a server trusts (`fusion serve --client-ca FILE`).
#[derive(Clone)]
pub struct ClientRoots {
    roots: Arc<rustls::RootCertStore>,
    fingerprints: Vec<Fingerprint>,
}

impl fmt::Debug for ClientRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRoots")
            .field("fingerprints", &self.fingerprints)
            .finish()
    }
}

impl ClientRoots {
    /// Trust the CA certificates of a PEM file (every `CERTIFICATE` block;
    /// at least one).
    pub fn from_cert_file(path: &Path) -> Result<Self> {
        let pem = fs::read(path).map_err(|e| NetError::TlsMaterial {
            path: Some(path.to_path_buf()),
            reason: e.to_string(),
        })?;
        Self::from_pem(&pem).map_err(|e| match e {
            NetError::TlsMaterial { reason, .. } => NetError::TlsMaterial {
                path: Some(path.to_path_buf()),
                reason,
            },
            other => other,
        })
    }

    /// Trust the CA certificates in PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let mut ders = Vec::new();
        for c in CertificateDer::pem_slice_iter(pem) {
            ders.push(c.map_err(|e| NetError::TlsMaterial {
                path: None,
                reason: format!("invalid PEM certificate: {e}"),
            })?);
        }
        Self::from_ders(ders)
    }

    /// Trust a CA identity's certificate (e.g. one made in memory by
    /// `fusion demo`).
    pub fn from_identity(ca: &Identity) -> Result<Self> {
        Self::from_ders(vec![ca.cert_der.clone()])
    }

    fn from_ders(ders: Vec<CertificateDer<'static>>) -> Result<Self> {
        if ders.is_empty() {
            return Err(NetError::TlsMaterial {
                path: None,
                reason: "no CERTIFICATE block found in PEM".into(),
            });
        }
        let mut roots = rustls::RootCertStore::empty();
        let mut fingerprints = Vec::with_capacity(ders.len());
        for der in ders {
            fingerprints.push(Fingerprint::of_der(&der));
            roots.add(der).map_err(|e| NetError::TlsMaterial {
                path: None,
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        Ok(ClientRoots {
            roots: Arc::new(roots),
            fingerprints,
        })
    }

    /// SHA-256 fingerprints of the trusted CA certificates.
    pub fn fingerprints(&self) -> &[Fingerprint] {
        &self.fingerprints
    }
}

/// Who the peer is, from the certificate it presented in the handshake (for
/// a server with client authentication: a certificate its client CA signed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// SHA-256 of the peer's certificate (DER).
    pub fingerprint: Fingerprint,
    /// The certificate's subject common name (the client's name for
    /// certificates from `fusion keygen --client NAME`), if it has one made
    /// of printable ASCII.
    pub common_name: Option<String>,
}

impl PeerIdentity {
    /// The identity of a certificate.
    pub fn of_der(der: &[u8]) -> Self {
        PeerIdentity {
            fingerprint: Fingerprint::of_der(der),
            common_name: common_name(der),
        }
    }

    /// A short name for logs and quotas: the common name, or else the
    /// fingerprint's hex.
    pub fn name(&self) -> String {
        self.common_name
            .clone()
            .unwrap_or_else(|| self.fingerprint.to_string())
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.common_name {
            Some(cn) => write!(f, "{cn} (sha256 {})", self.fingerprint),
            None => write!(f, "sha256 {}", self.fingerprint),
        }
    }
}

/// The parameters of a client CA (the same every time, so that
/// [`Identity::issue_client`] names the issuer exactly as the CA's subject).
fn ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CLIENT_CA_NAME);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn check_client_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLIENT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidParameter(format!(
            "client name {name:?}: 1 to {MAX_CLIENT_NAME} ASCII letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// The subject common name of a DER certificate: the last CN attribute of
/// the subject, if it is a UTF8String, PrintableString or IA5String of
/// printable ASCII (at most 256 bytes). Bounded parsing; `None` on anything
/// unexpected.
fn common_name(cert: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate, ... }
    let (tag, cert_body, _) = der_next(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, mut tbs, _) = der_next(cert_body)?;
    if tag != 0x30 {
        return None;
    }
    // [0] version (optional), serial, signature, issuer, validity, subject.
    let (tag, _, rest) = der_next(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..4 {
        let (_, _, rest) = der_next(tbs)?;
        tbs = rest;
    }
    let (tag, mut subject, _) = der_next(tbs)?;
    if tag != 0x30 {
        return None;
    }
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    let mut found = None;
    while !subject.is_empty() {
        // RelativeDistinguishedName ::= SET OF AttributeTypeAndValue
        let (tag, mut set, rest) = der_next(subject)?;
        subject = rest;
        if tag != 0x31 {
            return None;
        }
        while !set.is_empty() {
            let (tag, atv, rest) = der_next(set)?;
            set = rest;
            if tag != 0x30 {
                return None;
            }
            let (tag, oid, value) = der_next(atv)?;
            if tag == 0x06 && oid == CN_OID {
                let (vtag, v, _) = der_next(value)?;
                if matches!(vtag, 0x0c | 0x13 | 0x16)
                    && v.len() <= 256
                    && v.iter().all(|b| (0x20..0x7f).contains(b))
                {
                    found = Some(String::from_utf8_lossy(v).into_owned());
                }
            }
        }
    }
    found
}

/// One DER element: `(tag, contents, rest)`. Single-byte tags and definite
/// lengths up to 4 length bytes only.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Shared slot where the verifier leaves the fingerprint of a rejected
/// certificate.
pub(crate) type MismatchSlot = Arc<Mutex<Option<Fingerprint>>>;

/// rustls verifier accepting exactly one certificate (see module docs).
#[derive(Debug)]
struct PinVerifier {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: MismatchSlot,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity);
        // The certificate is public: a plain comparison leaks nothing.
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            if let Ok(mut slot) = self.mismatch.lock() {
                *slot = Some(presented);
            }
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // QUIC is TLS 1.3 only (RFC 9001 section 4.2); the config offers nothing else.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// aws-lc-rs crypto provider restricted to the TLS 1.3 cipher suites that
/// s2n-quic's packet protection implements (AES-128-GCM, AES-256-GCM,
/// ChaCha20-Poly1305), as s2n-quic's own rustls builder does.
fn quic_crypto_provider() -> CryptoProvider {
    let base = aws_lc_rs::default_provider();
    CryptoProvider {
        cipher_suites: vec![
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..base
    }
}

fn first_cert_der(pem: &[u8]) -> std::result::Result<CertificateDer<'static>, String> {
    let mut iter = CertificateDer::pem_slice_iter(pem);
    match iter.next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(e)) => Err(format!("invalid PEM certificate: {e}")),
        None => Err("no CERTIFICATE block found in PEM".into()),
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    // Base64 (RFC 4648, standard alphabet, padded), 64 characters per line.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        b64.push(ALPHABET[(n >> 18) as usize & 63]);
        b64.push(ALPHABET[(n >> 12) as usize & 63]);
        b64.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        b64.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63]
        } else {
            b'='
        });
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        // ALPHABET and '=' are ASCII.
        out.extend(line.iter().map(|&c| char::from(c)));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    b64.fill(0);
    out
}

fn write_new_file(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if secret {
            opts.mode(0o600);
        }
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f: File = opts
        .open(path)
        .map_err(|e| NetError::io(format!("creating {}", path.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| NetError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_parses_plain_colon_and_prefixed_hex() {
        let fp = Fingerprint([0xab; 32]);
        assert_eq!(fp.to_string().parse::<Fingerprint>().ok(), Some(fp));
        assert_eq!(fp.to_colon_hex().parse::<Fingerprint>().ok(), Some(fp));
        assert_eq!(
            format!("sha256:{}", fp.to_string().to_uppercase())
                .parse::<Fingerprint>()
                .ok(),
            Some(fp)
        );
        assert!("abcd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn generated_identity_round_trips_through_pem_files() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| NetError::io("tempdir", e))?;
        let id = Identity::generate(&["example.org".into()])?;
        let (cert, key) = id.write_pem_files(dir.path())?;
        let back = Identity::from_pem_files(&cert, &key)?;
        assert_eq!(back.fingerprint(), id.fingerprint());
        assert_eq!(ServerPin::from_cert_file(&cert)?, id.pin());
        assert_eq!(
            ServerPin::from_arg(cert.to_str().unwrap_or_default())?,
            id.pin()
        );
        assert_eq!(
            ServerPin::from_arg(&id.fingerprint().to_string())?,
            id.pin()
        );
        // Refuses to overwrite.
        assert!(id.write_pem_files(dir.path()).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key)
                .map_err(|e| NetError::io("stat", e))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }

    #[test]
    fn client_certificates_carry_their_name_and_chain_to_the_client_ca() -> Result<()> {
        let ca = Identity::generate_client_ca()?;
        assert_eq!(ca.common_name().as_deref(), Some(CLIENT_CA_NAME));
        let alice = ca.issue_client("alice.example")?;
        assert_eq!(alice.common_name().as_deref(), Some("alice.example"));
        let peer = PeerIdentity::of_der(alice.cert_der());
        assert_eq!(peer.name(), "alice.example");
        assert_eq!(peer.fingerprint, alice.fingerprint());
        // The server's verifier accepts alice under the CA, not under another CA.
        let now = UnixTime::now();
        let provider = Arc::new(quic_crypto_provider());
        let verify = |roots: &ClientRoots| {
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.roots.clone(),
                provider.clone(),
            )
            .build()
            .map_err(|e| NetError::Config(e.to_string()))
            .map(|v| {
                v.verify_client_cert(&CertificateDer::from(alice.cert_der().to_vec()), &[], now)
                    .is_ok()
            })
        };
        assert!(verify(&ClientRoots::from_identity(&ca)?)?);
        let other = Identity::generate_client_ca()?;
        assert!(!verify(&ClientRoots::from_identity(&other)?)?);
        // A server certificate is not a client CA.
        let server = Identity::generate(&[])?;
        assert!(matches!(
            server.issue_client("bob"),
            Err(NetError::TlsMaterial { .. })
        ));
        // Names outside the alphabet are refused.
        for bad in ["", "a b", "x/y", &"n".repeat(MAX_CLIENT_NAME + 1)] {
            assert!(matches!(
                ca.issue_client(bad),
                Err(NetError::InvalidParameter(_))
            ));
        }
        Ok(())
    }

    #[test]
    fn common_name_parsing_is_bounded_on_malformed_input() {
        let id = Identity::generate(&[]).map(|i| i.cert_der().to_vec());
        let der = id.unwrap_or_default();
        assert_eq!(common_name(&der).as_deref(), Some("Fusion server"));
        for cut in 0..der.len() {
            // Truncations never panic; most are refused.
            let _ = common_name(&der[..cut]);
        }
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(common_name(&[]), None);
    }

    #[test]
    fn mismatched_key_and_certificate_are_rejected() -> Result<()> {
        let a = Identity::generate(&[])?;
        let b = Identity::generate(&[])?;
        let key_b = pem_encode("PRIVATE KEY", &b.key_der);
        let err = Identity::from_pem(a.cert_pem().as_bytes(), key_b.as_bytes());
        assert!(matches!(err, Err(NetError::TlsMaterial { .. })), "{err:?}");
        Ok(())
    }

    #[test]
    fn pem_encoding_matches_the_pem_parser() -> Result<()> {
        let id = Identity::generate(&[])?;
        let pem = id.cert_pem();
        let der = first_cert_der(pem.as_bytes()).map_err(NetError::Config)?;
        assert_eq!(der.as_ref(), id.cert_der());
        // Lengths 0..=2 mod 3 exercise the padding.
        for n in 0..6usize {
            let data: Vec<u8> = (0..n as u8).collect();
            let p = pem_encode("CERTIFICATE", &data);
            if n > 0 {
                let d = first_cert_der(p.as_bytes()).map_err(NetError::Config)?;
                assert_eq!(d.as_ref(), &data[..]);
            }
        }
        Ok(())
    }
}
