//! A dialect's legacy endpoint (`[issuers.NAME]` with `dialect`): its
//! paths, time zone, years, companies and retirement, and the keys only
//! one dialect reads.

use toml::Spanned;

use super::super::file::FileDialectIssuer;
use super::super::model::*;
use super::super::units::parse_offset;
use super::Checker;

impl Checker<'_> {
    /// A dialect's legacy endpoint: its paths, time zone, years, companies
    /// and retirement.
    pub(super) fn legacy(
        &mut self,
        name: &str,
        i: &FileDialectIssuer,
        dialect: Dialect,
    ) -> LegacyEndpoint {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let (path, refresh_path) = self.endpoint_paths(name, i, dialect);
        let time_zone = match &i.time_zone {
            None => chrono::FixedOffset::east_opt(0).expect("zero offset"),
            Some(tz) => parse_offset(tz.get_ref()).unwrap_or_else(|e| {
                self.problem(tz, key("time_zone"), e);
                chrono::FixedOffset::east_opt(0).expect("zero offset")
            }),
        };
        let (deprecation, sunset) = self.retirement(name, i);
        self.read_by_its_dialect(name, i, dialect);
        let max_years = i.max_years.as_ref().map_or(10, |v| *v.get_ref());
        let default_years = i.default_years.as_ref().map_or(2, |v| *v.get_ref());
        if let Some(v) = i.default_years.as_ref().or(i.max_years.as_ref()) {
            if default_years == 0 || default_years > max_years {
                let message = format!("must be between 1 and max_years ({max_years})");
                self.problem(v, key("default_years"), message);
            }
        }
        LegacyEndpoint {
            dialect,
            path,
            refresh_path,
            time_zone,
            default_years,
            max_years,
            companies: i
                .companies
                .as_ref()
                .map(|c| c.get_ref().clone())
                .unwrap_or_default(),
            deprecation: deprecation.map(|at| format!("@{}", at.timestamp())),
            sunset: sunset.map(|at| at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()),
        }
    }

    /// The legacy endpoint's keys that only one dialect reads, refused on
    /// the others: the session dialect's `time_zone`, the project
    /// dialect's years (whose tokens last those, never `token_ttl`, which
    /// only its OAuth 2.0 endpoints read), the client-flat dialect's
    /// `companies`.
    fn read_by_its_dialect(&mut self, name: &str, i: &FileDialectIssuer, dialect: Dialect) {
        let span = |v: Option<std::ops::Range<usize>>| v.map(|at| Spanned::new(at, ()));
        let project_ttl = i.token_ttl.as_ref().filter(|_| i.oauth2.is_none());
        let keys = [
            (
                Dialect::Session,
                span(i.time_zone.as_ref().map(Spanned::span)),
                "time_zone",
            ),
            (
                Dialect::Project,
                span(i.default_years.as_ref().map(Spanned::span)),
                "default_years",
            ),
            (
                Dialect::Project,
                span(i.max_years.as_ref().map(Spanned::span)),
                "max_years",
            ),
            (
                Dialect::ClientFlat,
                span(i.companies.as_ref().map(Spanned::span)),
                "companies",
            ),
        ];
        for (reader, written, k) in keys {
            if let (Some(at), false) = (written, reader == dialect) {
                let message = format!("the {} dialect never reads {k}", dialect.name());
                self.problem(&at, format!("issuers.{name}.{k}"), message);
            }
        }
        if let (Some(ttl), Dialect::Project) = (project_ttl, dialect) {
            let message = "the project dialect's tokens last default_years (or the years asked), \
                           never token_ttl: only OAuth 2.0 endpoints would read it";
            self.problem(ttl, format!("issuers.{name}.token_ttl"), message);
        }
    }

    /// The issuer's `dialect`; `None` (a problem) for one portero does
    /// not speak.
    pub(super) fn dialect(&mut self, name: &str, d: &Spanned<String>) -> Option<Dialect> {
        let dialect = super::parse::dialect(d.get_ref());
        if dialect.is_none() {
            self.problem(
                d,
                format!("issuers.{name}.dialect"),
                format!(
                    "unknown dialect {:?} (session, login-refresh, project, client-envelope, client-flat)",
                    d.get_ref()
                ),
            );
        }
        dialect
    }

    /// The legacy endpoint's `path`, and the login-refresh dialect's
    /// `refresh_path` (no other dialect has one).
    fn endpoint_paths(
        &mut self,
        name: &str,
        i: &FileDialectIssuer,
        dialect: Dialect,
    ) -> (String, Option<String>) {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let path = |c: &mut Self, v: &Option<Spanned<String>>, k: &str, default: &str| match v {
            Some(p) if !p.get_ref().starts_with('/') => {
                c.problem(p, key(k), "must start with /");
                default.to_string()
            }
            Some(p) => p.get_ref().clone(),
            None => default.to_string(),
        };
        let main_path = path(self, &i.path, "path", dialect.default_path());
        let refresh_path = match (dialect, &i.refresh_path) {
            (Dialect::LoginRefresh, v) => {
                Some(path(self, v, "refresh_path", "/api/auth/refreshtoken"))
            }
            (_, Some(v)) => {
                self.problem(
                    v,
                    key("refresh_path"),
                    "only the login-refresh dialect has a refresh endpoint",
                );
                None
            }
            (_, None) => None,
        };
        (main_path, refresh_path)
    }

    /// When the endpoint was deprecated and when it goes (`deprecation`,
    /// `sunset`), the one not before the other.
    fn retirement(
        &mut self,
        name: &str,
        i: &FileDialectIssuer,
    ) -> (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let deprecation = self.instant(&i.deprecation, &key("deprecation"));
        let sunset = self.instant(&i.sunset, &key("sunset"));
        if let (Some(d), Some(s), Some(written)) = (deprecation, sunset, &i.sunset) {
            if s < d {
                self.problem(written, key("sunset"), "comes before deprecation");
            }
        }
        (deprecation, sunset)
    }

    /// An RFC 3339 instant, in UTC.
    fn instant(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let written = v.as_ref()?;
        match chrono::DateTime::parse_from_rfc3339(written.get_ref()) {
            Ok(at) => Some(at.with_timezone(&chrono::Utc)),
            Err(e) => {
                self.problem(
                    written,
                    key,
                    format!(
                        "{:?} is not an RFC 3339 time (2027-06-30T00:00:00Z): {e}",
                        written.get_ref()
                    ),
                );
                None
            }
        }
    }
}
