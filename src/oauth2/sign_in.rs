//! The sign-in page's form: shown by the authorization endpoint, posted
//! to `/oauth2/NAME/sign-in`. The form carries the authorization request
//! in hidden fields and a CSRF token: an HMAC, under a secret every
//! instance shares, of those fields and a random cookie set with the page.
//! A post without the cookie, with other fields, or from another origin
//! is refused. Credentials go through the same lockout, timing and rate
//! limits as the legacy endpoint (`identity::Logins::log_in`).

use http::StatusCode;

use super::auth_request::{self, AuthRequest};
use super::form::Form;
use super::{consent, csrf, page, second_factor, sso, Answer, Endpoints, Request};
use crate::config::Principal;
use crate::identity::Denied;
use crate::store::SsoSession;
use crate::tokens::random_id;

/// The sign-in page for `r`, asking `scope`; with `session`, a button to
/// go on as its user; and one to deny the application.
pub async fn show(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    scope: &[String],
    session: Option<&SsoSession>,
    failed: Option<(StatusCode, &str, &str)>,
) -> Answer {
    let cookie_name = sso::cookie_name(ctx, "portero-form");
    let (binding, set) = match sso::cookie(req, &cookie_name).filter(|v| v.len() == 43) {
        Some(v) => (v.to_string(), None),
        None => {
            let fresh = random_id(32);
            let set = sso::set_cookie(ctx, &cookie_name, &fresh, 3600);
            (fresh, Some(set))
        }
    };
    let csrf = match csrf::token(ctx, &binding, &r.params).await {
        Ok(t) => t,
        Err(e) => return auth_request::back_with_error(ctx, r, e),
    };
    let return_host = url::Url::parse(&r.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| r.redirect_uri.clone());
    let (status, error, username) = match failed {
        Some((status, error, username)) => (status, Some(error), Some(username)),
        None => (StatusCode::OK, None, None),
    };
    let action = format!("{}/sign-in", ctx.settings.issuer_id);
    let allowed_before = match session {
        Some(s) => consent::remembered(ctx, &r.client, &s.login, req.now)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let passkey = match session {
        Some(_) => None,
        None => super::passkey::offer(ctx, &binding, req.now, "Sign in with a passkey").await,
    };
    let (client_name, publisher) = described(&r.client);
    let html = page::sign_in(&page::SignIn {
        look: &ctx.settings.sign_in,
        action: &action,
        hidden: &r.params,
        csrf: &csrf,
        client_name: &client_name,
        publisher: publisher.as_deref(),
        return_host: &return_host,
        resource: r
            .params
            .iter()
            .find(|(name, _)| name == "resource")
            .map(|(_, value)| value.as_str()),
        scope,
        allowed_before: &allowed_before,
        descriptions: &ctx.settings.scope_descriptions,
        signed_in_as: session.map(|s| s.login.as_str()),
        username,
        error,
        passkey: passkey.as_deref(),
    });
    let mut answer = Answer::page(status, html).with_cookie(set);
    answer.csp = Some(page::csp(&ctx.settings.sign_in, Some(&r.redirect_uri)));
    answer
}

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
    let r = match auth_request::known_client(ctx, req, &form).await {
        Ok(r) => r,
        Err(message) => return page::shown(ctx, &message),
    };
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
        let finished = second_factor::finished_session(ctx, req, &form).await;
        return go_on(ctx, req, &r, &asked, finished).await;
    }
    // "Not you?": this browser's sign-on is forgotten, and the form asks
    // who is there.
    if form.get("switch").is_some() {
        let page = show(ctx, req, &r, &asked.scope, None, None).await;
        return page.with_cookie(Some(sso::forget(ctx)));
    }
    if form.get("passkey").is_some() {
        return super::passkey::sign_in(ctx, req, &form, &r, &asked).await;
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
        Ok(s) => s.filter(|s| asked.served_by(s, req.now) || finished.as_deref() == Some(&s.sid)),
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

/// How the page names the client, and where it is published: a client
/// that described itself named itself, and the user is told so; one
/// named by its metadata document is known by the document's host.
fn described(client: &Principal) -> (String, Option<String>) {
    let profile = &client.client;
    let id = &client.login;
    if id == super::account::ACCOUNT_CLIENT {
        return ("your account page".to_string(), None);
    }
    if profile.metadata_document {
        // Host and port: two documents on one host but not one port are
        // not one publisher.
        let host = url::Url::parse(id)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| id.clone());
        let name = match &profile.name {
            Some(name) => format!("{name:?} (the name the application gives itself)"),
            None => "an application".to_string(),
        };
        return (name, Some(host));
    }
    let name = match (&profile.name, profile.registered) {
        (Some(name), true) => format!("{name:?} ({id}, an application that registered itself)"),
        (None, true) => format!("{id} (an application that registered itself)"),
        _ => id.clone(),
    };
    (name, None)
}
