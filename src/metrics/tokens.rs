//! Tokens and the logins behind them: minted and asked for at the token
//! endpoints (legacy, shadowed and OAuth 2.0), refreshed, revoked; lockouts
//! and legacy password hashes; and the keys of external issuers.

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};

use super::register::Registrar;
use super::JwksMetrics;

pub(super) fn issued(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_tokens_issued_total",
        "Tokens minted by the token endpoints, by issuer and dialect (oauth2: the standard endpoints).",
        &["issuer", "dialect"],
    )
}

pub(super) fn requests(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_token_requests_total",
        "Legacy token-endpoint answers, by issuer, status and reason (docs/operations.md).",
        &["issuer", "status", "reason"],
    )
}

pub(super) fn legacy_requests(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_legacy_requests_total",
        "Requests to the legacy token endpoints, by issuer and the principal named \
         (unknown: none, or one not configured): who still uses the old door.",
        &["issuer", "client"],
    )
}

pub(super) fn shadow_comparisons(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_shadow_comparisons_total",
        "Token requests whose answer was compared with the legacy service's, by issuer \
         and result (same, different, error: no legacy answer, dropped: the queue was full).",
        &["issuer", "result"],
    )
}

pub(super) fn oauth2_requests(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_oauth2_requests_total",
        "Requests to the standard OAuth 2.0 endpoints, by issuer, endpoint, status and \
         reason (docs/operations.md).",
        &["issuer", "endpoint", "status", "reason"],
    )
}

pub(super) fn lockouts(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_lockouts_total",
        "Logins that started a lockout cool-down, by issuer.",
        &["issuer"],
    )
}

pub(super) fn refresh(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_refresh_tokens_total",
        "Refresh tokens issued, used and refused, by issuer.",
        &["issuer", "result"],
    )
}

pub(super) fn revocations(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_revocations_total",
        "Revocations accepted by the admin API, by kind.",
        &["kind"],
    )
}

pub(super) fn api_key_requests(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_api_key_requests_total",
        "Requests that presented a valid API key, by issuer and consumer (the \
         first 500 consumers by name, the rest as `other`).",
        &["issuer", "consumer"],
    )
}

pub(super) fn api_key_changes(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_api_key_changes_total",
        "API keys made, rotated and revoked through the admin API, by issuer and change.",
        &["issuer", "change"],
    )
}

pub(super) fn introspection_calls(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_introspection_calls_total",
        "Calls to identity providers' introspection endpoints, by issuer and \
         result (active, inactive, error).",
        &["issuer", "result"],
    )
}

pub(super) fn introspection_cache(r: &Registrar) -> IntCounterVec {
    r.counter(
        "portero_introspection_cache_total",
        "Opaque tokens looked up among kept introspection answers, by issuer \
         and result (hit, miss).",
        &["issuer", "result"],
    )
}

pub(super) fn introspection_duration(r: &Registrar) -> HistogramVec {
    r.histogram(
        "portero_introspection_duration_seconds",
        "Introspection calls' latency, by issuer.",
        &["issuer"],
    )
}

pub(super) fn legacy_hashes(r: &Registrar) -> IntGaugeVec {
    r.gauge(
        "portero_legacy_hashes",
        "Users whose stored hash is not argon2id yet, by issuer (user stores \
         with legacy_count; counted once a minute).",
        &["issuer"],
    )
}

impl JwksMetrics {
    pub(super) fn register(r: &Registrar) -> JwksMetrics {
        JwksMetrics {
            fetches: r.counter(
                "portero_jwks_fetches_total",
                "Fetches of an external issuer's discovery document and JWKS, by issuer and result (ok, unreachable, bad_status, invalid).",
                &["issuer", "result"],
            ),
            keys: r.gauge(
                "portero_jwks_keys",
                "Verification keys held for an external issuer (0 once dropped as stale).",
                &["issuer"],
            ),
            age: r.float_gauge(
                "portero_jwks_age_seconds",
                "Seconds since an external issuer's keys were last fetched (since start, before the first success).",
                &["issuer"],
            ),
        }
    }
}
