//! The legacy token endpoints: one module per dialect (`dialect/`), each
//! parsing its request shape and rendering its exact responses, with what
//! they share here (JSON field extraction, their dates, their refusals'
//! words). They are adapters: who logs in is the issuer's `identity`,
//! minting and refresh families are `issuer` and `tokens`, which know no
//! dialect. Nothing here speaks HTTP; `proxy.rs` reads the body and writes
//! the [`Reply`].

mod client_envelope;
mod client_flat;
mod login_refresh;
mod project;
mod session;
pub(crate) mod shadow;

pub use crate::identity::{Denied, Reason};
pub use crate::issuer::{IssuerContext, Transport};
pub use crate::tokens::random_id;

use http::StatusCode;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::config::Dialect;
use crate::config::Endpoint;
use crate::identity::MAX_FIELD_LEN;
use crate::metrics::status_class;

/// A complete JSON answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Reply {
    pub fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: body.to_string(),
        }
    }
}

/// What a dialect sees of the request.
pub struct TokenRequest<'a> {
    pub endpoint: Endpoint,
    pub body: &'a [u8],
    /// The request said `Content-Type: application/json`. A body sent as
    /// anything else is refused: a cross-site form may post `text/plain`
    /// without a preflight (login CSRF).
    pub json: bool,
    pub query: Option<&'a str>,
    pub path: &'a str,
    pub client: Option<IpAddr>,
    pub now: DateTime<Utc>,
}

/// Serves one token-endpoint request.
pub async fn handle(ctx: &IssuerContext<'_>, req: &TokenRequest<'_>) -> Reply {
    let reply = match ctx.endpoint {
        None => no_legacy_endpoint(),
        Some(e) => match e.dialect {
            Dialect::Session => session::handle(ctx, e, req).await,
            Dialect::LoginRefresh => login_refresh::handle(ctx, req).await,
            Dialect::Project => project::handle(ctx, e, req).await,
            Dialect::ClientEnvelope => client_envelope::handle(ctx, req).await,
            Dialect::ClientFlat => client_flat::handle(ctx, e, req).await,
        },
    };
    let reason = ctx
        .logins
        .noted()
        .unwrap_or_else(|| Reason::of_status(reply.status));
    count(ctx, reply.status, reason);
    ctx.metrics
        .legacy_requests
        .with_label_values(&[&ctx.config.name, named_principal(ctx, req)])
        .inc();
    reply
}

/// One answer of the issuer's legacy endpoint, by status and reason.
fn count(ctx: &IssuerContext<'_>, status: StatusCode, reason: Reason) {
    ctx.metrics
        .token_requests
        .with_label_values(&[&ctx.config.name, status_class(status), reason.label()])
        .inc();
}

/// The principal a legacy request names, for `portero_legacy_requests_total`:
/// its login when it is configured (the labels stay a bounded set), else
/// `unknown`.
fn named_principal<'a>(ctx: &'a IssuerContext<'_>, req: &TokenRequest<'_>) -> &'a str {
    let Ok(body) = json_object(req) else {
        return "unknown";
    };
    let field = |name| string_field(&body, name).ok();
    let login = match ctx.endpoint.map(|e| e.dialect) {
        Some(Dialect::Session | Dialect::LoginRefresh) => field("username").map(str::to_string),
        Some(Dialect::Project) => field("business")
            .zip(field("proyecto"))
            .map(|(b, p)| crate::config::project_login(b, p)),
        Some(Dialect::ClientEnvelope) => field("clientId").map(str::to_string),
        Some(Dialect::ClientFlat) => field("client_id").map(str::to_string),
        None => None,
    };
    login
        .and_then(|l| ctx.accounts.principals.get(&l))
        .map_or("unknown", |p| p.login.as_str())
}

/// The answer to a body that could not be read.
pub fn transport_error(
    ctx: &IssuerContext<'_>,
    e: Transport,
    path: &str,
    now: DateTime<Utc>,
) -> Reply {
    let reply = match ctx.endpoint.map(|e| e.dialect) {
        Some(Dialect::Session) => session::transport_error(e),
        Some(Dialect::LoginRefresh) => login_refresh::transport_error(e, path, now),
        Some(Dialect::Project) => project::transport_error(e),
        Some(Dialect::ClientEnvelope) => client_envelope::transport_error(e),
        Some(Dialect::ClientFlat) => client_flat::transport_error(e),
        None => no_legacy_endpoint(),
    };
    count(ctx, reply.status, e.reason());
    ctx.metrics
        .legacy_requests
        .with_label_values(&[&ctx.config.name, "unknown"])
        .inc();
    reply
}

/// A standard issuer mounts no legacy route (`config::check::route`);
/// should one ever be asked, it is not there.
fn no_legacy_endpoint() -> Reply {
    Reply::json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": "not_found", "error_description": "no such endpoint"}),
    )
}

// ---------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------

/// Why a body is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all (including invalid UTF-8).
    NotJson,
    /// JSON, but not an object.
    NotObject,
}

/// The request's body as a JSON object. Not JSON as portero takes it: any
/// content type but `application/json`, and an object that names a key
/// twice (parsers disagree on which copy wins).
pub fn json_object(req: &TokenRequest<'_>) -> Result<Map<String, Value>, BodyError> {
    if !req.json {
        return Err(BodyError::NotJson);
    }
    match serde_json::from_slice::<Value>(req.body) {
        Ok(Value::Object(_)) => serde_json::from_slice::<UniqueKeys>(req.body)
            .map(|u| u.0)
            .map_err(|_| BodyError::NotJson),
        Ok(_) => Err(BodyError::NotObject),
        Err(_) => Err(BodyError::NotJson),
    }
}

/// Whether a `Content-Type` value is JSON (`application/json`, any
/// parameters, any case).
pub fn is_json(content_type: Option<&[u8]>) -> bool {
    content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON object whose keys, at the top level, are all different.
struct UniqueKeys(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object without repeated keys")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut m = Map::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    if m.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("key {k:?} repeated")));
                    }
                    m.insert(k, v);
                }
                Ok(UniqueKeys(m))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Why a field is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    Missing,
    Empty,
    NotString,
    /// Longer than [`MAX_FIELD_LEN`].
    TooLong,
}

/// A required, non-empty string field of at most [`MAX_FIELD_LEN`] bytes.
pub fn string_field<'m>(m: &'m Map<String, Value>, name: &str) -> Result<&'m str, FieldError> {
    match m.get(name) {
        None | Some(Value::Null) => Err(FieldError::Missing),
        Some(Value::String(s)) if s.is_empty() => Err(FieldError::Empty),
        Some(Value::String(s)) if s.len() > MAX_FIELD_LEN => Err(FieldError::TooLong),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(FieldError::NotString),
    }
}

/// The Spanish field messages of seeds 000, 002 and 003
/// ("El campo 'clientId' es requerido").
pub fn campo(name: &str, e: FieldError) -> String {
    match e {
        FieldError::Missing => format!("El campo '{name}' es requerido"),
        FieldError::Empty => format!("El campo '{name}' no puede estar vacío"),
        FieldError::NotString => format!("El campo '{name}' debe ser una cadena"),
        FieldError::TooLong => format!("El campo '{name}' es demasiado largo"),
    }
}

/// Status and message for a refused login in the Spanish dialects whose
/// errors are just a message (seeds 002 and 003; docs/dialects.md: 401, 429, 503).
pub fn denied_es(d: Denied) -> (StatusCode, &'static str) {
    match d {
        Denied::BadCredentials | Denied::Blocked => {
            (StatusCode::UNAUTHORIZED, "Credenciales inválidas")
        }
        Denied::Locked => (
            StatusCode::TOO_MANY_REQUESTS,
            "Demasiados intentos fallidos, intente más tarde",
        ),
        Denied::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Servicio no disponible"),
    }
}

/// `YYYY-MM-DD HH:mm:ss` (seeds 000 and 003).
pub fn plain_datetime<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(bytes: &[u8], json: bool) -> Result<Map<String, Value>, BodyError> {
        let req = TokenRequest {
            endpoint: Endpoint::Token,
            body: bytes,
            json,
            query: None,
            path: "/",
            client: None,
            now: Utc::now(),
        };
        json_object(&req)
    }

    #[test]
    fn fields_are_told_apart() {
        let json_object = |b: &[u8]| body(b, true);
        let m = json_object(br#"{"a":"x","b":"","c":3,"d":null}"#).unwrap();
        assert_eq!(string_field(&m, "a"), Ok("x"));
        assert_eq!(string_field(&m, "b"), Err(FieldError::Empty));
        assert_eq!(string_field(&m, "c"), Err(FieldError::NotString));
        assert_eq!(string_field(&m, "d"), Err(FieldError::Missing));
        assert_eq!(string_field(&m, "e"), Err(FieldError::Missing));
        let long = format!(r#"{{"a":"{}","b":"{}"}}"#, "x".repeat(512), "x".repeat(513));
        let m = json_object(long.as_bytes()).unwrap();
        assert!(string_field(&m, "a").is_ok());
        assert_eq!(string_field(&m, "b"), Err(FieldError::TooLong));
        assert_eq!(json_object(b"[1]").unwrap_err(), BodyError::NotObject);
        assert_eq!(json_object(b"{nope").unwrap_err(), BodyError::NotJson);
        assert_eq!(
            json_object(b"{\"a\":\"\xff\"}").unwrap_err(),
            BodyError::NotJson
        );
    }

    #[test]
    fn only_json_with_unique_keys_is_json() {
        let login = br#"{"username":"admin","password":"x"}"#;
        assert!(body(login, true).is_ok());
        assert_eq!(body(login, false).unwrap_err(), BodyError::NotJson);
        let repeated = br#"{"username":"admin","password":"x","username":"root"}"#;
        assert_eq!(body(repeated, true).unwrap_err(), BodyError::NotJson);
        // Repeats below the top level are the value's own business.
        assert!(body(br#"{"a":{"k":1,"k":2}}"#, true).is_ok());
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("application/jsonx", false),
        ] {
            assert_eq!(is_json(Some(value.as_bytes())), json, "{value}");
        }
        assert!(!is_json(None));
    }
}
