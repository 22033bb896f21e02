//! The upstream groups: requests forwarded and their latency, servers
//! resolved, healthy and ejected, and tried while marked down.

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};

use super::register::Registrar;

pub(super) fn requests(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_upstream_requests_total",
        "Requests forwarded upstream, by upstream and outcome.",
        &["upstream", "outcome"],
    )
}

pub(super) fn duration(r: &Registrar) -> HistogramVec {
    r.histogram(
        "portero_upstream_duration_seconds",
        "Time from forwarding a request to its response head, by upstream.",
        &["upstream"],
    )
}

pub(super) fn healthy(r: &Registrar) -> IntGaugeVec {
    r.gauge(
        "portero_upstream_healthy_servers",
        "Servers of each upstream that pass their health check.",
        &["upstream"],
    )
}

pub(super) fn servers(r: &Registrar) -> IntGaugeVec {
    r.gauge(
        "portero_upstream_servers",
        "Servers of each upstream, its names resolved: healthy or not.",
        &["upstream"],
    )
}

pub(super) fn resolutions(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_upstream_resolutions_total",
        "DNS lookups of upstream server names, by upstream and result (ok, error).",
        &["upstream", "result"],
    )
}

pub(super) fn ejections(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_upstream_ejections_total",
        "Upstream servers taken out for a cool-down after failing requests in a row.",
        &["upstream"],
    )
}

pub(super) fn down_tries(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_upstream_down_tries_total",
        "Tries of an upstream server marked down (by its health check or an ejection), made because every server of the upstream was.",
        &["upstream"],
    )
}
