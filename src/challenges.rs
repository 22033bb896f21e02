//! A protected route's `WWW-Authenticate` challenges, one list per refusal
//! ([`AuthError::index`]), made once per config: `Bearer` where the route
//! takes bearer tokens, and `DPoP` with the algorithms its proofs may use
//! where a token may come as DPoP (RFC 9449 §7.1). A refusal of the token
//! is said in the first; a refusal of the proof in the DPoP challenge
//! alone. Where the route publishes its metadata, each carries `scope`
//! (the route's required scopes, on a `401` and on a `403` for a missing
//! scope: RFC 6750 §3.1, MCP's scope selection) and `resource_metadata`
//! (RFC 9728 §5.1).

use http::HeaderValue;

use crate::auth::AuthError;
use crate::config::{Route, RouteAction};

/// The route's challenges; `None` for one that answers with those every
/// route does (`respond`): it takes no DPoP and publishes no metadata.
pub fn of_route(route: &Route) -> Option<Box<[Box<[HeaderValue]>]>> {
    let RouteAction::Proxy {
        policy: Some(policy),
        ..
    } = &route.action
    else {
        return None;
    };
    let resource = policy.resource.as_deref();
    let sender = policy.sender;
    if resource.is_none() && !sender.dpop {
        return None;
    }
    let scope = policy.scopes.join(" ");
    let algs = sender.algorithms.names();
    let challenges = AuthError::ALL.map(|reason| {
        let named = resource.is_some()
            && !scope.is_empty()
            && (reason.is_unauthorized() || reason == AuthError::MissingScope);
        let mut extra = String::new();
        if named {
            extra.push_str(&format!(r#", scope="{scope}""#));
        }
        if let Some(resource) = resource {
            extra.push_str(&format!(
                r#", resource_metadata="{}""#,
                resource.document_url
            ));
        }
        let bearer = !sender.required && !reason.of_proof();
        let mut list = Vec::new();
        if bearer {
            list.push(format!("{}{extra}", reason.challenge_in("Bearer")));
        }
        if sender.dpop {
            let dpop = match bearer {
                true => r#"DPoP realm="portero""#.to_string(),
                false => reason.challenge_in("DPoP"),
            };
            list.push(format!(r#"{dpop}, algs="{algs}"{extra}"#));
        }
        let values = list.into_iter().map(|text| {
            HeaderValue::try_from(text).expect("the check admits URL paths and scope tokens only")
        });
        values.collect::<Box<[HeaderValue]>>()
    });
    Some(Box::new(challenges))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::resource_metadata::tests::route;

    fn texts(all: &[Box<[HeaderValue]>], reason: AuthError) -> Vec<String> {
        let list = all[reason.index()].iter();
        list.map(|v| v.to_str().unwrap().to_string()).collect()
    }

    const ALGS: &str = "ES256 ES384 EdDSA RS256 RS384 RS512 PS256 PS384 PS512";

    #[test]
    fn challenges_add_scope_and_resource_metadata_to_each_refusal() {
        let url = "https://api.test/.well-known/oauth-protected-resource/mcp";
        let all = of_route(&route("*", "/mcp", &["a", "b"])).unwrap();
        let of = |reason: AuthError| texts(&all, reason)[0].clone();
        let tail = format!(r#"scope="a b", resource_metadata="{url}""#);
        assert_eq!(
            texts(&all, AuthError::MissingToken),
            [
                format!(r#"Bearer realm="portero", {tail}"#),
                format!(r#"DPoP realm="portero", algs="{ALGS}", {tail}"#)
            ]
        );
        assert_eq!(
            of(AuthError::Expired),
            format!(
                r#"Bearer realm="portero", error="invalid_token", error_description="token expired", {tail}"#
            )
        );
        assert_eq!(
            of(AuthError::MissingScope),
            format!(
                r#"Bearer realm="portero", error="insufficient_scope", error_description="required scope missing", {tail}"#
            )
        );
        // A scope would not cure a missing role.
        assert!(!of(AuthError::MissingRole).contains("scope=\""));
        assert!(of(AuthError::MissingRole).ends_with(&format!(r#"resource_metadata="{url}""#)));
        let unscoped = of_route(&route("*", "/mcp", &[])).unwrap();
        assert_eq!(
            texts(&unscoped, AuthError::MissingToken)[0],
            format!(r#"Bearer realm="portero", resource_metadata="{url}""#)
        );
    }

    #[test]
    fn a_refused_proof_is_said_in_the_dpop_challenge_alone() {
        let with = |change: &dyn Fn(&mut Policy)| {
            let mut route = route("*", "/api", &[]);
            if let RouteAction::Proxy {
                policy: Some(policy),
                ..
            } = &mut route.action
            {
                policy.resource = None;
                policy.sender.algorithms = crate::dpop::Algorithms::of(["ES256"]).unwrap();
                change(policy);
            }
            of_route(&route)
        };
        let all = with(&|_| {}).unwrap();
        assert_eq!(
            texts(&all, AuthError::NonceRequired),
            [
                r#"DPoP realm="portero", error="use_dpop_nonce", error_description="DPoP nonce required", algs="ES256""#
            ]
        );
        assert_eq!(
            texts(&all, AuthError::Expired),
            [
                r#"Bearer realm="portero", error="invalid_token", error_description="token expired""#,
                r#"DPoP realm="portero", algs="ES256""#
            ]
        );
        let all = with(&|p| p.sender.required = true).unwrap();
        assert_eq!(
            texts(&all, AuthError::Unbound),
            [
                r#"DPoP realm="portero", error="invalid_token", error_description="token not bound to a key", algs="ES256""#
            ]
        );
        // No DPoP (no Authorization header read) and no metadata: every route's.
        assert!(with(&|p| p.sender.dpop = false).is_none());
    }
}
