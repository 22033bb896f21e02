//! portero's authenticated hot path on a hyper data plane instead of
//! Pingora's: the prototype behind the data-plane decision in BENCHMARKS.md.
//! It does per request what `proxy.rs` does for a protected proxy route
//! (route lookup, token validation against the route's policy, the decision
//! metric, client identity headers stripped, claims injected,
//! `X-Forwarded-*` set, the request and duration metrics) and forwards over
//! hyper's pooled HTTP/1.1 client on one current-thread runtime. It has no
//! token endpoints, retries, timeouts, TLS or graceful shutdown: it measures,
//! it does not serve.
//!
//! ```sh
//! cargo build --release --example hyper_gateway
//! GATEWAY_CMD='exec target/release/examples/hyper_gateway benches/peers.toml' \
//!   bash ../shared/bench/peers.sh
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portero::auth::revocation::Revocations;
use portero::auth::{denial, AuthError};
use portero::config::{RouteAction, UpstreamKind};
use portero::identity;
use portero::metrics::{method_label, Metrics};
use portero::proxy::Live;
use tokio::net::TcpListener;

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>;

struct Gateway {
    live: Live,
    metrics: Metrics,
    /// The first server of each upstream, by upstream index.
    servers: Vec<SocketAddr>,
    client: Client<HttpConnector, Incoming>,
}

fn json(status: StatusCode, body: String, www_authenticate: Option<String>) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(v) = www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

impl Gateway {
    async fn handle(&self, mut req: Request<Incoming>, client: IpAddr) -> Response<Body> {
        let start = Instant::now();
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let Some((_, route)) = self
            .live
            .routes
            .lookup(host, req.uri().path(), req.method())
        else {
            return json(
                StatusCode::NOT_FOUND,
                r#"{"error":"not_found"}"#.into(),
                None,
            );
        };
        let RouteAction::Proxy {
            upstream, policy, ..
        } = &route.action
        else {
            return json(
                StatusCode::NOT_FOUND,
                r#"{"error":"not_found"}"#.into(),
                None,
            );
        };
        let verified = match policy {
            None => None,
            Some(policy) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let result = match policy.token_from.extract(req.headers()) {
                    None => Err(AuthError::MissingToken),
                    Some(token) => self.live.validator.validate(token, policy, now),
                };
                let (label, reason) = match &result {
                    Ok(_) => ("allow", "ok"),
                    Err(e) => ("deny", e.reason()),
                };
                self.metrics
                    .auth_decisions
                    .with_label_values(&[&route.name, label, reason])
                    .inc();
                match result {
                    Ok(v) => Some(v),
                    Err(e) => {
                        let d = denial(e);
                        let status = StatusCode::from_u16(d.status).expect("valid status");
                        return json(status, d.body, Some(d.www_authenticate));
                    }
                }
            }
        };

        let method = method_label(req.method());
        let forwarded_host = req.headers().get(HOST).cloned();
        let headers = req.headers_mut();
        for name in identity::headers_to_strip(headers, &self.live.auth) {
            headers.remove(&name);
        }
        if let (Some(policy), Some(verified)) = (policy, &verified) {
            for (name, value) in policy.identity_headers(verified) {
                headers.insert(name, value);
            }
        }
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) if !prior.trim().is_empty() => format!("{prior}, {client}"),
            _ => client.to_string(),
        };
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(&xff).expect("ip text"),
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        if let Some(host) = forwarded_host {
            headers.insert("x-forwarded-host", host);
        }
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("http://{}{path}", self.servers[*upstream])
            .parse()
            .expect("valid uri");
        *req.uri_mut() = uri;

        let resp = match self.client.request(req).await {
            Ok(resp) => resp.map(|b| b.boxed_unsync()),
            Err(_) => json(
                StatusCode::BAD_GATEWAY,
                r#"{"error":"bad_gateway"}"#.into(),
                None,
            ),
        };
        self.metrics
            .requests
            .with_label_values(&[&route.name, method, resp.status().as_str()])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&[&route.name])
            .observe(start.elapsed().as_secs_f64());
        resp
    }
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "benches/peers.toml".into());
    let config = portero::config::load(Path::new(&path)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let metrics = Metrics::new(&config);
        let store = portero::store::open(&config, metrics.store.clone()).await?;
        let revocations = Arc::new(Revocations::default());
        let live = portero::server::build_live(&config, &revocations, store.as_ref()).await?;
        let servers = config
            .upstreams
            .iter()
            .map(|u| match &u.kind {
                UpstreamKind::Servers(list) => list[0],
                UpstreamKind::Echo { listen } => *listen,
            })
            .collect();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(connector);
        let gateway = Arc::new(Gateway {
            live,
            metrics,
            servers,
            client,
        });
        let addr = config.listeners.first().context("no [[listen]]")?.addr;
        let listener = TcpListener::bind(addr).await?;
        loop {
            let (stream, peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let gateway = gateway.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let gateway = gateway.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(gateway.handle(req, peer.ip()).await)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
