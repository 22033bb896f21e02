//! The token endpoints served on their routes: the request's body read
//! within the issuer's limits, then handed to its dialect (`issue`) or to
//! the issuer's OAuth 2.0 endpoints (`oauth2`).

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, AUTHORIZATION, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, PRAGMA, REFERRER_POLICY, SET_COOKIE, WWW_AUTHENTICATE,
    X_FRAME_OPTIONS,
};
use http::request::Parts;
use http::{HeaderName, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::{Gateway, RequestContext};
use crate::auth::keys::KeySet;
use crate::config::Endpoint;
use crate::config::Route;
use crate::issue::{self, Issuing, TokenRequest, Transport};
use crate::live::{Live, LiveIssuer};
use crate::oauth2;
use crate::respond::{self, GatewayBody, RequestError};
use crate::upstream::request_body::declared_length;

impl Gateway {
    /// A token endpoint's route: the issuer's dialect or its OAuth 2.0
    /// endpoints answer; boxed, like a decision and a tunnel, so that their
    /// state is not carried (and copied) by every proxied request.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn token_route(
        &self,
        live: &Live,
        issuer: &LiveIssuer,
        endpoint: Endpoint,
        route: &Route,
        parts: &Parts,
        body: Incoming,
        ip: IpAddr,
        ctx: &mut RequestContext,
    ) -> Result<Response<GatewayBody>, RequestError> {
        if endpoint == Endpoint::OAuth2 {
            let answer = self.oauth2_endpoint(live, issuer, &route.path, parts, body, ip);
            let (answer, body_read) = Box::pin(answer).await;
            ctx.body_read = body_read;
            return Ok(oauth2_response(answer));
        }
        let reply = self.token_endpoint(live, issuer, endpoint, parts, body, ip);
        let (reply, body_read) = Box::pin(reply).await;
        ctx.body_read = body_read;
        Ok(legacy_response(issuer, reply))
    }

    /// Serves a token endpoint: reads the body within the issuer's size and
    /// time limits, then lets the dialect answer. Also says whether the body
    /// was read.
    pub(super) async fn token_endpoint(
        &self,
        live: &Live,
        issuer: &LiveIssuer,
        endpoint: Endpoint,
        parts: &Parts,
        body: Incoming,
        client: IpAddr,
    ) -> (issue::Reply, bool) {
        let keys = live.validator.keys();
        let ctx = self.issuing(issuer, &keys);
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
        let reply = match &issuer.shadow {
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
        issuer: &LiveIssuer,
        path: &str,
        parts: &Parts,
        body: Incoming,
        client: IpAddr,
    ) -> (oauth2::Answer, bool) {
        let keys = live.validator.keys();
        let issuing = self.issuing(issuer, &keys);
        let settings = issuing.endpoint;
        let body = match read_body(parts, body, settings.max_body_size, settings.body_timeout).await
        {
            Ok(b) => b,
            Err(e) => return (oauth2::transport_error(e), false),
        };
        let endpoints = oauth2::Endpoints {
            settings: issuer
                .config
                .oauth2
                .as_ref()
                .expect("OAuth 2.0 routes exist only for issuers that have them"),
            issuing,
            validator: &live.validator,
        };
        let cookies: Vec<&[u8]> = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let request = oauth2::Request {
            method: &parts.method,
            path,
            authorization: parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            form: oauth2::is_form(parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes)),
            body: &body,
            client: Some(client),
            now: self.shared.clock.now().timestamp(),
            query: parts.uri.query(),
            cookies: &cookies,
            origin: parts.headers.get(ORIGIN).map(HeaderValue::as_bytes),
        };
        (oauth2::handle(&endpoints, &request).await, true)
    }

    /// A token request to one of portero's own issuers from within: a
    /// route's sign-in redeeming its code or refreshing its tokens.
    pub(super) async fn own_token_request(
        &self,
        live: &Live,
        issuer: usize,
        authorization: &str,
        form: &str,
    ) -> oauth2::Answer {
        let issuer = live.issuer(crate::live::IssuerId(issuer));
        let keys = live.validator.keys();
        let Some(settings) = issuer.config.oauth2.as_ref() else {
            return oauth2::transport_error(Transport::Unavailable);
        };
        let endpoints = oauth2::Endpoints {
            settings,
            issuing: self.issuing(issuer, &keys),
            validator: &live.validator,
        };
        let path = format!("/oauth2/{}/token", issuer.config.name);
        let request = oauth2::Request {
            method: &http::Method::POST,
            path: &path,
            authorization: Some(authorization.as_bytes()).filter(|a| !a.is_empty()),
            form: true,
            body: form.as_bytes(),
            client: None,
            now: self.shared.clock.now().timestamp(),
            query: None,
            cookies: &[],
            origin: None,
        };
        oauth2::handle(&endpoints, &request).await
    }

    /// A token-endpoint request refused before its body was read.
    pub(super) fn refuse_login(
        &self,
        live: &Live,
        issuer: &LiveIssuer,
        parts: &Parts,
        why: Transport,
    ) -> issue::Reply {
        let keys = live.validator.keys();
        let ctx = self.issuing(issuer, &keys);
        issue::transport_error(&ctx, why, parts.uri.path(), self.shared.clock.now())
    }

    /// The issuing context of `issuer`'s token endpoint.
    pub(super) fn issuing<'a>(&'a self, issuer: &'a LiveIssuer, keys: &'a KeySet) -> Issuing<'a> {
        let config = &issuer.config;
        Issuing {
            index: issuer.id.0,
            issuer: config,
            endpoint: config
                .endpoint
                .as_ref()
                .expect("token routes exist only for endpoints"),
            keys,
            store: &self.shared.store,
            revocations: &self.shared.revocations,
            metrics: &self.shared.metrics,
            users: issuer.user_store.as_ref(),
            refused: Default::default(),
        }
    }
}

/// A dialect's answer as HTTP, with the endpoint's `Deprecation` and
/// `Sunset` when it is being retired.
pub(super) fn legacy_response(issuer: &LiveIssuer, reply: issue::Reply) -> Response<GatewayBody> {
    let mut response = respond::json(reply.status, reply.body);
    let Some(endpoint) = issuer.config.endpoint.as_ref() else {
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

/// Reads a whole request body, refusing it past `max` bytes (announced or
/// received) or when it does not arrive within `timeout`. hyper answers
/// `Expect: 100-continue` when the body is first read.
pub(super) async fn read_body(
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
