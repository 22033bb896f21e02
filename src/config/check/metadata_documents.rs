//! `client_metadata_documents` and the settings that go with it: where an
//! issuer may fetch the documents of clients named by URL; and what the
//! page asks of users about such clients and registered ones
//! (`consent_ttl`, `scope_descriptions`).

use toml::Spanned;

use super::super::file::*;
use super::super::model::*;
use super::Checker;

impl Checker<'_> {
    /// The issuer's metadata document settings; `None` when off. Its
    /// other keys without it, or it without the authorization endpoint
    /// (the only place such a client signs a user in), are refused.
    pub(super) fn metadata_documents(
        &mut self,
        name: &str,
        s: &FileOAuth2,
        code_flow: bool,
    ) -> Option<MetadataDocuments> {
        let key = |k: &str| format!("issuers.{name}.oauth2.{k}");
        let on = s.client_metadata_documents.as_ref();
        if !on.is_some_and(|v| *v.get_ref()) {
            let unread = |k| format!("read only with client_metadata_documents = true ({k})");
            if let Some(hosts) = &s.client_metadata_private_hosts {
                let k = "client_metadata_private_hosts";
                self.problem(hosts, key(k), unread(k));
            }
            if let Some(file) = &s.client_metadata_ca_file {
                let k = "client_metadata_ca_file";
                self.problem(file, key(k), unread(k));
            }
            return None;
        }
        if let (Some(v), false) = (on, code_flow) {
            self.problem(
                v,
                key("client_metadata_documents"),
                "such a client only signs users in: turn authorization_code on",
            );
        }
        let private_hosts = match &s.client_metadata_private_hosts {
            Some(hosts) => self.private_hosts(hosts, &key("client_metadata_private_hosts")),
            None => Vec::new(),
        };
        let ca_file = s.client_metadata_ca_file.as_ref().map(|f| {
            let path = self.resolve(f.get_ref());
            if let Err(e) = crate::config::pem_certificates(&path) {
                self.problem(f, key("client_metadata_ca_file"), e);
            }
            path
        });
        Some(MetadataDocuments {
            private_hosts,
            ca_file,
        })
    }

    /// Host names or IP addresses, as a URL's host is written.
    fn private_hosts(&mut self, hosts: &Spanned<Vec<String>>, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for host in hosts.get_ref() {
            match url::Host::parse(host) {
                Ok(url::Host::Domain(d)) if !d.is_empty() && !d.contains([':', '/', '@']) => {
                    out.push(d.to_ascii_lowercase())
                }
                Ok(url::Host::Ipv4(ip)) => out.push(ip.to_string()),
                Ok(url::Host::Ipv6(ip)) => out.push(format!("[{ip}]")),
                _ => self.problem(
                    hosts,
                    key,
                    format!("{host:?} is not a host name or IP address (no scheme or port)"),
                ),
            }
        }
        out
    }

    /// `consent_ttl`: read only where clients describe themselves
    /// (registration, metadata documents); a configured client is the
    /// operator's and never asks.
    pub(super) fn consent_ttl(
        &mut self,
        name: &str,
        s: &FileOAuth2,
        self_described: bool,
    ) -> Option<std::time::Duration> {
        let written = s.consent_ttl.as_ref()?;
        let key = format!("issuers.{name}.oauth2.consent_ttl");
        if !self_described {
            self.problem(
                written,
                &key,
                "no client asks users for consent here: turn registration or \
                 client_metadata_documents on",
            );
        }
        let ttl = self.duration(&s.consent_ttl, &key, std::time::Duration::ZERO);
        let (least, most) = (60, 366 * 86_400);
        if !(least..=most).contains(&ttl.as_secs()) {
            self.problem(
                written,
                &key,
                "a minute to a year (366d); leave it out to ask every time",
            );
        }
        Some(ttl)
    }

    /// `scope_descriptions`: short text for the page, which only the
    /// authorization endpoint shows. Whether each names a scope the
    /// issuer knows is checked once routes are read
    /// (`scope_descriptions_used`).
    pub(super) fn scope_descriptions(
        &mut self,
        name: &str,
        s: &FileOAuth2,
        code_flow: bool,
    ) -> std::collections::BTreeMap<String, String> {
        let Some(written) = &s.scope_descriptions else {
            return Default::default();
        };
        let key = format!("issuers.{name}.oauth2.scope_descriptions");
        if !code_flow {
            self.problem(written, &key, "read only with authorization_code on");
        }
        for (scope, text) in written.get_ref() {
            if text.trim().is_empty()
                || text.chars().count() > 200
                || text.chars().any(char::is_control)
            {
                self.problem(
                    written,
                    format!("{key}.{scope}"),
                    "a description is 1 to 200 characters, no control characters",
                );
            }
        }
        written.get_ref().clone()
    }

    /// Each described scope is one a client of the issuer may hold: a
    /// configured client's, a protected resource's, or OpenID Connect's.
    pub(super) fn scope_descriptions_used(&mut self, issuers: &[Issuer]) {
        for issuer in issuers {
            let Some(oauth2) = &issuer.oauth2 else {
                continue;
            };
            for scope in oauth2.scope_descriptions.keys() {
                let known = ["openid", "offline_access"].contains(&scope.as_str())
                    || oauth2.resource_scopes.contains(scope)
                    || issuer_clients(issuer, oauth2).any(|c| c.permissions.contains(scope));
                if !known {
                    self.problem_no_span(
                        format!("issuers.{}.oauth2.scope_descriptions.{scope}", issuer.name),
                        format!(
                            "{scope:?} is no scope a client of the issuer may ask for: never shown"
                        ),
                    );
                }
            }
        }
    }
}

/// The issuer's configured clients: a client dialect's principals, or its
/// `clients`.
fn issuer_clients<'a>(
    issuer: &'a Issuer,
    oauth2: &'a OAuth2,
) -> impl Iterator<Item = &'a Principal> {
    let principals = issuer.accounts.iter().flat_map(|a| a.principals.iter());
    oauth2.clients.iter().chain(principals)
}
