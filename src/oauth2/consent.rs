//! What a user allowed a client that described itself (registered, or
//! named by a metadata document), remembered for the issuer's
//! `consent_ttl`: a registered client asking again for no more than that
//! gets its code without the page, and the page names only what is new.
//! A configured client is the operator's and never asks.

use super::Endpoints;
use crate::config::Principal;
use crate::store::Consent;

/// The scopes `login` allowed `client` and still does; none where the
/// issuer remembers nothing (or the store cannot say: the user is asked).
pub async fn remembered(
    ctx: &Endpoints<'_>,
    client: &Principal,
    login: &str,
    now: i64,
) -> Vec<String> {
    if ctx.settings.consent_ttl.is_none() || !client.client.self_described() {
        return Vec::new();
    }
    let issuer = &ctx.issuer.config.name;
    match ctx.issuer.store.consents(issuer, login).await {
        Ok(held) => held
            .iter()
            .filter(|c| c.client_id == client.login && c.live(now))
            .flat_map(|c| c.scopes().map(str::to_string))
            .collect(),
        Err(e) => {
            tracing::warn!(target: "portero::oauth2", issuer = %issuer, error = %e, "consents not read: the user is asked");
            Vec::new()
        }
    }
}

/// Whether a registered client may have `asked` without the page: all
/// of it allowed before. A client named by a metadata document is
/// anyone who can serve a URL: its user is asked every time.
pub fn covers(client: &Principal, allowed: &[String], asked: &[String]) -> bool {
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
    let mut scopes = remembered(ctx, client, login, now).await;
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
        expires_at: now + ttl.as_secs() as i64,
    };
    if let Err(e) = ctx.issuer.store.put_consent(&consent).await {
        tracing::warn!(target: "portero::oauth2", issuer = %consent.issuer, error = %e, "a consent was not remembered");
    }
}
