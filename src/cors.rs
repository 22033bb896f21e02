//! CORS as the gateway answers it (the Fetch standard's CORS protocol):
//! preflights are decided here and never forwarded or asked for a token,
//! and every response of a route with a policy carries the policy's answer
//! for the request's origin, whoever wrote the response. Plain functions
//! over headers; `proxy` calls them, `respond` builds the responses.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use smallvec::SmallVec;

use crate::config::{CorsPolicy, OriginPattern};

/// Why a preflight gets no CORS headers (and so fails in the browser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Origin,
    Method,
    Header,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Origin => "origin not allowed",
            Refusal::Method => "method not allowed",
            Refusal::Header => "request header not allowed",
        }
    }
}

/// The method a preflight asks about: an `OPTIONS` request with `Origin`
/// and `Access-Control-Request-Method` (Fetch §4.8). Any other `OPTIONS`
/// is a request like the rest.
pub fn preflight_method(parts: &Parts) -> Option<Method> {
    if parts.method != Method::OPTIONS || !parts.headers.contains_key(ORIGIN) {
        return None;
    }
    parts
        .headers
        .get(ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The answer to a preflight for `method` under `policy`: the headers of a
/// `204`, or why the browser is refused.
pub fn preflight(
    policy: &CorsPolicy,
    request: &HeaderMap,
    method: &Method,
) -> Result<HeaderMap, Refusal> {
    let origin = single_origin(request).ok_or(Refusal::Origin)?;
    if !allows_origin(policy, origin) {
        return Err(Refusal::Origin);
    }
    if !policy.methods.contains(method) {
        return Err(Refusal::Method);
    }
    let mut requested: SmallVec<[HeaderName; 4]> = SmallVec::new();
    for value in request.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
        let text = value.to_str().map_err(|_| Refusal::Header)?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Refusal::Header)?;
            let allowed = match &policy.allow_headers {
                None => true,
                Some(list) => list.contains(&name),
            };
            if !allowed {
                return Err(Refusal::Header);
            }
            requested.push(name);
        }
    }
    let mut headers = HeaderMap::new();
    allow_origin(policy, origin.clone(), &mut headers);
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, policy.methods_value.clone());
    if !requested.is_empty() {
        let names: Vec<&str> = requested.iter().map(HeaderName::as_str).collect();
        let value =
            HeaderValue::try_from(names.join(", ")).expect("header names are valid header text");
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
    if let Some(max_age) = &policy.max_age_value {
        headers.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
    }
    headers.insert(
        VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    Ok(headers)
}

/// Puts the policy's answer on a response for a request from `origin`:
/// any `Access-Control-*` header the upstream sent is removed (one answer,
/// never two), and an allowed origin gets its own. `Vary: Origin` either
/// way, so a cache keeps one copy per origin. `Access-Control-Expose-Headers`
/// only where there is something to expose: configured names, or a
/// challenge's `WWW-Authenticate`. The origin is taken, not cloned: it
/// becomes the response's `Access-Control-Allow-Origin`.
pub fn decorate(policy: &CorsPolicy, origin: Option<HeaderValue>, headers: &mut HeaderMap) {
    // One walk over the names the upstream sent (each once) finds its own
    // answer, its `Vary` and whether it challenges: a lookup each costs as
    // much. A name's first letter rules out the rest, so most names are
    // compared once. Values are read for `Vary` alone.
    let (mut vary, mut challenges, mut theirs) = (false, false, false);
    for name in headers.keys() {
        let text = name.as_str();
        match text.as_bytes().first() {
            Some(b'v') => vary |= text == "vary",
            Some(b'w') => challenges |= text == "www-authenticate",
            Some(b'a') => theirs |= is_access_control(name),
            _ => {}
        }
    }
    // Rare: an upstream answering CORS itself. Walked again to remove it.
    if theirs {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|n| is_access_control(n))
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
    }
    let varies = vary
        && headers.get_all(VARY).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|n| n.trim() == "*" || n.trim().eq_ignore_ascii_case("origin"))
            })
        });
    // Appended: none of these names is left in the map.
    if !varies {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
    let Some(origin) = origin.filter(|o| allows_origin(policy, o)) else {
        return;
    };
    allow_origin(policy, origin, headers);
    if policy.exposes_configured || challenges {
        headers.append(ACCESS_CONTROL_EXPOSE_HEADERS, policy.expose_value.clone());
    }
}

/// A CORS response field: the gateway's to answer, never the upstream's.
pub fn is_access_control(name: &HeaderName) -> bool {
    name.as_str().starts_with("access-control-")
}

/// `Access-Control-Allow-Origin` (and `-Credentials`) for an allowed origin:
/// the origin itself, or `*` for a policy open to all without credentials.
fn allow_origin(policy: &CorsPolicy, origin: HeaderValue, headers: &mut HeaderMap) {
    let any = !policy.credentials && policy.origins.contains(&OriginPattern::Any);
    let value = if any {
        HeaderValue::from_static("*")
    } else {
        origin
    };
    headers.append(ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if policy.credentials {
        headers.append(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// The origin a request's response answers: its one `Origin`, as a
/// preflight reads it (two are no origin at all).
pub fn request_origin(headers: &HeaderMap) -> Option<HeaderValue> {
    single_origin(headers).cloned()
}

/// The request's one `Origin`; two are no origin at all.
fn single_origin(headers: &HeaderMap) -> Option<&HeaderValue> {
    let mut all = headers.get_all(ORIGIN).iter();
    let first = all.next()?;
    all.next().is_none().then_some(first)
}

/// Whether `origin` (as the browser sent it) is one the policy names
/// (`CorsPolicy::allows_origin`, beside the model `portero check` reads too).
#[inline]
pub fn allows_origin(policy: &CorsPolicy, origin: &HeaderValue) -> bool {
    policy.allows_origin(origin)
}

/// The request comes from no browser page, or from one the policy allows.
pub fn origin_allowed(policy: &CorsPolicy, headers: &HeaderMap) -> bool {
    headers
        .get(ORIGIN)
        .is_none_or(|origin| allows_origin(policy, origin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::WWW_AUTHENTICATE;

    fn policy(origins: Vec<OriginPattern>, credentials: bool) -> CorsPolicy {
        CorsPolicy {
            name: "t".into(),
            origins,
            methods: vec![Method::GET, Method::POST],
            allow_headers: Some(vec![
                HeaderName::from_static("authorization"),
                HeaderName::from_static("content-type"),
            ]),
            credentials,
            methods_value: HeaderValue::from_static("GET, POST"),
            expose_value: HeaderValue::from_static("www-authenticate"),
            exposes_configured: false,
            max_age_value: Some(HeaderValue::from_static("600")),
        }
    }

    fn subdomains() -> OriginPattern {
        OriginPattern::Subdomains {
            scheme: "https://".into(),
            suffix: ".example.com".into(),
        }
    }

    fn origin(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn a_request_without_origin_or_from_an_allowed_one_passes() {
        let p = policy(vec![subdomains()], true);
        let mut headers = HeaderMap::new();
        assert!(origin_allowed(&p, &headers), "no page asked");
        headers.insert(ORIGIN, origin("https://app.example.com"));
        assert!(origin_allowed(&p, &headers));
        headers.insert(ORIGIN, origin("https://evil.test"));
        assert!(!origin_allowed(&p, &headers));
    }

    #[test]
    fn suffix_patterns_take_subdomains_only() {
        let p = policy(vec![subdomains()], true);
        for ok in [
            "https://app.example.com",
            "https://a.b.example.com",
            "HTTPS://App.Example.COM",
        ] {
            assert!(allows_origin(&p, &origin(ok)), "{ok}");
        }
        for bad in [
            "https://example.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://evilexample.com",
            "https://app.example.com.evil.net",
            "https://.example.com",
            "https://user@x.example.com",
            "null",
        ] {
            assert!(!allows_origin(&p, &origin(bad)), "{bad}");
        }
    }

    #[test]
    fn preflights_check_origin_method_and_headers() {
        let p = policy(
            vec![OriginPattern::Exact("http://localhost:3000".into())],
            false,
        );
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, origin("http://localhost:3000"));
        h.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            origin("Content-Type, Authorization"),
        );
        let ok = preflight(&p, &h, &Method::POST).unwrap();
        assert_eq!(ok[ACCESS_CONTROL_ALLOW_ORIGIN], "http://localhost:3000");
        assert_eq!(
            ok[ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type, authorization"
        );
        assert_eq!(ok[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(ok[ACCESS_CONTROL_MAX_AGE], "600");
        assert!(!ok.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert_eq!(preflight(&p, &h, &Method::DELETE), Err(Refusal::Method));
        h.insert(ACCESS_CONTROL_REQUEST_HEADERS, origin("x-custom"));
        assert_eq!(preflight(&p, &h, &Method::GET), Err(Refusal::Header));
        h.insert(ORIGIN, origin("http://localhost:3001"));
        assert_eq!(preflight(&p, &h, &Method::GET), Err(Refusal::Origin));
        h.append(ORIGIN, origin("http://localhost:3000"));
        assert_eq!(preflight(&p, &h, &Method::GET), Err(Refusal::Origin));
    }

    #[test]
    fn responses_carry_one_answer_and_vary() {
        let p = policy(
            vec![OriginPattern::Exact("https://app.example.com".into())],
            true,
        );
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin("*"));
        h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, origin("false"));
        h.insert(VARY, origin("Accept-Encoding"));
        decorate(&p, Some(origin("https://app.example.com")), &mut h);
        assert_eq!(h.get_all(ACCESS_CONTROL_ALLOW_ORIGIN).iter().count(), 1);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert!(
            !h.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS),
            "nothing to expose"
        );
        let vary: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding", "Origin"]);

        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin("*"));
        h.append(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            origin("https://evil.example.net"),
        );
        h.insert("access-control-x-own", origin("1"));
        h.insert("x-kept", origin("1"));
        decorate(&p, Some(origin("https://evil.example.net")), &mut h);
        assert!(
            h.keys().all(|n| !n.as_str().starts_with("access-control-")),
            "the upstream's answer stays out, every value of it: {h:?}"
        );
        assert_eq!(h[VARY], "Origin");
        assert_eq!(h["x-kept"], "1");
    }

    #[test]
    fn a_challenge_or_configured_names_are_exposed() {
        let mut p = policy(
            vec![OriginPattern::Exact("https://app.example.com".into())],
            false,
        );
        let from_app = origin("https://APP.example.com");
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, origin("Bearer"));
        h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, origin("x-theirs"));
        decorate(&p, Some(from_app.clone()), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://APP.example.com");
        let exposed: Vec<_> = h.get_all(ACCESS_CONTROL_EXPOSE_HEADERS).iter().collect();
        assert_eq!(exposed, ["www-authenticate"], "ours, and only ours");

        p.exposes_configured = true;
        p.expose_value = origin("x-request-id, www-authenticate");
        let mut h = HeaderMap::new();
        decorate(&p, Some(from_app.clone()), &mut h);
        assert_eq!(
            h[ACCESS_CONTROL_EXPOSE_HEADERS],
            "x-request-id, www-authenticate"
        );
    }

    #[test]
    fn a_request_with_two_origins_has_none() {
        let mut h = HeaderMap::new();
        assert_eq!(request_origin(&h), None);
        h.insert(ORIGIN, origin("https://app.example.com"));
        assert_eq!(request_origin(&h), Some(origin("https://app.example.com")));
        h.append(ORIGIN, origin("https://evil.example.net"));
        assert_eq!(request_origin(&h), None);
    }

    #[test]
    fn an_open_policy_answers_star_without_credentials() {
        let p = policy(vec![OriginPattern::Any], false);
        let mut h = HeaderMap::new();
        decorate(&p, Some(origin("https://anyone.example")), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }
}
