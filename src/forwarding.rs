//! What the upstream is told about a request: client-sent identity headers
//! removed, hop-by-hop headers removed, `X-Forwarded-*` set as a reverse
//! proxy should (RFC 7239's de-facto predecessors), the path rewritten.

use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION, CONNECTION, HOST};
use http::request::Parts;
use http::{HeaderMap, HeaderName, Uri};
use smallvec::SmallVec;

use crate::auth::validate::Verified;
use crate::auth::AuthError;
use crate::config::{AuthSettings, Policy, TokenSource};
use crate::header_name::{param_reads_as, query_names, same_field};
use crate::listener::Peer;
use crate::upstream::codec::is_hop_by_hop;
use crate::upstream::{Added, X_FORWARDED_FOR};

/// Headers that re-route a request inside IIS, Symfony and other
/// frameworks: a client must not pick the upstream's path past the route.
const REWRITE_HEADERS: [&str; 2] = ["x-original-url", "x-rewrite-url"];

/// What portero says itself (`upstream::Added`): the client's copies never
/// go on (a trusted proxy's `Client-Cert` is read first, and passed on only
/// where the route says so). Other proxies' names for a client
/// certificate go too: an upstream may believe them of its gateway.
const REPLACED: [&str; 11] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "client-cert",
    "client-cert-chain",
    "x-forwarded-client-cert",
    "x-forwarded-tls-client-cert",
    "x-client-cert",
    "x-ssl-cert",
    "x-ssl-client-cert",
    "ssl-client-cert",
];

/// What an untrusted client says about other hops, or about the address or
/// prefix the client used. (`X-Forwarded-For`, `-Proto` and `-Host` are
/// `REPLACED` whoever sent them.)
const HOP_REPORTS: [&str; 6] = [
    "forwarded",
    "x-real-ip",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "true-client-ip",
    "cf-connecting-ip",
];

/// Client-sent headers to remove before forwarding: every name with `_`
/// unless the route keeps them (as nginx's `underscores_in_headers off`),
/// the configured identity headers and strip patterns, URL-rewrite
/// headers, hop-by-hop headers (`Proxy-Authorization` among them), the
/// `REPLACED` ones, the `HOP_REPORTS` unless the peer is a `trusted` proxy, and any header that
/// the client's `Connection` header names (but `Host` and `Authorization`).
/// Names are compared as CGI, WSGI and Rack read them (`x_user_sub` is
/// `x-user-sub`), so no spelling slips past where underscores are kept.
pub fn headers_to_strip(
    headers: &HeaderMap,
    auth: &AuthSettings,
    trusted: bool,
    keep_underscores: bool,
) -> Vec<HeaderName> {
    let mut out = Vec::new();
    // Most requests have no `Connection` header: looking for the names it
    // lists only when one went by saves hashing its name to find nothing.
    let mut connection = false;
    for name in headers.keys() {
        connection |= name == CONNECTION;
        // A byte loop: names are short, and `memchr`'s call is not. A name
        // with `.` is another spelling to PHP (`x.user.sub`), not dropped
        // as one with `_` is.
        let (mut underscore, mut dot) = (false, false);
        for b in name.as_str().bytes() {
            underscore |= b == b'_';
            dot |= b == b'.';
        }
        let strip = match underscore || dot {
            true => {
                (underscore && !keep_underscores)
                    || listed(&name.as_str().replace(['_', '.'], "-"), auth, trusted)
            }
            false => listed(name.as_str(), auth, trusted),
        };
        if strip || is_hop_by_hop(name) {
            out.push(name.clone());
        }
    }
    if connection {
        // Every spelling CGI reads as a name `Connection` lists: `x_a`
        // beside `Connection: x-a` must not reach the upstream either.
        let named: SmallVec<[HeaderName; 4]> = named_by_connection(headers).collect();
        for name in headers.keys() {
            let listed = named.iter().any(|n| same_field(name.as_str(), n.as_str()));
            if listed && name != HOST && name != AUTHORIZATION && !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

/// Whether the upstream may get a client's `name` header as sent: not if
/// portero strips it (as for a peer that is no trusted proxy, the
/// stricter case), writes it itself, or the client's `Connection` names
/// it. What a route rule may read of the request's headers.
pub fn reaches_upstream(name: &HeaderName, headers: &HeaderMap, auth: &AuthSettings) -> bool {
    !(listed(name.as_str(), auth, false)
        || is_hop_by_hop(name)
        || named_by_connection(headers).any(|n| same_field(n.as_str(), name.as_str())))
}

/// The first letters of every name in `REWRITE_HEADERS`, `REPLACED` and
/// `HOP_REPORTS`: one look lets most names by.
const FIXED_INITIALS: [u8; 5] = *b"xftcs";

/// `n` (with `_` read as `-`) is a name to strip: a fixed one (`HOP_REPORTS` unless the
/// peer is `trusted`) or one the configuration lists. Names are told apart
/// by their first letter before their text is compared.
fn listed(n: &str, auth: &AuthSettings, trusted: bool) -> bool {
    let Some(&first) = n.as_bytes().first() else {
        return false;
    };
    let starts = |s: &str| s.as_bytes().first().is_none_or(|&b| b == first);
    (FIXED_INITIALS.contains(&first)
        && (REWRITE_HEADERS.contains(&n)
            || REPLACED.contains(&n)
            || (!trusted && HOP_REPORTS.contains(&n))))
        || auth.strip_exact.iter().any(|s| starts(s) && s == n)
        || auth
            .strip_prefixes
            .iter()
            .any(|p| starts(p) && n.starts_with(p.as_str()))
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
/// A cookie-borne token stays: cookies are shared with other values. (A
/// query token never goes upstream: `remove_query_tokens`.)
pub fn remove_token(headers: &mut HeaderMap, from: &[TokenSource]) {
    for source in from {
        match source {
            TokenSource::Bearer | TokenSource::RawAuthorization => {
                headers.remove(AUTHORIZATION);
            }
            TokenSource::Header(name) => {
                headers.remove(name);
            }
            TokenSource::Cookie(_) | TokenSource::Query(_) => {}
        }
    }
}

/// The URI without the query parameters a route reads tokens from
/// (however their names are encoded), so that no upstream URL, access log
/// or `Referer` carries a token; `None` when there is nothing to remove.
pub fn remove_query_tokens(uri: &Uri, from: &[TokenSource]) -> Option<Uri> {
    let query = uri.query()?;
    // Every pair some upstream reads under a token's name, after `;` too.
    let is_token = |pair: &str| {
        query_names(pair).any(|name| {
            from.iter()
                .any(|s| matches!(s, TokenSource::Query(q) if param_reads_as(name, q)))
        })
    };
    if !query.split('&').any(is_token) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !is_token(p)).collect();
    let path = uri.path();
    let rebuilt = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    rebuilt.parse().ok()
}

/// What the upstream is told: client-sent identity headers stripped, the
/// token removed unless forwarded, one Host, and the route prefix taken
/// off; and what portero adds (the verified identity, `X-Forwarded-*`),
/// to be written after the client's headers. (`ids` is left to the caller.) The route's configured Host, if
/// any, overrides the client's.
pub fn rewrite<'p>(
    parts: &mut Parts,
    (auth, host_override): (&AuthSettings, Option<&str>),
    verified: Option<&(&'p Policy, Arc<Verified>)>,
    host: Option<HeaderValue>,
    route_prefix: Option<&str>,
    (peer, keep_underscores): (&'p Peer, bool),
) -> Result<Added<'p>, AuthError> {
    let headers = &mut parts.headers;
    let prior_for = prior_forwarded_for(headers, peer.trusted);
    for name in headers_to_strip(headers, auth, peer.trusted, keep_underscores) {
        headers.remove(&name);
    }
    let mut identity = SmallVec::new();
    if let Some((policy, verified)) = verified {
        for header in policy.identity_headers(verified) {
            identity.push(header?);
        }
        if !policy.forwards(verified) {
            remove_token(headers, &policy.token_from);
        }
        if let Some(uri) = remove_query_tokens(&parts.uri, &policy.token_from) {
            parts.uri = uri;
        }
    }
    // The configured Host, else the client's (checked, without a trailing
    // dot). An HTTP/2 request names it in its URI only.
    let upstream_host = match host_override {
        Some(over) => HeaderValue::from_str(over).ok(),
        None => host.clone(),
    };
    if let Some(h) = upstream_host {
        if headers.get(HOST) != Some(&h) {
            headers.insert(HOST, h);
        }
    }
    if let Some(prefix) = route_prefix {
        if let Some(uri) = strip_prefix(&parts.uri, prefix) {
            parts.uri = uri;
        }
    }
    Ok(Added {
        identity,
        prior_for,
        client: &peer.forwarded_for,
        tls: peer.tls,
        host,
        ids: None,
        client_cert: None,
    })
}

/// A trusted proxy's `X-Forwarded-For`, to be extended; `None` from anyone
/// else, since a client can write anything there (`headers_to_strip`
/// removes its copy, and its `Forwarded` and `X-Real-IP`).
pub fn prior_forwarded_for(headers: &HeaderMap, trusted: bool) -> Option<HeaderValue> {
    if !trusted {
        return None;
    }
    headers
        .get(X_FORWARDED_FOR)
        .filter(|v| v.to_str().is_ok_and(|text| !text.trim().is_empty()))
        .cloned()
}

/// `/api/users?x=1` with route prefix `/api` → `/users?x=1`: as many
/// segments as the prefix has, counted as routing counts them.
pub fn strip_prefix(uri: &Uri, prefix: &str) -> Option<Uri> {
    let segments = prefix.split('/').filter(|s| !s.is_empty()).count();
    let path = crate::path::strip_segments(uri.path(), segments).to_string();
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    pq.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_names_start_with_their_listed_initials() {
        for name in REWRITE_HEADERS.iter().chain(&REPLACED).chain(&HOP_REPORTS) {
            assert!(FIXED_INITIALS.contains(&name.as_bytes()[0]), "{name}");
        }
    }

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
            ("X_User_Id", "spoofed"),
            ("x_auth_roles", "admin"),
            ("x-original-url", "/admin"),
            ("X_Rewrite_Url", "/admin"),
            ("X-Auth-Roles", "admin"),
            ("x-forwarded-user", "root"),
            ("keep-alive", "timeout=5"),
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
            // Another spelling of a name `Connection` lists.
            ("X_Secret-Hop", "1"),
            ("accept", "*/*"),
        ] {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let mut names: Vec<String> = headers_to_strip(&headers, &settings(), true, true)
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
                "x-original-url",
                "x-secret-hop",
                "x-user-id",
                "x_auth_roles",
                "x_rewrite_url",
                "x_secret-hop",
                "x_user_id"
            ]
        );
    }

    #[test]
    fn underscored_names_and_client_address_reports_are_dropped() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("x_forwarded_for", "10.0.0.1"),
            ("x_forwarded_host", "evil.example"),
            ("x_forwarded_proto", "https"),
            ("x-forwarded-prefix", "/admin"),
            ("x-forwarded-port", "443"),
            ("true-client-ip", "10.0.0.1"),
            ("cf-connecting-ip", "10.0.0.1"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("accept", "*/*"),
        ] {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let names = |trusted, keep| {
            let mut n: Vec<String> = headers_to_strip(&headers, &settings(), trusted, keep)
                .iter()
                .map(|n| n.to_string())
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names(false, false),
            [
                "cf-connecting-ip",
                "proxy-authorization",
                "true-client-ip",
                "x-forwarded-port",
                "x-forwarded-prefix",
                "x_forwarded_for",
                "x_forwarded_host",
                "x_forwarded_proto"
            ]
        );
        // From a trusted proxy the reports stay; a route may keep
        // underscores, but not in a spelling of the names portero writes.
        assert_eq!(
            names(true, true),
            [
                "proxy-authorization",
                "x_forwarded_for",
                "x_forwarded_host",
                "x_forwarded_proto"
            ]
        );
    }

    static X_USER_SUB: HeaderName = HeaderName::from_static("x-user-sub");

    fn added<'a>(client: &'a HeaderValue, prior: Option<HeaderValue>) -> Added<'a> {
        Added {
            identity: SmallVec::from_iter([(&X_USER_SUB, HeaderValue::from_static("alice"))]),
            prior_for: prior,
            client,
            tls: true,
            host: Some(HeaderValue::from_static("api.example")),
            ids: None,
            client_cert: None,
        }
    }

    #[test]
    fn forwarded_headers_from_a_client_are_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        headers.insert("x-forwarded-host", "spoofed.example".parse().unwrap());
        headers.insert("forwarded", "for=10.0.0.1".parse().unwrap());
        headers.insert("x_real_ip", "10.0.0.1".parse().unwrap());
        let stripped = headers_to_strip(&headers, &settings(), false, true);
        assert_eq!(
            stripped,
            [
                "x-forwarded-for",
                "x-forwarded-host",
                "forwarded",
                "x_real_ip"
            ]
        );
        assert_eq!(
            headers_to_strip(&headers, &settings(), true, true),
            ["x-forwarded-for", "x-forwarded-host"]
        );
        assert!(prior_forwarded_for(&headers, false).is_none());
        let client = HeaderValue::from_static("127.0.0.1");
        let mut head = Vec::new();
        added(&client, None).write_lines(&mut head);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "x-user-sub: alice\r\nx-forwarded-for: 127.0.0.1\r\n\
             x-forwarded-proto: https\r\nx-forwarded-host: api.example\r\n"
        );
        let mut map = HeaderMap::new();
        added(&client, None).apply(&mut map);
        assert_eq!(map["x-user-sub"], "alice");
        assert_eq!(map["x-forwarded-for"], "127.0.0.1");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-forwarded-host"], "api.example");
    }

    #[test]
    fn forwarded_headers_from_a_trusted_proxy_are_extended() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        let prior = prior_forwarded_for(&headers, true);
        let client = HeaderValue::from_static("127.0.0.1");
        let mut head = Vec::new();
        added(&client, prior.clone()).write_lines(&mut head);
        let head = String::from_utf8(head).unwrap();
        assert!(head.contains("\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\n"));
        let mut map = HeaderMap::new();
        added(&client, prior).apply(&mut map);
        assert_eq!(map["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        // An empty report is no report.
        headers.insert("x-forwarded-for", " ".parse().unwrap());
        assert!(prior_forwarded_for(&headers, true).is_none());
    }

    #[test]
    fn query_tokens_never_go_upstream() {
        let from = [
            TokenSource::Bearer,
            TokenSource::Query("access_token".into()),
        ];
        let strip =
            |u: &str| remove_query_tokens(&u.parse().unwrap(), &from).map(|u| u.to_string());
        assert_eq!(strip("/ws?access_token=abc"), Some("/ws".into()));
        assert_eq!(
            strip("/ws?a=1&access%5Ftoken=abc&b=2&access_token=x"),
            Some("/ws?a=1&b=2".into())
        );
        assert_eq!(strip("/ws?a=1"), None);
        assert_eq!(strip("/ws"), None);
        assert_eq!(strip("/ws?access_tokens=1"), None);
        assert_eq!(strip("/ws?ACCESS_TOKEN=x&a=1"), Some("/ws?a=1".into()));
    }

    #[test]
    fn prefix_stripping_keeps_the_query() {
        let u: Uri = "/api/users?x=1".parse().unwrap();
        assert_eq!(strip_prefix(&u, "/api").unwrap(), "/users?x=1");
        assert_eq!(strip_prefix(&u, "/api/").unwrap(), "/users?x=1");
        let u: Uri = "/api".parse().unwrap();
        assert_eq!(strip_prefix(&u, "/api").unwrap(), "/");
        let u: Uri = "//api;v=2//users".parse().unwrap();
        assert_eq!(strip_prefix(&u, "/api").unwrap(), "//users");
    }
}
