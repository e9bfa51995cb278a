//! `fusion keygen`: make the server's TLS identity, a fresh self-signed
//! certificate (ECDSA P-256) and its private key, as PEM files `cert.pem` and
//! `key.pem` (mode 0600) in `--out DIR`, and print the certificate's SHA-256
//! fingerprint. Clients pin the server with either the certificate file
//! (`--server-cert DIR/cert.pem`) or the fingerprint; see `fusion_net::tls`.

use std::{path::PathBuf, process::ExitCode};

use fusion_net::Identity;

/// Arguments of `fusion keygen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory for cert.pem and key.pem (created if missing; existing files
    /// are never overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Extra DNS names for the certificate (informational: clients pin the
    /// certificate itself, not a name).
    #[arg(long = "name", value_name = "DNS")]
    names: Vec<String>,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Run `fusion keygen`.
pub fn run(args: Args) -> ExitCode {
    let identity = match Identity::generate(&args.names) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let (cert, key) = match identity.write_pem_files(&args.out) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
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
}
