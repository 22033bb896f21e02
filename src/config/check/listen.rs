//! `[[listen]]`: each public listener's address, its TLS files, and the
//! client certificates it asks for (`client_ca_file`,
//! `client_certificates`: RFC 8705's mutual TLS).

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use toml::Spanned;

use super::super::file::{FileConfig, FileListener, FileServer};
use super::super::model::{
    CertificateMode, ClientAuth, ClientCertificates, Issuer, Listener, ServerSettings, TlsFiles,
};
use super::Checker;

type Root = CertificateDer<'static>;

impl Checker<'_> {
    pub(super) fn listeners(&mut self, list: &[FileListener]) -> Vec<Listener> {
        if list.is_empty() {
            self.problem_no_span("listen", "at least one [[listen]] table is required");
        }
        list.iter()
            .enumerate()
            .map(|(i, l)| {
                let addr = self.addr(&l.addr, &format!("listen[{i}].addr"));
                let tls = match (&l.tls_cert, &l.tls_key) {
                    (None, None) => None,
                    (Some(cert), Some(key)) => Some(TlsFiles {
                        cert: self.existing_file(cert, &format!("listen[{i}].tls_cert")),
                        key: self.existing_file(key, &format!("listen[{i}].tls_key")),
                        clients: self.client_certificates(i, l),
                    }),
                    (Some(s), None) | (None, Some(s)) => {
                        self.problem(
                            s,
                            format!("listen[{i}]"),
                            "tls_cert and tls_key go together",
                        );
                        None
                    }
                };
                if tls.is_none() {
                    for (set, key) in [
                        (
                            l.client_ca_file.as_ref().map(Spanned::span),
                            "client_ca_file",
                        ),
                        (
                            l.client_certificates.as_ref().map(Spanned::span),
                            "client_certificates",
                        ),
                    ] {
                        if let Some(span) = set {
                            let at = Spanned::new(span, ());
                            self.problem(
                                &at,
                                format!("listen[{i}].{key}"),
                                "read only with tls_cert and tls_key",
                            );
                        }
                    }
                }
                Listener {
                    addr,
                    tls,
                    proxy_protocol: l.proxy_protocol,
                }
            })
            .collect()
    }

    /// `client_ca_file` and `client_certificates` of a TLS listener: the
    /// roots client certificates are verified against, and what a
    /// handshake takes: a certificate of them or none (`"optional"`, the
    /// default with roots), one of them (`"required"`), or any certificate
    /// (`"any"`: self-signed ones too, verified where they chain to the roots).
    fn client_certificates(&mut self, i: usize, l: &FileListener) -> Option<ClientCertificates> {
        let key = |k: &str| format!("listen[{i}].{k}");
        let written = l
            .client_certificates
            .as_ref()
            .map(|s| (s, s.get_ref().as_str()));
        let mode = match written {
            None if l.client_ca_file.is_none() => return None,
            None | Some((_, "optional")) => CertificateMode::Optional,
            Some((_, "required")) => CertificateMode::Required,
            Some((_, "any")) => CertificateMode::Any,
            Some((s, other)) => {
                let message = format!("{other:?}: expected \"optional\", \"required\" or \"any\"");
                self.problem(s, key("client_certificates"), message);
                return None;
            }
        };
        let ca = match &l.client_ca_file {
            None if mode == CertificateMode::Any => None,
            None => {
                let (s, _) = written.expect("a mode is written where there are no roots");
                self.problem(
                    s,
                    key("client_certificates"),
                    "needs client_ca_file, the roots certificates are verified against \
                     (\"any\" takes any certificate)",
                );
                return None;
            }
            Some(ca) => Some(self.client_roots(ca, &key("client_ca_file"))),
        };
        let (ca, roots) = ca.unzip();
        Some(ClientCertificates {
            ca,
            roots: roots.unwrap_or_default(),
            mode,
        })
    }

    /// `client_ca_file`: PEM certificates, each a CA, and the roots it
    /// holds now. A client's own certificate there would be a root that
    /// vouches for any name it signs.
    fn client_roots(&mut self, ca: &Spanned<String>, key: &str) -> (PathBuf, Vec<Root>) {
        let path = self.existing_file(ca, key);
        if !path.is_file() {
            return (path, Vec::new());
        }
        let read = super::super::pem_certificates(&path);
        match &read {
            Err(e) => self.problem(ca, key, e.clone()),
            Ok(certs) if certs.iter().any(|c| !is_ca(c)) => self.problem(
                ca,
                key,
                "holds a certificate that is no CA (basicConstraints CA:FALSE, or none): as a \
                 root it would vouch for any name it signs; a client's own certificate goes in \
                 its jwks (self_signed_tls_client_auth), taken by client_certificates = \"any\"",
            ),
            Ok(_) => {}
        }
        (path, read.unwrap_or_default())
    }

    /// What reads client certificates, where none can ever come (no
    /// listener asks for one with `client_ca_file`, and no trusted proxy
    /// passes one on): `forward_client_cert`, `server.mtls_public_url`,
    /// and clients that authenticate with one. The issuers' mutual-TLS
    /// endpoint aliases, where the listener is elsewhere.
    pub(super) fn client_certificates_read(
        &mut self,
        file: &FileConfig,
        listeners: &[Listener],
        server: &ServerSettings,
        issuers: &mut [Issuer],
    ) {
        for issuer in issuers.iter_mut() {
            if let (Some(oauth2), Some(base)) = (&mut issuer.oauth2, &server.mtls_public_url) {
                oauth2.mtls_issuer_id = Some(format!("{base}/oauth2/{}", issuer.name));
            }
        }
        let asked = listeners
            .iter()
            .any(|l| l.tls.as_ref().is_some_and(|t| t.clients.is_some()));
        if asked || server.client_cert_from_proxies {
            return;
        }
        let never = "no client certificate ever comes: no listener takes one (client_ca_file, \
                     client_certificates), and server.client_cert_from_proxies is off";
        if let Some(url) = &file.server.mtls_public_url {
            self.problem(url, "server.mtls_public_url", never);
        }
        for issuer in issuers.iter() {
            let clients = issuer.oauth2.iter().flat_map(|o| o.clients.iter());
            for client in clients.filter(|c| c.auth_method.is_some_and(ClientAuth::is_mutual_tls)) {
                let key = format!(
                    "issuers.{}.clients.{}.auth_method",
                    issuer.name, client.login
                );
                self.problem_no_span(key, never);
            }
        }
        for (i, r) in file.routes.iter().enumerate() {
            if let Some(set) = r.forward_client_cert.as_ref().filter(|s| *s.get_ref()) {
                self.problem(set, format!("routes[{i}].forward_client_cert"), never);
            }
        }
    }

    /// `server.client_cert_from_proxies`, refused without trusted proxies.
    pub(super) fn client_cert_from_proxies(&mut self, s: &FileServer) -> bool {
        let Some(set) = s.client_cert_from_proxies.as_ref() else {
            return false;
        };
        let proxies = s.trusted_proxies.as_ref().is_some_and(|p| !p.is_empty());
        if *set.get_ref() && !proxies {
            self.problem(
                set,
                "server.client_cert_from_proxies",
                "no proxy is trusted: server.trusted_proxies is empty",
            );
        }
        *set.get_ref() && proxies
    }

    /// A file the config names, resolved; a problem if it is not there.
    fn existing_file(&mut self, at: &Spanned<String>, key: &str) -> std::path::PathBuf {
        let path = self.resolve(at.get_ref());
        if !path.is_file() {
            self.problem(at, key, format!("no such file: {}", path.display()));
        }
        path
    }
}

/// Whether a root certificate says it is a CA (basicConstraints CA:TRUE).
fn is_ca(cert: &rustls::pki_types::CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .ok()
        .and_then(|(_, c)| c.basic_constraints().ok().flatten().map(|b| b.value.ca))
        .unwrap_or(false)
}
