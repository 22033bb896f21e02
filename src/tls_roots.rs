//! The certificates portero trusts when it is the TLS client (upstreams,
//! identity providers, legacy services, the span collector): a PEM bundle
//! the config names, or the system's roots.

use std::path::Path;
use std::time::Duration;

use rustls::RootCertStore;

use crate::config::pem_certificates;

/// Why a TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The `ca_file` could not be read, or holds a certificate rustls refuses.
    #[error("{0}")]
    CaFile(String),
    #[error("no system root certificates; give ca_file")]
    NoSystemRoots,
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in pem_certificates(path).map_err(ClientError::CaFile)? {
                roots
                    .add(cert)
                    .map_err(|e| ClientError::CaFile(format!("ca_file {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(ClientError::NoSystemRoots);
            }
        }
    }
    Ok(roots)
}

/// A client config with `roots`, ring's provider and safe protocol versions,
/// before client authentication is chosen.
pub fn client_builder(
    roots: RootCertStore,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, ClientError>
{
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots))
}

/// An HTTP client trusting `ca_file` (or the system's roots), offering
/// `alpn` (empty: none), that follows no redirects and gives up after
/// `timeout`.
pub fn http_client(
    ca_file: Option<&Path>,
    alpn: &[&[u8]],
    timeout: Duration,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let mut tls = client_builder(roots(ca_file)?)?.with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none()))
}
