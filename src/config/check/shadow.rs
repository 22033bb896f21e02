//! `[issuers.NAME.shadow]`: the legacy token service an issuer replaces,
//! and how its answers are compared with portero's.

use std::time::Duration;

use toml::Spanned;

use super::super::file::FileShadow;
use super::super::model::{ShadowConfig, ShadowPrimary};
use super::super::units::secs;
use super::Checker;

/// Comparisons waiting or under way, by default.
const DEFAULT_QUEUE: usize = 1000;

impl Checker<'_> {
    pub(super) fn shadow(
        &mut self,
        name: &str,
        table: &Spanned<FileShadow>,
    ) -> Option<ShadowConfig> {
        let key = |k: &str| format!("issuers.{name}.shadow.{k}");
        let s = table.get_ref();
        let url = s.url.get_ref().trim_end_matches('/').to_string();
        match url::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if u.query().is_some() || u.fragment().is_some() {
                    self.problem(&s.url, key("url"), "a base URL takes no query or fragment");
                }
            }
            _ => self.problem(
                &s.url,
                key("url"),
                format!("{:?}: expected an http:// or https:// URL", s.url.get_ref()),
            ),
        }
        let sample = s.sample.as_ref().map_or(1.0, |v| *v.get_ref());
        if !(0.0..=1.0).contains(&sample) {
            self.problem(
                s.sample.as_ref().expect("given"),
                key("sample"),
                format!("{sample}: a share from 0 to 1"),
            );
        }
        let primary = self.choice(
            &s.primary,
            &key("primary"),
            [
                ("portero", ShadowPrimary::Portero),
                ("legacy", ShadowPrimary::Legacy),
            ],
        );
        if s.fallback && primary == ShadowPrimary::Portero {
            self.problem(
                table,
                key("fallback"),
                "is for primary = \"legacy\": portero answers already",
            );
        }
        let queue = s
            .queue
            .as_ref()
            .map_or(DEFAULT_QUEUE, |q| *q.get_ref() as usize);
        if queue == 0 {
            self.problem(s.queue.as_ref().expect("given"), key("queue"), "at least 1");
        }
        let timeout = self.duration(&s.timeout, &key("timeout"), secs(2));
        if timeout.is_zero() {
            self.problem(table, key("timeout"), "must be more than 0s");
        }
        Some(ShadowConfig {
            url,
            primary,
            sample,
            timeout,
            tolerance: self.duration(&s.tolerance, &key("tolerance"), Duration::from_secs(5)),
            claims: s.claims.clone(),
            fallback: s.fallback,
            compare_refresh: s.compare_refresh,
            queue,
            ca_file: s.ca_file.as_ref().map(|f| self.resolve(f.get_ref())),
        })
    }
}
