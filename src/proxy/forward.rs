//! Handing a request to its upstream: authorized, rewritten and sent; the
//! body as it must arrive, and an upgrade that becomes a tunnel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, CONNECTION, COOKIE, UPGRADE};
use http::request::Parts;
use http::Response;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::admission::Admitted;
use super::session::{drop_own_set_cookies, session_headers, strip_own_cookies};
use super::{Gateway, RequestContext};
use crate::auth::validate::Verified;
use crate::config::{Policy, Route, RouteAction};
use crate::cors;
use crate::forwarding;
use crate::listener::{Hold, Peer};
use crate::live::{Live, RouteId, Settings};
use crate::respond::{self, GatewayBody, RequestError};
use crate::session::Entry;
use crate::tunnel::{self, Tunnel};
use crate::upstream::h1::{take_head, Handshake};
use crate::upstream::request_body::{BodyError, ClientBody};
use crate::upstream::{Failure, UpstreamGroup};

impl Gateway {
    /// A proxied route's request, its credential admitted (`admitted`: a
    /// credential or a session, `None` on a public route): its head
    /// rewritten for the upstream, then sent, or tunneled if it asks for an
    /// upgrade the route allows.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn forward(
        &self,
        live: &Live,
        (index, route): (RouteId, &Route),
        parts: &mut Parts,
        body: Incoming,
        peer: &Peer,
        host: Option<HeaderValue>,
        admitted: Option<Admitted>,
        ctx: &mut RequestContext,
    ) -> Result<Response<GatewayBody>, RequestError> {
        let RouteAction::Proxy {
            upstream,
            strip_prefix,
            policy,
            upgrades,
            underscores_in_headers,
            forward_client_cert,
            ..
        } = &route.action
        else {
            unreachable!("forward is called for proxied routes only")
        };
        let settings = &live.settings;
        // Matched here, not on the way: the decision is carried as it came.
        let (verified, session) = match (policy, admitted) {
            (Some(policy), Some(Admitted::Credential(token))) => (Some((policy, token)), None),
            (
                Some(policy),
                Some(Admitted::Session {
                    entry,
                    cookie_alone,
                }),
            ) => (
                Some((policy, entry.verified.clone())),
                Some((entry, cookie_alone)),
            ),
            _ => (None, None),
        };
        let group = &live.upstreams[*upstream];
        // Upgrades are HTTP/1.1's: an HTTP/2 upstream gets a plain request.
        let upgrade = tunnel::requested(parts, !ctx.has_body, upgrades)
            .filter(|_| !group.config.protocol.is_http2());
        if upgrade.is_some() && !tunnel_origin_allowed(route, parts) {
            return Err(RequestError::CorsRefused(cors::Refusal::Origin));
        }
        let prefix = strip_prefix.then_some(route.path.as_str());
        // Read before the client's copies of its fields are stripped.
        let client_cert = match forward_client_cert {
            true => ctx.client_cert(&parts.headers),
            false => None,
        };
        let mut added = forwarding::rewrite(
            parts,
            (&live.auth, group.config.host.as_deref()),
            verified.as_ref(),
            host,
            prefix,
            (peer, *underscores_in_headers),
        )
        .map_err(|e| self.denied(live, index, e))?;
        keep_own_credentials(settings, &mut parts.headers, session.as_ref(), &verified);
        added.ids = ctx.ids.as_ref();
        added.client_cert = client_cert;
        let began = Instant::now();
        ctx.upstream = Some((*upstream, began));
        if let Some(protocol) = upgrade {
            added.apply(&mut parts.headers);
            let token = verified.map(|(_, v)| self.tunnel_token(live, v));
            let parts = take_head(parts);
            let idle_timeout = settings.tunnel_idle_timeout;
            let switched = self.tunnel(group, parts, protocol, token, &route.name, idle_timeout);
            return Ok(planting_nothing(settings, Box::pin(switched).await?));
        }
        // A bodiless request (most are) skips the reading's future.
        let mut body = match ctx.has_body {
            false => ClientBody::empty(),
            true => self.receive(settings, parts, body).await?,
        };
        let forwarded = group
            .send(
                parts,
                &mut body,
                &added,
                settings.max_body_size,
                settings.body_timeout,
                began.into(),
            )
            .await
            .map_err(RequestError::Upstream)?;
        // If the upstream answered before taking the whole body, the rest of
        // it is still on its way to this connection.
        ctx.body_read = forwarded.body_read;
        // Its hop-by-hop headers were dropped as its head was parsed.
        let response = forwarded.response.map(GatewayBody::Upstream);
        Ok(planting_nothing(settings, response))
    }

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

    /// What a tunnel needs of its credential to end with it.
    fn tunnel_token(&self, live: &Live, v: Arc<Verified>) -> tunnel::Token {
        let key = live.api_keys.holds(v.issuer);
        tunnel::Token {
            // A key's expiry has no leeway: portero keeps that clock.
            refused_from: match key {
                true => v.exp,
                false => live.validator.refused_from(&v),
            },
            issuer_iss: live.validator.keys().issuers[v.issuer].iss.as_str().into(),
            verified: v,
            revocations: self.shared.revocations.clone(),
            api_keys: key.then(|| self.shared.api_keys.clone()),
        }
    }
}

/// A page on an origin the route's CORS policy refuses cannot open a
/// tunnel with the user's credentials (browsers apply no CORS to
/// WebSockets).
fn tunnel_origin_allowed(route: &Route, parts: &Parts) -> bool {
    route
        .cors
        .as_ref()
        .is_none_or(|c| cors::origin_allowed(c, &parts.headers))
}

/// What goes upstream of portero's own credentials: none of its cookies
/// (where it sets any), and, for a session, no credential it did not
/// check (`session_headers`). A session's cookie that came alone takes
/// its header with it, unread.
fn keep_own_credentials(
    settings: &Settings,
    headers: &mut http::HeaderMap,
    session: Option<&(Arc<Entry>, bool)>,
    verified: &Option<(&Policy, Arc<Verified>)>,
) {
    match session {
        Some((_, true)) => drop(headers.remove(COOKIE)),
        _ if settings.own_cookies => strip_own_cookies(headers),
        _ => {}
    }
    if let (Some((entry, _)), Some((policy, _))) = (session, verified) {
        session_headers(headers, policy, entry);
    }
}

/// An upstream's answer without a `Set-Cookie` of portero's own names.
fn planting_nothing(
    settings: &Settings,
    mut response: Response<GatewayBody>,
) -> Response<GatewayBody> {
    if settings.own_cookies {
        drop_own_set_cookies(response.headers_mut());
    }
    response
}
