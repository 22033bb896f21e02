//! What the upstream is told about a request: client-sent identity headers
//! removed, hop-by-hop headers removed, `X-Forwarded-*` set as a reverse
//! proxy should (RFC 7239's de-facto predecessors), the path rewritten.

use http::header::{HeaderValue, AUTHORIZATION, CONNECTION, HOST};
use http::{HeaderMap, HeaderName, Uri};

use crate::auth::policy::TokenSource;
use crate::config::AuthSettings;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either
/// direction. hyper frames each hop's body itself, so `Transfer-Encoding`
/// goes too.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Client-sent headers to remove before forwarding: the configured identity
/// headers and strip patterns, hop-by-hop headers, and any header that the
/// client's `Connection` header names (but `Host` and `Authorization`).
pub fn headers_to_strip(headers: &HeaderMap, auth: &AuthSettings) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            is_hop_by_hop(name)
                || auth.strip_exact.iter().any(|s| s == n)
                || auth
                    .strip_prefixes
                    .iter()
                    .any(|p| n.starts_with(p.as_str()))
        })
        .cloned()
        .collect();
    out.extend(named_by_connection(headers).filter(|n| n != HOST && n != AUTHORIZATION));
    out
}

/// The header names listed in `Connection` (RFC 9110 §7.6.1), lower-cased
/// by `HeaderName`.
fn named_by_connection(headers: &HeaderMap) -> impl Iterator<Item = HeaderName> + '_ {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
}

/// Removes the token from the upstream request when a route keeps it private.
/// A cookie-borne token stays: cookies are shared with other values.
pub fn remove_token(headers: &mut HeaderMap, from: &TokenSource) {
    match from {
        TokenSource::Bearer | TokenSource::RawAuthorization => {
            headers.remove(AUTHORIZATION);
        }
        TokenSource::Header(name) => {
            headers.remove(name);
        }
        TokenSource::Cookie(_) => {}
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The host the client asked for, as a header value: `Host`, or the URI
/// authority (HTTP/2).
pub fn host_value(headers: &HeaderMap, uri: &Uri) -> Option<HeaderValue> {
    match headers.get(HOST) {
        Some(h) => Some(h.clone()),
        None => HeaderValue::from_str(uri.authority()?.as_str()).ok(),
    }
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (the host the client asked for) from what this gateway saw.
/// `client` is the client's address as header text, made once per connection.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    host: Option<HeaderValue>,
    client: &HeaderValue,
    tls: bool,
) {
    let xff = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => {
            let client = client.to_str().unwrap_or_default();
            HeaderValue::try_from(format!("{prior}, {client}")).ok()
        }
        _ => Some(client.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
    headers.insert(X_FORWARDED_PROTO, proto);
    match host {
        Some(v) => headers.insert(X_FORWARDED_HOST, v),
        None => headers.remove(X_FORWARDED_HOST),
    };
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
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("x-user-id", "spoofed"),
            ("X-Auth-Roles", "admin"),
            ("x-forwarded-user", "root"),
            ("keep-alive", "timeout=5"),
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
            ("accept", "*/*"),
        ] {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let mut names: Vec<String> = headers_to_strip(&headers, &settings())
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
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        headers.insert("x-forwarded-host", "spoofed.example".parse().unwrap());
        let host = Some(HeaderValue::from_static("api.example"));
        let client = HeaderValue::from_static("127.0.0.1");
        set_forwarded(&mut headers, host, &client, true);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "api.example");
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
