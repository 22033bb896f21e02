//! OpenID Connect: the ID token a `scope=openid` code grant adds (Core
//! §2, §3.1.3.6), the userinfo endpoint (§5.3), and RP-initiated logout
//! (`end_session_endpoint`), which ends the sign-on session everywhere
//! and, where the issuer says so, the refresh families it began.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::mint::{live_user, words};
use super::{csrf, page, sso, Answer, Endpoints, Error, Request};
use crate::auth::validate::Binding;
use crate::identity::profile;
use crate::store::CodeRecord;
use crate::tokens::Minted;

/// The ID token for the code's user, for `client_id`.
pub fn id_token(
    ctx: &Endpoints<'_>,
    now: i64,
    code: &CodeRecord,
    client_id: &str,
    access: &Minted,
) -> Result<String, Error> {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(ctx.settings.issuer_id));
    claims.insert("sub".into(), json!(code.sub));
    claims.insert("aud".into(), json!(client_id));
    claims.insert("iat".into(), json!(now));
    let exp = access
        .exp
        .unwrap_or(now + ctx.issuer.config.token_ttl.as_secs() as i64);
    claims.insert("exp".into(), json!(exp));
    claims.insert("auth_time".into(), json!(code.auth_time));
    super::mint::signed_in_by(&mut claims, &code.amr);
    if let Some(nonce) = &code.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    if let Some(sid) = &code.sid {
        claims.insert("sid".into(), json!(sid));
    }
    ctx.issuer
        .keys
        .sign(ctx.issuer.index, &Value::Object(claims), Some("JWT"))
        .map_err(|_| Error::unavailable())
}

/// The access token a userinfo request presents (RFC 6750 §2.1, §2.2),
/// and whether it came as `DPoP` (RFC 9449 §7.1). One way only (RFC 6750
/// §2): a token in both the header and the form is none.
fn presented(req: &Request<'_>) -> Option<(String, bool)> {
    let in_form = match *req.method == http::Method::POST && req.form {
        true => super::form::Form::parse(req.body, true)
            .ok()?
            .get("access_token")
            .map(str::to_string),
        false => None,
    };
    let Some(header) = req.authorization else {
        return in_form.map(|token| (token, false));
    };
    let (token, dpop) = authorization(header)?;
    in_form.is_none().then(|| (token.to_string(), dpop))
}

/// The token of an `Authorization` value whose scheme is `Bearer` or
/// `DPoP` (case-insensitive, then one space), and whether it is `DPoP`;
/// `None` for any other value, or one that is not text.
pub fn authorization(header: &[u8]) -> Option<(&str, bool)> {
    let (scheme, token) = std::str::from_utf8(header).ok()?.split_once(' ')?;
    let dpop = scheme.eq_ignore_ascii_case("dpop");
    let token = token.trim();
    let named = dpop || scheme.eq_ignore_ascii_case("bearer");
    (named && !token.is_empty()).then_some((token, dpop))
}

/// Whether the request proves it is the sender a token is bound to: a
/// DPoP-bound one sent as `DPoP` with a proof by its key (checked before,
/// `req.dpop_key`), a certificate-bound one over its certificate; an
/// unbound one sent as `Bearer`.
fn sender_proven(req: &Request<'_>, binding: Option<&Binding>, dpop: bool) -> bool {
    match (binding, dpop) {
        (None, false) => true,
        (Some(Binding::Dpop(jkt)), true) => req.dpop_key == Some(&**jkt),
        (Some(Binding::Certificate(x5t)), false) => {
            req.client_cert.is_some_and(|c| c.thumbprint == *x5t)
        }
        _ => false,
    }
}

fn invalid_token(description: &str) -> Answer {
    let mut answer: Answer =
        Error::new(StatusCode::UNAUTHORIZED, "invalid_token", description).into();
    answer.bearer_challenge = Some(format!(
        "Bearer error=\"invalid_token\", error_description=\"{description}\""
    ));
    answer
}

/// Claims about the user an access token with `openid` was issued for.
pub async fn userinfo(ctx: &Endpoints<'_>, req: &Request<'_>) -> Answer {
    let Some((token, dpop)) = presented(req) else {
        let mut answer: Answer = Error::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "an access token is required",
        )
        .into();
        answer.bearer_challenge = Some("Bearer".into());
        return answer;
    };
    let validator = ctx.validator;
    let verified = validator
        .verify(&token)
        .ok()
        .filter(|v| v.issuer == ctx.issuer.index)
        .filter(|v| validator.check_time(v, req.now).is_ok() && !validator.is_revoked(v))
        .filter(|v| v.claims.str("iss") == Some(ctx.settings.issuer_id.as_str()));
    let Some(v) = verified else {
        return invalid_token("the access token is invalid, expired or revoked");
    };
    if !sender_proven(req, v.binding.as_ref(), dpop) {
        let mut answer =
            invalid_token("the access token is bound to a sender this request does not prove");
        if dpop {
            answer.bearer_challenge = Some(super::dpop_challenge("invalid_token"));
        }
        return answer;
    }
    if !words(v.claims.str("scope")).iter().any(|s| s == "openid") {
        let mut answer: Answer = Error::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the token was not issued with openid",
        )
        .into();
        answer.bearer_challenge =
            Some("Bearer error=\"insufficient_scope\", scope=\"openid\"".into());
        return answer;
    }
    let sub = v.sub().unwrap_or_default().to_string();
    let login = v.claims.str("username").unwrap_or(&sub).to_string();
    let user = match live_user(ctx, &login).await {
        Ok(Some(u)) if ctx.issuer.accounts.subject_of(&u) == sub => u,
        Ok(_) => return invalid_token("the user is gone"),
        Err(e) => return e.into(),
    };
    let mut body = profile::claims(ctx.issuer.accounts.form, &user, &[]);
    body.remove("token_use");
    body.insert("sub".into(), json!(sub));
    Answer::ok(Value::Object(body))
}

/// RP-initiated logout: with an `id_token_hint` naming the browser's own
/// session, or confirmed on a page (a cross-site link alone signs no one
/// out), the session ends and its cookie goes; the user is sent to a
/// `post_logout_redirect_uri` the client registered, or shown a page.
pub async fn end_session(ctx: &Endpoints<'_>, req: &Request<'_>) -> Answer {
    let params = match *req.method == http::Method::POST {
        true => super::form::Form::parse(req.body, req.form),
        false => super::form::Form::parse(req.query.unwrap_or_default().as_bytes(), true),
    };
    let params = match params {
        Ok(p) => p,
        Err(e) => return ended_page(ctx, &e.description, StatusCode::BAD_REQUEST, None),
    };
    let session = match sso::current(ctx, req).await {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    let hint = params.get("id_token_hint").and_then(|t| hinted(ctx, t));
    let Some(session) = session else {
        return done(ctx, &params, hint.as_ref());
    };
    let vouched = hint
        .as_ref()
        .is_some_and(|h| h.sid.as_deref() == Some(&session.sid));
    let confirmed = match params.get("confirm") {
        Some(sent) if csrf::same_origin(ctx, req) => {
            csrf::logout_token_matches(ctx, &session.sid, sent).await
        }
        _ => false,
    };
    if !vouched && !confirmed {
        return confirm_page(ctx, &session.sid).await;
    }
    if let Ok(Some(ended)) = ctx.issuer.store.end_sso(&session.sid).await {
        if ctx.settings.logout_revokes_tokens {
            for family in &ended.families {
                let _ = ctx.issuer.refreshes().revoke_family(family).await;
            }
        }
    }
    done(ctx, &params, hint.as_ref()).with_cookie(Some(sso::forget(ctx)))
}

/// What a verified ID token hint says: its client and session.
struct Hint {
    client_id: Option<String>,
    sid: Option<String>,
}

/// An ID token of this issuer (expired or not: a hint names who it was).
fn hinted(ctx: &Endpoints<'_>, token: &str) -> Option<Hint> {
    let v = ctx
        .validator
        .verify_id_token(token)
        .ok()
        .filter(|v| v.issuer == ctx.issuer.index)?;
    (v.claims.str("iss") == Some(ctx.settings.issuer_id.as_str())).then(|| Hint {
        client_id: v.claims.str("aud").map(str::to_string),
        sid: v.claims.str("sid").map(str::to_string),
    })
}

/// Back to the client's `post_logout_redirect_uri`, if it is one of the
/// redirect URIs the hinted client registered, or where portero's own
/// sign-in with that client returns; else the signed-out page.
fn done(ctx: &Endpoints<'_>, params: &super::form::Form, hint: Option<&Hint>) -> Answer {
    let client_id = hint.and_then(|h| h.client_id.as_deref());
    let client = client_id.and_then(|id| ctx.settings.clients.get(id));
    let target = params.get("post_logout_redirect_uri").filter(|uri| {
        client.is_some_and(|c| c.client.redirect_uris.iter().any(|r| r == uri))
            || ctx
                .settings
                .post_logout_redirect_uris
                .iter()
                .any(|(id, r)| Some(id.as_str()) == client_id && r == uri)
    });
    match target.and_then(|t| url::Url::parse(t).ok()) {
        Some(mut url) => {
            if let Some(state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            Answer::redirect(url.into())
        }
        None => ended_page(ctx, "You are signed out.", StatusCode::OK, None),
    }
}

async fn confirm_page(ctx: &Endpoints<'_>, sid: &str) -> Answer {
    let token = match csrf::logout_token(ctx, sid).await {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    let action = format!("{}/end_session", ctx.settings.issuer_id);
    let form = format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"{}\">\
         <button type=\"submit\" autofocus>Sign out</button></form>",
        page::escape(&action),
        page::escape(&token)
    );
    ended_page(ctx, "Sign out of this site?", StatusCode::OK, Some(&form))
}

fn ended_page(
    ctx: &Endpoints<'_>,
    message: &str,
    status: StatusCode,
    form: Option<&str>,
) -> Answer {
    let mut answer = Answer::page(status, page::notice(&ctx.settings.sign_in, message, form));
    answer.csp = Some(page::csp(&ctx.settings.sign_in, None));
    answer
}
