//! How an OAuth 2.0 client written in the config proves who it is: a
//! secret (`secret_hash`), its own keys (`jwks`, `jwks_uri`: RFC 7523
//! assertions it signs, `private_key_jwt`), or an outside identity
//! (`federated`: a provider issuer's token about it), or nothing at all
//! (a public client).

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use super::super::file::*;
use super::super::model::*;
use super::parse::check_key_url;
use super::Checker;
use crate::jwk::parse_jwks;

/// The provider issuers whose keys portero fetches (`discovery_url`,
/// `jwks_url`), those a client may be federated with, each with what
/// tells it apart from another name for the same provider: its `iss`
/// as written, else where its keys are found.
pub(super) fn key_providers(file: &FileConfig) -> HashMap<String, String> {
    file.issuers
        .iter()
        .filter_map(|(name, i)| match i {
            FileIssuer::Provider(p) => {
                let location = p.discovery_url.as_ref().or(p.jwks_url.as_ref())?;
                let identity = p.iss.as_ref().unwrap_or(location).get_ref().clone();
                Some((name.clone(), identity))
            }
            _ => None,
        })
        .collect()
}

/// How a client authenticates, as read from its table.
pub(super) struct Credentials {
    pub(super) keys: Option<ClientKeys>,
    pub(super) federated: Vec<Federation>,
    pub(super) auth_method: Option<ClientAuth>,
    /// Its certificate authenticates it (RFC 8705 §2).
    pub(super) tls: Option<TlsClient>,
}

impl Credentials {
    /// It authenticates with signed assertions, or its certificate: no
    /// public client.
    pub(super) fn asserts(&self) -> bool {
        self.keys.is_some() || !self.federated.is_empty() || self.tls.is_some()
    }
}

impl Checker<'_> {
    /// The client's keys, outside identities and one method; a secret
    /// beside keys is refused (it would never be checked).
    pub(super) fn client_credentials(&mut self, key: &str, c: &FileOAuthClient) -> Credentials {
        let mutual_tls = c
            .auth_method
            .as_ref()
            .is_some_and(|m| m.get_ref().ends_with("tls_client_auth"));
        if mutual_tls {
            if let Some(secret) = &c.secret_hash {
                self.problem(secret, format!("{key}.secret_hash"), "a client that authenticates with its certificate: its secret would never be checked");
            }
            let tls = self.tls_client(key, c);
            return Credentials {
                keys: None,
                federated: Vec::new(),
                auth_method: tls.as_ref().map(|(m, _)| *m),
                tls: tls.map(|(_, t)| t),
            };
        }
        self.tls_client(key, c);
        let keys = self.client_keys(key, c);
        let federated = self.federations(key, c);
        let asserts = keys.is_some() || !federated.is_empty();
        if let (true, Some(secret)) = (asserts, &c.secret_hash) {
            self.problem(
                secret,
                format!("{key}.secret_hash"),
                "a client with jwks, jwks_uri or federated authenticates with signed assertions \
                 (private_key_jwt): its secret would never be checked",
            );
        }
        let auth_method = match (&c.auth_method, asserts) {
            (Some(m), true) if m.get_ref() != "private_key_jwt" => {
                self.problem(
                    m,
                    format!("{key}.auth_method"),
                    format!(
                        "{:?}: a client with jwks, jwks_uri or federated uses private_key_jwt",
                        m.get_ref()
                    ),
                );
                None
            }
            (_, true) => Some(ClientAuth::PrivateKeyJwt),
            (Some(m), false) if m.get_ref() == "private_key_jwt" => {
                self.problem(
                    m,
                    format!("{key}.auth_method"),
                    "private_key_jwt needs the client's keys (jwks or jwks_uri) or federated",
                );
                None
            }
            (written, false) => self.auth_method(written, key),
        };
        Credentials {
            keys,
            federated,
            auth_method,
            tls: None,
        }
    }

    /// `jwks` (every key one portero verifies with) or `jwks_uri`.
    fn client_keys(&mut self, key: &str, c: &FileOAuthClient) -> Option<ClientKeys> {
        match (&c.jwks, &c.jwks_uri) {
            (Some(_), Some(uri)) => {
                self.problem(
                    uri,
                    format!("{key}.jwks_uri"),
                    "jwks and jwks_uri together: give the keys one way",
                );
                None
            }
            (Some(table), None) => self.written_jwks(&format!("{key}.jwks"), table),
            (None, Some(uri)) => {
                if let Err(e) = check_key_url(uri.get_ref()) {
                    self.problem(uri, format!("{key}.jwks_uri"), e);
                }
                Some(ClientKeys::Uri(uri.get_ref().clone()))
            }
            (None, None) => None,
        }
    }

    fn written_jwks(&mut self, key: &str, table: &Spanned<toml::Table>) -> Option<ClientKeys> {
        let text = serde_json::to_string(table.get_ref()).unwrap_or_default();
        let problem = match parse_jwks(text.as_bytes()) {
            Err(e) => e,
            Ok((_, skipped)) if !skipped.is_empty() => {
                format!("a key portero cannot verify with: {}", skipped.join("; "))
            }
            Ok((keys, _)) if keys.is_empty() => "no key (keys = [...])".to_string(),
            Ok(_) => return Some(ClientKeys::Jwks(text)),
        };
        self.problem(table, key, problem);
        None
    }

    /// Each outside identity: a provider issuer of this config and a subject.
    fn federations(&mut self, key: &str, c: &FileOAuthClient) -> Vec<Federation> {
        let mut out = Vec::new();
        for (n, f) in c.federated.iter().enumerate() {
            let at = format!("{key}.federated[{n}]");
            let issuer = f.issuer.get_ref();
            if !self.key_providers.contains_key(issuer) {
                self.problem(
                    &f.issuer,
                    format!("{at}.issuer"),
                    format!(
                        "{issuer:?} is not an issuer whose keys portero fetches (one with \
                         discovery_url or jwks_url)"
                    ),
                );
            }
            if f.subject.get_ref().is_empty() {
                self.problem(&f.subject, format!("{at}.subject"), "an empty subject");
            }
            out.push(Federation {
                issuer: issuer.clone(),
                subject: f.subject.get_ref().clone(),
            });
        }
        out
    }

    /// No outside identity is two clients', even through two names for
    /// one provider: an assertion naming no `client_id` would
    /// authenticate whichever is found first.
    pub(super) fn federations_apart(&mut self, clients: &[Principal], key: &str) {
        let mut seen = HashSet::new();
        for (n, c) in clients.iter().enumerate() {
            for f in &c.client.federated {
                let provider = self.key_providers.get(&f.issuer).cloned();
                if !seen.insert((provider.unwrap_or_default(), f.subject.clone())) {
                    self.problem_no_span(
                        format!("{key}[{n}].federated"),
                        format!(
                            "{:?} of {:?} is already another client's identity",
                            f.subject, f.issuer
                        ),
                    );
                }
            }
        }
    }
}
