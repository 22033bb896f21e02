//! The sign-in page's form, posted to `/oauth2/NAME/sign-in`: the
//! request checked again, its CSRF token, then what the person did (a
//! password, a passkey, the second step, Allow or Deny, "Not you?"). A
//! post without the form's cookie, with other fields, or from another
//! origin is refused. Credentials go through the same lockout, timing and
//! rate limits as the legacy endpoint (`identity::Logins`).

use http::StatusCode;

use super::auth_request::{self, AuthRequest};
use super::form::Form;
use super::sign_in::show;
use super::{
    consent, csrf, page, par, passkey_sign_in, second_factor, sso, Answer, Endpoints, Request,
};
use crate::identity::Denied;

/// The form posted: the request checked again, the CSRF token, then the
/// credentials (or, with `continue`, the session).
pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Answer {
    if !csrf::same_origin(ctx, req) {
        return page::shown(ctx, "the form was posted from another site");
    }
    let form = match Form::parse(req.body, req.form) {
        Ok(f) => f,
        Err(e) => return page::shown(ctx, &e.description),
    };
    let (form, pushed) = match par::expanded(ctx, req, form).await {
        Ok(expanded) => expanded,
        Err(message) => return page::shown(ctx, &message),
    };
    let mut r = match auth_request::known_client(ctx, req, &form).await {
        Ok(r) => r,
        Err(message) => return page::shown(ctx, &message),
    };
    if let Err(message) = par::carried(&mut r, pushed) {
        return page::shown(ctx, message);
    }
    // The page's own form first: nothing posted otherwise goes back to the
    // application, an error (or a Deny) included.
    let binding = sso::cookie(req, &sso::cookie_name(ctx, "portero-form")).unwrap_or_default();
    match csrf::token(ctx, binding, &r.params).await {
        Ok(expected) if !binding.is_empty() && csrf::same(form.get("csrf"), &expected) => {}
        Ok(_) => {
            return page::shown(
                ctx,
                "the form has expired or was not this page's; start again",
            )
        }
        Err(e) => return page::shown(ctx, &e.description),
    }
    let asked = match auth_request::checked(ctx, &form, &r) {
        Ok(a) => a,
        Err(e) => return auth_request::back_with_error(ctx, &r, e),
    };
    // The user said no: the application hears it (RFC 6749 §4.1.2.1).
    if form.get("deny").is_some() {
        return auth_request::back_with_error(ctx, &r, auth_request::access_denied());
    }
    if form.get("continue").is_some() {
        let finished = second_factor::finished_session(ctx, req, &form, &r).await;
        return go_on(ctx, req, &r, &asked, finished).await;
    }
    // "Not you?": this browser's sign-on is forgotten, and the form asks
    // who is there.
    if form.get("switch").is_some() {
        let page = show(ctx, req, &r, &asked.scope, None, None).await;
        return page.with_cookie(Some(sso::forget(ctx)));
    }
    if form.get("passkey").is_some() {
        return passkey_sign_in::sign_in(ctx, req, &form, &r, &asked).await;
    }
    if form.get("pending").is_some() {
        return second_factor::handle(ctx, req, &form, &r, &asked).await;
    }
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        let failed = (
            StatusCode::BAD_REQUEST,
            "Enter your username and password.",
            "",
        );
        return again(ctx, req, &r, &asked.scope, failed).await;
    };
    let user = match ctx
        .issuer
        .logins
        .check_password(username, password, req.client, req.now)
        .await
    {
        Ok(user) => user,
        Err(denied) => {
            let (status, message) = match denied {
                Denied::Locked => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed attempts. Try again later.",
                ),
                Denied::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is unavailable. Try again later.",
                ),
                Denied::BadCredentials | Denied::Blocked => {
                    (StatusCode::UNAUTHORIZED, "Wrong username or password.")
                }
            };
            return again(ctx, req, &r, &asked.scope, (status, message, username)).await;
        }
    };
    second_factor::after_password(ctx, req, &r, &asked, user).await
}

/// "Continue as ...": the session must still be there and serve the
/// request (fresh enough, at the level asked), or be the one the sign-in
/// just finished began (`finished`: the page after it had a Continue).
async fn go_on(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    asked: &auth_request::Asked,
    finished: Option<String>,
) -> Answer {
    let session = match sso::current(ctx, req).await {
        Ok(s) => {
            s.filter(|s| asked.served_by(ctx, s, req.now) || finished.as_deref() == Some(&s.sid))
        }
        Err(e) => return auth_request::back_with_error(ctx, r, e),
    };
    match session {
        Some(s) => {
            consent::remember(ctx, &r.client, &s.login, &asked.scope, req.now).await;
            auth_request::issue(ctx, req, r, asked, &s, None).await
        }
        None => {
            let failed = (
                StatusCode::UNAUTHORIZED,
                "Your session has ended. Sign in again.",
                "",
            );
            again(ctx, req, r, &asked.scope, failed).await
        }
    }
}

/// The form again, without a session, saying what went wrong: its status,
/// message and the username typed.
async fn again(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    scope: &[String],
    failed: (StatusCode, &str, &str),
) -> Answer {
    show(ctx, req, r, scope, None, Some(failed)).await
}
