//! HTTP/1.1 as portero speaks it to upstreams, without I/O: the request head
//! written in one piece with framing portero chose itself, the response head
//! parsed by `httparse` (hyper's parser) with its framing decided as RFC 9112
//! §6.3 says. Clients never reach this code: hyper's server parses
//! everything they send. `body` de-frames what follows a head.

use std::io::Write;
use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use smallvec::SmallVec;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either
/// direction. hyper frames each hop's body itself, so `Transfer-Encoding`
/// goes too.
#[inline]
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    // Most are standard names, told apart by their tag, not their text.
    [
        &CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
    .contains(&name)
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

/// Response heads larger than this are refused, as hyper refuses them.
pub(super) const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// How the request body travels to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body; `Content-Length: 0` where the method expects content.
    Empty,
    Length(u64),
    Chunked,
}

/// Writes the request line and headers; `added` writes the lines portero
/// adds (the identity, `X-Forwarded-*`, the trace context) after the
/// client's. Framing headers and `Expect` come from portero,
/// never from the client's copy: hyper has already answered
/// `100-continue` and de-framed the body.
pub fn write_head(
    out: &mut Vec<u8>,
    (method, path): (&Method, &str),
    headers: &HeaderMap,
    authority: &str,
    framing: RequestFraming,
    added: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Told on the way through, where asking the map would hash the names.
    let (mut host, mut length) = (false, false);
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == EXPECT {
            length |= name == CONTENT_LENGTH;
            continue;
        }
        host |= name == HOST;
        line(out, name.as_str(), value.as_bytes());
    }
    if !host {
        line(out, "host", authority.as_bytes());
    }
    added(out);
    match framing {
        RequestFraming::Empty
            if matches!(*method, Method::POST | Method::PUT | Method::PATCH) || length =>
        {
            line(out, "content-length", b"0")
        }
        RequestFraming::Empty => {}
        RequestFraming::Length(n) => line(out, "content-length", n.to_string().as_bytes()),
        RequestFraming::Chunked => line(out, "transfer-encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A request body chunk in chunked framing.
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A parsed response head and how its body is framed.
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: ResponseFraming,
    /// The connection may carry another request once the body is read.
    pub reusable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// Why a response head could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    Malformed,
    TooLarge,
}

/// Parses a response head from the front of `buf` and removes it, or says
/// more bytes are needed. Interim (1xx) responses are skipped; a `101` is
/// malformed, as this request asked for no upgrade. The headers kept are
/// the end-to-end ones: hop-by-hop headers and those `Connection` names are
/// read for framing and dropped here, so the client never sees them.
///
/// The headers go into `spare`'s room, taken and cleared once a head is
/// whole: the request's map, whose head is written by then. hyper keeps the
/// response's map for the connection's next request, so a proxied exchange
/// allocates no map.
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
    spare: &mut HeaderMap,
) -> Result<Option<ResponseHead>, HeadError> {
    parse_head(buf, method, false, spare)
}

/// As [`parse_response_head`], for a request that asked to upgrade: a
/// `101` is the upstream's yes, with no body, and what follows it in `buf`
/// is the new protocol's.
pub fn parse_upgrade_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, HeadError> {
    parse_head(buf, method, true, &mut HeaderMap::new())
}

fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
    upgrading: bool,
    spare: &mut HeaderMap,
) -> Result<Option<ResponseHead>, HeadError> {
    loop {
        // Each field as spans of the head, so that the values can share the
        // head's bytes once it is split off `buf`.
        let mut spans = Spans::new();
        let Some((len, status, version)) = scan_head(buf, &mut spans)? else {
            return Ok(None);
        };
        let switched = status == StatusCode::SWITCHING_PROTOCOLS;
        if switched && !upgrading {
            return Err(HeadError::Malformed);
        }
        if status.is_informational() && !switched {
            buf.advance(len);
            continue;
        }
        let head = buf.split_to(len).freeze();
        let mut framing = FramingFields::default();
        let headers = end_to_end_headers(&head, &spans, std::mem::take(spare), &mut framing)?;
        return Ok(Some(
            framing.into_head(status, version, method, switched, headers),
        ));
    }
}

/// Response headers portero may add to an upstream's: CORS's two and
/// `Vary`, the rate limit's two, `Connection`.
const ADDED_ROOM: usize = 6;

/// A head's fields as (name, value) ranges of its bytes. Not initialised
/// up front: a usual response has a handful of fields.
type Spans = SmallVec<[(Range<usize>, Range<usize>); 16]>;

/// Runs httparse over the front of `buf`: the head's length, status and
/// version, its fields put in `spans`; `None` while it is incomplete.
fn scan_head(
    buf: &BytesMut,
    spans: &mut Spans,
) -> Result<Option<(usize, StatusCode, Version)>, HeadError> {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooLarge)
        }
        Err(_) => return Err(HeadError::Malformed),
    };
    let code = parsed.code.ok_or(HeadError::Malformed)?;
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Malformed)?;
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let base = buf.as_ptr() as usize;
    let span = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        start..start + part.len()
    };
    spans.extend(
        parsed
            .headers
            .iter()
            .map(|h| (span(h.name.as_bytes()), span(h.value))),
    );
    Ok(Some((len, status, version)))
}

/// The fields of `head` at `spans` in `headers` (cleared, its room kept),
/// but the hop-by-hop ones and those `Connection` names; the framing
/// fields among them are read into `framing` on the way.
fn end_to_end_headers(
    head: &Bytes,
    spans: &Spans,
    mut headers: HeaderMap,
    framing: &mut FramingFields,
) -> Result<HeaderMap, HeadError> {
    headers.clear();
    // Room for what portero adds to a response (CORS, rate limit state,
    // `Connection: close`) without growing the map then.
    headers.reserve(spans.len() + ADDED_ROOM);
    // By reference: the spans are half a kilobyte, and a move copies them.
    for (name, value) in spans {
        let name = header_name(&head[name.clone()]).ok_or(HeadError::Malformed)?;
        let value = HeaderValue::from_maybe_shared(head.slice(value.clone()))
            .map_err(|_| HeadError::Malformed)?;
        framing.read(&name, &value)?;
        if !is_hop_by_hop(&name) {
            headers.append(name, value);
        }
    }
    for name in &framing.named_by_connection {
        headers.remove(name);
    }
    Ok(headers)
}

/// What a response head's fields say about its body and its connection.
#[derive(Default)]
struct FramingFields {
    length: Option<u64>,
    chunked: bool,
    transfer_encoding: bool,
    close: bool,
    keep_alive: bool,
    /// Names listed in `Connection` beyond `close` and `keep-alive`: rare.
    named_by_connection: Vec<HeaderName>,
}

impl FramingFields {
    /// Notes `name`'s value if it is a framing field.
    fn read(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), HeadError> {
        if name == CONTENT_LENGTH {
            let n = parse_length(value.as_bytes()).ok_or(HeadError::Malformed)?;
            // Repeated lengths must agree (RFC 9112 §6.3, item 5).
            if self.length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed);
            }
            self.length = Some(n);
        } else if name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
            // Only a final `chunked` frames the body (§6.3, item 4).
            self.chunked = value
                .to_str()
                .ok()
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name == CONNECTION {
            for token in value.to_str().unwrap_or("").split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    self.keep_alive = true;
                } else if let Ok(named) = HeaderName::from_bytes(token.as_bytes()) {
                    self.named_by_connection.push(named);
                }
            }
        }
        Ok(())
    }

    /// The head, its body's framing decided (RFC 9112 §6.3) and whether
    /// its connection may carry another request.
    fn into_head(
        self,
        status: StatusCode,
        version: Version,
        method: &Method,
        switched: bool,
        mut headers: HeaderMap,
    ) -> ResponseHead {
        // HTTP/1.0 closes unless it asks to keep the connection; `close` wins.
        let mut close = self.close || (version == Version::HTTP_10 && !self.keep_alive);
        let bodiless = switched
            || *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let framing = match (bodiless, self.transfer_encoding, self.chunked, self.length) {
            (true, ..) => ResponseFraming::Empty,
            (false, true, true, _) => ResponseFraming::Chunked,
            (false, true, false, _) => ResponseFraming::Close,
            (false, false, _, Some(0)) => ResponseFraming::Empty,
            (false, false, _, Some(n)) => ResponseFraming::Length(n),
            (false, false, _, None) => ResponseFraming::Close,
        };
        // A length beside a transfer coding is a sign of a confused or
        // hostile upstream: this connection carries nothing more (§6.3, item 3).
        if self.transfer_encoding && self.length.is_some() {
            close = true;
            headers.remove(CONTENT_LENGTH);
        }
        // A 204 has no content (RFC 9110 §15.3.5); one that announces some
        // may send it anyway, where the next response would be read.
        if status == StatusCode::NO_CONTENT
            && (self.transfer_encoding || self.length.is_some_and(|n| n > 0))
        {
            close = true;
        }
        ResponseHead {
            status,
            version,
            headers,
            framing,
            reusable: !switched && !close && framing != ResponseFraming::Close,
        }
    }
}

/// The names most responses carry, each told by its length and a
/// case-blind comparison: cheaper than `HeaderName`'s lower-casing and
/// table walk, which the rest go through.
const COMMON_NAMES: [(&str, HeaderName); 12] = [
    ("date", header::DATE),
    ("server", header::SERVER),
    ("content-type", header::CONTENT_TYPE),
    ("content-length", CONTENT_LENGTH),
    ("connection", CONNECTION),
    ("cache-control", header::CACHE_CONTROL),
    ("etag", header::ETAG),
    ("last-modified", header::LAST_MODIFIED),
    ("vary", header::VARY),
    ("transfer-encoding", TRANSFER_ENCODING),
    ("set-cookie", header::SET_COOKIE),
    ("content-encoding", header::CONTENT_ENCODING),
];

fn header_name(raw: &[u8]) -> Option<HeaderName> {
    for (text, name) in &COMMON_NAMES {
        if text.len() == raw.len() && lowered_is(raw, text.as_bytes()) {
            return Some(name.clone());
        }
    }
    HeaderName::from_bytes(raw).ok()
}

/// `raw`, a field name httparse has checked, is `lower` (lower-case letters
/// and `-`) in any case. Setting bit 5 lower-cases a letter and leaves `-`
/// alone; of the bytes it turns into a lower-case letter or `-`, only the
/// upper-case letters and `\r` are not the letter itself, and no name
/// holds a `\r`.
fn lowered_is(raw: &[u8], lower: &[u8]) -> bool {
    raw.len() == lower.len() && raw.iter().zip(lower).all(|(r, l)| r | 0x20 == *l)
}

fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: Method) -> Result<Option<ResponseHead>, HeadError> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_response_head(&mut buf, &method, &mut HeaderMap::new())
    }

    fn framing(text: &str) -> (ResponseFraming, bool) {
        let h = head(text, Method::GET).unwrap().unwrap();
        (h.framing, h.reusable)
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        use ResponseFraming::*;
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            (Length(5), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            (Empty, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            (Chunked, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n"),
            (Chunked, true)
        );
        // A coding that is not chunked last: the body runs to the close.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"),
            (Close, false)
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), (Close, false));
        assert_eq!(framing("HTTP/1.1 204 No Content\r\n\r\n"), (Empty, true));
        // A 204 that announces content may send it: no reuse.
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n"),
            (Empty, false)
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\n\r\n"),
            (Empty, false)
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n"),
            (Empty, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n"),
            (Length(1), false)
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n"),
            (Length(1), false)
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n"),
            (Length(1), true)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 1\r\n\r\n"
            ),
            (Length(1), false)
        );
        // Both: chunked frames it, the length is dropped, the connection is not reused.
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.reusable), (Chunked, false));
        assert!(!h.headers.contains_key(CONTENT_LENGTH));
        // A HEAD response announces a length it does not send.
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Empty);
    }

    #[test]
    fn bad_lengths_and_upgrades_are_refused() {
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert!(head(bad, Method::GET).is_err(), "{bad:?} accepted");
        }
        // The same length twice is one length.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n").0,
            ResponseFraming::Length(5)
        );
    }

    #[test]
    fn a_switch_is_read_only_when_asked_for() {
        let text =
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                    sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
        let mut buf = BytesMut::from(&text[..]);
        let h = parse_upgrade_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!((h.framing, h.reusable), (ResponseFraming::Empty, false));
        assert!(h.headers.contains_key("sec-websocket-accept"));
        assert!(!h.headers.contains_key("upgrade"));
        assert_eq!(&buf[..], b"\x81\x02hi", "the new protocol's bytes stay");
        // Refused: an ordinary answer, read as one.
        let h = head(
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\nno",
            Method::GET,
        )
        .unwrap();
        assert_eq!(h.unwrap().status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn hop_by_hop_response_headers_are_dropped() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nx-hop: 1\r\n\
             keep-alive: timeout=5\r\nproxy-connection: keep-alive\r\nupgrade: h2c\r\n\
             trailer: x-t\r\ncontent-type: text/plain\r\ncontent-length: 1\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        let mut names: Vec<&str> = h.headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "content-type"]);
        assert!(h.reusable);
    }

    #[test]
    fn a_spare_map_keeps_its_room_and_none_of_its_headers() {
        let mut spare = HeaderMap::with_capacity(32);
        spare.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        let room = spare.capacity();
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..]);
        let h = parse_response_head(&mut buf, &Method::GET, &mut spare)
            .unwrap()
            .unwrap();
        assert_eq!(h.headers.len(), 1);
        assert!(h.headers.get(header::AUTHORIZATION).is_none());
        assert_eq!(h.headers.capacity(), room);
        assert!(spare.is_empty());
    }

    #[test]
    fn interim_responses_are_skipped_and_partial_heads_wait() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"[..],
        );
        let h = parse_response_head(&mut buf, &Method::POST, &mut HeaderMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert_eq!(&buf[..], b"ok");
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le", Method::GET)
            .unwrap()
            .is_none());
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD));
        assert_eq!(head(&huge, Method::GET).err(), Some(HeadError::TooLarge));
    }

    #[test]
    fn common_names_are_the_names_http_parses() {
        for (text, name) in &COMMON_NAMES {
            assert_eq!(
                HeaderName::from_bytes(text.as_bytes()).ok().as_ref(),
                Some(name)
            );
            let shouted = text.to_ascii_uppercase();
            assert_eq!(header_name(shouted.as_bytes()).as_ref(), Some(name));
        }
        assert_eq!(header_name(b"X-Custom").unwrap(), "x-custom");
        assert_eq!(header_name(b"Dates"), HeaderName::from_bytes(b"dates").ok());
        assert_eq!(header_name(b"bad name"), None);
    }

    #[test]
    fn request_heads_carry_portero_framing_not_the_clients() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("api.example"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(EXPECT, HeaderValue::from_static("100-continue"));
        headers.insert("x-auth-sub", HeaderValue::from_static("alice"));
        let mut out = Vec::new();
        write_head(
            &mut out,
            (&Method::POST, "/a?b=1"),
            &headers,
            "10.0.0.1:80",
            RequestFraming::Chunked,
            |_| {},
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /a?b=1 HTTP/1.1\r\nhost: api.example\r\nx-auth-sub: alice\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        write_head(
            &mut out,
            (&Method::GET, "/"),
            &HeaderMap::new(),
            "10.0.0.1:80",
            RequestFraming::Empty,
            |_| {},
        );
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: 10.0.0.1:80\r\n\r\n");
        let mut out = Vec::new();
        write_head(
            &mut out,
            (&Method::PUT, "/"),
            &headers,
            "h",
            RequestFraming::Length(12),
            |_| {},
        );
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("content-length: 12\r\n\r\n"));
    }
}
