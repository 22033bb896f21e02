//! Client connections and the tunnels (WebSocket) made of them: open now,
//! and ended by the gateway, by reason.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::register::Registrar;

pub(super) fn open(r: &Registrar) -> IntGaugeVec {
    r.gauge(
        "portero_connections_open",
        "Client connections open now, by listener (public, admin).",
        &["listener"],
    )
}

pub(super) fn closed(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_connections_closed_total",
        "Client connections the gateway ended or turned away, by listener and reason \
         (refused, evicted, header_timeout, idle_timeout).",
        &["listener", "reason"],
    )
}

pub(super) fn tunnels_open(r: &Registrar) -> IntGaugeVec {
    r.gauge(
        "portero_tunnels_open",
        "Upgraded connections (WebSocket) tunneled to an upstream now, by route.",
        &["route"],
    )
}

pub(super) fn tunnels_closed(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_tunnels_closed_total",
        "Tunnels ended, by route and reason (closed, token_expired, token_revoked, \
         idle_timeout, shutdown).",
        &["route", "reason"],
    )
}
