//! Handing a request to its upstream beyond the plain exchange: the body
//! as it must arrive, and an upgrade that becomes a tunnel.

use std::time::Duration;

use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::request::Parts;
use http::Response;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::Gateway;
use crate::listener::Hold;
use crate::live::Settings;
use crate::respond::{self, GatewayBody, RequestError};
use crate::tunnel::{self, Tunnel};
use crate::upstream::h1::Handshake;
use crate::upstream::request_body::{BodyError, ClientBody};
use crate::upstream::{Failure, UpstreamGroup};

impl Gateway {
    /// The request body as it goes upstream: read whole up to the buffer
    /// size before any upstream connection is taken, and kept to the
    /// minimum pace. A gRPC stream streams: it may pause between messages.
    pub(super) async fn receive(
        &self,
        settings: &Settings,
        parts: &Parts,
        body: Incoming,
    ) -> Result<ClientBody, RequestError> {
        if parts.version == http::Version::HTTP_2 && respond::is_grpc(&parts.headers) {
            return Ok(ClientBody::streaming(body));
        }
        let deadline = tokio::time::Instant::now() + settings.body_timeout;
        ClientBody::receive(body, &settings.body_rules, deadline)
            .await
            .map_err(|e| {
                RequestError::Upstream(match e {
                    BodyError::Slow => Failure::ClientTimeout,
                    BodyError::TooLarge => Failure::TooLarge,
                    BodyError::Broken => Failure::BadBody,
                })
            })
    }

    /// Asks the upstream to switch protocols; if it does, relays its `101`
    /// and hands both connections to a tunnel that ends with the token.
    pub(super) async fn tunnel(
        &self,
        group: &UpstreamGroup,
        mut parts: Parts,
        protocol: HeaderValue,
        token: Option<tunnel::Token>,
        route: &str,
        idle_timeout: Duration,
    ) -> Result<Response<GatewayBody>, RequestError> {
        let client = parts.extensions.remove::<OnUpgrade>();
        let hold = parts.extensions.remove::<Hold>();
        let (Some(client), Some(hold)) = (client, hold) else {
            return Err(RequestError::Upstream(Failure::Upstream));
        };
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, protocol.clone());
        let handshake = group.upgrade(parts).await.map_err(RequestError::Upstream)?;
        let (head, stream, early, slot) = match handshake {
            Handshake::Answered(forwarded) => {
                return Ok(forwarded.response.map(GatewayBody::Upstream))
            }
            Handshake::Switched {
                head,
                stream,
                early,
                slot,
            } => (head, stream, early, slot),
        };
        let websocket = protocol.as_bytes().eq_ignore_ascii_case(b"websocket");
        let tunnel = Tunnel {
            client,
            upstream: stream,
            upstream_early: early,
            upstream_slot: slot,
            hold,
            websocket,
            token,
            idle_timeout,
            route: route.to_string(),
        };
        let shared = self.shared.clone();
        tokio::spawn(async move { tunnel.run(&shared.metrics).await });
        let mut response = respond::switching(head.headers);
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        response.headers_mut().insert(UPGRADE, protocol);
        Ok(response)
    }
}
