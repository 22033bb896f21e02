//! HTTP/2 to upstream servers (`protocol = "h2c"` or `"h2"`), on hyper's
//! client: one connection per server carries every stream to it, request
//! and response bodies stream both ways, responses with their trailers
//! (gRPC's `grpc-status` lives there), and a connection that closed is made
//! again on the next request. The request body is counted against the size
//! limit and must arrive within the body timeout, as on HTTP/1.1; a body
//! the client broke is its `400`, never the server's failure.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, SET_COOKIE};
use http::uri::{Authority, Scheme};
use http::{HeaderName, Request, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioIo, TokioTimer};
use smallvec::SmallVec;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::conn::Conn;
use super::request_body::{BodyError, ClientBody};
use super::{BoxError, Failure, Forwarded, Server, UpstreamBody, UpstreamGroup};
use crate::cors;
use crate::executor::BoxingExecutor;

/// A server's HTTP/2 connection, if one is open.
pub type Sender = SendRequest<RequestBody>;

impl UpstreamGroup {
    /// Sends `parts` + `body` as a stream on the next healthy server's
    /// connection (a failed connect moves on to the next server).
    pub async fn send_h2(
        &self,
        mut parts: http::request::Parts,
        body: ClientBody,
        max_body_size: u64,
        body_timeout: Duration,
    ) -> Result<Forwarded, Failure> {
        if body.size_hint().exact().is_some_and(|n| n > max_body_size) {
            return Err(Failure::TooLarge);
        }
        let mut tried: SmallVec<[std::net::SocketAddr; 4]> = SmallVec::new();
        let mut last = Failure::NoServer;
        let (server, slot, mut sender) = loop {
            let Some(server) = self.pick(&tried) else {
                return Err(last);
            };
            tried.push(server.addr);
            let slot = self.slot(&server).await?;
            match self.sender(&server).await {
                Ok(sender) => break (server, slot, sender),
                Err(f) => {
                    last = server.failed_connect(f);
                    self.passive(&server, &Err(f));
                }
            }
        };
        // HTTP/2 names the host in `:authority`, taken from the URI.
        let authority = parts
            .headers
            .remove(HOST)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .or_else(|| Authority::try_from(server.authority.as_str()).ok());
        let scheme = if self.tls.is_some() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(scheme);
        uri.authority = authority;
        parts.uri = Uri::from_parts(uri).map_err(|_| Failure::Upstream)?;
        parts.version = http::Version::HTTP_2;
        // Trailers are relayed both ways (a gRPC server asks for this).
        parts
            .headers
            .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        let outcome = Arc::new(AtomicU8::new(BODY_OK));
        let deadline = body.started().unwrap_or_else(Instant::now) + body_timeout;
        let body = RequestBody {
            inner: Some(body),
            received: 0,
            limit: max_body_size,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            outcome: outcome.clone(),
        };
        let sent = sender.send_request(Request::from_parts(parts, body));
        let result = self.exchange(&server, sent, slot, &outcome).await;
        self.passive(&server, &result);
        result
    }

    /// Waits for the response to a sent request.
    async fn exchange(
        &self,
        server: &Server,
        sent: impl Future<Output = hyper::Result<http::Response<Incoming>>>,
        slot: OwnedSemaphorePermit,
        outcome: &AtomicU8,
    ) -> Result<Forwarded, Failure> {
        let response = match tokio::time::timeout(self.config.read_timeout, sent).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                return Err(match outcome.load(Ordering::Relaxed) {
                    BODY_TOO_LARGE => Failure::TooLarge,
                    BODY_TIMED_OUT => Failure::ClientTimeout,
                    // The client's fault: `400`, never a mark against the server.
                    BODY_BROKEN => Failure::BadBody,
                    _ => {
                        tracing::debug!(upstream = %self.config.name, server = %server.addr, %error, "HTTP/2 request failed");
                        Failure::Upstream
                    }
                });
            }
        };
        let response = response.map(|body| {
            UpstreamBody::Right(StreamBody {
                inner: body,
                _slot: slot,
            })
        });
        Ok(Forwarded {
            response,
            body_read: true,
        })
    }

    /// The server's open connection, or a new one (connected, TLS and
    /// HTTP/2 handshakes done) within the connect timeout.
    pub(super) async fn sender(&self, server: &Server) -> Result<Sender, Failure> {
        let mut open = server.h2.lock().await;
        if let Some(sender) = open.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let conn = self.connect(server).await?;
        if let Conn::Tls(tls) = &conn {
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                tracing::warn!(upstream = %self.config.name, server = %server.addr, "upstream did not agree to HTTP/2 (ALPN h2)");
                return Err(Failure::Tls);
            }
        }
        let handshake = hyper::client::conn::http2::Builder::new(BoxingExecutor)
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(TokioIo::new(conn));
        let (sender, connection) = match tokio::time::timeout(
            self.config.connect_timeout,
            handshake,
        )
        .await
        {
            Err(_) => return Err(Failure::ConnectTimeout),
            Ok(Err(error)) => {
                tracing::warn!(upstream = %self.config.name, server = %server.addr, %error, "HTTP/2 handshake with upstream failed");
                return Err(Failure::Upstream);
            }
            Ok(Ok(pair)) => pair,
        };
        let (name, addr) = (self.config.name.clone(), server.addr);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(upstream = %name, server = %addr, %error, "HTTP/2 connection ended");
            }
        });
        *open = Some(sender.clone());
        Ok(sender)
    }
}

const BODY_OK: u8 = 0;
const BODY_TOO_LARGE: u8 = 1;
const BODY_TIMED_OUT: u8 = 2;
const BODY_BROKEN: u8 = 3;

/// The client's request body on its way upstream, its data as it comes,
/// cut off (and the reason recorded) past the size limit or the body
/// deadline, or when the client's framing breaks. Its trailers end it and
/// are not sent: they are fields the client wrote after the headers were
/// stripped of identity and forwarding ones (RFC 9110 §6.5.1: a recipient
/// may discard them), and as on HTTP/1.1 no upstream hears them. gRPC
/// requests have none (trailers are a gRPC response's).
pub struct RequestBody {
    /// `None`: no body (a health check's request).
    inner: Option<ClientBody>,
    received: u64,
    limit: u64,
    deadline: Pin<Box<Sleep>>,
    outcome: Arc<AtomicU8>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let Some(data) = frame.data_ref() else {
                    // Trailers, the body's last frame: dropped, and the body ends.
                    this.inner = None;
                    return Poll::Ready(None);
                };
                this.received += data.len() as u64;
                if this.received > this.limit {
                    this.outcome.store(BODY_TOO_LARGE, Ordering::Relaxed);
                    return Poll::Ready(Some(Err("request body too large".into())));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let outcome = match e {
                    BodyError::Slow => BODY_TIMED_OUT,
                    BodyError::TooLarge => BODY_TOO_LARGE,
                    BodyError::Broken => BODY_BROKEN,
                };
                this.outcome.store(outcome, Ordering::Relaxed);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                this.outcome.store(BODY_TIMED_OUT, Ordering::Relaxed);
                Poll::Ready(Some(Err("request body timed out".into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(ClientBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or(SizeHint::with_exact(0), ClientBody::size_hint)
    }
}

impl RequestBody {
    /// No body at all.
    pub fn empty() -> RequestBody {
        RequestBody {
            inner: None,
            received: 0,
            limit: 0,
            deadline: Box::pin(tokio::time::sleep(Duration::MAX / 4)),
            outcome: Arc::new(AtomicU8::new(BODY_OK)),
        }
    }
}

/// A trailers frame without the fields portero answers for in the head:
/// an upstream's CORS answer (`cors::decorate` replaces the head's) and
/// `Set-Cookie` (which could plant one of portero's own cookies). Neither
/// belongs in trailers (RFC 9110 §6.5.1); gRPC's `grpc-status` and any
/// other field pass.
fn without_head_fields(frame: Frame<Bytes>) -> Frame<Bytes> {
    let mut trailers = match frame.into_trailers() {
        Ok(trailers) => trailers,
        Err(data) => return data,
    };
    let dropped: Vec<HeaderName> = trailers
        .keys()
        .filter(|n| **n == SET_COOKIE || cors::is_access_control(n))
        .cloned()
        .collect();
    for name in dropped {
        trailers.remove(name);
    }
    Frame::trailers(trailers)
}

/// An HTTP/2 response body, holding the request's place among the
/// server's (`max_connections`) until it ends.
pub struct StreamBody {
    inner: Incoming,
    _slot: OwnedSemaphorePermit,
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.get_mut().inner).poll_frame(cx));
        Poll::Ready(frame.map(|f| f.map(without_head_fields).map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
