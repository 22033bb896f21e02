//! Sends an authorized request to one server of an upstream group over
//! pooled HTTP/1.1 connections and brings back the response, or the reason
//! there is none. A failed connect is retried on the next healthy server
//! while the request body is still unread; the body is counted against the
//! size limit as it streams; silence from either side is bounded by the
//! group's timeouts.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::{Instant, Sleep};

use crate::upstream::UpstreamGroup;

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a request got no response from the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Every server is marked down (or was tried).
    NoServer,
    /// No server accepted a connection.
    Connect,
    /// A connection could not be made within the connect timeout.
    ConnectTimeout,
    /// The upstream took longer than its timeouts to take or answer the request.
    Timeout,
    /// The client stopped sending its body.
    ClientTimeout,
    /// The body grew past the size limit while streaming.
    TooLarge,
    /// The upstream broke the connection or sent something that is not HTTP.
    Upstream,
    /// The connection closed before the response began (answered as `Upstream`).
    Closed,
}

impl Failure {
    /// The status and JSON `error` and `message` the client gets.
    pub fn answer(self) -> (u16, &'static str, &'static str) {
        match self {
            Failure::NoServer => (503, "service_unavailable", "no healthy upstream server"),
            Failure::Connect | Failure::Upstream | Failure::Closed => {
                (502, "bad_gateway", "upstream failed")
            }
            Failure::ConnectTimeout | Failure::Timeout => {
                (504, "gateway_timeout", "upstream timed out")
            }
            Failure::ClientTimeout => (408, "request_timeout", "request body timed out"),
            Failure::TooLarge => (413, "payload_too_large", "request body too large"),
        }
    }
}

/// One upstream group's connection pool.
pub struct Forwarder {
    client: Client<HttpConnector, UpstreamBody>,
    /// `host:port` of each server, made once instead of per request.
    authorities: Vec<(SocketAddr, Authority)>,
    read_timeout: Duration,
    write_timeout: Duration,
}

impl Forwarder {
    pub fn new(group: &UpstreamGroup) -> Forwarder {
        let c = &group.config;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(c.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .http1_writev(false) // as the listeners: see listener.rs
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(c.idle_timeout)
            .pool_max_idle_per_host(c.max_idle_connections)
            .build(connector);
        let authorities = group
            .servers
            .iter()
            .map(|a| (*a, Authority::try_from(a.to_string()).expect("host:port")))
            .collect();
        Forwarder {
            client,
            authorities,
            read_timeout: c.read_timeout,
            write_timeout: c.write_timeout,
        }
    }

    /// Sends `parts` + `body` (its URI already the path to ask the upstream
    /// for) to the next healthy server of `group`: to the one after when the
    /// connect fails (once per server), and once more when an idempotent
    /// request's connection closes before the response begins.
    pub async fn send(
        &self,
        group: &UpstreamGroup,
        parts: http::request::Parts,
        body: Incoming,
        max_body_size: u64,
    ) -> Result<Response<Incoming>, Failure> {
        let start = Instant::now();
        let source = BodySource::new(body, start, max_body_size, self.write_timeout);
        let path = parts.uri.path_and_query().cloned();
        // A connection that closed before the response began is asked once
        // more, for methods that may be repeated (RFC 9110 §9.2.2): a pooled
        // connection the server had just closed, or a server that just died.
        let mut may_repeat = parts.method.is_idempotent();
        let mut parts = Some(parts);
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut again = None;
        let mut last = Failure::NoServer;
        loop {
            let Some(addr) = again.take().or_else(|| group.pick(&tried)) else {
                return Err(last);
            };
            if !tried.contains(&addr) {
                tried.push(addr);
            }
            let untried = tried.len() < group.servers.len();
            let Some(body) = source.reclaim() else {
                return Err(last); // the body went to a server that then failed
            };
            // The head is copied only when there may be another attempt.
            let mut head = match &parts {
                Some(p) if untried || may_repeat => copy_head(p),
                _ => parts.take().expect("the last attempt takes the head"),
            };
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Some(self.authority(addr));
            uri.path_and_query = path.clone();
            head.uri = Uri::from_parts(uri).expect("scheme, authority and path");
            // HTTP/2 clients are forwarded over HTTP/1.1 like everyone else.
            head.version = Version::HTTP_11;
            let request = Request::from_parts(head, body);
            match self.wait(self.client.request(request), &source).await {
                Ok(response) => return Ok(response),
                Err(f @ (Failure::Connect | Failure::ConnectTimeout)) if untried => {
                    last = f;
                    tracing::debug!(server = %addr, "connect failed; trying the next server");
                }
                Err(Failure::Closed) if may_repeat => {
                    may_repeat = false;
                    last = Failure::Upstream;
                    if !untried {
                        again = Some(addr);
                    }
                    tracing::debug!(server = %addr, "connection closed before the response; asking again");
                }
                Err(Failure::Closed) => return Err(Failure::Upstream),
                Err(f) => return Err(f),
            }
        }
    }

    /// The upstream's response body, with the group's read timeout between frames.
    pub fn response_body(&self, body: Incoming) -> ResponseBody {
        ResponseBody::new(body, self.read_timeout)
    }

    fn authority(&self, addr: SocketAddr) -> Authority {
        self.authorities
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, auth)| auth.clone())
            .expect("servers come from the group")
    }

    /// Waits for the response head: the upstream has `read_timeout` from the
    /// moment the request body ended, and the body may not stall for longer
    /// than `write_timeout` on its way.
    async fn wait(
        &self,
        response: impl Future<Output = Result<Response<Incoming>, hyper_util::client::legacy::Error>>,
        source: &BodySource,
    ) -> Result<Response<Incoming>, Failure> {
        let mut response = std::pin::pin!(response);
        loop {
            let deadline = source.deadline(self.read_timeout);
            tokio::select! {
                result = &mut response => return result.map_err(classify),
                () = tokio::time::sleep_until(deadline) => {
                    if source.deadline(self.read_timeout) <= Instant::now() {
                        return Err(source.timeout_failure());
                    }
                }
            }
        }
    }
}

fn copy_head(parts: &http::request::Parts) -> http::request::Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

fn classify(e: hyper_util::client::legacy::Error) -> Failure {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    let mut timed_out = false;
    let mut closed = false;
    while let Some(err) = source {
        if err.is::<BodyTooLarge>() {
            return Failure::TooLarge;
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            closed |= h.is_incomplete_message() || h.is_canceled();
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            timed_out |= io.kind() == TimedOut;
            closed |= matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe);
        }
        source = err.source();
    }
    match (e.is_connect(), timed_out) {
        (true, true) => Failure::ConnectTimeout,
        (true, false) => Failure::Connect,
        (false, _) if closed => Failure::Closed,
        (false, _) => Failure::Upstream,
    }
}

#[derive(Debug)]
struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body too large")
    }
}

impl StdError for BodyTooLarge {}

/// The client's request body, held so that a failed connect can hand it to
/// the next server: it is taken out of its slot only when first read.
struct BodySource {
    slot: Option<Arc<Slot>>,
    start: Instant,
}

struct Slot {
    body: Mutex<Option<Incoming>>,
    hint: SizeHint,
    limit: u64,
    write_timeout: Duration,
    progress: Progress,
}

/// How far the body has come, for the timeouts: when it last moved
/// (milliseconds since the exchange began), whether it ended, and whether it
/// is waiting on the client.
#[derive(Default)]
struct Progress {
    last_ms: AtomicU64,
    ended: AtomicBool,
    waiting_on_client: AtomicBool,
}

impl BodySource {
    fn new(body: Incoming, start: Instant, limit: u64, write_timeout: Duration) -> BodySource {
        // A body that is already over (GET, Content-Length: 0) needs no slot.
        let slot = (!body.is_end_stream()).then(|| {
            Arc::new(Slot {
                hint: body.size_hint(),
                body: Mutex::new(Some(body)),
                limit,
                write_timeout,
                progress: Progress::default(),
            })
        });
        BodySource { slot, start }
    }

    /// A body for the next attempt, or `None` once a server has read from it.
    fn reclaim(&self) -> Option<UpstreamBody> {
        let Some(slot) = &self.slot else {
            return Some(UpstreamBody::Empty);
        };
        let unread = slot.body.lock().expect("not poisoned").is_some();
        unread.then(|| UpstreamBody::Waiting {
            slot: slot.clone(),
            start: self.start,
        })
    }

    /// When the upstream's silence becomes a timeout.
    fn deadline(&self, read_timeout: Duration) -> Instant {
        let Some(slot) = &self.slot else {
            return self.start + read_timeout;
        };
        let p = &slot.progress;
        let last = self.start + Duration::from_millis(p.last_ms.load(Ordering::Acquire));
        if p.ended.load(Ordering::Acquire) {
            last + read_timeout
        } else {
            last + slot.write_timeout
        }
    }

    fn timeout_failure(&self) -> Failure {
        match &self.slot {
            Some(s)
                if !s.progress.ended.load(Ordering::Acquire)
                    && s.progress.waiting_on_client.load(Ordering::Acquire) =>
            {
                Failure::ClientTimeout
            }
            _ => Failure::Timeout,
        }
    }
}

/// The request body as the upstream connection reads it.
enum UpstreamBody {
    Empty,
    /// Not read yet: still in its slot, so it can go to another server.
    Waiting {
        slot: Arc<Slot>,
        start: Instant,
    },
    Streaming {
        body: Incoming,
        slot: Arc<Slot>,
        start: Instant,
        received: u64,
    },
}

impl UpstreamBody {
    fn moved(slot: &Slot, start: Instant) {
        let ms = start.elapsed().as_millis() as u64;
        slot.progress.last_ms.store(ms, Ordering::Release);
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let UpstreamBody::Waiting { slot, start } = this {
            let Some(body) = slot.body.lock().expect("not poisoned").take() else {
                // Another attempt has it; an empty body here would be a lie.
                return Poll::Ready(Some(Err("request body already sent".into())));
            };
            *this = UpstreamBody::Streaming {
                body,
                slot: slot.clone(),
                start: *start,
                received: 0,
            };
        }
        let UpstreamBody::Streaming {
            body,
            slot,
            start,
            received,
        } = this
        else {
            return Poll::Ready(None);
        };
        let progress = &slot.progress;
        match Pin::new(body).poll_frame(cx) {
            Poll::Pending => {
                progress.waiting_on_client.store(true, Ordering::Release);
                Poll::Pending
            }
            Poll::Ready(frame) => {
                progress.waiting_on_client.store(false, Ordering::Release);
                UpstreamBody::moved(slot, *start);
                match frame {
                    None => {
                        progress.ended.store(true, Ordering::Release);
                        Poll::Ready(None)
                    }
                    Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            *received += data.len() as u64;
                            if *received > slot.limit {
                                return Poll::Ready(Some(Err(BodyTooLarge.into())));
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Waiting { .. } => false,
            UpstreamBody::Streaming { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Waiting { slot, .. } => slot.hint,
            UpstreamBody::Streaming { body, .. } => body.size_hint(),
        }
    }
}

/// The upstream's response body on its way to the client: a stall longer
/// than `read_timeout` between frames ends it with an error (the client sees
/// the connection cut, as a truncated body must be reported).
pub struct ResponseBody {
    body: Incoming,
    idle: Duration,
    /// Armed the first time the upstream makes us wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl ResponseBody {
    fn new(body: Incoming, idle: Duration) -> ResponseBody {
        ResponseBody {
            body,
            idle,
            timer: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err("upstream response body timed out".into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Ready(frame) => {
                if let Some(timer) = this.timer.as_mut() {
                    timer.as_mut().reset(Instant::now() + this.idle);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
