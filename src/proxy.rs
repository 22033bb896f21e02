//! One request through the gateway, as plain phases: route (`routes`), a
//! token endpoint (`issue`) or authorize (`auth`), rewrite (`forwarding`),
//! forward (`upstream::client`), record (metrics and the access log line).
//! Every refusal becomes a response in `respond`.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{HeaderValue, CONNECTION, ORIGIN};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use hyper::body::{Body, Incoming};

use crate::auth::revocation::Revocations;
use crate::client_addr;
use crate::clock::Clock;
use crate::config::{Endpoint, Route, RouteAction};
use crate::cors;
use crate::forward_auth;
use crate::forwarding;
use crate::issue::Transport;
use crate::jwks::Registry;
use crate::limits::{self, ClientShare, Limit, Phase};
use crate::listener::{Handler, Peer};
use crate::live::Live;
use crate::metrics::{method_label, Metrics};
use crate::oauth2;
use crate::respond::{self, GatewayBody, RequestError};
use crate::routes::Miss;
use crate::span_export::Spans;
use crate::store::Store;
use crate::target;
use crate::trace_context::RequestIds;
use crate::tunnel;
use crate::upstream::h1::take_head;
use crate::upstream::request_body::{self, ClientBody};

mod admission;
mod context;
mod decision;
mod forward;
mod record;
mod shadowed;
mod token_endpoint;

use context::RequestContext;
use record::{access_log, record_span};
use token_endpoint::{legacy_response, oauth2_response};

/// Everything a request may read, shared by every listener: the live
/// snapshot (routes, keys, settings: what a reload swaps) and the handles
/// built once at start.
pub struct GatewayState {
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
    shared: Arc<GatewayState>,
}

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
        let mut ctx = RequestContext {
            ids: settings
                .trace_context
                .then(|| RequestIds::take(&mut parts.headers)),
            ..RequestContext::default()
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
        let mut response = match self.serve(&live, parts, body, peer, &mut ctx).await {
            Ok(response) => response,
            Err(err) => {
                if let RequestError::Upstream(failure) = err {
                    ctx.failure = Some(failure);
                }
                if grpc {
                    respond::grpc_error(err)
                } else {
                    respond::error_response(err)
                }
            }
        };
        if has_body && !ctx.body_read {
            // What is left of the body is still on the way: this connection
            // cannot carry another request, and the client must know.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(cors) = ctx
            .route
            .and_then(|i| live.routes.routes()[i].cors.as_ref())
        {
            if !ctx.preflight {
                cors::decorate(cors, ctx.origin.as_ref(), response.headers_mut());
            }
        }
        if let Some(report) = &ctx.rate {
            report.apply(response.headers_mut());
        }
        let held = std::mem::take(&mut ctx.held);
        if !held.is_empty() {
            response = response.map(|body| match body {
                GatewayBody::Upstream(body) => GatewayBody::Held { body, _place: held },
                other => other,
            });
        }
        self.record(&live, &ctx, method, response.status(), start);
        if let Some((method, path)) = logged {
            let status = response.status();
            if let Some(spans) = &self.shared.spans {
                record_span(spans, &live, &ctx, (&method, &path), status, start, peer);
            }
            if settings.access_log {
                access_log(&live, &ctx, method, path, status, start, peer);
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
        ctx: &mut RequestContext,
    ) -> Result<Response<GatewayBody>, RequestError> {
        // A path under the forward-auth endpoint is a decision, as sent or
        // once normalised: `/.portero/auth/../x` is never routed to `/.portero/x`.
        let settings = &live.settings;
        let decision = settings.forward_auth.as_ref().and_then(|config| {
            forward_auth::under(&config.path, parts.uri.path())
                .map(|rest| (config, rest.to_owned(), true))
        });
        // The one path and host everything below acts on.
        let host = target::checked(parts, settings.paths)?;
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
                .enter(ip, &mut ctx.held)
                .map_err(|refusal| ctx.refused(refusal))?;
        }
        let decision = decision.or_else(|| {
            let config = settings.forward_auth.as_ref()?;
            let rest = forward_auth::under(&config.path, parts.uri.path())?;
            Some((config, rest.to_owned(), false))
        });
        if let Some((config, rest, as_sent)) = decision {
            let original = forward_auth::original(config, (&rest, as_sent), parts, settings.paths)
                .map_err(RequestError::BadTarget)?;
            return Box::pin(self.decide(live, original, ip, ctx)).await;
        }
        // The JWKS document is the gateway's own at its path: read with
        // GET (or HEAD), a CORS preflight answered as the route beneath
        // says, any other method `405`, never passed to that route.
        // Compared as routing reads the path (`//`, `;x` ignored), so no
        // spelling of the document's path reaches the route beneath.
        let key = crate::path::routing_key(parts.uri.path());
        let jwks_path = key == JWKS_PATH;
        if jwks_path && matches!(parts.method, Method::GET | Method::HEAD) {
            let jwks = live.validator.keys().jwks().to_string();
            return Ok(respond::json(StatusCode::OK, jwks));
        }
        if let Some(answer) = preflight(live, host.as_ref(), parts, ctx) {
            return answer;
        }
        if jwks_path {
            return Err(RequestError::DocumentMethod);
        }
        let (index, route) = match find(live, host.as_ref(), &key, &parts.method) {
            // An OAuth 2.0 endpoint answers any method itself, a wrong one
            // with the `Allow` of that endpoint (GET for its metadata).
            Err(Miss::Method(i)) if is_oauth2(&live.routes.routes()[i]) => {
                (i, &live.routes.routes()[i])
            }
            found => found.map_err(miss)?,
        };
        ctx.route = Some(index);
        if route.cors.is_some() {
            ctx.origin = parts.headers.get(ORIGIN).cloned();
        }
        let limiter = &live.limiters[index];
        let entered = match limiter.enter(ip, &mut ctx.held) {
            Ok(()) if limiter.keys_at(Phase::Request) => {
                self.admit(live, index, &parts.headers, ip, None, ctx).await
            }
            entered => entered,
        };
        if let Err(refusal) = entered {
            if let (RouteAction::Issue { issuer, endpoint }, Limit::Rate) =
                (&route.action, refusal.limit)
            {
                // Before the body is read or any secret checked, in the
                // dialect's own words.
                ctx.rate = refusal.report.map(|r| *r);
                if *endpoint == Endpoint::OAuth2 {
                    return Ok(oauth2_response(oauth2::transport_error(
                        Transport::RateLimited,
                    )));
                }
                let reply = self.refuse_login(live, *issuer, parts, Transport::RateLimited);
                return Ok(legacy_response(live, *issuer, reply));
            }
            return Err(ctx.refused(refusal));
        }
        let (upstream, strip_prefix, policy, upgrades, underscores) = match &route.action {
            RouteAction::Issue {
                issuer,
                endpoint: Endpoint::OAuth2,
            } => {
                let (answer, body_read) =
                    Box::pin(self.oauth2_endpoint(live, *issuer, &route.path, parts, body, ip))
                        .await;
                ctx.body_read = body_read;
                return Ok(oauth2_response(answer));
            }
            RouteAction::Issue { issuer, endpoint } => {
                // Boxed, like a decision and a tunnel: their state would
                // otherwise be carried (and copied) by every proxied request.
                let (reply, body_read) =
                    Box::pin(self.token_endpoint(live, *issuer, *endpoint, parts, body, ip)).await;
                ctx.body_read = body_read;
                return Ok(legacy_response(live, *issuer, reply));
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
        if request_body::declared_length(&parts.headers).is_some_and(|n| n > settings.max_body_size)
        {
            return Err(RequestError::TooLarge);
        }
        let verified = match policy {
            None => None, // a public route
            Some(policy) => Some((policy, self.authorize(live, index, policy, parts)?)),
        };
        if let Some((_, token)) = verified.as_ref().filter(|_| limiter.keys_at(Phase::Token)) {
            self.admit(live, index, &parts.headers, ip, Some(token), ctx)
                .await
                .map_err(|refusal| ctx.refused(refusal))?;
        }
        let group = &live.upstreams[upstream];
        // Upgrades are HTTP/1.1's: an HTTP/2 upstream gets a plain request.
        let upgrade = tunnel::requested(parts, body.is_end_stream(), upgrades)
            .filter(|_| !group.config.protocol.is_http2());
        if upgrade.is_some()
            && !route
                .cors
                .as_ref()
                .is_none_or(|c| cors::origin_allowed(c, &parts.headers))
        {
            // A page on a refused origin cannot open a tunnel with the
            // user's credentials (browsers apply no CORS to WebSockets).
            return Err(RequestError::CorsRefused(cors::Refusal::Origin));
        }
        let prefix = strip_prefix.then_some(route.path.as_str());
        let mut added = forwarding::rewrite(
            parts,
            (&live.auth, group.config.host.as_deref()),
            verified.as_ref(),
            host,
            prefix,
            (peer, underscores),
        )
        .map_err(|e| self.denied(live, index, e))?;
        added.ids = ctx.ids.as_ref();
        ctx.upstream = Some((upstream, Instant::now()));
        if let Some(protocol) = upgrade {
            added.apply(&mut parts.headers);
            let token = verified.map(|(_, v)| tunnel::Token {
                refused_from: live.validator.refused_from(&v),
                issuer_iss: live.validator.keys().issuers[v.issuer].iss.as_str().into(),
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
        ctx.body_read = forwarded.body_read;
        // Its hop-by-hop headers were dropped as its head was parsed.
        Ok(forwarded.response.map(GatewayBody::Upstream))
    }
}

/// A CORS preflight for a route with a policy, answered without a token;
/// `None` for any other request (a preflight for a route without a policy
/// goes on as an ordinary `OPTIONS` request).
fn preflight(
    live: &Live,
    host: Option<&HeaderValue>,
    parts: &Parts,
    ctx: &mut RequestContext,
) -> Option<Result<Response<GatewayBody>, RequestError>> {
    let method = cors::preflight_method(parts)?;
    let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
    let (index, route) = live.routes.lookup(host, parts.uri.path(), &method)?;
    let policy = route.cors.as_ref()?;
    ctx.route = Some(index);
    ctx.preflight = true;
    Some(
        cors::preflight(policy, &parts.headers, &method)
            .map(respond::preflight)
            .map_err(RequestError::CorsRefused),
    )
}

/// The route for (host, path, method); `key` is the path's routing key
/// (`path::routing_key`).
fn route<'l>(
    live: &'l Live,
    host: Option<&HeaderValue>,
    key: &str,
    method: &Method,
) -> Result<(usize, &'l Route), RequestError> {
    find(live, host, key, method).map_err(miss)
}

/// As [`route`], saying why there is none.
fn find<'l>(
    live: &'l Live,
    host: Option<&HeaderValue>,
    key: &str,
    method: &Method,
) -> Result<(usize, &'l Route), Miss> {
    let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
    live.routes.find_key(host, key, method)
}

fn miss(miss: Miss) -> RequestError {
    match miss {
        Miss::NoRoute => RequestError::NoRoute,
        Miss::Method(_) => RequestError::MethodNotAllowed,
    }
}

fn is_oauth2(route: &Route) -> bool {
    matches!(
        route.action,
        RouteAction::Issue {
            endpoint: Endpoint::OAuth2,
            ..
        }
    )
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
