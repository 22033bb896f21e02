//! `client_metadata_documents` and the settings that go with it: where an
//! issuer may fetch the documents of clients named by URL.

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
}
