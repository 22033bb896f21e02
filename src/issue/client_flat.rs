//! Seed 004, `POST /api/v1/auth`: `{client_id, client_secret}` →
//! `{access_token, exp, iat}` (Unix seconds), checked in the seed's seven
//! steps: JSON (400), parameters (400), client exists (401), active (200
//! `credential inactive`), company exists (404), secret (401), success.

use serde_json::{json, Map, Value};

use super::{json_object, string_field, Denied, Issuing, Reply, TokenRequest, Transport};

fn msg(status: u16, message: &str) -> Reply {
    Reply::json(status, json!({ "msg": message }))
}

pub fn transport_error(e: Transport) -> Reply {
    match e {
        Transport::TooLarge => msg(413, "Request body too large"),
        Transport::Timeout => msg(408, "Request timed out"),
    }
}

const INVALID: &str = "Invalid login details";

pub async fn handle(ctx: &Issuing<'_>, req: &TokenRequest<'_>) -> Reply {
    // 1. JSON.
    let Ok(body) = json_object(req.body) else {
        return msg(400, "Missing JSON in request");
    };
    // 2. Parameters.
    let Ok(client_id) = string_field(&body, "client_id") else {
        return msg(400, "Missing client_id parameter");
    };
    let Ok(secret) = string_field(&body, "client_secret") else {
        return msg(400, "Missing client_secret parameter");
    };
    let now = req.now.timestamp();
    let unavailable = || msg(503, "Service unavailable");
    let failures = match ctx.check_lockout(client_id, req.client, now).await {
        Ok(n) => n,
        Err(Denied::Locked) => return msg(429, "Too many failed login attempts"),
        Err(_) => return unavailable(),
    };
    // 3. The client exists (an unknown one costs a dummy verification).
    let Some(principal) = ctx.endpoint.principals.get(client_id) else {
        if ctx.verify_secret(None, secret).await.is_err()
            || ctx
                .record_failure(client_id, req.client, now)
                .await
                .is_err()
        {
            return unavailable();
        }
        return msg(401, INVALID);
    };
    // 4. Active.
    if !principal.active {
        return msg(200, "credential inactive");
    }
    // 5. Its company exists.
    let company_exists = principal
        .company
        .as_ref()
        .is_some_and(|c| ctx.endpoint.companies.contains(c));
    if !company_exists {
        return Reply::json(404, json!({ "error": "Not Found" }));
    }
    // 6. The secret.
    match ctx.verify_secret(Some(principal), secret).await {
        Ok(true) if !principal.blocked => {}
        Ok(_) => {
            if ctx
                .record_failure(client_id, req.client, now)
                .await
                .is_err()
            {
                return unavailable();
            }
            return msg(401, INVALID);
        }
        Err(_) => return unavailable(),
    }
    if ctx
        .record_success(client_id, req.client, failures)
        .await
        .is_err()
    {
        return unavailable();
    }
    // 7. Success: the token carries the client, its company and permissions.
    let mut claims = Map::new();
    claims.insert("client_id".into(), Value::String(client_id.to_string()));
    claims.insert("company".into(), json!(principal.company));
    claims.insert("permissions".into(), json!(principal.permissions));
    let Ok(minted) = ctx.mint(client_id, claims, now, Some(ctx.issuer.token_ttl)) else {
        return unavailable();
    };
    Reply::json(
        200,
        json!({ "access_token": minted.token, "exp": minted.exp, "iat": now }),
    )
}
