//! The route a request takes: found once, by host, the path's routing
//! key and the method (`routes.rs`); a miss said as `404`, or `405` with
//! the methods the path takes; a method override read where the route
//! takes one.

use http::header::HeaderValue;
use http::{HeaderMap, Method};

use super::RequestContext;
use crate::config::{Endpoint, Route, RouteAction};
use crate::live::{Live, RouteId};
use crate::method_override;
use crate::respond::RequestError;
use crate::routes::Miss;

/// The route for (host, path, method); `key` is the path's routing key
/// (`path::routing_key`). An OAuth 2.0 endpoint's path is the endpoint's
/// whatever the method: it answers a wrong one itself, with its own
/// `Allow` (GET for its metadata).
pub(super) fn route<'l>(
    live: &'l Live,
    host: Option<&HeaderValue>,
    key: &str,
    method: &Method,
    ctx: &mut RequestContext,
) -> Result<(RouteId, &'l Route), RequestError> {
    match find(live, host, key, method) {
        Ok(found) => Ok(found),
        Err(Miss::Method(i)) if is_oauth2(live.route_config(RouteId(i))) => {
            Ok((RouteId(i), live.route_config(RouteId(i))))
        }
        Err(Miss::Methods(methods)) => {
            ctx.allow = Some(allow(&methods));
            Err(RequestError::MethodNotRouted)
        }
        Err(Miss::NoRoute) => Err(RequestError::NoRoute),
        Err(Miss::Method(_)) => Err(RequestError::MethodNotAllowed),
    }
}

/// An `Allow` header's value: the methods, comma-separated.
fn allow(methods: &[Method]) -> HeaderValue {
    let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
    HeaderValue::try_from(list.join(", ")).expect("method names are header-safe")
}

/// The request as a route that takes method overrides reads it: the
/// method its override header names (`target::method`) in place of POST,
/// and no override header left, so its rule and the upstream see only
/// the method it was routed by. Any other route refuses it. Given the
/// head's method and headers, not its URI, which the routing key borrows.
pub(super) fn read_override(
    route: &Route,
    (method, headers): (&mut Method, &mut HeaderMap),
    named: Method,
) -> Result<(), RequestError> {
    if !route.takes_method_override() {
        return Err(RequestError::BadTarget(
            "a method-override header, on a route that does not take one",
        ));
    }
    *method = named;
    method_override::remove(headers);
    Ok(())
}

/// As [`route`], saying why there is none.
pub(super) fn find<'l>(
    live: &'l Live,
    host: Option<&HeaderValue>,
    key: &str,
    method: &Method,
) -> Result<(RouteId, &'l Route), Miss> {
    let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
    live.find_route(host, key, method)
}

fn is_oauth2(route: &Route) -> bool {
    matches!(
        route.action,
        RouteAction::Issue {
            endpoint: Endpoint::OAuth2,
            ..
        }
    )
}
