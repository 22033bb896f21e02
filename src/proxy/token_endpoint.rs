//! The token endpoints served on their routes: the request's body read
//! within the issuer's limits, then handed to its dialect (`issue`) or to
//! the issuer's OAuth 2.0 endpoints (`oauth2`).

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderName, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::Gateway;
use crate::auth::keys::KeySet;
use crate::config::Endpoint;
use crate::issue::{self, Issuing, TokenRequest, Transport};
use crate::live::Live;
use crate::oauth2;
use crate::respond::{self, GatewayBody};
use crate::upstream::request_body::declared_length;

impl Gateway {
    /// Serves a token endpoint: reads the body within the issuer's size and
    /// time limits, then lets the dialect answer. Also says whether the body
    /// was read.
    pub(super) async fn token_endpoint(
        &self,
        live: &Live,
        index: usize,
        endpoint: Endpoint,
        parts: &Parts,
        body: Incoming,
        client: IpAddr,
    ) -> (issue::Reply, bool) {
        let keys = live.validator.keys();
        let ctx = self.issuing(live, index, &keys);
        let settings = ctx.endpoint;
        let now = self.shared.clock.now();
        let path = parts.uri.path();
        let body = match read_body(parts, body, settings.max_body_size, settings.body_timeout).await
        {
            Ok(b) => b,
            Err(e) => return (issue::transport_error(&ctx, e, path, now), false),
        };
        let json = issue::is_json(parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes));
        let request = TokenRequest {
            endpoint,
            body: &body,
            json,
            query: parts.uri.query(),
            path,
            client: Some(client),
            now,
        };
        let reply = match &live.shadows[index] {
            None => issue::handle(&ctx, &request).await,
            Some(shadow) => {
                self.shadowed(shadow, &ctx, &request, parts, &body, client)
                    .await
            }
        };
        (reply, true)
    }

    /// Serves the issuer's OAuth 2.0 endpoint mounted at `path` (the
    /// route's: the request's path is that one as routing reads it), the
    /// body read within the same limits as its dialect's. Also says
    /// whether the body was read.
    pub(super) async fn oauth2_endpoint(
        &self,
        live: &Live,
        index: usize,
        path: &str,
        parts: &Parts,
        body: Incoming,
        client: IpAddr,
    ) -> (oauth2::Answer, bool) {
        let keys = live.validator.keys();
        let issuing = self.issuing(live, index, &keys);
        let settings = issuing.endpoint;
        let body = match read_body(parts, body, settings.max_body_size, settings.body_timeout).await
        {
            Ok(b) => b,
            Err(e) => return (oauth2::transport_error(e), false),
        };
        let endpoints = oauth2::Endpoints {
            settings: live.issuers[index]
                .oauth2
                .as_ref()
                .expect("OAuth 2.0 routes exist only for issuers that have them"),
            issuing,
            validator: &live.validator,
        };
        let request = oauth2::Request {
            method: &parts.method,
            path,
            authorization: parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            form: oauth2::is_form(parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes)),
            body: &body,
            client: Some(client),
            now: self.shared.clock.now().timestamp(),
        };
        (oauth2::handle(&endpoints, &request).await, true)
    }

    /// A token-endpoint request refused before its body was read.
    pub(super) fn refuse_login(
        &self,
        live: &Live,
        index: usize,
        parts: &Parts,
        why: Transport,
    ) -> issue::Reply {
        let keys = live.validator.keys();
        let ctx = self.issuing(live, index, &keys);
        issue::transport_error(&ctx, why, parts.uri.path(), self.shared.clock.now())
    }

    pub(super) fn issuing<'a>(
        &'a self,
        live: &'a Live,
        index: usize,
        keys: &'a KeySet,
    ) -> Issuing<'a> {
        let issuer = &live.issuers[index];
        Issuing {
            index,
            issuer,
            endpoint: issuer
                .endpoint
                .as_ref()
                .expect("token routes exist only for endpoints"),
            keys,
            store: &self.shared.store,
            revocations: &self.shared.revocations,
            metrics: &self.shared.metrics,
            users: live.user_stores[index].as_ref(),
        }
    }
}

/// A dialect's answer as HTTP, with the endpoint's `Deprecation` and
/// `Sunset` when it is being retired.
pub(super) fn legacy_response(
    live: &Live,
    issuer: usize,
    reply: issue::Reply,
) -> Response<GatewayBody> {
    let mut response = respond::json(reply.status, reply.body);
    let Some(endpoint) = live.issuers[issuer].endpoint.as_ref() else {
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
pub(super) fn oauth2_response(answer: oauth2::Answer) -> Response<GatewayBody> {
    // `respond::json` says `Cache-Control: no-store` already.
    let mut response = respond::json(answer.status, answer.body);
    let headers = response.headers_mut();
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
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

/// Reads a whole request body, refusing it past `max` bytes (announced or
/// received) or when it does not arrive within `timeout`. hyper answers
/// `Expect: 100-continue` when the body is first read.
async fn read_body(
    parts: &Parts,
    body: Incoming,
    max: u64,
    timeout: Duration,
) -> Result<Bytes, Transport> {
    if declared_length(&parts.headers).is_some_and(|n| n > max) {
        return Err(Transport::TooLarge);
    }
    let limited = Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Transport::TooLarge),
        // A broken body is as good as one that never came.
        Ok(Err(_)) | Err(_) => Err(Transport::Timeout),
    }
}
