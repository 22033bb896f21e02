//! One request through the gateway, as plain phases: the target
//! (`target`), the documents and endpoints the gateway answers itself, the
//! route (`routing`, over `routes`), its limits and credential (`admission`, `session`), a
//! token endpoint (`token_endpoint`) or the forward (`forward`: rewrite by
//! `forwarding`, send by `upstream`), then the record (`record`: metrics
//! and the access log line). Every refusal becomes a response in `respond`.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{HeaderValue, CONNECTION};
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use hyper::body::{Body, Incoming};

use crate::auth::revocation::Revocations;
use crate::client_addr;
use crate::clock::Clock;
use crate::config::{ForwardAuth, RouteAction};
use crate::cors;
use crate::forward_auth;
use crate::jwks::Registry;
use crate::limits::{self, ClientShare, Limit};
use crate::listener::{Handler, Peer};
use crate::live::{IssuerId, Live, Settings};
use crate::method_override;
use crate::metrics::{method_label, Metrics};
use crate::respond::{self, GatewayBody, RequestError};
use crate::span_export::Spans;
use crate::store::Store;
use crate::target;
use crate::trace_context::{RequestIds, Sent};
use crate::upstream::request_body;

mod admission;
mod binding;
mod context;
mod decision;
mod forward;
mod record;
mod routing;
mod session;
mod session_endpoints;
mod shadowed;
mod token_endpoint;

use admission::{Admitted, Asked, SignIn};
use context::RequestContext;
use record::{access_log, record_span};
use routing::{find, read_override, route};
use session::redirect_response;

/// Everything a request may read, shared by every listener: the live
/// snapshot (routes, keys, settings: what a reload swaps) and the handles
/// built once at start.
pub struct GatewayState {
    pub live: ArcSwap<Live>,
    /// Revocations outlive reloads: every `Live::validator` reads this set.
    pub revocations: Arc<Revocations>,
    /// Every API key's record; each snapshot's `api_keys` reads it.
    pub api_keys: Arc<crate::api_keys::Index>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    /// Requests with a body in flight per client address.
    pub client_share: ClientShare,
    pub clock: Clock,
    /// External issuers' keys, fetched in the background.
    pub external: Arc<Registry>,
    /// `[tracing] otlp_endpoint`: where request spans go.
    pub spans: Option<Spans>,
    /// Browser sessions of the routes that sign people in (`login`).
    pub sessions: Arc<crate::session::BrowserSessions>,
    /// DPoP proofs: their nonces, the proofs taken, the keys read.
    pub proofs: Arc<crate::dpop::Proofs>,
}

/// The public listeners' request handler.
pub struct Gateway {
    shared: Arc<GatewayState>,
}

/// RFC 9449 §8.1: the nonce a client's next DPoP proofs carry.
const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// Where the public keys of asymmetric issuers are published (RFC 8414 §2 `jwks_uri`).
const JWKS_PATH: &str = "/.well-known/jwks.json";

impl Gateway {
    pub fn new(shared: Arc<GatewayState>) -> Gateway {
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
        let (sent, overridden) = walk_names(&parts.headers);
        let ids = settings
            .trace_context
            .then(|| RequestIds::take(&mut parts.headers, sent));
        let mut ctx = RequestContext::new(start, has_body, ids, overridden);
        // Trusted proxies as configured now: a reload that drops one takes
        // its say over the client's headers at its next request.
        let retrusted;
        let peer = match settings.trusts(peer.addr.ip()) & !peer.unnamed {
            trusted if trusted == peer.trusted => peer,
            trusted => {
                retrusted = Peer {
                    trusted,
                    ..peer.clone()
                };
                &retrusted
            }
        };
        (ctx.tls, ctx.from_trusted_proxy) = (peer.tls, peer.trusted);
        ctx.tls_client_cert = peer.client_cert.clone();
        ctx.cert_from_proxy = peer.trusted & settings.client_cert_from_proxies;
        // Only the log and the span need the path after the request has gone
        // upstream: the URI is kept (its bytes shared, not copied).
        let logged = (settings.access_log || self.shared.spans.is_some())
            .then(|| (parts.method.clone(), parts.uri.clone()));
        // gRPC runs on HTTP/2 only: HTTP/1.1 requests skip the lookup.
        let grpc = parts.version == http::Version::HTTP_2 && respond::is_grpc(&parts.headers);
        let mut response = match self.serve(&live, parts, body, peer, &mut ctx).await {
            Ok(response) => response,
            Err(err) => {
                ctx.error = Some(err);
                // On a route that publishes resource metadata, a refusal of
                // its credential carries the route's own challenge.
                let challenge = match (err, ctx.route) {
                    (RequestError::Denied(reason), Some(route)) => {
                        live.route(route).challenge(reason)
                    }
                    _ => None,
                };
                respond::refusal(err, grpc, ctx.allow.as_ref(), challenge)
            }
        };
        if has_body && !ctx.body_read {
            // What is left of the body is still on the way: this connection
            // cannot carry another request, and the client must know.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(cors) = ctx.route.and_then(|i| live.route_config(i).cors.as_ref()) {
            if !ctx.preflight {
                cors::decorate(cors, ctx.origin.take(), response.headers_mut());
            }
        }
        if let Some(nonce) = ctx
            .dpop_nonce
            .take()
            .and_then(|n| binding::nonce_header(&n))
        {
            response.headers_mut().insert(DPOP_NONCE, nonce);
        }
        if let (Some(report), Some(i)) = (ctx.rate.take(), ctx.route) {
            live.route(i).limiter.report(report, response.headers_mut());
        }
        let held = std::mem::take(&mut ctx.held);
        if !held.is_empty() {
            response = response.map(|body| match body {
                GatewayBody::Upstream(body) => GatewayBody::Held {
                    body,
                    _place: Box::new(held),
                },
                other => other,
            });
        }
        let took = self.record(&live, &ctx, method, response.status(), start);
        if let Some((method, uri)) = logged {
            let (status, path) = (response.status(), uri.path());
            if let Some(spans) = &self.shared.spans {
                record_span(spans, &live, &ctx, (&method, &uri), status, took, peer);
            }
            if settings.access_log {
                access_log(&live, &ctx, &method, path, status, took, peer);
            }
        }
        response
    }

    /// route → admit the credential → rewrite → forward; a token endpoint or the JWKS
    /// document is answered on the way.
    async fn serve(
        &self,
        live: &Live,
        parts: &mut Parts,
        body: Incoming,
        peer: &Peer,
        ctx: &mut RequestContext,
    ) -> Result<Response<GatewayBody>, RequestError> {
        let settings = &live.settings;
        // A path under the forward-auth endpoint is a decision, as sent or
        // once normalised: `/.portero/auth/../x` is never routed to `/.portero/x`.
        let decision = decision_path(settings, parts, true);
        // The one path and host everything below acts on.
        let host = target::checked(parts, settings.paths)?;
        let ip = self.admit_client(live, parts, peer, !ctx.has_body, ctx)?;
        if let Some((config, rest, as_sent)) =
            decision.or_else(|| decision_path(settings, parts, false))
        {
            let original = forward_auth::original(config, (&rest, as_sent), parts, settings.paths)
                .map_err(RequestError::BadTarget)?;
            return Box::pin(self.decide(live, original, ip, ctx)).await;
        }
        let named = target::method(parts, ctx.overridden).map_err(RequestError::BadTarget)?;
        let key = crate::path::routing_key(parts.uri.path());
        if let Some(sessions) = settings.sessions.as_deref().filter(|s| s.owns(&key)) {
            return Ok(Box::pin(self.session_endpoint(live, sessions, &key, parts, body)).await);
        }
        if let Some(answer) = own_document(live, host.as_ref(), &key, parts, ctx) {
            return answer;
        }
        let method = named.as_ref().unwrap_or(&parts.method);
        let (index, route) = route(live, host.as_ref(), &key, method, ctx)?;
        if let Some(method) = named {
            read_override(route, (&mut parts.method, &mut parts.headers), method)?;
        }
        ctx.route = Some(index);
        if route.cors.is_some() {
            ctx.origin = cors::request_origin(&parts.headers);
        }
        if let Some(refused) = self.enter_route(live, index, route, parts, ip, ctx).await? {
            return Ok(refused);
        }
        match &route.action {
            RouteAction::Issue { issuer, endpoint } => {
                let issuer = live.issuer(IssuerId(*issuer));
                self.token_route(live, issuer, *endpoint, route, parts, body, ip, ctx)
                    .await
            }
            RouteAction::Proxy { policy, .. } => {
                if request_body::declared_length(&parts.headers)
                    .is_some_and(|n| n > settings.max_body_size)
                {
                    return Err(RequestError::TooLarge);
                }
                let admitted = match policy {
                    None => None, // a public route
                    Some(policy) => {
                        let asked = Asked {
                            parts,
                            routed: &key,
                        };
                        let sign_in = SignIn::AtProvider;
                        match self
                            .admit(live, (index, policy), asked, ip, sign_in, ctx)
                            .await?
                        {
                            Admitted::Challenge(sign_in) => {
                                return Ok(redirect_response(StatusCode::FOUND, *sign_in))
                            }
                            admitted => Some(admitted),
                        }
                    }
                };
                self.forward(live, (index, route), parts, body, peer, host, admitted, ctx)
                    .await
            }
        }
    }

    /// The client's address, if the address rules admit it, with its share
    /// of requests with a body in flight taken.
    fn admit_client(
        &self,
        live: &Live,
        parts: &Parts,
        peer: &Peer,
        bodiless: bool,
        ctx: &mut RequestContext,
    ) -> Result<IpAddr, RequestError> {
        let settings = &live.settings;
        let ip = client_addr::client_ip(peer, &parts.headers, &settings.trusted_proxies);
        if !limits::admits(&live.ips, ip) {
            self.shared
                .metrics
                .limited
                .with_label_values(&["none", "ip"])
                .inc();
            return Err(RequestError::Limited(Limit::Address));
        }
        if !bodiless {
            self.shared
                .client_share
                .enter(ip, &mut ctx.held)
                .map_err(|refusal| ctx.refused(refusal))?;
        }
        Ok(ip)
    }
}

/// The forward-auth endpoint's configuration and the rest of the path below
/// it, if the path (`as_sent`, or as normalised) is under it.
fn decision_path<'l>(
    settings: &'l Settings,
    parts: &Parts,
    as_sent: bool,
) -> Option<(&'l ForwardAuth, String, bool)> {
    let config = settings.forward_auth.as_ref()?;
    let rest = forward_auth::under(&config.path, parts.uri.path())?;
    Some((config, rest.to_owned(), as_sent))
}

/// The JWKS document (the gateway's own at its path: read with GET or HEAD,
/// any other method `405`, never passed to the route beneath), a protected
/// route's resource metadata (`resource_metadata`: at its path on the
/// route's host, read with GET, any other method `405`), or a CORS
/// preflight, answered here. Compared as routing reads the path (`//`,
/// `;x` ignored), so no spelling of a document's path reaches the route
/// beneath.
fn own_document(
    live: &Live,
    host: Option<&HeaderValue>,
    key: &str,
    parts: &Parts,
    ctx: &mut RequestContext,
) -> Option<Result<Response<GatewayBody>, RequestError>> {
    let jwks_path = key == JWKS_PATH;
    if jwks_path && matches!(parts.method, Method::GET | Method::HEAD) {
        let jwks = live.validator.keys().jwks().to_string();
        return Some(Ok(respond::json(StatusCode::OK, jwks)));
    }
    if let Some(document) = live.resources.find(host, key) {
        return Some(match parts.method {
            Method::GET => Ok(respond::resource_metadata(document.clone())),
            _ => Err(RequestError::DocumentMethod("GET")),
        });
    }
    if let Some(answer) = preflight(live, host, key, parts, ctx) {
        return Some(answer);
    }
    jwks_path.then_some(Err(RequestError::DocumentMethod("GET, HEAD")))
}

/// A CORS preflight for a route with a policy, answered without a token;
/// `None` for any other request (a preflight for a route without a policy
/// goes on as an ordinary `OPTIONS` request).
fn preflight(
    live: &Live,
    host: Option<&HeaderValue>,
    key: &str,
    parts: &Parts,
    ctx: &mut RequestContext,
) -> Option<Result<Response<GatewayBody>, RequestError>> {
    let method = cors::preflight_method(parts)?;
    let (index, route) = find(live, host, key, &method).ok()?;
    let policy = route.cors.as_ref()?;
    ctx.route = Some(index);
    ctx.preflight = true;
    Some(
        cors::preflight(policy, &parts.headers, &method)
            .map(respond::preflight)
            .map_err(RequestError::CorsRefused),
    )
}

/// One walk along the request's header names, for all that is read of
/// them before routing: the trace headers, and whether a method-override
/// header came in any spelling.
fn walk_names(headers: &HeaderMap) -> (Sent, bool) {
    let mut sent = Sent::default();
    let mut overridden = false;
    for name in headers.keys() {
        sent.note(name);
        overridden |= method_override::is_override(name.as_str());
    }
    (sent, overridden)
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
