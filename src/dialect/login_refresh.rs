//! Seed 001: `POST /api/auth/token` with `{username, password}` →
//! `{id, username, role, accessToken, contentToken, refreshToken}`, each
//! `{token, expiresIn}` (seconds); `POST /api/auth/refreshtoken` with
//! `{refreshToken}` → `{accessToken, contentToken}`. Access and content
//! tokens are JWTs told apart by `token_use`; the refresh token is 256 random
//! bits, stored hashed. Errors are Spring-style:
//! `{timestamp, status, error, message, path}`.

use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{json_object, string_field, Denied, IssuerContext, Reply, TokenRequest, Transport};
use crate::config::Endpoint;
use crate::config::Principal;
use crate::store::RefreshRecord;

fn spring(status: StatusCode, message: &str, path: &str, now: DateTime<Utc>) -> Reply {
    // Spring's `error` is the status' reason phrase.
    let error = status.canonical_reason().unwrap_or("Error");
    Reply::json(
        status,
        json!({
            "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, false),
            "status": status.as_u16(),
            "error": error,
            "message": message,
            "path": path,
        }),
    )
}

pub fn transport_error(e: Transport, path: &str, now: DateTime<Utc>) -> Reply {
    match e {
        Transport::TooLarge => spring(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
            path,
            now,
        ),
        Transport::Timeout => spring(
            StatusCode::REQUEST_TIMEOUT,
            "Request body not received in time",
            path,
            now,
        ),
        Transport::Unavailable => spring(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            path,
            now,
        ),
        Transport::RateLimited => spring(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            path,
            now,
        ),
    }
}

pub async fn handle(ctx: &IssuerContext<'_>, req: &TokenRequest<'_>) -> Reply {
    let fail = |status, message: &str| spring(status, message, req.path, req.now);
    let Ok(body) = json_object(req) else {
        return fail(StatusCode::BAD_REQUEST, "Malformed JSON request");
    };
    match req.endpoint {
        Endpoint::Token => {
            let (Ok(username), Ok(password)) = (
                string_field(&body, "username"),
                string_field(&body, "password"),
            ) else {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "username and password are required strings",
                );
            };
            let now = req.now.timestamp();
            match ctx.logins.log_in(username, password, req.client, now).await {
                Ok(p) => login(ctx, &p, now).await.unwrap_or_else(|_| {
                    fail(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
                }),
                Err(Denied::BadCredentials | Denied::Blocked) => {
                    fail(StatusCode::UNAUTHORIZED, "Bad credentials")
                }
                Err(Denied::Locked) => fail(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed login attempts",
                ),
                Err(Denied::Unavailable) => {
                    fail(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
                }
            }
        }
        // OAuth 2.0 requests go to `oauth2`, never to a dialect.
        Endpoint::Refresh | Endpoint::OAuth2 => {
            let Ok(token) = string_field(&body, "refreshToken") else {
                return fail(StatusCode::BAD_REQUEST, "refreshToken is a required string");
            };
            match refresh(ctx, token, req.now.timestamp()).await {
                Ok(Some(reply)) => reply,
                Ok(None) => fail(StatusCode::UNAUTHORIZED, "Invalid refresh token"),
                Err(_) => fail(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
            }
        }
    }
}

/// An access and a content token, as the seed renders them, and their (jti, exp).
struct Pair {
    access: Value,
    content: Value,
    minted: Vec<(String, i64)>,
}

/// Mints the access and content tokens of one principal.
fn pair(ctx: &IssuerContext<'_>, p: &Principal, now: i64) -> Result<Pair, Denied> {
    let ttl = ctx.config.token_ttl;
    let mut minted = Vec::new();
    let mut out = Vec::new();
    for token_use in ["access", "content"] {
        let mut claims = Map::new();
        claims.insert("token_use".into(), token_use.into());
        claims.insert("username".into(), json!(p.username));
        claims.insert("role".into(), json!(p.role));
        let m = ctx.mint(&ctx.accounts.subject_of(p), claims, now, Some(ttl))?;
        out.push(json!({ "token": m.token, "expiresIn": ttl.as_secs() }));
        minted.push((m.jti, m.exp.unwrap_or(now)));
    }
    let content = out.pop().expect("two tokens");
    let access = out.pop().expect("two tokens");
    Ok(Pair {
        access,
        content,
        minted,
    })
}

async fn login(ctx: &IssuerContext<'_>, p: &Principal, now: i64) -> Result<Reply, Denied> {
    let Pair {
        access,
        content,
        minted,
    } = pair(ctx, p, now)?;
    let ttl = ctx.routes.refresh_ttl.as_secs();
    let record = RefreshRecord {
        issuer: ctx.config.name.clone(),
        sub: ctx.accounts.subject_of(p),
        login: p.login.clone(),
        issued_at: now,
        expires_at: now + ttl as i64,
        tokens: minted,
        client_id: None,
        rotated_to: None,
        scope: None,
        resource: None,
        amr: Vec::new(),
        jkt: None,
        x5t: None,
    };
    let refresh = ctx.refreshes().issue(&record).await?;
    ctx.metrics
        .refresh
        .with_label_values(&[&ctx.config.name, "issued"])
        .inc();
    Ok(Reply::json(
        StatusCode::OK,
        json!({
            "id": p.id,
            "username": p.username,
            "role": p.role,
            "accessToken": access,
            "contentToken": content,
            "refreshToken": { "token": refresh, "expiresIn": ttl },
        }),
    ))
}

/// `Ok(None)`: unknown, expired, foreign or revoked refresh token.
async fn refresh(ctx: &IssuerContext<'_>, token: &str, now: i64) -> Result<Option<Reply>, Denied> {
    // An OAuth 2.0 refresh token is its client's, at the token endpoint
    // only; one already replaced is a reuse wherever it turns up.
    let usable = ctx.refreshes().find(token, None, now).await?;
    let principal = match &usable {
        Some(r) => ctx.logins.principal(&r.login).await?,
        None => None,
    }
    .filter(|p| p.active && !p.blocked);
    let (Some(_), Some(p)) = (usable, principal) else {
        ctx.metrics
            .refresh
            .with_label_values(&[&ctx.config.name, "refused"])
            .inc();
        return Ok(None);
    };
    let Pair {
        access,
        content,
        minted,
    } = pair(ctx, &p, now)?;
    // Recorded in one step with any revocation of the refresh token: if it
    // was revoked meanwhile, what was just minted is never handed out.
    if !ctx.refreshes().extend(token, &minted, now).await? {
        ctx.metrics
            .refresh
            .with_label_values(&[&ctx.config.name, "refused"])
            .inc();
        return Ok(None);
    }
    ctx.metrics
        .refresh
        .with_label_values(&[&ctx.config.name, "used"])
        .inc();
    Ok(Some(Reply::json(
        StatusCode::OK,
        json!({ "accessToken": access, "contentToken": content }),
    )))
}
