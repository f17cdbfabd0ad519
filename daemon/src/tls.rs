//! The one TLS client setup for the servers twofoldd talks to over a network: rustls with
//! ring, the certificate and the server's name always verified (there is no switch to
//! turn that off), trusting the system's CAs or the ones in a given PEM file.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// A client configuration trusting the CAs in `ca_file`, or the system's without one.
/// Errors name the file, never its contents.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_file {shown}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("ca_file {shown}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("ca_file {shown}: no PEM certificate in it"));
            }
            for c in certs {
                roots.add(c).map_err(|e| format!("ca_file {shown}: {e}"))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                // A system certificate rustls cannot use is no reason to stop.
                let _ = roots.add(c);
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
