//! The authorization endpoint (RFC 6749 §4.1.1, OAuth 2.1 §4.1): the
//! authorization code flow with PKCE S256 only. Until the client and its
//! redirect URI are known and matched, an error is shown on a page, never
//! redirected (no open redirect); after, it goes back to the client with
//! `state` and `iss` (RFC 9207), unless the client described itself (its
//! redirect URI is anyone's: the page says it). A user with a sign-on
//! session is sent back with a code at once; any other sees the sign-in
//! page (`sign_in`).

use super::auth_request::{
    back_with_error, checked, consent_required, issue, known_client, login_required, AuthRequest,
};
use super::form::Form;
use super::{consent, page, par, sign_in, sso, Answer, Endpoints, Error, Request};

pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Answer {
    let params = match parameters(req) {
        Ok(p) => p,
        Err(message) => return page::shown(ctx, &message),
    };
    let (params, pushed) = match par::expanded(ctx, req, params).await {
        Ok(expanded) => expanded,
        Err(message) => return page::shown(ctx, &message),
    };
    let mut request = match known_client(ctx, req, &params).await {
        Ok(r) => r,
        Err(message) => return page::shown(ctx, &message),
    };
    if let Err(message) = par::carried(&mut request, pushed) {
        return page::shown(ctx, message);
    }
    let asked = match checked(ctx, &params, &request) {
        Ok(a) => a,
        Err(e) => return unasked(ctx, &request, e),
    };
    let session = match sso::current(ctx, req).await {
        Ok(s) => s,
        Err(e) => return unasked(ctx, &request, e),
    };
    let session = session.filter(|s| asked.served_by(ctx, s, req.now));
    let allowed = match &session {
        Some(s) => consent::remembered(ctx, &request.client, &s.login, req.now).await,
        None => None,
    };
    let client = &request.client;
    match session {
        // A client that described itself is anyone's: the user says it
        // may go on, unless they allowed it all before.
        Some(s) if !client.client.self_described() && !asked.consent => {
            issue(ctx, req, &request, &asked, &s, None).await
        }
        Some(s) if consent::covers(client, allowed.as_deref(), &asked.scope) && !asked.consent => {
            issue(ctx, req, &request, &asked, &s, None).await
        }
        Some(_) if asked.prompt_none => unasked(ctx, &request, consent_required()),
        None if asked.prompt_none => unasked(ctx, &request, login_required()),
        s => sign_in::show(ctx, req, &request, &asked.scope, s.as_ref(), None).await,
    }
}

/// An error before the user has said anything: back to the client, or,
/// for a client that described itself (whose redirect URI is anyone's
/// choice), on the page, never an automatic redirect there (RFC 9700
/// §4.11.2: no open redirector).
fn unasked(ctx: &Endpoints<'_>, r: &AuthRequest, e: Error) -> Answer {
    match r.client.client.self_described() {
        true => page::shown(ctx, &e.description),
        false => back_with_error(ctx, r, e),
    }
}

/// The request's parameters: the query of a GET, the form of a POST; each
/// at most once.
fn parameters(req: &Request<'_>) -> Result<Form, String> {
    let parsed = match *req.method == http::Method::POST {
        true => Form::parse(req.body, req.form),
        false => Form::parse(req.query.unwrap_or_default().as_bytes(), true),
    };
    parsed.map_err(|e| e.description)
}
