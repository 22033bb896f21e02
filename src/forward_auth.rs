//! The request a forward-auth call asks about. Proxies that route traffic
//! themselves ask portero for a decision and name the original request in
//! one of three ways, chosen in config (`server.forward_auth_style`):
//! Traefik (`X-Forwarded-Method`, `-Host`, `-Uri`), nginx `auth_request`
//! (`X-Original-Method`, `-URI`, `-Host`, as its config sets them), or
//! Envoy's HTTP `ext_authz`, which appends the original path to the
//! endpoint's and keeps the method. A style reads only its own headers and
//! refuses the others': nginx passes the client's headers on, so an
//! `X-Forwarded-Uri` there is the client's attempt to name another request.
//! Every other header (the token, cookies) is the original request's.
//!
//! The asking proxy passes the original request on as the client sent it,
//! so the decision is only about that request if its path is already the
//! one portero routes on (`path::is_routing_form`): `/admin/../auth` would
//! be decided as `/auth` while the application serves `/admin/..`'s route.
//! Any other path is refused, since portero cannot rewrite what the
//! application receives; so is a URI with a `#fragment`, which the
//! application gets as sent and a URI parser drops. The method is
//! checked as any request's is (`target::method`).

use http::header::HOST;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Request, Uri};

use crate::config::{ForwardAuth, ForwardAuthStyle, PathRules};
use crate::path;

/// Why a decision about a path not in routing form is refused.
pub const NOT_ROUTING_FORM: &str = "forward auth: the original path is not in normal form \
     (dot segments, encoded unreserved characters, empty segments or ; parameters); \
     the application would get it as sent, so no decision can be made";

/// Why a decision about a URI with a fragment is refused: a URI parser
/// drops it, so `/public#/../admin` would be decided as `/public`.
pub const FRAGMENT: &str = "forward auth: the original URI has a #fragment, which the \
     application would get as sent; no decision can be made";

/// What a header-naming style reads: method, URI, host.
struct Names {
    method: &'static str,
    uri: &'static str,
    host: &'static str,
}

const NGINX: Names = Names {
    method: "x-original-method",
    uri: "x-original-uri",
    host: "x-original-host",
};
const TRAEFIK: Names = Names {
    method: "x-forwarded-method",
    uri: "x-forwarded-uri",
    host: "x-forwarded-host",
};

/// Every header some proxy (or framework) names an original request by.
/// A style refuses the ones that are not its own: nginx and Envoy pass the
/// client's headers on to the decision request, so any of these there may
/// be the client's.
const NAMING: [&str; 7] = [
    "x-original-method",
    "x-original-uri",
    "x-original-host",
    "x-original-url",
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-forwarded-host",
];

/// The rest of `path` after the endpoint's (`""` for the endpoint itself),
/// or `None` when `path` is not under it.
pub fn under<'p>(endpoint: &str, path: &'p str) -> Option<&'p str> {
    let rest = path.strip_prefix(endpoint)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The original request's head, read the one way `config.style` says;
/// `rest` is the decision request's path after the endpoint's, and
/// `as_sent` whether it was found under the endpoint before normalising
/// (in the Envoy style it is the original path, and must have been).
pub fn original(
    config: &ForwardAuth,
    (rest, as_sent): (&str, bool),
    parts: &Parts,
    rules: PathRules,
) -> Result<Parts, &'static str> {
    let names = match config.style {
        ForwardAuthStyle::Nginx => Some(&NGINX),
        ForwardAuthStyle::Traefik => Some(&TRAEFIK),
        ForwardAuthStyle::Envoy => None,
    };
    let own = |n: &str| names.is_some_and(|o| [o.method, o.uri, o.host].contains(&n));
    if NAMING
        .iter()
        .any(|n| !own(n) && parts.headers.contains_key(*n))
    {
        return Err(
            "forward auth: a header naming the original request in another proxy's convention",
        );
    }
    let (method, uri, host) = match names {
        Some(names) => {
            if !rest.is_empty() {
                return Err("forward auth: only the envoy style names the request by path");
            }
            let method = match one(parts, names.method)? {
                Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| "bad forwarded method")?,
                None => Method::GET,
            };
            let uri =
                one(parts, names.uri)?.ok_or("forward auth: no header names the original URI")?;
            if uri.contains('#') {
                return Err(FRAGMENT);
            }
            let uri: Uri = uri.parse().map_err(|_| "bad forwarded URI")?;
            (method, uri, one(parts, names.host)?)
        }
        // Envoy appends the original path to the endpoint's and keeps the method.
        None => {
            if !as_sent {
                return Err(NOT_ROUTING_FORM);
            }
            let path = if rest.is_empty() { "/" } else { rest };
            let uri = match parts.uri.query() {
                Some(q) => format!("{path}?{q}").parse(),
                None => path.parse(),
            };
            (
                parts.method.clone(),
                uri.map_err(|_| "bad forwarded URI")?,
                None,
            )
        }
    };
    if uri.scheme().is_some() || !uri.path().starts_with('/') {
        return Err("the forwarded URI must be a path");
    }
    if !path::is_routing_form(uri.path(), rules).map_err(path::PathError::message)? {
        return Err(NOT_ROUTING_FORM);
    }
    let (mut original, ()) = Request::builder()
        .method(method)
        .uri(uri)
        .version(http::Version::HTTP_11)
        .body(())
        .map_err(|_| "bad forwarded request")?
        .into_parts();
    original.headers = parts.headers.clone();
    let host = match host {
        Some(h) => Some(HeaderValue::from_str(h).map_err(|_| "bad forwarded host")?),
        None => match parts.uri.authority() {
            Some(a) => Some(HeaderValue::from_str(a.as_str()).map_err(|_| "bad host")?),
            None => None,
        },
    };
    if let Some(host) = host {
        original.headers.insert(HOST, host);
    }
    Ok(original)
}

/// The one value of a naming header; twice is ambiguous.
fn one<'p>(parts: &'p Parts, name: &'static str) -> Result<Option<&'p str>, &'static str> {
    let mut all = parts.headers.get_all(HeaderName::from_static(name)).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err("forward auth: a header naming the original request, twice");
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| "forward auth: a naming header that is not text")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(uri: &str, method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn ask(style: ForwardAuthStyle, p: &Parts) -> Result<Parts, &'static str> {
        let config = ForwardAuth {
            path: "/auth".into(),
            style,
        };
        let rest = under(&config.path, p.uri.path()).expect("a decision");
        original(&config, (rest, true), p, PathRules::default())
    }

    #[test]
    fn traefik_names_the_request_in_forwarded_headers() {
        let p = call(
            "/auth",
            Method::GET,
            &[
                ("x-forwarded-method", "DELETE"),
                ("x-forwarded-host", "api.example.com"),
                ("x-forwarded-uri", "/orders/7?x=1"),
                ("host", "portero:8080"),
            ],
        );
        let o = ask(ForwardAuthStyle::Traefik, &p).unwrap();
        assert_eq!(o.method, Method::DELETE);
        assert_eq!(o.uri, "/orders/7?x=1");
        assert_eq!(o.headers[HOST], "api.example.com");
    }

    #[test]
    fn nginx_names_the_request_in_original_headers() {
        let p = call(
            "/auth",
            Method::GET,
            &[
                ("x-original-method", "POST"),
                ("x-original-host", "api.example.com"),
                ("x-original-uri", "/orders/7"),
            ],
        );
        let o = ask(ForwardAuthStyle::Nginx, &p).unwrap();
        assert_eq!(o.method, Method::POST);
        assert_eq!(o.uri, "/orders/7");
        assert_eq!(o.headers[HOST], "api.example.com");
    }

    #[test]
    fn envoy_appends_the_path_and_keeps_the_method() {
        let p = call("/auth/orders/7?x=1", Method::POST, &[("host", "api")]);
        let o = ask(ForwardAuthStyle::Envoy, &p).unwrap();
        assert_eq!(o.method, Method::POST);
        assert_eq!(o.uri, "/orders/7?x=1");
        assert_eq!(o.headers[HOST], "api");
    }

    #[test]
    fn another_styles_headers_or_a_header_twice_are_refused() {
        use ForwardAuthStyle::*;
        let nginx = [("x-original-uri", "/orders/7")];
        let decoy = ("x-forwarded-uri", "/public/x");
        let p = call("/auth", Method::GET, &[nginx[0], decoy]);
        assert!(ask(Nginx, &p).is_err());
        let p = call("/auth", Method::GET, &[nginx[0], ("x-original-url", "/x")]);
        assert!(ask(Nginx, &p).is_err());
        let p = call("/auth", Method::GET, &[decoy, nginx[0]]);
        assert!(ask(Traefik, &p).is_err());
        let p = call("/auth/orders/7", Method::GET, &[decoy]);
        assert!(ask(Envoy, &p).is_err());
        let p = call(
            "/auth",
            Method::GET,
            &[nginx[0], ("x-original-uri", "/public")],
        );
        assert!(ask(Nginx, &p).is_err());
        // A header style names the request by header only.
        let p = call("/auth/public/x", Method::GET, &[nginx[0]]);
        assert!(ask(Nginx, &p).is_err());
    }

    /// The proxy passes the path on as sent: one portero would route
    /// otherwise than it reads is not decided about.
    #[test]
    fn only_paths_in_routing_form_are_decided() {
        use ForwardAuthStyle::*;
        for path in [
            "/admin/users/../../auth",
            "/admin/users/%2e%2e/%2e%2e/auth",
            "/%61uth",
            "/auth;x",
            "//auth",
            "/;x/auth",
            "/.//auth",
        ] {
            let p = call("/auth", Method::POST, &[("x-original-uri", path)]);
            assert_eq!(ask(Nginx, &p).unwrap_err(), NOT_ROUTING_FORM, "{path}");
            let p = call("/auth", Method::POST, &[("x-forwarded-uri", path)]);
            assert_eq!(ask(Traefik, &p).unwrap_err(), NOT_ROUTING_FORM, "{path}");
            let p = call(&format!("/auth{path}"), Method::POST, &[]);
            assert_eq!(ask(Envoy, &p).unwrap_err(), NOT_ROUTING_FORM, "{path}");
        }
        let p = call("/auth", Method::GET, &[("x-original-uri", "/a/%2fb")]);
        assert_eq!(ask(Nginx, &p).unwrap_err(), "encoded slash in the path");
        // Found under the endpoint only once normalised: not Envoy's own path.
        let config = ForwardAuth {
            path: "/auth".into(),
            style: Envoy,
        };
        let p = call("/auth/orders/7", Method::GET, &[]);
        assert!(original(&config, ("/orders/7", false), &p, PathRules::default()).is_err());
        let p = call("/auth/orders/7?x=/../a", Method::GET, &[]);
        assert!(ask(Envoy, &p).is_ok());
    }

    #[test]
    fn a_fragment_in_the_original_uri_is_refused() {
        use ForwardAuthStyle::*;
        for uri in ["/public#/../admin", "/public#", "/public?a=1#b", "/#"] {
            let p = call("/auth", Method::GET, &[("x-original-uri", uri)]);
            assert_eq!(ask(Nginx, &p).unwrap_err(), FRAGMENT, "{uri}");
            let p = call("/auth", Method::GET, &[("x-forwarded-uri", uri)]);
            assert_eq!(ask(Traefik, &p).unwrap_err(), FRAGMENT, "{uri}");
        }
        let p = call("/auth", Method::GET, &[("x-original-uri", "/public?a=%23")]);
        assert!(ask(Nginx, &p).is_ok());
    }

    #[test]
    fn other_paths_and_unnamed_requests() {
        assert!(under("/auth", "/authority").is_none());
        assert_eq!(under("/auth", "/auth/../x"), Some("/../x"));
        let p = call("/auth", Method::GET, &[]);
        assert!(ask(ForwardAuthStyle::Traefik, &p).is_err());
        let p = call("/auth", Method::GET, &[("x-original-uri", "http://evil/x")]);
        assert!(ask(ForwardAuthStyle::Nginx, &p).is_err());
    }
}
