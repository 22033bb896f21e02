//! What every grant hands out: access tokens minted for a subject and a
//! client (RFC 9068), the token answer (RFC 6749 §5.1), and the scopes a
//! grant may give (the claims an account's tokens carry are its profile,
//! `identity::profile`).

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{Answer, Endpoints, Error};
use crate::config::Principal;
use crate::tokens::{Minted, Stamp};

/// The principal `login` names, if it may still log in.
pub(super) async fn live_user(
    ctx: &Endpoints<'_>,
    login: &str,
) -> Result<Option<Arc<Principal>>, Error> {
    Ok(ctx
        .issuer
        .logins
        .principal(login)
        .await
        .map_err(|_| Error::unavailable())?
        .filter(|u| u.active && !u.blocked))
}

/// Signs an access token for `sub` obtained by `client` (RFC 9068 §2.2),
/// expiring after the issuer's token lifetime or at `until`, if sooner.
pub(super) fn mint(
    ctx: &Endpoints<'_>,
    now: i64,
    sub: &str,
    claims: Map<String, Value>,
    client: &Principal,
    scope: &[String],
    until: Option<i64>,
) -> Result<Minted, Error> {
    mint_as(ctx, now, sub, claims, client, scope, until, None)
}

/// [`mint`], with the `jti` chosen beforehand.
#[allow(clippy::too_many_arguments)]
pub(super) fn mint_as(
    ctx: &Endpoints<'_>,
    now: i64,
    sub: &str,
    mut claims: Map<String, Value>,
    client: &Principal,
    scope: &[String],
    until: Option<i64>,
    jti: Option<&str>,
) -> Result<Minted, Error> {
    let mut ttl = ctx.issuer.config.token_ttl;
    if let Some(until) = until {
        // A subject token within the validator's leeway past its `exp`
        // has nothing left to hand on.
        let left = u64::try_from(until - now)
            .ok()
            .filter(|&left| left > 0)
            .ok_or_else(Error::invalid_grant)?;
        ttl = ttl.min(std::time::Duration::from_secs(left));
    }
    claims.insert("client_id".into(), Value::String(client.login.clone()));
    if !scope.is_empty() {
        claims.insert("scope".into(), Value::String(scope.join(" ")));
    }
    let stamp = Stamp {
        iss: &ctx.settings.issuer_id,
        typ: Some("at+jwt"),
        endpoint: "oauth2",
        jti,
    };
    // A DPoP-bound token says so in its type; a certificate-bound one
    // stays `Bearer` (RFC 8705 §3).
    let bound = claims.get("cnf").is_some_and(|c| c.get("jkt").is_some());
    let mut minted = ctx
        .issuer
        .mint_with(stamp, sub, claims, now, Some(ttl))
        .map_err(|_| Error::unavailable())?;
    minted.bound = bound;
    Ok(minted)
}

/// What a token request proved it holds, which its tokens are bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cnf<'a> {
    /// A DPoP key, by its RFC 7638 thumbprint (RFC 9449 §6.1: `cnf.jkt`).
    Dpop(&'a str),
    /// The client certificate of a mutual-TLS request, by its SHA-256
    /// thumbprint (RFC 8705 §3.1: `cnf["x5t#S256"]`).
    Certificate(&'a str),
}

impl<'a> Cnf<'a> {
    /// The DPoP key's thumbprint, if it is one.
    pub fn jkt(self) -> Option<&'a str> {
        match self {
            Cnf::Dpop(jkt) => Some(jkt),
            Cnf::Certificate(_) => None,
        }
    }
}

/// Binds the token about to be minted to what the request proved, if
/// anything.
pub(super) fn bind(claims: &mut Map<String, Value>, bound: Option<Cnf<'_>>) {
    let cnf = match bound {
        None => return,
        Some(Cnf::Dpop(jkt)) => json!({ "jkt": jkt }),
        Some(Cnf::Certificate(x5t)) => json!({ "x5t#S256": x5t }),
    };
    claims.insert("cnf".into(), cnf);
}

/// The DPoP key a refresh token is bound to (RFC 9449 §5): a public
/// client's, whose refresh token no secret guards; a confidential
/// client's is bound to its credentials already.
pub(super) fn refresh_binding(client: &Principal, bound: Option<Cnf<'_>>) -> Option<String> {
    let jkt = bound.and_then(Cnf::jkt);
    jkt.filter(|_| client.client.public).map(str::to_string)
}

/// The certificate a public client's refresh token is bound to (RFC 8705 §4).
pub(super) fn refresh_certificate(client: &Principal, bound: Option<Cnf<'_>>) -> Option<String> {
    match bound {
        Some(Cnf::Certificate(x5t)) if client.client.public => Some(x5t.to_string()),
        _ => None,
    }
}

/// What the code and refresh grants hand out, whichever door asked: the
/// token endpoint writes it as its answer ([`Issued::answer`]), portero's
/// own sign-ins take it as it is (`in_process`).
pub struct Issued {
    pub minted: Minted,
    pub scope: Vec<String>,
    pub refresh_token: Option<String>,
    /// OpenID Connect Core §3.1.3.3: where the code's scope held `openid`.
    pub id_token: Option<String>,
}

impl Issued {
    /// The token endpoint's answer (RFC 6749 §5.1).
    pub(super) fn answer(self, now: i64) -> Answer {
        let extra: Vec<(&str, String)> = [
            ("refresh_token", self.refresh_token),
            ("id_token", self.id_token),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
        answer(now, self.minted, &self.scope, &extra)
    }
}

/// RFC 6749 §5.1, with `extra` members (a refresh token, an ID token,
/// RFC 8693's `issued_token_type`).
pub(super) fn answer(
    now: i64,
    minted: Minted,
    scope: &[String],
    extra: &[(&str, String)],
) -> Answer {
    let token_type = if minted.bound { "DPoP" } else { "Bearer" };
    let mut body = json!({
        "access_token": minted.token,
        "token_type": token_type,
        "expires_in": minted.exp.map_or(0, |exp| exp - now),
    });
    if !scope.is_empty() {
        body["scope"] = Value::String(scope.join(" "));
    }
    for (name, value) in extra {
        body[*name] = Value::String(value.clone());
    }
    Answer::ok(body)
}

pub(super) fn words(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// OpenID Connect's scope for a refresh token (Core §11): a sign-in that
/// asks for `openid` gets one only with it.
pub(super) const OFFLINE_ACCESS: &str = "offline_access";

/// The scopes a token gets: those asked for, each one held (`invalid_scope`
/// otherwise), or all that are held when none are asked for (RFC 6749 §3.3).
pub(super) fn narrowed(asked: Option<&str>, held: &[String]) -> Result<Vec<String>, Error> {
    let Some(asked) = asked else {
        return Ok(held.to_vec());
    };
    let mut granted: Vec<String> = Vec::new();
    for scope in words(Some(asked)) {
        if !held.contains(&scope) {
            return Err(Error::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                format!("{scope:?} is not a scope held here"),
            ));
        }
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(granted)
}

/// How the person signed in, in a token's claims: `amr` (RFC 8176) and
/// the `acr` it amounts to. Nothing where no one signed in at a page.
pub fn signed_in_by(claims: &mut Map<String, Value>, amr: &[String]) {
    if amr.is_empty() {
        return;
    }
    claims.insert("amr".into(), json!(amr));
    claims.insert("acr".into(), json!(crate::factors::acr_of(amr)));
}
