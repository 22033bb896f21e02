//! What a user allowed a client that described itself (registered, or
//! named by a metadata document), remembered for the issuer's
//! `consent_ttl`: a registered client asking again for no more than that
//! gets its code without the page, and the page names only what is new.
//! A configured client is the operator's and never asks.

use super::Endpoints;
use crate::config::Principal;
use crate::store::Consent;

/// The scopes `login` allowed `client` and still does: `None` where they
/// never allowed it, or the issuer remembers nothing (or the store cannot
/// say: the user is asked).
pub async fn remembered(
    ctx: &Endpoints<'_>,
    client: &Principal,
    login: &str,
    now: i64,
) -> Option<Vec<String>> {
    if ctx.settings.consent_ttl.is_none() || !client.client.self_described() {
        return None;
    }
    let issuer = &ctx.issuer.config.name;
    match ctx.issuer.store.consents(issuer, login).await {
        Ok(held) => held
            .iter()
            .find(|c| c.client_id == client.login && c.live(now))
            .map(|c| c.scopes().map(str::to_string).collect()),
        Err(e) => {
            tracing::warn!(target: "portero::oauth2", issuer = %issuer, error = %e, "consents not read: the user is asked");
            None
        }
    }
}

/// Whether a registered client may have `asked` without the page: the
/// user allowed this client before, all of it (an empty scope too). A
/// client named by a metadata document is anyone who can serve a URL:
/// its user is asked every time.
pub fn covers(client: &Principal, allowed: Option<&[String]>, asked: &[String]) -> bool {
    let Some(allowed) = allowed else {
        return false;
    };
    client.client.registered && asked.iter().all(|s| allowed.contains(s))
}

/// Remembers that `login` allowed `client` the scopes `granted`, beside
/// what they allowed it before, for the issuer's `consent_ttl`.
pub async fn remember(
    ctx: &Endpoints<'_>,
    client: &Principal,
    login: &str,
    granted: &[String],
    now: i64,
) {
    let Some(ttl) = ctx.settings.consent_ttl else {
        return;
    };
    if !client.client.self_described() {
        return;
    }
    let mut scopes = remembered(ctx, client, login, now)
        .await
        .unwrap_or_default();
    for s in granted {
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    scopes.sort();
    let consent = Consent {
        issuer: ctx.issuer.config.name.clone(),
        login: login.to_string(),
        client_id: client.login.clone(),
        scope: scopes.join(" "),
        granted_at: now,
        expires_at: now.saturating_add(ttl.as_secs() as i64),
    };
    if let Err(e) = ctx.issuer.store.put_consent(&consent).await {
        tracing::warn!(target: "portero::oauth2", issuer = %consent.issuer, error = %e, "a consent was not remembered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_remembered_consent_covers_and_only_what_it_holds() {
        let mut client = Principal::named("reg-1");
        client.client.registered = true;
        let read = vec!["mcp:read".to_string()];
        assert!(
            !covers(&client, None, &[]),
            "never allowed: even nothing asked"
        );
        assert!(covers(&client, Some(&[]), &[]));
        assert!(covers(&client, Some(&read), &read));
        assert!(!covers(&client, Some(&read), &["mcp:write".to_string()]));
        client.client.registered = false;
        client.client.metadata_document = true;
        assert!(
            !covers(&client, Some(&read), &read),
            "a document's client always asks"
        );
    }
}
