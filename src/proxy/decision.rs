//! A forward-auth decision: the request a proxy asks about, through the
//! same method check, route, limits and policy as if it had come here
//! itself; at an OAuth 2.0 endpoint's path, the endpoint's own answer to
//! a method it does not take.

use std::net::IpAddr;

use http::header::COOKIE;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use super::admission::{Admitted, Asked, SignIn};
use super::routing::{read_override, route};
use super::session::{redirect_response, session_headers, strip_own_cookies};
use super::{Gateway, RequestContext};
use crate::auth::AuthError;
use crate::config::{Endpoint, ForwardAuthStyle, RouteAction};
use crate::limits::Phase;
use crate::live::{IssuerId, Live};
use crate::oauth2;
use crate::respond::{self, GatewayBody, RequestError};
use crate::target;

impl Gateway {
    /// A forward-auth decision about `original`: its route's limits and
    /// policy, exactly as if it had come through; `200` with the identity
    /// headers to inject, or the refusal it would have had.
    pub(super) async fn decide(
        &self,
        live: &Live,
        mut original: Parts,
        ip: IpAddr,
        ctx: &mut RequestContext,
    ) -> Result<Response<GatewayBody>, RequestError> {
        let host = target::checked(&mut original, live.settings.paths)?;
        let named = target::method(&original, ctx.overridden).map_err(RequestError::BadTarget)?;
        let key = crate::path::routing_key(original.uri.path());
        let method = named.as_ref().unwrap_or(&original.method);
        let (index, route) = route(live, host.as_ref(), &key, method, ctx)?;
        if let Some(method) = named {
            read_override(route, (&mut original.method, &mut original.headers), method)?;
        }
        ctx.route = Some(index);
        let limiter = &live.route(index).limiter;
        limiter
            .enter(ip, &mut ctx.held)
            .map_err(|refusal| ctx.refused(refusal))?;
        if limiter.keys_at(Phase::Request) {
            self.admit_by_key(live, index, &original.headers, ip, None, ctx)
                .await
                .map_err(|refusal| ctx.refused(refusal))?;
        }
        let policy = match &route.action {
            RouteAction::Proxy {
                policy: Some(policy),
                ..
            } => policy,
            // An OAuth 2.0 endpoint refuses a method it does not take itself.
            RouteAction::Issue {
                issuer,
                endpoint: Endpoint::OAuth2,
            } => {
                let name = &live.issuer(IssuerId(*issuer)).config.name;
                return Ok(
                    match oauth2::wrong_method(name, &route.path, &original.method) {
                        Some(refused) => respond::oauth2_answer(refused),
                        None => respond::allowed(HeaderMap::new()),
                    },
                );
            }
            // A public route or a token endpoint: nothing to check or inject.
            _ => return Ok(respond::allowed(HeaderMap::new())),
        };
        let asked = Asked {
            parts: &original,
            routed: &key,
        };
        let admitted = self.admit(live, (index, policy), asked, ip, SignIn::AtStart, ctx);
        let (token, session) = match Box::pin(admitted).await? {
            Admitted::Credential(token) => (token, None),
            Admitted::Session { entry, .. } => (entry.verified.clone(), Some(entry)),
            // A browser without a session: Traefik and Envoy hand the
            // decision's redirect (to `sessions.start_path`) to it; nginx's
            // `auth_request` takes only 401 and sends it there itself.
            Admitted::Challenge(redirect) => {
                let nginx = live.settings.forward_auth.as_ref().map(|f| f.style)
                    == Some(ForwardAuthStyle::Nginx);
                return match nginx {
                    true => Err(RequestError::Denied(AuthError::MissingToken)),
                    false => Ok(redirect_response(StatusCode::FOUND, *redirect)),
                };
            }
        };
        let mut headers = policy
            .identity_headers(&token)
            .map(|header| header.map(|(name, value)| (name.clone(), value)))
            .collect::<Result<HeaderMap, _>>()
            .map_err(|e| self.denied(live, index, e))?;
        if let Some(entry) = session {
            session_headers(&mut headers, policy, &entry);
        }
        if live.settings.own_cookies {
            headers.insert(OWN_COOKIES_REMOVED, cookies_without_own(&original.headers));
        }
        Ok(respond::allowed(headers))
    }
}

/// The request's cookies without portero's own, for the proxy to send on
/// in their place (`proxy_set_header Cookie $portero_cookie`): a proxy
/// cannot drop one cookie of a header itself.
const OWN_COOKIES_REMOVED: HeaderName = HeaderName::from_static("x-portero-cookie");

fn cookies_without_own(headers: &HeaderMap) -> HeaderValue {
    let mut cookies = HeaderMap::new();
    for value in headers.get_all(COOKIE) {
        cookies.append(COOKIE, value.clone());
    }
    strip_own_cookies(&mut cookies);
    cookies
        .remove(COOKIE)
        .unwrap_or_else(|| HeaderValue::from_static(""))
}
