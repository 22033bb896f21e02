//! Authorization codes: made by the authorization endpoint once a user has
//! signed in (`authorize`), redeemed at the token endpoint (RFC 6749
//! §4.1.3, OAuth 2.1 §4.1.3). A code is 256 random bits kept only as its
//! hash, lives 60 s, and is bound to its client, redirect URI, PKCE
//! challenge, scope and resource. It is redeemed once: a second
//! redemption revokes what the first one gave (RFC 6749 §4.1.2).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::form::Form;
use super::mint::{live_user, mint_as, words, Issued, OFFLINE_ACCESS};
use super::{oidc, Endpoints, Error};
use crate::auth::revocation::Revocation;
use crate::config::Principal;
use crate::identity::profile;
use crate::store::{CodeRecord, RefreshRecord};
use crate::tokens::random_id;
use crate::tokens::sha256_base64url;

/// How long a code may wait for its redemption (RFC 6749 §4.1.2: "a
/// maximum authorization code lifetime of 10 minutes is RECOMMENDED";
/// OAuth 2.1 asks for short).
pub const CODE_TTL: i64 = 60;

/// Codes are kept under this hash, never as themselves, and under their
/// issuer's name: a code taken to another issuer finds nothing there (and
/// is not used up by it).
fn code_hash(issuer: &str, code: &str) -> String {
    let mut digest = Sha256::new();
    digest.update((issuer.len() as u64).to_be_bytes());
    digest.update(issuer.as_bytes());
    digest.update(code.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.finalize())
}

/// Stores `record` and returns its code.
pub async fn make(ctx: &Endpoints<'_>, record: &CodeRecord) -> Result<String, Error> {
    let code = random_id(32);
    ctx.issuer
        .store
        .put_code(&code_hash(&ctx.issuer.config.name, &code), record)
        .await
        .map_err(|_| Error::unavailable())?;
    Ok(code)
}

/// PKCE (RFC 7636 §4.6): BASE64URL(SHA256(verifier)) is the challenge.
/// A verifier is 43 to 128 unreserved characters (§4.1).
fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// An `authorization_code` grant as asked (RFC 6749 §4.1.3, RFC 7636
/// §4.5, RFC 8707 §2.2), by the token endpoint's form or in process.
#[derive(Clone, Copy)]
pub struct CodeGrant<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
    /// The resource named again, if it is.
    pub resource: Option<&'a str>,
    /// What the request proved it holds (RFC 9449 §5, RFC 8705 §3).
    pub bound: Option<super::mint::Cnf<'a>>,
}

impl<'a> CodeGrant<'a> {
    /// The grant a token request's form asks for.
    pub(super) fn of(form: &'a Form) -> Result<CodeGrant<'a>, Error> {
        Ok(CodeGrant {
            code: form.required("code")?,
            redirect_uri: form.required("redirect_uri")?,
            code_verifier: form.required("code_verifier")?,
            resource: form.get("resource"),
            bound: None,
        })
    }
}

/// The `authorization_code` grant: tokens for the code's user, for the
/// client `client` (authenticated, or named in process), at `now`.
pub async fn redeem(
    ctx: &Endpoints<'_>,
    now: i64,
    grant: &CodeGrant<'_>,
    client: &Principal,
) -> Result<Issued, Error> {
    let hash = code_hash(&ctx.issuer.config.name, grant.code);
    let store = ctx.issuer.store;
    let record = store
        .redeem_code(&hash)
        .await
        .map_err(|_| Error::unavailable())?
        .filter(|r| r.issuer == ctx.issuer.config.name);
    // The store forgets a code when its 60 s are up.
    let Some(record) = record else {
        return Err(refused(ctx, &client.login, "unknown or expired"));
    };
    if record.used {
        revoke_first_use(ctx, &record).await;
        return Err(refused(
            ctx,
            &client.login,
            "already used: what its first use gave is revoked",
        ));
    }
    if let Some(reason) = unbound(&record, grant, &client.login, now) {
        return Err(refused(ctx, &client.login, reason));
    }
    // The user's tokens revoked since they signed in (an admin's reset of
    // their factors, a revocation by subject): their code goes with them.
    let revoked = ctx.issuer.revocations.is_revoked(
        &ctx.issuer.config.iss,
        Some(&record.sub),
        None,
        Some(record.auth_time),
    );
    if revoked {
        return Err(refused(
            ctx,
            &client.login,
            "its user's tokens were revoked since the sign-in",
        ));
    }
    let Some(user) = live_user(ctx, &record.login).await? else {
        return Err(refused(
            ctx,
            &client.login,
            "the user is gone, inactive or blocked",
        ));
    };
    let scope = words(Some(&record.scope));
    let mut claims = profile::claims(ctx.issuer.accounts.form, &user, &scope);
    super::mint::signed_in_by(&mut claims, &record.amr);
    super::mint::bind(&mut claims, grant.bound);
    if let Some(resource) = &record.resource {
        claims.insert("aud".into(), json!(resource));
    }
    let minted = mint_as(
        ctx,
        now,
        &record.sub,
        claims,
        client,
        &scope,
        None,
        Some(&record.jti),
    )?;
    let mut refresh_token = None;
    if refreshes(client, &scope) {
        let refresh = refresh_record(ctx, &record, &user.login, client, grant, &minted, now);
        let token = ctx.issuer.refreshes().issue(&refresh).await?;
        issued(ctx, &hash, &record, &sha256_base64url(&token)).await?;
        refresh_token = Some(token);
    } else {
        issued(ctx, &hash, &record, "").await?;
    }
    let id_token = match scope.iter().any(|s| s == "openid") {
        true => Some(oidc::id_token(ctx, now, &record, &client.login, &minted)?),
        false => None,
    };
    Ok(Issued {
        minted,
        scope,
        refresh_token,
        id_token,
    })
}

/// The refresh family a redeemed code begins: its user's, its client's,
/// with the code's scope, resource and how the user signed in, bound as the
/// redemption was.
fn refresh_record(
    ctx: &Endpoints<'_>,
    record: &CodeRecord,
    login: &str,
    client: &Principal,
    grant: &CodeGrant<'_>,
    minted: &crate::tokens::Minted,
    now: i64,
) -> RefreshRecord {
    RefreshRecord {
        issuer: ctx.issuer.config.name.clone(),
        sub: record.sub.clone(),
        login: login.to_string(),
        issued_at: now,
        expires_at: now + ctx.issuer.routes.refresh_ttl.as_secs() as i64,
        tokens: vec![(minted.jti.clone(), minted.exp.unwrap_or(now))],
        client_id: Some(client.login.clone()),
        rotated_to: None,
        scope: Some(record.scope.clone()),
        resource: record.resource.clone(),
        amr: record.amr.clone(),
        jkt: super::mint::refresh_binding(client, grant.bound),
        x5t: super::mint::refresh_certificate(client, grant.bound),
    }
}

/// Whether a code's tokens come with a refresh token: for a client that
/// may refresh, and, where the sign-in asked for `openid`, only with
/// `offline_access` granted (OpenID Connect Core §11); a plain OAuth 2.0
/// sign-in gets one as before.
fn refreshes(client: &Principal, scope: &[String]) -> bool {
    let has = |s: &str| scope.iter().any(|g| g == s);
    client.client.may_use("refresh_token") && (!has("openid") || has(OFFLINE_ACCESS))
}

/// Why a code does not bind to this redemption, if it does not: its
/// time, its client, its redirect URI, its PKCE challenge, its resource.
fn unbound(
    record: &CodeRecord,
    grant: &CodeGrant<'_>,
    client_id: &str,
    now: i64,
) -> Option<&'static str> {
    // RFC 8707 §2.2: the token request may name the resource again, the same.
    let resource_ok = grant
        .resource
        .is_none_or(|r| record.resource.as_deref() == Some(r));
    if record.expires_at <= now {
        Some("expired")
    } else if record.client_id != client_id {
        Some("issued to another client")
    } else if record.redirect_uri != grant.redirect_uri {
        Some("another redirect_uri")
    } else if !verifier_matches(grant.code_verifier, &record.code_challenge) {
        Some("code_verifier does not match the challenge")
    } else if !resource_ok {
        Some("another resource")
    } else if record
        .dpop_jkt
        .as_deref()
        .is_some_and(|jkt| grant.bound.and_then(super::mint::Cnf::jkt) != Some(jkt))
    {
        // RFC 9449 §10: bound at the authorization endpoint (`dpop_jkt`).
        Some("no proof of the DPoP key the code is bound to")
    } else {
        None
    }
}

/// A code refused, in one WARN line with its reason (never the code): the
/// client is told only `invalid_grant` (RFC 6749 §5.2).
fn refused(ctx: &Endpoints<'_>, client: &str, reason: &str) -> Error {
    tracing::warn!(
        target: "portero::oauth2",
        issuer = %ctx.issuer.config.name,
        client = %client,
        reason,
        "an authorization code was refused"
    );
    Error::invalid_grant()
}

/// Notes what the first redemption gave, and ties its refresh family to
/// the sign-on session; a replay that came meanwhile takes it all back.
async fn issued(
    ctx: &Endpoints<'_>,
    hash: &str,
    record: &CodeRecord,
    family: &str,
) -> Result<(), Error> {
    let store = ctx.issuer.store;
    let unavailable = |_| Error::unavailable();
    let kept = store.code_issued(hash, family).await.map_err(unavailable)?;
    let in_session = match (&record.sid, family.is_empty()) {
        (Some(sid), false) => store
            .sso_add_family(sid, family)
            .await
            .map_err(unavailable)?,
        _ => true,
    };
    // A family begun under a session that ended meanwhile would outlive
    // the logout; one begun by a replayed code belongs to the attacker.
    if !kept || (!in_session && ctx.settings.logout_revokes_tokens) {
        let mut used = record.clone();
        used.refresh_hash = Some(family.to_string()).filter(|f| !f.is_empty());
        revoke_first_use(ctx, &used).await;
        let reason = match kept {
            false => "used again meanwhile: what it gave is revoked",
            true => "its sign-on session ended meanwhile: what it gave is revoked",
        };
        return Err(refused(ctx, &record.client_id, reason));
    }
    Ok(())
}

/// A code came back: the access token and refresh family its first
/// redemption gave are revoked (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
async fn revoke_first_use(ctx: &Endpoints<'_>, record: &CodeRecord) {
    let issuer = &ctx.issuer;
    let jti = Revocation::Jti {
        jti: record.jti.clone(),
        expires_at: Some(record.expires_at + issuer.config.token_ttl.as_secs() as i64),
    };
    let written = issuer
        .store
        .add_revocations(std::slice::from_ref(&jti))
        .await;
    if written.is_ok() {
        issuer.revocations.apply(&jti);
    }
    if let Some(family) = &record.refresh_hash {
        let _ = ctx.issuer.refreshes().revoke_family(family).await;
    }
}

/// A PKCE challenge as S256 makes it: 43 base64url characters.
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_s256_challenge(challenge));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(&verifier[1..], challenge));
        // `plain` would send the verifier as the challenge: never a match.
        assert!(!verifier_matches(challenge, challenge));
        assert!(!verifier_matches("short", challenge));
    }
}
