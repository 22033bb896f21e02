//! Every `portero_*` metric, in a registry of the gateway's own (not the
//! process default, so two gateways can live in one process). Labels are
//! bounded by the config: route, upstream and issuer names, methods from a
//! fixed list, status codes, and reason codes. Never a subject or a token.
//! The series one route, upstream or listener touches are resolved once,
//! in `metrics/series.rs`.

mod series;

pub use series::{ConnectionSeries, RouteRequests, RouteSeries, UpstreamSeries};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::{Config, Dialect};

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
    pub upstream_requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_healthy: IntGaugeVec,
    pub upstream_servers: IntGaugeVec,
    pub upstream_resolutions: IntCounterVec,
    pub upstream_ejections: IntCounterVec,
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

/// The operations the stores count failures of, by the `op` label they
/// give them: each series is exported at 0 from the start, so a dashboard
/// shows none failed rather than no data.
pub const STORE_OPERATIONS: &[&str] = &[
    "add_revocations",
    "clear_failures",
    "delete_refresh",
    "derive_token",
    "extend_refresh",
    "failures",
    "get_refresh",
    "ping",
    "principal",
    "purge_expired",
    "put_principals",
    "put_refresh",
    "record_failures",
    "release_attempts",
    "replace_refresh",
    "reserve_attempt",
    "revocations",
    "scan",
    "signing_key",
    "subscribe",
    "take_rate",
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

/// Latency buckets from 100 µs to 10 s: a gateway's own cost is sub-millisecond.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The `limit` label's values.
pub const LIMITS: [&str; 4] = ["ip", "rate", "max_in_flight", "concurrency"];

impl Metrics {
    pub fn new(config: &Config) -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let m = Metrics {
            requests: counter(
                "portero_http_requests_total",
                "HTTP requests answered, by route, method and status.",
                &["route", "method", "status"],
            ),
            request_duration: histogram(
                "portero_http_request_duration_seconds",
                "Time from request to response head (the body then streams), by route.",
                &["route"],
            ),
            auth_decisions: counter(
                "portero_auth_decisions_total",
                "Bearer-token decisions on protected routes, by route, result and reason.",
                &["route", "result", "reason"],
            ),
            tokens_issued: counter(
                "portero_tokens_issued_total",
                "Tokens minted by the token endpoints, by issuer and dialect (oauth2: the standard endpoints).",
                &["issuer", "dialect"],
            ),
            token_requests: counter(
                "portero_token_requests_total",
                "Token-endpoint answers, by issuer and status.",
                &["issuer", "status"],
            ),
            legacy_requests: counter(
                "portero_legacy_requests_total",
                "Requests to the legacy token endpoints, by issuer and the principal named \
                 (unknown: none, or one not configured): who still uses the old door.",
                &["issuer", "client"],
            ),
            shadow_comparisons: counter(
                "portero_shadow_comparisons_total",
                "Token requests whose answer was compared with the legacy service's, by issuer \
                 and result (same, different, error: no legacy answer, dropped: the queue was full).",
                &["issuer", "result"],
            ),
            oauth2_requests: counter(
                "portero_oauth2_requests_total",
                "Requests to the standard OAuth 2.0 endpoints, by issuer, endpoint and status.",
                &["issuer", "endpoint", "status"],
            ),
            lockouts: counter(
                "portero_lockouts_total",
                "Logins that started a lockout cool-down, by issuer.",
                &["issuer"],
            ),
            refresh: counter(
                "portero_refresh_tokens_total",
                "Refresh tokens issued, used and refused, by issuer.",
                &["issuer", "result"],
            ),
            revocations: counter(
                "portero_revocations_total",
                "Revocations accepted by the admin API, by kind.",
                &["kind"],
            ),
            upstream_requests: counter(
                "portero_upstream_requests_total",
                "Requests forwarded upstream, by upstream and outcome.",
                &["upstream", "outcome"],
            ),
            upstream_duration: histogram(
                "portero_upstream_duration_seconds",
                "Time from forwarding a request to its response head, by upstream.",
                &["upstream"],
            ),
            legacy_hashes: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "portero_legacy_hashes",
                        "Users whose stored hash is not argon2id yet, by issuer (user stores \
                         with legacy_count; counted once a minute).",
                    ),
                    &["issuer"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            upstream_healthy: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "portero_upstream_healthy_servers",
                        "Servers of each upstream that pass their health check.",
                    ),
                    &["upstream"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            upstream_servers: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "portero_upstream_servers",
                        "Servers of each upstream, its names resolved: healthy or not.",
                    ),
                    &["upstream"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            upstream_resolutions: counter(
                "portero_upstream_resolutions_total",
                "DNS lookups of upstream server names, by upstream and result (ok, error).",
                &["upstream", "result"],
            ),
            upstream_ejections: counter(
                "portero_upstream_ejections_total",
                "Upstream servers taken out for a cool-down after failing requests in a row.",
                &["upstream"],
            ),
            jwks: JwksMetrics {
                fetches: counter(
                    "portero_jwks_fetches_total",
                    "Fetches of an external issuer's discovery document and JWKS, by issuer and result (ok, unreachable, bad_status, invalid).",
                    &["issuer", "result"],
                ),
                keys: {
                    let g = IntGaugeVec::new(
                        Opts::new(
                            "portero_jwks_keys",
                            "Verification keys held for an external issuer (0 once dropped as stale).",
                        ),
                        &["issuer"],
                    )
                    .expect("valid metric");
                    registry
                        .register(Box::new(g.clone()))
                        .expect("registered once");
                    g
                },
                age: {
                    let g = GaugeVec::new(
                        Opts::new(
                            "portero_jwks_age_seconds",
                            "Seconds since an external issuer's keys were last fetched (since start, before the first success).",
                        ),
                        &["issuer"],
                    )
                    .expect("valid metric");
                    registry
                        .register(Box::new(g.clone()))
                        .expect("registered once");
                    g
                },
            },
            config_reloads: counter(
                "portero_config_reloads_total",
                "Config reloads (admin API or SIGHUP), by result (ok, error).",
                &["result"],
            ),
            config_restart_required: {
                let g = IntGauge::new(
                    "portero_config_restart_required",
                    "1 when the last reloaded config changed keys that take effect only after a restart.",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            connections_open: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "portero_connections_open",
                        "Client connections open now, by listener (public, admin).",
                    ),
                    &["listener"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            connections_closed: counter(
                "portero_connections_closed_total",
                "Client connections the gateway ended or turned away, by listener and reason \
                 (refused, evicted, header_timeout, idle_timeout).",
                &["listener", "reason"],
            ),
            tunnels_open: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "portero_tunnels_open",
                        "Upgraded connections (WebSocket) tunneled to an upstream now, by route.",
                    ),
                    &["route"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            tunnels_closed: counter(
                "portero_tunnels_closed_total",
                "Tunnels ended, by route and reason (closed, token_expired, token_revoked, \
                 idle_timeout, shutdown).",
                &["route", "reason"],
            ),
            trace_spans: counter(
                "portero_trace_spans_total",
                "Request spans for the OTLP collector, by result (exported, failed, dropped).",
                &["result"],
            ),
            limited: counter(
                "portero_limited_requests_total",
                "Requests turned away by a limit, by route and limit (ip, rate, max_in_flight, concurrency).",
                &["route", "limit"],
            ),
            rate_limit_fallbacks: counter(
                "portero_rate_limit_fallbacks_total",
                "Cluster-wide rate limits decided by this instance's own count because Redis did not answer, by route.",
                &["route"],
            ),
            in_flight: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "portero_requests_in_flight",
                        "Requests being served now (until their response body ends), by route.",
                    ),
                    &["route"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            store: StoreMetrics {
                errors: counter(
                    "portero_store_errors_total",
                    "Store operations that failed (unreachable, timed out or refused), by operation.",
                    &["op"],
                ),
                propagation: {
                    let h = Histogram::with_opts(
                        HistogramOpts::new(
                            "portero_revocation_propagation_seconds",
                            "From a revocation being written to its arrival at this instance's cache.",
                        )
                        .buckets(BUCKETS.to_vec()),
                    )
                    .expect("valid metric");
                    registry
                        .register(Box::new(h.clone()))
                        .expect("registered once");
                    h
                },
                master: {
                    let g = IntGaugeVec::new(
                        Opts::new(
                            "portero_store_master",
                            "The Redis master in use, by address (with sentinels, the one they name now).",
                        ),
                        &["master"],
                    )
                    .expect("valid metric");
                    registry
                        .register(Box::new(g.clone()))
                        .expect("registered once");
                    g
                },
                up: {
                    let g = IntGauge::new(
                        "portero_store_up",
                        "1 while the state store is reachable, 0 while this instance runs from its caches.",
                    )
                    .expect("valid metric");
                    registry
                        .register(Box::new(g.clone()))
                        .expect("registered once");
                    g
                },
            },
            registry,
        };
        // Pre-create the series operators alert on, so they read 0 rather than absent.
        // (Each route's series are made with the route: `route_series`.)
        for i in &config.issuers {
            if let Some(e) = &i.endpoint {
                m.tokens_issued
                    .with_label_values(&[&i.name, e.dialect.name()]);
                m.lockouts.with_label_values(&[&i.name]);
                if e.dialect == Dialect::LoginRefresh {
                    for result in ["issued", "used", "refused"] {
                        m.refresh.with_label_values(&[&i.name, result]);
                    }
                }
                for p in e.principals.iter() {
                    m.legacy_requests.with_label_values(&[&i.name, &p.login]);
                }
                m.legacy_requests.with_label_values(&[&i.name, "unknown"]);
                if i.shadow.is_some() {
                    for result in ["same", "different", "error", "dropped"] {
                        m.shadow_comparisons.with_label_values(&[&i.name, result]);
                    }
                }
                if i.oauth2.is_some() {
                    m.tokens_issued.with_label_values(&[&i.name, "oauth2"]);
                    for endpoint in ["metadata", "token", "revoke", "introspect"] {
                        m.oauth2_requests
                            .with_label_values(&[&i.name, endpoint, "200"]);
                    }
                }
            }
        }
        m.store.up.set(1);
        for op in STORE_OPERATIONS {
            m.store.errors.with_label_values(&[op]);
        }
        for result in ["ok", "error"] {
            m.config_reloads.with_label_values(&[result]);
        }
        if config.span_export.is_some() {
            for result in ["exported", "failed", "dropped"] {
                m.trace_spans.with_label_values(&[result]);
            }
        }
        for kind in ["jti", "token", "subject", "refresh_token"] {
            m.revocations.with_label_values(&[kind]);
        }
        for u in &config.upstreams {
            m.upstream_healthy.with_label_values(&[&u.name]);
            m.upstream_servers.with_label_values(&[&u.name]);
            m.upstream_series(&u.name);
        }
        m
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
