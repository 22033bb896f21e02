//! Single keys' values read from their text: token sources, limit keys,
//! dialects, secret hashes, key URLs. The checks call them, and the
//! runtime where it reads the same kinds of text (a discovery document's
//! `jwks_uri`, portero's own hashes).

use http::HeaderName;

use super::super::model::{Dialect, LimitKey, TokenSource};

/// Where a route finds its token (`token_from`).
pub fn token_source(s: &str) -> Result<TokenSource, String> {
    match s.split_once(':') {
        None if s == "bearer" => Ok(TokenSource::Bearer),
        None if s == "authorization" => Ok(TokenSource::RawAuthorization),
        Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
            .map(TokenSource::Header)
            .map_err(|_| format!("{name:?} is not a header name")),
        Some(("cookie", name)) if !name.trim().is_empty() => {
            Ok(TokenSource::Cookie(name.trim().to_string()))
        }
        Some(("query", name)) if !name.trim().is_empty() => {
            Ok(TokenSource::Query(name.trim().to_string()))
        }
        _ => Err(format!(
            "{s:?}: expected \"bearer\", \"authorization\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\""
        )),
    }
}

/// What a route's limit is kept by (`by`).
pub fn limit_key(s: &str) -> Result<LimitKey, String> {
    match s.split_once(':') {
        None if s == "sub" => Ok(LimitKey::Subject),
        None if s == "client_ip" => Ok(LimitKey::ClientIp),
        Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
            .map(LimitKey::Header)
            .map_err(|_| format!("{name:?} is not a header name")),
        Some(("claim", name)) if !name.trim().is_empty() => {
            Ok(LimitKey::Claim(name.trim().to_string()))
        }
        _ => Err(format!(
            "{s:?}: expected \"sub\", \"client_ip\", \"header:NAME\" or \"claim:NAME\""
        )),
    }
}

/// A token endpoint's dialect (`dialect`).
pub fn dialect(s: &str) -> Option<Dialect> {
    Some(match s {
        "session" => Dialect::Session,
        "login-refresh" => Dialect::LoginRefresh,
        "project" => Dialect::Project,
        "client-envelope" => Dialect::ClientEnvelope,
        "client-flat" => Dialect::ClientFlat,
        _ => return None,
    })
}

/// Keys fetched over plain HTTP could be swapped by anyone on the path:
/// HTTPS, or plain HTTP to this host only.
pub fn check_key_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("{text:?} names no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{text:?}: keys over plain HTTP could be replaced on the way; use https"
        )),
        other => Err(format!("{text:?}: scheme {other:?} is not https")),
    }
}
