//! Every `portero_*` metric, in a registry of the gateway's own (not the
//! process default, so two gateways can live in one process). Labels are
//! bounded by the config: route, upstream and issuer names, methods from a
//! fixed list, status codes, and reason codes. Never a subject or a token.
//! Each family is made in a module of its own (`requests`, `connections`,
//! `tokens`, `upstreams`, `upkeep`, all through `register`); the series
//! one route, upstream or listener touches are resolved once, in
//! `metrics/series.rs`.

mod connections;
mod register;
mod requests;
mod series;
mod tokens;
mod upkeep;
mod upstreams;

pub use series::{ConnectionSeries, RouteRequests, RouteSeries, UpstreamSeries};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::{AccountForm, Accounts, Config, Dialect, Issuer};
use register::Registrar;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub auth_decisions: IntCounterVec,
    pub tokens_issued: IntCounterVec,
    pub token_requests: IntCounterVec,
    pub legacy_requests: IntCounterVec,
    pub legacy_hashes: IntGaugeVec,
    pub shadow_comparisons: IntCounterVec,
    pub oauth2_requests: IntCounterVec,
    pub lockouts: IntCounterVec,
    pub refresh: IntCounterVec,
    pub revocations: IntCounterVec,
    pub api_key_requests: IntCounterVec,
    pub api_key_changes: IntCounterVec,
    pub introspection_calls: IntCounterVec,
    pub introspection_cache: IntCounterVec,
    pub introspection_duration: HistogramVec,
    pub upstream_requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_healthy: IntGaugeVec,
    pub upstream_servers: IntGaugeVec,
    pub upstream_resolutions: IntCounterVec,
    pub upstream_ejections: IntCounterVec,
    pub upstream_down_tries: IntCounterVec,
    pub config_reloads: IntCounterVec,
    /// 1 while the config file holds keys a reload could not apply.
    pub config_restart_required: IntGauge,
    pub jwks: JwksMetrics,
    pub connections_open: IntGaugeVec,
    pub connections_closed: IntCounterVec,
    pub tunnels_open: IntGaugeVec,
    pub tunnels_closed: IntCounterVec,
    pub limited: IntCounterVec,
    pub rate_limit_fallbacks: IntCounterVec,
    pub in_flight: IntGaugeVec,
    pub trace_spans: IntCounterVec,
    pub log_lines_dropped: IntCounter,
    pub store: StoreMetrics,
}

/// External issuers' key sets, by issuer.
#[derive(Clone)]
pub struct JwksMetrics {
    /// Fetches of a provider's keys, by result.
    pub fetches: IntCounterVec,
    /// Keys held and used.
    pub keys: IntGaugeVec,
    /// Seconds since the last successful fetch (since start if none yet).
    pub age: GaugeVec,
}

/// One issuer's introspection counters, resolved once (no label lookup
/// per request).
#[derive(Clone)]
pub struct IntrospectionSeries {
    pub hits: IntCounter,
    pub misses: IntCounter,
    pub active: IntCounter,
    pub inactive: IntCounter,
    pub errors: IntCounter,
    pub duration: Histogram,
}

impl Metrics {
    pub fn introspection_series(&self, issuer: &str) -> IntrospectionSeries {
        let cache = |r: &str| self.introspection_cache.with_label_values(&[issuer, r]);
        let calls = |r: &str| self.introspection_calls.with_label_values(&[issuer, r]);
        IntrospectionSeries {
            hits: cache("hit"),
            misses: cache("miss"),
            active: calls("active"),
            inactive: calls("inactive"),
            errors: calls("error"),
            duration: self.introspection_duration.with_label_values(&[issuer]),
        }
    }
}

/// The operations the stores count failures of, by the `op` label they
/// give them: each series is exported at 0 from the start, so a dashboard
/// shows none failed rather than no data.
pub const STORE_OPERATIONS: &[&str] = &[
    "add_revocations",
    "api_key_uses",
    "api_keys",
    "browser_sessions_of",
    "claim",
    "clear_failures",
    "code_issued",
    "delete_api_key",
    "delete_client",
    "delete_refresh",
    "derive_token",
    "end_browser_session",
    "end_sso",
    "extend_refresh",
    "failures",
    "get_browser_session",
    "get_client",
    "get_refresh",
    "get_sso",
    "note_api_key_uses",
    "ping",
    "principal",
    "purge_expired",
    "put_api_keys",
    "put_browser_session",
    "put_client",
    "put_code",
    "put_principals",
    "put_refresh",
    "put_sso",
    "record_failures",
    "redeem_code",
    "registered_clients",
    "release_attempts",
    "release_claim",
    "replace_refresh",
    "reserve_attempt",
    "revocations",
    "scan",
    "signing_key",
    "sso_add_family",
    "subscribe",
    "take_rate",
    "touch_browser_session",
    "touch_client",
];

/// Why a tunnel ended, as `portero_tunnels_closed_total` labels it
/// (`tunnel::End::label`).
pub const TUNNEL_ENDS: &[&str] = &[
    "closed",
    "token_expired",
    "token_revoked",
    "idle_timeout",
    "shutdown",
];

/// What the store reports about itself; cloned into the store backend.
#[derive(Clone)]
pub struct StoreMetrics {
    /// Failed store operations, by operation.
    pub errors: IntCounterVec,
    /// From a revocation's timestamp to its arrival at this instance.
    pub propagation: Histogram,
    /// 1 while the store is reachable (and, for Redis, the revocation feed is live).
    pub up: IntGauge,
    /// The Redis master in use (`host:port`), at 1.
    pub master: IntGaugeVec,
}

/// The `limit` label's values.
pub const LIMITS: [&str; 4] = ["ip", "rate", "max_in_flight", "concurrency"];

impl Metrics {
    pub fn new(config: &Config) -> Metrics {
        let registry = Registry::new();
        let r = Registrar(&registry);
        // Registered in this order; /metrics lists the families by name.
        let m = Metrics {
            requests: requests::answered(&r),
            request_duration: requests::duration(&r),
            auth_decisions: requests::auth_decisions(&r),
            tokens_issued: tokens::issued(&r),
            token_requests: tokens::requests(&r),
            legacy_requests: tokens::legacy_requests(&r),
            shadow_comparisons: tokens::shadow_comparisons(&r),
            oauth2_requests: tokens::oauth2_requests(&r),
            lockouts: tokens::lockouts(&r),
            refresh: tokens::refresh(&r),
            revocations: tokens::revocations(&r),
            api_key_requests: tokens::api_key_requests(&r),
            api_key_changes: tokens::api_key_changes(&r),
            introspection_calls: tokens::introspection_calls(&r),
            introspection_cache: tokens::introspection_cache(&r),
            introspection_duration: tokens::introspection_duration(&r),
            upstream_requests: upstreams::requests(&r),
            upstream_duration: upstreams::duration(&r),
            legacy_hashes: tokens::legacy_hashes(&r),
            upstream_healthy: upstreams::healthy(&r),
            upstream_servers: upstreams::servers(&r),
            upstream_resolutions: upstreams::resolutions(&r),
            upstream_ejections: upstreams::ejections(&r),
            upstream_down_tries: upstreams::down_tries(&r),
            jwks: JwksMetrics::register(&r),
            config_reloads: upkeep::config_reloads(&r),
            config_restart_required: upkeep::config_restart_required(&r),
            connections_open: connections::open(&r),
            connections_closed: connections::closed(&r),
            tunnels_open: connections::tunnels_open(&r),
            tunnels_closed: connections::tunnels_closed(&r),
            trace_spans: upkeep::trace_spans(&r),
            log_lines_dropped: upkeep::log_lines_dropped(&r),
            limited: requests::limited(&r),
            rate_limit_fallbacks: requests::rate_limit_fallbacks(&r),
            in_flight: requests::in_flight(&r),
            store: StoreMetrics::register(&r),
            registry,
        };
        m.precreate_series(config);
        m
    }

    /// Creates the series operators alert on, so they read 0 rather than
    /// absent. (Each route's series are made with the route: `route_series`.)
    fn precreate_series(&self, config: &Config) {
        for issuer in &config.issuers {
            if let Some(accounts) = &issuer.accounts {
                self.precreate_issuer_series(issuer, accounts);
            }
        }
        self.store.up.set(1);
        for op in STORE_OPERATIONS {
            self.store.errors.with_label_values(&[op]);
        }
        for result in ["ok", "error"] {
            self.config_reloads.with_label_values(&[result]);
        }
        if config.span_export.is_some() {
            for result in ["exported", "failed", "dropped"] {
                self.trace_spans.with_label_values(&[result]);
            }
        }
        for kind in ["jti", "token", "subject", "refresh_token"] {
            self.revocations.with_label_values(&[kind]);
        }
        for u in &config.upstreams {
            self.upstream_healthy.with_label_values(&[&u.name]);
            self.upstream_servers.with_label_values(&[&u.name]);
            self.upstream_series(&u.name);
        }
    }

    /// The series of an issuer portero issues for: by its accounts' form,
    /// its principals, its shadow and its OAuth 2.0 endpoints.
    fn precreate_issuer_series(&self, i: &Issuer, e: &Accounts) {
        self.tokens_issued
            .with_label_values(&[&i.name, e.form.name()]);
        self.lockouts.with_label_values(&[&i.name]);
        if e.form == AccountForm::Dialect(Dialect::LoginRefresh) {
            for result in ["issued", "used", "refused"] {
                self.refresh.with_label_values(&[&i.name, result]);
            }
        }
        for p in e.principals.iter() {
            self.legacy_requests.with_label_values(&[&i.name, &p.login]);
        }
        self.legacy_requests
            .with_label_values(&[&i.name, "unknown"]);
        if i.shadow.is_some() {
            for result in ["same", "different", "error", "dropped"] {
                self.shadow_comparisons
                    .with_label_values(&[&i.name, result]);
            }
        }
        if i.oauth2.is_some() {
            self.tokens_issued.with_label_values(&[&i.name, "oauth2"]);
            for endpoint in ["metadata", "token", "revoke", "introspect"] {
                self.oauth2_requests
                    .with_label_values(&[&i.name, endpoint, "200", "ok"]);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl StoreMetrics {
    /// Metrics no registry exposes: for the CLI, tests and benches.
    pub fn detached() -> StoreMetrics {
        StoreMetrics {
            errors: IntCounterVec::new(Opts::new("store_errors", "-"), &["op"])
                .expect("valid metric"),
            propagation: Histogram::with_opts(HistogramOpts::new("propagation", "-"))
                .expect("valid metric"),
            up: IntGauge::new("store_up", "-").expect("valid metric"),
            master: IntGaugeVec::new(Opts::new("store_master", "-"), &["master"])
                .expect("valid metric"),
        }
    }
}

/// A bounded `status` label of the token endpoints' counters.
pub fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        // The authorization endpoint's and the sign-in form's redirects.
        303 => "303",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

/// A bounded `method` label.
pub fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthError;
    use crate::identity::Reason;

    /// An operator reading a refusal's reason finds it in the docs:
    /// every reason of `portero_auth_decisions_total` and of the token
    /// endpoints has its row in docs/operations.md, and each other fixed
    /// label value is named there.
    #[test]
    fn every_reason_is_named_in_the_operations_doc() {
        let doc = include_str!("../docs/operations.md");
        let row = |v: &str| doc.contains(&format!("\n| `{v}` |"));
        let denials = AuthError::ALL.iter().map(|e| e.reason());
        // Counted by the proxy without an AuthError.
        let unavailable = ["store_unavailable", "introspection_unavailable"];
        let answers = Reason::ALL.iter().map(|r| r.label());
        let rows: Vec<&str> = denials.chain(unavailable).chain(answers).collect();
        let missing: Vec<&&str> = rows.iter().filter(|r| !row(r)).collect();
        assert!(
            missing.is_empty(),
            "no row in docs/operations.md: {missing:?}"
        );
        let others = TUNNEL_ENDS.iter().chain(&LIMITS).chain(STORE_OPERATIONS);
        let missing: Vec<&&str> = others
            .filter(|v| !doc.contains(&format!("`{v}`")))
            .collect();
        assert!(missing.is_empty(), "not in docs/operations.md: {missing:?}");
    }
}
