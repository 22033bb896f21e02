//! The sign-in page: shown by the authorization endpoint (and by the
//! steps after it), its form posted to `/oauth2/NAME/sign-in`
//! (`sign_in_post`). The form carries the authorization request in hidden
//! fields and a CSRF token: an HMAC, under a secret every instance shares,
//! of those fields and a random cookie set with the page.

use http::StatusCode;

use super::auth_request::{self, AuthRequest};
use super::page::{words, words_with};
use super::{consent, csrf, page, sso, Answer, Endpoints, Request};
use crate::config::{Principal, SignInPage};
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
    let (client_name, publisher) = described(&ctx.settings.sign_in, &r.client);
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

/// How the page names the client, and where it is published: a client
/// that described itself named itself, and the user is told so; one
/// named by its metadata document is known by the document's host.
fn described(look: &SignInPage, client: &Principal) -> (String, Option<String>) {
    let profile = &client.client;
    let id = &client.login;
    if id == auth_request::ACCOUNT_CLIENT {
        return (words(look, "your account page").to_string(), None);
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
            Some(name) => words_with(
                look,
                "{name} (the name the application gives itself)",
                &[("name", &format!("{name:?}"))],
            ),
            None => words(look, "an application").to_string(),
        };
        return (name, Some(host));
    }
    let name = match (&profile.name, profile.registered) {
        (Some(name), true) => words_with(
            look,
            "{name} ({id}, an application that registered itself)",
            &[("name", &format!("{name:?}")), ("id", id)],
        ),
        (None, true) => words_with(
            look,
            "{id} (an application that registered itself)",
            &[("id", id)],
        ),
        _ => id.clone(),
    };
    (name, None)
}
