//! An upstream's response body, de-framed from its pooled connection (by
//! length, chunked, or to the close) as a hyper `Body` for hyper to frame
//! again for the client.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::Response;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::codec::{ResponseFraming, ResponseHead, MAX_HEAD};
use super::conn::Conn;
use super::pool::Pooled;
use super::BoxError;

/// How much is read from an upstream at a time.
const READ_SIZE: usize = 16 * 1024;

impl ResponseHead {
    /// The response for hyper, its body read from `conn` after what is
    /// already in `buf`.
    pub fn into_response(
        self,
        conn: Pooled,
        buf: BytesMut,
        idle_timeout: Duration,
    ) -> Response<ResponseBody> {
        let state = match self.framing {
            ResponseFraming::Empty => State::Done,
            ResponseFraming::Length(n) => State::Length(n),
            ResponseFraming::Chunked => State::ChunkSize,
            ResponseFraming::Close => State::UntilClose,
        };
        let mut body = ResponseBody {
            conn: Some(conn),
            buf,
            state,
            reusable: self.reusable,
            idle: idle_timeout,
            timer: None,
        };
        if body.state == State::Done {
            body.finish();
        }
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        // Not the upstream's version: portero answers in its own (RFC 9110
        // §6.2), HTTP/1.1 to an HTTP/1.1 client whatever the upstream spoke.
        *response.headers_mut() = self.headers;
        response
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many body bytes are still to come.
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer fields after the last chunk, up to an empty line; dropped.
    Trailers,
    UntilClose,
    Done,
}

/// An upstream's response body, de-framed. A stall longer than the group's
/// read timeout between reads ends it with an error, as does a connection
/// that closes early: the client must see a truncated body as one. The
/// connection goes back to its pool once the body has been read to its end.
pub struct ResponseBody {
    conn: Option<Pooled>,
    buf: BytesMut,
    state: State,
    reusable: bool,
    idle: Duration,
    /// Armed the first time the upstream makes us wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl ResponseBody {
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            // Bytes after the end are a confused upstream: close, not reuse.
            if self.reusable && self.buf.is_empty() {
                conn.release(std::mem::take(&mut self.buf));
            }
        }
    }

    /// Reads more from the upstream into `buf`: `Ok(false)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, BoxError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        self.buf.reserve(READ_SIZE);
        let read = match conn.stream_mut() {
            Conn::Plain(stream) => poll_read_plain(stream, &mut self.buf, cx),
            tls => tokio_util::io::poll_read_buf(Pin::new(tls), cx, &mut self.buf),
        };
        match read {
            Poll::Ready(Ok(n)) => {
                if let Some(timer) = self.timer.as_mut() {
                    timer.as_mut().reset(Instant::now() + self.idle);
                }
                Poll::Ready(Ok(n > 0))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => {
                let idle = self.idle;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err("upstream response body timed out".into()))
            }
        }
    }

    /// The next piece of body in `buf`, or what to do to get one.
    fn step(&mut self) -> Result<Step, BoxError> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Length(n) => {
                    if self.buf.is_empty() {
                        return Ok(Step::Read);
                    }
                    let take = n.min(self.buf.len() as u64);
                    let data = self.buf.split_to(take as usize).freeze();
                    self.state = State::Length(n - take);
                    if n == take {
                        self.finish();
                    }
                    return Ok(Step::Data(data));
                }
                State::UntilClose => {
                    if self.buf.is_empty() {
                        return Ok(Step::Read);
                    }
                    return Ok(Step::Data(self.buf.split().freeze()));
                }
                State::ChunkSize => match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.buf.advance(used);
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() < 1024 => {
                        return Ok(Step::Read)
                    }
                    _ => return Err("malformed chunk size from upstream".into()),
                },
                State::ChunkData(n) => {
                    if self.buf.is_empty() {
                        return Ok(Step::Read);
                    }
                    let take = n.min(self.buf.len() as u64);
                    let data = self.buf.split_to(take as usize).freeze();
                    self.state = if n == take {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(n - take)
                    };
                    return Ok(Step::Data(data));
                }
                State::ChunkEnd => {
                    if self.buf.len() < 2 {
                        return Ok(Step::Read);
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err("malformed chunk from upstream".into());
                    }
                    self.buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                        if self.buf.len() > MAX_HEAD {
                            return Err("upstream trailers too large".into());
                        }
                        return Ok(Step::Read);
                    };
                    self.buf.advance(end + 2);
                    if end == 0 {
                        self.finish();
                    }
                }
            }
        }
    }
}

enum Step {
    Data(Bytes),
    Read,
    End,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.step() {
                Err(e) => return Poll::Ready(Some(Err(self::fail(this, e)))),
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::Read) => match ready!(this.poll_fill(cx)) {
                    Ok(true) => {}
                    Ok(false) if this.state == State::UntilClose => {
                        this.state = State::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    Ok(false) => {
                        let e = "upstream closed the connection mid-body".into();
                        return Poll::Ready(Some(Err(self::fail(this, e))));
                    }
                    Err(e) => return Poll::Ready(Some(Err(self::fail(this, e)))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// Reads what has arrived on a plain connection straight into `buf`.
fn poll_read_plain(
    stream: &tokio::net::TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        // A `WouldBlock` clears the readiness, so the next poll waits.
        match stream.try_read_buf(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            result => return Poll::Ready(result),
        }
    }
}

/// A body that failed is over, and its connection is closed.
fn fail(body: &mut ResponseBody, e: BoxError) -> BoxError {
    body.state = State::Done;
    body.conn = None;
    e
}
