//! Pushed authorization requests (RFC 9126): a client posts its
//! authorization request to `/oauth2/NAME/par`, authenticated as at the
//! token endpoint, and gets a `request_uri` that stands for it at the
//! authorization endpoint for a minute. The request is checked when it is
//! pushed as the authorization endpoint checks it, and kept sealed in the
//! `request_uri` itself (`ticket`: nobody can read or change it, and every
//! instance opens it); one code is made for it (`auth_request`).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth_request::{checked, known_client, AuthRequest, CARRIED};
use super::client::authenticate;
use super::form::Form;
use super::{ticket, Answer, Endpoints, Error, Request};

/// What every `request_uri` starts with (RFC 9126 §2.2).
pub const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Seconds a pushed request may wait for the authorization endpoint.
const LIFETIME: i64 = 60;

/// The tickets' purpose: no other page's ticket opens as one.
const PURPOSE: &str = "pushed authorization request";

/// How a client authenticates: not part of its authorization request.
const AUTHENTICATION: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// A pushed request, as sealed into its `request_uri`.
#[derive(Serialize, Deserialize)]
struct Pushed {
    client_id: String,
    params: Vec<(String, String)>,
    expires_at: i64,
}

/// `POST /oauth2/NAME/par`: `201` with the `request_uri` and its lifetime.
pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Result<Answer, Error> {
    let form = Form::parse(req.body, req.form)?;
    let client = authenticate(ctx, req, &form).await?;
    if form.sent("request_uri") {
        return Err(Error::invalid_request(
            "request_uri is not itself pushed (RFC 9126 §2.1)",
        ));
    }
    // Empty or not: request objects are not taken.
    if form.sent("request") {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    // The client named is the one that authenticated (Basic names it in
    // the header alone).
    if form.get("client_id").is_some_and(|id| id != client.login) {
        return Err(Error::invalid_request(
            "client_id is not the client that authenticated",
        ));
    }
    let mut params = form.pairs_but(&AUTHENTICATION);
    params.retain(|(name, _)| name != "client_id");
    params.push(("client_id".into(), client.login.clone()));
    // RFC 9449 §10.1: a DPoP proof here binds the code to its key.
    if let Some(key) = req.dpop_key {
        match form.get("dpop_jkt") {
            Some(jkt) if jkt != key => {
                return Err(Error::invalid_request(
                    "dpop_jkt is not the key the DPoP proof is signed with",
                ))
            }
            Some(_) => {}
            None => params.push(("dpop_jkt".into(), key.to_string())),
        }
    }
    let asked = Form::of(params.clone());
    let request = known_client(ctx, req, &asked)
        .await
        .map_err(Error::invalid_request)?;
    checked(ctx, &asked, &request)?;
    let pushed = Pushed {
        client_id: client.login.clone(),
        params,
        expires_at: req.now + LIFETIME,
    };
    let sealed = ticket::seal(ctx, PURPOSE, &pushed).await?;
    let body = json!({ "request_uri": format!("{PREFIX}{sealed}"), "expires_in": LIFETIME });
    Ok(Answer::json(StatusCode::CREATED, body))
}

/// An authorization request's parameters with its `request_uri` read
/// (RFC 9126 §4): those pushed, in place of any sent beside it (the
/// page's own fields are kept); and the `request_uri`, which the page
/// carries instead. Where the issuer takes pushed requests only, one
/// without a `request_uri` is refused.
pub async fn expanded(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: Form,
) -> Result<(Form, Option<String>), String> {
    let Some(uri) = form.get("request_uri") else {
        if ctx.settings.require_pushed_requests {
            return Err(PUSH_FIRST.into());
        }
        return Ok((form, None));
    };
    let unknown = || "request_uri is not one this issuer made".to_string();
    let sealed = uri.strip_prefix(PREFIX).ok_or_else(unknown)?;
    let pushed: Pushed = ticket::open(ctx, PURPOSE, sealed)
        .await
        .map_err(|e| e.description)?
        .ok_or_else(unknown)?;
    if pushed.expires_at <= req.now {
        return Err("request_uri has expired: push the request again".into());
    }
    if form.get("client_id") != Some(&pushed.client_id) {
        return Err("client_id is not the client that pushed the request".into());
    }
    let mut leave_out: Vec<&str> = CARRIED.to_vec();
    leave_out.extend(["request_uri", "request"]);
    let mut params = form.pairs_but(&leave_out);
    params.extend(pushed.params);
    Ok((Form::of(params), Some(uri.to_string())))
}

const PUSH_FIRST: &str =
    "this issuer takes pushed authorization requests only: push it to the par endpoint first";

/// The request as the page carries it: a pushed one by its `request_uri`
/// alone. A client that must push and did not is refused.
pub fn carried(r: &mut AuthRequest, pushed: Option<String>) -> Result<(), &'static str> {
    match pushed {
        Some(uri) => {
            let client_id = r.client.login.clone();
            r.params = vec![("client_id".into(), client_id), ("request_uri".into(), uri)];
            Ok(())
        }
        None if r.client.client.require_pushed_requests => Err(PUSH_FIRST),
        None => Ok(()),
    }
}
