//! W3C trace context (`traceparent`) and `X-Request-Id` for the upstream:
//! the client's trace continued with portero's own span as the parent, or
//! a new trace when the client sent none (or one that does not parse);
//! the client's request id kept, or one made. Both go in the access log.
//! They are taken out of the client's headers when read, and written
//! straight into an HTTP/1.1 upstream's request head (`write_lines`):
//! no header map holds them on the usual path.

use std::cell::RefCell;

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longer request ids are replaced: they end up in every log line.
const MAX_REQUEST_ID: usize = 128;

thread_local! {
    // Ids need to be unique, not secret: a fast generator per thread,
    // seeded from the operating system.
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_entropy());
}

/// Which of `traceparent` and `X-Request-Id` a request carries. Most
/// carry neither: one look along the few names a request has costs less
/// than hashing both names to find nothing, and the gateway makes that
/// look once for all it reads of the names before routing (`note`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    parent: bool,
    id: bool,
}

impl Sent {
    /// Notes one of the request's header names.
    #[inline]
    pub fn note(&mut self, name: &HeaderName) {
        self.parent |= *name == TRACEPARENT;
        self.id |= *name == X_REQUEST_ID;
    }
}

/// A request's place in a trace, and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    /// What the upstream gets: `00-` trace id `-` portero's span `-` flags.
    traceparent: [u8; 55],
    /// The client's span (16 hex digits), parent of portero's; `None` when
    /// portero started the trace.
    client_span: Option<[u8; 16]>,
    request_id: RequestId,
}

/// The client's request id, or 32 hex digits portero made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestId {
    Client(HeaderValue),
    Made([u8; 32]),
}

impl RequestIds {
    /// Taken from the client's headers (which no longer hold them), with
    /// fresh ids for what is missing; `sent` says which of them came.
    pub fn take(headers: &mut HeaderMap, sent: Sent) -> RequestIds {
        let mut random = [0u8; 40];
        IDS.with(|rng| rng.borrow_mut().fill_bytes(&mut random));
        let mut parent = *b"00-00000000000000000000000000000000-0000000000000000-01";
        let mut client_span = None;
        let client_parent = sent.parent.then(|| headers.remove(TRACEPARENT)).flatten();
        match client_parent.as_ref().and_then(parse) {
            Some((trace, span, flags)) => {
                parent[3..35].copy_from_slice(trace);
                parent[53..55].copy_from_slice(flags);
                client_span = span.try_into().ok();
            }
            None => hex_into(&random[..16], &mut parent[3..35]),
        }
        hex_into(&random[16..24], &mut parent[36..52]);
        let request_id = match sent.id.then(|| headers.remove(X_REQUEST_ID)).flatten() {
            Some(v)
                if !v.is_empty()
                    && v.len() <= MAX_REQUEST_ID
                    && v.as_bytes().iter().all(|b| b.is_ascii_graphic()) =>
            {
                RequestId::Client(v)
            }
            _ => {
                let mut id = [0u8; 32];
                hex_into(&random[24..], &mut id);
                RequestId::Made(id)
            }
        };
        RequestIds {
            traceparent: parent,
            client_span,
            request_id,
        }
    }

    /// 32 hex digits.
    pub fn trace_id(&self) -> &[u8] {
        &self.traceparent[3..35]
    }

    /// Visible ASCII: checked as taken, or hex.
    pub fn request_id(&self) -> &[u8] {
        match &self.request_id {
            RequestId::Client(v) => v.as_bytes(),
            RequestId::Made(id) => id,
        }
    }

    /// Whether the trace is sampled (the `traceparent` flags' low bit): a
    /// client that sent `-00` asks that nothing be recorded.
    pub fn sampled(&self) -> bool {
        self.traceparent[54] & 1 == 1
    }

    /// The ids as bytes, for span export.
    pub fn span_ids(&self) -> SpanIds {
        SpanIds {
            trace: unhex(&self.traceparent[3..35]),
            span: unhex(&self.traceparent[36..52]),
            parent: self.client_span.map(|hex| unhex(&hex)),
        }
    }

    /// `traceparent` and `X-Request-Id` as header lines of an HTTP/1.1
    /// request head; `tracestate` passes as the client sent it.
    pub fn write_lines(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"traceparent: ");
        out.extend_from_slice(&self.traceparent);
        out.extend_from_slice(b"\r\nx-request-id: ");
        out.extend_from_slice(self.request_id());
        out.extend_from_slice(b"\r\n");
    }

    /// The same two headers set on a request that goes on as a header map
    /// (to an HTTP/2 upstream, or asking to upgrade).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let value = |bytes: &[u8]| HeaderValue::from_bytes(bytes).expect("header text");
        headers.insert(TRACEPARENT, value(&self.traceparent));
        headers.insert(X_REQUEST_ID, value(self.request_id()));
    }
}

/// A request's span: its trace, portero's span, and the client's span that
/// is its parent, if the client sent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    pub trace: [u8; 16],
    pub span: [u8; 8],
    pub parent: Option<[u8; 8]>,
}

/// `00-<trace id>-<parent id>-<flags>` (any version's first four fields, as
/// the specification asks of a version it does not know): the trace id,
/// parent id and flags, or `None` for anything malformed or an all-zero id.
fn parse(v: &HeaderValue) -> Option<(&[u8], &[u8], &[u8])> {
    let text = v.as_bytes().trim_ascii();
    let mut parts = text.split(|b| *b == b'-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let is_hex = |s: &[u8], n: usize| {
        s.len() == n && s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let ok = is_hex(version, 2)
        && version != b"ff"
        && is_hex(trace, 32)
        && is_hex(parent, 16)
        && is_hex(flags, 2)
        && trace.iter().any(|b| *b != b'0')
        && parent.iter().any(|b| *b != b'0')
        && (version != b"00" || parts.next().is_none());
    ok.then_some((trace, parent, flags))
}

/// Lower-case hex digits (checked by `parse` or written by `hex_into`) as bytes.
fn unhex<const N: usize>(hex: &[u8]) -> [u8; N] {
    let digit = |d: u8| {
        if d.is_ascii_digit() {
            d - b'0'
        } else {
            d - b'a' + 10
        }
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = digit(pair[0]) << 4 | digit(pair[1]);
    }
    out
}

/// `bytes` as lower-case hex into `out` (twice as long), a byte's two
/// digits at a time.
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0u8; 2]; 256];
        let mut b = 0;
        while b < 256 {
            pairs[b] = [DIGITS[b >> 4], DIGITS[b & 15]];
            b += 1;
        }
        pairs
    };
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair.copy_from_slice(&PAIRS[usize::from(*b)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    fn take_all(headers: &mut HeaderMap) -> RequestIds {
        let mut sent = Sent::default();
        headers.keys().for_each(|name| sent.note(name));
        RequestIds::take(headers, sent)
    }

    fn sent(ids: &RequestIds) -> String {
        let mut h = HeaderMap::new();
        ids.apply(&mut h);
        h[TRACEPARENT].to_str().unwrap().to_string()
    }

    #[test]
    fn a_client_trace_is_continued_with_a_new_parent() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ids = take_all(&mut with("traceparent", incoming));
        assert_eq!(ids.trace_id(), b"4bf92f3577b34da6a3ce929d0e0e4736");
        let out = sent(&ids);
        let parts: Vec<&str> = out.split('-').collect();
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].as_bytes(), ids.trace_id());
        assert_ne!(parts[2], "00f067aa0ba902b7");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
    }

    #[test]
    fn no_trace_or_a_malformed_one_starts_a_new_trace() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let ids = take_all(&mut with("traceparent", bad));
            assert_ne!(
                ids.trace_id(),
                b"4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad:?}"
            );
            assert_eq!(ids.trace_id().len(), 32);
            assert!(parse(&HeaderValue::from_str(&sent(&ids)).unwrap()).is_some());
        }
        // A later version's first four fields are read.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert_eq!(
            take_all(&mut with("traceparent", later)).trace_id(),
            b"4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn span_ids_name_the_trace_portero_s_span_and_the_client_s() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ids = take_all(&mut with("traceparent", incoming));
        let span = ids.span_ids();
        assert_eq!(span.trace[..4], [0x4b, 0xf9, 0x2f, 0x35]);
        assert_eq!(span.trace[15], 0x36);
        assert_eq!(
            span.parent,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        // Portero's span is the parent the upstream is told of.
        let sent_span: String = span.span.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sent(&ids).split('-').nth(2), Some(sent_span.as_str()));
        assert!(ids.sampled());
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!take_all(&mut with("traceparent", unsampled)).sampled());
        // A trace portero starts is sampled and has no parent.
        let new = take_all(&mut HeaderMap::new());
        assert!(new.sampled());
        assert_eq!(new.span_ids().parent, None);
    }

    #[test]
    fn a_request_id_is_kept_or_made() {
        let ids = take_all(&mut with("x-request-id", "abc-123"));
        assert_eq!(ids.request_id(), b"abc-123");
        let made = take_all(&mut HeaderMap::new());
        assert_eq!(made.request_id().len(), 32);
        assert!(made.request_id().iter().all(|b| b.is_ascii_hexdigit()));
        let long = "x".repeat(200);
        assert_ne!(
            take_all(&mut with("x-request-id", &long)).request_id(),
            long.as_bytes()
        );
        let other = take_all(&mut HeaderMap::new());
        assert_ne!(made.request_id(), other.request_id());
    }

    #[test]
    fn the_client_s_ids_are_taken_out_and_the_head_lines_match_the_headers() {
        let mut client = with(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        client.append("traceparent", HeaderValue::from_static("00-second"));
        client.insert("x-request-id", HeaderValue::from_static("abc-123"));
        client.insert("tracestate", HeaderValue::from_static("vendor=1"));
        let ids = take_all(&mut client);
        assert_eq!(client.len(), 1, "only tracestate is left: {client:?}");
        let mut lines = Vec::new();
        ids.write_lines(&mut lines);
        let mut headers = HeaderMap::new();
        ids.apply(&mut headers);
        let expected = format!(
            "traceparent: {}\r\nx-request-id: abc-123\r\n",
            headers[TRACEPARENT].to_str().unwrap()
        );
        assert_eq!(String::from_utf8(lines).unwrap(), expected);
        assert!(expected.contains(std::str::from_utf8(ids.trace_id()).unwrap()));
    }
}
