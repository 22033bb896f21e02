//! One request through the gateway: route lookup (`routes`), the token
//! endpoints (`issue`), token validation (`auth`), header rewriting
//! (`identity`), forwarding (`forward`), and the metrics and access log line
//! every request leaves behind.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::auth::denial;
use crate::auth::revocation::Revocations;
use crate::config::PathRules;
use crate::config::{Endpoint, OutagePolicy, RouteAction};
use crate::forward::{Failure, Forwarded, Forwarder};
use crate::identity;
use crate::issue::{self, Issuing, TokenRequest, Transport};
use crate::listener::{Handler, Peer};
use crate::live::Live;
use crate::metrics::{method_label, Metrics, UpstreamSeries};
use crate::path::PathError;
use crate::store::Store;
use crate::target::{self, HostError};
use crate::upstream::UpstreamGroup;
use crate::wire::{BoxError, ResponseBody};

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
    /// From the request head to the end of its body.
    pub body_timeout: Duration,
    pub access_log: bool,
    pub paths: PathRules,
}

/// The public listeners' request handler.
pub struct Gateway {
    shared: Arc<Shared>,
    /// One connection pool per upstream group, in `shared.upstreams` order.
    forwarders: Vec<Forwarder>,
    /// Upstream groups change only with a restart, so their series are
    /// looked up once, in the same order.
    upstream_series: Vec<UpstreamSeries>,
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
}

impl Gateway {
    pub fn new(shared: Arc<Shared>) -> Gateway {
        let forwarders = shared.upstreams.iter().map(Forwarder::new).collect();
        let upstream_series = shared
            .upstreams
            .iter()
            .map(|u| shared.metrics.upstream_series(&u.config.name))
            .collect();
        Gateway {
            shared,
            forwarders,
            upstream_series,
        }
    }

    pub async fn handle(&self, req: Request<Incoming>, peer: Peer) -> Response<GatewayBody> {
        let start = Instant::now();
        let live = self.shared.live.load_full();
        let method = method_label(req.method());
        let (mut parts, body) = req.into_parts();
        let has_body = !body.is_end_stream();
        let mut trace = Trace::default();
        // The one path and host everything below acts on, or a `400`.
        let checked = target::normalize_path(&mut parts, self.shared.paths)
            .map_err(PathError::message)
            .and_then(|()| target::host(&parts).map_err(HostError::message));
        // Only the log needs the path after the request has gone upstream.
        let logged = self
            .shared
            .access_log
            .then(|| (parts.method.clone(), parts.uri.path().to_owned()));
        let mut response = match checked {
            Ok(host) => {
                self.serve(&live, parts, host, body, &peer, &mut trace)
                    .await
            }
            Err(message) => error(StatusCode::BAD_REQUEST, "bad_request", message),
        };
        if has_body && !trace.body_read {
            // What is left of the body is still on the way: this connection
            // cannot carry another request, and the client must know.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }

        let route = match trace.route {
            Some(i) => live.routes.routes()[i].name.as_str(),
            None => "none",
        };
        let status = response.status();
        self.shared
            .metrics
            .requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        let elapsed = start.elapsed().as_secs_f64();
        match trace.route {
            Some(i) => live.route_series[i].duration.observe(elapsed),
            None => {
                let unrouted = &self.shared.metrics.request_duration;
                unrouted.with_label_values(&[route]).observe(elapsed);
            }
        }
        if let Some((index, started)) = trace.upstream {
            let series = &self.upstream_series[index];
            match trace.failure {
                Some(_) => series.error.inc(),
                None => series.ok.inc(),
            }
            series.duration.observe(started.elapsed().as_secs_f64());
        }
        if let Some((method, path)) = logged {
            // The access log names the path, never the query string or a
            // header: either may carry a token.
            tracing::info!(
                target: "portero::access",
                %method,
                path,
                status = status.as_u16(),
                route,
                micros = start.elapsed().as_micros() as u64,
                client = %peer.addr.ip(),
                error = trace.failure.map(|f| f.answer().1),
            );
        }
        response
    }

    async fn serve(
        &self,
        live: &Live,
        mut parts: Parts,
        host: Option<HeaderValue>,
        body: Incoming,
        peer: &Peer,
        trace: &mut Trace,
    ) -> Response<GatewayBody> {
        let shared = &self.shared;
        if parts.uri.path() == JWKS_PATH && parts.method == Method::GET {
            return json(StatusCode::OK, live.validator.keys().jwks().to_string());
        }
        let host_name = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
        let Some((index, route)) = live
            .routes
            .lookup(host_name, parts.uri.path(), &parts.method)
        else {
            return error(StatusCode::NOT_FOUND, "not_found", "no route");
        };
        trace.route = Some(index);
        let (upstream, strip_prefix, policy) = match &route.action {
            RouteAction::Issue { issuer, endpoint } => {
                let (reply, body_read) = self
                    .token_endpoint(live, *issuer, *endpoint, &parts, body, peer)
                    .await;
                trace.body_read = body_read;
                return json(status(reply.status), reply.body);
            }
            RouteAction::Proxy {
                upstream,
                strip_prefix,
                policy,
            } => (*upstream, *strip_prefix, policy.as_ref()),
        };
        if declared_length(&parts.headers).is_some_and(|n| n > shared.max_body_size) {
            let (code, name, message) = Failure::TooLarge.answer();
            return error(status(code), name, message);
        }
        let verified = match policy {
            None => None, // a public route
            Some(policy) => {
                if shared.on_outage == OutagePolicy::FailClosed && !shared.store.reachable() {
                    shared
                        .metrics
                        .auth_decisions
                        .with_label_values(&[&route.name, "deny", "store_unavailable"])
                        .inc();
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "store_unavailable",
                        "revocations cannot be checked while the state store is unreachable",
                    );
                }
                let result = policy
                    .token_from
                    .extract(&parts.headers)
                    .and_then(|token| live.validator.validate(token, policy, unix_now()));
                match result {
                    Ok(verified) => {
                        if let Some(allowed) = &live.route_series[index].allowed {
                            allowed.inc();
                        }
                        Some((policy, verified))
                    }
                    Err(e) => {
                        let reason = e.reason();
                        shared
                            .metrics
                            .auth_decisions
                            .with_label_values(&[&route.name, "deny", reason])
                            .inc();
                        tracing::debug!(route = %route.name, reason, "denied");
                        let d = denial(e);
                        let mut resp = json(status(d.status), d.body);
                        if let Ok(v) = HeaderValue::try_from(d.www_authenticate) {
                            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
                        }
                        return resp;
                    }
                }
            }
        };

        // What the upstream is told.
        let group = &shared.upstreams[upstream];
        let headers = &mut parts.headers;
        for name in identity::headers_to_strip(headers, &live.auth, peer.trusted) {
            headers.remove(&name);
        }
        if let Some((policy, verified)) = &verified {
            for (name, value) in policy.identity_headers(verified) {
                headers.insert(name, value);
            }
            if !policy.forward_token {
                identity::remove_token(headers, &policy.token_from);
            }
        }
        // One Host upstream: the configured one, else the client's (checked,
        // without a trailing dot). An HTTP/2 request names it in its URI only.
        let upstream_host = match &group.config.host {
            Some(over) => HeaderValue::from_str(over).ok(),
            None => host.clone(),
        };
        if let Some(h) = upstream_host {
            if headers.get(HOST) != Some(&h) {
                headers.insert(HOST, h);
            }
        }
        identity::set_forwarded(headers, host, &peer.forwarded_for, peer.tls, peer.trusted);
        if strip_prefix {
            if let Some(uri) = identity::strip_prefix(&parts.uri, &route.path) {
                parts.uri = uri;
            }
        }

        trace.upstream = Some((upstream, Instant::now()));
        let forwarder = &self.forwarders[upstream];
        match forwarder
            .send(
                group,
                parts,
                body,
                shared.max_body_size,
                shared.body_timeout,
            )
            .await
        {
            Ok(Forwarded {
                response,
                body_read,
            }) => {
                // If the upstream answered before taking the whole body,
                // the rest of it is still on its way to this connection.
                trace.body_read = body_read;
                // Its hop-by-hop headers were dropped as its head was parsed.
                response.map(GatewayBody::Upstream)
            }
            Err(failure) => {
                trace.failure = Some(failure);
                let (code, name, message) = failure.answer();
                error(status(code), name, message)
            }
        }
    }

    /// Serves a token endpoint: reads the body within the issuer's size and
    /// time limits, then lets the dialect answer. Also says whether the body
    /// was read.
    async fn token_endpoint(
        &self,
        live: &Live,
        index: usize,
        endpoint: Endpoint,
        parts: &Parts,
        body: Incoming,
        peer: &Peer,
    ) -> (issue::Reply, bool) {
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
        let path = parts.uri.path();
        let body = match read_body(parts, body, settings.max_body_size, settings.body_timeout).await
        {
            Ok(b) => b,
            Err(e) => return (issue::transport_error(&ctx, e, path, now), false),
        };
        let request = TokenRequest {
            endpoint,
            body: &body,
            json: issue::is_json(parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes)),
            query: parts.uri.query(),
            path,
            client: Some(peer.addr.ip()),
            now,
        };
        (issue::handle(&ctx, &request).await, true)
    }
}

/// Reads a whole request body, refusing it past `max` bytes (announced or
/// received) or when it does not arrive within `timeout`. hyper answers
/// `Expect: 100-continue` when the body is first read.
async fn read_body(
    parts: &Parts,
    body: Incoming,
    max: u64,
    timeout: Duration,
) -> Result<Bytes, Transport> {
    if declared_length(&parts.headers).is_some_and(|n| n > max) {
        return Err(Transport::TooLarge);
    }
    let limited = Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Transport::TooLarge),
        // A broken body is as good as one that never came.
        Ok(Err(_)) | Err(_) => Err(Transport::Timeout),
    }
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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A complete JSON response that no cache may keep.
fn json(status: StatusCode, body: String) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::Json(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error(status: StatusCode, error: &str, message: &str) -> Response<GatewayBody> {
    json(
        status,
        serde_json::json!({ "error": error, "message": message }).to_string(),
    )
}

impl Handler for Gateway {
    type Body = GatewayBody;

    fn respond(
        &self,
        req: Request<Incoming>,
        peer: Peer,
    ) -> impl Future<Output = Response<GatewayBody>> + Send {
        self.handle(req, peer)
    }
}

/// A response body: one portero wrote, or the upstream's, streamed through.
pub enum GatewayBody {
    Json(Full<Bytes>),
    Upstream(ResponseBody),
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            GatewayBody::Json(b) => Pin::new(b).poll_frame(cx).map_err(|e| match e {}),
            GatewayBody::Upstream(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Json(b) => b.is_end_stream(),
            GatewayBody::Upstream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Json(b) => b.size_hint(),
            GatewayBody::Upstream(b) => b.size_hint(),
        }
    }
}
