//! The gateway's own upkeep: config reloads, the request spans sent to a
//! collector, the access log, and the state store's health.

use prometheus::{IntCounter, IntCounterVec, IntGauge};

use super::register::Registrar;
use super::StoreMetrics;

pub(super) fn config_reloads(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_config_reloads_total",
        "Config reloads (admin API or SIGHUP), by result (ok, error).",
        &["result"],
    )
}

pub(super) fn config_restart_required(r: &Registrar) -> IntGauge {
    r.single_gauge(
        "portero_config_restart_required",
        "1 when the last reloaded config changed keys that take effect only after a restart.",
    )
}

pub(super) fn trace_spans(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_trace_spans_total",
        "Request spans for the OTLP collector, by result (exported, failed, dropped).",
        &["result"],
    )
}

pub(super) fn log_lines_dropped(r: &Registrar) -> IntCounter {
    r.single_counter(
        "portero_log_lines_dropped_total",
        "Access-log lines dropped because the log writer fell behind (requests never wait for it).",
    )
}

impl StoreMetrics {
    pub(super) fn register(r: &Registrar) -> StoreMetrics {
        StoreMetrics {
            errors: r.counter(
                "portero_store_errors_total",
                "Store operations that failed (unreachable, timed out or refused), by operation.",
                &["op"],
            ),
            propagation: r.single_histogram(
                "portero_revocation_propagation_seconds",
                "From a revocation being written to its arrival at this instance's cache.",
            ),
            master: r.gauge(
                "portero_store_master",
                "The Redis master in use, by address (with sentinels, the one they name now).",
                &["master"],
            ),
            up: r.single_gauge(
                "portero_store_up",
                "1 while the state store is reachable, 0 while this instance runs from its caches.",
            ),
        }
    }
}
