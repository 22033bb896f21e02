//! Whether a request may go on: its route's slot and limits (a token
//! endpoint's rate limit answered in its dialect's words), and its
//! credential against the route's policy — one decision ([`Gateway::admit`])
//! that the proxy and forward auth both act on — each refusal counted.

use std::net::IpAddr;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, HeaderName, Response};

use super::binding::{self, Bound};
use super::{Gateway, RequestContext};
use crate::auth::policy::Presented;
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
use crate::session::flow::Redirect;
use crate::session::Entry;

/// Who asks, and so where a browser without a session is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SignIn {
    /// To its provider, from here: a request that came to portero itself.
    AtProvider,
    /// To `<public_url><start_path>?rd=`: a forward-auth decision, which
    /// names the page but sets no cookie in the browser. Its proxy passes
    /// the request on as it came, so a credential beside a session is
    /// refused.
    AtStart,
}

/// A route's decision on a request's credential, as data: admitted (a
/// credential or a session, and so an identity) or a challenge; a
/// refusal is the `RequestError` beside it.
pub(super) enum Admitted {
    /// A token or an API key, verified.
    Credential(Arc<Verified>),
    /// A browser session; `cookie_alone` when its cookie was the
    /// request's one `Cookie` header, `NAME=ID` and nothing else, so
    /// what goes upstream drops the header without reading it again.
    Session {
        entry: Arc<Entry>,
        cookie_alone: bool,
    },
    /// A browser without a session: to be sent to sign in (rendered by
    /// `respond`, as a proxy's decision or as the route's own answer).
    Challenge(Box<Redirect>),
}

impl Admitted {
    /// Who was admitted: the credential's or the session's identity.
    pub(super) fn verified(&self) -> Option<&Verified> {
        match self {
            Admitted::Credential(token) => Some(token),
            Admitted::Session { entry, .. } => Some(&entry.verified),
            Admitted::Challenge(_) => None,
        }
    }
}

/// The request as its route's policy reads it: its head (a method
/// override already read) and its path as routed (`path::routing_key`,
/// made once, where the route was found).
#[derive(Clone, Copy)]
pub(super) struct Asked<'r> {
    pub(super) parts: &'r Parts,
    pub(super) routed: &'r str,
}

impl Gateway {
    /// The route's decision on the request's credential: admitted (a
    /// token, an API key, an introspected token or a browser session, then
    /// within the limits kept by who it is), a challenge (a browser sent to
    /// sign in, as `sign_in` says), or refused (the error). The proxy and
    /// forward auth both act on it; `respond` renders each answer.
    pub(super) async fn admit(
        &self,
        live: &Live,
        (index, policy): (RouteId, &Policy),
        asked: Asked<'_>,
        ip: IpAddr,
        sign_in: SignIn,
        ctx: &mut RequestContext,
    ) -> Result<Admitted, RequestError> {
        // A route that signs people in asks the browser's session first;
        // `None` is a token (or an API key) to decide as on any route.
        let by_session = match policy.login {
            None => None,
            // Boxed: a session's future is large, and only its routes pay for it.
            Some(_) => Box::pin(self.admit_credential(live, index, policy, asked, sign_in)).await?,
        };
        let admitted = match by_session {
            Some(admitted) => admitted,
            // Written out here, not called: no future of its own on every
            // token's path.
            None => {
                self.store_outage(live, index)?;
                let parts = asked.parts;
                let verified = match policy.token(&parts.headers, parts.uri.query()) {
                    Ok(presented) => match self.verify(live, policy, &presented).await {
                        Ok(v) => match binding::without_proof(
                            &policy.sender,
                            &presented,
                            &v,
                            ctx,
                            &parts.headers,
                        ) {
                            Ok(None) => Ok(v),
                            Err(e) => Err(NotAdmitted::Denied(e)),
                            Ok(Some(jkt)) => {
                                let checked = self.check_proof(
                                    &policy.sender,
                                    parts,
                                    &presented,
                                    &v,
                                    jkt,
                                    ctx,
                                );
                                // Boxed: the store's round trip rides in no
                                // other request's future.
                                let taken = match checked {
                                    Ok(Some(claim)) => Box::pin(self.claim_proof(claim)).await,
                                    checked => checked.map(drop),
                                };
                                match taken {
                                    Ok(()) => Ok(v),
                                    Err(Bound::Refused(e)) => Err(NotAdmitted::Denied(e)),
                                    Err(Bound::Unavailable) => {
                                        self.count_denial(live, index, "store_unavailable", None);
                                        return Err(RequestError::StoreUnavailable);
                                    }
                                }
                            }
                        },
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(NotAdmitted::Denied(e)),
                };
                Admitted::Credential(self.token_verdict(live, index, policy, asked, verified)?)
            }
        };
        let limiter = &live.route(index).limiter;
        if let Some(token) = admitted
            .verified()
            .filter(|_| limiter.keys_at(Phase::Token))
        {
            self.admit_by_key(live, index, &asked.parts.headers, ip, Some(token), ctx)
                .await
                .map_err(|refusal| ctx.refused(refusal))?;
        }
        Ok(admitted)
    }

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

    /// The route's policy against the request's token as verified, counted
    /// either way: refused, or admitted through the route's rule.
    #[inline]
    fn token_verdict(
        &self,
        live: &Live,
        index: RouteId,
        policy: &Policy,
        asked: Asked<'_>,
        verified: Result<Arc<Verified>, NotAdmitted>,
    ) -> Result<Arc<Verified>, RequestError> {
        let verified = match verified {
            Ok(verified) => verified,
            Err(NotAdmitted::Denied(e)) => return Err(self.denied(live, index, e)),
            Err(NotAdmitted::Unavailable) => {
                self.count_denial(live, index, "introspection_unavailable", None);
                return Err(RequestError::IntrospectionUnavailable);
            }
        };
        self.admit_identity(live, index, policy, asked, &verified)?;
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
        asked: Asked<'_>,
        verified: &Verified,
    ) -> Result<(), RequestError> {
        if let Some(rule) = &policy.rule {
            if !rule_admits(live, rule, verified, asked) {
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
        presented: &Presented<'_>,
    ) -> Result<Arc<Verified>, NotAdmitted> {
        let now = self.shared.clock.unix();
        let text = || presented.text().map_err(NotAdmitted::Denied);
        if policy.takes_as_api_key(presented) {
            return live
                .api_keys
                .validate(text()?, policy, now, &live.validator)
                .map_err(NotAdmitted::Denied);
        }
        let introspector = policy
            .introspect
            .and_then(|issuer| live.issuer(IssuerId(issuer)).introspector.as_ref());
        if let Some(introspector) = introspector.filter(|_| !presented.jwt_shaped()) {
            // Opaque: only the provider can read it.
            return introspector
                .validate(text()?, policy, now, &live.validator)
                .await;
        }
        // A token verified before is the text it was then: its bytes are
        // not read again.
        let jwt = match live.validator.cached(presented.bytes()) {
            Some(verified) => live.validator.admit(verified, policy, now),
            None => presented
                .text()
                .and_then(|token| self.validate_jwt(live, policy, token, now)),
        };
        if !matches!(jwt, Err(AuthError::UnknownKey | AuthError::Malformed)) {
            return jwt.map_err(NotAdmitted::Denied);
        }
        // Shaped as a JWT, but no key reads it: one of the route's API keys
        // (an imported key may hold dots) before any provider hears of it.
        if policy.api_key_mask != 0 {
            match live
                .api_keys
                .validate(text()?, policy, now, &live.validator)
            {
                Err(AuthError::UnknownApiKey) => {}
                result => return result.map_err(NotAdmitted::Denied),
            }
        }
        match introspector {
            // The provider is asked only about a token no key can read.
            Some(introspector) => {
                introspector
                    .validate(text()?, policy, now, &live.validator)
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
fn rule_admits(live: &Live, rule: &Rule, verified: &Verified, asked: Asked<'_>) -> bool {
    let Asked { parts, routed } = asked;
    let path = rule::rule_path(routed);
    let hidden =
        |name: &HeaderName| !crate::forwarding::reaches_upstream(name, &parts.headers, &live.auth);
    let request = rule::Request {
        parts,
        path,
        hidden: &hidden,
    };
    rule.admits(&verified.claims, &request)
}
