//! Seed 004, `POST /api/v1/auth`: `{client_id, client_secret}` →
//! `{access_token, exp, iat}` (Unix seconds), checked in the seed's seven
//! steps: JSON (400), parameters (400), client exists (401), active (200
//! `credential inactive`), company exists (404), secret (401), success.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{
    json_object, string_field, Denied, IssuerContext, Reason, Reply, TokenRequest, Transport,
};
use crate::config::{LegacyEndpoint, Principal};
use crate::identity::{profile, Outcome};

fn msg(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, json!({ "msg": message }))
}

pub fn transport_error(e: Transport) -> Reply {
    match e {
        Transport::TooLarge => msg(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
        Transport::Timeout => msg(StatusCode::REQUEST_TIMEOUT, "Request timed out"),
        Transport::RateLimited => msg(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        Transport::Unavailable => msg(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
    }
}

const INVALID: &str = "Invalid login details";

pub async fn handle(ctx: &IssuerContext<'_>, e: &LegacyEndpoint, req: &TokenRequest<'_>) -> Reply {
    // 1. JSON; 2. parameters.
    let Ok(body) = json_object(req) else {
        return msg(StatusCode::BAD_REQUEST, "Missing JSON in request");
    };
    let Ok(client_id) = string_field(&body, "client_id") else {
        return msg(StatusCode::BAD_REQUEST, "Missing client_id parameter");
    };
    let Ok(secret) = string_field(&body, "client_secret") else {
        return msg(StatusCode::BAD_REQUEST, "Missing client_secret parameter");
    };
    let now = req.now.timestamp();
    match checked_client(ctx, e, client_id, secret, req, now).await {
        Ok(principal) => token(ctx, &principal, now),
        Err(reply) => reply,
    }
}

/// The seed's answer to a refused login, said once under the id as typed.
fn refused(ctx: &IssuerContext<'_>, typed: &str, why: Reason) -> Reply {
    match why {
        Reason::UnknownPrincipal | Reason::WrongSecret | Reason::Blocked => {
            ctx.logins.refuse(typed, why);
            msg(StatusCode::UNAUTHORIZED, INVALID)
        }
        Reason::Inactive => {
            ctx.logins.refuse(typed, why);
            msg(StatusCode::OK, "credential inactive")
        }
        Reason::NoCompany => {
            ctx.logins.refuse(typed, why);
            Reply::json(StatusCode::NOT_FOUND, json!({ "error": "Not Found" }))
        }
        _ => held_back(ctx, typed, why),
    }
}

/// A login the lockout or the store turned away: 429 while locked, else 503.
fn held_back(ctx: &IssuerContext<'_>, typed: &str, why: Reason) -> Reply {
    match ctx.logins.refuse(typed, why) {
        Denied::Locked => msg(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed login attempts",
        ),
        _ => msg(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
    }
}

/// Steps 3 to 6: the client exists (an unknown one costs a stand-in
/// verification), is active, its company exists, and the secret is its
/// own (a blocked client's is refused as a wrong one), within the
/// lockout's budgets (its own id's reserved too, as a collation may have
/// matched another spelling).
async fn checked_client(
    ctx: &IssuerContext<'_>,
    e: &LegacyEndpoint,
    typed: &str,
    secret: &str,
    req: &TokenRequest<'_>,
    now: i64,
) -> Result<Arc<Principal>, Reply> {
    let kind = ctx.logins.principal_kind();
    let mut attempt = ctx
        .logins
        .begin_attempt(kind, typed, req.client, now)
        .await
        .map_err(|d| held_back(ctx, typed, d.into()))?;
    let found = match ctx.logins.principal_claimed(&mut attempt, typed, now).await {
        Ok(found) => found,
        Err(d) => {
            let _ = ctx
                .logins
                .end_attempt(attempt, Outcome::Unchecked, now)
                .await;
            return Err(held_back(ctx, typed, d.into()));
        }
    };
    let (outcome, refusal) = match &found {
        None => match ctx.logins.verify_secret(None, secret).await {
            Ok(_) => (Outcome::Failed, Some(Reason::UnknownPrincipal)),
            Err(_) => (Outcome::Unchecked, Some(Reason::Unavailable)),
        },
        Some(p) if !p.active => (Outcome::Unchecked, Some(Reason::Inactive)),
        // Step 5: the client's company is one the endpoint knows.
        Some(p) if !profile::company_known(Some(e), p) => {
            (Outcome::Unchecked, Some(Reason::NoCompany))
        }
        Some(p) => match ctx.logins.verify_secret(Some(p), secret).await {
            Ok(true) if !p.blocked => (Outcome::Succeeded, None),
            Ok(true) => (Outcome::Failed, Some(Reason::Blocked)),
            Ok(false) => (Outcome::Failed, Some(Reason::WrongSecret)),
            Err(_) => (Outcome::Unchecked, Some(Reason::Unavailable)),
        },
    };
    if ctx.logins.end_attempt(attempt, outcome, now).await.is_err() {
        return Err(held_back(ctx, typed, Reason::Unavailable));
    }
    match (refusal, found) {
        (None, Some(principal)) => Ok(principal),
        (why, _) => Err(refused(ctx, typed, why.unwrap_or(Reason::Unavailable))),
    }
}

/// Step 7: the token carries the client (its own id, not the spelling
/// typed), its company and permissions.
fn token(ctx: &IssuerContext<'_>, principal: &Principal, now: i64) -> Reply {
    let client_id = principal.login.as_str();
    let mut claims = Map::new();
    claims.insert("client_id".into(), Value::String(client_id.to_string()));
    claims.insert("company".into(), json!(principal.company));
    claims.insert("permissions".into(), json!(principal.permissions));
    let Ok(minted) = ctx.mint(client_id, claims, now, Some(ctx.config.token_ttl)) else {
        return msg(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable");
    };
    Reply::json(
        StatusCode::OK,
        json!({ "access_token": minted.token, "exp": minted.exp, "iat": now }),
    )
}
