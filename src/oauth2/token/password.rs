//! RFC 6749 §4.3, where a user dialect enables it: the user's own login,
//! with the legacy endpoint's lockout, for an access token and the first
//! refresh token of a family.

use http::StatusCode;

use super::super::form::Form;
use super::super::mint::{answer, mint, narrowed};
use super::super::{Answer, Endpoints, Error, Request};
use crate::config::Principal;
use crate::identity::profile;
use crate::identity::Denied;
use crate::store::RefreshRecord;

pub(super) async fn grant(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    client: &Principal,
    bound: Option<super::super::mint::Cnf<'_>>,
) -> Result<Answer, Error> {
    let username = form.required("username")?;
    let password = form.required("password")?;
    let scope = narrowed(form.get("scope"), &client.permissions)?;
    let user = match ctx
        .issuer
        .logins
        .log_in(username, password, req.client, req.now)
        .await
    {
        Ok(user) => user,
        Err(Denied::BadCredentials | Denied::Blocked) => {
            return Err(Error::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "wrong username or password",
            ))
        }
        Err(Denied::Locked) => {
            return Err(Error::new(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_grant",
                "too many failed attempts; try again later",
            ))
        }
        Err(Denied::Unavailable) => return Err(Error::unavailable()),
    };
    let accounts = ctx.issuer.accounts;
    let sub = accounts.subject_of(&user);
    let mut claims = profile::claims(accounts.form, &user, &scope);
    // A password alone, said as the sign-in page says it.
    let amr = vec!["pwd".to_string()];
    super::super::mint::signed_in_by(&mut claims, &amr);
    super::super::mint::bind(&mut claims, bound);
    let minted = mint(ctx, req.now, &sub, claims, client, &scope, None)?;
    let record = RefreshRecord {
        issuer: ctx.issuer.config.name.clone(),
        sub,
        login: user.login.clone(),
        issued_at: req.now,
        expires_at: req.now + ctx.issuer.routes.refresh_ttl.as_secs() as i64,
        tokens: vec![(minted.jti.clone(), minted.exp.unwrap_or(req.now))],
        client_id: Some(client.login.clone()),
        rotated_to: None,
        scope: Some(scope.join(" ")),
        resource: None,
        amr,
        jkt: super::super::mint::refresh_binding(client, bound),
        x5t: super::super::mint::refresh_certificate(client, bound),
    };
    let refresh_token = ctx.issuer.refreshes().issue(&record).await?;
    Ok(answer(
        req.now,
        minted,
        &scope,
        &[("refresh_token", refresh_token)],
    ))
}
