//! Sends an authorized request to one server of an upstream group over
//! pooled HTTP/1.1 connections and brings back the response, or the reason
//! there is none. A failed connect is retried on the next healthy server
//! while the request body is still unread; the body is counted against the
//! size limit as it streams; silence from either side is bounded by the
//! group's timeouts. The wire format is `codec`, idle connections
//! `pool`; this is the exchange. (hyper-util's pooled client did this
//! job before, at 7–12 µs a request more: BENCHMARKS.md, "The data plane,
//! and why".) Connections are plain TCP or TLS, dialled within their
//! limits by `conn`; groups that speak HTTP/2 are handed to `h2` instead.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Body;
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::codec::{self, RequestFraming};
use super::conn::Conn;
use super::pool::{Kept, Pooled};
use super::request_body::{BodyError, ClientBody};
use super::{Added, Failure, Forwarded, Server, UpstreamBody, UpstreamGroup};

/// Room for a response head (and what of the body comes with it).
const HEAD_ROOM: usize = 8 * 1024;

/// The upstream's answer to a request to upgrade.
pub enum Handshake {
    /// `101`: its head, and the connection, now speaking the new protocol.
    Switched {
        head: codec::ResponseHead,
        stream: Conn,
        /// What it sent after the head.
        early: Bytes,
        /// The connection's place among the server's (`max_connections`).
        slot: OwnedSemaphorePermit,
    },
    /// Any other answer, relayed as usual.
    Answered(Forwarded),
}

impl UpstreamGroup {
    /// Sends `parts` + `body` (its URI already the path to ask the upstream
    /// for) to the next healthy server of `group`: to the one after when the
    /// connect fails (once per server), and once more when an idempotent
    /// request's connection closes before the response begins and before
    /// any of its body was sent. The whole body must arrive within
    /// `body_timeout` of its start. `added` are the headers portero adds
    /// to the client's. `began` is when the caller read the clock last,
    /// just before: a first attempt on a pooled connection that did not
    /// wait for its slot starts its timers there.
    ///
    /// The request is lent, not given: what this future holds across its
    /// awaits is copied each time it moves, and a request's head is most of
    /// that. Only an HTTP/2 send takes the head and body for its own.
    pub async fn send(
        &self,
        parts: &mut http::request::Parts,
        body: &mut ClientBody,
        added: &Added<'_>,
        max_body_size: u64,
        body_timeout: Duration,
        began: Instant,
    ) -> Result<Forwarded, Failure> {
        if self.config.protocol.is_http2() {
            added.apply(&mut parts.headers);
            let parts = take_head(parts);
            let body = std::mem::replace(body, ClientBody::empty());
            // Boxed here, and a new connection below: rare paths whose
            // state would otherwise ride in every request's future.
            return Box::pin(self.send_h2(parts, body, max_body_size, body_timeout)).await;
        }
        let body_deadline = body.started().map(|started| started + body_timeout);
        let exchange = Exchange {
            group: self,
            method: &parts.method,
            framing: request_framing(body, max_body_size)?,
            limit: max_body_size,
            body_deadline,
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut attempts = Attempts::new(parts.method.is_idempotent(), began);
        let mut head = Vec::with_capacity(1024);
        loop {
            let server = attempts.next_server(self)?;
            let Some(conn) = self.checkout(&server, &mut attempts).await? else {
                continue;
            };
            head.clear();
            codec::write_head(
                &mut head,
                (&parts.method, path),
                &parts.headers,
                &server.authority,
                exchange.framing,
                |out| added.write_lines(out),
            );
            // The request's map is spare once its head is written: the
            // response's headers take its room.
            let spare = &mut parts.headers;
            match exchange.run(conn, &head, body, spare, &mut attempts).await {
                Err(Failure::Closed) if attempts.may_ask_again() => {
                    attempts.ask_again(self, server);
                }
                result => {
                    let result = result.map_err(|f| match f {
                        Failure::Closed => Failure::Upstream,
                        f => f,
                    });
                    self.passive(&server, &result);
                    return result;
                }
            }
        }
    }

    /// A connection to `server` for one request, within its limit: an idle
    /// one from its pool (unless `attempts` found one closed), or a new
    /// one. A failed dial counts against the server: its failure, or
    /// `None` while another server is left to try.
    async fn checkout(
        &self,
        server: &Server,
        attempts: &mut Attempts,
    ) -> Result<Option<Pooled>, Failure> {
        // A wait for the server's slot takes time: the clock is read after it.
        let slot = match server.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                attempts.began = None;
                self.queued_slot(server).await?
            }
        };
        let pooled = match attempts.pooled_ok {
            true => server
                .idle
                .take(attempts.began.unwrap_or_else(Instant::now)),
            false => None,
        };
        if let Some(kept) = pooled {
            return Ok(Some(Pooled::new(kept, server.idle.clone(), slot)));
        }
        let dialled = Box::pin(self.connect(server)).await;
        // Dialling takes time, failed or not: the clock is read after it.
        attempts.began = None;
        let kept = match dialled {
            Ok(stream) => Kept::new(stream),
            Err(f) => {
                let answer = server.failed_connect(f);
                self.passive(server, &Err(f));
                if !attempts.untried_left(self) {
                    return Err(answer);
                }
                attempts.last = answer;
                tracing::debug!(server = %server.addr, "connect failed; trying the next server");
                return Ok(None);
            }
        };
        Ok(Some(Pooled::new(kept, server.idle.clone(), slot)))
    }

    /// Asks the next healthy server to switch `parts` (a bodiless request
    /// whose `Connection`/`Upgrade` headers name the protocol) to another
    /// protocol, on a connection of its own that never returns to the pool.
    /// A failed connect is tried on the next server.
    pub async fn upgrade(&self, parts: http::request::Parts) -> Result<Handshake, Failure> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut tried: SmallVec<[SocketAddr; 4]> = SmallVec::new();
        let mut last = Failure::NoServer;
        let (server, slot, mut stream) = loop {
            let Some(server) = self.pick(&tried) else {
                return Err(last);
            };
            tried.push(server.addr);
            let slot = self.slot(&server).await?;
            match self.connect(&server).await {
                Ok(stream) => break (server, slot, stream),
                Err(f) => last = server.failed_connect(f),
            }
        };
        let mut head = Vec::with_capacity(1024);
        codec::write_head(
            &mut head,
            (&parts.method, path),
            &parts.headers,
            &server.authority,
            RequestFraming::Empty,
            |_| {},
        );
        match tokio::time::timeout(self.config.write_timeout, stream.write_all(&head)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(_)) => return Err(Failure::Upstream),
            Ok(Ok(())) => {}
        }
        let deadline = Instant::now() + self.config.read_timeout;
        let mut buf = BytesMut::with_capacity(4 * 1024);
        loop {
            match codec::parse_upgrade_head(&mut buf, &parts.method) {
                Ok(Some(head)) if head.status == http::StatusCode::SWITCHING_PROTOCOLS => {
                    return Ok(Handshake::Switched {
                        head,
                        stream,
                        early: buf.freeze(),
                        slot,
                    });
                }
                Ok(Some(head)) => {
                    let conn = Pooled::new(Kept::new(stream), server.idle.clone(), slot);
                    let response = head
                        .into_response(conn, buf, self.config.read_timeout)
                        .map(UpstreamBody::Left);
                    return Ok(Handshake::Answered(Forwarded {
                        response,
                        body_read: true,
                    }));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = ?e, "unusable upgrade response from upstream");
                    return Err(Failure::Upstream);
                }
            }
            match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Failure::Upstream),
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// How the request body travels: empty, by the length the client gave
/// (refused at once when that is over the limit), or chunked.
fn request_framing(body: &ClientBody, max_body_size: u64) -> Result<RequestFraming, Failure> {
    if body.is_end_stream() {
        return Ok(RequestFraming::Empty);
    }
    match body.size_hint().exact() {
        Some(n) if n > max_body_size => Err(Failure::TooLarge),
        Some(n) => Ok(RequestFraming::Length(n)),
        None => Ok(RequestFraming::Chunked),
    }
}

/// The servers one request has been sent to, and whether it may be sent
/// once more.
struct Attempts {
    tried: SmallVec<[SocketAddr; 4]>,
    /// The server to ask again: no other was left.
    again: Option<Arc<Server>>,
    /// What to answer once no server is left.
    last: Failure,
    /// A connection that closed before the response began is asked once
    /// more, for methods that may be repeated (RFC 9110 §9.2.2): a pooled
    /// connection the server had just closed, or a server that just died.
    may_repeat: bool,
    body_sent: bool,
    /// When this attempt began, if no clock read is needed to know: the
    /// caller's, for a first attempt that neither queued for a slot nor
    /// dialled.
    began: Option<Instant>,
    /// After a pooled connection turned out closed, the others in the
    /// pool may be too (the server restarted): the retry dials anew.
    pooled_ok: bool,
}

impl Attempts {
    fn new(idempotent: bool, began: Instant) -> Attempts {
        Attempts {
            tried: SmallVec::new(),
            again: None,
            last: Failure::NoServer,
            may_repeat: idempotent,
            body_sent: false,
            began: Some(began),
            pooled_ok: true,
        }
    }

    /// The server to ask again, else the next healthy one not yet tried.
    fn next_server(&mut self, group: &UpstreamGroup) -> Result<Arc<Server>, Failure> {
        let Some(server) = self.again.take().or_else(|| group.pick(&self.tried)) else {
            return Err(self.last);
        };
        if !self.tried.contains(&server.addr) {
            self.tried.push(server.addr);
        }
        Ok(server)
    }

    /// Asked only after a failure: is there a server left to try?
    fn untried_left(&self, group: &UpstreamGroup) -> bool {
        self.tried.len() < group.servers.load().len()
    }

    /// The connection closed before the response began: may the request
    /// go once more?
    fn may_ask_again(&self) -> bool {
        self.may_repeat && !self.body_sent
    }

    /// Once more, on a new connection: to the next server, or to this one
    /// when none is left.
    fn ask_again(&mut self, group: &UpstreamGroup, server: Arc<Server>) {
        self.may_repeat = false;
        self.pooled_ok = false;
        self.began = None;
        self.last = Failure::Upstream;
        let addr = server.addr;
        if !self.untried_left(group) {
            self.again = Some(server);
        }
        tracing::debug!(server = %addr, "connection closed before the response; asking again");
    }
}

/// The request head out of `parts`, an empty one left in its place: for
/// the rarer sends (HTTP/2, upgrades) that hand the head on as their own.
pub fn take_head(parts: &mut http::request::Parts) -> http::request::Parts {
    std::mem::replace(parts, http::Request::new(()).into_parts().0)
}

impl UpstreamGroup {
    /// A read from a server failed: a TLS alert (a client certificate
    /// refused after the handshake, in TLS 1.3) is logged with its reason.
    fn read_failed(&self, e: &std::io::Error) -> Failure {
        match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(error) => {
                tracing::warn!(upstream = %self.config.name, %error, "upstream TLS connection failed");
                Failure::Tls
            }
            None => Failure::Upstream,
        }
    }
}

/// One request on one connection.
struct Exchange<'a> {
    group: &'a UpstreamGroup,
    method: &'a http::Method,
    framing: RequestFraming,
    limit: u64,
    /// The whole request body must have arrived by then (`None`: there is
    /// no body).
    body_deadline: Option<Instant>,
}

impl Exchange<'_> {
    async fn run(
        &self,
        mut conn: Pooled,
        head: &[u8],
        body: &mut ClientBody,
        headers: &mut http::HeaderMap,
        attempts: &mut Attempts,
    ) -> Result<Forwarded, Failure> {
        let write_timeout = self.group.config.write_timeout;
        // A head almost always fits the socket's buffer at once: the timer
        // (a clock read, a timer entry) is set only for what did not.
        let written = match conn.stream_mut().write(head).now_or_never() {
            Some(Ok(n)) => n,
            Some(Err(_)) => return Err(Failure::Closed),
            None => 0,
        };
        if written < head.len() {
            let rest = conn.stream_mut().write_all(&head[written..]);
            match tokio::time::timeout(write_timeout, rest).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(Err(_)) => return Err(Failure::Closed),
                Ok(Ok(())) => {}
            }
        }
        // Once the last response's bytes are gone, a reused connection's
        // room is reclaimed here, not allocated anew.
        let mut buf = conn.take_buf();
        buf.reserve(HEAD_ROOM);
        let mut body_read = true;
        let mut sent = attempts.began;
        if self.framing != RequestFraming::Empty {
            attempts.body_sent = true;
            body_read = self.send_body(&mut conn, body, &mut buf).await?;
            sent = None;
        }
        // The upstream has `read_timeout` from the end of the request body.
        let deadline = sent.unwrap_or_else(Instant::now) + self.group.config.read_timeout;
        loop {
            // Nothing to parse before the first read, unless sending the
            // body read the start of an early answer.
            let parsed = match buf.is_empty() {
                true => Ok(None),
                false => codec::parse_response_head(&mut buf, self.method, headers),
            };
            match parsed {
                Ok(Some(mut head)) => {
                    // What is left of the request body is not on this
                    // connection: it carries nothing more.
                    head.reusable &= body_read;
                    let response = head
                        .into_response(conn, buf, self.group.config.read_timeout)
                        .map(UpstreamBody::Left);
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
            match tokio::time::timeout_at(deadline, conn.stream_mut().read_buf(&mut buf)).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(Ok(0)) if buf.is_empty() => return Err(Failure::Closed),
                Ok(Ok(0)) => return Err(Failure::Upstream),
                Ok(Ok(_)) => {}
                Ok(Err(e)) if buf.is_empty() && is_reset(&e) => return Err(Failure::Closed),
                Ok(Err(e)) => return Err(self.group.read_failed(&e)),
            }
        }
    }

    /// Streams the request body to the upstream in the framing chosen for
    /// it, counting it against the limit. Returns `false` if the upstream
    /// began its answer first (what it sent is left in `buf`).
    async fn send_body(
        &self,
        conn: &mut Pooled,
        body: &mut ClientBody,
        buf: &mut BytesMut,
    ) -> Result<bool, Failure> {
        let Some(body_deadline) = self.body_deadline else {
            return Ok(true); // no body
        };
        let write_timeout = self.group.config.write_timeout;
        let chunked = self.framing == RequestFraming::Chunked;
        let mut received: u64 = 0;
        let mut out = Vec::new();
        loop {
            let frame = tokio::select! {
                biased;
                // Cancel-safe: bytes are only taken when this branch wins.
                read = conn.stream_mut().read_buf(buf) => {
                    return match read {
                        Ok(n) if n > 0 => Ok(false),
                        _ => Err(Failure::Upstream),
                    };
                }
                frame = tokio::time::timeout_at(
                    body_deadline.min(Instant::now() + write_timeout),
                    body.frame(),
                ) => frame,
            };
            out.clear();
            let end = matches!(frame, Ok(None));
            match frame {
                // The client stopped sending.
                Err(_) => return Err(Failure::ClientTimeout),
                Ok(Some(Err(BodyError::Slow))) => return Err(Failure::ClientTimeout),
                Ok(Some(Err(BodyError::TooLarge))) => return Err(Failure::TooLarge),
                // The client's body broke (it went away, or framed it wrong).
                Ok(Some(Err(BodyError::Broken))) => return Err(Failure::BadBody),
                Ok(None) => {
                    if chunked {
                        out.extend_from_slice(codec::LAST_CHUNK);
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
                        codec::chunk(&mut out, &data);
                    } else {
                        out.extend_from_slice(&data);
                    }
                }
            }
            if !out.is_empty() {
                match tokio::time::timeout(write_timeout, conn.stream_mut().write_all(&out)).await {
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

#[cfg(test)]
mod tests {
    use super::super::pool::IdleList;
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use tokio::net::TcpListener;
    use tokio::net::TcpStream;
    use tokio::sync::Semaphore;

    /// A pooled connection whose other end is `server`.
    async fn pair() -> (Pooled, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let idle = Arc::new(IdleList::new(4, Duration::from_secs(60)));
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let conn = Pooled::new(Kept::new(Conn::Plain(client)), idle, slot);
        (conn, server)
    }

    /// Writes `bytes` to the upstream end in pieces cut at `cuts`.
    async fn send_in_pieces(mut server: TcpStream, bytes: Vec<u8>, cuts: Vec<usize>) {
        let mut at = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            let end = cut.clamp(at, bytes.len());
            server.write_all(&bytes[at..end]).await.unwrap();
            server.flush().await.unwrap();
            tokio::task::yield_now().await;
            at = end;
        }
        // Held open: the body must end by its framing, not by a close.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// A chunked (with a trailer) or length-framed response, however
        /// the upstream's bytes are split across reads, de-frames to
        /// exactly its body, ending by its framing while the connection
        /// stays open.
        #[test]
        fn framed_bodies_read_back_as_sent(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..6),
            chunked: bool,
            cuts in prop::collection::vec(0usize..1500, 0..6),
        ) {
            let body: Vec<u8> = chunks.concat();
            let mut bytes = if chunked {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()
            } else {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes()
            };
            if chunked {
                for c in &chunks {
                    codec::chunk(&mut bytes, c);
                }
                bytes.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
            } else {
                bytes.extend_from_slice(&body);
            }
            let mut cuts = cuts;
            cuts.sort_unstable();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let received = runtime.block_on(async move {
                let (conn, server) = pair().await;
                let writer = tokio::spawn(send_in_pieces(server, bytes, cuts));
                let mut conn = conn;
                let mut buf = BytesMut::new();
                let head = loop {
                    if let Some(head) = codec::parse_response_head(&mut buf, &http::Method::GET, &mut http::HeaderMap::new()).unwrap() {
                        break head;
                    }
                    conn.stream_mut().read_buf(&mut buf).await.unwrap();
                };
                let response = head.into_response(conn, buf, Duration::from_secs(2));
                let collected = response.into_body().collect().await.unwrap().to_bytes();
                writer.abort();
                collected
            });
            prop_assert_eq!(received.as_ref(), body.as_slice());
        }
    }
}
