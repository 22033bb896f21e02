//! A token endpoint with a shadow (`[issuers.NAME.shadow]`): one side
//! answers the client, and the other side's answer to the same request is
//! compared in the background (`shadow`).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::request::Parts;

use super::{Gateway, GatewayState};
use crate::config::{Endpoint, ShadowPrimary};
use crate::dialect::shadow::{self, Copy, Shadow};
use crate::dialect::{self, TokenRequest};
use crate::issuer::{IssuerContext, Transport};
use crate::live::IssuerId;

impl Gateway {
    /// Answers a token request with the shadow's primary side, and has the
    /// other side's answer compared.
    pub(super) async fn shadowed(
        &self,
        shadow: &Arc<Shadow>,
        ctx: &IssuerContext<'_>,
        request: &TokenRequest<'_>,
        parts: &Parts,
        body: &Bytes,
        client: IpAddr,
    ) -> dialect::Reply {
        let (endpoint, now) = (request.endpoint, request.now);
        if shadow.primary() == ShadowPrimary::Portero {
            let reply = dialect::handle(ctx, request).await;
            if let Some(place) = shadow.place(endpoint) {
                let copy = Copy::of(parts, body, client);
                shadow.compare_with_legacy(place, copy, answer(&reply, now));
            }
            return reply;
        }
        let copy = Copy::of(parts, body, client);
        let legacy = match shadow.ask_legacy(&copy).await {
            Ok(legacy) if shadow.relays(legacy.status) => legacy,
            answered => {
                match answered {
                    // A status the dialect never uses: an upgrade the client
                    // did not ask for, a `204` that drops its body, a
                    // redirect. Relayed, it would break the client's
                    // connection or its parser; it is a failure instead.
                    Ok(unrelayed) => shadow.outside_contract(unrelayed.status),
                    Err(why) => shadow.legacy_failed(&why),
                }
                return if shadow.fallback() {
                    dialect::handle(ctx, request).await
                } else {
                    dialect::transport_error(ctx, Transport::Unavailable, request.path, now)
                };
            }
        };
        let reply = dialect::Reply {
            status: legacy.status,
            body: String::from_utf8_lossy(&legacy.body).into_owned(),
        };
        if let Some(place) = shadow.place(endpoint) {
            let own = OwnAnswer {
                shared: self.shared.clone(),
                issuer: ctx.config.name.clone(),
                id: IssuerId(ctx.index),
                endpoint,
                body: body.clone(),
                json: request.json,
                path: request.path.to_string(),
                query: request.query.map(str::to_string),
                client,
                now,
            };
            shadow.compare_with_portero(place, copy, legacy, own.work_out());
        }
        reply
    }
}

/// A token request portero answers for comparison only, after the legacy
/// service answered the client: everything it needs, owned.
struct OwnAnswer {
    shared: Arc<GatewayState>,
    issuer: String,
    id: IssuerId,
    endpoint: Endpoint,
    body: Bytes,
    json: bool,
    path: String,
    query: Option<String>,
    client: IpAddr,
    now: DateTime<Utc>,
}

impl OwnAnswer {
    /// Portero's answer, on the snapshot live now; `None` if a reload has
    /// since taken the issuer away.
    async fn work_out(self) -> Option<shadow::Answer> {
        let live = self.shared.live.load_full();
        let issuer = live.issuers().get(self.id.0)?;
        if issuer.config.name != self.issuer {
            return None;
        }
        let gateway = Gateway {
            shared: self.shared.clone(),
        };
        let keys = live.validator.keys();
        let ctx = gateway.issuer_context(issuer, &keys);
        let request = TokenRequest {
            endpoint: self.endpoint,
            body: &self.body,
            json: self.json,
            query: self.query.as_deref(),
            path: &self.path,
            client: Some(self.client),
            now: self.now,
        };
        Some(answer(&dialect::handle(&ctx, &request).await, self.now))
    }
}

/// A reply as the comparison takes it.
fn answer(reply: &dialect::Reply, at: DateTime<Utc>) -> shadow::Answer {
    shadow::Answer {
        status: reply.status,
        body: Bytes::from(reply.body.clone()),
        at,
    }
}
