//! What a client may do with a token it holds: revoke it (RFC 7009) or
//! ask whether it is live (RFC 7662). Both take the issuer's tokens of
//! either kind, legacy or standard, and tell a client nothing about a
//! token that is not its own (unless its principal has `introspect`).

use serde_json::{json, Value};

use super::client::authenticate;
use super::form::Form;
use super::{issued_to, Answer, Endpoints, Error, Request};
use crate::auth::revocation::Revocation;
use crate::auth::validate::{Binding, Verified};
use crate::config::Principal;
use crate::tokens::sha256_base64url;

/// The issuer's token `text`, checked as a route would check it but for
/// time and revocation: `None` for anything else.
fn issuers_token(ctx: &Endpoints<'_>, text: &str) -> Option<Verified> {
    ctx.validator
        .verify(text)
        .ok()
        .filter(|v| v.issuer == ctx.issuer.index)
}

fn owns(ctx: &Endpoints<'_>, client: &Principal, v: &Verified) -> bool {
    issued_to(ctx, v) == Some(client.login.as_str())
}

/// RFC 7009: 200 for a token revoked, and for one unknown, foreign or
/// already dead (the client learns nothing); `token_type_hint` is only a hint.
pub async fn revoke(ctx: &Endpoints<'_>, req: &Request<'_>) -> Result<Answer, Error> {
    let form = Form::parse(req.body, req.form)?;
    let token = form.required("token")?;
    let client = authenticate(ctx, req, &form).await?;
    let client: &Principal = &client;
    let Some(v) = issuers_token(ctx, token) else {
        // Not a JWT of the issuer: perhaps one of the client's refresh tokens.
        let hash = sha256_base64url(token);
        let refreshes = ctx.issuer.refreshes();
        let found = ctx.issuer.store.get_refresh(&hash).await;
        if let Ok(Some(record)) = found {
            if refreshes.belongs(&record, &client.login) {
                let tokens = refreshes.revoke_family(&hash).await?;
                tracing::info!(
                    target: "portero::oauth2",
                    issuer = %ctx.issuer.config.name,
                    client = %client.login,
                    tokens,
                    "refresh token revoked with its family"
                );
            }
        }
        return Ok(Answer::ok(json!({})));
    };
    if !owns(ctx, client, &v) {
        return Ok(Answer::ok(json!({})));
    }
    let Some(jti) = v.jti() else {
        return Ok(Answer::ok(json!({})));
    };
    let revoked = [Revocation::Jti {
        jti: jti.to_string(),
        expires_at: v.exp,
    }];
    // Stored (and announced to every instance) before it is answered.
    if let Err(e) = ctx.issuer.store.add_revocations(&revoked).await {
        tracing::warn!(error = %e, "oauth2 revocation: store unavailable");
        return Err(Error::unavailable());
    }
    ctx.issuer.revocations.apply(&revoked[0]);
    tracing::info!(
        target: "portero::oauth2",
        issuer = %ctx.issuer.config.name,
        client = %client.login,
        "token revoked"
    );
    Ok(Answer::ok(json!({})))
}

/// RFC 7662: `{"active": false}` for a token that is not live or not the
/// asking client's to see; the token's claims when it is.
pub async fn introspect(ctx: &Endpoints<'_>, req: &Request<'_>) -> Result<Answer, Error> {
    let form = Form::parse(req.body, req.form)?;
    let token = form.required("token")?;
    let client = authenticate(ctx, req, &form).await?;
    let client: &Principal = &client;
    let Some(v) = issuers_token(ctx, token) else {
        // Not a JWT of the issuer: perhaps a refresh token.
        return refresh_answer(ctx, client, token, req.now).await;
    };
    let live = (client.introspect || owns(ctx, client, &v))
        && ctx.validator.check_time(&v, req.now).is_ok()
        && !ctx.validator.is_revoked(&v);
    if !live {
        return Ok(inactive());
    }
    let mut body = json!({ "active": true, "token_type": "Bearer" });
    // RFC 9449 §6.2, RFC 8705 §3.2: what a bound token is bound to, for
    // the resource server to hold its proof to.
    match &v.binding {
        Some(Binding::Dpop(jkt)) => {
            body["token_type"] = json!("DPoP");
            body["cnf"] = json!({ "jkt": &**jkt });
        }
        Some(Binding::Certificate(x5t)) => body["cnf"] = json!({ "x5t#S256": &**x5t }),
        None => {}
    }
    for name in ["iss", "sub", "client_id", "scope", "jti"] {
        if let Some(value) = v.claims.str(name) {
            body[name] = Value::String(value.to_string());
        }
    }
    // The resource it is for (RFC 7662 §2.2's `aud`), as the token says.
    match v.claims.get("aud") {
        Some(crate::claims::Claim::Str(aud)) => body["aud"] = json!(aud),
        Some(crate::claims::Claim::Json(aud)) => body["aud"] = aud.clone(),
        _ => {}
    }
    for (name, value) in [("exp", v.exp), ("iat", v.iat), ("nbf", v.nbf)] {
        if let Some(value) = value {
            body[name] = json!(value);
        }
    }
    Ok(Answer::ok(body))
}

fn inactive() -> Answer {
    Answer::ok(json!({ "active": false }))
}

/// A live refresh token of the issuer, to the client it was issued to (or
/// one that may introspect every token): what the store knows of it
/// (RFC 7662 §2.2). Only read: a replaced token is inactive here, never a
/// reuse, and nothing rotates.
async fn refresh_answer(
    ctx: &Endpoints<'_>,
    client: &Principal,
    token: &str,
    now: i64,
) -> Result<Answer, Error> {
    let refreshes = ctx.issuer.refreshes();
    let Some(record) = refreshes.live(token, now).await? else {
        return Ok(inactive());
    };
    if !client.introspect && !refreshes.belongs(&record, &client.login) {
        return Ok(inactive());
    }
    let mut body = json!({
        "active": true,
        "token_type": "refresh_token",
        "iss": ctx.settings.issuer_id,
        "sub": record.sub,
        "client_id": record.client_id,
        // The family's first sign-in: every refresh token in it keeps that
        // expiry and the store keeps that time.
        "iat": record.issued_at,
        "exp": record.expires_at,
    });
    if let Some(scope) = record.scope.as_deref().filter(|s| !s.is_empty()) {
        body["scope"] = json!(scope);
    }
    Ok(Answer::ok(body))
}
