//! `[cors.*]`: the browser origins, methods and headers a route or token
//! endpoint accepts, and the `cors = "NAME"` references to them.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};
use toml::Spanned;

use super::super::file::FileCors;
use super::super::model::{CorsPolicy, OriginPattern};
use super::super::units::parse_duration;
use super::Checker;

/// What a policy allows when it names no methods: every method a page's
/// `fetch` commonly sends.
const DEFAULT_METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// What a policy allows when it names no request headers: a bearer token
/// and a JSON body.
const DEFAULT_HEADERS: [&str; 2] = ["authorization", "content-type"];

impl Checker<'_> {
    pub(super) fn cors(&mut self, name: &str, c: &FileCors) -> Arc<CorsPolicy> {
        let key = |k: &str| format!("cors.{name}.{k}");
        let mut origins = Vec::new();
        for (i, o) in c.allow_origins.iter().enumerate() {
            match parse_origin(o.get_ref()) {
                Ok(p) => origins.push(p),
                Err(e) => self.problem(o, key(&format!("allow_origins[{i}]")), e),
            }
        }
        if c.allow_credentials && origins.contains(&OriginPattern::Any) {
            self.problem_no_span(
                key("allow_origins"),
                "\"*\" cannot go with allow_credentials = true: any site could act as the user; list the origins",
            );
        }
        let methods = match &c.allow_methods {
            None => DEFAULT_METHODS.to_vec(),
            Some(list) => list
                .iter()
                .filter_map(
                    |m| match m.get_ref().to_ascii_uppercase().parse::<Method>() {
                        Ok(method) => Some(method),
                        Err(_) => {
                            self.problem(
                                m,
                                key("allow_methods"),
                                format!("{:?} is not a method", m.get_ref()),
                            );
                            None
                        }
                    },
                )
                .collect(),
        };
        let allow_headers = match &c.allow_headers {
            None => Some(DEFAULT_HEADERS.map(HeaderName::from_static).to_vec()),
            Some(list) if list.iter().any(|h| h.get_ref() == "*") => None,
            Some(list) => Some(self.header_names(list, &key("allow_headers"))),
        };
        let mut exposed = self.header_names(&c.expose_headers, &key("expose_headers"));
        let www_authenticate = http::header::WWW_AUTHENTICATE;
        let exposes_configured = exposed.iter().any(|name| *name != www_authenticate);
        if !exposed.contains(&www_authenticate) {
            exposed.push(www_authenticate);
        }
        let max_age_value = c
            .max_age
            .as_ref()
            .and_then(|v| match parse_duration(v.get_ref()) {
                Ok(d) => Some(HeaderValue::from(d.as_secs())),
                Err(e) => {
                    self.problem(v, key("max_age"), e);
                    None
                }
            });
        Arc::new(CorsPolicy {
            name: name.to_string(),
            origins,
            methods_value: joined(methods.iter().map(Method::as_str)),
            methods,
            allow_headers,
            credentials: c.allow_credentials,
            expose_value: joined(exposed.iter().map(HeaderName::as_str)),
            exposes_configured,
            max_age_value,
        })
    }

    fn header_names(&mut self, list: &[Spanned<String>], key: &str) -> Vec<HeaderName> {
        list.iter()
            .filter_map(
                |h| match HeaderName::from_bytes(h.get_ref().trim().as_bytes()) {
                    Ok(name) => Some(name),
                    Err(_) => {
                        self.problem(h, key, format!("{:?} is not a header name", h.get_ref()));
                        None
                    }
                },
            )
            .collect()
    }

    /// The policy a `cors = "NAME"` key names.
    pub(super) fn cors_ref(
        &mut self,
        name: &Option<Spanned<String>>,
        policies: &[Arc<CorsPolicy>],
        key: &str,
    ) -> Option<Arc<CorsPolicy>> {
        let name = name.as_ref()?;
        let found = policies.iter().find(|p| &p.name == name.get_ref()).cloned();
        if found.is_none() {
            self.problem(name, key, format!("no [cors.{}] table", name.get_ref()));
        }
        found
    }
}

fn joined<'a>(names: impl Iterator<Item = &'a str>) -> HeaderValue {
    let text = names.collect::<Vec<_>>().join(", ");
    HeaderValue::try_from(text).expect("methods and header names are valid header text")
}

/// `scheme://host[:port]`, `scheme://*.domain[:port]` or `*`, as browsers
/// serialise an origin: no path, no trailing slash.
fn parse_origin(text: &str) -> Result<OriginPattern, String> {
    if text == "*" {
        return Ok(OriginPattern::Any);
    }
    let lower = text.to_ascii_lowercase();
    let Some((scheme, authority)) = lower.split_once("://") else {
        return Err(format!(
            "{text:?}: expected scheme://host[:port], e.g. https://app.example.com"
        ));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(format!("{text:?}: the scheme must be http or https"));
    }
    let host_chars = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    };
    if let Some(suffix) = authority.strip_prefix("*.") {
        if !host_chars(suffix) || !suffix.contains('.') {
            return Err(format!("{text:?}: expected scheme://*.domain.tld"));
        }
        return Ok(OriginPattern::Subdomains {
            scheme: format!("{scheme}://"),
            suffix: format!(".{suffix}"),
        });
    }
    if !host_chars(authority) {
        return Err(format!(
            "{text:?}: an origin has no path, query or wildcard inside it"
        ));
    }
    Ok(OriginPattern::Exact(lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_as_browsers_write_them() {
        assert_eq!(
            parse_origin("HTTPS://App.Example.com"),
            Ok(OriginPattern::Exact("https://app.example.com".into()))
        );
        assert_eq!(
            parse_origin("http://localhost:3000"),
            Ok(OriginPattern::Exact("http://localhost:3000".into()))
        );
        assert_eq!(
            parse_origin("https://*.example.com"),
            Ok(OriginPattern::Subdomains {
                scheme: "https://".into(),
                suffix: ".example.com".into()
            })
        );
        assert_eq!(parse_origin("*"), Ok(OriginPattern::Any));
        for bad in [
            "null",
            "example.com",
            "https://example.com/",
            "https://example.com/app",
            "ftp://example.com",
            "https://*.com",
            "https://a.*.example.com",
            "https://",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad} accepted");
        }
    }
}
