//! Method-override headers: `X-HTTP-Method-Override` and its kin make
//! many frameworks (Flask's documented middleware, Rack, Symfony, ASP.NET
//! Core, Express's `method-override`) run the method they name in place
//! of the request line's. Routing refuses them unless the route takes
//! them (`target::method`), and rules read no method beside one.

use http::{HeaderMap, Method};

use crate::header_name::{param_reads_as, query_names, same_field};

/// Every name a framework reads an override from. Each starts with `x`.
const NAMES: [&str; 3] = [
    "x-http-method-override",
    "x-method-override",
    "x-http-method",
];

/// Whether `name` (a header name, in lower case as `HeaderName` keeps
/// it) is a method-override header in any spelling CGI, WSGI and Rack
/// read as one (`x_http_method_override`).
pub fn is_override(name: &str) -> bool {
    // Most names are passed over at their first byte.
    name.as_bytes().first() == Some(&b'x') && NAMES.iter().any(|o| same_field(name, o))
}

/// The one method the request's override headers name, in whatever
/// spellings: refused when they give more than one value, or a method
/// not in capitals (frameworks upper-case it: `delete` is DELETE, which
/// a route's `DELETE` would not match), or HEAD or CONNECT, whose
/// answers are framed otherwise than the POST the client sent.
pub fn named(headers: &HeaderMap) -> Result<Method, &'static str> {
    let mut values = headers
        .iter()
        .filter(|(name, _)| is_override(name.as_str()))
        .map(|(_, value)| value);
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err("more than one method-override header");
    };
    let method = Method::from_bytes(value.as_bytes())
        .map_err(|_| "a method-override header that names no method")?;
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("a method-override header names a method in lower case");
    }
    if method == Method::HEAD || method == Method::CONNECT {
        return Err("a method-override header names HEAD or CONNECT");
    }
    Ok(method)
}

/// Whether the query names a method the way Rails, Laravel, Symfony and
/// Express's `method-override` read one: a `_method` parameter, in any
/// spelling an upstream reads as that name. Inlined: most requests have
/// no query and pay only that test.
#[inline]
pub fn in_query(query: Option<&str>) -> bool {
    query.is_some_and(names_a_method)
}

/// Only a query that may spell `method` is parsed: in letters of some
/// case, or escaped.
fn names_a_method(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mentions =
        bytes.contains(&b'%') || bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"method"));
    mentions && query_names(query).any(|name| param_reads_as(name, "_method"))
}

/// Removes every override header, in every spelling: once routing has
/// read one, only the method it named goes on.
pub fn remove(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|name| is_override(name.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn every_spelling_of_an_override_header_is_one() {
        for name in [
            "x-http-method-override",
            "x_http_method_override",
            "x-http_method-override",
            "x-method-override",
            "x_method_override",
            "x-http-method",
            "x_http_method",
        ] {
            assert!(is_override(name), "{name}");
        }
        for name in ["x-http-methods", "x-override", "http-method", "method", ""] {
            assert!(!is_override(name), "{name}");
        }
    }

    #[test]
    fn one_method_in_capitals_is_named() {
        let named_by = |pairs: &[(&str, &str)]| named(&headers(pairs));
        assert_eq!(
            named_by(&[("x-http-method-override", "DELETE")]),
            Ok(Method::DELETE)
        );
        assert_eq!(
            named_by(&[("x_method_override", "PATCH")]),
            Ok(Method::PATCH)
        );
        assert_eq!(
            named_by(&[("x-http-method", "PROPFIND")]).map(|m| m.to_string()),
            Ok("PROPFIND".into())
        );
        for refused in [
            &[("x-http-method-override", "delete")][..],
            &[("x-http-method-override", "Delete")],
            &[("x-http-method-override", "")],
            &[("x-http-method-override", "DE LETE")],
            &[("x-http-method-override", "HEAD")],
            &[("x-http-method-override", "CONNECT")],
            &[
                ("x-http-method-override", "DELETE"),
                ("x-http-method-override", "DELETE"),
            ],
            &[
                ("x-http-method-override", "DELETE"),
                ("x_http_method", "PUT"),
            ],
            &[],
        ] {
            assert!(named_by(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn every_spelling_is_removed() {
        let mut map = headers(&[
            ("x-http-method-override", "DELETE"),
            ("x_http_method", "DELETE"),
            ("accept", "*/*"),
        ]);
        remove(&mut map);
        assert_eq!(
            map.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["accept"]
        );
    }
}
