//! The token endpoints served on their routes: the request's body read
//! within the issuer's limits, then handed to its dialect (`dialect`) or to
//! the issuer's OAuth 2.0 endpoints (`oauth2`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, ORIGIN};
use http::request::Parts;
use http::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::{Gateway, RequestContext};
use crate::auth::keys::KeySet;
use crate::client_cert::ClientCert;
use crate::config::Endpoint;
use crate::config::Route;
use crate::dialect::{self, TokenRequest};
use crate::issuer::{IssuerContext, Transport};
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
            let cert = ctx.client_cert(&parts.headers);
            let answer = self.oauth2_endpoint(live, issuer, &route.path, parts, body, (ip, cert));
            let (answer, body_read) = Box::pin(answer).await;
            ctx.body_read = body_read;
            return Ok(respond::oauth2_answer(answer));
        }
        let reply = self.token_endpoint(live, issuer, endpoint, parts, body, ip);
        let (reply, body_read) = Box::pin(reply).await;
        ctx.body_read = body_read;
        Ok(respond::legacy_answer(reply, issuer.config.legacy.as_ref()))
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
    ) -> (dialect::Reply, bool) {
        let keys = live.validator.keys();
        let ctx = self.issuer_context(issuer, &keys);
        let settings = ctx.routes;
        let now = self.shared.clock.now();
        let path = parts.uri.path();
        let body = match read_body(parts, body, settings.max_body_size, settings.body_timeout).await
        {
            Ok(b) => b,
            Err(e) => return (dialect::transport_error(&ctx, e, path, now), false),
        };
        let json = dialect::is_json(parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes));
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
            None => dialect::handle(&ctx, &request).await,
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
        (client, cert): (IpAddr, Option<Arc<ClientCert>>),
    ) -> (oauth2::Answer, bool) {
        let keys = live.validator.keys();
        let at_work = self.issuer_context(issuer, &keys);
        let settings = at_work.routes;
        let body = match read_body(parts, body, settings.max_body_size, settings.body_timeout).await
        {
            Ok(b) => b,
            Err(e) => return (oauth2::transport_error(e), false),
        };
        let settings = issuer
            .config
            .oauth2
            .as_ref()
            .expect("OAuth 2.0 routes exist only for issuers that have them");
        let proved = match self.endpoint_proof(settings, path, parts).await {
            Ok(proved) => proved,
            Err(refused) => return (refused, true),
        };
        let endpoints = oauth2::Endpoints {
            settings,
            issuer: at_work,
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
            dpop_key: proved.key.as_deref(),
            client_cert: cert.as_deref(),
        };
        let mut answer = oauth2::handle(&endpoints, &request).await;
        answer.dpop_nonce = answer.dpop_nonce.or(proved.next_nonce);
        (answer, true)
    }

    /// A token-endpoint request refused before its body was read.
    pub(super) fn refuse_login(
        &self,
        live: &Live,
        issuer: &LiveIssuer,
        parts: &Parts,
        why: Transport,
    ) -> dialect::Reply {
        let keys = live.validator.keys();
        let ctx = self.issuer_context(issuer, &keys);
        dialect::transport_error(&ctx, why, parts.uri.path(), self.shared.clock.now())
    }

    /// `issuer` at work on its token routes.
    pub(super) fn issuer_context<'a>(
        &'a self,
        issuer: &'a LiveIssuer,
        keys: &'a KeySet,
    ) -> IssuerContext<'a> {
        let config = &issuer.config;
        let identity = issuer
            .identity
            .as_deref()
            .expect("token routes exist only for issuers with accounts");
        IssuerContext {
            index: issuer.id.0,
            config,
            accounts: identity.accounts(),
            routes: config
                .token_routes
                .as_ref()
                .expect("token routes exist only for issuers with accounts"),
            endpoint: config.legacy.as_ref(),
            keys,
            store: &self.shared.store,
            revocations: &self.shared.revocations,
            metrics: &self.shared.metrics,
            logins: identity.logins(&self.shared.store),
        }
    }
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
