//! What a client's `redirect_uri` may be, for the config's clients and
//! registered ones alike: a leaf both `config` and `oauth2` read.

/// What a `redirect_uri` may be (RFC 8252, OAuth 2.1 §2.3.1): an https
/// URL, an http one on a loopback host (a native app's local server), or
/// a private-use scheme (`com.example.app:/callback`); never a fragment.
pub fn redirect_uri_problem(text: &str) -> Option<String> {
    let Ok(url) = url::Url::parse(text) else {
        return Some(format!("{text:?} is not an absolute URL"));
    };
    if url.fragment().is_some() {
        return Some(format!("{text:?} has a fragment (RFC 6749 §3.1.2)"));
    }
    match url.scheme() {
        "https" => None,
        "http" if is_loopback(&url) => None,
        "http" => Some(format!(
            "{text:?}: http only on a loopback host (127.0.0.1, [::1], localhost); https otherwise"
        )),
        scheme if scheme.contains('.') => None,
        scheme => Some(format!(
            "{text:?}: scheme {scheme:?} is neither https nor a private-use scheme (com.example.app)"
        )),
    }
}

/// An http URL on a loopback host, whose port a native app picks when it
/// runs (RFC 8252 §7.3).
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_or_private_use() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8400/cb?x=1",
            "http://[::1]:9/cb",
            "http://localhost:3000/callback",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(redirect_uri_problem(ok), None, "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#x",
            "/relative",
            "javascript:alert(1)",
            "data:text/html,x",
            "http://127.0.0.1.evil.com/cb",
        ] {
            assert!(redirect_uri_problem(bad).is_some(), "{bad}");
        }
    }
}
