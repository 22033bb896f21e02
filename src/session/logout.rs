//! Ending sessions: the browser's own logout (RP-initiated, then at the
//! provider with `id_token_hint`), and the provider's back-channel logout
//! (Back-Channel Logout 1.0), which ends every session it names on every
//! instance and takes each logout token once.

use std::time::Duration;

use super::flow::{cookie, Redirect};
use super::provider::LoginProvider;
use super::seal;
use super::tokens::Expect;
use super::BrowserSessions;
use crate::config::Sessions;
use crate::header_name::{cookie_names, loosely_same_cookie};
use crate::store::{SessionOwner, StoreError};

/// The most session ids one logout looks up; a request naming more is
/// refused whole.
pub const MOST_NAMED: usize = 8;

/// Every session id the `Cookie` header values show under the session
/// cookie `name`, in any spelling some upstream reads as it
/// (`cookie_names`, `loosely_same_cookie`), each once: a second copy names
/// a session as surely as the first, and a logout that ended only one
/// would leave the other signed in. Any piece of such a pair shaped as an
/// id counts (ending a session takes its id, which only its holder has).
/// `None` when they name more than [`MOST_NAMED`].
pub fn named_ids<'a>(values: impl Iterator<Item = &'a [u8]>, name: &str) -> Option<Vec<&'a str>> {
    let mut ids = Vec::new();
    for pair in values.flat_map(|v| v.split(|b| *b == b';')) {
        if !cookie_names(pair).any(|written| loosely_same_cookie(written, name)) {
            continue;
        }
        let pieces = pair.split(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')));
        for piece in pieces {
            // The pieces are ASCII: always UTF-8.
            let Ok(id) = std::str::from_utf8(piece) else {
                continue;
            };
            if !seal::well_formed(id) || ids.contains(&id) {
                continue;
            }
            if ids.len() == MOST_NAMED {
                return None;
            }
            ids.push(id);
        }
    }
    Some(ids)
}

/// Ends every session in `ended` (each its store key and ID token) here
/// and everywhere, then sends the browser to the `provider`'s
/// `end_session_endpoint` with the first one's ID token (or straight to
/// the page after logout, where the provider has none or none was live).
pub async fn log_out(
    sessions: &BrowserSessions,
    settings: &Sessions,
    provider: Option<&LoginProvider>,
    ended: &[(&str, &str)],
) -> Result<Redirect, StoreError> {
    let cleared = cookie(settings, &settings.cookie, "", 0);
    let after = settings.post_logout_redirect_uri.clone();
    let Some((_, id_token)) = ended.first() else {
        return Ok(Redirect {
            location: after,
            cookies: vec![cleared],
        });
    };
    for (key, _) in ended {
        sessions.end(key).await?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn named<'a>(values: &[&'a str]) -> Option<Vec<&'a str>> {
        named_ids(
            values.iter().map(|v| v.as_bytes()),
            "__Host-portero-session",
        )
    }

    #[test]
    fn every_copy_an_upstream_reads_as_the_session_cookie_names_its_id() {
        let a = "A".repeat(43);
        let b = "b-_".repeat(14) + "b";
        assert_eq!(
            named(&[&format!("__Host-portero-session={a}")]),
            Some(vec![&a[..]])
        );
        assert_eq!(
            named(&[&format!(
                "__Host-portero-session={a}; __host-portero-session=x"
            )]),
            Some(vec![&a[..]])
        );
        assert_eq!(
            named(&[&format!(
                "__Host-portero-session={a}; __Host-portero-session={a}"
            )]),
            Some(vec![&a[..]]),
            "the same id once"
        );
        assert_eq!(
            named(&[
                &format!("__Host-portero-session={a}"),
                &format!("x=1; a=b __Host-portero-session={b}"),
            ]),
            Some(vec![&a[..], &b[..]]),
            "in two headers, one inside another cookie's value"
        );
        assert_eq!(
            named(&[&format!("hostporterosession=\"{b}\"")]),
            Some(vec![&b[..]]),
            "another spelling alone, quoted"
        );
        assert_eq!(
            named(&[&format!("other={a}; __Host-portero-session=short")]),
            Some(vec![]),
            "another cookie's id is not the session's"
        );
        let many: Vec<String> = (0..=MOST_NAMED)
            .map(|i| format!("__Host-portero-session={}{i}", "c".repeat(42)))
            .collect();
        assert_eq!(named(&[&many.join("; ")]), None);
        assert_eq!(
            named(&[&many[..MOST_NAMED].join("; ")]).map(|v| v.len()),
            Some(MOST_NAMED)
        );
    }
}
