//! Ending sessions: the browser's own logout (RP-initiated, then at the
//! provider with `id_token_hint`), and the provider's back-channel logout
//! (Back-Channel Logout 1.0), which ends every session it names on every
//! instance and takes each logout token once.

use std::time::Duration;

use super::flow::{cookie, Redirect};
use super::provider::LoginProvider;
use super::tokens::Expect;
use super::BrowserSessions;
use crate::config::Sessions;
use crate::store::{SessionOwner, StoreError};

/// Ends the browser's session (`ended`: its store key and ID token) here
/// and everywhere, then sends it to the
/// provider's `end_session_endpoint` (or straight to the page after
/// logout, where the provider has none).
pub async fn log_out(
    sessions: &BrowserSessions,
    settings: &Sessions,
    provider: Option<&LoginProvider>,
    ended: Option<(&str, &str)>,
) -> Result<Redirect, StoreError> {
    let cleared = cookie(settings, &settings.cookie, "", 0);
    let after = settings.post_logout_redirect_uri.clone();
    let Some((key, id_token)) = ended else {
        return Ok(Redirect {
            location: after,
            cookies: vec![cleared],
        });
    };
    sessions.end(key).await?;
    let end_session = match provider {
        Some(p) => p
            .endpoints()
            .await
            .ok()
            .and_then(|e| e.end_session_endpoint.clone()),
        None => None,
    };
    let location = match (end_session, provider) {
        (Some(url), Some(p)) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("id_token_hint", id_token)
                .append_pair("post_logout_redirect_uri", &after)
                .append_pair("client_id", &p.client.client_id)
                .finish();
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}{query}")
        }
        _ => after,
    };
    Ok(Redirect {
        location,
        cookies: vec![cleared],
    })
}

/// Why a logout token was refused (`400`), or the store failed (`503`).
#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("{0}")]
    Unavailable(String),
}

/// A back-channel logout: the token checked against `expect`, its `jti`
/// taken once, then every session of `provider` it names ended. How many.
pub async fn back_channel(
    sessions: &BrowserSessions,
    provider: &LoginProvider,
    expect: &Expect<'_>,
    token: &str,
) -> Result<usize, BackchannelError> {
    let logout = expect
        .logout_token(token)
        .map_err(BackchannelError::Invalid)?;
    let unavailable = |e: StoreError| BackchannelError::Unavailable(e.to_string());
    // Kept past the oldest `iat` a token may have: a replay is refused
    // for as long as the token itself would be taken.
    let keep = Duration::from_secs(2 * (300 + expect.leeway.max(0) as u64));
    let once = format!("bcl\0{}\0{}", provider.name, logout.jti);
    if !sessions
        .store
        .claim(&once, keep)
        .await
        .map_err(unavailable)?
    {
        return Err(BackchannelError::Invalid(
            "this logout token was used already (jti)",
        ));
    }
    // A store failure leaves the token unspent: the provider retries it.
    match end_named(sessions, provider, &logout).await {
        Ok(ended) => Ok(ended),
        Err(e) => {
            let _ = sessions.store.release_claim(&once).await;
            Err(unavailable(e))
        }
    }
}

/// Ends the sessions of `provider` the logout token names: by `sid`
/// (with a `sub` too, only that user's), else by `sub`.
async fn end_named(
    sessions: &BrowserSessions,
    provider: &LoginProvider,
    logout: &super::tokens::Logout,
) -> Result<usize, StoreError> {
    let (owner, sub) = match (&logout.sid, &logout.sub) {
        (Some(sid), sub) => (SessionOwner::ProviderSession(sid.clone()), sub.as_deref()),
        (None, Some(sub)) => (SessionOwner::Subject(sub.clone()), None),
        (None, None) => unreachable!("a logout token names a sid or a sub"),
    };
    let keys = sessions
        .store
        .browser_sessions_of(&provider.name, &owner)
        .await?;
    let mut ended = 0;
    for key in keys {
        // With both, a session of that sid must be that sub's too.
        if let Some(sub) = sub {
            let record = sessions.store.get_browser_session(&key).await?;
            if record.is_none_or(|r| r.sub != sub) {
                continue;
            }
        }
        sessions.end(&key).await?;
        ended += 1;
    }
    Ok(ended)
}
