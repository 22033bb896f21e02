//! portero's authenticated hot path on a minimal HTTP/1.1 loop instead of
//! hyper: the prototype that measures what a leaner engine would buy
//! (BENCHMARKS.md, "A leaner engine than hyper?"). Per request it does what
//! `proxy.rs` does for a protected proxy route: route lookup, token
//! validation against the route's policy, the decision metric, client
//! identity and hop-by-hop headers stripped, claims injected,
//! `X-Forwarded-*` set, the request, duration and upstream metrics. Heads
//! are parsed by `httparse` (hyper's parser) into the same `HeaderMap` the
//! shared code reads; upstream connections come from one shared idle list.
//!
//! It measures, it does not serve: only bodiless HTTP/1.1 requests and
//! `Content-Length` (or bodiless) responses are handled, anything else gets
//! 501 or 502; there are no timeouts, retries, token endpoints, TLS or
//! graceful shutdown.
//!
//! ```sh
//! cargo build --release --example lean_gateway
//! GATEWAY_CMD='exec target/release/examples/lean_gateway benches/peers.toml' \
//!   bash ../shared/bench/peers.sh
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::{Buf, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Uri};
use portero::auth::revocation::Revocations;
use portero::auth::{denial, AuthError};
use portero::config::{RouteAction, UpstreamKind};
use portero::identity;
use portero::metrics::{method_label, Metrics};
use portero::proxy::Live;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEADERS: usize = 64;
const MAX_HEAD: usize = 64 * 1024;

struct Gateway {
    live: Live,
    metrics: Metrics,
    /// Each upstream's name, first server and idle connections, by upstream index.
    upstreams: Vec<(String, SocketAddr, Mutex<Vec<TcpStream>>)>,
}

/// A parsed request head, its header values sharing the read buffer.
struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

enum Outcome {
    /// Write these bytes; the connection stays open.
    Answer(Vec<u8>),
    /// Write these bytes, then close.
    Close(Vec<u8>),
}

fn json(status: StatusCode, body: &str, extra: Option<(&str, &str)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncache-control: no-store\r\n");
    if let Some((name, value)) = extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

/// Parses one request head from `buf`, or says more bytes are needed.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err("head too large"),
        Err(_) => return Err("malformed head"),
    };
    if req.version != Some(1) {
        return Err("not HTTP/1.1");
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes()).map_err(|_| "method")?;
    let path = req.path.unwrap_or("");
    let (path_start, path_len) = (path.as_ptr() as usize - buf.as_ptr() as usize, path.len());
    let spans: Vec<(HeaderName, usize, usize)> = req
        .headers
        .iter()
        .map(|h| {
            let start = h.value.as_ptr() as usize - buf.as_ptr() as usize;
            HeaderName::from_bytes(h.name.as_bytes())
                .map(|n| (n, start, h.value.len()))
                .map_err(|_| "header name")
        })
        .collect::<Result<_, _>>()?;
    let bytes = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(bytes.slice(path_start..path_start + path_len))
        .map_err(|_| "path")?;
    let mut headers = HeaderMap::with_capacity(spans.len() + 4);
    for (name, start, n) in spans {
        // httparse has checked the value's bytes, as it does for hyper.
        let value =
            unsafe { HeaderValue::from_maybe_shared_unchecked(bytes.slice(start..start + n)) };
        headers.append(name, value);
    }
    Ok(Some(Head {
        method,
        uri,
        headers,
    }))
}

/// Only requests without a body take this path.
fn bodiless(head: &Head) -> bool {
    !head.headers.contains_key(TRANSFER_ENCODING)
        && head
            .headers
            .get(CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
        && head.method != Method::CONNECT
}

impl Gateway {
    async fn handle(&self, mut head: Head, client: &HeaderValue) -> Outcome {
        let start = Instant::now();
        if !bodiless(&head) {
            return Outcome::Close(json(
                StatusCode::NOT_IMPLEMENTED,
                r#"{"error":"body"}"#,
                None,
            ));
        }
        let host = identity::host_value(&head.headers, &head.uri);
        let host_name = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
        let Some((_, route)) = self
            .live
            .routes
            .lookup(host_name, head.uri.path(), &head.method)
        else {
            return Outcome::Answer(json(
                StatusCode::NOT_FOUND,
                r#"{"error":"not_found"}"#,
                None,
            ));
        };
        let RouteAction::Proxy {
            upstream, policy, ..
        } = &route.action
        else {
            return Outcome::Answer(json(
                StatusCode::NOT_FOUND,
                r#"{"error":"not_found"}"#,
                None,
            ));
        };
        let verified = match policy {
            None => None,
            Some(policy) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let result = match policy.token_from.extract(&head.headers) {
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
                    Ok(v) => Some((policy, v)),
                    Err(e) => {
                        let d = denial(e);
                        let status = StatusCode::from_u16(d.status).expect("valid status");
                        let auth = Some(("www-authenticate", d.www_authenticate.as_str()));
                        return Outcome::Answer(json(status, &d.body, auth));
                    }
                }
            }
        };

        let headers = &mut head.headers;
        for name in identity::headers_to_strip(headers, &self.live.auth) {
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
        identity::set_forwarded(headers, host, client, false);

        let upstream_start = Instant::now();
        let result = self.forward(*upstream, &head).await;
        let m = &self.metrics;
        let name = &route.name;
        let (outcome, status) = match &result {
            Ok((_, status)) => ("ok", *status),
            Err(_) => ("error", 502),
        };
        let upstream_name = &self.upstreams[*upstream].0;
        m.upstream_requests
            .with_label_values(&[upstream_name, outcome])
            .inc();
        m.upstream_duration
            .with_label_values(&[upstream_name])
            .observe(upstream_start.elapsed().as_secs_f64());
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        m.requests
            .with_label_values(&[name, method_label(&head.method), status.as_str()])
            .inc();
        m.request_duration
            .with_label_values(&[name])
            .observe(start.elapsed().as_secs_f64());
        match result {
            Ok((bytes, _)) => Outcome::Answer(bytes),
            Err(e) => Outcome::Answer(json(StatusCode::BAD_GATEWAY, e, None)),
        }
    }

    /// Sends the head to a pooled upstream connection and returns the
    /// response as the client gets it, with its status.
    async fn forward(&self, index: usize, head: &Head) -> Result<(Vec<u8>, u16), &'static str> {
        let (_, addr, idle) = &self.upstreams[index];
        let pooled = idle.lock().expect("not poisoned").pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let c = TcpStream::connect(addr)
                    .await
                    .map_err(|_| r#"{"error":"connect"}"#)?;
                c.set_nodelay(true).map_err(|_| r#"{"error":"connect"}"#)?;
                c
            }
        };
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(head.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            head.uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .as_bytes(),
        );
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &head.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        conn.write_all(&out)
            .await
            .map_err(|_| r#"{"error":"write"}"#)?;

        let mut buf = BytesMut::with_capacity(8 * 1024);
        loop {
            if conn
                .read_buf(&mut buf)
                .await
                .map_err(|_| r#"{"error":"read"}"#)?
                == 0
            {
                return Err(r#"{"error":"closed"}"#);
            }
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut slots);
            let len = match resp.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
                _ => return Err(r#"{"error":"bad response"}"#),
            };
            let status = resp.code.unwrap_or(502);
            let mut length = 0usize;
            let mut reusable = true;
            let mut client = Vec::with_capacity(len + 64);
            client.extend_from_slice(b"HTTP/1.1 ");
            client.extend_from_slice(status.to_string().as_bytes());
            client.push(b' ');
            client.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
            client.extend_from_slice(b"\r\n");
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .ok_or(r#"{"error":"bad length"}"#)?;
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(r#"{"error":"chunked"}"#);
                } else if h.name.eq_ignore_ascii_case("connection") {
                    reusable &= !h.value.eq_ignore_ascii_case(b"close");
                    continue;
                } else if h.name.eq_ignore_ascii_case("keep-alive") {
                    continue;
                }
                client.extend_from_slice(h.name.as_bytes());
                client.extend_from_slice(b": ");
                client.extend_from_slice(h.value);
                client.extend_from_slice(b"\r\n");
            }
            client.extend_from_slice(b"\r\n");
            if head.method == Method::HEAD || status == 204 || status == 304 {
                length = 0;
            }
            buf.advance(len);
            while buf.len() < length {
                if conn
                    .read_buf(&mut buf)
                    .await
                    .map_err(|_| r#"{"error":"read"}"#)?
                    == 0
                {
                    return Err(r#"{"error":"closed"}"#);
                }
            }
            client.extend_from_slice(&buf[..length]);
            if reusable && buf.len() == length {
                idle.lock().expect("not poisoned").push(conn);
            }
            return Ok((client, status));
        }
    }
}

async fn serve(mut stream: TcpStream, gateway: Arc<Gateway>, client: IpAddr) {
    // As portero does: the X-Forwarded-For text made once per connection.
    let client = HeaderValue::try_from(client.to_string()).expect("an address is header text");
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        let head = loop {
            match parse_head(&mut buf) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(why) => {
                    let _ = stream
                        .write_all(&json(StatusCode::BAD_REQUEST, why, None))
                        .await;
                    return;
                }
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        match gateway.handle(head, &client).await {
            Outcome::Answer(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Outcome::Close(bytes) => {
                let _ = stream.write_all(&bytes).await;
                return;
            }
        }
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
    runtime.block_on(async {
        let metrics = Metrics::new(&config);
        let store = portero::store::open(&config, metrics.store.clone()).await?;
        let revocations = Arc::new(Revocations::default());
        let live =
            portero::server::build_live(&config, &revocations, store.as_ref(), &metrics).await?;
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let addr = match &u.kind {
                    UpstreamKind::Servers(list) => list[0],
                    UpstreamKind::Echo { listen } => *listen,
                };
                (u.name.clone(), addr, Mutex::new(Vec::new()))
            })
            .collect();
        let gateway = Arc::new(Gateway {
            live,
            metrics,
            upstreams,
        });
        let addr = config.listeners.first().context("no [[listen]]")?.addr;
        let listener = TcpListener::bind(addr).await?;
        loop {
            let (stream, peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(serve(stream, gateway.clone(), peer.ip()));
        }
    })
}
