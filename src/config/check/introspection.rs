//! `[issuers.NAME]` opaque tokens: `client_id` turns introspection on,
//! with `client_secret_env` and `introspection_url` (or the
//! `introspection_endpoint` that `discovery_url`'s metadata names).

use toml::Spanned;

use super::super::file::FileProviderIssuer;
use super::super::model::{ClientAuth, Introspection, IntrospectionEndpoint, IntrospectionFailure};
use super::super::units::secs;
use super::parse::check_key_url;
use super::Checker;

impl Checker<'_> {
    /// The issuer's introspection, if `client_id` asks for it; the other
    /// `introspection_*` keys are refused without it.
    pub(super) fn introspection(
        &mut self,
        name: &str,
        i: &FileProviderIssuer,
    ) -> Option<Introspection> {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let Some(client_id) = &i.client_id else {
            self.refuse_introspection_keys(name, i);
            return None;
        };
        if client_id.get_ref().is_empty() {
            self.problem(client_id, key("client_id"), "is empty");
        }
        if let Some(iss) = i.iss.as_ref().filter(|iss| iss.get_ref().is_empty()) {
            self.problem(
                iss,
                key("iss"),
                "is empty: answers must be held to an issuer",
            );
        }
        let endpoint = self.introspection_endpoint(name, i, client_id)?;
        let Some(secret_env) = &i.client_secret_env else {
            self.problem(
                client_id,
                key("client_secret_env"),
                "introspection needs the client's secret: name its variable",
            );
            return None;
        };
        let auth = self.choice(
            &i.introspection_auth,
            &key("introspection_auth"),
            [
                ("client_secret_basic", ClientAuth::Basic),
                ("client_secret_post", ClientAuth::Post),
            ],
        );
        let on_failure = self.choice(
            &i.introspection_on_failure,
            &key("introspection_on_failure"),
            [
                ("unavailable", IntrospectionFailure::Unavailable),
                ("unauthorized", IntrospectionFailure::Unauthorized),
            ],
        );
        let cache_size = self.cache_size(name, i);
        let timeout = self.lasting(
            &i.introspection_timeout,
            &key("introspection_timeout"),
            secs(2),
        );
        let mut duration = |v: &Option<Spanned<_>>, k: &str, default: u64| {
            self.duration(v, &key(k), secs(default))
        };
        Some(Introspection {
            endpoint,
            client_id: client_id.get_ref().clone(),
            client_secret_env: secret_env.get_ref().clone(),
            auth,
            cache_ttl: duration(&i.introspection_cache_ttl, "introspection_cache_ttl", 60),
            negative_ttl: duration(
                &i.introspection_negative_ttl,
                "introspection_negative_ttl",
                5,
            ),
            cache_size,
            timeout,
            on_failure,
            require_token_type: i
                .introspection_require_token_type
                .as_ref()
                .is_none_or(|v| *v.get_ref()),
            ca_file: i.ca_file.as_ref().map(|f| self.resolve(f.get_ref())),
        })
    }

    /// Where the provider introspects: `introspection_url`, or what
    /// `discovery_url`'s metadata names.
    fn introspection_endpoint(
        &mut self,
        name: &str,
        i: &FileProviderIssuer,
        client_id: &Spanned<String>,
    ) -> Option<IntrospectionEndpoint> {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let endpoint = match (&i.introspection_url, &i.discovery_url) {
            // Answers are held to the issuer's `iss`: with discovery it is
            // learned from the metadata, which this URL is not asked for.
            (Some(url), Some(_)) if i.iss.is_none() => {
                self.problem(
                    url,
                    key("iss"),
                    "with discovery_url and introspection_url, give iss: the issuer answers are held to",
                );
                return None;
            }
            (Some(url), _) => {
                if let Err(e) = check_key_url(url.get_ref()) {
                    self.problem(url, key("introspection_url"), e);
                }
                IntrospectionEndpoint::Url(url.get_ref().clone())
            }
            (None, Some(discovery)) => {
                IntrospectionEndpoint::Discovery(discovery.get_ref().clone())
            }
            (None, None) => {
                self.problem(
                    client_id,
                    key("introspection_url"),
                    "introspection needs introspection_url, or a discovery_url whose metadata names an introspection_endpoint",
                );
                return None;
            }
        };
        Some(endpoint)
    }

    fn cache_size(&mut self, name: &str, i: &FileProviderIssuer) -> usize {
        match &i.introspection_cache_size {
            Some(n) if *n.get_ref() == 0 || *n.get_ref() > 10_000_000 => {
                let key = format!("issuers.{name}.introspection_cache_size");
                self.problem(n, key, "from 1 to 10000000");
                10_000
            }
            Some(n) => *n.get_ref() as usize,
            None => 10_000,
        }
    }

    fn refuse_introspection_keys(&mut self, name: &str, i: &FileProviderIssuer) {
        let spans = [
            (
                i.introspection_url.as_ref().map(Spanned::span),
                "introspection_url",
            ),
            (
                i.client_secret_env.as_ref().map(Spanned::span),
                "client_secret_env",
            ),
            (
                i.introspection_auth.as_ref().map(Spanned::span),
                "introspection_auth",
            ),
            (
                i.introspection_require_token_type
                    .as_ref()
                    .map(Spanned::span),
                "introspection_require_token_type",
            ),
            (
                i.introspection_cache_ttl.as_ref().map(Spanned::span),
                "introspection_cache_ttl",
            ),
            (
                i.introspection_negative_ttl.as_ref().map(Spanned::span),
                "introspection_negative_ttl",
            ),
            (
                i.introspection_cache_size.as_ref().map(Spanned::span),
                "introspection_cache_size",
            ),
            (
                i.introspection_timeout.as_ref().map(Spanned::span),
                "introspection_timeout",
            ),
            (
                i.introspection_on_failure.as_ref().map(Spanned::span),
                "introspection_on_failure",
            ),
        ];
        for (span, k) in spans {
            if let Some(span) = span {
                self.problem(
                    &Spanned::new(span, ()),
                    format!("issuers.{name}.{k}"),
                    "introspection is on only with client_id (and client_secret_env)",
                );
            }
        }
    }
}
