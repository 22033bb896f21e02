//! The request a forward-auth call asks about. Proxies that route traffic
//! themselves ask portero for a decision and name the original request in
//! headers: Traefik (`X-Forwarded-Method`, `-Host`, `-Uri`), nginx
//! `auth_request` (whatever its config sets, conventionally
//! `X-Original-URI` and `X-Original-Method`), or Envoy's HTTP `ext_authz`,
//! which appends the original path to the endpoint's and keeps the method.
//! Every other header (the token, cookies) is the original request's.

use http::header::HOST;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Uri};

const METHODS: [&str; 2] = ["x-forwarded-method", "x-original-method"];
const URIS: [&str; 3] = ["x-forwarded-uri", "x-original-uri", "x-original-url"];
const HOSTS: [&str; 2] = ["x-forwarded-host", "x-original-host"];

/// `None` when `parts` is not a call to the endpoint at `path`; else the
/// original request's head, or why it cannot be made out.
pub fn original(path: &str, parts: &Parts) -> Option<Result<Parts, &'static str>> {
    let rest = parts.uri.path().strip_prefix(path)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(rebuild(rest, parts))
}

fn rebuild(rest: &str, parts: &Parts) -> Result<Parts, &'static str> {
    let header = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| parts.headers.get(*n))
            .map(|v| v.to_str().map(str::trim))
    };
    let method = match header(&METHODS) {
        Some(m) => Method::from_bytes(m.map_err(|_| "bad forwarded method")?.as_bytes())
            .map_err(|_| "bad forwarded method")?,
        // Envoy sends the original method as its own.
        None if !rest.is_empty() => parts.method.clone(),
        None => Method::GET,
    };
    let uri: Uri = match header(&URIS) {
        Some(u) => u.map_err(|_| "bad forwarded URI")?.parse(),
        None if !rest.is_empty() => match parts.uri.query() {
            Some(q) => format!("{rest}?{q}").parse(),
            None => rest.parse(),
        },
        None => return Err("no forwarded URI: send X-Forwarded-Uri or X-Original-URI"),
    }
    .map_err(|_| "bad forwarded URI")?;
    if uri.scheme().is_some() || !uri.path().starts_with('/') {
        return Err("the forwarded URI must be a path");
    }
    let (mut original, ()) = Request::builder()
        .method(method)
        .uri(uri)
        .version(http::Version::HTTP_11)
        .body(())
        .map_err(|_| "bad forwarded request")?
        .into_parts();
    original.headers = parts.headers.clone();
    match header(&HOSTS) {
        Some(h) => {
            let host = HeaderValue::from_str(h.map_err(|_| "bad forwarded host")?)
                .map_err(|_| "bad forwarded host")?;
            original.headers.insert(HOST, host);
        }
        None => {
            if let Some(authority) = parts.uri.authority() {
                let host = HeaderValue::from_str(authority.as_str()).map_err(|_| "bad host")?;
                original.headers.insert(HOST, host);
            }
        }
    }
    Ok(original)
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
        let o = original("/auth", &p).unwrap().unwrap();
        assert_eq!(o.method, Method::DELETE);
        assert_eq!(o.uri, "/orders/7?x=1");
        assert_eq!(o.headers[HOST], "api.example.com");
    }

    #[test]
    fn envoy_appends_the_path_and_keeps_the_method() {
        let p = call("/auth/orders/7?x=1", Method::POST, &[("host", "api")]);
        let o = original("/auth", &p).unwrap().unwrap();
        assert_eq!(o.method, Method::POST);
        assert_eq!(o.uri, "/orders/7?x=1");
        assert_eq!(o.headers[HOST], "api");
    }

    #[test]
    fn other_paths_and_unnamed_requests() {
        let p = call("/authority", Method::GET, &[]);
        assert!(original("/auth", &p).is_none());
        let p = call("/auth", Method::GET, &[]);
        assert!(original("/auth", &p).unwrap().is_err());
        let p = call("/auth", Method::GET, &[("x-original-uri", "http://evil/x")]);
        assert!(original("/auth", &p).unwrap().is_err());
    }
}
