//! Seed 004, `POST /api/v1/auth`: `{client_id, client_secret}` →
//! `{access_token, exp, iat}` (Unix seconds), checked in the seed's seven
//! steps: JSON (400), parameters (400), client exists (401), active (200
//! `credential inactive`), company exists (404), secret (401), success.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{
    json_object, string_field, Denied, Issuing, Outcome, Reason, Reply, TokenRequest, Transport,
};

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

pub async fn handle(ctx: &Issuing<'_>, req: &TokenRequest<'_>) -> Reply {
    // 1. JSON.
    let Ok(body) = json_object(req) else {
        return msg(StatusCode::BAD_REQUEST, "Missing JSON in request");
    };
    // 2. Parameters.
    let Ok(client_id) = string_field(&body, "client_id") else {
        return msg(StatusCode::BAD_REQUEST, "Missing client_id parameter");
    };
    let Ok(secret) = string_field(&body, "client_secret") else {
        return msg(StatusCode::BAD_REQUEST, "Missing client_secret parameter");
    };
    let now = req.now.timestamp();
    // Each refusal said once, under the id as typed.
    let typed = client_id;
    let refused = |why: Reason| match ctx.refuse(typed, why) {
        Denied::Locked => msg(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed login attempts",
        ),
        _ => msg(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
    };
    let unavailable = || refused(Reason::Unavailable);
    let kind = ctx.principal_kind();
    let mut attempt = match ctx.begin_attempt(kind, client_id, req.client, now).await {
        Ok(attempt) => attempt,
        Err(d) => return refused(d.into()),
    };
    // 3. The client exists (an unknown one costs a stand-in verification);
    // its own id's budget is reserved too, as a collation may have matched
    // another spelling.
    let found = match ctx.principal_claimed(&mut attempt, client_id, now).await {
        Ok(found) => found,
        Err(d) => {
            let _ = ctx.end_attempt(attempt, Outcome::Unchecked, now).await;
            return refused(d.into());
        }
    };
    let Some(principal) = found else {
        let checked = ctx.verify_secret(None, secret).await.is_ok();
        let outcome = if checked {
            Outcome::Failed
        } else {
            Outcome::Unchecked
        };
        if !checked || ctx.end_attempt(attempt, outcome, now).await.is_err() {
            return unavailable();
        }
        ctx.refuse(typed, Reason::UnknownPrincipal);
        return msg(StatusCode::UNAUTHORIZED, INVALID);
    };
    // The client's own id, not the spelling typed.
    let client_id = principal.login.as_str();
    // 4. Active.
    if !principal.active {
        return match ctx.end_attempt(attempt, Outcome::Unchecked, now).await {
            Ok(()) => {
                ctx.refuse(typed, Reason::Inactive);
                msg(StatusCode::OK, "credential inactive")
            }
            Err(_) => unavailable(),
        };
    }
    // 5. Its company exists.
    let company_exists = principal
        .company
        .as_ref()
        .is_some_and(|c| ctx.endpoint.companies.contains(c));
    if !company_exists {
        return match ctx.end_attempt(attempt, Outcome::Unchecked, now).await {
            Ok(()) => {
                ctx.refuse(typed, Reason::NoCompany);
                Reply::json(StatusCode::NOT_FOUND, json!({ "error": "Not Found" }))
            }
            Err(_) => unavailable(),
        };
    }
    // 6. The secret; a blocked client's is refused as a wrong one.
    let verified = ctx.verify_secret(Some(&principal), secret).await;
    let outcome = match verified {
        Ok(true) if !principal.blocked => Outcome::Succeeded,
        Ok(_) => Outcome::Failed,
        Err(_) => Outcome::Unchecked,
    };
    if ctx.end_attempt(attempt, outcome, now).await.is_err() || outcome == Outcome::Unchecked {
        return unavailable();
    }
    if outcome == Outcome::Failed {
        let why = match verified {
            Ok(true) => Reason::Blocked,
            _ => Reason::WrongSecret,
        };
        ctx.refuse(typed, why);
        return msg(StatusCode::UNAUTHORIZED, INVALID);
    }
    // 7. Success: the token carries the client, its company and permissions.
    let mut claims = Map::new();
    claims.insert("client_id".into(), Value::String(client_id.to_string()));
    claims.insert("company".into(), json!(principal.company));
    claims.insert("permissions".into(), json!(principal.permissions));
    let Ok(minted) = ctx.mint(client_id, claims, now, Some(ctx.issuer.token_ttl)) else {
        return msg(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable");
    };
    Reply::json(
        StatusCode::OK,
        json!({ "access_token": minted.token, "exp": minted.exp, "iat": now }),
    )
}
