//! A passkey's answer posted on the sign-in page (or on the second step's
//! page, where it must be the passkey of the person whose password it
//! follows): it signs the person in alone, as two factors. The passkey
//! must be one registered to the user its handle names, and its sign
//! count must not go backwards (a cloned authenticator: refused and
//! logged). The new count is written over the record read.

use http::StatusCode;
use webauthn_rs::prelude::Passkey;

use super::auth_request::{Asked, AuthRequest};
use super::form::Form;
use super::passkey::{id_text, relying_party, Ceremony, SIGN_IN};
use super::{second_factor, sso, ticket, Answer, Endpoints, Request};
use crate::factors::passkeys::Refused;
use crate::identity::Reason;

/// The passkey's answer posted on the sign-in page.
pub async fn sign_in(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    r: &AuthRequest,
    asked: &Asked,
) -> Answer {
    match signed_in(ctx, req, form).await {
        Ok((user, amr)) => second_factor::finish(ctx, req, r, asked, &user, amr).await,
        Err(why) => {
            let failed = (StatusCode::UNAUTHORIZED, why, "");
            super::sign_in::show(ctx, req, r, &asked.scope, None, Some(failed)).await
        }
    }
}

/// Who the answer signs in, and how (`amr`); or what the page says.
async fn signed_in(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
) -> Result<(std::sync::Arc<crate::config::Principal>, Vec<String>), &'static str> {
    let rp = relying_party(ctx).ok_or(NOT_SIGNED_IN)?;
    let ceremony: Ceremony = ticket::open(ctx, SIGN_IN, form.get("ceremony").unwrap_or_default())
        .await
        .ok()
        .flatten()
        .ok_or(NOT_SIGNED_IN)?;
    let binding = sso::cookie(req, &sso::cookie_name(ctx, "portero-form")).unwrap_or_default();
    if !ceremony.claim(ctx, binding, req.now).await {
        return Err("That passkey prompt has ended or was used. Try again.");
    }
    let (answer, handle, id) = rp
        .identify(form.get("passkey").unwrap_or_default())
        .map_err(|_| NOT_SIGNED_IN)?;
    let store = ctx.issuer.store;
    let issuer = &ctx.issuer.config.name;
    let refuse = |login: &str, why: &str| {
        tracing::warn!(target: "portero::login", issuer = %issuer, login = ?login, why, "passkey sign-in refused");
        ctx.issuer.logins.note(Reason::WrongCode);
        NOT_SIGNED_IN
    };
    let login = match store.login_of_handle(issuer, &handle.to_string()).await {
        Ok(Some(login)) => login,
        Ok(None) => return Err(refuse("", "no user has the passkey's user handle")),
        Err(_) => return Err("The service is unavailable. Try again later."),
    };
    // On the second step's page: only the passkey of the person whose
    // password it follows.
    if let Some(expected) = second_factor::pending_login(ctx, req, form).await {
        if expected != login {
            return Err(refuse(
                &login,
                "the passkey is another person's than the password's",
            ));
        }
    }
    let synced = checked(
        ctx,
        &rp,
        (&answer, &ceremony.state),
        &login,
        (&handle.to_string(), &id_text(&id)),
        req.now,
    )
    .await
    .map_err(|not| match not {
        NotChecked::Refused(why) => refuse(&login, why),
        NotChecked::Said(said) => said,
    })?;
    let user = super::mint::live_user(ctx, &login)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| refuse(&login, "the user may not sign in"))?;
    let kind = if synced { "swk" } else { "hwk" };
    let _ = ctx.issuer.logins.signed_in(&user.login).await;
    Ok((user, vec![kind.to_string(), "mfa".to_string()]))
}

const NOT_SIGNED_IN: &str = "That passkey could not sign you in. Try again, or use your password.";

/// Why an answer signed nobody in.
enum NotChecked {
    /// Refused, for this reason (logged).
    Refused(&'static str),
    /// Not checked (the store): what the page says.
    Said(&'static str),
}

/// The answer checked against the passkey of `login` it names (`handle`,
/// credential `id`), and its new sign count kept: whether the passkey is
/// a synced one (backup eligible).
async fn checked(
    ctx: &Endpoints<'_>,
    rp: &crate::factors::passkeys::RelyingParty,
    (answer, state): (
        &webauthn_rs::prelude::PublicKeyCredential,
        &serde_json::Value,
    ),
    login: &str,
    (handle, id): (&str, &str),
    now: i64,
) -> Result<bool, NotChecked> {
    let store = ctx.issuer.store;
    let issuer = &ctx.issuer.config.name;
    for _ in 0..3 {
        let held = store
            .factors(issuer, login)
            .await
            .map_err(|_| NotChecked::Said(NOT_SIGNED_IN))?;
        let Some(held) = held.filter(|h| h.handle == handle) else {
            return Err(NotChecked::Refused("the user has no passkeys"));
        };
        let Some(at) = held.passkeys.iter().position(|p| p.id == id) else {
            return Err(NotChecked::Refused(
                "not a passkey registered to the user its handle names",
            ));
        };
        let mut passkey: Passkey = serde_json::from_value(held.passkeys[at].credential.clone())
            .map_err(|_| NotChecked::Said(NOT_SIGNED_IN))?;
        let result = match rp.finish_sign_in(answer, state, &passkey) {
            Ok(result) => result,
            Err(Refused::Cloned) => {
                return Err(NotChecked::Refused(
                    "its sign count went backwards: the authenticator may have been cloned",
                ))
            }
            Err(Refused::Invalid(e)) => {
                tracing::debug!(error = %e, "passkey answer refused");
                return Err(NotChecked::Refused("the answer does not verify"));
            }
        };
        passkey.update_credential(&result);
        let mut next = held.clone();
        next.version += 1;
        next.passkeys[at].credential =
            serde_json::to_value(&passkey).map_err(|_| NotChecked::Said(NOT_SIGNED_IN))?;
        next.passkeys[at].used_at = Some(now);
        // The sign count is written over the record read: two answers of
        // one authenticator at once cannot both move it.
        if store
            .swap_factors(&next, held.version)
            .await
            .map_err(|_| NotChecked::Said(NOT_SIGNED_IN))?
        {
            return Ok(result.backup_eligible());
        }
    }
    Err(NotChecked::Said("The service is busy. Try again."))
}
