//! The token endpoint (RFC 6749 §3.2): `client_credentials` (§4.4) for a
//! client dialect's principals; `password` (§4.3, when enabled) and
//! `refresh_token` (§6) for a user dialect's users; token exchange (RFC
//! 8693) of a live token of the issuer for a standard one. Access tokens
//! are as RFC 9068 describes, signed by the issuer's own key, so every
//! route that accepts the issuer accepts them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::client::authenticate;
use super::code::{redeem, CodeGrant};
use super::form::Form;
use super::mint::{account_claims, answer, live_user, mint, narrowed, words, Issued};
use super::refresh::{self, invalid_grant};
use super::{issued_to, Answer, Endpoints, Error, Request};
use crate::config::{AccountForm, Principal, SubjectRule};
use crate::identity::Denied;
use crate::store::RefreshRecord;
use crate::tokens::sha256_base64url;

pub const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// The grants portero knows, each by its registered name: a request is
/// dispatched by name, so a grant added here is served only once its own
/// arm says how (no grant falls through to another's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    AuthorizationCode,
    ClientCredentials,
    Password,
    RefreshToken,
    TokenExchange,
}

impl Grant {
    const ALL: [Grant; 5] = [
        Grant::AuthorizationCode,
        Grant::ClientCredentials,
        Grant::Password,
        Grant::RefreshToken,
        Grant::TokenExchange,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::RefreshToken => "refresh_token",
            Grant::TokenExchange => EXCHANGE,
        }
    }

    /// The grant `name` names; `None` for one portero does not know.
    fn named(name: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// The grants the issuer serves, as its metadata lists them.
pub fn grants(ctx: &Endpoints<'_>) -> Vec<Grant> {
    let form = ctx.issuing.accounts.form;
    let mut grants = Vec::new();
    if ctx.settings.authorization_code {
        grants.push(Grant::AuthorizationCode);
    }
    if form.has_clients() || form == AccountForm::Standard {
        grants.push(Grant::ClientCredentials);
    } else if ctx.settings.password_grant {
        grants.push(Grant::Password);
    }
    if ctx.settings.authorization_code || ctx.settings.password_grant {
        grants.push(Grant::RefreshToken);
    }
    grants.push(Grant::TokenExchange);
    grants
}

pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Result<Answer, Error> {
    let form = Form::parse(req.body, req.form)?;
    let name = form.required("grant_type")?;
    let client = authenticate(ctx, req, &form).await?;
    let client: &Principal = &client;
    // RFC 6749 §5.2: a grant unknown here is as one not served here.
    let Some(grant) = Grant::named(name) else {
        return Err(not_served(name));
    };
    permitted(ctx, client, grant)?;
    match grant {
        Grant::AuthorizationCode => {
            let asked = CodeGrant::of(&form)?;
            let issued = redeem(ctx, req.now, &asked, client).await?;
            Ok(issued.answer(req.now))
        }
        Grant::ClientCredentials => {
            let scope = narrowed(form.get("scope"), &client.permissions)?;
            let mut claims = account_claims(ctx.issuing.accounts.form, client, &scope);
            if let Some(resource) = super::auth_request::resource(ctx, form.get("resource"))? {
                claims.insert("aud".into(), json!(resource));
            }
            let minted = mint(ctx, req.now, &client.login, claims, client, &scope, None)?;
            Ok(answer(req.now, minted, &scope, &[]))
        }
        Grant::Password => password(ctx, req, &form, client).await,
        Grant::RefreshToken => {
            let asked = RefreshGrant::of(&form)?;
            let issued = refresh_grant(ctx, req.now, &asked, client).await?;
            Ok(issued.answer(req.now))
        }
        Grant::TokenExchange => exchange(ctx, req, &form, client).await,
    }
}

/// Whether `client` may have `grant` here: the issuer serves it (RFC
/// 6749 §5.2 `unsupported_grant_type`) and the client may use it
/// (`unauthorized_client`). Asked of every grant, by either door.
pub(super) fn permitted(
    ctx: &Endpoints<'_>,
    client: &Principal,
    grant: Grant,
) -> Result<(), Error> {
    if !grants(ctx).contains(&grant) {
        return Err(not_served(grant.name()));
    }
    if !client.client.may_use(grant.name()) {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            format!("this client may not use {:?}", grant.name()),
        ));
    }
    Ok(())
}

fn not_served(name: &str) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        format!("{name:?} is not a grant this issuer serves"),
    )
}

/// RFC 6749 §4.3: the user's own login, with the legacy endpoint's lockout.
async fn password(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    client: &Principal,
) -> Result<Answer, Error> {
    let username = form.required("username")?;
    let password = form.required("password")?;
    let scope = narrowed(form.get("scope"), &client.permissions)?;
    let user = match ctx
        .issuing
        .logins
        .log_in(username, password, req.client, req.now)
        .await
    {
        Ok(user) => user,
        Err(Denied::BadCredentials | Denied::Blocked) => {
            return Err(Error::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "wrong username or password",
            ))
        }
        Err(Denied::Locked) => {
            return Err(Error::new(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_grant",
                "too many failed attempts; try again later",
            ))
        }
        Err(Denied::Unavailable) => return Err(Error::unavailable()),
    };
    let accounts = ctx.issuing.accounts;
    let sub = accounts.subject_of(&user);
    let claims = account_claims(accounts.form, &user, &scope);
    let minted = mint(ctx, req.now, &sub, claims, client, &scope, None)?;
    let record = RefreshRecord {
        issuer: ctx.issuing.issuer.name.clone(),
        sub,
        login: user.login.clone(),
        issued_at: req.now,
        expires_at: req.now + ctx.issuing.routes.refresh_ttl.as_secs() as i64,
        tokens: vec![(minted.jti.clone(), minted.exp.unwrap_or(req.now))],
        client_id: Some(client.login.clone()),
        rotated_to: None,
        scope: Some(scope.join(" ")),
        resource: None,
    };
    let refresh_token = refresh::store(ctx, &record).await?;
    Ok(answer(
        req.now,
        minted,
        &scope,
        &[("refresh_token", refresh_token)],
    ))
}

/// A `refresh_token` grant as asked (RFC 6749 §6, RFC 8707 §2.2), by
/// the token endpoint's form or in process.
#[derive(Clone, Copy)]
pub struct RefreshGrant<'a> {
    pub refresh_token: &'a str,
    /// At most the scope first granted; all of it when `None`.
    pub scope: Option<&'a str>,
    /// The resource named again, if it is.
    pub resource: Option<&'a str>,
}

impl<'a> RefreshGrant<'a> {
    /// The grant a token request's form asks for.
    fn of(form: &'a Form) -> Result<RefreshGrant<'a>, Error> {
        Ok(RefreshGrant {
            refresh_token: form.required("refresh_token")?,
            scope: form.get("scope"),
            resource: form.get("resource"),
        })
    }
}

/// RFC 6749 §6: a new access token and a new refresh token for the old
/// one, for the same user, with at most the scope first granted; for the
/// client `client` (authenticated, or named in process), at `now`.
pub(super) async fn refresh_grant(
    ctx: &Endpoints<'_>,
    now: i64,
    grant: &RefreshGrant<'_>,
    client: &Principal,
) -> Result<Issued, Error> {
    let token = grant.refresh_token;
    let Some(found) = refresh::find(ctx, token, &client.login, now).await? else {
        return Err(invalid_grant());
    };
    let scope = narrowed(grant.scope, &words(found.scope.as_deref()))?;
    // RFC 8707 §2.2: a refresh may name the resource again, the same one.
    if grant
        .resource
        .is_some_and(|r| found.resource.as_deref() != Some(r))
    {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "the refresh token is not for that resource",
        ));
    }
    // A user gone, deactivated or blocked since: the family ends here.
    let Some(user) = live_user(ctx, &found.login).await? else {
        refresh::revoke_family(ctx, &sha256_base64url(token)).await?;
        return Err(invalid_grant());
    };
    let mut claims = account_claims(ctx.issuing.accounts.form, &user, &scope);
    if let Some(resource) = &found.resource {
        claims.insert("aud".into(), json!(resource));
    }
    let minted = mint(ctx, now, &found.sub, claims, client, &scope, None)?;
    let Some(refresh_token) = refresh::rotate(ctx, token, &found, &minted, now).await? else {
        return Err(invalid_grant());
    };
    Ok(Issued {
        minted,
        scope,
        refresh_token: Some(refresh_token),
        id_token: None,
    })
}

/// RFC 8693: a live token of the issuer (a JWT, legacy or standard, or
/// the login-refresh dialect's refresh token) for a standard access token
/// with the same subject; the scope can only narrow. The new token joins
/// its subject token's lineage: it expires no later, and revoking the
/// subject token (its jti, its refresh family, its principal) revokes it,
/// so trading a token again and again never outlives or outruns it.
async fn exchange(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    client: &Principal,
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
        JWT_TYPE | ACCESS_TYPE => issuers_jwt(ctx, req, subject_token, client).await?,
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
    let minted = mint(ctx, req.now, &sub, claims, client, &scope, until)?;
    let child = (minted.jti.clone(), minted.exp.unwrap_or(req.now));
    // Recorded before it is handed out, in one step with any revocation
    // of the subject token: one revoked meanwhile refuses it here.
    let store = ctx.issuing.store;
    let joined = match lineage {
        Lineage::Token(parent) => store.derive_token(&parent, &child).await,
        Lineage::Refresh(hash) => store.extend_refresh(&hash, &[child], req.now).await,
        Lineage::None => Ok(true),
    }
    .map_err(|_| Error::unavailable())?;
    if !joined {
        return Err(invalid_grant());
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
) -> Result<Subject, Error> {
    let validator = ctx.validator;
    let v = validator
        .verify(token)
        .ok()
        .filter(|v| v.issuer == ctx.issuing.index)
        .filter(|v| validator.check_time(v, req.now).is_ok() && !validator.is_revoked(v))
        .ok_or_else(invalid_grant)?;
    let sub = v.sub().ok_or_else(invalid_grant)?.to_string();
    // A token issued to a client stays that client's: no client trades
    // another's token for one of its own.
    if issued_to(ctx, &v).is_some_and(|c| c != client.login) {
        return Err(invalid_grant());
    }
    // The principal as it is now: one removed, deactivated or blocked
    // since the subject token was issued gets nothing new.
    let accounts = ctx.issuing.accounts;
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
        return Err(invalid_grant());
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
        .ok_or_else(invalid_grant)?;
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
    let hash = sha256_base64url(token);
    let found = ctx
        .issuing
        .store
        .get_refresh(&hash)
        .await
        .map_err(|_| Error::unavailable())?
        .filter(|r| r.issuer == ctx.issuing.issuer.name);
    // An OAuth 2.0 refresh token is traded nowhere; a replaced one
    // presented here is a reuse all the same.
    if found.as_ref().is_some_and(|r| r.rotated_to.is_some()) {
        refresh::revoke_reused(ctx, &hash).await?;
    }
    let record = found
        .filter(|r| r.client_id.is_none())
        .filter(|r| r.expires_at > req.now)
        .filter(|r| {
            !ctx.issuing.revocations.is_revoked(
                &ctx.issuing.issuer.iss,
                Some(&r.sub),
                None,
                Some(r.issued_at),
            )
        })
        .ok_or_else(invalid_grant)?;
    let user = live_user(ctx, &record.login)
        .await?
        .ok_or_else(invalid_grant)?;
    let claims = account_claims(ctx.issuing.accounts.form, &user, &client.permissions);
    Ok(Subject {
        sub: record.sub,
        claims,
        held: client.permissions.clone(),
        lineage: Lineage::Refresh(hash),
        until: Some(record.expires_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_is_dispatched_by_its_own_name() {
        for grant in Grant::ALL {
            assert_eq!(Grant::named(grant.name()), Some(grant));
        }
        assert_eq!(
            Grant::named("urn:ietf:params:oauth:grant-type:token-exchange"),
            Some(Grant::TokenExchange)
        );
        // A grant portero does not know is none of those it knows.
        for unknown in [
            "implicit",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange ",
            "Password",
            "",
        ] {
            assert_eq!(Grant::named(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn scope_can_only_narrow() {
        let held = vec!["read".to_string(), "write".to_string()];
        assert_eq!(narrowed(None, &held).unwrap(), held);
        assert_eq!(narrowed(Some("read"), &held).unwrap(), vec!["read"]);
        assert_eq!(
            narrowed(Some("write read write"), &held).unwrap(),
            vec!["write", "read"]
        );
        let e = narrowed(Some("read admin"), &held).unwrap_err();
        assert_eq!(e.code, "invalid_scope");
        assert_eq!(narrowed(Some("x"), &[]).unwrap_err().code, "invalid_scope");
    }
}
