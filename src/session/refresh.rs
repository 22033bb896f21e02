//! Keeping a session's access token fresh for the upstream
//! (`login_pass_token`): refreshed with its refresh token before it
//! expires, by one instance at a time (a claim in the store); the others
//! read the new tokens from the store. A refresh token the provider no
//! longer honours ends the session.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::Clock;

use super::provider::{LoginProvider, OwnIssuer, ProviderError};
use super::{BrowserSessions, Entry, Tokens};

/// How long one instance may hold a session's refresh.
const REFRESH_CLAIM: Duration = Duration::from_secs(30);

/// Whether the access token should be refreshed at `now`: it expires
/// within `before` and there is a refresh token to do it with.
pub fn due(entry: &Entry, before: Duration, now: i64) -> bool {
    let expires = entry.access_expires_at();
    expires != 0
        && now.saturating_add(before.as_secs() as i64) >= expires
        && entry.tokens().refresh_token.is_some()
}

/// Refreshes the session's tokens, or waits for the instance that does.
pub async fn refresh(
    sessions: &BrowserSessions,
    provider: &LoginProvider,
    own: &dyn OwnIssuer,
    entry: &Entry,
    before: Duration,
    clock: &Clock,
) {
    if entry.refreshing.swap(true, Ordering::AcqRel) {
        return;
    }
    let lock = format!("refresh\0{}", entry.key);
    match sessions.store.claim(&lock, REFRESH_CLAIM).await {
        Ok(true) => {
            if let Err(e) = refresh_here(sessions, provider, own, entry, before, clock).await {
                tracing::warn!(target: "portero::session", provider = %provider.name, error = %e, "a session's tokens could not be refreshed");
            }
            let _ = sessions.store.release_claim(&lock).await;
        }
        Ok(false) => await_other(sessions, entry).await,
        Err(e) => {
            tracing::warn!(target: "portero::session", error = %e, "the store could not be asked to refresh a session")
        }
    }
    entry.refreshing.store(false, Ordering::Release);
}

/// Another instance refreshes: its tokens are read once they are stored.
async fn await_other(sessions: &BrowserSessions, entry: &Entry) {
    let before = entry.access_expires_at();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if sessions.reread_tokens(entry).await.is_err() || entry.access_expires_at() != before {
            return;
        }
    }
}

async fn refresh_here(
    sessions: &BrowserSessions,
    provider: &LoginProvider,
    own: &dyn OwnIssuer,
    entry: &Entry,
    before: Duration,
    clock: &Clock,
) -> Result<(), String> {
    // Another instance may have refreshed since this one read its tokens:
    // then there is nothing left to do.
    sessions
        .reread_tokens(entry)
        .await
        .map_err(|e| e.to_string())?;
    if !due(entry, before, clock.unix()) {
        return Ok(());
    }
    let old = entry.tokens();
    let Some(refresh_token) = old.refresh_token.as_deref() else {
        return Ok(());
    };
    let granted = match provider.refresh(refresh_token, own).await {
        Ok(granted) => granted,
        Err(ProviderError::Refused(error)) if error == "invalid_grant" => {
            sessions.end(&entry.key).await.map_err(|e| e.to_string())?;
            return Err(
                "the provider no longer honours the refresh token: the session is ended".into(),
            );
        }
        Err(e) => return Err(e.to_string()),
    };
    // Counted from the grant, not from the request that found it due.
    let expires = granted
        .expires_in
        .map_or(0, |s| clock.unix().saturating_add(s));
    let tokens = Tokens {
        id_token: granted.id_token.unwrap_or_else(|| old.id_token.clone()),
        access_token: Some(granted.access_token),
        refresh_token: granted.refresh_token.or_else(|| old.refresh_token.clone()),
    };
    sessions
        .replace_tokens(entry, tokens, expires)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
