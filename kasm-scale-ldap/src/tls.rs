//! The TLS client configuration: the configured CA file, or the system's root certificates.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A rustls configuration (aws-lc-rs, TLS 1.2 and 1.3) trusting `ca_file`'s certificates, or the
/// system roots without one. Errors name the file and the reason.
pub(crate) fn client_config(ca_file: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("ca_certificate_file `{path}`: cannot read it: {e}"))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    format!("ca_certificate_file `{path}`: not PEM certificates: {e}")
                })?;
                roots.add(cert).map_err(|e| {
                    format!("ca_certificate_file `{path}`: a certificate is not usable: {e}")
                })?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "ca_certificate_file `{path}`: holds no certificate"
                ));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system root certificates found; set ca_certificate_file".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
