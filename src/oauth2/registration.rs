//! Dynamic client registration (RFC 7591), off unless the issuer opens it:
//! `open` takes anyone's public client with https or loopback redirect
//! URIs; `token` takes whoever holds the initial access token. Registered
//! clients are public (PKCE, `token_endpoint_auth_method: none`), kept in
//! the store (so every instance knows them), and forgotten when unused for
//! the issuer's `registered_client_ttl`. A registered client never skips
//! the sign-in page: the user confirms it even with a sign-on session.
//! It may ask that its token requests carry a DPoP proof
//! (`dpop_bound_access_tokens`, RFC 9449 §5.2) and that its authorization
//! requests be pushed first (`require_pushed_authorization_requests`, RFC
//! 9126 §6), as a configured client may.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use super::mint::OFFLINE_ACCESS;
use super::{Answer, Endpoints, Error, Request};
use crate::config::{ClientProfile, Principal, Registration};
use crate::store::RegisteredClient;
use crate::tokens::random_id;

/// The most redirect URIs one client may register, and their length.
const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_LEN: usize = 512;

/// The most live registered clients an issuer keeps: registration stops
/// there until some expire or are deleted.
const MAX_CLIENTS: usize = 10_000;

pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Result<Answer, Error> {
    match &ctx.settings.registration {
        Registration::Off => {
            return Err(Error::new(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "no such endpoint",
            ))
        }
        Registration::Token { env } => initial_access_token(req, env)?,
        Registration::Open { per_minute } => admitted(ctx, req, *per_minute).await?,
    }
    let metadata: Value = serde_json::from_slice(req.body)
        .map_err(|e| invalid_metadata(format!("the body is not JSON: {e}")))?;
    if metadata.is_object() && names_a_member_twice(req.body) {
        return Err(invalid_metadata("a member is named twice"));
    }
    let client = read(ctx, req, &metadata)?;
    let store = ctx.issuer.store;
    let held = store
        .registered_clients(Some(&ctx.issuer.config.name))
        .await
        .map_err(|_| Error::unavailable())?;
    if held.len() >= MAX_CLIENTS {
        tracing::warn!(target: "portero::oauth2", issuer = %ctx.issuer.config.name, "registration refused: the issuer holds {MAX_CLIENTS} registered clients");
        return Err(Error::unavailable());
    }
    ctx.issuer
        .store
        .put_client(&client)
        .await
        .map_err(|_| Error::unavailable())?;
    tracing::info!(
        target: "portero::oauth2",
        issuer = %ctx.issuer.config.name,
        client_id = %client.client_id,
        "a client registered"
    );
    let mut body = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if let Some(name) = &client.client_name {
        body["client_name"] = json!(name);
    }
    if !client.scope.is_empty() {
        body["scope"] = json!(client.scope);
    }
    if client.dpop_bound_access_tokens {
        body["dpop_bound_access_tokens"] = json!(true);
    }
    if client.require_pushed_authorization_requests {
        body["require_pushed_authorization_requests"] = json!(true);
    }
    Ok(Answer::json(StatusCode::CREATED, body))
}

/// Open registration, at most `per_minute` from one address: counted in
/// the shared store where there is one (every instance's registrations
/// together), else by this process.
async fn admitted(ctx: &Endpoints<'_>, req: &Request<'_>, per_minute: u32) -> Result<(), Error> {
    let ip = req.client.map_or_else(String::new, |ip| ip.to_string());
    let key = format!("oauth2-register:{}:{ip}", ctx.issuer.config.name);
    let emission = std::time::Duration::from_secs(60) / per_minute;
    let shared = ctx
        .issuer
        .store
        .take_rate(&key, emission, f64::from(per_minute))
        .await;
    let admitted = match shared {
        Ok(Some(rate)) => rate.admitted,
        Ok(None) | Err(_) => local_bucket(&key, per_minute),
    };
    match admitted {
        true => Ok(()),
        false => Err(Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
            "too many registrations from this address; try again later",
        )),
    }
}

/// This process's count of registrations per key, as the shared store
/// counts them (GCRA): one registration's room comes back every
/// `60 s / per_minute`, and a burst is at most `per_minute`, whatever
/// minute it falls in.
fn local_bucket(key: &str, per_minute: u32) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};
    static NEXT_FREE: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    let now = Instant::now();
    let emission = Duration::from_secs(60) / per_minute;
    let burst = emission * per_minute;
    let mut buckets = NEXT_FREE
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned");
    buckets.retain(|_, free| *free > now);
    let free = buckets.get(key).copied().unwrap_or(now).max(now);
    if free + emission > now + burst {
        return false;
    }
    buckets.insert(key.to_string(), free + emission);
    true
}

/// RFC 7591 §3: `Authorization: Bearer <initial access token>`.
fn initial_access_token(req: &Request<'_>, env: &str) -> Result<(), Error> {
    use subtle::ConstantTimeEq;
    let expected = std::env::var(env).unwrap_or_default();
    let sent = req
        .authorization
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if expected.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        let mut e = Error::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "registration needs the initial access token",
        );
        e.basic_challenge = false;
        return Err(e);
    }
    Ok(())
}

pub(super) fn invalid_metadata(description: impl Into<String>) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        description,
    )
}

/// The client the metadata describes, or why it cannot be registered.
fn read(ctx: &Endpoints<'_>, req: &Request<'_>, m: &Value) -> Result<RegisteredClient, Error> {
    let object = m
        .as_object()
        .ok_or_else(|| invalid_metadata("the metadata must be a JSON object"))?;
    let redirect_uris = redirect_uris(object)?;
    let grant_types = grant_types(object)?;
    match object.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => {}
        Some(Value::String(none)) if none == "none" => {}
        Some(other) => {
            return Err(invalid_metadata(format!(
                "token_endpoint_auth_method {other}: a registered client is public (none)"
            )))
        }
    }
    let ttl = ctx.settings.registered_client_ttl.as_secs() as i64;
    let scope = scope(ctx, object, &grant_types)?;
    Ok(RegisteredClient {
        issuer: ctx.issuer.config.name.clone(),
        client_id: format!("reg-{}", random_id(16)),
        client_name: client_name(object)?,
        redirect_uris,
        grant_types,
        scope,
        created: req.now,
        last_used: req.now,
        expires_at: req.now + ttl,
        registered_from: req.client.map(|ip| ip.to_string()),
        dpop_bound_access_tokens: flag(object, "dpop_bound_access_tokens")?,
        require_pushed_authorization_requests: flag(
            object,
            "require_pushed_authorization_requests",
        )?,
    })
}

pub(super) type Metadata = serde_json::Map<String, Value>;

/// Whether a JSON object (read already) names a member twice, at any
/// depth: which copy counts is then the last parser's to read it say
/// (serde keeps the last), so it is refused, as in a token.
pub(super) fn names_a_member_twice(json: &[u8]) -> bool {
    crate::claims::Claims::parse(json.to_vec()).is_err()
}

/// A member that is true or false, false when not sent.
pub(super) fn flag(object: &Metadata, name: &str) -> Result<bool, Error> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(set)) => Ok(*set),
        Some(_) => Err(invalid_metadata(format!("{name} must be true or false"))),
    }
}

/// A member that is a list of strings, if sent.
fn strings(object: &Metadata, name: &str) -> Result<Option<Vec<String>>, Error> {
    let not_strings = || invalid_metadata(format!("{name} must be a list of strings"));
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(not_strings))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(not_strings()),
    }
}

fn invalid_redirect_uri(description: impl Into<String>) -> Error {
    Error::new(StatusCode::BAD_REQUEST, "invalid_redirect_uri", description)
}

/// One to ten redirect URIs, each short, https or loopback http.
pub(super) fn redirect_uris(object: &Metadata) -> Result<Vec<String>, Error> {
    let uris = strings(object, "redirect_uris")?.unwrap_or_default();
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err(invalid_redirect_uri(format!(
            "one to {MAX_REDIRECT_URIS} redirect_uris"
        )));
    }
    for uri in &uris {
        if uri.len() > MAX_URI_LEN {
            return Err(invalid_redirect_uri(format!(
                "a redirect URI is at most {MAX_URI_LEN} bytes"
            )));
        }
        if let Some(problem) = redirect_problem(uri) {
            return Err(invalid_redirect_uri(problem));
        }
    }
    Ok(uris)
}

/// The code and its refresh tokens only; `response_types` code only.
pub(super) fn grant_types(object: &Metadata) -> Result<Vec<String>, Error> {
    let grants =
        strings(object, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    // An empty list would read as "any grant" (`ClientProfile::may_use`).
    if grants.is_empty() {
        return Err(invalid_metadata(
            "grant_types: authorization_code, and refresh_token for refresh tokens",
        ));
    }
    if grants
        .iter()
        .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err(invalid_metadata(
            "a registered client may use authorization_code and refresh_token only",
        ));
    }
    if let Some(types) = strings(object, "response_types")? {
        if types.iter().any(|t| t != "code") {
            return Err(invalid_metadata("response_types: code only"));
        }
    }
    Ok(grants)
}

/// A short name without control characters, shown as the client's own claim.
pub(super) fn client_name(object: &Metadata) -> Result<Option<String>, Error> {
    match object.get("client_name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(n)) if n.chars().count() <= 100 && !n.chars().any(char::is_control) => {
            Ok(Some(n.clone()))
        }
        Some(_) => Err(invalid_metadata(
            "client_name: a string of at most 100 characters, no control characters",
        )),
    }
}

/// What a registered client may ask for is the user's to give, within the
/// scopes the issuer's protected resources ask for (their 401s name them),
/// and `offline_access` for one that registers the refresh grant; others
/// asked for are left out (RFC 7591 §3.2.1).
pub(super) fn scope(
    ctx: &Endpoints<'_>,
    object: &Metadata,
    grants: &[String],
) -> Result<String, Error> {
    let refreshes = grants.iter().any(|g| g == "refresh_token");
    match object.get("scope") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(asked)) => Ok(asked
            .split(' ')
            .filter(|s| {
                ctx.settings.resource_scopes.iter().any(|r| r == s)
                    || (refreshes && *s == OFFLINE_ACCESS)
            })
            .collect::<Vec<_>>()
            .join(" ")),
        Some(_) => Err(invalid_metadata("scope must be a string")),
    }
}

/// Registered redirect URIs: https, or http on a loopback address
/// (RFC 8252 §7.3); no private-use schemes from anonymous clients.
fn redirect_problem(uri: &str) -> Option<String> {
    if let Some(problem) = crate::redirect_uri::redirect_uri_problem(uri) {
        return Some(problem);
    }
    let scheme = uri.split(':').next().unwrap_or_default();
    (scheme != "https" && scheme != "http")
        .then(|| format!("{uri:?}: https or a loopback http URL"))
}

/// The registered client `id` of this issuer, as a principal.
pub async fn lookup(ctx: &Endpoints<'_>, id: &str) -> Result<Option<Arc<Principal>>, Error> {
    if ctx.settings.registration == Registration::Off || !id.starts_with("reg-") || id.len() > 64 {
        return Ok(None);
    }
    let found = ctx
        .issuer
        .store
        .get_client(&ctx.issuer.config.name, id)
        .await
        .map_err(|_| Error::unavailable())?;
    Ok(found.map(|c| Arc::new(principal(c))))
}

pub(super) fn principal(c: RegisteredClient) -> Principal {
    Principal {
        client_id: Some(c.client_id.clone()),
        permissions: c
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        client: ClientProfile {
            public: true,
            redirect_uris: c.redirect_uris,
            // One stored with none (registration once took `[]`) has the
            // default, not every grant.
            grant_types: match c.grant_types.is_empty() {
                true => vec!["authorization_code".into()],
                false => c.grant_types,
            },
            registered: true,
            name: c.client_name,
            dpop_bound_access_tokens: c.dpop_bound_access_tokens,
            require_pushed_requests: c.require_pushed_authorization_requests,
            ..ClientProfile::default()
        },
        ..Principal::named(&c.client_id)
    }
}

/// Notes that a registered client was used: it stays for another
/// `registered_client_ttl`.
pub async fn used(ctx: &Endpoints<'_>, id: &str, now: i64) {
    let ttl = ctx.settings.registered_client_ttl.as_secs() as i64;
    let issuer = &ctx.issuer.config.name;
    if let Err(e) = ctx
        .issuer
        .store
        .touch_client(issuer, id, now, now + ttl)
        .await
    {
        tracing::warn!(target: "portero::oauth2", issuer = %issuer, error = %e, "a registered client's use was not noted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_bucket_lets_a_burst_through_then_one_per_interval() {
        let key = "test:local-bucket";
        assert!(
            (0..3).all(|_| local_bucket(key, 3)),
            "a burst of per_minute"
        );
        assert!(
            !local_bucket(key, 3),
            "then no more until an interval passes"
        );
        assert!(local_bucket("test:another-address", 3), "each key its own");
    }
}
