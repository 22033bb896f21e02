//! The token endpoints served on their routes: the request's body read
//! within the issuer's limits, then handed to its dialect (`issue`).

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::Gateway;
use crate::auth::keys::KeySet;
use crate::config::Endpoint;
use crate::issue::{self, Issuing, TokenRequest, Transport};
use crate::live::Live;
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
        let request = TokenRequest {
            endpoint,
            body: &body,
            json: issue::is_json(parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes)),
            query: parts.uri.query(),
            path,
            client: Some(client),
            now,
        };
        (issue::handle(&ctx, &request).await, true)
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

    fn issuing<'a>(&'a self, live: &'a Live, index: usize, keys: &'a KeySet) -> Issuing<'a> {
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
        }
    }
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
