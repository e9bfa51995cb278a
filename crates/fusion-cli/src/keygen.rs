//! `fusion keygen`: make TLS identities as PEM files (keys with mode 0600;
//! existing files are never overwritten).
//!
//! * `fusion keygen --out DIR`: the server's identity, a fresh self-signed
//!   certificate (ECDSA P-256) and its private key, `cert.pem` and `key.pem`;
//!   prints the certificate's SHA-256 fingerprint. Clients pin the server with
//!   either the certificate file (`--server-cert DIR/cert.pem`) or the
//!   fingerprint; see `fusion_net::tls`.
//! * `fusion keygen --ca --out DIR`: a client CA, `ca.pem` and `ca-key.pem`;
//!   `fusion serve --client-ca DIR/ca.pem` then accepts only clients with a
//!   certificate it signed (mutual TLS).
//! * `fusion keygen --client NAME --ca DIR --out DIR2`: a client certificate
//!   for NAME signed by the CA in DIR, `NAME.pem` and `NAME-key.pem` in DIR2,
//!   for `fusion query --client-cert --client-key`.

use std::{path::PathBuf, process::ExitCode};

use fusion_net::Identity;

/// File name of a client CA's certificate.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of a client CA's private key.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// Arguments of `fusion keygen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory for the files (created if missing; existing files are never
    /// overwritten): cert.pem and key.pem (server), ca.pem and ca-key.pem
    /// (--ca), NAME.pem and NAME-key.pem (--client NAME).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Without a value: make a client CA (ca.pem, ca-key.pem) instead of a
    /// server identity. With --client: the directory of the client CA
    /// (ca.pem and ca-key.pem from `fusion keygen --ca`) that signs the
    /// client certificate.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    ca: Option<Option<PathBuf>>,
    /// Issue a client certificate for NAME (its subject common name, what
    /// the server logs and counts quotas by; 1 to 64 ASCII letters, digits,
    /// '.', '_', '-', '@'), signed by the CA of --ca DIR.
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// Extra DNS names for the server certificate (informational: clients
    /// pin the certificate itself, not a name).
    #[arg(long = "name", value_name = "DNS")]
    names: Vec<String>,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Run `fusion keygen`.
pub fn run(args: Args) -> ExitCode {
    let fail = |code: u8, e: &dyn std::fmt::Display| {
        eprintln!("fusion keygen: {e}");
        ExitCode::from(code)
    };
    let usage = crate::common::EXIT_USAGE;
    let failure = crate::common::EXIT_FAILURE;
    match (&args.client, &args.ca) {
        (None, None) => {}
        (None, Some(None)) => return make_ca(&args),
        (None, Some(Some(_))) => {
            return fail(
                usage,
                &"--ca DIR names the CA that signs a --client certificate; \
                 to make a CA, give --ca without a value",
            );
        }
        (Some(_), None | Some(None)) => {
            return fail(
                usage,
                &"--client NAME needs --ca DIR (the client CA from `fusion keygen --ca`)",
            );
        }
        (Some(name), Some(Some(dir))) => return make_client(&args, name, dir),
    }
    let identity = match Identity::generate(&args.names) {
        Ok(i) => i,
        Err(e) => return fail(failure, &e),
    };
    let (cert, key) = match identity.write_pem_files(&args.out) {
        Ok(p) => p,
        Err(e) => return fail(failure, &e),
    };
    let fp = identity.fingerprint();
    if args.json {
        let v = serde_json::json!({
            "cert": cert,
            "key": key,
            "sha256": fp.to_string(),
        });
        println!("{v}");
    } else {
        println!("certificate: {}", cert.display());
        println!("private key: {} (keep it secret)", key.display());
        println!("SHA-256 fingerprint: {fp}");
        println!(
            "clients pin this server with --server-cert {} or the fingerprint above",
            cert.display()
        );
    }
    ExitCode::SUCCESS
}

fn make_ca(args: &Args) -> ExitCode {
    let written = Identity::generate_client_ca().and_then(|ca| {
        ca.write_pem_files_named(&args.out, CA_CERT_FILE, CA_KEY_FILE)
            .map(|p| (p, ca.fingerprint()))
    });
    let ((cert, key), fp) = match written {
        Ok(w) => w,
        Err(e) => {
            eprintln!("fusion keygen: {e}");
            return ExitCode::from(crate::common::EXIT_FAILURE);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"ca_cert": cert, "ca_key": key, "sha256": fp.to_string()})
        );
    } else {
        println!("client CA certificate: {}", cert.display());
        println!(
            "client CA private key: {} (keep it secret; it signs client certificates)",
            key.display()
        );
        println!(
            "servers accept its clients with --client-ca {}; issue a client certificate with \
             fusion keygen --client NAME --ca {} --out DIR",
            cert.display(),
            args.out.display()
        );
    }
    ExitCode::SUCCESS
}

fn make_client(args: &Args, name: &str, ca_dir: &std::path::Path) -> ExitCode {
    let ca = match Identity::from_pem_files(&ca_dir.join(CA_CERT_FILE), &ca_dir.join(CA_KEY_FILE)) {
        Ok(ca) => ca,
        Err(e) => {
            eprintln!("fusion keygen: --ca {}: {e}", ca_dir.display());
            return ExitCode::from(crate::common::EXIT_USAGE);
        }
    };
    let client = match ca.issue_client(name) {
        Ok(c) => c,
        Err(e @ fusion_net::NetError::InvalidParameter(_))
        | Err(e @ fusion_net::NetError::TlsMaterial { .. }) => {
            eprintln!("fusion keygen: {e}");
            return ExitCode::from(crate::common::EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("fusion keygen: {e}");
            return ExitCode::from(crate::common::EXIT_FAILURE);
        }
    };
    let (cert, key) = match client.write_pem_files_named(
        &args.out,
        &format!("{name}.pem"),
        &format!("{name}-key.pem"),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fusion keygen: {e}");
            return ExitCode::from(crate::common::EXIT_FAILURE);
        }
    };
    let fp = client.fingerprint();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"client": name, "cert": cert, "key": key, "sha256": fp.to_string()})
        );
    } else {
        println!("client `{name}` certificate: {}", cert.display());
        println!(
            "client `{name}` private key: {} (keep it secret)",
            key.display()
        );
        println!("SHA-256 fingerprint: {fp}");
        println!(
            "query with --client-cert {} --client-key {}",
            cert.display(),
            key.display()
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_net::ServerPin;

    #[test]
    fn keygen_writes_a_loadable_identity_and_refuses_to_overwrite() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = dir.path().join("keys");
        let args = || Args {
            out: out.clone(),
            ca: None,
            client: None,
            names: vec!["fusion.example".into()],
            json: true,
        };
        assert_eq!(run(args()), ExitCode::SUCCESS);
        let id = Identity::from_pem_files(&out.join("cert.pem"), &out.join("key.pem"))
            .map_err(|e| e.to_string())?;
        let pin = ServerPin::from_cert_file(&out.join("cert.pem")).map_err(|e| e.to_string())?;
        assert_eq!(pin, id.pin());
        assert_eq!(run(args()), ExitCode::from(1));
        Ok(())
    }

    #[test]
    fn keygen_makes_a_client_ca_and_issues_named_client_certificates() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ca_dir = dir.path().join("ca");
        let clients = dir.path().join("clients");
        let args =
            |ca: Option<Option<PathBuf>>, client: Option<&str>, out: &std::path::Path| Args {
                out: out.to_path_buf(),
                ca,
                client: client.map(str::to_string),
                names: Vec::new(),
                json: false,
            };
        assert_eq!(run(args(Some(None), None, &ca_dir)), ExitCode::SUCCESS);
        assert_eq!(
            run(args(Some(Some(ca_dir.clone())), Some("clinic-7"), &clients)),
            ExitCode::SUCCESS
        );
        let id = Identity::from_pem_files(
            &clients.join("clinic-7.pem"),
            &clients.join("clinic-7-key.pem"),
        )
        .map_err(|e| e.to_string())?;
        assert_eq!(id.common_name().as_deref(), Some("clinic-7"));
        let roots = fusion_net::ClientRoots::from_cert_file(&ca_dir.join(CA_CERT_FILE))
            .map_err(|e| e.to_string())?;
        assert_eq!(roots.fingerprints().len(), 1);
        // --client without --ca, a bad name, and a directory without a CA are usage errors.
        assert_eq!(run(args(None, Some("x"), &clients)), ExitCode::from(2));
        assert_eq!(
            run(args(Some(Some(ca_dir.clone())), Some("a/b"), &clients)),
            ExitCode::from(2)
        );
        assert_eq!(
            run(args(Some(Some(clients.clone())), Some("y"), &clients)),
            ExitCode::from(2)
        );
        Ok(())
    }
}
