//! `[issuers.*]` run elsewhere: `discovery_url` or `jwks_url`, HTTPS roots,
//! and the bounds of how their keys are refreshed and held.

use toml::Spanned;

use super::super::file::{DurationText, FileProviderIssuer};
use super::super::model::{ExternalKeySource, KeyLocation};
use super::super::units::secs;
use super::parse::check_key_url;
use super::Checker;

impl Checker<'_> {
    /// The key source of an external issuer; `None` for portero's own.
    pub(super) fn external(
        &mut self,
        name: &str,
        i: &FileProviderIssuer,
    ) -> Option<ExternalKeySource> {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let location = match (&i.discovery_url, &i.jwks_url) {
            (None, None) => {
                self.refuse_external_keys(name, i);
                return None;
            }
            (Some(_), Some(j)) => {
                self.problem(
                    j,
                    key("jwks_url"),
                    "give discovery_url or jwks_url, not both",
                );
                return None;
            }
            (Some(d), None) => {
                self.key_url(d, &key("discovery_url"));
                KeyLocation::Discovery(d.get_ref().clone())
            }
            (None, Some(j)) => {
                self.key_url(j, &key("jwks_url"));
                if i.iss.is_none() {
                    self.problem(j, key("iss"), "an issuer with jwks_url needs iss");
                }
                KeyLocation::Jwks(j.get_ref().clone())
            }
        };
        let ca_file = i.ca_file.as_ref().map(|f| {
            let path = self.resolve(f.get_ref());
            if let Err(e) = crate::config::pem_certificates(&path) {
                self.problem(f, key("ca_file"), e);
            }
            path
        });
        let mut duration = |v: &Option<Spanned<DurationText>>, k: &str, default: u64| {
            self.duration(v, &key(k), secs(default))
        };
        let source = ExternalKeySource {
            location,
            expected_iss: i.iss.as_ref().map(|s| s.get_ref().clone()),
            ca_file,
            refresh_min: duration(&i.jwks_refresh_min, "jwks_refresh_min", 60),
            refresh_max: duration(&i.jwks_refresh_max, "jwks_refresh_max", 24 * 3600),
            refetch_interval: duration(&i.jwks_refetch_interval, "jwks_refetch_interval", 30),
            max_stale: duration(&i.jwks_max_stale, "jwks_max_stale", 24 * 3600),
            timeout: duration(&i.jwks_timeout, "jwks_timeout", 5),
            ready_timeout: duration(&i.jwks_ready_timeout, "jwks_ready_timeout", 10),
        };
        if source.refresh_min > source.refresh_max {
            self.problem_no_span(key("jwks_refresh_min"), "is longer than jwks_refresh_max");
        }
        for (d, k) in [
            (source.refresh_min, "jwks_refresh_min"),
            (source.refetch_interval, "jwks_refetch_interval"),
            (source.timeout, "jwks_timeout"),
        ] {
            if d.is_zero() {
                self.problem_no_span(key(k), "must be longer than 0s");
            }
        }
        Some(source)
    }

    fn key_url(&mut self, url: &Spanned<String>, key: &str) {
        if let Err(e) = check_key_url(url.get_ref()) {
            self.problem(url, key, e);
        }
    }

    /// The JWKS keys only mean something beside a URL to fetch from.
    fn refuse_external_keys(&mut self, name: &str, i: &FileProviderIssuer) {
        let durations = [
            (&i.jwks_refresh_min, "jwks_refresh_min"),
            (&i.jwks_refresh_max, "jwks_refresh_max"),
            (&i.jwks_refetch_interval, "jwks_refetch_interval"),
            (&i.jwks_max_stale, "jwks_max_stale"),
            (&i.jwks_timeout, "jwks_timeout"),
            (&i.jwks_ready_timeout, "jwks_ready_timeout"),
        ]
        .map(|(value, k)| (value.as_ref().map(Spanned::span), k));
        // An introspection endpoint may be HTTPS with roots of its own.
        let ca_file = i.ca_file.as_ref().filter(|_| i.introspection_url.is_none());
        let given = [(ca_file.map(Spanned::span), "ca_file")];
        for (span, k) in given.into_iter().chain(durations) {
            if let Some(span) = span {
                let message = "only an external issuer (discovery_url or jwks_url) has this";
                self.problem(
                    &Spanned::new(span, ()),
                    format!("issuers.{name}.{k}"),
                    message,
                );
            }
        }
    }
}
