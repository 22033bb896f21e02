//! Client authentication by signed assertion (RFC 7523 §2.2, RFC 7521
//! §4.2): `client_assertion_type` jwt-bearer and a JWT in
//! `client_assertion`. The client signs it with a key of its `jwks` or
//! `jwks_uri` (`private_key_jwt`, `iss` and `sub` its client id), or an
//! outside issuer it is `federated` with signed it about the client's
//! outside identity (a Kubernetes service account's token, a CI job's).
//! Either way: the key's own algorithm, an audience that is this issuer
//! alone, an `exp` no later than a day ahead, and a `jti` used once on
//! every instance (a claim in the store until the assertion lapses).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde::Deserialize;
use sha2::Digest;

use super::super::client_keys::{keys_of, Unavailable};
use super::super::form::Form;
use super::super::{Endpoints, Error, Request};
use super::{invalid_client, standing, FAILED};
use crate::config::{ClientAuth, ClientKeys, Principal};
use crate::identity::Reason;
use crate::jwk::alg_name;
use crate::jwk::ExternalKey;

/// The one `client_assertion_type` portero takes.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The furthest ahead an assertion's `exp` may be: its `jti` is held
/// that long.
const MAX_LIFETIME: i64 = 24 * 3600;

/// Whether the request authenticates its client by assertion.
pub fn presented(form: &Form) -> bool {
    form.sent("client_assertion") || form.sent("client_assertion_type")
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// The claims an assertion must carry, read before it is verified (to
/// find its client) and checked after.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: f64,
    nbf: Option<f64>,
    iat: Option<f64>,
    jti: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The assertion's parts, decoded but not verified.
struct Assertion<'a> {
    text: &'a str,
    header: Header,
    claims: Claims,
}

/// The client the request's assertion authenticates, or why not. Every
/// refusal is `invalid_client` to the client; the WARN line and the
/// metric say which (`bad_assertion`, `replayed`, `unknown_client`, ...).
pub async fn authenticate(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
) -> Result<Arc<Principal>, Error> {
    if req.authorization.is_some() || form.sent("client_secret") {
        return Err(Error::invalid_request(
            "more than one client authentication method",
        ));
    }
    let (Some(kind), Some(text)) = (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) else {
        return Err(Error::invalid_request(
            "client_assertion and client_assertion_type go together",
        ));
    };
    let named = form.get("client_id").unwrap_or_default();
    let refused = |id: &str, why: Reason| {
        ctx.issuer.logins.refuse_client(id, why);
        match why {
            Reason::Unavailable => Error::unavailable(),
            _ => invalid_client(Some(ClientAuth::PrivateKeyJwt), FAILED),
        }
    };
    if kind != JWT_BEARER {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("client_assertion_type must be {JWT_BEARER}"),
        ));
    }
    let assertion = decode(text).map_err(|why| refused(named, why))?;
    let client = client_of(ctx, named, &assertion.claims).map_err(|why| refused(named, why))?;
    let id = client.login.as_str();
    if client.auth_method != Some(ClientAuth::PrivateKeyJwt) {
        return Err(refused(id, Reason::AuthMethod));
    }
    verify(ctx, &client, &assertion)
        .await
        .map_err(|why| refused(id, why))?;
    check_claims(ctx, req.now, &assertion.claims).map_err(|why| refused(id, why))?;
    once(ctx, &assertion.claims, req.now)
        .await
        .map_err(|why| refused(id, why))?;
    match standing(ctx, &client) {
        Some(why) => Err(refused(id, why)),
        None => Ok(client),
    }
}

fn decode(text: &str) -> Result<Assertion<'_>, Reason> {
    let mut parts = text.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::BadAssertion);
    };
    let b64 = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| Reason::BadAssertion)
    };
    let header: Header = serde_json::from_slice(&b64(header)?).map_err(|_| Reason::BadAssertion)?;
    if header.crit.is_some() {
        return Err(Reason::BadAssertion);
    }
    let claims: Claims =
        serde_json::from_slice(&b64(payload)?).map_err(|_| Reason::BadAssertion)?;
    Ok(Assertion {
        text,
        header,
        claims,
    })
}

/// The configured client an assertion is about: the one `client_id`
/// names, else its `sub` when it signed the assertion itself (`iss` =
/// `sub`), else the one federated with its issuer and subject.
fn client_of(ctx: &Endpoints<'_>, named: &str, claims: &Claims) -> Result<Arc<Principal>, Reason> {
    let clients = ctx.clients();
    let found = if !named.is_empty() {
        clients.get(named).cloned()
    } else if claims.iss == claims.sub {
        clients.get(&claims.sub).cloned()
    } else {
        clients
            .iter()
            .find(|c| federation_of(ctx, c, claims).is_some())
            .and_then(|c| clients.get(&c.login).cloned())
    };
    found.ok_or(Reason::UnknownClient)
}

/// The provider issuer (its index among the keys) through which `claims`
/// are about `client`: one of its `federated` identities.
fn federation_of(ctx: &Endpoints<'_>, client: &Principal, claims: &Claims) -> Option<usize> {
    let keys = ctx.validator.keys();
    client.client.federated.iter().find_map(|f| {
        let index = keys.issuer_index(&f.issuer)?;
        (f.subject == claims.sub && keys.issuers[index].claims(&claims.iss)).then_some(index)
    })
}

/// The assertion's signature: with the client's own keys when it names
/// the client as its issuer and subject, else with the keys of the
/// provider issuer it is federated through.
async fn verify(
    ctx: &Endpoints<'_>,
    client: &Principal,
    assertion: &Assertion<'_>,
) -> Result<(), Reason> {
    let claims = &assertion.claims;
    let own = claims.iss == client.login && claims.sub == client.login;
    if let (true, Some(keys)) = (own, &client.client.keys) {
        return own_signature(keys, assertion).await;
    }
    let Some(provider) = federation_of(ctx, client, claims) else {
        return Err(Reason::BadAssertion);
    };
    // The provider's keys as routes use them: the key's own algorithm,
    // its issuer's `iss`, which must be the provider's (another issuer
    // of the config with the same `iss` and keys says the same).
    let keys = ctx.validator.keys();
    match ctx.validator.verify_for_client(assertion.text) {
        Ok(v) if keys.issuers[provider].claims(v.iss()) => Ok(()),
        _ => Err(Reason::BadAssertion),
    }
}

async fn own_signature(keys: &ClientKeys, assertion: &Assertion<'_>) -> Result<(), Reason> {
    let unavailable = |Unavailable(why): Unavailable| {
        tracing::warn!(target: "portero::oauth2", error = %why, "a client's keys are not at hand");
        Reason::Unavailable
    };
    let held = keys_of(keys, false).await.map_err(unavailable)?;
    if signed_by(&held, assertion) {
        return Ok(());
    }
    // A key the set lacks: the client may have rotated its keys.
    let kid = assertion.header.kid.as_deref();
    let lacks = kid.is_some_and(|kid| held.iter().all(|k| k.kid.as_deref() != Some(kid)));
    if lacks && matches!(keys, ClientKeys::Uri(_)) {
        let again = keys_of(keys, true).await.map_err(unavailable)?;
        if signed_by(&again, assertion) {
            return Ok(());
        }
    }
    Err(Reason::BadAssertion)
}

/// Whether a key of `keys` (the one its `kid` names, or any when it names
/// none) verifies the assertion with that key's own algorithm.
fn signed_by(keys: &[ExternalKey], assertion: &Assertion<'_>) -> bool {
    let Some((message, signature)) = assertion.text.rsplit_once('.') else {
        return false;
    };
    let kid = assertion.header.kid.as_deref();
    keys.iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .filter(|k| alg_name(k.alg) == assertion.header.alg)
        .any(|k| {
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &k.decoding, k.alg)
                .unwrap_or(false)
        })
}

/// The audience is this issuer alone (its identifier, or its token
/// endpoint's URL, as clients of OpenID Connect Core §9 write it), and
/// the assertion is live now and lapses within a day.
fn check_claims(ctx: &Endpoints<'_>, now: i64, claims: &Claims) -> Result<(), Reason> {
    let issuer = ctx.settings.issuer_id.as_str();
    let token_endpoint = format!("{issuer}/token");
    let ours = |aud: &String| aud == issuer || *aud == token_endpoint;
    let for_us = match &claims.aud {
        Audience::One(aud) => ours(aud),
        // Every audience ours: one that is also another server's could
        // be replayed here by that server.
        Audience::Many(list) => !list.is_empty() && list.iter().all(ours),
    };
    let leeway = ctx.validator.leeway() as f64;
    let now = now as f64;
    let live = claims.exp > now - leeway
        && claims.exp <= now + (MAX_LIFETIME as f64)
        && claims.nbf.is_none_or(|nbf| nbf <= now + leeway)
        && claims.iat.is_none_or(|iat| iat <= now + leeway);
    let jti_usable = !claims.jti.is_empty() && claims.jti.len() <= 256;
    match for_us && live && jti_usable {
        true => Ok(()),
        false => Err(Reason::BadAssertion),
    }
}

/// Takes the assertion's `jti` for its issuer and subject, in the store
/// (every instance sees it) until it lapses: a second use is a replay.
async fn once(ctx: &Endpoints<'_>, claims: &Claims, now: i64) -> Result<(), Reason> {
    let mut digest = sha2::Sha256::new();
    for part in [&claims.iss, &claims.sub, &claims.jti] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let digest = URL_SAFE_NO_PAD.encode(digest.finalize());
    let key = format!("assertion:{}:{digest}", ctx.issuer.config.name);
    let ttl = held_for(claims.exp, now, ctx.validator.leeway());
    match ctx.issuer.store.claim(&key, ttl).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Reason::Replayed),
        Err(_) => Err(Reason::Unavailable),
    }
}

/// How long a `jti` is held: past the last second the assertion is live
/// (`exp`, whose fraction counts as its next second, plus the leeway);
/// `check_claims` bounds `exp`.
fn held_for(exp: f64, now: i64, leeway: i64) -> Duration {
    let live_until = (exp.ceil() as i64).saturating_add(leeway);
    Duration::from_secs(live_until.saturating_sub(now).max(0) as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_held_past_the_last_moment_its_assertion_is_live() {
        // Live while now < exp + leeway: 130.5 here, so held past 131.
        assert_eq!(held_for(100.5, 0, 30), Duration::from_secs(132));
        assert_eq!(held_for(100.0, 0, 30), Duration::from_secs(131));
        // A day ahead with a long leeway: held for both.
        let day = MAX_LIFETIME as f64;
        assert_eq!(
            held_for(day, 0, 7200),
            Duration::from_secs(86_400 + 7200 + 1)
        );
        assert_eq!(held_for(10.0, 100, 0), Duration::from_secs(1));
    }
}
