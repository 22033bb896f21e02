//! The only file that speaks Pingora's proxy API. Each phase is short and
//! calls plain functions: route lookup (`routes`), token validation (`auth`),
//! header rewriting (`identity`), server choice (`upstream`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::auth::policy::Policy;
use crate::auth::revocation::Revocations;
use crate::auth::validate::{Validator, Verified};
use crate::auth::{denial, AuthError};
use crate::config::{AuthSettings, Endpoint, Issuer, OutagePolicy, RouteAction};
use crate::identity;
use crate::issue::{self, Issuing, TokenRequest, Transport};
use crate::metrics::{method_label, Metrics};
use crate::routes::RouteTable;
use crate::store::Store;
use crate::upstream::UpstreamGroup;

/// What a config reload replaces, swapped as one snapshot so a request never
/// sees routes of one config with keys of another.
pub struct Live {
    pub routes: RouteTable,
    pub validator: Validator,
    pub auth: AuthSettings,
    pub issuers: Vec<Issuer>,
}

/// Everything a request may read, shared by every listener.
pub struct Shared {
    pub live: ArcSwap<Live>,
    /// Revocations outlive reloads: every `Live::validator` reads this set.
    pub revocations: Arc<Revocations>,
    pub store: Arc<dyn Store>,
    /// What protected routes do while the store is unreachable.
    pub on_outage: OutagePolicy,
    pub upstreams: Vec<UpstreamGroup>,
    pub metrics: Metrics,
    pub max_body_size: u64,
    pub access_log: bool,
}

/// One proxy service: all listeners of one scheme.
pub struct Gateway {
    pub shared: Arc<Shared>,
    pub tls: bool,
}

/// Where the public keys of asymmetric issuers are published (RFC 8414 §2 `jwks_uri`).
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Per-request state.
pub struct RequestCtx {
    start: Instant,
    live: Option<Arc<Live>>,
    route: Option<usize>,
    verified: Option<Arc<Verified>>,
    tried: Vec<SocketAddr>,
    upstream_start: Option<Instant>,
    body_bytes: u64,
    /// The error response, when portero wrote one itself.
    answered: Option<u16>,
}

impl RequestCtx {
    fn route_name(&self) -> &str {
        match (&self.live, self.route) {
            (Some(live), Some(i)) => &live.routes.routes()[i].name,
            _ => "none",
        }
    }
}

/// The proxy route `request_filter` chose: its upstream, prefix stripping and
/// policy. Only called in the phases after it let a request through, which
/// only proxy routes do.
fn proxied(ctx: &RequestCtx) -> (usize, bool, Option<&Policy>) {
    let live = ctx.live.as_ref().expect("routed in request_filter");
    match &live.routes.routes()[ctx.route.expect("routed in request_filter")].action {
        RouteAction::Proxy {
            upstream,
            strip_prefix,
            policy,
        } => (*upstream, *strip_prefix, policy.as_ref()),
        RouteAction::Issue { .. } => unreachable!("token endpoints are answered in request_filter"),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes a complete JSON response.
async fn respond_json(
    session: &mut Session,
    status: u16,
    body: String,
    www_authenticate: Option<String>,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    if let Some(v) = www_authenticate {
        resp.insert_header("www-authenticate", v)?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}

/// The body size a request announces, if it announces one.
fn declared_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn error_body(error: &str, message: &str) -> String {
    serde_json::json!({ "error": error, "message": message }).to_string()
}

impl Gateway {
    /// Serves a token endpoint: reads the body within the issuer's size and
    /// time limits, then lets the dialect answer.
    async fn token_endpoint(
        &self,
        session: &mut Session,
        live: &Live,
        index: usize,
        endpoint: Endpoint,
    ) -> issue::Reply {
        let issuer = &live.issuers[index];
        let settings = issuer
            .endpoint
            .as_ref()
            .expect("token routes exist only for endpoints");
        let keys = live.validator.keys();
        let ctx = Issuing {
            index,
            issuer,
            endpoint: settings,
            keys: &keys,
            store: &self.shared.store,
            revocations: &self.shared.revocations,
            metrics: &self.shared.metrics,
        };
        let now = chrono::Utc::now();
        let path = session.req_header().uri.path().to_string();
        let body = match read_body(session, settings.max_body_size, settings.body_timeout).await {
            Ok(b) => b,
            Err(e) => return issue::transport_error(&ctx, e, &path, now),
        };
        let req = session.req_header();
        let request = TokenRequest {
            endpoint,
            body: &body,
            query: req.uri.query(),
            path: &path,
            client: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            now,
        };
        issue::handle(&ctx, &request).await
    }
}

/// Reads a whole request body, refusing it past `max` bytes (announced or
/// received) or when it does not arrive within `timeout`.
async fn read_body(
    session: &mut Session,
    max: u64,
    timeout: Duration,
) -> std::result::Result<Vec<u8>, Transport> {
    if declared_length(session.req_header()).is_some_and(|n| n > max) {
        return Err(Transport::TooLarge);
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        let _ = session.as_downstream_mut().write_continue_response().await;
    }
    let read = async {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > max as usize {
                        return Err(Transport::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                // A broken body is as good as one that never came.
                Err(_) => return Err(Transport::Timeout),
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(Transport::Timeout))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            live: None,
            route: None,
            verified: None,
            tried: Vec::new(),
            upstream_start: None,
            body_bytes: 0,
            answered: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let shared = &self.shared;
        let live = shared.live.load_full();
        ctx.live = Some(live.clone());
        let req = session.req_header();
        if req.uri.path() == JWKS_PATH && req.method == http::Method::GET {
            ctx.answered = Some(200);
            let jwks = live.validator.keys().jwks().to_string();
            respond_json(session, 200, jwks, None).await?;
            return Ok(true);
        }
        let Some((index, route)) =
            live.routes
                .lookup(identity::request_host(req), req.uri.path(), &req.method)
        else {
            ctx.answered = Some(404);
            respond_json(session, 404, error_body("not_found", "no route"), None).await?;
            return Ok(true);
        };
        ctx.route = Some(index);
        let policy = match &route.action {
            RouteAction::Issue { issuer, endpoint } => {
                let reply = self
                    .token_endpoint(session, &live, *issuer, *endpoint)
                    .await;
                ctx.answered = Some(reply.status);
                respond_json(session, reply.status, reply.body, None).await?;
                return Ok(true);
            }
            RouteAction::Proxy { policy, .. } => policy,
        };
        if declared_length(req).is_some_and(|n| n > shared.max_body_size) {
            ctx.answered = Some(413);
            let body = error_body("payload_too_large", "request body too large");
            respond_json(session, 413, body, None).await?;
            return Ok(true);
        }
        let Some(policy) = policy else {
            return Ok(false); // public route
        };
        if shared.on_outage == OutagePolicy::FailClosed && !shared.store.reachable() {
            shared
                .metrics
                .auth_decisions
                .with_label_values(&[&route.name, "deny", "store_unavailable"])
                .inc();
            ctx.answered = Some(503);
            let body = error_body(
                "store_unavailable",
                "revocations cannot be checked while the state store is unreachable",
            );
            respond_json(session, 503, body, None).await?;
            return Ok(true);
        }
        let result = match policy.token_from.extract(&req.headers) {
            None => Err(AuthError::MissingToken),
            Some(token) => live.validator.validate(token, policy, unix_now()),
        };
        let (result_label, reason) = match &result {
            Ok(_) => ("allow", "ok"),
            Err(e) => ("deny", e.reason()),
        };
        shared
            .metrics
            .auth_decisions
            .with_label_values(&[&route.name, result_label, reason])
            .inc();
        match result {
            Ok(verified) => {
                ctx.verified = Some(verified);
                Ok(false)
            }
            Err(e) => {
                tracing::debug!(route = %route.name, reason, "denied");
                let d = denial(e);
                ctx.answered = Some(d.status);
                respond_json(session, d.status, d.body, Some(d.www_authenticate)).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(chunk) = body {
            ctx.body_bytes += chunk.len() as u64;
            if ctx.body_bytes > self.shared.max_body_size {
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body too large");
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let group = &self.shared.upstreams[proxied(ctx).0];
        let Some(addr) = group.pick(&ctx.tried) else {
            return Error::e_explain(ErrorType::HTTPStatus(503), "no healthy upstream server");
        };
        ctx.tried.push(addr);
        ctx.upstream_start.get_or_insert_with(Instant::now);
        let mut peer = HttpPeer::new(addr, false, String::new());
        let c = &group.config;
        peer.options.connection_timeout = Some(c.connect_timeout);
        peer.options.read_timeout = Some(c.read_timeout);
        peer.options.write_timeout = Some(c.write_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    /// A refused or timed-out connection is retried on another server, once per server.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let group = &self.shared.upstreams[proxied(ctx).0];
        if ctx.tried.len() < group.servers.len() {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let live = ctx.live.as_ref().expect("routed in request_filter");
        let route = &live.routes.routes()[ctx.route.expect("routed in request_filter")];
        let (upstream_index, strip_prefix, policy) = proxied(ctx);
        let group = &self.shared.upstreams[upstream_index];

        for name in identity::headers_to_strip(&upstream.headers, &live.auth) {
            upstream.remove_header(&name);
        }
        if let (Some(policy), Some(verified)) = (policy, &ctx.verified) {
            for (name, value) in policy.identity_headers(verified) {
                upstream.insert_header(name, value)?;
            }
            if !policy.forward_token {
                identity::remove_token(upstream, &policy.token_from);
            }
        }
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        identity::set_forwarded(upstream, client, self.tls)?;
        if let Some(host) = &group.config.host {
            upstream.insert_header("host", host)?;
        }
        if strip_prefix {
            if let Some(uri) = identity::strip_prefix(&upstream.uri, &route.path) {
                upstream.set_uri(uri);
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, error, message) = match e.etype() {
            ErrorType::HTTPStatus(413) => (413, "payload_too_large", "request body too large"),
            ErrorType::HTTPStatus(503) => {
                (503, "service_unavailable", "no healthy upstream server")
            }
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                (504, "gateway_timeout", "upstream timed out")
            }
            _ => match e.esource() {
                ErrorSource::Upstream => (502, "bad_gateway", "upstream failed"),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        (0, "", "")
                    }
                    _ => (400, "bad_request", "malformed request"),
                },
                _ => (500, "internal_error", "internal error"),
            },
        };
        if status > 0 {
            ctx.answered = Some(status);
            if let Err(err) = respond_json(session, status, error_body(error, message), None).await
            {
                tracing::debug!(error = %err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.answered)
            .unwrap_or(0);
        let req = session.req_header();
        let route = ctx.route_name();
        let m = &self.shared.metrics;
        let elapsed = ctx.start.elapsed();
        m.requests
            .with_label_values(&[route, method_label(&req.method), itoa_status(status)])
            .inc();
        m.request_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        // Set only once a route let the request through to an upstream.
        if let Some(started) = ctx.upstream_start {
            let upstream = &self.shared.upstreams[proxied(ctx).0].config.name;
            let outcome = if e.is_some() { "error" } else { "ok" };
            m.upstream_requests
                .with_label_values(&[upstream, outcome])
                .inc();
            m.upstream_duration
                .with_label_values(&[upstream])
                .observe(started.elapsed().as_secs_f64());
        }
        if !self.shared.access_log {
            return;
        }
        // The access log names the path, never the query string or a header:
        // either may carry a token.
        tracing::info!(
            target: "portero::access",
            method = %req.method,
            path = req.uri.path(),
            status,
            route,
            micros = elapsed.as_micros() as u64,
            client = ?session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
            error = e.map(|e| e.etype().as_str()),
        );
    }
}

/// Status codes as static label strings, without formatting per request.
fn itoa_status(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        301 => "301",
        302 => "302",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        0 => "0",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
