//! portero's own session endpoints (`[sessions]`): the providers'
//! callback, the browser's logout, the providers' back-channel logout, and
//! the start of a sign-in for browsers a forward-auth proxy turned away.
//! Each answers one method; none is ever passed to a route.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, ORIGIN};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use super::session::{redirect_response, OwnIssuers};
use super::token_endpoint::read_body;
use super::Gateway;
use crate::config::{Policy, RouteAction, Sessions};
use crate::header_name::one_request_cookie;
use crate::live::Live;
use crate::respond::{self, error, GatewayBody};
use crate::session::flow::{self, Callback, CallbackError, Finish};
use crate::session::logout::{self, BackchannelError};
use crate::session::provider::LoginProvider;
use crate::session::tokens::Expect;
use crate::session::{pending, seal};

/// The most a logout token's form may hold.
const MAX_LOGOUT_FORM: u64 = 64 * 1024;

impl Gateway {
    /// The session endpoint at `path` (one `Sessions::owns`).
    pub(super) async fn session_endpoint(
        &self,
        live: &Live,
        settings: &Sessions,
        path: &str,
        parts: &Parts,
        body: Incoming,
    ) -> Response<GatewayBody> {
        let (allow, method) = match path {
            p if p == settings.logout_path || p == settings.backchannel_logout_path => {
                ("POST", Method::POST)
            }
            _ => ("GET", Method::GET),
        };
        if parts.method != method {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("this endpoint takes {allow}"),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            return response;
        }
        let now = self.shared.clock.unix();
        if path == settings.callback_path {
            self.callback(live, settings, parts, now).await
        } else if path == settings.logout_path {
            self.log_out(live, settings, parts).await
        } else if path == settings.backchannel_logout_path {
            self.back_channel(live, parts, body, now).await
        } else {
            self.start(live, settings, parts, now).await
        }
    }

    /// A provider's redirect back: the pending sign-in's state, the code
    /// redeemed, the ID token checked, a new session (any earlier one of
    /// the browser ended), and back to the page first asked for.
    async fn callback(
        &self,
        live: &Live,
        settings: &Sessions,
        parts: &Parts,
        now: i64,
    ) -> Response<GatewayBody> {
        let own = OwnIssuers {
            gateway: self,
            live,
        };
        let finish = Finish {
            sessions: &self.shared.sessions,
            settings,
            validator: &live.validator,
            leeway: live.auth.leeway.as_secs() as i64,
            own: &own,
            now,
            several_providers: live.issuers().iter().filter(|i| i.login.is_some()).count() > 1,
        };
        let cleared = flow::cookie(settings, &settings.login_cookie, "", 0);
        let result = async {
            let callback = Callback::parse(parts.uri.query().unwrap_or(""))?;
            let cookie = cookie_of(parts, &settings.login_cookie)
                .map_err(|()| CallbackError::Refused("a cookie came twice"))?;
            let pending = flow::pending_of(&finish, cookie.as_deref(), &callback).await?;
            let provider = provider_named(live, &pending.provider).ok_or(
                CallbackError::Refused("the provider is no longer configured"),
            )?;
            let id = flow::finish(&finish, provider, &pending, &callback).await?;
            Ok::<_, CallbackError>((id, pending.return_to))
        }
        .await;
        let (id, return_to) = match result {
            Ok(done) => done,
            Err(e) => {
                tracing::info!(target: "portero::session", error = %e, "a sign-in did not complete");
                let (status, code) = match e {
                    CallbackError::Unavailable(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "sign_in_unavailable")
                    }
                    _ => (StatusCode::BAD_REQUEST, "sign_in_failed"),
                };
                let mut response = error(status, code, &e.to_string());
                append_cookie(&mut response, &cleared);
                return response;
            }
        };
        // No fixation: whatever session the browser held before is over.
        if let Ok(Some(old)) = cookie_of(parts, &settings.cookie) {
            if seal::well_formed(&old) {
                let _ = self.shared.sessions.end(&seal::store_key(&old)).await;
            }
        }
        let lifetime = settings.absolute_timeout.as_secs() as i64;
        let cookies = vec![
            flow::cookie(settings, &settings.cookie, &id, lifetime),
            cleared,
        ];
        let return_to = if pending::safe_return(&return_to) {
            return_to
        } else {
            "/".into()
        };
        redirect_response(
            StatusCode::SEE_OTHER,
            flow::Redirect {
                location: return_to,
                cookies,
            },
        )
    }

    /// The browser's logout, posted from a page of this site (its
    /// `Origin`, or `Sec-Fetch-Site: same-origin`): the session ends
    /// everywhere, then the provider's own logout.
    async fn log_out(
        &self,
        live: &Live,
        settings: &Sessions,
        parts: &Parts,
    ) -> Response<GatewayBody> {
        if !same_site(parts, settings) {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a logout is posted from this site's own pages",
            );
        }
        let sessions = &self.shared.sessions;
        let cookies = parts.headers.get_all(http::header::COOKIE).iter();
        let Some(ids) = logout::named_ids(cookies.map(|v| v.as_bytes()), &settings.cookie) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!(
                    "the cookies name more than {} sessions; none was ended",
                    logout::MOST_NAMED
                ),
            );
        };
        // Every live session the cookies name ends, not only the copy this
        // gateway reads: another copy is what some upstream would read.
        let mut live_ones = Vec::with_capacity(ids.len());
        for id in ids {
            let key = seal::store_key(id);
            match sessions.store.get_browser_session(&key).await {
                Ok(Some(record)) => {
                    if let Some(tokens) = seal::open(id, &record.sealed) {
                        live_ones.push((key, tokens.id_token, record.provider));
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "store_unavailable",
                        "the session cannot be ended now; try again",
                    )
                }
            }
        }
        if live_ones.len() > 1 {
            tracing::info!(target: "portero::session", sessions = live_ones.len(), "a logout named several sessions; each is ended");
        }
        // The provider's logout is the first live session's.
        let provider = live_ones
            .first()
            .and_then(|(_, _, name)| provider_named(live, name));
        let ended: Vec<(&str, &str)> = live_ones
            .iter()
            .map(|(key, id_token, _)| (key.as_str(), id_token.as_str()))
            .collect();
        match logout::log_out(sessions, settings, provider, &ended).await {
            Ok(redirect) => redirect_response(StatusCode::SEE_OTHER, redirect),
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the session cannot be ended now; try again",
            ),
        }
    }

    /// A provider's back-channel logout (`logout_token` in a form).
    async fn back_channel(
        &self,
        live: &Live,
        parts: &Parts,
        body: Incoming,
        now: i64,
    ) -> Response<GatewayBody> {
        let timeout = live.settings.body_timeout;
        let form_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|t| {
                    t.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        let body = match read_body(parts, body, MAX_LOGOUT_FORM, timeout).await {
            Ok(body) if form_type => body,
            _ => {
                return invalid(
                    "a form (application/x-www-form-urlencoded) of at most 64 KiB is expected",
                )
            }
        };
        let Some(token) = only_value(&body, "logout_token") else {
            return invalid("the form must hold one logout_token");
        };
        let iss = crate::auth::validate::unverified_iss(&token).unwrap_or_default();
        let mut provider = None;
        for candidate in live
            .issuers()
            .iter()
            .filter_map(|i| i.login.as_deref())
            .filter(|p| !p.is_own())
        {
            let ours = candidate.endpoints().await.is_ok_and(|e| e.issuer == iss);
            if ours && addressed_to(&token, &candidate.client.client_id) {
                provider = Some(candidate);
                break;
            }
        }
        let Some(provider) = provider else {
            return invalid("the logout token is no provider's of this gateway");
        };
        let endpoints = match provider.endpoints().await {
            Ok(endpoints) => endpoints,
            Err(_) => return invalid("the provider cannot be read now"),
        };
        let expect = Expect {
            validator: &live.validator,
            provider: provider.index,
            own: false,
            issuer: &endpoints.issuer,
            client_id: &provider.client.client_id,
            now,
            leeway: live.auth.leeway.as_secs() as i64,
        };
        match logout::back_channel(&self.shared.sessions, provider, &expect, &token).await {
            Ok(ended) => {
                tracing::info!(target: "portero::session", provider = %provider.name, ended, "back-channel logout");
                let mut response = respond::json(StatusCode::OK, Bytes::new());
                response.headers_mut().remove(CONTENT_TYPE);
                response
            }
            Err(BackchannelError::Invalid(why)) => {
                tracing::info!(target: "portero::session", provider = %provider.name, why, "a logout token was refused");
                invalid(why)
            }
            Err(BackchannelError::Unavailable(_)) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "sessions cannot be ended now; try again",
            ),
        }
    }

    /// A sign-in for the page `rd` (a path on this host), for a browser a
    /// forward-auth proxy sent here: its route's provider.
    async fn start(
        &self,
        live: &Live,
        settings: &Sessions,
        parts: &Parts,
        now: i64,
    ) -> Response<GatewayBody> {
        let Some(rd) = only_value(parts.uri.query().unwrap_or("").as_bytes(), "rd")
            .filter(|rd| pending::safe_return(rd))
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "rd must be one path on this site",
            );
        };
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let host = host.split(':').next().unwrap_or(host);
        let path = rd.split('?').next().unwrap_or("/");
        let route = live.lookup_route(host, path, &Method::GET);
        let login = route.and_then(|(_, route)| match &route.action {
            RouteAction::Proxy {
                policy: Some(Policy {
                    login: Some(login), ..
                }),
                ..
            } => Some(*login),
            _ => None,
        });
        let Some(login) = login else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "no route that signs people in serves rd",
            );
        };
        match self
            .sign_in_at(live, login.provider, settings, &rd, now)
            .await
        {
            Ok(redirect) => redirect_response(StatusCode::FOUND, redirect),
            Err(e) => respond::error_response(e),
        }
    }
}

/// The login provider of the issuer named `name`.
fn provider_named<'l>(live: &'l Live, name: &str) -> Option<&'l LoginProvider> {
    live.issuers()
        .iter()
        .find(|i| i.config.name == name)?
        .login
        .as_deref()
}

/// The one cookie `name` of the request.
fn cookie_of(parts: &Parts, name: &str) -> Result<Option<String>, ()> {
    one_request_cookie(&parts.headers, name).map(|c| c.map(str::to_string))
}

/// The one value of `name` in a form or query; `None` when absent or repeated.
fn only_value(form: &[u8], name: &str) -> Option<String> {
    let mut values = form_urlencoded::parse(form)
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned());
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// A post from this site's own pages: its `Origin` is `public_url`'s, or
/// the browser says it is same-origin.
fn same_site(parts: &Parts, settings: &Sessions) -> bool {
    let ours = url::Url::parse(&settings.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    match parts.headers.get(ORIGIN) {
        Some(origin) => origin.as_bytes() == ours.as_bytes(),
        None => parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v == "same-origin"),
    }
}

/// Back-Channel Logout 1.0 §2.8: a refused logout token is a `400`.
fn invalid(why: &str) -> Response<GatewayBody> {
    error(StatusCode::BAD_REQUEST, "invalid_request", why)
}

fn append_cookie(response: &mut Response<GatewayBody>, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(http::header::SET_COOKIE, v);
    }
}

/// Whether a token's unverified `aud` names `client`: which of the
/// providers with that issuer it is for (its signature is checked after).
fn addressed_to(token: &str, client: &str) -> bool {
    let payload = token.split('.').nth(1).unwrap_or("");
    let claims: serde_json::Value = base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(payload)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default();
    match &claims["aud"] {
        serde_json::Value::String(aud) => aud == client,
        serde_json::Value::Array(list) => list.iter().any(|a| a.as_str() == Some(client)),
        _ => false,
    }
}
