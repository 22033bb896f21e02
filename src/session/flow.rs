//! Signing a browser in: the redirect to the provider (authorization code
//! with PKCE S256, `state`, `nonce`; OpenID Connect Core §3.1.2) and the
//! callback that ends it (§3.1.2.5–3.1.3.7, RFC 9207's `iss`).

use sha2::{Digest, Sha256};

use super::pending::{safe_return, Pending, PENDING_SECS};
use super::provider::{LoginProvider, OwnIssuer, ProviderError};
use super::tokens::Expect;
use super::{seal, BrowserSessions, NewSession, Tokens};
use crate::auth::validate::Validator;
use crate::config::Sessions;

/// What portero answers a browser with: a redirect, with cookies.
#[derive(Debug)]
pub struct Redirect {
    pub location: String,
    pub cookies: Vec<String>,
}

/// Why a callback ends without a session: said to the browser as `400`
/// (or `503` when the provider or the store could not be reached).
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("{0}")]
    Refused(&'static str),
    #[error("the provider said: {0}")]
    Provider(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<ProviderError> for CallbackError {
    fn from(e: ProviderError) -> CallbackError {
        match e {
            ProviderError::Unreachable(why) => CallbackError::Unavailable(why),
            other => CallbackError::Provider(other.to_string()),
        }
    }
}

fn random() -> String {
    seal::new_id()
}

/// A cookie portero sets, with the attributes every one of its cookies has.
pub fn cookie(sessions: &Sessions, name: &str, value: &str, max_age: i64) -> String {
    let secure = if sessions.secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// Sends the browser to `provider` to sign in, to come back to `return_to`.
pub async fn start(
    sessions: &BrowserSessions,
    settings: &Sessions,
    provider: &LoginProvider,
    return_to: &str,
    now: i64,
) -> Result<Redirect, CallbackError> {
    let endpoints = provider.endpoints().await?;
    let return_to = if safe_return(return_to) {
        return_to
    } else {
        "/"
    };
    let pending = Pending {
        state: random(),
        nonce: random(),
        verifier: random(),
        provider: provider.name.clone(),
        return_to: return_to.to_string(),
        expires_at: now + PENDING_SECS,
    };
    let challenge =
        base64_simd::URL_SAFE_NO_PAD.encode_to_string(Sha256::digest(pending.verifier.as_bytes()));
    let scope = provider.client.scopes.join(" ");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client.client_id)
        .append_pair("redirect_uri", &settings.redirect_uri())
        .append_pair("scope", &scope)
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let separator = if endpoints.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let secret = sessions
        .pending_secret()
        .await
        .map_err(|e| CallbackError::Unavailable(e.to_string()))?;
    Ok(Redirect {
        location: format!("{}{separator}{query}", endpoints.authorization_endpoint),
        cookies: vec![cookie(
            settings,
            &settings.login_cookie,
            &pending.sign(secret),
            PENDING_SECS,
        )],
    })
}

/// The callback's query as sent.
#[derive(Debug, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl Callback {
    /// Each parameter once: a repeated one is refused.
    pub fn parse(query: &str) -> Result<Callback, CallbackError> {
        let mut callback = Callback::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*name {
                "code" => &mut callback.code,
                "state" => &mut callback.state,
                "iss" => &mut callback.iss,
                "error" => &mut callback.error,
                "error_description" => &mut callback.error_description,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(CallbackError::Refused("a parameter came twice"));
            }
        }
        Ok(callback)
    }
}

/// What the callback needs besides the request.
pub struct Finish<'a> {
    pub sessions: &'a BrowserSessions,
    pub settings: &'a Sessions,
    pub validator: &'a Validator,
    pub leeway: i64,
    pub own: &'a dyn OwnIssuer,
    pub now: i64,
    /// More than one provider signs people in here: each callback must
    /// name its provider (RFC 9207 `iss`), or one provider's code could be
    /// sent to another's token endpoint (mix-up).
    pub several_providers: bool,
}

/// The pending sign-in the browser's cookie holds, if it is this
/// callback's (`state`), signed here and in time.
pub async fn pending_of(
    f: &Finish<'_>,
    cookie: Option<&str>,
    callback: &Callback,
) -> Result<Pending, CallbackError> {
    let secret = f
        .sessions
        .pending_secret()
        .await
        .map_err(|e| CallbackError::Unavailable(e.to_string()))?;
    let pending = cookie
        .and_then(|c| Pending::verify(secret, c, f.now))
        .ok_or(CallbackError::Refused(
            "no sign-in is under way in this browser (or it took too long)",
        ))?;
    let state = callback.state.as_deref().unwrap_or("");
    if !seal::same(state.as_bytes(), pending.state.as_bytes()) {
        return Err(CallbackError::Refused(
            "the state is not this browser's sign-in",
        ));
    }
    Ok(pending)
}

/// Ends a sign-in at `provider`: the code redeemed with the PKCE verifier,
/// the ID token checked, a session made. Its id for the cookie.
pub async fn finish(
    f: &Finish<'_>,
    provider: &LoginProvider,
    pending: &Pending,
    callback: &Callback,
) -> Result<String, CallbackError> {
    let endpoints = provider.endpoints().await?;
    let code = answer_code(f, &endpoints, callback)?;
    spend(f, pending).await?;
    let redirect_uri = f.settings.redirect_uri();
    let granted = provider
        .redeem_code(code, &redirect_uri, &pending.verifier, f.own)
        .await?;
    let id_token = granted
        .id_token
        .clone()
        .ok_or(CallbackError::Refused("the provider sent no ID token"))?;
    let expect = Expect {
        validator: f.validator,
        provider: provider.index,
        own: provider.is_own(),
        issuer: &endpoints.issuer,
        client_id: &provider.client.client_id,
        now: f.now,
        leeway: f.leeway,
    };
    let identity = expect.id_token(&id_token, &pending.nonce).map_err(|why| {
        tracing::warn!(target: "portero::session", provider = %provider.name, why, "an ID token was refused");
        CallbackError::Refused("the ID token is not valid")
    })?;
    let (claims, access_expires_at) = identity_claims(f, provider, &granted, &identity).await?;
    let tokens = Tokens {
        id_token,
        access_token: Some(granted.access_token),
        refresh_token: granted.refresh_token,
    };
    let new = NewSession {
        provider: &provider.name,
        provider_index: provider.index,
        sub: identity.sub,
        sid: identity.sid,
        claims,
        tokens,
        access_expires_at,
        idle_secs: f.settings.idle_timeout.as_secs() as i64,
        absolute_secs: f.settings.absolute_timeout.as_secs() as i64,
    };
    f.sessions
        .create(new, f.now)
        .await
        .map_err(|e| CallbackError::Unavailable(e.to_string()))
}

/// The code of a callback that is the provider's answer: not an error,
/// naming the provider asked (RFC 9207's `iss`, required where the
/// provider always sends it or several providers sign people in).
fn answer_code<'c>(
    f: &Finish<'_>,
    endpoints: &super::provider::Endpoints,
    callback: &'c Callback,
) -> Result<&'c str, CallbackError> {
    if let Some(error) = &callback.error {
        let mut said = as_text(error, 64);
        if let Some(description) = &callback.error_description {
            said = format!("{said} ({})", as_text(description, 200));
        }
        return Err(CallbackError::Provider(said));
    }
    // RFC 9207: a provider that names itself must be the one asked.
    if callback
        .iss
        .as_ref()
        .is_some_and(|iss| *iss != endpoints.issuer)
    {
        return Err(CallbackError::Refused(
            "the response names another provider (iss)",
        ));
    }
    if callback.iss.is_none()
        && (endpoints.authorization_response_iss_parameter_supported || f.several_providers)
    {
        return Err(CallbackError::Refused(
            "the response does not name its provider (iss)",
        ));
    }
    callback
        .code
        .as_deref()
        .ok_or(CallbackError::Refused("no code"))
}

/// A provider's words as the browser is shown them: printable ASCII, at
/// most `max` characters of it, and never markup (`<`, `>`, `&` and quotes
/// HTML-escaped), whatever page or sniffing browser ends up showing them.
fn as_text(said: &str, max: usize) -> String {
    let mut text = String::new();
    for c in said
        .chars()
        .filter(|c| *c == ' ' || c.is_ascii_graphic())
        .take(max)
    {
        match c {
            '<' => text.push_str("&lt;"),
            '>' => text.push_str("&gt;"),
            '&' => text.push_str("&amp;"),
            '"' => text.push_str("&quot;"),
            '\'' => text.push_str("&#39;"),
            c => text.push(c),
        }
    }
    text
}

/// Spends the pending sign-in: once, whatever instance its callback reaches.
async fn spend(f: &Finish<'_>, pending: &Pending) -> Result<(), CallbackError> {
    // Once: a pending sign-in's cookie ends no second sign-in.
    let once = format!("pending\0{}", pending.state);
    let first = f
        .sessions
        .store
        .claim(&once, std::time::Duration::from_secs(PENDING_SECS as u64))
        .await
        .map_err(|e| CallbackError::Unavailable(e.to_string()))?;
    match first {
        true => Ok(()),
        false => Err(CallbackError::Refused("this sign-in was completed already")),
    }
}

/// What the session reads of the user: the ID token's claims, and an own
/// issuer's access token's (its roles, its claims) or userinfo's beside
/// them; and when the access token expires.
async fn identity_claims(
    f: &Finish<'_>,
    provider: &LoginProvider,
    granted: &super::provider::Granted,
    identity: &super::tokens::Identity,
) -> Result<(serde_json::Map<String, serde_json::Value>, i64), CallbackError> {
    let mut claims = identity.claims.clone();
    let mut access_expires_at = granted.expires_in.map_or(0, |s| f.now.saturating_add(s));
    if provider.is_own() {
        // portero's own access token says the user's roles and claims.
        let access = f
            .validator
            .verify(&granted.access_token)
            .map_err(|_| CallbackError::Refused("the access token is not valid"))?;
        if access.issuer != provider.index || access.sub() != Some(identity.sub.as_str()) {
            return Err(CallbackError::Refused("the access token is another user's"));
        }
        access_expires_at = access.exp.unwrap_or(access_expires_at);
        add_missing(&mut claims, access_claims(&granted.access_token));
    }
    if provider.client.userinfo {
        let info = provider.userinfo(&granted.access_token).await?;
        if info.get("sub").and_then(|s| s.as_str()) != Some(identity.sub.as_str()) {
            return Err(CallbackError::Refused("userinfo is about another user"));
        }
        add_missing(&mut claims, info);
    }
    Ok((claims, access_expires_at))
}

/// The claims of a JWT already verified, as a map.
fn access_claims(token: &str) -> serde_json::Map<String, serde_json::Value> {
    token
        .split('.')
        .nth(1)
        .and_then(|p| base64_simd::URL_SAFE_NO_PAD.decode_to_vec(p).ok())
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default()
}

/// `from`'s claims that `into` lacks; the ID token's own stay as they are.
fn add_missing(
    into: &mut serde_json::Map<String, serde_json::Value>,
    from: serde_json::Map<String, serde_json::Value>,
) {
    const TIMES: [&str; 5] = ["exp", "iat", "nbf", "jti", "auth_time"];
    for (name, value) in from {
        if !TIMES.contains(&name.as_str()) && !into.contains_key(&name) {
            into.insert(name, value);
        }
    }
}
