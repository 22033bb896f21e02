//! Refresh tokens, knowing no protocol: 256 random bits, stored only as
//! their digest with the access tokens minted under them. An OAuth 2.0
//! client's is bound to it and replaced at each use (RFC 9700 §4.14.2); a
//! legacy dialect's (no client) is used as it is. A replaced token
//! presented again, at any door (the token endpoint, token exchange, the
//! legacy refresh path), means it leaked: its family ends — the token,
//! every token that replaced it, and every access token minted under them.

use crate::auth::revocation::{Revocation, Revocations};
use crate::store::{RefreshRecord, Store, StoreError, MAX_LINEAGE};
use crate::tokens::{random_id, sha256_base64url, Minted};

/// One issuer's refresh tokens: its store, its revocations, its names.
pub struct Refreshes<'a> {
    pub store: &'a dyn Store,
    pub revocations: &'a Revocations,
    /// The issuer's name, which its records carry.
    pub issuer: &'a str,
    /// The issuer's `iss`, which a subject's revocation names.
    pub iss: &'a str,
}

impl Refreshes<'_> {
    /// Stores a new refresh token for `record` and returns it.
    pub async fn issue(&self, record: &RefreshRecord) -> Result<String, StoreError> {
        let token = random_id(32);
        self.store
            .put_refresh(&sha256_base64url(&token), record)
            .await?;
        Ok(token)
    }

    /// The record of `token` if it is this issuer's, held by `client` (an
    /// OAuth 2.0 client's login; `None`: a legacy dialect's token, bound to
    /// no client), unexpired and not revoked. Nothing is taken yet:
    /// [`Refreshes::rotate`] decides which of the requests racing with one
    /// token wins. A replaced token revokes its family and is `None`,
    /// whoever presents it at whichever issuer's door: it leaked.
    pub async fn find(
        &self,
        token: &str,
        client: Option<&str>,
        now: i64,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let hash = sha256_base64url(token);
        let Some(found) = self.store.get_refresh(&hash).await? else {
            return Ok(None);
        };
        if found.rotated_to.is_some() {
            self.revoke_reused(&hash, &found.issuer).await?;
            return Ok(None);
        }
        let held = found.issuer == self.issuer && found.client_id.as_deref() == client;
        Ok(Some(found).filter(|r| held && self.unexpired_and_unrevoked(r, now)))
    }

    /// The record of `token` if it is a live OAuth 2.0 refresh token of
    /// this issuer: not replaced, unexpired, not revoked. Only read: a
    /// replaced token is `None` here, with no reuse detection (for
    /// introspection, which must not change the token).
    pub async fn live(&self, token: &str, now: i64) -> Result<Option<RefreshRecord>, StoreError> {
        let found = self.store.get_refresh(&sha256_base64url(token)).await?;
        Ok(found.filter(|r| {
            r.issuer == self.issuer
                && r.client_id.is_some()
                && r.rotated_to.is_none()
                && self.unexpired_and_unrevoked(r, now)
        }))
    }

    /// Whether `record` is a refresh token of this issuer's OAuth 2.0 client `client`.
    pub fn belongs(&self, record: &RefreshRecord, client: &str) -> bool {
        record.issuer == self.issuer && record.client_id.as_deref() == Some(client)
    }

    /// Whether `record`'s family is neither past its expiry nor ended by a
    /// revocation of its subject.
    fn unexpired_and_unrevoked(&self, record: &RefreshRecord, now: i64) -> bool {
        let revoked =
            self.revocations
                .is_revoked(self.iss, Some(&record.sub), None, Some(record.issued_at));
        record.expires_at > now && !revoked
    }

    /// Replaces `old` (read as `seen`) with a new refresh token that
    /// carries the family on with `minted`, and returns it. The new token
    /// is stored first, then `old` is marked replaced in one atomic step,
    /// so the family is whole (old → new → `minted`) the moment anyone can
    /// see the mark. `None` when the family is as long as it may grow, and
    /// for every request but the first with `old`: it used a token already
    /// replaced, which is a reuse, and the family (the winner's new tokens
    /// with it) is revoked.
    pub async fn rotate(
        &self,
        old: &str,
        seen: &RefreshRecord,
        (minted, bind_to): (&Minted, Option<String>),
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut next = seen.clone();
        // A family begun unbound is bound from the first proof on.
        if next.jkt.is_none() {
            next.jkt = bind_to;
        }
        next.tokens.retain(|(_, exp)| *exp >= now);
        if next.tokens.len() >= MAX_LINEAGE {
            return Ok(None);
        }
        next.tokens
            .push((minted.jti.clone(), minted.exp.unwrap_or(now)));
        let new = self.issue(&next).await?;
        let (old_hash, new_hash) = (sha256_base64url(old), sha256_base64url(&new));
        if self
            .store
            .replace_refresh(&old_hash, seen, &new_hash)
            .await?
        {
            return Ok(Some(new));
        }
        // Lost the race: never handed out, so only deleted.
        self.store.delete_refresh(&new_hash).await?;
        self.revoke_reused(&old_hash, self.issuer).await?;
        Ok(None)
    }

    /// Adds `minted` to the family of a legacy dialect's `token`, which is
    /// used as it is, in one step with any revocation of it: `false` when
    /// it is gone or its family is as long as it may grow, and then what
    /// was minted must not be handed out.
    pub async fn extend(
        &self,
        token: &str,
        minted: &[(String, i64)],
        now: i64,
    ) -> Result<bool, StoreError> {
        let hash = sha256_base64url(token);
        self.store.extend_refresh(&hash, minted, now).await
    }

    /// Revokes the family the refresh token hashed `start` belongs to (in
    /// the store, and in this instance's cache at once) and returns how
    /// many access tokens it held.
    pub async fn revoke_family(&self, start: &str) -> Result<usize, StoreError> {
        let mut next = Some(start.to_string());
        let mut revoked = Vec::new();
        for _ in 0..MAX_LINEAGE {
            let Some(hash) = next.take() else { break };
            let Some(record) = self.store.delete_refresh(&hash).await? else {
                break;
            };
            revoked.extend(record.tokens.into_iter().map(|(jti, exp)| Revocation::Jti {
                jti,
                expires_at: Some(exp),
            }));
            next = record.rotated_to;
        }
        if !revoked.is_empty() {
            self.store.add_revocations(&revoked).await?;
            for r in &revoked {
                self.revocations.apply(r);
            }
        }
        Ok(revoked.len())
    }

    /// A replaced refresh token of issuer `issuer` came back: whoever
    /// holds it, the family ends, and the reuse is logged.
    async fn revoke_reused(&self, hash: &str, issuer: &str) -> Result<(), StoreError> {
        let tokens = self.revoke_family(hash).await?;
        tracing::warn!(
            target: "portero::oauth2",
            issuer = %issuer,
            door = %self.issuer,
            tokens,
            "a replaced refresh token was used again: its family is revoked"
        );
        Ok(())
    }
}
