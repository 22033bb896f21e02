//! Sends an authorized request to one server of an upstream group over
//! pooled HTTP/1.1 connections and brings back the response, or the reason
//! there is none. A failed connect is retried on the next healthy server
//! while the request body is still unread; the body is counted against the
//! size limit as it streams; silence from either side is bounded by the
//! group's timeouts. The wire format is `wire.rs`; this is the pool and the
//! exchange. (hyper-util's pooled client did this job before, at 7–12 µs a
//! request more: BENCHMARKS.md, "Which part of hyper costs".)

use std::error::Error as StdError;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::upstream::UpstreamGroup;
use crate::wire::{self, RequestFraming, ResponseBody};

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

/// A response from the upstream, and whether it took the whole request
/// body (if not, the client's connection cannot carry another request).
pub struct Forwarded {
    pub response: Response<ResponseBody>,
    pub body_read: bool,
}

/// One upstream group's connections.
pub struct Forwarder {
    /// In `group.servers` order.
    servers: Vec<Server>,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
}

struct Server {
    addr: SocketAddr,
    /// `host:port`, for requests that name no host.
    authority: String,
    idle: Arc<IdleList>,
}

impl Forwarder {
    pub fn new(group: &UpstreamGroup) -> Forwarder {
        let c = &group.config;
        let servers = group
            .servers
            .iter()
            .map(|&addr| Server {
                addr,
                authority: addr.to_string(),
                idle: Arc::new(IdleList::new(c.max_idle_connections, c.idle_timeout)),
            })
            .collect();
        Forwarder {
            servers,
            connect_timeout: c.connect_timeout,
            read_timeout: c.read_timeout,
            write_timeout: c.write_timeout,
        }
    }

    /// Sends `parts` + `body` (its URI already the path to ask the upstream
    /// for) to the next healthy server of `group`: to the one after when the
    /// connect fails (once per server), and once more when an idempotent
    /// request's connection closes before the response begins and before
    /// any of its body was sent.
    pub async fn send(
        &self,
        group: &UpstreamGroup,
        parts: http::request::Parts,
        mut body: Incoming,
        max_body_size: u64,
    ) -> Result<Forwarded, Failure> {
        let framing = if body.is_end_stream() {
            RequestFraming::Empty
        } else {
            match body.size_hint().exact() {
                Some(n) if n > max_body_size => return Err(Failure::TooLarge),
                Some(n) => RequestFraming::Length(n),
                None => RequestFraming::Chunked,
            }
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        // A connection that closed before the response began is asked once
        // more, for methods that may be repeated (RFC 9110 §9.2.2): a pooled
        // connection the server had just closed, or a server that just died.
        let mut may_repeat = parts.method.is_idempotent();
        let mut tried: SmallVec<[SocketAddr; 4]> = SmallVec::new();
        let mut again = None;
        let mut last = Failure::NoServer;
        let mut body_sent = false;
        // After a pooled connection turned out closed, the others in the
        // pool may be too (the server restarted): the retry dials anew.
        let mut pooled_ok = true;
        let mut head = Vec::with_capacity(1024);
        loop {
            let Some(addr) = again.take().or_else(|| group.pick(&tried)) else {
                return Err(last);
            };
            if !tried.contains(&addr) {
                tried.push(addr);
            }
            let untried = tried.len() < group.servers.len();
            let server = self.server(addr);
            let pooled = if pooled_ok { server.idle.take() } else { None };
            let conn = match pooled {
                Some(conn) => conn,
                None => match self.connect(server).await {
                    Ok(conn) => conn,
                    Err(f) if untried => {
                        last = f;
                        tracing::debug!(server = %addr, "connect failed; trying the next server");
                        continue;
                    }
                    Err(f) => return Err(f),
                },
            };
            head.clear();
            wire::write_head(
                &mut head,
                &parts.method,
                path,
                &parts.headers,
                &server.authority,
                framing,
            );
            let exchange = Exchange {
                forwarder: self,
                method: &parts.method,
                framing,
                limit: max_body_size,
            };
            match exchange.run(conn, &head, &mut body, &mut body_sent).await {
                Ok(forwarded) => return Ok(forwarded),
                Err(Failure::Closed) if may_repeat && !body_sent => {
                    may_repeat = false;
                    pooled_ok = false;
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

    fn server(&self, addr: SocketAddr) -> &Server {
        self.servers
            .iter()
            .find(|s| s.addr == addr)
            .expect("servers come from the group")
    }

    async fn connect(&self, server: &Server) -> Result<Pooled, Failure> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(server.addr)).await
            {
                Err(_) => return Err(Failure::ConnectTimeout),
                Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => {
                    return Err(Failure::ConnectTimeout)
                }
                Ok(Err(_)) => return Err(Failure::Connect),
                Ok(Ok(stream)) => stream,
            };
        let _ = stream.set_nodelay(true);
        Ok(Pooled {
            stream,
            home: server.idle.clone(),
        })
    }
}

/// One request on one connection.
struct Exchange<'a> {
    forwarder: &'a Forwarder,
    method: &'a http::Method,
    framing: RequestFraming,
    limit: u64,
}

impl Exchange<'_> {
    async fn run(
        &self,
        mut conn: Pooled,
        head: &[u8],
        body: &mut Incoming,
        body_sent: &mut bool,
    ) -> Result<Forwarded, Failure> {
        let write_timeout = self.forwarder.write_timeout;
        match tokio::time::timeout(write_timeout, conn.stream.write_all(head)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(_)) => return Err(Failure::Closed),
            Ok(Ok(())) => {}
        }
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let mut body_read = true;
        if self.framing != RequestFraming::Empty {
            *body_sent = true;
            body_read = self.send_body(&mut conn, body, &mut buf).await?;
        }
        // The upstream has `read_timeout` from the end of the request body.
        let deadline = Instant::now() + self.forwarder.read_timeout;
        loop {
            match wire::parse_response_head(&mut buf, self.method) {
                Ok(Some(mut head)) => {
                    // What is left of the request body is not on this
                    // connection: it carries nothing more.
                    head.reusable &= body_read;
                    let response = head.into_response(conn, buf, self.forwarder.read_timeout);
                    return Ok(Forwarded {
                        response,
                        body_read,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = ?e, "unusable response head from upstream");
                    return Err(Failure::Upstream);
                }
            }
            match tokio::time::timeout_at(deadline, conn.stream.read_buf(&mut buf)).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(Ok(0)) if buf.is_empty() => return Err(Failure::Closed),
                Ok(Ok(0)) => return Err(Failure::Upstream),
                Ok(Ok(_)) => {}
                Ok(Err(e)) if buf.is_empty() && is_reset(&e) => return Err(Failure::Closed),
                Ok(Err(_)) => return Err(Failure::Upstream),
            }
        }
    }

    /// Streams the request body to the upstream in the framing chosen for
    /// it, counting it against the limit. Returns `false` if the upstream
    /// began its answer first (what it sent is left in `buf`).
    async fn send_body(
        &self,
        conn: &mut Pooled,
        body: &mut Incoming,
        buf: &mut BytesMut,
    ) -> Result<bool, Failure> {
        let write_timeout = self.forwarder.write_timeout;
        let chunked = self.framing == RequestFraming::Chunked;
        let mut received: u64 = 0;
        let mut out = Vec::new();
        loop {
            let frame = tokio::select! {
                biased;
                ready = conn.stream.readable() => {
                    if ready.is_err() {
                        return Err(Failure::Upstream);
                    }
                    match conn.stream.try_read_buf(buf) {
                        Ok(0) => return Err(Failure::Upstream),
                        Ok(_) => return Ok(false),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                        Err(_) => return Err(Failure::Upstream),
                    }
                }
                frame = tokio::time::timeout(write_timeout, body.frame()) => frame,
            };
            out.clear();
            let end = matches!(frame, Ok(None));
            match frame {
                // The client stopped sending.
                Err(_) => return Err(Failure::ClientTimeout),
                // The client's body broke (it went away, or framed it wrong).
                Ok(Some(Err(_))) => return Err(Failure::Upstream),
                Ok(None) => {
                    if chunked {
                        out.extend_from_slice(wire::LAST_CHUNK);
                    }
                }
                Ok(Some(Ok(frame))) => {
                    // Trailers are not forwarded: hyper's client did not either.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    received += data.len() as u64;
                    if received > self.limit {
                        return Err(Failure::TooLarge);
                    }
                    if data.is_empty() {
                        continue;
                    }
                    if chunked {
                        wire::chunk(&mut out, &data);
                    } else {
                        out.extend_from_slice(&data);
                    }
                }
            }
            if !out.is_empty() {
                match tokio::time::timeout(write_timeout, conn.stream.write_all(&out)).await {
                    Err(_) => return Err(Failure::Timeout),
                    Ok(Err(_)) => return Err(Failure::Upstream),
                    Ok(Ok(())) => {}
                }
            }
            if end {
                return Ok(true);
            }
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// A connection to one server, returned to that server's idle list when a
/// response has been read to its end; dropped (closed) otherwise.
pub struct Pooled {
    stream: TcpStream,
    home: Arc<IdleList>,
}

impl Pooled {
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn release(self) {
        let home = self.home.clone();
        home.put(self.stream);
    }
}

/// One server's idle connections: the most recently used is taken first,
/// at most `max` are kept, and a sweep closes those idle for `timeout`.
struct IdleList {
    conns: Mutex<Vec<Idle>>,
    max: usize,
    timeout: Duration,
    sweeping: AtomicBool,
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

impl IdleList {
    fn new(max: usize, timeout: Duration) -> IdleList {
        IdleList {
            conns: Mutex::new(Vec::new()),
            max,
            timeout,
            sweeping: AtomicBool::new(false),
        }
    }

    fn take(self: &Arc<Self>) -> Option<Pooled> {
        let mut conns = self.conns.lock().expect("not poisoned");
        while let Some(idle) = conns.pop() {
            if idle.since.elapsed() < self.timeout && still_open(&idle.stream) {
                return Some(Pooled {
                    stream: idle.stream,
                    home: self.clone(),
                });
            }
        }
        None
    }

    fn put(self: &Arc<Self>, stream: TcpStream) {
        {
            let mut conns = self.conns.lock().expect("not poisoned");
            if conns.len() >= self.max {
                return;
            }
            conns.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }
}

/// Closes idle connections past their time, until the pool is gone.
async fn sweep(list: Weak<IdleList>) {
    let Some(every) = list
        .upgrade()
        .map(|l| (l.timeout / 2).max(Duration::from_millis(10)))
    else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(list) = list.upgrade() else { return };
        let mut conns = list.conns.lock().expect("not poisoned");
        conns.retain(|idle| idle.since.elapsed() < list.timeout);
    }
}

/// An idle connection is readable only if the server closed it or sent
/// something unasked; either way it cannot carry a request. tokio's
/// readiness answers without a system call in the usual case.
fn still_open(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
        }
    }
}
