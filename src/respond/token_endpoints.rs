//! The token endpoints' answers as HTTP: a legacy dialect's exact body
//! with its retirement headers, and the standard server's JSON, pages and
//! redirects with the headers RFC 6749 asks for. Their bodies are the
//! protocols' own (`dialect`, `oauth2`); every header is set here.

use http::header::{
    HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, LOCATION, PRAGMA, REFERRER_POLICY, SET_COOKIE, WWW_AUTHENTICATE, X_FRAME_OPTIONS,
};
use http::Response;

use super::{json, GatewayBody};
use crate::config::LegacyEndpoint;
use crate::{dialect, oauth2};

/// A dialect's answer as HTTP, with the endpoint's `Deprecation` and
/// `Sunset` when it is being retired.
pub fn legacy_answer(
    reply: dialect::Reply,
    endpoint: Option<&LegacyEndpoint>,
) -> Response<GatewayBody> {
    let mut response = json(reply.status, reply.body);
    let Some(endpoint) = endpoint else {
        return response;
    };
    let notices = [
        (DEPRECATION, &endpoint.deprecation),
        (SUNSET, &endpoint.sunset),
    ];
    for (name, value) in notices {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

const DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
const SUNSET: HeaderName = HeaderName::from_static("sunset");

/// An OAuth 2.0 answer as HTTP: never stored by a cache, nor by an
/// HTTP/1.0 one (RFC 6749 §5.1), with the Basic challenge where §5.2 asks.
pub fn oauth2_answer(answer: oauth2::Answer) -> Response<GatewayBody> {
    // `json` says `Cache-Control: no-store` already.
    let mut response = json(answer.status, answer.body);
    let headers = response.headers_mut();
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    match &answer.shape {
        oauth2::Shape::Json => {}
        oauth2::Shape::Page => {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        oauth2::Shape::Redirect(location) => {
            if let Ok(v) = HeaderValue::from_str(location) {
                headers.insert(LOCATION, v);
            }
            headers.remove(CONTENT_TYPE);
        }
    }
    if answer.shape != oauth2::Shape::Json {
        // Not `no-referrer`: under it a browser posts the sign-in form
        // with `Origin: null`, which the form's origin check refuses. The
        // client's site still gets no referrer from portero's pages.
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    if let Some(csp) = answer
        .csp
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    for cookie in &answer.cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            headers.append(SET_COOKIE, v);
        }
    }
    if answer.public {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    if let Some(nonce) = answer
        .dpop_nonce
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(http::HeaderName::from_static("dpop-nonce"), nonce);
    }
    if let Some(v) = answer
        .bearer_challenge
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(WWW_AUTHENTICATE, v);
    }
    if let Some(allow) = answer.allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    if answer.basic_challenge {
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portero\", charset=\"UTF-8\""),
        );
    }
    response
}
