//! OAuth 2.0 refresh tokens: 256 random bits, stored only as their hash
//! with the access tokens minted under them, bound to the client they were
//! issued to. Each use replaces the token with a new one (RFC 9700
//! §4.14.2); a replaced token presented again means it leaked, and the
//! whole family goes: every refresh token and access token descended from
//! the same login, as revoking a legacy refresh token revokes its lineage.

use super::{Endpoints, Error};
use crate::store::{RefreshRecord, MAX_LINEAGE};
use crate::tokens::random_id;
use crate::tokens::{refresh_family, sha256_base64url, Minted};

/// Stores a new refresh token for `record` and returns it.
pub async fn store(ctx: &Endpoints<'_>, record: &RefreshRecord) -> Result<String, Error> {
    let token = random_id(32);
    ctx.issuing
        .store
        .put_refresh(&sha256_base64url(&token), record)
        .await
        .map_err(|_| Error::unavailable())?;
    Ok(token)
}

/// The record of `token` if it is this issuer's, issued to `client`,
/// unexpired and not revoked. Nothing is taken yet: [`rotate`] decides
/// which of the requests racing with one token wins. A replaced token
/// revokes its family and is `None`.
pub async fn find(
    ctx: &Endpoints<'_>,
    token: &str,
    client: &str,
    now: i64,
) -> Result<Option<RefreshRecord>, Error> {
    let hash = sha256_base64url(token);
    let store = ctx.issuing.store;
    let Some(found) = store
        .get_refresh(&hash)
        .await
        .map_err(|_| Error::unavailable())?
    else {
        return Ok(None);
    };
    // A replaced token is a reuse whoever presents it: its own client or
    // another that holds it now.
    if found.issuer == ctx.issuing.issuer.name && found.rotated_to.is_some() {
        revoke_reused(ctx, &hash).await?;
        return Ok(None);
    }
    if !belongs(ctx, &found, client) || !unexpired_and_unrevoked(ctx, &found, now) {
        return Ok(None);
    }
    Ok(Some(found))
}

/// The record of `token` if it is a live OAuth 2.0 refresh token of this
/// issuer: not replaced, unexpired, not revoked. Only read: a replaced
/// token is `None` here, with no reuse detection (for introspection, which
/// must not change the token).
pub async fn live(
    ctx: &Endpoints<'_>,
    token: &str,
    now: i64,
) -> Result<Option<RefreshRecord>, Error> {
    let found = ctx
        .issuing
        .store
        .get_refresh(&sha256_base64url(token))
        .await
        .map_err(|_| Error::unavailable())?;
    Ok(found.filter(|r| {
        r.issuer == ctx.issuing.issuer.name
            && r.client_id.is_some()
            && r.rotated_to.is_none()
            && unexpired_and_unrevoked(ctx, r, now)
    }))
}

/// Whether `record`'s family is neither past its expiry nor ended by a
/// revocation of its subject.
fn unexpired_and_unrevoked(ctx: &Endpoints<'_>, record: &RefreshRecord, now: i64) -> bool {
    let revoked = ctx.issuing.revocations.is_revoked(
        &ctx.issuing.issuer.iss,
        Some(&record.sub),
        None,
        Some(record.issued_at),
    );
    record.expires_at > now && !revoked
}

/// Whether `record` is a refresh token of this issuer's OAuth 2.0 client `client`.
pub fn belongs(ctx: &Endpoints<'_>, record: &RefreshRecord, client: &str) -> bool {
    record.issuer == ctx.issuing.issuer.name && record.client_id.as_deref() == Some(client)
}

/// Replaces `old` (read as `seen`) with a new refresh token that carries
/// the family on with `minted`, and returns it. The new token is stored
/// first, then `old` is marked replaced in one atomic step, so the family
/// is whole (old → new → `minted`) the moment anyone can see the mark.
/// `None` for every request but the first with `old`: it used a token
/// already replaced, which is a reuse, and the family (the winner's new
/// tokens with it) is revoked.
pub async fn rotate(
    ctx: &Endpoints<'_>,
    old: &str,
    seen: &RefreshRecord,
    minted: &Minted,
    now: i64,
) -> Result<Option<String>, Error> {
    let mut next = seen.clone();
    next.tokens.retain(|(_, exp)| *exp >= now);
    if next.tokens.len() >= MAX_LINEAGE {
        return Err(invalid_grant());
    }
    next.tokens
        .push((minted.jti.clone(), minted.exp.unwrap_or(now)));
    let new = store(ctx, &next).await?;
    let (old_hash, new_hash) = (sha256_base64url(old), sha256_base64url(&new));
    let unavailable = |_| Error::unavailable();
    let store = ctx.issuing.store;
    if store
        .replace_refresh(&old_hash, seen, &new_hash)
        .await
        .map_err(unavailable)?
    {
        return Ok(Some(new));
    }
    // Lost the race: never handed out, so only deleted.
    store.delete_refresh(&new_hash).await.map_err(unavailable)?;
    revoke_reused(ctx, &old_hash).await?;
    Ok(None)
}

/// Revokes the family the refresh token hashed `start` belongs to: it,
/// every token that replaced it, and every access token minted under
/// them. Returns how many access tokens were revoked.
pub async fn revoke_family(ctx: &Endpoints<'_>, start: &str) -> Result<usize, Error> {
    let issuing = &ctx.issuing;
    refresh_family::revoke(&**issuing.store, issuing.revocations, start)
        .await
        .map_err(|_| Error::unavailable())
}

/// A replaced refresh token came back: whoever holds it, the family ends.
pub async fn revoke_reused(ctx: &Endpoints<'_>, hash: &str) -> Result<(), Error> {
    let issuing = &ctx.issuing;
    refresh_family::revoke_reused(
        &**issuing.store,
        issuing.revocations,
        &issuing.issuer.name,
        hash,
    )
    .await
    .map_err(|_| Error::unavailable())
}

pub fn invalid_grant() -> Error {
    Error::new(
        http::StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the grant is invalid, expired or revoked",
    )
}
