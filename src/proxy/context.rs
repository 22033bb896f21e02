//! The request's context (pingora's `ctx`): one value per request that the
//! phases fill in and the response, metrics and log line read.

use std::time::Instant;

use http::HeaderValue;

use crate::limits::{Held, RateReport, Refusal};
use crate::live::{Live, RouteId};
use crate::respond::RequestError;
use crate::trace_context::RequestIds;

/// The request's context: what its phases found and left behind, read
/// again for its response headers, metrics, span and log line.
pub(super) struct RequestContext {
    /// When the request arrived (its head read), the one clock read its
    /// duration, its rate and its upstream's deadlines start from.
    pub(super) arrived: Instant,
    pub(super) route: Option<RouteId>,
    /// The upstream group, when the request was forwarded, and when that began.
    pub(super) upstream: Option<(usize, Instant)>,
    /// Why portero answered the request itself (an upstream's failure
    /// among them), for the metrics and the access log.
    pub(super) error: Option<RequestError>,
    /// The request came with a body (read once: for HTTP/2 each look
    /// locks the connection's streams), and whether it was read to its
    /// end (by a token endpoint or the upstream).
    pub(super) has_body: bool,
    pub(super) body_read: bool,
    /// On a route with a CORS policy: the request's `Origin`, and whether
    /// the request was a preflight (answered with its own CORS headers).
    pub(super) origin: Option<HeaderValue>,
    pub(super) preflight: bool,
    /// The request's place under its route's limits, and the rate's headers.
    pub(super) held: Held,
    pub(super) rate: Option<RateReport>,
    /// RequestContext and request ids, sent upstream and logged.
    pub(super) ids: Option<RequestIds>,
    /// A method-override header came, in some spelling (`target::method`).
    pub(super) overridden: bool,
    /// With `MethodNotRouted`: the methods the path's routes take.
    pub(super) allow: Option<HeaderValue>,
    /// The connection is TLS, and whether it is from a trusted proxy
    /// (whose `X-Forwarded-Proto` and `-Host` name the client's URI).
    pub(super) tls: bool,
    pub(super) from_trusted_proxy: bool,
    /// A DPoP nonce for the client (`DPoP-Nonce`, RFC 9449 §8.1).
    pub(super) dpop_nonce: Option<std::sync::Arc<str>>,
    /// The client certificate of the connection's TLS handshake.
    pub(super) tls_client_cert: Option<std::sync::Arc<crate::client_cert::ClientCert>>,
    /// The peer is a trusted proxy that passes certificates on
    /// (`client_cert_from_proxies`): its `Client-Cert` is the client's.
    pub(super) cert_from_proxy: bool,
}

impl RequestContext {
    pub(super) fn new(
        arrived: Instant,
        has_body: bool,
        ids: Option<RequestIds>,
        overridden: bool,
    ) -> Self {
        RequestContext {
            arrived,
            route: None,
            upstream: None,
            error: None,
            has_body,
            body_read: false,
            origin: None,
            preflight: false,
            held: Held::default(),
            rate: None,
            ids,
            overridden,
            allow: None,
            tls: false,
            from_trusted_proxy: false,
            dpop_nonce: None,
            tls_client_cert: None,
            cert_from_proxy: false,
        }
    }

    /// The route's name, or `none` before one was found.
    pub(super) fn route_name<'l>(&self, live: &'l Live) -> &'l str {
        match self.route {
            Some(i) => live.route_config(i).name.as_str(),
            None => "none",
        }
    }
}

impl RequestContext {
    /// The client's certificate: from a trusted proxy that passes
    /// certificates on, its `Client-Cert` field (RFC 9440), none without
    /// one (the handshake's certificate is the proxy's own); else the one
    /// shown in this connection's handshake. A field that is no
    /// certificate counts as none.
    pub(super) fn client_cert(
        &self,
        headers: &http::HeaderMap,
    ) -> Option<std::sync::Arc<crate::client_cert::ClientCert>> {
        use crate::client_cert::ClientCert;
        if !self.cert_from_proxy {
            return self.tls_client_cert.clone();
        }
        match ClientCert::from_fields(headers) {
            Ok(cert) => cert.map(std::sync::Arc::new),
            Err(why) => {
                tracing::debug!(why, "a trusted proxy's Client-Cert field was not read");
                None
            }
        }
    }

    /// Whether the request's client certificate is the one `verified` is
    /// bound to.
    pub(super) fn has_certificate_of(
        &self,
        verified: &crate::auth::validate::Verified,
        headers: &http::HeaderMap,
    ) -> bool {
        let Some(crate::auth::validate::Binding::Certificate(x5t)) = &verified.binding else {
            return false;
        };
        if self.cert_from_proxy {
            return self
                .client_cert(headers)
                .is_some_and(|c| *c.thumbprint == **x5t);
        }
        // The handshake's certificate, by reference.
        self.tls_client_cert
            .as_ref()
            .is_some_and(|c| *c.thumbprint == **x5t)
    }

    /// A limit's refusal as a request error; a rate's headers go on the response.
    pub(super) fn refused(&mut self, refusal: Refusal) -> RequestError {
        self.rate = refusal.report;
        RequestError::Limited(refusal.limit)
    }
}
