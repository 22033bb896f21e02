//! The token endpoints: one module per dialect (`issue/`), each parsing its
//! request shape and rendering its exact responses, on top of the machinery
//! here: JSON field extraction, credential checks with lockout
//! (`issue/credential_check.rs`), minting,
//! refresh tokens. Nothing here speaks HTTP; `proxy.rs` reads the body and
//! writes the [`Reply`].

mod client_envelope;
mod client_flat;
mod credential_check;
mod lockout;
mod login_refresh;
mod project;
mod reason;
pub mod refresh_family;
mod session;

pub use credential_check::Denied;
pub use lockout::{Attempt, Kind, Outcome};
pub use reason::Reason;

use http::StatusCode;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::keys::KeySet;
use crate::auth::revocation::Revocations;
use crate::config::{Dialect, Principal};
use crate::config::{Endpoint, Issuer, TokenEndpoint};
use crate::metrics::Metrics;
use crate::principals::UserStore;
use crate::store::Store;

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

/// Why a request was not read; every dialect answers it in its own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    TooLarge,
    Timeout,
    /// The client is over the endpoint's `rate_limit`.
    RateLimited,
    /// The service answering for the endpoint did not (a legacy service
    /// that is primary, `shadow`).
    Unavailable,
}

impl Transport {
    pub fn reason(self) -> Reason {
        match self {
            Transport::TooLarge => Reason::TooLarge,
            Transport::Timeout => Reason::Timeout,
            Transport::RateLimited => Reason::RateLimited,
            Transport::Unavailable => Reason::Unavailable,
        }
    }
}

/// The `sub` of the tokens a dialect mints for `p`.
pub fn subject(dialect: Dialect, p: &Principal) -> String {
    match dialect {
        Dialect::LoginRefresh => login_refresh::subject(p),
        _ => p.login.clone(),
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

/// One issuer's token endpoint with everything it needs to answer.
pub struct Issuing<'a> {
    pub index: usize,
    pub issuer: &'a Issuer,
    pub endpoint: &'a TokenEndpoint,
    pub keys: &'a KeySet,
    pub store: &'a Arc<dyn Store>,
    pub revocations: &'a Revocations,
    pub metrics: &'a Metrics,
    /// Where principals not in the config are looked up, if anywhere.
    pub users: Option<&'a Arc<UserStore>>,
    /// Why this request's login was refused, noted where it was decided
    /// (`Issuing::refuse`): its metrics' `reason`.
    pub refused: OnceLock<Reason>,
}

/// Serves one token-endpoint request.
pub async fn handle(ctx: &Issuing<'_>, req: &TokenRequest<'_>) -> Reply {
    let reply = match ctx.endpoint.dialect {
        Dialect::Session => session::handle(ctx, req).await,
        Dialect::LoginRefresh => login_refresh::handle(ctx, req).await,
        Dialect::Project => project::handle(ctx, req).await,
        Dialect::ClientEnvelope => client_envelope::handle(ctx, req).await,
        Dialect::ClientFlat => client_flat::handle(ctx, req).await,
        Dialect::Standard => no_legacy_endpoint(),
    };
    let reason = ctx
        .noted()
        .unwrap_or_else(|| Reason::of_status(reply.status));
    count(ctx, reply.status, reason);
    ctx.metrics
        .legacy_requests
        .with_label_values(&[&ctx.issuer.name, named_principal(ctx, req)])
        .inc();
    reply
}

/// One answer of the issuer's legacy endpoint, by status and reason.
fn count(ctx: &Issuing<'_>, status: StatusCode, reason: Reason) {
    ctx.metrics
        .token_requests
        .with_label_values(&[&ctx.issuer.name, status_class(status), reason.label()])
        .inc();
}

/// The principal a legacy request names, for `portero_legacy_requests_total`:
/// its login when it is configured (the labels stay a bounded set), else
/// `unknown`.
fn named_principal<'a>(ctx: &'a Issuing<'_>, req: &TokenRequest<'_>) -> &'a str {
    let Ok(body) = json_object(req) else {
        return "unknown";
    };
    let field = |name| string_field(&body, name).ok();
    let login = match ctx.endpoint.dialect {
        Dialect::Session | Dialect::LoginRefresh => field("username").map(str::to_string),
        Dialect::Project => field("business")
            .zip(field("proyecto"))
            .map(|(b, p)| crate::config::project_login(b, p)),
        Dialect::ClientEnvelope => field("clientId").map(str::to_string),
        Dialect::ClientFlat => field("client_id").map(str::to_string),
        Dialect::Standard => None,
    };
    login
        .and_then(|l| ctx.endpoint.principals.get(&l))
        .map_or("unknown", |p| p.login.as_str())
}

/// The answer to a body that could not be read.
pub fn transport_error(ctx: &Issuing<'_>, e: Transport, path: &str, now: DateTime<Utc>) -> Reply {
    let reply = match ctx.endpoint.dialect {
        Dialect::Session => session::transport_error(e),
        Dialect::LoginRefresh => login_refresh::transport_error(e, path, now),
        Dialect::Project => project::transport_error(e),
        Dialect::ClientEnvelope => client_envelope::transport_error(e),
        Dialect::ClientFlat => client_flat::transport_error(e),
        Dialect::Standard => no_legacy_endpoint(),
    };
    count(ctx, reply.status, e.reason());
    ctx.metrics
        .legacy_requests
        .with_label_values(&[&ctx.issuer.name, "unknown"])
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

pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        // The authorization endpoint's and the sign-in form's redirects.
        303 => "303",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
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

/// The longest login field, in bytes: every principal, secret and refresh
/// token fits, and no client can make a lockout record or a hash input of
/// any size it likes.
pub const MAX_FIELD_LEN: usize = 512;

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

impl Issuing<'_> {
    // -----------------------------------------------------------------------
    // Minting
    // -----------------------------------------------------------------------

    /// Signs a token for `sub` with the standard claims plus `claims`;
    /// `lifetime: None` mints one without `exp`.
    pub fn mint(
        &self,
        sub: &str,
        claims: Map<String, Value>,
        now: i64,
        lifetime: Option<Duration>,
    ) -> Result<Minted, Denied> {
        let stamp = Stamp {
            iss: &self.issuer.iss,
            typ: None,
            endpoint: self.endpoint.dialect.name(),
            jti: None,
        };
        self.mint_with(stamp, sub, claims, now, lifetime)
    }

    /// [`Issuing::mint`] as `stamp` says: the OAuth 2.0 endpoints' tokens
    /// carry their issuer identifier and `typ: at+jwt` (RFC 9068).
    pub fn mint_with(
        &self,
        stamp: Stamp<'_>,
        sub: &str,
        mut claims: Map<String, Value>,
        now: i64,
        lifetime: Option<Duration>,
    ) -> Result<Minted, Denied> {
        let jti = stamp.jti.map_or_else(|| random_id(16), str::to_string);
        let exp = lifetime.map(|l| now + l.as_secs() as i64);
        claims.insert("iss".into(), Value::String(stamp.iss.to_string()));
        claims.insert("sub".into(), Value::String(sub.to_string()));
        claims.insert("iat".into(), now.into());
        if let Some(exp) = exp {
            claims.insert("exp".into(), exp.into());
        }
        claims.insert("jti".into(), Value::String(jti.clone()));
        let token = self
            .keys
            .sign(self.index, &Value::Object(claims), stamp.typ)
            .map_err(|e| {
                tracing::error!(issuer = %self.issuer.name, error = %e, "cannot sign");
                Denied::Unavailable
            })?;
        self.metrics
            .tokens_issued
            .with_label_values(&[&self.issuer.name, stamp.endpoint])
            .inc();
        Ok(Minted { token, jti, exp })
    }
}

/// Who a minted token says issued it, and how it is counted.
pub struct Stamp<'a> {
    pub iss: &'a str,
    /// The JOSE header's `typ`; none for the dialects' tokens.
    pub typ: Option<&'static str>,
    /// The `dialect` label of `portero_tokens_issued_total`.
    pub endpoint: &'static str,
    /// The token's `jti`, when chosen beforehand (an authorization code's
    /// access token, revoked if the code is replayed); else a random one.
    pub jti: Option<&'a str>,
}

pub struct Minted {
    pub token: String,
    pub jti: String,
    pub exp: Option<i64>,
}

/// `n` random bytes, base64url: `random_id(32)` is a 256-bit refresh token.
pub fn random_id(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Refresh tokens are stored under this hash, never as themselves.
pub fn refresh_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
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

    #[test]
    fn refresh_tokens_carry_256_bits() {
        let t = random_id(32);
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 32);
        assert_ne!(refresh_hash(&t), t);
    }
}
