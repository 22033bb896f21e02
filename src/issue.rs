//! The token endpoints: one module per dialect (`issue/`), each parsing its
//! request shape and rendering its exact responses, on top of the machinery
//! here: JSON field extraction, credential checks with lockout, minting,
//! refresh tokens. Nothing here speaks HTTP; `proxy.rs` reads the body and
//! writes the [`Reply`].

mod client_envelope;
mod client_flat;
mod login_refresh;
mod project;
mod session;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::keys::KeySet;
use crate::auth::revocation::Revocations;
use crate::config::{Endpoint, Issuer, TokenEndpoint};
use crate::credentials::{dummy, Principal};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// The five token-endpoint dialects of `../shared/seeds/` (DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Session,
    LoginRefresh,
    Project,
    ClientEnvelope,
    ClientFlat,
}

impl Dialect {
    pub fn parse(s: &str) -> Option<Dialect> {
        Some(match s {
            "session" => Self::Session,
            "login-refresh" => Self::LoginRefresh,
            "project" => Self::Project,
            "client-envelope" => Self::ClientEnvelope,
            "client-flat" => Self::ClientFlat,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::LoginRefresh => "login-refresh",
            Self::Project => "project",
            Self::ClientEnvelope => "client-envelope",
            Self::ClientFlat => "client-flat",
        }
    }

    pub fn default_path(self) -> &'static str {
        match self {
            Self::Session => "/api/Session/GetToken",
            Self::LoginRefresh | Self::ClientEnvelope => "/api/auth/token",
            Self::Project => "/auth",
            Self::ClientFlat => "/api/v1/auth",
        }
    }

    pub fn login_fields(self) -> &'static str {
        match self {
            Self::Session | Self::LoginRefresh => "username",
            Self::Project => "business and proyecto",
            Self::ClientEnvelope | Self::ClientFlat => "client_id",
        }
    }

    /// Client secrets are high-entropy: their dummy is the fast hash.
    fn fast_secrets(self) -> bool {
        matches!(self, Self::ClientEnvelope | Self::ClientFlat)
    }
}

/// A complete JSON answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: body.to_string(),
        }
    }
}

/// Why a body could not be read; every dialect answers it in its own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    TooLarge,
    Timeout,
}

/// What a dialect sees of the request.
pub struct TokenRequest<'a> {
    pub endpoint: Endpoint,
    pub body: &'a [u8],
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
}

/// Serves one token-endpoint request.
pub async fn handle(ctx: &Issuing<'_>, req: &TokenRequest<'_>) -> Reply {
    let reply = match ctx.endpoint.dialect {
        Dialect::Session => session::handle(ctx, req).await,
        Dialect::LoginRefresh => login_refresh::handle(ctx, req).await,
        Dialect::Project => project::handle(ctx, req).await,
        Dialect::ClientEnvelope => client_envelope::handle(ctx, req).await,
        Dialect::ClientFlat => client_flat::handle(ctx, req).await,
    };
    ctx.metrics
        .token_requests
        .with_label_values(&[&ctx.issuer.name, status_class(reply.status)])
        .inc();
    reply
}

/// The answer to a body that could not be read.
pub fn transport_error(ctx: &Issuing<'_>, e: Transport, path: &str, now: DateTime<Utc>) -> Reply {
    let reply = match ctx.endpoint.dialect {
        Dialect::Session => session::transport_error(e),
        Dialect::LoginRefresh => login_refresh::transport_error(e, path, now),
        Dialect::Project => project::transport_error(e),
        Dialect::ClientEnvelope => client_envelope::transport_error(e),
        Dialect::ClientFlat => client_flat::transport_error(e),
    };
    ctx.metrics
        .token_requests
        .with_label_values(&[&ctx.issuer.name, status_class(reply.status)])
        .inc();
    reply
}

fn status_class(status: u16) -> &'static str {
    match status {
        200 => "200",
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

pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, BodyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(BodyError::NotObject),
        Err(_) => Err(BodyError::NotJson),
    }
}

/// Why a field is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    Missing,
    Empty,
    NotString,
}

/// A required, non-empty string field.
pub fn string_field<'m>(m: &'m Map<String, Value>, name: &str) -> Result<&'m str, FieldError> {
    match m.get(name) {
        None | Some(Value::Null) => Err(FieldError::Missing),
        Some(Value::String(s)) if s.is_empty() => Err(FieldError::Empty),
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
    }
}

/// Status and message for a refused login in the Spanish dialects whose
/// errors are just a message (seeds 002 and 003; DESIGN.md: 401, 429, 503).
pub fn denied_es(d: Denied) -> (u16, &'static str) {
    match d {
        Denied::BadCredentials | Denied::Blocked => (401, "Credenciales inválidas"),
        Denied::Locked => (429, "Demasiados intentos fallidos, intente más tarde"),
        Denied::Unavailable => (503, "Servicio no disponible"),
    }
}

/// `YYYY-MM-DD HH:mm:ss` (seeds 000 and 003).
pub fn plain_datetime<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

// ---------------------------------------------------------------------------
// Credentials and lockout
// ---------------------------------------------------------------------------

/// Why a login did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Too many failures for this principal or client address: cooling down.
    Locked,
    BadCredentials,
    /// Flagged blocked in the credential store (right password).
    Blocked,
    /// The store could not be read or written.
    Unavailable,
}

impl From<StoreError> for Denied {
    fn from(e: StoreError) -> Denied {
        tracing::warn!(error = %e, "token endpoint: store unavailable");
        Denied::Unavailable
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Denied> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Denied::Unavailable)
}

impl Issuing<'_> {
    fn lock_keys(&self, login: &str, client: Option<IpAddr>) -> (String, Option<String>) {
        let name = &self.issuer.name;
        (
            format!("{name}\0user\0{login}"),
            client.map(|ip| format!("{name}\0ip\0{ip}")),
        )
    }

    /// Refuses a login whose principal or client address is cooling down;
    /// otherwise returns the principal's count of recent failures.
    pub async fn check_lockout(
        &self,
        login: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<u32, Denied> {
        let (user, ip) = self.lock_keys(login, client);
        let u = self.store.failures(&user).await?;
        let i = match ip {
            Some(k) => self.store.failures(&k).await?,
            None => Default::default(),
        };
        if u.locked_until > now || i.locked_until > now {
            return Err(Denied::Locked);
        }
        Ok(u.count)
    }

    /// Checks `secret` against the principal's hash, or a dummy of the same
    /// kind when there is no principal, so both take the same time.
    pub async fn verify_secret(
        &self,
        principal: Option<&Principal>,
        secret: &str,
    ) -> Result<bool, Denied> {
        let hash = match principal {
            Some(p) => p.secret.clone(),
            None => dummy(self.endpoint.dialect.fast_secrets()).clone(),
        };
        // A fast hash takes about a microsecond: checked in place. Argon2 takes
        // tens of milliseconds: off the proxy's threads.
        let matches = if hash.is_fast() {
            hash.verify(secret)
        } else {
            let secret = secret.to_string();
            blocking(move || hash.verify(&secret)).await?
        };
        Ok(matches && principal.is_some())
    }

    /// Counts a failed login against the principal and the client address.
    pub async fn record_failure(
        &self,
        login: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<(), Denied> {
        let (user, ip) = self.lock_keys(login, client);
        let (e, store) = (self.endpoint, self.store);
        let cooldown = e.lockout.as_secs() as i64;
        let u = store
            .record_failure(&user, e.max_failures, cooldown, now)
            .await?;
        let i = match ip {
            Some(k) => {
                store
                    .record_failure(&k, e.ip_max_failures, cooldown, now)
                    .await?
            }
            None => Default::default(),
        };
        let locked = u.locked_until > now || i.locked_until > now;
        if locked {
            self.metrics
                .lockouts
                .with_label_values(&[&self.issuer.name])
                .inc();
        }
        Ok(())
    }

    /// Clears the principal's failures; `failures` is what `check_lockout`
    /// saw, so a login with none costs no write.
    pub async fn record_success(
        &self,
        login: &str,
        client: Option<IpAddr>,
        failures: u32,
    ) -> Result<(), Denied> {
        if failures == 0 {
            return Ok(());
        }
        let (user, _) = self.lock_keys(login, client);
        self.store.clear_failures(&user).await?;
        Ok(())
    }

    /// The whole login of the password dialects: lockout, secret, blocked flag.
    pub async fn authenticate(
        &self,
        login: &str,
        secret: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<&Principal, Denied> {
        let failures = self.check_lockout(login, client, now).await?;
        let principal = self.endpoint.principals.get(login);
        if !self.verify_secret(principal, secret).await? {
            self.record_failure(login, client, now).await?;
            return Err(Denied::BadCredentials);
        }
        let principal = principal.expect("verified, so present");
        self.record_success(login, client, failures).await?;
        if principal.blocked {
            return Err(Denied::Blocked);
        }
        if !principal.active {
            return Err(Denied::BadCredentials);
        }
        Ok(principal)
    }

    // -----------------------------------------------------------------------
    // Minting
    // -----------------------------------------------------------------------

    /// Signs a token for `sub` with the standard claims plus `claims`;
    /// `lifetime: None` mints one without `exp`.
    pub fn mint(
        &self,
        sub: &str,
        mut claims: Map<String, Value>,
        now: i64,
        lifetime: Option<Duration>,
    ) -> Result<Minted, Denied> {
        let jti = random_id(16);
        let exp = lifetime.map(|l| now + l.as_secs() as i64);
        claims.insert("iss".into(), Value::String(self.issuer.iss.clone()));
        claims.insert("sub".into(), Value::String(sub.to_string()));
        claims.insert("iat".into(), now.into());
        if let Some(exp) = exp {
            claims.insert("exp".into(), exp.into());
        }
        claims.insert("jti".into(), Value::String(jti.clone()));
        let token = self
            .keys
            .sign(self.index, &Value::Object(claims))
            .map_err(|e| {
                tracing::error!(issuer = %self.issuer.name, error = %e, "cannot sign");
                Denied::Unavailable
            })?;
        self.metrics
            .tokens_issued
            .with_label_values(&[&self.issuer.name, self.endpoint.dialect.name()])
            .inc();
        Ok(Minted { token, jti, exp })
    }
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

    #[test]
    fn fields_are_told_apart() {
        let m = json_object(br#"{"a":"x","b":"","c":3,"d":null}"#).unwrap();
        assert_eq!(string_field(&m, "a"), Ok("x"));
        assert_eq!(string_field(&m, "b"), Err(FieldError::Empty));
        assert_eq!(string_field(&m, "c"), Err(FieldError::NotString));
        assert_eq!(string_field(&m, "d"), Err(FieldError::Missing));
        assert_eq!(string_field(&m, "e"), Err(FieldError::Missing));
        assert_eq!(json_object(b"[1]").unwrap_err(), BodyError::NotObject);
        assert_eq!(json_object(b"{nope").unwrap_err(), BodyError::NotJson);
        assert_eq!(
            json_object(b"{\"a\":\"\xff\"}").unwrap_err(),
            BodyError::NotJson
        );
    }

    #[test]
    fn refresh_tokens_carry_256_bits() {
        let t = random_id(32);
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 32);
        assert_ne!(refresh_hash(&t), t);
    }
}
