//! A client that authenticates with its certificate (RFC 8705 §2):
//! `auth_method = "tls_client_auth"` and the one name its certificate
//! must carry, or `"self_signed_tls_client_auth"` and the certificates of
//! its `jwks` (`x5c`). A name given to a client that does not use the
//! method is refused: it would never be read.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::super::file::FileOAuthClient;
use super::super::model::{CertificateName, ClientAuth, TlsClient};
use super::Checker;

impl Checker<'_> {
    /// The client's certificate rule, if its method is one of RFC 8705's.
    pub(super) fn tls_client(
        &mut self,
        key: &str,
        c: &FileOAuthClient,
    ) -> Option<(ClientAuth, TlsClient)> {
        let named = self.certificate_name(key, c);
        let method = c.auth_method.as_ref().map(|m| (m, m.get_ref().as_str()));
        match method {
            Some((_, "tls_client_auth")) => match named {
                Some(Ok(name)) => Some((ClientAuth::TlsClientAuth, TlsClient::Named(name))),
                Some(Err(())) => None,
                None => {
                    let m = method.map(|(m, _)| m).expect("matched");
                    self.problem(m, format!("{key}.auth_method"), "tls_client_auth names the certificate's subject: give one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email");
                    None
                }
            },
            Some((m, "self_signed_tls_client_auth")) => {
                if let Some(Ok(_) | Err(())) = named {
                    self.problem(
                        m,
                        format!("{key}.auth_method"),
                        "a self-signed certificate is matched by the jwks' x5c, not by a name",
                    );
                }
                let registered = self.registered_certificates(key, c, m)?;
                Some((
                    ClientAuth::SelfSignedTlsClientAuth,
                    TlsClient::Registered(registered),
                ))
            }
            _ => {
                if named.is_some() {
                    self.problem(
                        &c.client_id,
                        format!("{key}.tls_client_auth_*"),
                        "read only with auth_method = \"tls_client_auth\"",
                    );
                }
                None
            }
        }
    }

    /// The one `tls_client_auth_*` name given; `Err` after a problem.
    fn certificate_name(
        &mut self,
        key: &str,
        c: &FileOAuthClient,
    ) -> Option<Result<CertificateName, ()>> {
        let given: Vec<(&str, &Spanned<String>)> = [
            ("subject_dn", &c.tls_client_auth_subject_dn),
            ("san_dns", &c.tls_client_auth_san_dns),
            ("san_uri", &c.tls_client_auth_san_uri),
            ("san_ip", &c.tls_client_auth_san_ip),
            ("san_email", &c.tls_client_auth_san_email),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v.as_ref()?)))
        .collect();
        let (name, value) = match given.as_slice() {
            [] => return None,
            [one] => *one,
            [_, (second, v), ..] => {
                self.problem(
                    *v,
                    format!("{key}.tls_client_auth_{second}"),
                    "RFC 8705 §2.1.2: exactly one name per client",
                );
                return Some(Err(()));
            }
        };
        let text = value.get_ref().trim();
        let named = match name {
            "subject_dn" => Ok(CertificateName::SubjectDn(text.to_string())),
            "san_dns" => Ok(CertificateName::Dns(text.to_ascii_lowercase())),
            "san_uri" => Ok(CertificateName::Uri(text.to_string())),
            "san_email" => Ok(CertificateName::Email(text.to_string())),
            _ => text.parse().map(CertificateName::Ip).map_err(|_| ()),
        };
        if text.is_empty() || named.is_err() {
            self.problem(
                value,
                format!("{key}.tls_client_auth_{name}"),
                "not a name a certificate carries",
            );
            return Some(Err(()));
        }
        Some(named)
    }

    /// The thumbprints of the certificates in the client's `jwks` (each
    /// key's first `x5c`).
    fn registered_certificates(
        &mut self,
        key: &str,
        c: &FileOAuthClient,
        at: &Spanned<String>,
    ) -> Option<Vec<String>> {
        let keys = c
            .jwks
            .as_ref()
            .and_then(|t| t.get_ref().get("keys"))
            .and_then(|k| k.as_array());
        let found: Vec<String> = keys
            .into_iter()
            .flatten()
            .filter_map(|k| k.get("x5c")?.as_array()?.first()?.as_str())
            .filter_map(|der| STANDARD.decode(der).ok())
            .map(|der| URL_SAFE_NO_PAD.encode(Sha256::digest(der)))
            .collect();
        if found.is_empty() {
            self.problem(
                at,
                format!("{key}.jwks"),
                "self_signed_tls_client_auth needs the client's certificates: jwks keys with x5c",
            );
            return None;
        }
        Some(found)
    }
}
