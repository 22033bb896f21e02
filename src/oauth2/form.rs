//! Request bodies: `application/x-www-form-urlencoded` (RFC 6749 §3.2),
//! each parameter at most once (an empty copy counts: `a=x&a=` is refused,
//! not read as `a=x`), an empty one otherwise as if it were not sent.

use std::collections::HashMap;

use super::Error;
use crate::identity::MAX_FIELD_LEN;

/// The longest `client_assertion` read (a service-account token is a
/// kilobyte or two).
pub const MAX_ASSERTION: usize = 16 * 1024;

/// Whether a `Content-Type` value is a form (any parameters, any case).
pub fn is_form(content_type: Option<&[u8]>) -> bool {
    content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// A request's parameters; one sent empty is there, without a value.
#[derive(Debug, Default)]
pub struct Form(HashMap<String, Option<String>>);

impl Form {
    /// The parameters of a form body; anything else is `invalid_request`.
    pub fn parse(body: &[u8], is_form: bool) -> Result<Form, Error> {
        if !is_form {
            return Err(Error::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        if std::str::from_utf8(body).is_err() {
            return Err(Error::invalid_request("the body is not UTF-8"));
        }
        // Every name, empty or not: RFC 6749 §3.2 "MUST NOT be included
        // more than once" holds for a copy with no value too.
        let mut params: HashMap<String, Option<String>> = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            // An assertion may carry a certificate chain in its header.
            let limit = match name.as_ref() {
                // ...a passkey's answer and its ceremony's state, a
                // kilobyte or a few.
                "client_assertion" | "passkey" | "ceremony" => MAX_ASSERTION,
                _ => MAX_FIELD_LEN * 8,
            };
            if value.len() > limit {
                return Err(Error::invalid_request(format!("{name} is too long")));
            }
            let value = (!value.is_empty()).then(|| value.into_owned());
            if params.insert(name.to_string(), value).is_some() {
                return Err(Error::invalid_request(format!(
                    "{name} is sent more than once"
                )));
            }
        }
        Ok(Form(params))
    }

    /// The parameter's value; `None` when it is absent or empty (RFC 6749
    /// §3.1: "Parameters sent without a value MUST be treated as if they
    /// were omitted").
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.as_deref()
    }

    /// Whether the parameter was sent at all, even empty.
    pub fn sent(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A form of `pairs`, each with a value.
    pub fn of(pairs: impl IntoIterator<Item = (String, String)>) -> Form {
        Form(pairs.into_iter().map(|(k, v)| (k, Some(v))).collect())
    }

    /// Its parameters that have a value, but those named in `leave_out`.
    pub fn pairs_but(&self, leave_out: &[&str]) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| !leave_out.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        pairs.sort();
        pairs
    }

    /// A parameter the endpoint cannot do without.
    pub fn required(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| Error::invalid_request(format!("{name} is missing")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_read_strictly() {
        let f = Form::parse(b"grant_type=client_credentials&scope=a+b&x=", true).unwrap();
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.get("scope"), Some("a b"));
        assert_eq!(f.get("x"), None, "an empty parameter is as if not sent");
        let twice = Form::parse(b"scope=a&scope=b", true).unwrap_err();
        assert_eq!(twice.code, "invalid_request");
        for repeated in [&b"a=x&a="[..], b"a=&a=x", b"a=&a=", b"a&a=x"] {
            assert!(Form::parse(repeated, true).is_err(), "{repeated:?}");
        }
        assert!(Form::parse(b"{\"grant_type\":\"x\"}", false).is_err());
        assert!(Form::parse(b"a=\xff", true).is_err());
        assert!(is_form(Some(
            b"Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        )));
        assert!(!is_form(Some(b"application/json")));
        assert!(!is_form(None));
    }
}
