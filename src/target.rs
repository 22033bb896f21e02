//! What a request asks for, made unambiguous before anything acts on it:
//! its one host (RFC 9112 §3.2, RFC 9113 §8.3.1), its normalised path
//! (`path`) and its method. A request that could be read two ways is
//! refused with `400`.

use http::header::{HeaderValue, HOST};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Uri, Version};

use crate::config::PathRules;
use crate::method_override;
use crate::path::{self, PathError};
use crate::respond::RequestError;

/// Why a request's host is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    Missing,
    Repeated,
    /// `Host` and the request's authority (HTTP/2 `:authority`, or an
    /// absolute-form target) disagree.
    Conflicting,
    Malformed,
}

impl HostError {
    pub fn message(self) -> &'static str {
        match self {
            HostError::Missing => "no Host header",
            HostError::Repeated => "more than one Host header",
            HostError::Conflicting => "Host does not match the request's authority",
            HostError::Malformed => "malformed Host",
        }
    }
}

/// The request's one host (`None` for an HTTP/1.0 request without one),
/// its path normalised in place.
pub fn checked(parts: &mut Parts, rules: PathRules) -> Result<Option<HeaderValue>, RequestError> {
    normalize_path(parts, rules).map_err(|e| RequestError::BadTarget(PathError::message(e)))?;
    host(parts).map_err(|e| RequestError::BadTarget(HostError::message(e)))
}

/// The method a method-override header names, for routing to read in
/// place of the request line's (`None`: there is none; `overridden` says
/// whether one came, in any spelling). Refused: a method with a lower-case
/// letter (`delete`, `Delete`, `propfind`: `http` reads it as an extension
/// no route names, while a framework reads DELETE), an override on
/// another method than POST (the one every framework reads it on), and
/// one `method_override::named` refuses. The route then decides whether
/// it takes the override (`Route::takes_method_override`).
pub fn method(parts: &Parts, overridden: bool) -> Result<Option<Method>, &'static str> {
    if miscased(&parts.method) {
        return Err("a method with a lower-case letter (an application may upper-case it)");
    }
    if method_override::in_query(parts.uri.query()) {
        return Err("a _method query parameter (frameworks run the method it names)");
    }
    if !overridden {
        return Ok(None);
    }
    if parts.method != Method::POST {
        return Err("a method-override header on another method than POST");
    }
    method_override::named(&parts.headers).map(Some)
}

/// A method with a lower-case letter: `http` reads `delete` or
/// `propfind` as an extension no route names (routes name methods in
/// capitals), while werkzeug, Rack and others upper-case it and run
/// DELETE or PROPFIND. Every method is refused so, not only the standard
/// ones: an extension's route is split by method as theirs are.
fn miscased(method: &Method) -> bool {
    method.as_str().bytes().any(|b| b.is_ascii_lowercase())
}

/// The host the request is for, as sent but without a trailing dot
/// (`api.example.` is `api.example`); `None` only for HTTP/1.0 requests
/// that name none.
pub fn host(parts: &Parts) -> Result<Option<HeaderValue>, HostError> {
    let mut headers = parts.headers.get_all(HOST).iter();
    let header = headers.next();
    if headers.next().is_some() {
        return Err(HostError::Repeated);
    }
    let value = match (header, parts.uri.authority()) {
        (Some(h), Some(a)) if !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()) => {
            return Err(HostError::Conflicting)
        }
        (Some(h), _) => h.clone(),
        (None, Some(a)) => HeaderValue::from_str(a.as_str()).map_err(|_| HostError::Malformed)?,
        (None, None) if parts.version <= Version::HTTP_10 => return Ok(None),
        (None, None) => return Err(HostError::Missing),
    };
    let bytes = value.as_bytes();
    let name_end = name_end(bytes).ok_or(HostError::Malformed)?;
    if bytes[name_end - 1] != b'.' {
        return Ok(Some(value));
    }
    let mut bare = Vec::with_capacity(bytes.len() - 1);
    bare.extend_from_slice(&bytes[..name_end - 1]);
    bare.extend_from_slice(&bytes[name_end..]);
    HeaderValue::from_bytes(&bare)
        .map(Some)
        .map_err(|_| HostError::Malformed)
}

/// Where the name ends in `name[:port]`, if the whole is well formed: a
/// registered name of unreserved characters (no percent-encoding, no
/// sub-delimiters; one trailing dot allowed) or a bracketed IPv6 literal,
/// and a port number. One pass: this runs on every request.
fn name_end(host: &[u8]) -> Option<usize> {
    let (end, port) = if host.first() == Some(&b'[') {
        let close = host.iter().position(|&b| b == b']')?;
        let literal = std::str::from_utf8(&host[1..close]).ok()?;
        literal.parse::<std::net::Ipv6Addr>().ok()?;
        (close + 1, &host[close + 1..])
    } else {
        let mut colon = None;
        for (i, &b) in host.iter().enumerate() {
            match b {
                b':' if colon.is_none() => colon = Some(i),
                b'0'..=b'9' => {}
                b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'.' | b'_' | b'~' if colon.is_none() => {}
                _ => return None,
            }
        }
        let end = colon.unwrap_or(host.len());
        let name = &host[..end];
        let bare = name.strip_suffix(b".").unwrap_or(name);
        if bare.is_empty() || bare.ends_with(b".") {
            return None;
        }
        (end, &host[end..])
    };
    match port {
        [] => Some(end),
        [b':', digits @ ..] if (1..=5).contains(&digits.len()) => {
            let number = digits.iter().try_fold(0u32, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })?;
            (number <= 65_535).then_some(end)
        }
        _ => None,
    }
}

/// Replaces the request's path by its normalised form (`path::normalize`);
/// the query is kept as sent.
pub fn normalize_path(parts: &mut Parts, rules: PathRules) -> Result<(), path::PathError> {
    let normal = match path::normalize(parts.uri.path(), rules)? {
        std::borrow::Cow::Borrowed(_) => return Ok(()),
        std::borrow::Cow::Owned(p) => p,
    };
    let with_query = match parts.uri.query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query =
        Some(PathAndQuery::try_from(with_query).map_err(|_| path::PathError::BadEscape)?);
    parts.uri = Uri::from_parts(uri).map_err(|_| path::PathError::BadEscape)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(uri: &str, version: Version, hosts: &[&str]) -> Parts {
        let mut b = Request::builder().uri(uri).version(version);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_checked_target_is_one_host_and_a_normalised_path() {
        let mut p = parts("/a/./b/../c", Version::HTTP_11, &["api.example.com."]);
        let host = checked(&mut p, PathRules::default()).unwrap();
        assert_eq!(host.unwrap(), "api.example.com");
        assert_eq!(p.uri.path(), "/a/c");
        let mut two = parts("/", Version::HTTP_11, &["a.test", "b.test"]);
        assert!(matches!(
            checked(&mut two, PathRules::default()),
            Err(RequestError::BadTarget(_))
        ));
        let mut escaping = parts("/../etc", Version::HTTP_11, &["a.test"]);
        assert!(matches!(
            checked(&mut escaping, PathRules::default()),
            Err(RequestError::BadTarget(_))
        ));
    }

    fn host_of(uri: &str, version: Version, hosts: &[&str]) -> Result<Option<String>, HostError> {
        host(&parts(uri, version, hosts)).map(|h| h.map(|v| v.to_str().unwrap().to_string()))
    }

    #[test]
    fn one_well_formed_host() {
        let h11 = Version::HTTP_11;
        assert_eq!(
            host_of("/", h11, &["api.example:8080"]),
            Ok(Some("api.example:8080".into()))
        );
        assert_eq!(
            host_of("/", h11, &["maxpoint.localhost."]),
            Ok(Some("maxpoint.localhost".into()))
        );
        assert_eq!(
            host_of("/", h11, &["a.example.:80"]),
            Ok(Some("a.example:80".into()))
        );
        assert_eq!(
            host_of("/", h11, &["[::1]:8080"]),
            Ok(Some("[::1]:8080".into()))
        );
        assert_eq!(host_of("/", Version::HTTP_10, &[]), Ok(None));
        // HTTP/2: the authority, which a `host` header must repeat if it is sent.
        assert_eq!(
            host_of("http://api.example/x", Version::HTTP_2, &[]),
            Ok(Some("api.example".into()))
        );
        assert_eq!(
            host_of("http://api.example/x", Version::HTTP_2, &["API.example"]),
            Ok(Some("API.example".into()))
        );
    }

    #[test]
    fn missing_repeated_conflicting_and_malformed_hosts_are_refused() {
        use HostError::*;
        let h11 = Version::HTTP_11;
        assert_eq!(host_of("/", h11, &[]), Err(Missing));
        assert_eq!(host_of("/", h11, &["a", "b"]), Err(Repeated));
        assert_eq!(host_of("/", h11, &["a", "a"]), Err(Repeated));
        assert_eq!(
            host_of("http://a/x", Version::HTTP_2, &["b"]),
            Err(Conflicting)
        );
        assert_eq!(host_of("http://a/x", h11, &["b"]), Err(Conflicting));
        for bad in [
            "", "a b", "a:", "a:123456", "a:x", "user@a", "a/b", "[::1", "[zz]:1", "a..", ".",
            "a%2eb",
        ] {
            assert_eq!(host_of("/", h11, &[bad]), Err(Malformed), "{bad:?}");
        }
    }

    fn with_method(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri("/items/7");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_standard_method_in_another_case_is_refused() {
        for sent in [
            "delete", "Delete", "dELETE", "get", "Post", "options", "patch", "trace", "propfind",
            "Purge", "deletes",
        ] {
            assert!(method(&with_method(sent, &[]), false).is_err(), "{sent}");
        }
        // Methods in capitals, extensions too, are the route's to split.
        for sent in ["GET", "DELETE", "PROPFIND", "M-SEARCH"] {
            assert_eq!(method(&with_method(sent, &[]), false), Ok(None), "{sent}");
        }
    }

    #[test]
    fn a_method_named_in_the_query_is_refused() {
        let at = |uri: &str| {
            let parts = Request::builder().method("POST").uri(uri).body(()).unwrap();
            method(&parts.into_parts().0, false)
        };
        for uri in [
            "/items/7?_method=DELETE",
            "/items/7?a=1&_METHOD=put",
            "/items/7?%5Fmethod=PATCH",
            "/items/7?.method=DELETE",
        ] {
            assert!(at(uri).is_err(), "{uri}");
        }
        for uri in ["/items/7?method=x", "/items/7?a=_method", "/items/7"] {
            assert_eq!(at(uri), Ok(None), "{uri}");
        }
    }

    #[test]
    fn only_a_posts_override_is_read_and_only_one() {
        let o = [("x-http-method-override", "DELETE")];
        assert_eq!(
            method(&with_method("POST", &o), true),
            Ok(Some(Method::DELETE))
        );
        for sent in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            assert!(method(&with_method(sent, &o), true).is_err(), "{sent}");
        }
        let named_lower = [("x-http-method-override", "delete")];
        assert!(method(&with_method("POST", &named_lower), true).is_err());
    }

    #[test]
    fn the_path_is_replaced_by_its_normal_form() {
        let mut p = parts(
            "/public/%2e%2e/secret.txt?a=%2e%2e",
            Version::HTTP_11,
            &["h"],
        );
        normalize_path(&mut p, PathRules::default()).unwrap();
        assert_eq!(p.uri, "/secret.txt?a=%2e%2e");
        let mut p = parts("/public/..%2fsecret.txt", Version::HTTP_11, &["h"]);
        assert!(normalize_path(&mut p, PathRules::default()).is_err());
    }
}
