//! The sign-in page's form: shown by the authorization endpoint, posted
//! to `/oauth2/NAME/sign-in`. The form carries the authorization request
//! in hidden fields and a CSRF token: an HMAC, under a secret every
//! instance shares, of those fields and a random cookie set with the page.
//! A post without the cookie, with other fields, or from another origin
//! is refused. Credentials go through the same lockout, timing and rate
//! limits as the legacy endpoint (`Issuing::authenticate`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::StatusCode;
use sha2::Sha256;

use super::authorize::{self, AuthRequest};
use super::form::Form;
use super::{page, sso, Answer, Endpoints, Error, Request};
use crate::issue::{self, random_id, Denied};
use crate::store::{SsoSession, StoredKey};

/// The store's name for the forms' secret (a control character: no
/// issuer is named so).
const FORMS_SECRET: &str = "\u{1}oauth2-forms";

/// The sign-in page for `r`; with `session`, a button to go on as its user.
pub async fn show(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
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
    let csrf = match csrf_token(ctx, &binding, &r.params).await {
        Ok(t) => t,
        Err(e) => return authorize::back_with_error(ctx, r, e),
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
    // A registered client named itself: the user is told so.
    let client_name = match (&r.client.client.name, r.client.client.registered) {
        (Some(name), true) => format!(
            "{name:?} ({}, an application that registered itself)",
            r.client.login
        ),
        (None, true) => format!("{} (an application that registered itself)", r.client.login),
        _ => r.client.login.clone(),
    };
    let html = page::sign_in(&page::SignIn {
        look: &ctx.settings.sign_in,
        action: &action,
        hidden: &r.params,
        csrf: &csrf,
        client_name: &client_name,
        return_host: &return_host,
        signed_in_as: session.map(|s| s.login.as_str()),
        username,
        error,
    });
    let mut answer = Answer::page(status, html).with_cookie(set);
    answer.csp = Some(page::csp(&ctx.settings.sign_in, Some(&r.redirect_uri)));
    answer
}

/// The form posted: the request checked again, the CSRF token, then the
/// credentials (or, with `continue`, the session).
pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Answer {
    if !same_origin(ctx, req) {
        return refused(ctx, "the form was posted from another site");
    }
    let form = match Form::parse(req.body, req.form) {
        Ok(f) => f,
        Err(e) => return refused(ctx, &e.description),
    };
    let r = match authorize::known_client(ctx, &form).await {
        Ok(r) => r,
        Err(message) => return refused(ctx, &message),
    };
    let asked = match authorize::checked(ctx, &form, &r) {
        Ok(a) => a,
        Err(e) => return authorize::back_with_error(ctx, &r, e),
    };
    let binding = sso::cookie(req, &sso::cookie_name(ctx, "portero-form")).unwrap_or_default();
    match csrf_token(ctx, binding, &r.params).await {
        Ok(expected) if !binding.is_empty() && same(form.get("csrf"), &expected) => {}
        Ok(_) => {
            return refused(
                ctx,
                "the form has expired or was not this page's; start again",
            )
        }
        Err(e) => return authorize::back_with_error(ctx, &r, e),
    }
    if form.get("continue").is_some() {
        return go_on(ctx, req, &r, &asked).await;
    }
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return show(
            ctx,
            req,
            &r,
            None,
            Some((
                StatusCode::BAD_REQUEST,
                "Enter your username and password.",
                "",
            )),
        )
        .await;
    };
    let user = match ctx
        .issuing
        .authenticate(username, password, req.client, req.now)
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
            return show(ctx, req, &r, None, Some((status, message, username))).await;
        }
    };
    let sub = issue::subject(ctx.issuing.endpoint.dialect, &user);
    match sso::begin(ctx, req, &user, &sub).await {
        Ok((session, cookie)) => {
            authorize::issue(ctx, req, &r, &asked, &session, Some(cookie)).await
        }
        Err(e) => authorize::back_with_error(ctx, &r, e),
    }
}

/// "Continue as ...": the session must still be there and fresh enough.
async fn go_on(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    asked: &authorize::Asked,
) -> Answer {
    let session = match sso::current(ctx, req).await {
        Ok(s) => s.filter(|s| {
            !asked.fresh_login && asked.max_age.is_none_or(|age| req.now - s.auth_time <= age)
        }),
        Err(e) => return authorize::back_with_error(ctx, r, e),
    };
    match session {
        Some(s) => authorize::issue(ctx, req, r, asked, &s, None).await,
        None => {
            show(
                ctx,
                req,
                r,
                None,
                Some((
                    StatusCode::UNAUTHORIZED,
                    "Your session has ended. Sign in again.",
                    "",
                )),
            )
            .await
        }
    }
}

/// A browser says where a form came from (`Origin`); one from another
/// origin is a cross-site post. A request without it is a client that is
/// not a browser, which the CSRF cookie still binds.
pub fn same_origin(ctx: &Endpoints<'_>, req: &Request<'_>) -> bool {
    let Some(origin) = req.origin else {
        return true;
    };
    let ours = url::Url::parse(&ctx.settings.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    origin == ours.as_bytes()
}

fn same(sent: Option<&str>, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

/// HMAC-SHA-256 of the form's binding cookie and the request's fields.
async fn csrf_token(
    ctx: &Endpoints<'_>,
    binding: &str,
    params: &[(String, String)],
) -> Result<String, Error> {
    let mut secret = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    let fresh = StoredKey {
        kid: "oauth2-forms".into(),
        secret,
    };
    let kept = ctx
        .issuing
        .store
        .signing_key(FORMS_SECRET, fresh)
        .await
        .map_err(|_| Error::unavailable())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&kept.secret).expect("any key length");
    // Each part with its length first: no two lists of fields read alike.
    let mut part = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    part(ctx.issuing.issuer.name.as_bytes());
    part(binding.as_bytes());
    for (name, value) in params {
        part(name.as_bytes());
        part(value.as_bytes());
    }
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// The token of the logout confirmation form for session `sid`.
pub async fn logout_token(ctx: &Endpoints<'_>, sid: &str) -> Result<String, Error> {
    csrf_token(ctx, sid, &[("logout".to_string(), sid.to_string())]).await
}

pub async fn logout_token_matches(ctx: &Endpoints<'_>, sid: &str, sent: &str) -> bool {
    logout_token(ctx, sid)
        .await
        .is_ok_and(|t| same(Some(sent), &t))
}

fn refused(ctx: &Endpoints<'_>, message: &str) -> Answer {
    let mut answer = Answer::page(
        StatusCode::BAD_REQUEST,
        page::error(&ctx.settings.sign_in, message),
    );
    answer.csp = Some(page::csp(&ctx.settings.sign_in, None));
    answer
}
