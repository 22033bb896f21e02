//! Whether a request may go on: its route's slot and limits (a token
//! endpoint's rate limit answered in its dialect's words), and its
//! credential against the route's policy, each refusal counted.

use std::net::IpAddr;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, HeaderName, Response};

use super::{Gateway, RequestContext};
use crate::auth::validate::Verified;
use crate::auth::AuthError;
use crate::config::{Endpoint, OutagePolicy, Policy, Route, RouteAction};
use crate::introspection::NotAdmitted;
use crate::issuer::Transport;
use crate::limits::{Caller, Limit, Phase, Refusal};
use crate::live::{IssuerId, Live, RouteId};
use crate::oauth2;
use crate::respond::{self, GatewayBody, RequestError};
use crate::rule::{self, Rule};

impl Gateway {
    /// The route's slot and the limits kept by what the request says. A
    /// token endpoint's rate limit is answered in its dialect's words (the
    /// `Ok(Some(..))`), before its body is read or any secret checked.
    pub(super) async fn enter_route(
        &self,
        live: &Live,
        index: RouteId,
        route: &Route,
        parts: &Parts,
        ip: IpAddr,
        ctx: &mut RequestContext,
    ) -> Result<Option<Response<GatewayBody>>, RequestError> {
        let limiter = &live.route(index).limiter;
        let entered = match limiter.enter(ip, &mut ctx.held) {
            Ok(()) if limiter.keys_at(Phase::Request) => {
                self.admit_by_key(live, index, &parts.headers, ip, None, ctx)
                    .await
            }
            entered => entered,
        };
        let Err(refusal) = entered else {
            return Ok(None);
        };
        let (RouteAction::Issue { issuer, endpoint }, Limit::Rate) = (&route.action, refusal.limit)
        else {
            return Err(ctx.refused(refusal));
        };
        ctx.rate = refusal.report;
        if *endpoint == Endpoint::OAuth2 {
            let answer = oauth2::transport_error(Transport::RateLimited);
            return Ok(Some(respond::oauth2_answer(answer)));
        }
        let issuer = live.issuer(IssuerId(*issuer));
        let reply = self.refuse_login(live, issuer, parts, Transport::RateLimited);
        Ok(Some(respond::legacy_answer(
            reply,
            issuer.config.legacy.as_ref(),
        )))
    }

    /// The route's limits kept under a key: what the request says (`token:
    /// None`), or who it is. Awaited only where `Limiter::keys_at` says a
    /// limit is so kept (a cluster-wide one asks the store); the address
    /// rules and the route's slot are `Limiter::enter`'s, checked first.
    pub(super) async fn admit_by_key(
        &self,
        live: &Live,
        index: RouteId,
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
            arrived: ctx.arrived,
            ip,
            headers,
            token,
            // Most issuers set no principal's rate: no subject is looked up.
            principal_rate: token.and_then(|t| {
                let rates = &live.issuer(IssuerId(t.issuer)).principal_rates;
                match rates.is_empty() {
                    true => None,
                    false => rates.get(t.sub()?).copied(),
                }
            }),
        };
        let limiter = &live.route(index).limiter;
        let report = match limiter.shares_at(phase) {
            false => limiter.admit_here(phase, &caller, &mut ctx.held)?,
            // Boxed: the store's round trip rides in no other request's future.
            true => {
                let store = self.shared.store.as_ref();
                Box::pin(limiter.admit(phase, &caller, store, &mut ctx.held)).await?
            }
        };
        if report.is_some() {
            ctx.rate = report;
        }
        Ok(())
    }

    /// The route's policy against the request's credential, counted either way.
    pub(super) async fn admit_token(
        &self,
        live: &Live,
        index: RouteId,
        policy: &Policy,
        parts: &Parts,
    ) -> Result<Arc<Verified>, RequestError> {
        self.store_outage(live, index)?;
        let verified = match policy.token(&parts.headers, parts.uri.query()) {
            Ok(token) => self.verify(live, policy, &token).await,
            Err(e) => Err(NotAdmitted::Denied(e)),
        };
        let verified = match verified {
            Ok(verified) => verified,
            Err(NotAdmitted::Denied(e)) => return Err(self.denied(live, index, e)),
            Err(NotAdmitted::Unavailable) => {
                self.count_denial(live, index, "introspection_unavailable", None);
                return Err(RequestError::IntrospectionUnavailable);
            }
        };
        self.admit_identity(live, index, policy, parts, &verified)?;
        Ok(verified)
    }

    /// Refuses every credential while the store is out of reach, if the
    /// gateway is told to fail closed (`on_outage`).
    #[inline]
    pub(super) fn store_outage(&self, live: &Live, index: RouteId) -> Result<(), RequestError> {
        if live.settings.on_outage == OutagePolicy::FailClosed && !self.shared.store.reachable() {
            self.count_denial(live, index, "store_unavailable", None);
            return Err(RequestError::StoreUnavailable);
        }
        Ok(())
    }

    /// The tail every admitted identity passes, a token's or a session's:
    /// the route's rule, then the count of requests allowed. Inlined: on
    /// the token path it is a few instructions, not worth a call.
    #[inline]
    pub(super) fn admit_identity(
        &self,
        live: &Live,
        index: RouteId,
        policy: &Policy,
        parts: &Parts,
        verified: &Verified,
    ) -> Result<(), RequestError> {
        if let Some(rule) = &policy.rule {
            if !rule_admits(live, rule, verified, parts) {
                return Err(self.denied(live, index, AuthError::RuleRefused));
            }
        }
        if let Some(allowed) = &live.route(index).series.allowed {
            allowed.inc();
        }
        Ok(())
    }

    /// The credential, as the route takes it: an API key, a JWT, or an
    /// opaque token its issuer's provider is asked about. Awaits only
    /// for an opaque token whose answer is not kept.
    async fn verify(
        &self,
        live: &Live,
        policy: &Policy,
        token: &str,
    ) -> Result<Arc<Verified>, NotAdmitted> {
        let now = self.shared.clock.unix();
        if policy.takes_as_api_key(token) {
            return live
                .api_keys
                .validate(token, policy, now, &live.validator)
                .map_err(NotAdmitted::Denied);
        }
        let introspector = policy
            .introspect
            .and_then(|issuer| live.issuer(IssuerId(issuer)).introspector.as_ref());
        if let Some(introspector) = introspector.filter(|_| token.split('.').count() != 3) {
            // Opaque: only the provider can read it.
            return introspector
                .validate(token, policy, now, &live.validator)
                .await;
        }
        let jwt = self.validate_jwt(live, policy, token, now);
        if !matches!(jwt, Err(AuthError::UnknownKey | AuthError::Malformed)) {
            return jwt.map_err(NotAdmitted::Denied);
        }
        // Shaped as a JWT, but no key reads it: one of the route's API keys
        // (an imported key may hold dots) before any provider hears of it.
        if policy.api_key_mask != 0 {
            match live.api_keys.validate(token, policy, now, &live.validator) {
                Err(AuthError::UnknownApiKey) => {}
                result => return result.map_err(NotAdmitted::Denied),
            }
        }
        match introspector {
            // The provider is asked only about a token no key can read.
            Some(introspector) => {
                introspector
                    .validate(token, policy, now, &live.validator)
                    .await
            }
            None => jwt.map_err(NotAdmitted::Denied),
        }
    }

    fn validate_jwt(
        &self,
        live: &Live,
        policy: &Policy,
        token: &str,
        now: i64,
    ) -> Result<Arc<Verified>, AuthError> {
        let result = live.validator.validate(token, policy, now);
        if let Err(AuthError::UnknownKey) = result {
            self.shared.external.unknown_kid(token);
        }
        result
    }

    /// A token refused on route `index`, counted.
    pub(super) fn denied(&self, live: &Live, index: RouteId, e: AuthError) -> RequestError {
        self.count_denial(live, index, e.reason(), Some(e));
        RequestError::Denied(e)
    }

    /// A refusal on route `index` for `reason`: a token's (`error`) is
    /// counted on the series made with the route, found without hashing
    /// labels; any other on the series its labels name.
    pub(super) fn count_denial(
        &self,
        live: &Live,
        index: RouteId,
        reason: &str,
        error: Option<AuthError>,
    ) {
        let route = live.route_config(index);
        let made = error.and_then(|e| live.route(index).series.denied.get(e.index()));
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

/// The route's rule over a verified token and the request as the upstream
/// will get it: the path as routed, no header portero strips or writes.
pub(super) fn rule_admits(live: &Live, rule: &Rule, verified: &Verified, parts: &Parts) -> bool {
    let routed = match rule.reads_path() {
        true => crate::path::routing_key(parts.uri.path()),
        false => std::borrow::Cow::Borrowed(""),
    };
    let path = rule::rule_path(&routed);
    let hidden =
        |name: &HeaderName| !crate::forwarding::reaches_upstream(name, &parts.headers, &live.auth);
    let request = rule::Request {
        parts,
        path,
        hidden: &hidden,
    };
    rule.admits(&verified.claims, &request)
}
