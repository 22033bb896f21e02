//! One request through the gateway, as plain phases: route (`routes`), a
//! token endpoint (`issue`) or authorize (`auth`), rewrite (`identity`),
//! forward (`upstream::client`), record (metrics and the access log line).
//! Every refusal becomes a response in `respond`.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::header::{HeaderValue, CONNECTION, ORIGIN, UPGRADE};
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;

use crate::auth::revocation::Revocations;
use crate::auth::validate::Verified;
use crate::auth::AuthError;
use crate::client_addr;
use crate::clock::Clock;
use crate::config::{CorsPolicy, OutagePolicy, PathRules, Policy, Route, RouteAction};
use crate::cors;
use crate::forward_auth;
use crate::identity;
use crate::issue::Transport;
use crate::jwks::Registry;
use crate::limits::{self, Caller, ClientShare, Held, Limit, Phase, RateReport, Refusal};
use crate::listener::{Handler, Hold, Peer};
use crate::live::{Live, Settings};
use crate::metrics::{method_label, Metrics};
use crate::path::PathError;
use crate::respond::{self, GatewayBody, RequestError};
use crate::routes::Miss;
use crate::span_export::Spans;
use crate::store::Store;
use crate::target::{self, HostError};
use crate::trace_context::RequestIds;
use crate::tunnel::{self, Tunnel};
use crate::upstream::client::{take_head, Handshake};
use crate::upstream::request_body::{BodyError, ClientBody};
use crate::upstream::{Failure, UpstreamGroup};

mod record;
mod token_endpoint;

use record::{access_log, record_span};

/// Everything a request may read, shared by every listener: the live
/// snapshot (routes, keys, settings: what a reload swaps) and the handles
/// built once at start.
pub struct Shared {
    pub live: ArcSwap<Live>,
    /// Revocations outlive reloads: every `Live::validator` reads this set.
    pub revocations: Arc<Revocations>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    /// Requests with a body in flight per client address.
    pub client_share: ClientShare,
    pub clock: Clock,
    /// External issuers' keys, fetched in the background.
    pub external: Arc<Registry>,
    /// `[tracing] otlp_endpoint`: where request spans go.
    pub spans: Option<Spans>,
}

/// The public listeners' request handler.
pub struct Gateway {
    shared: Arc<Shared>,
}

/// Where the public keys of asymmetric issuers are published (RFC 8414 §2 `jwks_uri`).
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What a request left behind, for its metrics and log line.
#[derive(Default)]
struct Trace {
    route: Option<usize>,
    /// The upstream group, when the request was forwarded, and when that began.
    upstream: Option<(usize, Instant)>,
    failure: Option<Failure>,
    /// The request body was read to its end (by a token endpoint or the upstream).
    body_read: bool,
    /// On a route with a CORS policy: the request's `Origin`, and whether
    /// the request was a preflight (answered with its own CORS headers).
    origin: Option<HeaderValue>,
    preflight: bool,
    /// The request's place under its route's limits, and the rate's headers.
    held: Held,
    rate: Option<RateReport>,
    /// Trace and request ids, sent upstream and logged.
    ids: Option<RequestIds>,
}

impl Trace {
    fn route_name<'l>(&self, live: &'l Live) -> &'l str {
        match self.route {
            Some(i) => live.routes.routes()[i].name.as_str(),
            None => "none",
        }
    }
}

impl Gateway {
    pub fn new(shared: Arc<Shared>) -> Gateway {
        Gateway { shared }
    }

    pub async fn handle(
        &self,
        parts: &mut Parts,
        body: Incoming,
        peer: &Peer,
    ) -> Response<GatewayBody> {
        let start = Instant::now();
        let live = self.shared.live.load_full();
        let settings = &live.settings;
        let method = method_label(&parts.method);
        let has_body = !body.is_end_stream();
        let mut trace = Trace {
            ids: settings
                .trace_context
                .then(|| RequestIds::take(&mut parts.headers)),
            ..Trace::default()
        };
        // Trusted proxies as configured now: a reload that drops one takes
        // its say over the client's headers at its next request.
        let retrusted;
        let peer = match settings.trusts(peer.addr.ip()) {
            trusted if trusted == peer.trusted => peer,
            trusted => {
                retrusted = Peer {
                    trusted,
                    ..peer.clone()
                };
                &retrusted
            }
        };
        // Only the log and the span need the path after the request has gone upstream.
        let logged = (settings.access_log || self.shared.spans.is_some())
            .then(|| (parts.method.clone(), parts.uri.path().to_owned()));
        // gRPC runs on HTTP/2 only: HTTP/1.1 requests skip the lookup.
        let grpc = parts.version == http::Version::HTTP_2 && respond::is_grpc(&parts.headers);
        let mut response = match self.serve(&live, parts, body, peer, &mut trace).await {
            Ok(response) => response,
            Err(err) => {
                if let RequestError::Upstream(failure) = err {
                    trace.failure = Some(failure);
                }
                if grpc {
                    respond::grpc_error(err)
                } else {
                    respond::error_response(err)
                }
            }
        };
        if has_body && !trace.body_read {
            // What is left of the body is still on the way: this connection
            // cannot carry another request, and the client must know.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(cors) = trace
            .route
            .and_then(|i| live.routes.routes()[i].cors.as_ref())
        {
            if !trace.preflight {
                cors::decorate(cors, trace.origin.as_ref(), response.headers_mut());
            }
        }
        if let Some(report) = &trace.rate {
            report.apply(response.headers_mut());
        }
        let held = std::mem::take(&mut trace.held);
        if !held.is_empty() {
            response = response.map(|body| match body {
                GatewayBody::Upstream(body) => GatewayBody::Held { body, _place: held },
                other => other,
            });
        }
        self.record(&live, &trace, method, response.status(), start);
        if let Some((method, path)) = logged {
            let status = response.status();
            if let Some(spans) = &self.shared.spans {
                record_span(spans, &live, &trace, (&method, &path), status, start, peer);
            }
            if settings.access_log {
                access_log(&live, &trace, method, path, status, start, peer);
            }
        }
        response
    }

    /// route → authorize → rewrite → forward; a token endpoint or the JWKS
    /// document is answered on the way.
    async fn serve(
        &self,
        live: &Live,
        parts: &mut Parts,
        body: Incoming,
        peer: &Peer,
        trace: &mut Trace,
    ) -> Result<Response<GatewayBody>, RequestError> {
        // A path under the forward-auth endpoint is a decision, as sent or
        // once normalised: `/.portero/auth/../x` is never routed to `/.portero/x`.
        let settings = &live.settings;
        let decision = settings.forward_auth.as_ref().and_then(|config| {
            forward_auth::under(&config.path, parts.uri.path())
                .map(|rest| (config, rest.to_owned()))
        });
        // The one path and host everything below acts on.
        let host = checked_target(parts, settings.paths)?;
        let ip = client_addr::client_ip(peer, &parts.headers, &settings.trusted_proxies);
        if !limits::admits(&live.ips, ip) {
            self.shared
                .metrics
                .limited
                .with_label_values(&["none", "ip"])
                .inc();
            return Err(RequestError::Limited(Limit::Address));
        }
        if !body.is_end_stream() {
            self.shared
                .client_share
                .enter(ip, &mut trace.held)
                .map_err(|refusal| refused(trace, refusal))?;
        }
        let decision = decision.or_else(|| {
            let config = settings.forward_auth.as_ref()?;
            let rest = forward_auth::under(&config.path, parts.uri.path())?;
            Some((config, rest.to_owned()))
        });
        if let Some((config, rest)) = decision {
            let original =
                forward_auth::original(config, &rest, parts).map_err(RequestError::BadTarget)?;
            return Box::pin(self.decide(live, original, ip, trace)).await;
        }
        if parts.uri.path() == JWKS_PATH && parts.method == Method::GET {
            let jwks = live.validator.keys().jwks().to_string();
            return Ok(respond::json(StatusCode::OK, jwks));
        }
        if let Some(answer) = preflight(live, host.as_ref(), parts, trace) {
            return answer;
        }
        let (index, route) = route(live, host.as_ref(), parts)?;
        trace.route = Some(index);
        if route.cors.is_some() {
            trace.origin = parts.headers.get(ORIGIN).cloned();
        }
        let limiter = &live.limiters[index];
        let entered = match limiter.enter(ip, &mut trace.held) {
            Ok(()) if limiter.keys_at(Phase::Request) => {
                self.admit(live, index, &parts.headers, ip, None, trace)
                    .await
            }
            entered => entered,
        };
        if let Err(refusal) = entered {
            if let (RouteAction::Issue { issuer, .. }, Limit::Rate) = (&route.action, refusal.limit)
            {
                // Before the body is read or any secret checked, in the
                // dialect's own words.
                trace.rate = refusal.report.map(|r| *r);
                let reply = self.refuse_login(live, *issuer, parts, Transport::RateLimited);
                return Ok(respond::json(reply.status, reply.body));
            }
            return Err(refused(trace, refusal));
        }
        let (upstream, strip_prefix, policy, upgrades, underscores) = match &route.action {
            RouteAction::Issue { issuer, endpoint } => {
                // Boxed, like a decision and a tunnel: their state would
                // otherwise be carried (and copied) by every proxied request.
                let (reply, body_read) =
                    Box::pin(self.token_endpoint(live, *issuer, *endpoint, parts, body, ip)).await;
                trace.body_read = body_read;
                return Ok(respond::json(reply.status, reply.body));
            }
            RouteAction::Proxy {
                upstream,
                strip_prefix,
                policy,
                upgrades,
                underscores_in_headers,
            } => (
                *upstream,
                *strip_prefix,
                policy.as_ref(),
                upgrades,
                *underscores_in_headers,
            ),
        };
        if declared_length(&parts.headers).is_some_and(|n| n > settings.max_body_size) {
            return Err(RequestError::TooLarge);
        }
        let verified = match policy {
            None => None, // a public route
            Some(policy) => Some((policy, self.authorize(live, index, policy, parts)?)),
        };
        if let Some((_, token)) = verified.as_ref().filter(|_| limiter.keys_at(Phase::Token)) {
            self.admit(live, index, &parts.headers, ip, Some(token), trace)
                .await
                .map_err(|refusal| refused(trace, refusal))?;
        }
        let group = &live.upstreams[upstream];
        // Upgrades are HTTP/1.1's: an HTTP/2 upstream gets a plain request.
        let upgrade = upgrade_requested(parts, body.is_end_stream(), upgrades)
            .filter(|_| !group.config.protocol.is_http2());
        if upgrade.is_some() && !route.cors.as_ref().is_none_or(|c| origin_allowed(c, parts)) {
            // A page on a refused origin cannot open a tunnel with the
            // user's credentials (browsers apply no CORS to WebSockets).
            return Err(RequestError::CorsRefused(cors::Refusal::Origin));
        }
        let prefix = strip_prefix.then_some(route.path.as_str());
        let mut added = identity::rewrite(
            parts,
            (&live.auth, group.config.host.as_deref()),
            verified.as_ref(),
            host,
            prefix,
            (peer, underscores),
        )
        .map_err(|e| self.denied(live, index, e))?;
        added.ids = trace.ids.as_ref();
        trace.upstream = Some((upstream, Instant::now()));
        if let Some(protocol) = upgrade {
            added.apply(&mut parts.headers);
            let token = verified.map(|(_, v)| tunnel::Token {
                refused_from: live.validator.refused_from(&v),
                verified: v,
                revocations: self.shared.revocations.clone(),
            });
            let parts = take_head(parts);
            let idle_timeout = settings.tunnel_idle_timeout;
            return Box::pin(self.tunnel(group, parts, protocol, token, &route.name, idle_timeout))
                .await;
        }
        // A bodiless request (most are) skips the reading's future.
        let mut body = match body.is_end_stream() {
            true => ClientBody::empty(),
            false => self.receive(settings, parts, body).await?,
        };
        let forwarded = group
            .send(
                parts,
                &mut body,
                &added,
                settings.max_body_size,
                settings.body_timeout,
            )
            .await
            .map_err(RequestError::Upstream)?;
        // If the upstream answered before taking the whole body, the rest of
        // it is still on its way to this connection.
        trace.body_read = forwarded.body_read;
        // Its hop-by-hop headers were dropped as its head was parsed.
        Ok(forwarded.response.map(GatewayBody::Upstream))
    }

    /// The request body as it goes upstream: read whole up to the buffer
    /// size before any upstream connection is taken, and kept to the
    /// minimum pace. A gRPC stream streams: it may pause between messages.
    async fn receive(
        &self,
        settings: &Settings,
        parts: &Parts,
        body: Incoming,
    ) -> Result<ClientBody, RequestError> {
        if parts.version == http::Version::HTTP_2 && respond::is_grpc(&parts.headers) {
            return Ok(ClientBody::streaming(body));
        }
        let deadline = tokio::time::Instant::now() + settings.body_timeout;
        ClientBody::receive(body, &settings.body_rules, deadline)
            .await
            .map_err(|e| {
                RequestError::Upstream(match e {
                    BodyError::Slow => Failure::ClientTimeout,
                    BodyError::TooLarge => Failure::TooLarge,
                    BodyError::Broken => Failure::Upstream,
                })
            })
    }

    /// A forward-auth decision about `original`: its route's limits and
    /// policy, exactly as if it had come through; `200` with the identity
    /// headers to inject, or the refusal it would have had.
    async fn decide(
        &self,
        live: &Live,
        mut original: Parts,
        ip: IpAddr,
        trace: &mut Trace,
    ) -> Result<Response<GatewayBody>, RequestError> {
        let host = checked_target(&mut original, live.settings.paths)?;
        let (index, route) = route(live, host.as_ref(), &original)?;
        trace.route = Some(index);
        let limiter = &live.limiters[index];
        limiter
            .enter(ip, &mut trace.held)
            .map_err(|refusal| refused(trace, refusal))?;
        if limiter.keys_at(Phase::Request) {
            self.admit(live, index, &original.headers, ip, None, trace)
                .await
                .map_err(|refusal| refused(trace, refusal))?;
        }
        let policy = match &route.action {
            RouteAction::Proxy {
                policy: Some(policy),
                ..
            } => policy,
            // A public route or a token endpoint: nothing to check or inject.
            _ => return Ok(respond::allowed(HeaderMap::new())),
        };
        let token = self.authorize(live, index, policy, &original)?;
        if limiter.keys_at(Phase::Token) {
            self.admit(live, index, &original.headers, ip, Some(&token), trace)
                .await
                .map_err(|refusal| refused(trace, refusal))?;
        }
        let headers = policy
            .identity_headers(&token)
            .collect::<Result<HeaderMap, _>>()
            .map_err(|e| self.denied(live, index, e))?;
        Ok(respond::allowed(headers))
    }

    /// The route's limits kept under a key: what the request says (`token:
    /// None`), or who it is. Awaited only where `Limiter::keys_at` says a
    /// limit is so kept (a cluster-wide one asks the store); the address
    /// rules and the route's slot are `Limiter::enter`'s, checked first.
    async fn admit(
        &self,
        live: &Live,
        index: usize,
        headers: &HeaderMap,
        ip: IpAddr,
        token: Option<&Verified>,
        trace: &mut Trace,
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
            .admit(phase, &caller, store, &mut trace.held)
            .await?
        {
            trace.rate = Some(report);
        }
        Ok(())
    }

    /// Asks the upstream to switch protocols; if it does, relays its `101`
    /// and hands both connections to a tunnel that ends with the token.
    async fn tunnel(
        &self,
        group: &UpstreamGroup,
        mut parts: Parts,
        protocol: HeaderValue,
        token: Option<tunnel::Token>,
        route: &str,
        idle_timeout: Duration,
    ) -> Result<Response<GatewayBody>, RequestError> {
        let client = parts.extensions.remove::<OnUpgrade>();
        let hold = parts.extensions.remove::<Hold>();
        let (Some(client), Some(hold)) = (client, hold) else {
            return Err(RequestError::Upstream(Failure::Upstream));
        };
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, protocol.clone());
        let handshake = group.upgrade(parts).await.map_err(RequestError::Upstream)?;
        let (head, stream, early, slot) = match handshake {
            Handshake::Answered(forwarded) => {
                return Ok(forwarded.response.map(GatewayBody::Upstream))
            }
            Handshake::Switched {
                head,
                stream,
                early,
                slot,
            } => (head, stream, early, slot),
        };
        let websocket = protocol.as_bytes().eq_ignore_ascii_case(b"websocket");
        let tunnel = Tunnel {
            client,
            upstream: stream,
            upstream_early: early,
            upstream_slot: slot,
            hold,
            websocket,
            token,
            idle_timeout,
            route: route.to_string(),
        };
        let shared = self.shared.clone();
        tokio::spawn(async move { tunnel.run(&shared.metrics).await });
        let mut response = respond::switching(head.headers);
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        response.headers_mut().insert(UPGRADE, protocol);
        Ok(response)
    }

    /// The route's policy against the request's credential, counted either way.
    fn authorize(
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
    fn denied(&self, live: &Live, index: usize, e: AuthError) -> RequestError {
        self.count_denial(live, index, e.reason(), Some(e));
        RequestError::Denied(e)
    }

    /// A refusal on route `index` for `reason`: a token's (`error`) is
    /// counted on the series made with the route, found without hashing
    /// labels; any other on the series its labels name.
    fn count_denial(&self, live: &Live, index: usize, reason: &str, error: Option<AuthError>) {
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

/// A limit's refusal as a request error; a rate's headers go on the response.
fn refused(trace: &mut Trace, refusal: Refusal) -> RequestError {
    trace.rate = refusal.report.map(|r| *r);
    RequestError::Limited(refusal.limit)
}

/// The request's one host (`None` for an HTTP/1.0 request without one),
/// its path normalised in place.
fn checked_target(
    parts: &mut Parts,
    rules: PathRules,
) -> Result<Option<HeaderValue>, RequestError> {
    target::normalize_path(parts, rules)
        .map_err(|e| RequestError::BadTarget(PathError::message(e)))?;
    target::host(parts).map_err(|e| RequestError::BadTarget(HostError::message(e)))
}

/// A CORS preflight for a route with a policy, answered without a token;
/// `None` for any other request (a preflight for a route without a policy
/// goes on as an ordinary `OPTIONS` request).
fn preflight(
    live: &Live,
    host: Option<&HeaderValue>,
    parts: &Parts,
    trace: &mut Trace,
) -> Option<Result<Response<GatewayBody>, RequestError>> {
    let method = cors::preflight_method(parts)?;
    let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
    let (index, route) = live.routes.lookup(host, parts.uri.path(), &method)?;
    let policy = route.cors.as_ref()?;
    trace.route = Some(index);
    trace.preflight = true;
    Some(
        cors::preflight(policy, &parts.headers, &method)
            .map(respond::preflight)
            .map_err(RequestError::CorsRefused),
    )
}

/// The protocol a request asks to switch to, if its route tunnels it: an
/// HTTP/1.1 `GET` without a body, `Connection: upgrade`, and one protocol
/// in `Upgrade` (RFC 9110 §7.8). Any other `Upgrade` is dropped on the way
/// upstream like every hop-by-hop header.
fn upgrade_requested(parts: &Parts, bodiless: bool, allowed: &[String]) -> Option<HeaderValue> {
    // The listener marks requests with an `Upgrade` header: most have none.
    parts.extensions.get::<Hold>()?;
    if parts.method != Method::GET || parts.version != http::Version::HTTP_11 || !bodiless {
        return None;
    }
    let connection_upgrade = parts
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let mut upgrade = parts.headers.get_all(UPGRADE).iter();
    let (Some(protocol), None) = (upgrade.next(), upgrade.next()) else {
        return None;
    };
    let name = protocol.to_str().ok()?.split('/').next()?.trim();
    let allowed = allowed.iter().any(|a| a.eq_ignore_ascii_case(name));
    (connection_upgrade && allowed && !name.contains(',')).then(|| protocol.clone())
}

/// The request comes from no browser page, or from one the policy allows.
fn origin_allowed(policy: &CorsPolicy, parts: &Parts) -> bool {
    parts
        .headers
        .get(ORIGIN)
        .is_none_or(|origin| cors::allows_origin(policy, origin))
}

/// The route for (host, path, method).
fn route<'l>(
    live: &'l Live,
    host: Option<&HeaderValue>,
    parts: &Parts,
) -> Result<(usize, &'l Route), RequestError> {
    let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
    live.routes
        .find(host, parts.uri.path(), &parts.method)
        .map_err(|miss| match miss {
            Miss::NoRoute => RequestError::NoRoute,
            Miss::Method => RequestError::MethodNotAllowed,
        })
}

/// The body size a request announces, if it announces one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl Handler for Gateway {
    type Body = GatewayBody;

    fn respond<'a>(
        &'a self,
        parts: &'a mut Parts,
        body: Incoming,
        peer: &'a Peer,
    ) -> impl Future<Output = Response<GatewayBody>> + Send + 'a {
        self.handle(parts, body, peer)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.shared.live.load().settings.trusts(ip)
    }
}
