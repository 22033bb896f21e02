//! The certificates portero trusts when it is the TLS client (upstreams,
//! identity providers): a PEM bundle the config names, or the system's roots.

use std::path::Path;

use rustls::RootCertStore;

use crate::config::pem_certificates;

pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in pem_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no system root certificates; give ca_file".into());
            }
        }
    }
    Ok(roots)
}

/// A client config with `roots`, ring's provider and safe protocol versions,
/// before client authentication is chosen.
pub fn client_builder(
    roots: RootCertStore,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots))
}
