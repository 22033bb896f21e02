//! RFC 8693: a live token of the issuer traded for a standard access
//! token with the same subject, in its subject token's lineage.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::super::form::Form;
use super::super::mint::{answer, live_user, mint, narrowed, words, Cnf};
use super::super::{issued_to, Answer, Endpoints, Error, Request};
use crate::auth::validate::Binding;
use crate::config::{AccountForm, Principal, SubjectRule};
use crate::identity::profile;
use crate::tokens::sha256_base64url;

const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// RFC 8693: a live token of the issuer (a JWT, legacy or standard, or
/// the login-refresh dialect's refresh token) for a standard access token
/// with the same subject; the scope can only narrow. The new token joins
/// its subject token's lineage: it expires no later, and revoking the
/// subject token (its jti, its refresh family, its principal) revokes it,
/// so trading a token again and again never outlives or outruns it.
pub(super) async fn grant(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    client: &Principal,
    bound: Option<Cnf<'_>>,
) -> Result<Answer, Error> {
    let subject_token = form.required("subject_token")?;
    let subject_type = form.required("subject_token_type")?;
    if let Some(wanted) = form.get("requested_token_type") {
        if wanted != ACCESS_TYPE && wanted != JWT_TYPE {
            return Err(Error::invalid_request(format!(
                "requested_token_type {wanted:?}: only {ACCESS_TYPE} is issued"
            )));
        }
    }
    let Subject {
        sub,
        mut claims,
        held,
        lineage,
        until,
    } = match subject_type {
        JWT_TYPE | ACCESS_TYPE => issuers_jwt(ctx, req, subject_token, client, bound).await?,
        REFRESH_TYPE => legacy_refresh(ctx, req, subject_token, client).await?,
        other => {
            return Err(Error::invalid_request(format!(
                "subject_token_type {other:?} is not one this issuer takes"
            )))
        }
    };
    let scope = narrowed(form.get("scope"), &held)?;
    if claims.contains_key("permissions") {
        claims.insert("permissions".into(), json!(scope));
    }
    super::super::mint::bind(&mut claims, bound);
    let minted = mint(ctx, req.now, &sub, claims, client, &scope, until)?;
    let child = (minted.jti.clone(), minted.exp.unwrap_or(req.now));
    // Recorded before it is handed out, in one step with any revocation
    // of the subject token: one revoked meanwhile refuses it here.
    let store = ctx.issuer.store;
    let joined = match lineage {
        Lineage::Token(parent) => store.derive_token(&parent, &child).await,
        Lineage::Refresh(hash) => store.extend_refresh(&hash, &[child], req.now).await,
        Lineage::None => Ok(true),
    }
    .map_err(|_| Error::unavailable())?;
    if !joined {
        return Err(Error::invalid_grant());
    }
    let issued = ("issued_token_type", ACCESS_TYPE.to_string());
    Ok(answer(req.now, minted, &scope, &[issued]))
}

/// What a subject token vouches for.
struct Subject {
    sub: String,
    /// Claims to carry into the new token.
    claims: Map<String, Value>,
    /// The scopes the new token may have.
    held: Vec<String>,
    /// Where the new token is recorded so that the subject's revocation reaches it.
    lineage: Lineage,
    /// The subject token's own expiry: the new one's can be no later.
    until: Option<i64>,
}

/// What a subject token's revocation goes through.
enum Lineage {
    /// Its jti: a jti revocation (the admin API, RFC 7009, a refresh
    /// family revoked) carries over to the tokens derived from it.
    Token(String),
    /// A legacy refresh token (its hash): revoking it revokes the tokens
    /// in its lineage.
    Refresh(String),
    /// A token without jti can be revoked only by its subject, which
    /// reaches the new token as well (same `sub`, later `iat`).
    None,
}

/// A live JWT of the issuer, legacy or standard, whose principal may still
/// log in: its subject, the claims it carries beyond the registered ones,
/// and the scope it holds (its `scope`, else its `permissions`). A token
/// issued to a client is traded only by that client.
async fn issuers_jwt(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    token: &str,
    client: &Principal,
    bound: Option<Cnf<'_>>,
) -> Result<Subject, Error> {
    let validator = ctx.validator;
    let v = validator
        .verify(token)
        .ok()
        .filter(|v| v.issuer == ctx.issuer.index)
        .filter(|v| validator.check_time(v, req.now).is_ok() && !validator.is_revoked(v))
        .ok_or_else(Error::invalid_grant)?;
    let sub = v.sub().ok_or_else(Error::invalid_grant)?.to_string();
    // A bound subject token is traded only with a proof of its key, or
    // over a connection with its certificate: the new token is bound to
    // it again.
    let proven = match &v.binding {
        None => true,
        Some(Binding::Dpop(jkt)) => bound == Some(Cnf::Dpop(jkt)),
        Some(Binding::Certificate(x5t)) => bound == Some(Cnf::Certificate(x5t)),
    };
    if !proven {
        return Err(Error::invalid_grant());
    }
    // A token issued to a client stays that client's: no client trades
    // another's token for one of its own.
    if issued_to(ctx, &v).is_some_and(|c| c != client.login) {
        return Err(Error::invalid_grant());
    }
    // The principal as it is now: one removed, deactivated or blocked
    // since the subject token was issued gets nothing new.
    let accounts = ctx.issuer.accounts;
    let principal = match (accounts.subject, accounts.form) {
        // Its subject is the user's id; the login is its `username`, and
        // the user now there must still have that id.
        (SubjectRule::Id, _) => live_user(ctx, v.claims.str("username").unwrap_or(&sub))
            .await?
            .filter(|p| accounts.subject_of(p) == sub),
        // A standard client's own token (client_credentials): the client
        // is still listed (no user shares its name: `portero check`).
        (_, AccountForm::Standard) if v.claims.str("client_id") == Some(sub.as_str()) => {
            ctx.settings.clients.get(&sub).cloned()
        }
        _ => live_user(ctx, &sub).await?,
    };
    if principal.is_none() {
        return Err(Error::invalid_grant());
    }
    let lineage = match v.jti() {
        Some(jti) => Lineage::Token(jti.to_string()),
        None => Lineage::None,
    };
    let until = v.exp;
    // Verified above: the payload is the issuer's own.
    let payload = token.split('.').nth(1).unwrap_or_default();
    let mut claims: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(Error::invalid_grant)?;
    let held = match (claims.get("scope"), claims.get("permissions")) {
        (Some(Value::String(s)), _) => words(Some(s)),
        (_, Some(Value::Array(list))) => list
            .iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    // Its `aud` stays: a token for one resource is not traded for one
    // that opens every route.
    for registered in [
        "iss",
        "sub",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "scope",
        "cnf",
    ] {
        claims.remove(registered);
    }
    Ok(Subject {
        sub,
        claims,
        held,
        lineage,
        until,
    })
}

/// A live refresh token of the legacy login-refresh endpoint: the user's
/// subject and claims, and the scopes the client may ask for.
async fn legacy_refresh(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    token: &str,
    client: &Principal,
) -> Result<Subject, Error> {
    // An OAuth 2.0 refresh token is traded nowhere; a replaced one
    // presented here is a reuse all the same.
    let record = ctx
        .issuer
        .refreshes()
        .find(token, None, req.now)
        .await?
        .ok_or_else(Error::invalid_grant)?;
    let user = live_user(ctx, &record.login)
        .await?
        .ok_or_else(Error::invalid_grant)?;
    let claims = profile::claims(ctx.issuer.accounts.form, &user, &client.permissions);
    Ok(Subject {
        sub: record.sub,
        claims,
        held: client.permissions.clone(),
        lineage: Lineage::Refresh(sha256_base64url(token)),
        until: Some(record.expires_at),
    })
}
