//! The series one route, upstream group or listener touches on every
//! request, resolved by label once (when the config is loaded) rather than
//! per request.

use std::sync::RwLock;

use http::StatusCode;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge};

use super::{Metrics, LIMITS, TUNNEL_ENDS};
use crate::auth::AuthError;
use crate::config::{Route, RouteAction};

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
    /// Tries of a server marked down, every one of the group being so.
    pub down_tries: IntCounter,
}

impl Metrics {
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
            down_tries: self.upstream_down_tries.with_label_values(&[upstream]),
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
            down_tries: counter(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

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
