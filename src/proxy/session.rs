//! The routes that sign people in, in the request path. `admit_credential`
//! is the seam a signing-in route's credential passes in `Gateway::admit`:
//! a browser session admits the request; a browser without one is
//! challenged with a redirect to sign in, or refused; a token or an API
//! key is left to `admit`, as on any route. A route without `login` never
//! comes here, at no cost.

use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::admission::{Admitted, Asked, SignIn};
use super::Gateway;
use crate::auth::AuthError;
use crate::config::{Policy, RouteLogin, Sessions, TokenSource};
use crate::header_name::{cookie_begins, cookie_names, loosely_same_cookie, one_request_cookie};
use crate::live::{IssuerId, Live, RouteId};
use crate::oauth2;
use crate::respond::{self, GatewayBody, RequestError};
use crate::session::flow::{self, Redirect};
use crate::session::provider::{CodeGrant, GrantRefused, Granted, OwnIssuer, RefreshGrant};
use crate::session::{refresh, Entry};

/// `<public_url><start_path>?rd=<return_to>`.
fn start_url(settings: &Sessions, return_to: &str) -> String {
    let rd: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    format!("{}{}?rd={rd}", settings.public_url, settings.start_path)
}

impl Gateway {
    /// On a route that signs people in (`login`): the browser's session,
    /// or the sign-in to send it to; `None` where a token (or an API key)
    /// stands in its place, which `Gateway::admit` decides as on any route.
    pub(super) async fn admit_credential(
        &self,
        live: &Live,
        index: RouteId,
        policy: &Policy,
        asked: Asked<'_>,
        sign_in: SignIn,
    ) -> Result<Option<Admitted>, RequestError> {
        let (Some(login), Some(settings)) = (policy.login, live.settings.sessions.as_deref())
        else {
            return Ok(None);
        };
        let parts = asked.parts;
        let now = self.shared.clock.unix();
        self.store_outage(live, index)?;
        if let Some((entry, cookie_alone)) = self
            .session_of(live, login, settings, &parts.headers, now)
            .await?
        {
            // A proxy asking for a decision passes the request on as it
            // came: a credential beside the session, which nobody checked,
            // must not go with it. Refused before anything counts the
            // session's use (its requirements, the allowed count, limits).
            if sign_in == SignIn::AtStart && carries_credential(policy, parts) {
                return Err(self.denied(live, index, AuthError::RepeatedToken));
            }
            return self
                .admit_session(live, index, policy, asked, entry, now)
                .map(|entry| {
                    Some(Admitted::Session {
                        entry,
                        cookie_alone,
                    })
                });
        }
        let token = policy.has_token(&parts.headers, parts.uri.query());
        if policy.issuer_mask != 0 && !matches!(token, Err(AuthError::MissingToken)) {
            return Ok(None);
        }
        if !navigation(parts) {
            return Err(self.denied(live, index, AuthError::MissingToken));
        }
        self.count_denial(live, index, "sign_in_required", None);
        let return_to = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let redirect = match sign_in {
            SignIn::AtProvider => {
                Box::pin(self.sign_in_at(live, login.provider, settings, return_to, now)).await?
            }
            // A proxy's decision names the page; the browser begins at
            // the public origin, whose cookies a sign-in sets.
            SignIn::AtStart => Redirect {
                location: start_url(settings, return_to),
                cookies: Vec::new(),
            },
        };
        Ok(Some(Admitted::Challenge(Box::new(redirect))))
    }

    /// The redirect that begins a sign-in at provider `provider`.
    pub(super) async fn sign_in_at(
        &self,
        live: &Live,
        provider: usize,
        settings: &Sessions,
        return_to: &str,
        now: i64,
    ) -> Result<Redirect, RequestError> {
        let provider = live
            .issuer(IssuerId(provider))
            .login
            .as_ref()
            .ok_or(RequestError::SignInUnavailable)?;
        flow::start(&self.shared.sessions, settings, provider, return_to, now)
            .await
            .map_err(|e| {
                tracing::warn!(target: "portero::session", provider = %provider.name, error = %e, "a sign-in could not begin");
                RequestError::SignInUnavailable
            })
    }

    /// The browser's session at `login`'s provider, if its cookie names
    /// one that is on: held here, else read from the store; and whether
    /// the cookie came alone (`cookie_alone`).
    async fn session_of(
        &self,
        live: &Live,
        login: RouteLogin,
        settings: &Sessions,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Option<(Arc<Entry>, bool)>, RequestError> {
        let id = match one_request_cookie(headers, &settings.cookie) {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(None),
            Err(()) => return Err(RequestError::Denied(AuthError::RepeatedToken)),
        };
        let alone = cookie_alone(headers, &settings.cookie, id);
        let sessions = &self.shared.sessions;
        let provider = live.issuer(IssuerId(login.provider)).config.name.as_str();
        // A session is its provider's: one held here under another index
        // (another provider's route read it first, or a reload renumbered
        // the issuers) is read again for this route.
        let entry = match sessions.cached(id, now) {
            Some(e) if e.provider == provider && e.verified.issuer == login.provider => Some(e),
            _ => Box::pin(sessions.load(id, (provider, login.provider), now))
                .await
                .map_err(|e| {
                    tracing::warn!(target: "portero::session", error = %e, "a session could not be read");
                    RequestError::StoreUnavailable
                })?,
        };
        // An ended one (here or on any instance), or one whose user was
        // revoked since, is no session: the browser signs in again.
        let on = entry.filter(|e| {
            e.verified.issuer == login.provider
                && !(live.validator.any_revoked() && live.validator.is_revoked(&e.verified))
        });
        Ok(on.map(|e| (e, alone)))
    }

    /// A session against the route's requirements, as a token's are
    /// checked: roles, scopes, claims, the rule.
    fn admit_session(
        &self,
        live: &Live,
        index: RouteId,
        policy: &Policy,
        asked: Asked<'_>,
        entry: Arc<Entry>,
        now: i64,
    ) -> Result<Arc<Entry>, RequestError> {
        let verified = &entry.verified;
        policy
            .check_requirements(verified)
            .map_err(|e| self.denied(live, index, e))?;
        self.admit_identity(live, index, policy, asked, verified)?;
        self.keep_fresh(live, policy.login, &entry, now);
        Ok(entry)
    }

    /// Notes the session's use in the store now and then, and has its
    /// access token refreshed ahead of its expiry, off the request.
    fn keep_fresh(&self, live: &Live, login: Option<RouteLogin>, entry: &Arc<Entry>, now: i64) {
        let sessions = &self.shared.sessions;
        if sessions.needs_touch(entry, now) {
            let (shared, key) = (self.shared.clone(), entry.key.clone());
            tokio::spawn(async move {
                let _ = shared.sessions.store.touch_browser_session(&key, now).await;
            });
        }
        let Some(login) = login.filter(|l| l.pass_token) else {
            return;
        };
        let before = live
            .settings
            .sessions
            .as_ref()
            .map_or_else(Default::default, |s| s.refresh_before);
        if !refresh::due(entry, before, now)
            || entry.refreshing.load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let (shared, entry) = (self.shared.clone(), entry.clone());
        tokio::spawn(async move {
            let live = shared.live.load_full();
            let Some(provider) = live.issuer(IssuerId(login.provider)).login.clone() else {
                return;
            };
            let gateway = Gateway::new(shared.clone());
            let own = OwnIssuers {
                gateway: &gateway,
                live: &live,
            };
            refresh::refresh(
                &shared.sessions,
                &provider,
                &own,
                &entry,
                before,
                &shared.clock,
            )
            .await;
        });
    }
}

/// What goes upstream of a session: not portero's own cookies, not a
/// credential portero did not check, and the provider's access token
/// where the route passes it (`login_pass_token`).
pub(super) fn session_headers(headers: &mut HeaderMap, policy: &Policy, entry: &Entry) {
    // Neither the Authorization header nor a token header or cookie was checked.
    headers.remove(AUTHORIZATION);
    for source in &policy.token_from {
        match source {
            TokenSource::Header(name) => {
                headers.remove(name);
            }
            TokenSource::Cookie(name) => strip_cookies(headers, |pair| {
                cookie_names(pair).any(|written| loosely_same_cookie(written, name))
            }),
            TokenSource::Bearer | TokenSource::RawAuthorization | TokenSource::Query(_) => {}
        }
    }
    if !policy.login.is_some_and(|l| l.pass_token) {
        return;
    }
    let tokens = entry.tokens();
    let bearer = tokens
        .access_token
        .as_deref()
        .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok());
    if let Some(bearer) = bearer {
        headers.insert(AUTHORIZATION, bearer);
    }
}

/// Whether a cookie name is one of portero's own (a browser session's, a
/// pending sign-in's, its issuers' sign-on sessions and forms): one that
/// some upstream reads as `portero...` or `__Host-portero...` (its
/// letters and digits begin `portero` or `hostportero`). Such names are
/// portero's alone.
fn own_name(name: &[u8]) -> bool {
    cookie_begins(name, b"portero") || cookie_begins(name, b"hostportero")
}

/// Whether a `Cookie` pair names one of portero's own cookies, as its own
/// name or one an upstream reads inside its value (`cookie_names`).
fn is_own_cookie(pair: &[u8]) -> bool {
    cookie_names(pair).any(own_name)
}

/// Whether a `Set-Cookie` value sets one of portero's own cookies.
fn sets_own_cookie(set_cookie: &[u8]) -> bool {
    own_name(
        set_cookie
            .split(|b| *b == b'=')
            .next()
            .unwrap_or(set_cookie),
    )
}

/// Whether the request's one `Cookie` header is the session's cookie
/// alone, `NAME=ID`: `one_request_cookie` found that pair in it, so its
/// length tells.
fn cookie_alone(headers: &HeaderMap, name: &str, id: &str) -> bool {
    let mut values = headers.get_all(COOKIE).iter();
    matches!((values.next(), values.next()),
        (Some(value), None) if value.len() == name.len() + 1 + id.len())
}

/// A `Cookie` value's `name=value` pairs.
fn pairs(v: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    v.as_bytes()
        .split(|b| *b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

/// Drops portero's own cookies from what an upstream is sent: each is a
/// credential no upstream needs. Read as bytes: a value that is not
/// UTF-8 hides nothing. The others go on as one header, in their order.
pub(super) fn strip_own_cookies(headers: &mut HeaderMap) {
    strip_cookies(headers, is_own_cookie);
}

/// Drops the cookies `dropped` names from the request's `Cookie` headers;
/// the others go on as one header, in their order.
fn strip_cookies(headers: &mut HeaderMap, dropped: impl Fn(&[u8]) -> bool) {
    let (mut own, mut others) = (false, false);
    for pair in headers.get_all(COOKIE).iter().flat_map(pairs) {
        match dropped(pair) {
            true => own = true,
            false => others = true,
        }
    }
    if !own {
        return;
    }
    // A browser with a session sends, as often as not, portero's alone.
    let kept = others.then(|| {
        let mut kept = Vec::new();
        for pair in headers.get_all(COOKIE).iter().flat_map(pairs) {
            if !dropped(pair) {
                if !kept.is_empty() {
                    kept.extend_from_slice(b"; ");
                }
                kept.extend_from_slice(pair);
            }
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(kept)).ok()
    });
    headers.remove(COOKIE);
    if let Some(value) = kept.flatten() {
        headers.insert(COOKIE, value);
    }
}

/// Drops an upstream's `Set-Cookie` of one of portero's own cookies: an
/// upstream never plants a session (fixation) or a pending sign-in (login
/// CSRF) in a browser.
pub(super) fn drop_own_set_cookies(headers: &mut HeaderMap) {
    if !headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| sets_own_cookie(v.as_bytes()))
    {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| !sets_own_cookie(v.as_bytes()))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for value in kept {
        headers.append(SET_COOKIE, value);
    }
}

/// A browser navigating to a page (not a script's fetch, not an API
/// client): it may be sent to sign in.
fn navigation(parts: &Parts) -> bool {
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        return false;
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    match header("sec-fetch-mode") {
        Some(mode) => mode == "navigate",
        None => header("accept").is_some_and(|a| a.contains("text/html")),
    }
}

/// A credential beside a session, in `Authorization` or where the route
/// reads tokens (`token_from`).
fn carries_credential(policy: &Policy, parts: &Parts) -> bool {
    parts.headers.contains_key(AUTHORIZATION)
        || !matches!(
            policy.has_token(&parts.headers, parts.uri.query()),
            Err(AuthError::MissingToken)
        )
}

/// A redirect with its cookies, never cached.
pub(super) fn redirect_response(status: StatusCode, redirect: Redirect) -> Response<GatewayBody> {
    respond::redirect(status, &redirect.location, &redirect.cookies)
}

/// portero's own issuers, as a sign-in asks them for its grants: the
/// issuer's OAuth 2.0 grants called in process, with its live settings.
pub(super) struct OwnIssuers<'a> {
    pub(super) gateway: &'a Gateway,
    pub(super) live: &'a Live,
}

impl OwnIssuers<'_> {
    /// What issuer `issuer` grants its login client `client_id`.
    async fn grant(
        &self,
        issuer: usize,
        client_id: &str,
        grant: oauth2::InProcessGrant<'_>,
    ) -> Result<Granted, GrantRefused> {
        let issuer = self.live.issuer(IssuerId(issuer));
        let Some(settings) = issuer.config.oauth2.as_ref() else {
            return Err(GrantRefused {
                error: "temporarily_unavailable",
            });
        };
        let keys = self.live.validator.keys();
        let endpoints = oauth2::Endpoints {
            settings,
            issuer: self.gateway.issuer_context(issuer, &keys),
            validator: &self.live.validator,
        };
        let now = self.gateway.shared.clock.unix();
        let issued = oauth2::grant_in_process(&endpoints, client_id, grant, now)
            .await
            .map_err(|e| GrantRefused { error: e.code })?;
        Ok(Granted {
            expires_in: Some(issued.minted.exp.map_or(0, |exp| exp - now)),
            access_token: issued.minted.token,
            id_token: issued.id_token,
            refresh_token: issued.refresh_token,
        })
    }
}

#[async_trait::async_trait]
impl OwnIssuer for OwnIssuers<'_> {
    async fn redeem_code(
        &self,
        issuer: usize,
        grant: CodeGrant<'_>,
    ) -> Result<Granted, GrantRefused> {
        let asked = oauth2::CodeGrant {
            code: grant.code,
            redirect_uri: grant.redirect_uri,
            code_verifier: grant.code_verifier,
            resource: None,
            bound: None,
        };
        let asked = oauth2::InProcessGrant::AuthorizationCode(asked);
        self.grant(issuer, grant.client_id, asked).await
    }

    async fn refresh(
        &self,
        issuer: usize,
        grant: RefreshGrant<'_>,
    ) -> Result<Granted, GrantRefused> {
        let asked = oauth2::RefreshGrant {
            refresh_token: grant.refresh_token,
            scope: None,
            resource: None,
            bound: None,
        };
        let asked = oauth2::InProcessGrant::RefreshToken(asked);
        self.grant(issuer, grant.client_id, asked).await
    }
}
