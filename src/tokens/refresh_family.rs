//! A refresh token's family: the token, every token that replaced it, and
//! every access token minted under them. A replaced OAuth 2.0 refresh
//! token presented again, at any door (the token endpoint, token exchange,
//! the legacy refresh path), means it leaked: the family ends (RFC 9700
//! §4.14.2).

use crate::auth::revocation::{Revocation, Revocations};
use crate::store::{RefreshTokens, RevocationLog, StoreError, MAX_LINEAGE};

/// Revokes the family the refresh token hashed `start` belongs to (in the
/// store, and in this instance's cache at once) and returns how many
/// access tokens it held.
pub async fn revoke(
    store: &(impl RefreshTokens + RevocationLog + ?Sized),
    cache: &Revocations,
    start: &str,
) -> Result<usize, StoreError> {
    let mut next = Some(start.to_string());
    let mut revoked = Vec::new();
    for _ in 0..MAX_LINEAGE {
        let Some(hash) = next.take() else { break };
        let Some(record) = store.delete_refresh(&hash).await? else {
            break;
        };
        revoked.extend(record.tokens.into_iter().map(|(jti, exp)| Revocation::Jti {
            jti,
            expires_at: Some(exp),
        }));
        next = record.rotated_to;
    }
    if !revoked.is_empty() {
        store.add_revocations(&revoked).await?;
        for r in &revoked {
            cache.apply(r);
        }
    }
    Ok(revoked.len())
}

/// A replaced refresh token of issuer `issuer` was presented again: its
/// family is revoked and the reuse logged.
pub async fn revoke_reused(
    store: &(impl RefreshTokens + RevocationLog + ?Sized),
    cache: &Revocations,
    issuer: &str,
    hash: &str,
) -> Result<(), StoreError> {
    let tokens = revoke(store, cache, hash).await?;
    tracing::warn!(
        target: "portero::oauth2",
        issuer = %issuer,
        tokens,
        "a replaced refresh token was used again: its family is revoked"
    );
    Ok(())
}
