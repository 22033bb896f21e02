//! What clients asked of the gateway: requests answered and how long they
//! took, token decisions on protected routes, and the requests the limits
//! turned away or are holding now.

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};

use super::register::Registrar;

pub(super) fn answered(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_http_requests_total",
        "HTTP requests answered, by route, method and status.",
        &["route", "method", "status"],
    )
}

pub(super) fn duration(r: &Registrar) -> HistogramVec {
    r.histogram(
        "portero_http_request_duration_seconds",
        "Time from request to response head (the body then streams), by route.",
        &["route"],
    )
}

pub(super) fn auth_decisions(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_auth_decisions_total",
        "Bearer-token decisions on protected routes, by route, result and reason.",
        &["route", "result", "reason"],
    )
}

pub(super) fn limited(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_limited_requests_total",
        "Requests turned away by a limit, by route and limit (ip, rate, max_in_flight, concurrency).",
        &["route", "limit"],
    )
}

pub(super) fn rate_limit_fallbacks(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_rate_limit_fallbacks_total",
        "Cluster-wide rate limits decided by this instance's own count because Redis did not answer, by route.",
        &["route"],
    )
}

pub(super) fn in_flight(r: &Registrar) -> IntGaugeVec {
    r.gauge(
        "portero_requests_in_flight",
        "Requests being served now (until their response body ends), by route.",
        &["route"],
    )
}
