//! What portero adds to a forwarded request beside the client's headers,
//! written into an HTTP/1.1 head (`h1`) or set in a header map (HTTP/2,
//! upgrades). `forwarding` decides what goes in it.

use http::header::HeaderValue;
use http::{HeaderMap, HeaderName};
use smallvec::SmallVec;

use crate::trace_context::RequestIds;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What portero adds to a forwarded request beside the client's headers
/// (whose copies of these names `forwarding::headers_to_strip` removes): the verified
/// identity, `X-Forwarded-For`, `-Proto` and `-Host` as this gateway saw
/// them, and the trace context. An HTTP/1.1 upstream gets them written
/// straight into its request head (`write_lines`); a request that goes on
/// as a header map (to an HTTP/2 upstream, or asking to upgrade) gets them
/// inserted (`apply`). Building them into the map for every request cost
/// a hash and an insert each.
pub struct Added<'a> {
    /// The route's identity headers, each a claim of the verified token.
    /// Two inline: most routes pass one or two, and `Added` is moved.
    pub identity: SmallVec<[(&'a HeaderName, HeaderValue); 2]>,
    /// What a trusted proxy said in `X-Forwarded-For`, extended with `client`.
    pub prior_for: Option<HeaderValue>,
    /// The client's address as header text, made once per connection.
    pub client: &'a HeaderValue,
    pub tls: bool,
    /// The host the client asked for.
    pub host: Option<HeaderValue>,
    pub ids: Option<&'a RequestIds>,
    /// The client's certificate, where the route passes it on
    /// (`forward_client_cert`, RFC 9440).
    pub client_cert: Option<std::sync::Arc<crate::client_cert::ClientCert>>,
}

impl Added<'_> {
    /// The added headers as lines of an HTTP/1.1 head.
    pub fn write_lines(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.identity {
            line(out, name.as_str().as_bytes(), &[value.as_bytes()]);
        }
        match &self.prior_for {
            Some(prior) => line(
                out,
                b"x-forwarded-for",
                &[prior.as_bytes(), b", ", self.client.as_bytes()],
            ),
            None => line(out, b"x-forwarded-for", &[self.client.as_bytes()]),
        }
        line(out, b"x-forwarded-proto", &[self.proto().as_bytes()]);
        if let Some(host) = &self.host {
            line(out, b"x-forwarded-host", &[host.as_bytes()]);
        }
        if let Some(ids) = self.ids {
            ids.write_lines(out);
        }
        if let Some(cert) = &self.client_cert {
            line(out, b"client-cert", &[cert.field().as_bytes()]);
            if let Some(chain) = cert.chain_field() {
                line(out, b"client-cert-chain", &[chain.as_bytes()]);
            }
        }
    }

    /// The added headers set in a request's header map.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let proto = HeaderValue::from_static(self.proto());
        for (name, value) in &self.identity {
            headers.insert((*name).clone(), value.clone());
        }
        let forwarded_for = match &self.prior_for {
            Some(prior) => {
                let mut text = prior.as_bytes().to_vec();
                text.extend_from_slice(b", ");
                text.extend_from_slice(self.client.as_bytes());
                HeaderValue::from_bytes(&text).ok()
            }
            None => Some(self.client.clone()),
        };
        if let Some(value) = forwarded_for {
            headers.insert(X_FORWARDED_FOR, value);
        }
        headers.insert(X_FORWARDED_PROTO, proto);
        if let Some(host) = &self.host {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        if let Some(ids) = self.ids {
            ids.apply(headers);
        }
        if let Some(cert) = &self.client_cert {
            headers.insert(crate::client_cert::CLIENT_CERT, cert.field());
            if let Some(chain) = cert.chain_field() {
                headers.insert(crate::client_cert::CLIENT_CERT_CHAIN, chain);
            }
        }
    }

    fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// One header line, its value in pieces.
fn line(out: &mut Vec<u8>, name: &[u8], value: &[&[u8]]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for piece in value {
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(b"\r\n");
}
