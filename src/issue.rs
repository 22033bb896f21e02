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

use http::StatusCode;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
use crate::credentials::dummy;
use crate::metrics::Metrics;
use crate::store::{Reservation, Store, StoreError};
use crate::user_store::UserStore;

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
    ctx.metrics
        .legacy_requests
        .with_label_values(&[&ctx.issuer.name, named_principal(ctx, req)])
        .inc();
    reply
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
    };
    ctx.metrics
        .token_requests
        .with_label_values(&[&ctx.issuer.name, status_class(reply.status)])
        .inc();
    ctx.metrics
        .legacy_requests
        .with_label_values(&[&ctx.issuer.name, "unknown"])
        .inc();
    reply
}

pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
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

/// How long a login waits for other checks of the same principal (or
/// address) to end when they could use up its budget, and how often it looks.
const BUSY_WAIT: Duration = Duration::from_secs(2);
const BUSY_RETRY: Duration = Duration::from_millis(5);

/// A credential check reserved by [`Issuing::begin_attempt`]. Its place is
/// given back when it is dropped, however the request ended: a client that
/// hangs up mid-check must not keep a principal's budget taken.
#[must_use = "end it with Issuing::end_attempt"]
pub struct Attempt {
    user: String,
    ip: Option<String>,
    /// The principal's failures when the check was reserved.
    failures: u32,
    store: Arc<dyn Store>,
    /// Given back by `end_attempt`; otherwise when dropped.
    released: bool,
}

impl Attempt {
    fn keys(&self) -> Vec<&str> {
        let mut keys = vec![self.user.as_str()];
        keys.extend(self.ip.as_deref());
        keys
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        let mut keys = vec![std::mem::take(&mut self.user)];
        keys.extend(self.ip.take());
        runtime.spawn(async move {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            if let Err(e) = store.release_attempts(&keys).await {
                tracing::warn!(error = %e, "could not release a credential check");
            }
        });
    }
}

/// How a reserved credential check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failed,
    Succeeded,
    /// Answered before the secret was checked (an inactive client, a
    /// missing company), or the check could not run.
    Unchecked,
}

impl From<StoreError> for Denied {
    fn from(e: StoreError) -> Denied {
        tracing::warn!(error = %e, "token endpoint: store unavailable");
        Denied::Unavailable
    }
}

/// Slow hash checks (argon2, bcrypt, PBKDF2, scrypt) run on blocking
/// threads a few at a time, half the cores: a login flood waits its turn
/// rather than taking every core from the proxy, and past
/// [`MAX_WAITING_CHECKS`] waiting a login is refused as unavailable.
struct SlowChecks {
    running: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    /// Set while logins are refused, so a flood logs once.
    refusing: AtomicBool,
}

const MAX_WAITING_CHECKS: usize = 256;

fn slow_checks() -> &'static SlowChecks {
    static CHECKS: OnceLock<SlowChecks> = OnceLock::new();
    CHECKS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SlowChecks {
            running: tokio::sync::Semaphore::new(cores.div_ceil(2)),
            waiting: AtomicUsize::new(0),
            refusing: AtomicBool::new(false),
        }
    })
}

/// One place in the queue of slow checks, given back however the wait ends.
struct Waiting(&'static AtomicUsize);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Denied> {
    let checks = slow_checks();
    let waiting = Waiting(&checks.waiting);
    if checks.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING_CHECKS {
        if !checks.refusing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                waiting = MAX_WAITING_CHECKS,
                "slow credential checks queued to the limit: logins refused as unavailable"
            );
        }
        return Err(Denied::Unavailable);
    }
    checks.refusing.store(false, Ordering::Relaxed);
    let turn = checks
        .running
        .acquire()
        .await
        .map_err(|_| Denied::Unavailable)?;
    drop(waiting);
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        f()
    })
    .await
    .map_err(|_| Denied::Unavailable)
}

impl Issuing<'_> {
    /// The lockout keys of a login and a client address. The login goes in
    /// hashed: any string a client sends makes a record of the same size.
    fn lock_keys(&self, login: &str, client: Option<IpAddr>) -> (String, Option<String>) {
        let name = &self.issuer.name;
        (
            format!("{name}\0user\0{}", refresh_hash(login)),
            client.map(|ip| format!("{name}\0ip\0{ip}")),
        )
    }

    /// Reserves a credential check for `login` from `client`: refused
    /// (`Locked`) while either is cooling down; while its failures plus the
    /// checks already in flight reach its limit, it waits for those to end
    /// (up to `BUSY_WAIT`, then `Locked`), so no burst of concurrent
    /// guesses gets more checks than `max_failures` allows, and concurrent
    /// good logins are served one after another rather than refused.
    /// Every reservation ends with [`Issuing::end_attempt`].
    pub async fn begin_attempt(
        &self,
        login: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Attempt, Denied> {
        let (user, ip) = self.lock_keys(login, client);
        let e = self.endpoint;
        let mut limits = vec![(user.as_str(), e.max_failures)];
        if let Some(ip) = &ip {
            limits.push((ip.as_str(), e.ip_max_failures));
        }
        let cooldown = e.lockout.as_secs() as i64;
        let give_up = tokio::time::Instant::now() + BUSY_WAIT;
        loop {
            match self.store.reserve_attempt(&limits, cooldown, now).await? {
                Reservation::Granted(failures) => {
                    return Ok(Attempt {
                        user: user.clone(),
                        ip: ip.clone(),
                        failures,
                        store: self.store.clone(),
                        released: false,
                    })
                }
                Reservation::Locked => return Err(Denied::Locked),
                Reservation::Busy if tokio::time::Instant::now() >= give_up => {
                    return Err(Denied::Locked)
                }
                Reservation::Busy => tokio::time::sleep(BUSY_RETRY).await,
            }
        }
    }

    /// Ends a reserved check: a failure is counted against the principal
    /// and the client address (locking them at their limits), a success
    /// clears the principal's failures, `Outcome::Unchecked` counts nothing.
    /// Its place is given back afterwards (the failure is counted first).
    pub async fn end_attempt(
        &self,
        mut attempt: Attempt,
        outcome: Outcome,
        now: i64,
    ) -> Result<(), Denied> {
        let recorded = match outcome {
            Outcome::Failed => self.record_failure(&attempt, now).await,
            Outcome::Succeeded if attempt.failures > 0 => self
                .store
                .clear_failures(&attempt.user)
                .await
                .map_err(Denied::from),
            Outcome::Succeeded | Outcome::Unchecked => Ok(()),
        };
        // Marked first: were this cancelled mid-way, a second release from
        // `Drop` could give back another check's place.
        attempt.released = true;
        let released = self.store.release_attempts(&attempt.keys()).await;
        recorded?;
        released.map_err(Denied::from)
    }

    /// The principal `login` names: from the config, else from the issuer's
    /// user store.
    pub async fn principal(&self, login: &str) -> Result<Option<Arc<Principal>>, Denied> {
        if let Some(p) = self.endpoint.principals.get(login) {
            return Ok(Some(p.clone()));
        }
        match self.users {
            None => Ok(None),
            Some(users) => users.find(login).await.map_err(|_| Denied::Unavailable),
        }
    }

    /// Checks `secret` against the principal's hash, or a dummy when there
    /// is no principal, so both take the same time: of the fast kind where
    /// every secret is one, else argon2id (a user store's rows may hold
    /// any format; none is slower).
    pub async fn verify_secret(
        &self,
        principal: Option<&Principal>,
        secret: &str,
    ) -> Result<bool, Denied> {
        let fast_dummy = self.endpoint.dialect.fast_secrets() && self.users.is_none();
        let hash = match principal {
            Some(p) => p.secret.clone(),
            None => dummy(fast_dummy).clone(),
        };
        // A fast hash takes about a microsecond: checked in place. Argon2 takes
        // tens of milliseconds: off the proxy's threads.
        let matches = if hash.is_fast() {
            hash.verify(secret)
        } else {
            let secret = secret.to_string();
            blocking(move || hash.verify(&secret)).await?
        };
        if let (true, Some(p), Some(users)) = (matches, principal, self.users) {
            if users.wants_rehash(p) {
                users.rehash_later(p, secret);
            }
        }
        Ok(matches && principal.is_some())
    }

    /// Counts a failed login against the principal and the client
    /// address, in one write.
    async fn record_failure(&self, attempt: &Attempt, now: i64) -> Result<(), Denied> {
        let e = self.endpoint;
        let mut limits = vec![(attempt.user.as_str(), e.max_failures)];
        if let Some(ip) = &attempt.ip {
            limits.push((ip.as_str(), e.ip_max_failures));
        }
        let cooldown = e.lockout.as_secs() as i64;
        if self.store.record_failures(&limits, cooldown, now).await? {
            self.metrics
                .lockouts
                .with_label_values(&[&self.issuer.name])
                .inc();
        }
        Ok(())
    }

    /// The whole login of the password dialects: lockout, secret, blocked flag.
    pub async fn authenticate(
        &self,
        login: &str,
        secret: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Arc<Principal>, Denied> {
        let attempt = self.begin_attempt(login, client, now).await?;
        let principal = match self.principal(login).await {
            Ok(p) => p,
            Err(d) => {
                self.end_attempt(attempt, Outcome::Unchecked, now).await?;
                return Err(d);
            }
        };
        let verified = self.verify_secret(principal.as_deref(), secret).await;
        let outcome = match verified {
            Ok(true) => Outcome::Succeeded,
            Ok(false) => Outcome::Failed,
            Err(_) => Outcome::Unchecked,
        };
        self.end_attempt(attempt, outcome, now).await?;
        if !verified? {
            return Err(Denied::BadCredentials);
        }
        let principal = principal.expect("verified, so present");
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
        claims: Map<String, Value>,
        now: i64,
        lifetime: Option<Duration>,
    ) -> Result<Minted, Denied> {
        let stamp = Stamp {
            iss: &self.issuer.iss,
            typ: None,
            endpoint: self.endpoint.dialect.name(),
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
        let jti = random_id(16);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_checks_wait_in_a_bounded_queue() {
        // Far more checks at once than may wait: the surplus is refused at
        // once, the rest run a few at a time, none is lost.
        let checks = (0..MAX_WAITING_CHECKS + 200)
            .map(|_| blocking(|| std::thread::sleep(std::time::Duration::from_millis(2))));
        let answers = futures_util::future::join_all(checks).await;
        let refused = answers.iter().filter(|a| a.is_err()).count();
        assert!(refused >= 200 - 2, "{refused} refused");
        assert!(answers.len() - refused >= MAX_WAITING_CHECKS - 2);
    }

    #[test]
    fn refresh_tokens_carry_256_bits() {
        let t = random_id(32);
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 32);
        assert_ne!(refresh_hash(&t), t);
    }
}
