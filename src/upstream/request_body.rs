//! The client's request body on its way upstream. A body up to
//! `buffer_size` is read whole before an upstream connection is taken (as
//! nginx's `proxy_request_buffering` and HAProxy's `http-buffer-request`
//! do), so a client that trickles its body holds no upstream connection;
//! a larger one streams on. Either way it must keep a minimum pace: after a
//! grace period, each `min_rate` bytes buy one more second, and a body that
//! falls behind is refused (`408`) at once, freeing what it held.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// How a request body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    /// Read whole, up to this many bytes, before an upstream is asked.
    pub buffer_size: usize,
    pub max_size: u64,
    /// Bytes per second once `grace` has passed; 0: no minimum.
    pub min_rate: u64,
    pub grace: Duration,
}

/// Why a body was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// It fell behind the minimum rate or the whole-body deadline.
    Slow,
    TooLarge,
    /// The client's framing broke, or it went away.
    Broken,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::Slow => "request body too slow",
            BodyError::TooLarge => "request body too large",
            BodyError::Broken => "request body broken",
        })
    }
}

impl std::error::Error for BodyError {}

/// How far behind the minimum rate a body may fall: none before `free_until`,
/// then one second for every `min_rate` bytes received.
#[derive(Debug, Clone, Copy)]
struct Pace {
    min_rate: u64,
    free_until: Instant,
    received: u64,
}

impl Pace {
    /// When more of the body must have arrived; `None` without a minimum.
    fn due(&self) -> Option<Instant> {
        (self.min_rate > 0).then(|| {
            self.free_until + Duration::from_secs_f64(self.received as f64 / self.min_rate as f64)
        })
    }
}

/// A request body: what was read before the upstream was asked, then the
/// rest as it comes, under the pace.
pub struct ClientBody {
    buffered: Option<Bytes>,
    trailers: Option<HeaderMap>,
    rest: Option<Incoming>,
    /// `None` for a body without a minimum pace.
    pace: Option<Pace>,
    due: Option<Pin<Box<Sleep>>>,
    /// `None` for no body: nothing to time, and no clock read.
    started: Option<Instant>,
}

impl ClientBody {
    /// No body.
    pub fn empty() -> ClientBody {
        ClientBody {
            buffered: None,
            trailers: None,
            rest: None,
            pace: None,
            due: None,
            started: None,
        }
    }

    /// Streamed as it comes, with no minimum pace and nothing buffered (a
    /// gRPC stream may rightly pause between messages).
    pub fn streaming(body: Incoming) -> ClientBody {
        ClientBody::of(None, None, Some(body), None, Some(Instant::now()))
    }

    fn of(
        buffered: Option<Bytes>,
        trailers: Option<HeaderMap>,
        rest: Option<Incoming>,
        pace: Option<Pace>,
        started: Option<Instant>,
    ) -> ClientBody {
        let due = match (&rest, pace.as_ref().and_then(Pace::due)) {
            (Some(_), Some(at)) => Some(Box::pin(tokio::time::sleep_until(at))),
            _ => None,
        };
        ClientBody {
            buffered,
            trailers,
            rest,
            pace,
            due,
            started,
        }
    }

    /// When the body began to be read (`None` for no body): its whole-body
    /// deadline counts from here.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Reads `body` until it ends or `rules.buffer_size` bytes have come,
    /// within `deadline` and the pace.
    pub async fn receive(
        mut body: Incoming,
        rules: &BodyRules,
        deadline: Instant,
    ) -> Result<ClientBody, BodyError> {
        let started = Instant::now();
        let mut pace = Pace {
            min_rate: rules.min_rate,
            free_until: started + rules.grace,
            received: 0,
        };
        let mut first: Option<Bytes> = None;
        let mut more = BytesMut::new();
        let mut trailers = None;
        while !body.is_end_stream() && pace.received < rules.buffer_size as u64 {
            let until = pace.due().map_or(deadline, |due| due.min(deadline));
            let frame = match tokio::time::timeout_at(until, body.frame()).await {
                Err(_) => return Err(BodyError::Slow),
                Ok(None) => break,
                Ok(Some(Err(_))) => return Err(BodyError::Broken),
                Ok(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    break;
                }
            };
            pace.received += data.len() as u64;
            if pace.received > rules.max_size {
                return Err(BodyError::TooLarge);
            }
            // One frame is kept as it came; more are put together.
            match &first {
                None if more.is_empty() => first = Some(data),
                _ => {
                    if let Some(f) = first.take() {
                        more.extend_from_slice(&f);
                    }
                    more.extend_from_slice(&data);
                }
            }
        }
        let buffered = first.or_else(|| (!more.is_empty()).then(|| more.freeze()));
        let rest = (!body.is_end_stream() && trailers.is_none()).then_some(body);
        Ok(ClientBody::of(
            buffered,
            trailers,
            rest,
            Some(pace),
            Some(started),
        ))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(data) = this.buffered.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
        };
        match Pin::new(rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(pace)) = (frame.data_ref(), this.pace.as_mut()) {
                    pace.received += data.len() as u64;
                    if let (Some(due), Some(at)) = (this.due.as_mut(), pace.due()) {
                        due.as_mut().reset(at);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => Poll::Ready(Some(Err(BodyError::Broken))),
            Poll::Ready(None) => {
                this.rest = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(due) = this.due.as_mut() else {
                    return Poll::Pending;
                };
                ready!(due.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyError::Slow)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.buffered.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.buffered.as_ref().map_or(0, |b| b.len() as u64);
        let Some(rest) = &self.rest else {
            return SizeHint::with_exact(buffered);
        };
        let rest = rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + buffered);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}

/// The body size a request announces, if it announces one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_is_a_number_or_none() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(declared_length(&headers), None);
        headers.insert(http::header::CONTENT_LENGTH, "5000".parse().unwrap());
        assert_eq!(declared_length(&headers), Some(5000));
        headers.insert(http::header::CONTENT_LENGTH, "5k".parse().unwrap());
        assert_eq!(declared_length(&headers), None);
    }

    #[test]
    fn the_pace_allows_a_grace_then_a_second_per_min_rate_bytes() {
        let start = Instant::now();
        let mut pace = Pace {
            min_rate: 1024,
            free_until: start + Duration::from_secs(10),
            received: 0,
        };
        assert_eq!(pace.due(), Some(start + Duration::from_secs(10)));
        pace.received = 4096;
        assert_eq!(pace.due(), Some(start + Duration::from_secs(14)));
        pace.min_rate = 0;
        assert_eq!(pace.due(), None);
    }
}
