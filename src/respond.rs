//! The one place where a request the gateway refuses, or could not get
//! answered upstream, becomes an HTTP response (the admin API's refusals
//! too: `admin`); and the response body type of the public listeners.

use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

use crate::auth::AuthError;
use crate::cors;
use crate::limits::{Held, Limit};
use crate::upstream::{BoxError, Failure, UpstreamBody};

mod admin;
mod token_endpoints;

pub use admin::{
    admin_error_response, admin_reply, AdminError, ApiKeyRefused, ClientRefused, ReloadError,
    RevocationRefused, SessionRefused,
};
pub use token_endpoints::{legacy_answer, oauth2_answer};

/// Why the gateway answers a request itself instead of its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The path or Host cannot be acted on safely (the message says which).
    BadTarget(&'static str),
    NoRoute,
    /// A token endpoint's path asked with another method than `POST`.
    MethodNotAllowed,
    /// A path whose routes take other methods only (their `Allow` is
    /// added by the caller, who has them).
    MethodNotRouted,
    /// A document the gateway serves itself asked with a method it is not
    /// read with (RFC 9110 §15.5.6): those methods, the `Allow` header's
    /// value (`GET, HEAD` for the JWKS, `GET` for resource metadata).
    DocumentMethod(&'static str),
    /// The route's policy turned the credential away.
    Denied(AuthError),
    /// `on_outage = "fail-closed"` while the store is unreachable.
    StoreUnavailable,
    /// An opaque token's provider failed or did not answer.
    IntrospectionUnavailable,
    /// A browser cannot be signed in: its provider (or the store) cannot be reached.
    SignInUnavailable,
    /// The body announces more than `server.max_body_size`.
    TooLarge,
    /// The exchange with the upstream failed.
    Upstream(Failure),
    /// A CORS preflight the route's policy refuses: no CORS headers, so
    /// the browser blocks the request it asked about.
    CorsRefused(cors::Refusal),
    /// A limit turned the request away (a rate limit's headers are added
    /// by the caller, who has them).
    Limited(Limit),
}

/// The refusal `err` as the client gets it, in gRPC's terms on a gRPC
/// request, with what it asks of the client: the methods the path takes
/// (`allow`, with `MethodNotRouted`), and for a refused credential the
/// route's own challenges where it has them (DPoP's, its resource
/// metadata's) in place of every route's.
pub fn refusal(
    err: RequestError,
    grpc: bool,
    allow: Option<&HeaderValue>,
    challenge: Option<&[HeaderValue]>,
) -> Response<GatewayBody> {
    let mut response = match grpc {
        true => grpc_error(err),
        false => error_response(err),
    };
    if let (RequestError::MethodNotRouted, Some(allow)) = (err, allow) {
        response
            .headers_mut()
            .insert(http::header::ALLOW, allow.clone());
    }
    if let (RequestError::Denied(_), Some(challenges)) = (err, challenge) {
        let headers = response.headers_mut();
        headers.remove(http::header::WWW_AUTHENTICATE);
        for challenge in challenges {
            headers.append(http::header::WWW_AUTHENTICATE, challenge.clone());
        }
    }
    response
}

/// The response for `err`.
pub fn error_response(err: RequestError) -> Response<GatewayBody> {
    let (status, error, message) = match err {
        RequestError::Denied(reason) => return denial(reason),
        RequestError::BadTarget(message) => (StatusCode::BAD_REQUEST, "bad_request", message),
        RequestError::NoRoute => (StatusCode::NOT_FOUND, "not_found", "no route"),
        RequestError::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "a token endpoint takes POST",
        ),
        RequestError::MethodNotRouted => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "no route takes this method here",
        ),
        RequestError::DocumentMethod(_) => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this document is read with GET",
        ),
        RequestError::StoreUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "revocations cannot be checked while the state store is unreachable",
        ),
        RequestError::IntrospectionUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "introspection_unavailable",
            "the token's identity provider cannot be asked now; try again",
        ),
        RequestError::SignInUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "sign_in_unavailable",
            "the sign-in provider cannot be reached now; try again",
        ),
        RequestError::CorsRefused(why) => (StatusCode::FORBIDDEN, "cors_refused", why.message()),
        RequestError::TooLarge => upstream_failure(Failure::TooLarge),
        RequestError::Upstream(failure) => upstream_failure(failure),
        RequestError::Limited(limit) => limited(limit),
    };
    let mut resp = self::error(status, error, message);
    if err == RequestError::MethodNotAllowed {
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let RequestError::DocumentMethod(allow) = err {
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    }
    if err == RequestError::Limited(Limit::Busy) {
        // In-flight counts change by the millisecond: a second is plenty.
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// The gateway's own error shape, `{"error", "error_description"}` (the
/// protocols' shapes are rendered by their own modules: RFC 6749's by
/// `oauth2`, each legacy dialect's by its dialect).
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<GatewayBody> {
    json(
        status,
        serde_json::json!({ "error": code, "error_description": message }).to_string(),
    )
}

/// What the access log names for a request answered with `err`: a
/// denial's reason (the metric's label), else the error's code.
pub fn logged_reason(err: RequestError) -> &'static str {
    match err {
        RequestError::Denied(reason) => reason.reason(),
        RequestError::Upstream(failure) => upstream_failure(failure).1,
        RequestError::TooLarge => upstream_failure(Failure::TooLarge).1,
        RequestError::BadTarget(_) => "bad_request",
        RequestError::NoRoute => "not_found",
        RequestError::MethodNotAllowed
        | RequestError::MethodNotRouted
        | RequestError::DocumentMethod(_) => "method_not_allowed",
        RequestError::StoreUnavailable => "store_unavailable",
        RequestError::IntrospectionUnavailable => "introspection_unavailable",
        RequestError::SignInUnavailable => "sign_in_unavailable",
        RequestError::CorsRefused(_) => "cors_refused",
        RequestError::Limited(limit) => limited(limit).1,
    }
}

fn limited(limit: Limit) -> (StatusCode, &'static str, &'static str) {
    match limit {
        Limit::Address => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "the client address is not allowed here",
        ),
        Limit::Rate => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; see Retry-After",
        ),
        Limit::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many requests in flight; see Retry-After",
        ),
    }
}

/// Does the request speak gRPC (`application/grpc`, `application/grpc+proto`, ...)?
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// `err` as a gRPC client understands it: HTTP `200` with no body and
/// `grpc-status` / `grpc-message` in the head (a trailers-only response),
/// the status mapped as gRPC maps HTTP's (`401` UNAUTHENTICATED, `403`
/// PERMISSION_DENIED, `502`-`504` and `429` UNAVAILABLE, `404`
/// UNIMPLEMENTED, and `405` too), plus `413` RESOURCE_EXHAUSTED and `408` DEADLINE_EXCEEDED.
pub fn grpc_error(err: RequestError) -> Response<GatewayBody> {
    let http = error_response(err);
    let code: u16 = match http.status().as_u16() {
        // A quota, as gRPC names it (RESOURCE_EXHAUSTED).
        429 if err == RequestError::Limited(Limit::Rate) => 8,
        401 => 16,
        403 => 7,
        404 | 405 => 12,
        408 => 4,
        413 => 8,
        429 | 502 | 503 | 504 => 14,
        400 => 13,
        _ => 2,
    };
    let message = match err {
        RequestError::Denied(reason) => reason.to_string(),
        RequestError::BadTarget(m) => m.to_string(),
        RequestError::NoRoute => "no route".to_string(),
        RequestError::MethodNotAllowed => "a token endpoint takes POST".to_string(),
        RequestError::MethodNotRouted => "no route takes this method here".to_string(),
        RequestError::DocumentMethod(_) => "this document is read with GET".to_string(),
        RequestError::StoreUnavailable => "state store unreachable".to_string(),
        RequestError::IntrospectionUnavailable => "identity provider unreachable".to_string(),
        RequestError::SignInUnavailable => "sign-in provider unreachable".to_string(),
        RequestError::CorsRefused(why) => why.message().to_string(),
        RequestError::TooLarge => upstream_failure(Failure::TooLarge).2.to_string(),
        RequestError::Upstream(f) => upstream_failure(f).2.to_string(),
        RequestError::Limited(l) => limited(l).2.to_string(),
    };
    let mut resp = Response::new(GatewayBody::Own(Full::new(Bytes::new())));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, nosniff());
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::try_from(percent_encode(&message)) {
        headers.insert("grpc-message", v);
    }
    for name in [WWW_AUTHENTICATE, RETRY_AFTER] {
        if let Some(value) = http.headers().get(&name) {
            headers.insert(name, value.clone());
        }
    }
    resp
}

/// `grpc-message` is percent-encoded: printable ASCII but `%` as is.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The status, `error` and `message` for a failed exchange; the message is
/// also what the access log records.
pub fn upstream_failure(failure: Failure) -> (StatusCode, &'static str, &'static str) {
    match failure {
        Failure::NoServer => (
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "no healthy upstream server",
        ),
        Failure::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "upstream connection limit reached",
        ),
        Failure::Connect | Failure::Upstream | Failure::Closed | Failure::Tls => {
            (StatusCode::BAD_GATEWAY, "bad_gateway", "upstream failed")
        }
        Failure::ConnectTimeout | Failure::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
            "upstream timed out",
        ),
        Failure::ClientTimeout => (
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "request body timed out",
        ),
        Failure::BadBody => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "malformed or incomplete request body",
        ),
        Failure::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        ),
    }
}

/// RFC 6750 §3: no `error` attribute when the request carried no credentials;
/// `invalid_request` (400) for a credential sent twice; `invalid_token` (401)
/// for a token that fails validation; `insufficient_scope` (403) for a good
/// token that does not meet the route.
fn denial(reason: AuthError) -> Response<GatewayBody> {
    let denial = &DENIALS[reason.index()];
    let mut resp = json(denial.status, denial.body.clone());
    resp.headers_mut()
        .insert(WWW_AUTHENTICATE, denial.challenge.clone());
    resp
}

/// A refusal's status, body and `WWW-Authenticate` challenge, written once
/// per reason: a forged or expired token costs no formatting.
struct Denial {
    status: StatusCode,
    body: Bytes,
    challenge: HeaderValue,
}

static DENIALS: LazyLock<Vec<Denial>> =
    LazyLock::new(|| AuthError::ALL.into_iter().map(Denial::new).collect());

impl Denial {
    fn new(reason: AuthError) -> Denial {
        let (status, code) = reason.status_and_code();
        let body = match code {
            None => {
                Bytes::from_static(br#"{"error":"unauthorized","error_description":"no token"}"#)
            }
            Some(code) => format!(r#"{{"error":"{code}","error_description":"{reason}"}}"#).into(),
        };
        Denial {
            status,
            body,
            challenge: HeaderValue::try_from(reason.challenge_text())
                .expect("the reasons are plain text"),
        }
    }
}

/// A protected resource's metadata document (RFC 9728 §3.2). It is the same
/// for every client and changes only with the config, so a cache may keep
/// it for five minutes (a reload reaches clients within that); any origin
/// may read it, as browser-based clients fetch it before they hold a token.
pub fn resource_metadata(body: Bytes) -> Response<GatewayBody> {
    let mut resp = json(StatusCode::OK, body);
    let headers = resp.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    headers.insert(
        http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// The answer to a preflight a CORS policy allows.
pub fn preflight(headers: HeaderMap) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::Own(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    *resp.headers_mut() = headers;
    resp.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, nosniff());
    resp
}

/// A forward-auth decision that lets the request through, with the
/// identity headers its route would inject.
pub fn allowed(headers: HeaderMap) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::Own(Full::new(Bytes::new())));
    *resp.headers_mut() = headers;
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, nosniff());
    resp
}

/// A redirect (a sign-in, its callback, a logout) with its cookies, never
/// cached.
pub fn redirect(status: StatusCode, location: &str, cookies: &[String]) -> Response<GatewayBody> {
    let mut response = json(status, "");
    let headers = response.headers_mut();
    headers.remove(CONTENT_TYPE);
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(http::header::LOCATION, location);
    }
    for cookie in cookies {
        if let Ok(cookie) = HeaderValue::from_str(cookie) {
            headers.append(http::header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The upstream's `101`, relayed to the client with `headers`.
pub fn switching(headers: HeaderMap) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::Own(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *resp.headers_mut() = headers;
    resp
}

/// A complete JSON response that no cache may keep (nor any browser
/// read as another type than it says: every answer portero writes
/// itself goes out through here or says `nosniff` on its own).
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::Own(Full::new(body.into())));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, nosniff());
    resp
}

/// `X-Content-Type-Options: nosniff`: a browser takes an answer portero
/// wrote as the type it says (JSON stays text, whatever it reflects).
pub fn nosniff() -> HeaderValue {
    HeaderValue::from_static("nosniff")
}

/// A response body: one portero wrote, or the upstream's, streamed through
/// (holding its request's place under the route's limits until it ends).
pub enum GatewayBody {
    Own(Full<Bytes>),
    Upstream(UpstreamBody),
    Held {
        body: UpstreamBody,
        /// Dropped with the body: the request's place given back. Boxed:
        /// few requests hold a place, and every response is moved a few
        /// times on its way out.
        _place: Box<Held>,
    },
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            GatewayBody::Own(b) => Pin::new(b).poll_frame(cx).map_err(|e| match e {}),
            GatewayBody::Upstream(b) | GatewayBody::Held { body: b, .. } => {
                Pin::new(b).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Own(b) => b.is_end_stream(),
            GatewayBody::Upstream(b) | GatewayBody::Held { body: b, .. } => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Own(b) => b.size_hint(),
            GatewayBody::Upstream(b) | GatewayBody::Held { body: b, .. } => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(r: &Response<GatewayBody>) -> &str {
        r.headers()[WWW_AUTHENTICATE].to_str().unwrap()
    }

    #[test]
    fn grpc_refusals_carry_the_grpc_status() {
        let cases = [
            (RequestError::Denied(AuthError::MissingToken), "16"),
            (RequestError::Denied(AuthError::MissingRole), "7"),
            (RequestError::Denied(AuthError::RuleRefused), "7"),
            (RequestError::Upstream(Failure::Connect), "14"),
            (RequestError::Upstream(Failure::Timeout), "14"),
            (RequestError::NoRoute, "12"),
            (RequestError::Limited(Limit::Rate), "8"),
            (RequestError::Limited(Limit::Busy), "14"),
            (RequestError::Limited(Limit::Address), "7"),
        ];
        for (err, code) in cases {
            let r = grpc_error(err);
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["grpc-status"], code, "{err:?}");
            assert_eq!(r.headers()["content-type"], "application/grpc");
            assert!(r.body().is_end_stream(), "trailers-only: no body");
        }
        assert_eq!(percent_encode("50% ünïcode"), "50%25 %C3%BCn%C3%AFcode");
    }

    #[test]
    fn missing_token_has_no_error_attribute() {
        let r = error_response(RequestError::Denied(AuthError::MissingToken));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(!challenge(&r).contains("error="));
    }

    #[test]
    fn requirement_failures_are_403_insufficient_scope() {
        for e in [
            AuthError::MissingRole,
            AuthError::MissingScope,
            AuthError::RuleRefused,
            AuthError::ClaimMismatch,
        ] {
            let r = error_response(RequestError::Denied(e));
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            assert!(challenge(&r).contains(r#"error="insufficient_scope""#));
        }
        let r = error_response(RequestError::Denied(AuthError::Expired));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&r).contains(r#"error="invalid_token""#));
        let r = error_response(RequestError::Denied(AuthError::RepeatedToken));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn every_error_is_json_that_no_cache_keeps() {
        for err in [
            RequestError::BadTarget("ambiguous path"),
            RequestError::NoRoute,
            RequestError::StoreUnavailable,
            RequestError::TooLarge,
            RequestError::Upstream(Failure::Busy),
            RequestError::CorsRefused(cors::Refusal::Origin),
        ] {
            let r = error_response(err);
            assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
            assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
            assert_eq!(r.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }

    /// A response is moved several times on its way to the client, each
    /// move a copy of the whole value: within 256 bytes, a copy is half
    /// the instructions of one up to 512.
    #[test]
    fn a_response_stays_within_256_bytes() {
        let size = std::mem::size_of::<http::Response<super::GatewayBody>>();
        assert!(size <= 256, "{size} bytes");
    }
}
