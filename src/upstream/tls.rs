//! TLS to upstream servers: rustls with the group's roots (its `ca_file`,
//! or the system's) and, for mTLS, its client certificate. There is no way
//! to turn verification off. Sessions are resumed from rustls' in-memory
//! cache when a pooled connection has to be replaced.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::config::{pem_certificates, UpstreamProtocol, UpstreamTls};

/// The connector for a group's servers, or why there is none.
pub fn connector(tls: &UpstreamTls, protocol: UpstreamProtocol) -> Result<TlsConnector, String> {
    let roots = crate::tls_roots::roots(tls.ca_file.as_deref()).map_err(|e| e.to_string())?;
    let builder = crate::tls_roots::client_builder(roots).map_err(|e| e.to_string())?;
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let certs = pem_certificates(&files.cert)?;
            let key = PrivateKeyDer::from_pem_file(&files.key)
                .map_err(|e| format!("client_key_file {}: {e}", files.key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    // Only what the group speaks: a server that cannot fails the handshake.
    config.alpn_protocols = match protocol {
        UpstreamProtocol::H2 => vec![b"h2".to_vec()],
        _ => vec![b"http/1.1".to_vec()],
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name to send and verify for a server named `host` (a DNS name or
/// an IP address), unless the group names one (`sni`).
pub fn server_name(tls: &UpstreamTls, host: &str) -> Option<ServerName<'static>> {
    let name = tls.sni.as_deref().unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string()).ok()
}
