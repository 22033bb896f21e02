//! An authorization request (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1) as the
//! authorization endpoint and the sign-in form both read it: its client
//! and redirect URI (matched first: nothing before them is redirected),
//! then PKCE, scope, resource and prompt; and the answers that go back to
//! the client (a code, or an error, with `state` and `iss`, RFC 9207).

use std::sync::Arc;

use http::StatusCode;

use super::form::Form;
use super::mint::{words, OFFLINE_ACCESS};
use super::{code, Answer, Endpoints, Error, Request};
use crate::config::{ClientProfile, Principal};
use crate::store::{CodeRecord, SsoSession};
use crate::tokens::random_id;

/// The account page's own client at the authorization endpoint: the page
/// sends a person through the sign-in page as it, and gets them back with
/// no code.
pub const ACCOUNT_CLIENT: &str = "portero:account";

/// The account page's URL, the account client's one redirect URI.
pub fn account_page(ctx: &Endpoints<'_>) -> String {
    format!("{}/account", ctx.settings.issuer_id)
}

/// The account client: public, sent back to the page.
fn account_client(ctx: &Endpoints<'_>) -> Arc<Principal> {
    Arc::new(Principal {
        client: ClientProfile {
            public: true,
            redirect_uris: vec![account_page(ctx)],
            grant_types: vec!["authorization_code".into()],
            ..ClientProfile::default()
        },
        ..Principal::named(ACCOUNT_CLIENT)
    })
}

/// An authorization request whose client and redirect URI are known.
pub struct AuthRequest {
    pub client: Arc<Principal>,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// Every parameter as sent, for the sign-in form to carry.
    pub params: Vec<(String, String)>,
}

/// What the rest of the request asks for, once checked.
pub struct Asked {
    pub scope: Vec<String>,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub resource: Option<String>,
    /// `prompt=login`, or a `max_age` the session is older than.
    pub fresh_login: bool,
    /// `prompt=consent`: the user confirms, even with a session.
    pub consent: bool,
    pub prompt_none: bool,
    pub max_age: Option<i64>,
    /// `acr_values` (OpenID Connect Core §3.1.2.1): the levels asked for.
    pub acr_values: Vec<String>,
    /// `dpop_jkt` (RFC 9449 §10): the code is redeemed only with a proof
    /// of this key.
    pub dpop_jkt: Option<String>,
}

impl Asked {
    /// Whether `session` may answer this request without a new sign-in:
    /// no `prompt=login`, young enough for `max_age`, at a level
    /// `acr_values` accepts, and not a password alone where the issuer
    /// requires a second factor (a session from before it did).
    pub fn served_by(&self, ctx: &Endpoints<'_>, session: &SsoSession, now: i64) -> bool {
        let acr = crate::factors::acr_of(&session.amr);
        let required = ctx.issuer.accounts.second_factor == crate::config::SecondFactor::Required;
        !self.fresh_login
            && self
                .max_age
                .is_none_or(|age| now - session.auth_time <= age)
            && crate::factors::meets(acr, &self.acr_values)
            && !(required && acr == crate::factors::ACR_PASSWORD)
    }
}

/// The parameters the sign-in form carries back: what the request said.
pub(super) const CARRIED: [&str; 13] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "resource",
    "prompt",
    "max_age",
    "acr_values",
    "dpop_jkt",
];

/// The client and its redirect URI: both known and matched, or a message
/// for the page.
pub async fn known_client(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    params: &Form,
) -> Result<AuthRequest, String> {
    let id = params.get("client_id").ok_or("client_id is missing")?;
    let client = match id == ACCOUNT_CLIENT {
        true => Some(account_client(ctx)),
        false => super::client::public_or_listed(ctx, id, req.client)
            .await
            .map_err(|_| "the service is unavailable; try again later".to_string())?,
    };
    let client = client
        .filter(|c| !c.client.redirect_uris.is_empty())
        .ok_or("no such client signs users in here")?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or("redirect_uri is missing")?;
    if !redirect_matches(&client.client.redirect_uris, redirect_uri) {
        return Err("redirect_uri is not one the client registered".into());
    }
    let carried = CARRIED
        .iter()
        .filter_map(|name| Some((name.to_string(), params.get(name)?.to_string())))
        .collect();
    Ok(AuthRequest {
        redirect_uri: redirect_uri.to_string(),
        state: params.get("state").map(str::to_string),
        client,
        params: carried,
    })
}

/// Exact comparison (OAuth 2.1 §2.3.1), except that a loopback http
/// redirect URI matches on any port (RFC 8252 §7.3).
fn redirect_matches(registered: &[String], asked: &str) -> bool {
    if registered.iter().any(|r| r == asked) {
        return true;
    }
    let Ok(asked_url) = url::Url::parse(asked) else {
        return false;
    };
    let loopback = asked_url.scheme() == "http"
        && matches!(
            asked_url.host(),
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))
        )
        && crate::redirect_uri::is_loopback(&asked_url);
    loopback
        && registered.iter().any(|r| {
            url::Url::parse(r).is_ok_and(|mut r| {
                let mut a = asked_url.clone();
                let _ = (r.set_port(None), a.set_port(None));
                r == a
            })
        })
}

/// Everything else the request asks, checked: PKCE S256, the scope the
/// client may have, the resource the issuer serves.
pub fn checked(ctx: &Endpoints<'_>, params: &Form, r: &AuthRequest) -> Result<Asked, Error> {
    if params.sent("request") || params.sent("request_uri") {
        return Err(error(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    match params.get("response_type") {
        Some("code") => {}
        _ => {
            return Err(error(
                "unsupported_response_type",
                "response_type must be code",
            ))
        }
    }
    if !r.client.client.may_use("authorization_code") {
        return Err(error(
            "unauthorized_client",
            "this client may not use authorization codes",
        ));
    }
    let code_challenge = params
        .get("code_challenge")
        .ok_or_else(|| Error::invalid_request("PKCE is required: send code_challenge (S256)"))?;
    if params.get("code_challenge_method") != Some("S256") {
        return Err(Error::invalid_request("code_challenge_method must be S256"));
    }
    if !code::is_s256_challenge(code_challenge) {
        return Err(Error::invalid_request(
            "code_challenge is not an S256 challenge",
        ));
    }
    let scope = scope(ctx, params.get("scope"), &r.client)?;
    let prompt = words(params.get("prompt"));
    let has = |p: &str| prompt.iter().any(|w| w == p);
    if has("none") && prompt.len() > 1 {
        return Err(Error::invalid_request("prompt=none goes alone"));
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| Error::invalid_request("max_age is not a number of seconds"))?
                as i64,
        ),
    };
    Ok(Asked {
        scope,
        code_challenge: code_challenge.to_string(),
        nonce: params.get("nonce").map(str::to_string),
        resource: resource(ctx, params.get("resource"))?,
        fresh_login: has("login"),
        consent: has("consent"),
        prompt_none: has("none"),
        max_age,
        acr_values: words(params.get("acr_values")),
        dpop_jkt: dpop_jkt(params.get("dpop_jkt"))?,
    })
}

/// Takes a pushed request's one code: `false` if it was taken before
/// (RFC 9126 §4: a `request_uri` is used once). A request that was not
/// pushed has nothing to take.
async fn pushed_once(ctx: &Endpoints<'_>, r: &AuthRequest) -> Result<bool, Error> {
    let Some((_, uri)) = r.params.iter().find(|(name, _)| name == "request_uri") else {
        return Ok(true);
    };
    // Past the request's own minute, twice over.
    let ttl = std::time::Duration::from_secs(120);
    let key = format!("par\0{}", crate::tokens::sha256_base64url(uri));
    ctx.issuer
        .store
        .claim(&key, ttl)
        .await
        .map_err(|_| Error::unavailable())
}

/// `dpop_jkt`: a JWK thumbprint, the base64url of a SHA-256 (43 characters).
fn dpop_jkt(value: Option<&str>) -> Result<Option<String>, Error> {
    let Some(jkt) = value else {
        return Ok(None);
    };
    let well_formed = jkt.len() == 43
        && jkt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match well_formed {
        true => Ok(Some(jkt.to_string())),
        false => Err(Error::invalid_request(
            "dpop_jkt is not a JWK SHA-256 thumbprint",
        )),
    }
}

/// The scopes granted: those asked for, each one the client may have
/// (`openid` always, `offline_access` when it may refresh), or all it
/// declared when it asks for none. A client that described itself may
/// have, beyond what it declared, whatever the issuer's protected
/// resources ask for now (a `403 insufficient_scope` names them; the
/// user is asked for each).
fn scope(
    ctx: &Endpoints<'_>,
    asked: Option<&str>,
    client: &Principal,
) -> Result<Vec<String>, Error> {
    let mut held = client.permissions.clone();
    if client.client.self_described() {
        held.extend(ctx.settings.resource_scopes.iter().cloned());
    }
    held.push("openid".into());
    if client.client.may_use("refresh_token") {
        held.push(OFFLINE_ACCESS.into());
    }
    match asked {
        None => Ok(client.permissions.clone()),
        Some(_) => super::mint::narrowed(asked, &held),
    }
}

/// The resource (RFC 8707) a token is asked for: one the issuer serves,
/// an absolute URL without a fragment; `invalid_target` otherwise.
pub fn resource(ctx: &Endpoints<'_>, asked: Option<&str>) -> Result<Option<String>, Error> {
    let Some(asked) = asked else {
        return Ok(None);
    };
    if ctx.settings.resources.iter().any(|r| r == asked) {
        return Ok(Some(asked.to_string()));
    }
    Err(error(
        "invalid_target",
        format!("{asked:?} is not a resource this issuer serves"),
    ))
}

fn error(code: &'static str, description: impl Into<String>) -> Error {
    Error::new(StatusCode::BAD_REQUEST, code, description)
}

pub fn login_required() -> Error {
    error("login_required", "the user is not signed in")
}

pub fn access_denied() -> Error {
    error("access_denied", "the user denied the application")
}

pub fn consent_required() -> Error {
    error("consent_required", "the user must confirm this client")
}

/// A code for the session's user, sent to the client's redirect URI.
pub async fn issue(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    asked: &Asked,
    session: &SsoSession,
    cookie: Option<String>,
) -> Answer {
    // The account page's own sign-in: back to the page, with no code.
    if r.client.login == ACCOUNT_CLIENT {
        return Answer::redirect(r.redirect_uri.clone()).with_cookie(cookie);
    }
    match pushed_once(ctx, r).await {
        Ok(true) => {}
        Ok(false) => {
            let used = Error::invalid_request("request_uri was used: push the request again");
            return back_with_error(ctx, r, used).with_cookie(cookie);
        }
        Err(e) => return back_with_error(ctx, r, e).with_cookie(cookie),
    }
    let record = CodeRecord {
        issuer: ctx.issuer.config.name.clone(),
        client_id: r.client.login.clone(),
        redirect_uri: r.redirect_uri.clone(),
        code_challenge: asked.code_challenge.clone(),
        scope: asked.scope.join(" "),
        resource: asked.resource.clone(),
        nonce: asked.nonce.clone(),
        login: session.login.clone(),
        sub: session.sub.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        dpop_jkt: asked.dpop_jkt.clone(),
        sid: Some(session.sid.clone()),
        expires_at: req.now + code::CODE_TTL,
        jti: random_id(16),
        used: false,
        replayed: false,
        refresh_hash: None,
    };
    let answer = match code::make(ctx, &record).await {
        Ok(code) => Answer::redirect(back(ctx, r, &[("code", &code)])),
        Err(e) => back_with_error(ctx, r, e),
    };
    if r.client.client.registered {
        super::registration::used(ctx, &r.client.login, req.now).await;
    }
    answer.with_cookie(cookie)
}

/// The client's redirect URI with `params`, `state` and `iss` added to its query.
fn back(ctx: &Endpoints<'_>, r: &AuthRequest, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&r.redirect_uri).expect("checked against a registered URI");
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(state) = &r.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &ctx.settings.issuer_id);
    }
    url.into()
}

/// An error sent back to the client (RFC 6749 §4.1.2.1).
pub fn back_with_error(ctx: &Endpoints<'_>, r: &AuthRequest, e: Error) -> Answer {
    Answer {
        refused: Some(e.reason()),
        ..Answer::redirect(back(
            ctx,
            r,
            &[("error", e.code), ("error_description", &e.description)],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_or_on_any_loopback_port() {
        let registered = vec![
            "https://app.example.com/cb".to_string(),
            "http://127.0.0.1/callback".to_string(),
        ];
        assert!(redirect_matches(&registered, "https://app.example.com/cb"));
        assert!(redirect_matches(
            &registered,
            "http://127.0.0.1:53412/callback"
        ));
        for no in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com:8443/cb",
            "https://APP.example.com/cb#",
            "http://127.0.0.1:1/other",
            "http://localhost:53412/callback",
            "https://evil.example/cb",
        ] {
            assert!(!redirect_matches(&registered, no), "{no}");
        }
    }
}
