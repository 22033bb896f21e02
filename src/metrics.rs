//! Every `portero_*` metric, in a registry of the gateway's own (not the
//! process default, so two gateways can live in one process). Labels are
//! bounded by the config: route, upstream and issuer names, methods from a
//! fixed list, status codes, and reason codes. Never a subject or a token.

use std::sync::RwLock;

use http::StatusCode;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::auth::AuthError;
use crate::config::{Config, Dialect, Route, RouteAction};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub auth_decisions: IntCounterVec,
    pub tokens_issued: IntCounterVec,
    pub token_requests: IntCounterVec,
    pub legacy_requests: IntCounterVec,
    pub legacy_hashes: IntGaugeVec,
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

/// One listener's connection series (`connections.rs`).
#[derive(Clone)]
pub struct ConnectionSeries {
    pub open: IntGauge,
    /// Turned away at the cap with every open connection busy.
    pub refused: IntCounter,
    /// Turned away: the client address held its share of connections.
    pub refused_per_ip: IntCounter,
    /// Closed at the cap to make room for a newer connection.
    pub evicted: IntCounter,
    pub header_timeouts: IntCounter,
    pub idle_timeouts: IntCounter,
}

/// The operations the stores count failures of, by the `op` label they
/// give them: each series is exported at 0 from the start, so a dashboard
/// shows none failed rather than no data.
pub const STORE_OPERATIONS: &[&str] = &[
    "add_revocations",
    "clear_failures",
    "delete_refresh",
    "extend_refresh",
    "failures",
    "get_refresh",
    "ping",
    "purge_expired",
    "put_refresh",
    "record_failures",
    "release_attempts",
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
}

/// The series every request on one route touches, looked up by label once
/// (when the route is loaded) rather than on every request.
pub struct RouteSeries {
    pub requests: RouteRequests,
    pub duration: Histogram,
    pub in_flight: IntGauge,
    /// Decisions `allow`/`ok`, on a protected route.
    pub allowed: Option<IntCounter>,
    /// Decisions `deny`, by reason in `AuthError::ALL`'s order, on a
    /// protected route.
    pub denied: Vec<IntCounter>,
}

/// A route's `portero_http_requests_total` series, by method and status, kept
/// as they are first used: a request finds its counter in a short list
/// instead of hashing three label values.
pub struct RouteRequests {
    all: IntCounterVec,
    route: String,
    seen: RwLock<Vec<(&'static str, StatusCode, IntCounter)>>,
}

/// More (method, status) pairs than a route sees in practice; past it the
/// labels are looked up each time.
const SEEN_SERIES: usize = 32;

impl RouteRequests {
    pub fn inc(&self, method: &'static str, status: StatusCode) {
        let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
        if let Some((.., counter)) = seen.iter().find(|(m, s, _)| *s == status && *m == method) {
            return counter.inc();
        }
        drop(seen);
        let counter = self
            .all
            .with_label_values(&[&self.route, method, status.as_str()]);
        counter.inc();
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        if seen.len() < SEEN_SERIES && !seen.iter().any(|(m, s, _)| *s == status && *m == method) {
            seen.push((method, status, counter));
        }
    }
}

/// The series every forwarded request of one upstream group touches.
pub struct UpstreamSeries {
    pub ok: IntCounter,
    pub error: IntCounter,
    pub duration: Histogram,
    /// Lookups of the group's server names, by result.
    pub resolved: IntCounter,
    pub resolve_failed: IntCounter,
    /// Servers taken out for failing requests in a row.
    pub ejections: IntCounter,
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

    /// Creates (if need be) a route's series, at start and on every reload,
    /// and returns those each of its requests touches.
    pub fn route_series(&self, route: &Route) -> RouteSeries {
        let protected = matches!(
            route.action,
            RouteAction::Proxy {
                policy: Some(_),
                ..
            }
        );
        let denied = match protected {
            true => AuthError::ALL
                .iter()
                .map(|e| {
                    self.auth_decisions
                        .with_label_values(&[&route.name, "deny", e.reason()])
                })
                .collect(),
            false => Vec::new(),
        };
        if !route.limits.is_empty() {
            for limit in LIMITS {
                self.limited.with_label_values(&[&route.name, limit]);
            }
        }
        if matches!(&route.action, RouteAction::Proxy { upgrades, .. } if !upgrades.is_empty()) {
            self.tunnels_open.with_label_values(&[&route.name]);
            for end in TUNNEL_ENDS {
                self.tunnels_closed
                    .with_label_values(&[route.name.as_str(), end]);
            }
        }
        RouteSeries {
            requests: RouteRequests {
                all: self.requests.clone(),
                route: route.name.clone(),
                seen: RwLock::new(Vec::new()),
            },
            duration: self.request_duration.with_label_values(&[&route.name]),
            in_flight: self.in_flight.with_label_values(&[&route.name]),
            allowed: protected.then(|| {
                self.auth_decisions
                    .with_label_values(&[&route.name, "allow", "ok"])
            }),
            denied,
        }
    }

    /// Creates (if need be) and returns an upstream group's per-request series.
    pub fn upstream_series(&self, upstream: &str) -> UpstreamSeries {
        UpstreamSeries {
            ok: self.upstream_requests.with_label_values(&[upstream, "ok"]),
            error: self
                .upstream_requests
                .with_label_values(&[upstream, "error"]),
            duration: self.upstream_duration.with_label_values(&[upstream]),
            resolved: self
                .upstream_resolutions
                .with_label_values(&[upstream, "ok"]),
            resolve_failed: self
                .upstream_resolutions
                .with_label_values(&[upstream, "error"]),
            ejections: self.upstream_ejections.with_label_values(&[upstream]),
        }
    }

    /// A listener's connection series (`public` or `admin`).
    pub fn connection_series(&self, listener: &str) -> ConnectionSeries {
        let closed = |reason| {
            self.connections_closed
                .with_label_values(&[listener, reason])
        };
        ConnectionSeries {
            open: self.connections_open.with_label_values(&[listener]),
            refused: closed("refused"),
            refused_per_ip: closed("refused_per_ip"),
            evicted: closed("evicted"),
            header_timeouts: closed("header_timeout"),
            idle_timeouts: closed("idle_timeout"),
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

impl ConnectionSeries {
    /// Series no registry exposes, for unit tests.
    pub fn detached() -> ConnectionSeries {
        let counter = || IntCounter::new("c", "-").expect("valid metric");
        ConnectionSeries {
            open: IntGauge::new("open", "-").expect("valid metric"),
            refused: counter(),
            refused_per_ip: counter(),
            evicted: counter(),
            header_timeouts: counter(),
            idle_timeouts: counter(),
        }
    }
}

impl UpstreamSeries {
    /// Series no registry exposes, for unit tests.
    pub fn detached() -> UpstreamSeries {
        let counter = || IntCounter::new("c", "-").expect("valid metric");
        UpstreamSeries {
            ok: counter(),
            error: counter(),
            duration: Histogram::with_opts(HistogramOpts::new("d", "-")).expect("valid metric"),
            resolved: counter(),
            resolve_failed: counter(),
            ejections: counter(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_s_requests_count_in_their_own_method_and_status_series() {
        let all = IntCounterVec::new(
            Opts::new("portero_http_requests_total", "requests"),
            &["route", "method", "status"],
        )
        .unwrap();
        let requests = RouteRequests {
            all: all.clone(),
            route: "orders".into(),
            seen: RwLock::new(Vec::new()),
        };
        for _ in 0..3 {
            requests.inc("GET", StatusCode::OK);
        }
        requests.inc("POST", StatusCode::OK);
        requests.inc("GET", StatusCode::NOT_FOUND);
        let count = |method, status| all.with_label_values(&["orders", method, status]).get();
        assert_eq!(count("GET", "200"), 3);
        assert_eq!(count("POST", "200"), 1);
        assert_eq!(count("GET", "404"), 1);
        // Past the list's length, series are still counted (by label lookup).
        for code in 200..(200 + SEEN_SERIES as u16 + 5) {
            requests.inc("PUT", StatusCode::from_u16(code).unwrap());
        }
        assert_eq!(requests.seen.read().unwrap().len(), SEEN_SERIES);
        assert_eq!(count("PUT", "236"), 1);
    }
}
