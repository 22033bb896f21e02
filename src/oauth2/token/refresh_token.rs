//! RFC 6749 §6: a refresh token traded for a new access token and a new
//! refresh token of the same family (RFC 8707 §2.2: for the same
//! resource), by the token endpoint or in process.

use http::StatusCode;
use serde_json::json;

use super::super::form::Form;
use super::super::mint::{live_user, mint, narrowed, words, Cnf, Issued};
use super::super::{Endpoints, Error};
use crate::config::Principal;
use crate::identity::profile;
use crate::tokens::sha256_base64url;

/// A `refresh_token` grant as asked (RFC 6749 §6, RFC 8707 §2.2), by
/// the token endpoint's form or in process.
#[derive(Clone, Copy)]
pub struct RefreshGrant<'a> {
    pub refresh_token: &'a str,
    /// At most the scope first granted; all of it when `None`.
    pub scope: Option<&'a str>,
    /// The resource named again, if it is.
    pub resource: Option<&'a str>,
    /// What the request proved it holds (RFC 9449 §5, RFC 8705 §3).
    pub bound: Option<Cnf<'a>>,
}

impl<'a> RefreshGrant<'a> {
    /// The grant a token request's form asks for.
    pub(super) fn of(form: &'a Form) -> Result<RefreshGrant<'a>, Error> {
        Ok(RefreshGrant {
            refresh_token: form.required("refresh_token")?,
            scope: form.get("scope"),
            resource: form.get("resource"),
            bound: None,
        })
    }
}

/// RFC 6749 §6: a new access token and a new refresh token for the old
/// one, for the same user, with at most the scope first granted; for the
/// client `client` (authenticated, or named in process), at `now`.
pub(in crate::oauth2) async fn refresh_grant(
    ctx: &Endpoints<'_>,
    now: i64,
    grant: &RefreshGrant<'_>,
    client: &Principal,
) -> Result<Issued, Error> {
    let token = grant.refresh_token;
    let refreshes = ctx.issuer.refreshes();
    let Some(found) = refreshes.find(token, Some(&client.login), now).await? else {
        return Err(Error::invalid_grant());
    };
    // RFC 9449 §5: a public client's bound refresh token is refreshed
    // only with a proof of its key.
    if found
        .jkt
        .as_deref()
        .is_some_and(|jkt| grant.bound.and_then(Cnf::jkt) != Some(jkt))
    {
        return Err(Error::invalid_grant());
    }
    // RFC 8705 §4: ... and a certificate-bound one only over its certificate.
    if found
        .x5t
        .as_deref()
        .is_some_and(|x5t| grant.bound != Some(Cnf::Certificate(x5t)))
    {
        return Err(Error::invalid_grant());
    }
    let scope = narrowed(grant.scope, &words(found.scope.as_deref()))?;
    // RFC 8707 §2.2: a refresh may name the resource again, the same one.
    if grant
        .resource
        .is_some_and(|r| found.resource.as_deref() != Some(r))
    {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "the refresh token is not for that resource",
        ));
    }
    // A user gone, deactivated or blocked since: the family ends here.
    let Some(user) = live_user(ctx, &found.login).await? else {
        refreshes.revoke_family(&sha256_base64url(token)).await?;
        return Err(Error::invalid_grant());
    };
    let mut claims = profile::claims(ctx.issuer.accounts.form, &user, &scope);
    super::super::mint::signed_in_by(&mut claims, &found.amr);
    super::super::mint::bind(&mut claims, grant.bound);
    if let Some(resource) = &found.resource {
        claims.insert("aud".into(), json!(resource));
    }
    let minted = mint(ctx, now, &found.sub, claims, client, &scope, None)?;
    let bind_to = super::super::mint::refresh_binding(client, grant.bound);
    let Some(refresh_token) = refreshes
        .rotate(token, &found, (&minted, bind_to), now)
        .await?
    else {
        return Err(Error::invalid_grant());
    };
    Ok(Issued {
        minted,
        scope,
        refresh_token: Some(refresh_token),
        id_token: None,
    })
}
