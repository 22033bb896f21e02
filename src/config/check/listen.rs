//! `[[listen]]`: each public listener's address, its TLS files, and the
//! client certificates it asks for (`client_ca_file`,
//! `client_certificates`: RFC 8705's mutual TLS).

use toml::Spanned;

use super::super::file::{FileConfig, FileListener};
use super::super::model::{
    ClientAuth, ClientCertificates, Issuer, Listener, ServerSettings, TlsFiles,
};
use super::Checker;

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
    /// roots client certificates are verified against, and whether one is
    /// required (`"required"`) or only taken (`"optional"`, the default).
    fn client_certificates(&mut self, i: usize, l: &FileListener) -> Option<ClientCertificates> {
        let Some(ca) = &l.client_ca_file else {
            if let Some(set) = &l.client_certificates {
                self.problem(
                    set,
                    format!("listen[{i}].client_certificates"),
                    "read only with client_ca_file: the roots client certificates are verified against",
                );
            }
            return None;
        };
        let required = match l
            .client_certificates
            .as_ref()
            .map(|s| (s, s.get_ref().as_str()))
        {
            None | Some((_, "optional")) => false,
            Some((_, "required")) => true,
            Some((s, other)) => {
                self.problem(
                    s,
                    format!("listen[{i}].client_certificates"),
                    format!("{other:?}: expected \"optional\" or \"required\""),
                );
                false
            }
        };
        let key = format!("listen[{i}].client_ca_file");
        let path = self.existing_file(ca, &key);
        if path.is_file() {
            if let Err(e) = super::super::pem_certificates(&path) {
                self.problem(ca, key, e);
            }
        }
        Some(ClientCertificates { ca: path, required })
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
        if asked || !server.trusted_proxies.is_empty() {
            return;
        }
        let never = "no client certificate ever comes: no listener has client_ca_file, and server.trusted_proxies is empty";
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

    /// A file the config names, resolved; a problem if it is not there.
    fn existing_file(&mut self, at: &Spanned<String>, key: &str) -> std::path::PathBuf {
        let path = self.resolve(at.get_ref());
        if !path.is_file() {
            self.problem(at, key, format!("no such file: {}", path.display()));
        }
        path
    }
}
