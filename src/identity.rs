//! What the upstream is told about a request: client-sent identity headers
//! removed, hop-by-hop headers removed, `X-Forwarded-*` set as a reverse
//! proxy should (RFC 7239's de-facto predecessors), the path rewritten.

use std::net::IpAddr;

use http::header::{AUTHORIZATION, CONNECTION, HOST};
use http::{HeaderMap, HeaderName, Uri};
use pingora::http::RequestHeader;

use crate::auth::policy::TokenSource;
use crate::config::AuthSettings;

/// Hop-by-hop headers (RFC 9110 §7.6.1) that never go upstream.
/// `Transfer-Encoding` is left to Pingora, which re-frames the body itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// The request's host: the `Host` header, or the URI authority (HTTP/2).
pub fn request_host(req: &RequestHeader) -> &str {
    req.headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or("")
}

/// Client-sent headers to remove before forwarding: the configured identity
/// headers and strip patterns, hop-by-hop headers, and any header that the
/// client's `Connection` header names.
pub fn headers_to_strip(headers: &HeaderMap, auth: &AuthSettings) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            HOP_BY_HOP.contains(&n)
                || auth.strip_exact.iter().any(|s| s == n)
                || auth
                    .strip_prefixes
                    .iter()
                    .any(|p| n.starts_with(p.as_str()))
        })
        .cloned()
        .collect();
    for value in headers.get_all(CONNECTION) {
        let Ok(v) = value.to_str() else { continue };
        for token in v.split(',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim().to_ascii_lowercase().as_bytes()) {
                if name != HOST && name != AUTHORIZATION {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Removes the token from the upstream request when a route keeps it private.
/// A cookie-borne token stays: cookies are shared with other values.
pub fn remove_token(req: &mut RequestHeader, from: &TokenSource) {
    match from {
        TokenSource::Bearer | TokenSource::RawAuthorization => {
            req.remove_header(&AUTHORIZATION);
        }
        TokenSource::Header(name) => {
            req.remove_header(name);
        }
        TokenSource::Cookie(_) => {}
    }
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host` from what this gateway saw.
pub fn set_forwarded(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    tls: bool,
) -> pingora::Result<()> {
    if let Some(ip) = client {
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prior) if !prior.trim().is_empty() => format!("{prior}, {ip}"),
            _ => ip.to_string(),
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    req.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
    let host = request_host(req).to_string();
    if !host.is_empty() {
        req.insert_header("x-forwarded-host", host)?;
    }
    Ok(())
}

/// `/api/users?x=1` with route prefix `/api` → `/users?x=1`.
pub fn strip_prefix(uri: &Uri, prefix: &str) -> Option<Uri> {
    let rest = uri.path().strip_prefix(prefix.trim_end_matches('/'))?;
    let path = if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    pq.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings {
            leeway: std::time::Duration::from_secs(30),
            verified_cache_size: 10,
            strip_exact: vec!["x-user-id".into(), "x-forwarded-user".into()],
            strip_prefixes: vec!["x-auth-".into()],
        }
    }

    #[test]
    fn strips_identity_hop_by_hop_and_connection_named_headers() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in [
            ("x-user-id", "spoofed"),
            ("X-Auth-Roles", "admin"),
            ("x-forwarded-user", "root"),
            ("keep-alive", "timeout=5"),
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
            ("accept", "*/*"),
        ] {
            req.append_header(k.to_string(), v).unwrap();
        }
        let mut names: Vec<String> = headers_to_strip(&req.headers, &settings())
            .into_iter()
            .map(|n| n.to_string())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names,
            [
                "connection",
                "keep-alive",
                "x-auth-roles",
                "x-forwarded-user",
                "x-secret-hop",
                "x-user-id"
            ]
        );
    }

    #[test]
    fn forwarded_headers() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("host", "api.example").unwrap();
        req.insert_header("x-forwarded-for", "10.0.0.1").unwrap();
        set_forwarded(&mut req, Some("127.0.0.1".parse().unwrap()), true).unwrap();
        assert_eq!(req.headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert_eq!(req.headers["x-forwarded-host"], "api.example");
    }

    #[test]
    fn prefix_stripping_keeps_the_query() {
        let u: Uri = "/api/users?x=1".parse().unwrap();
        assert_eq!(strip_prefix(&u, "/api").unwrap(), "/users?x=1");
        assert_eq!(strip_prefix(&u, "/api/").unwrap(), "/users?x=1");
        let u: Uri = "/api".parse().unwrap();
        assert_eq!(strip_prefix(&u, "/api").unwrap(), "/");
    }
}
