//! Whether a request may go on: its route's limits kept under a key, and
//! its credential against the route's policy, each refusal counted.

use std::net::IpAddr;
use std::sync::Arc;

use http::request::Parts;
use http::HeaderMap;

use super::{Gateway, RequestContext};
use crate::auth::validate::Verified;
use crate::auth::AuthError;
use crate::config::{OutagePolicy, Policy};
use crate::limits::{Caller, Phase, Refusal};
use crate::live::Live;
use crate::respond::RequestError;

impl Gateway {
    /// The route's limits kept under a key: what the request says (`token:
    /// None`), or who it is. Awaited only where `Limiter::keys_at` says a
    /// limit is so kept (a cluster-wide one asks the store); the address
    /// rules and the route's slot are `Limiter::enter`'s, checked first.
    pub(super) async fn admit(
        &self,
        live: &Live,
        index: usize,
        headers: &HeaderMap,
        ip: IpAddr,
        token: Option<&Verified>,
        ctx: &mut RequestContext,
    ) -> Result<(), Refusal> {
        let phase = match token {
            None => Phase::Request,
            Some(_) => Phase::Token,
        };
        let caller = Caller {
            ip,
            headers,
            token,
            principal_rate: token
                .and_then(|t| live.principal_rates.get(&t.issuer)?.get(t.sub()?).copied()),
        };
        let store = self.shared.store.as_ref();
        if let Some(report) = live.limiters[index]
            .admit(phase, &caller, store, &mut ctx.held)
            .await?
        {
            ctx.rate = Some(report);
        }
        Ok(())
    }

    /// The route's policy against the request's credential, counted either way.
    pub(super) fn authorize(
        &self,
        live: &Live,
        index: usize,
        policy: &Policy,
        parts: &Parts,
    ) -> Result<Arc<Verified>, RequestError> {
        let shared = &self.shared;
        if live.settings.on_outage == OutagePolicy::FailClosed && !shared.store.reachable() {
            self.count_denial(live, index, "store_unavailable", None);
            return Err(RequestError::StoreUnavailable);
        }
        let result = policy
            .token(&parts.headers, parts.uri.query())
            .and_then(|token| {
                let result = live.validator.validate(&token, policy, shared.clock.unix());
                if let Err(AuthError::UnknownKey) = result {
                    shared.external.unknown_kid(&token);
                }
                result
            });
        match result {
            Ok(verified) => {
                if let Some(allowed) = &live.route_series[index].allowed {
                    allowed.inc();
                }
                Ok(verified)
            }
            Err(e) => Err(self.denied(live, index, e)),
        }
    }

    /// A token refused on route `index`, counted.
    pub(super) fn denied(&self, live: &Live, index: usize, e: AuthError) -> RequestError {
        self.count_denial(live, index, e.reason(), Some(e));
        RequestError::Denied(e)
    }

    /// A refusal on route `index` for `reason`: a token's (`error`) is
    /// counted on the series made with the route, found without hashing
    /// labels; any other on the series its labels name.
    pub(super) fn count_denial(
        &self,
        live: &Live,
        index: usize,
        reason: &str,
        error: Option<AuthError>,
    ) {
        let route = &live.routes.routes()[index];
        let made = error.and_then(|e| live.route_series[index].denied.get(e.index()));
        match made {
            Some(counter) => counter.inc(),
            None => self
                .shared
                .metrics
                .auth_decisions
                .with_label_values(&[&route.name, "deny", reason])
                .inc(),
        }
        tracing::debug!(route = %route.name, reason, "denied");
    }
}
