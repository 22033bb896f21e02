//! What an introspection answer (RFC 7662 §2.2) means to portero: an
//! active access token with its claims, or not a token to admit. Pure.

use serde_json::{Map, Value};

use crate::auth::validate::token_digest;
use crate::claims::Claims;

/// An answer read: the claims of an active access token, or why not.
#[derive(Debug, PartialEq)]
pub enum Read {
    Active {
        /// The answer's members but `active`, as a JSON object: `iss`
        /// filled in, and a `jti` (`sha256:` and the token's hex digest)
        /// when the provider gave none, so the token can be revoked here.
        claims: Vec<u8>,
        exp: Option<i64>,
    },
    /// Not active, or not a token a resource server may take.
    Refused(&'static str),
    /// Active, and said to be DPoP-bound (`token_type` `DPoP`) without
    /// the key (`cnf`): taking it would let a stolen copy through.
    SenderConstrained,
}

/// Reads `body`, the provider's `200` answer about `token`. `iss`: the
/// issuer's `iss` (empty: not known, so not checked).
pub fn read(body: &[u8], token: &str, iss: &str, typed: bool) -> Result<Read, String> {
    if iss.is_empty() {
        return Err("no issuer to hold the answer to".into());
    }
    // A member named twice (`"active": false, "active": true`) means what
    // the last parser to read it says: refused, as in a token.
    if Claims::parse(body.to_vec()).is_err() {
        return Err("the answer is not a JSON object of unique members".into());
    }
    let mut answer: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("the answer is not a JSON object".into()),
        Err(e) => return Err(format!("the answer is not JSON: {e}")),
    };
    match answer.remove("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Read::Refused("inactive")),
        _ => return Err("the answer has no boolean `active`".into()),
    }
    // A DPoP-bound token's `token_type` is `DPoP` (RFC 9449 §6.2), its
    // key in `cnf`, which the route then holds its proof to; without the
    // key nothing could be.
    let dpop = answer
        .get("token_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop"));
    if dpop && !answer.contains_key("cnf") {
        return Ok(Read::SenderConstrained);
    }
    match token_type(&answer) {
        Type::Access => {}
        Type::Untyped if !typed => {}
        Type::Untyped => {
            return Ok(Read::Refused(
                "no token type (token_type, token_use or typ)",
            ))
        }
        Type::Other => return Ok(Read::Refused("not an access token")),
    }
    // RFC 7519's StringOrURI: a number or a list would reach the upstream
    // as a subject no revocation by subject names.
    if answer.get("sub").is_some_and(|sub| !sub.is_string()) {
        return Ok(Read::Refused("`sub` is not a string"));
    }
    if answer.get("jti").is_some_and(|jti| !jti.is_string()) {
        return Ok(Read::Refused("`jti` is not a string"));
    }
    match answer.get("iss") {
        Some(Value::String(given)) if given != iss => return Ok(Read::Refused("another issuer's")),
        Some(Value::String(_)) => {}
        Some(_) => return Err("`iss` is not a string".into()),
        None => {
            answer.insert("iss".into(), iss.into());
        }
    }
    let exp = match answer.get("exp") {
        None => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or("`exp` is out of range")?,
        ),
        Some(_) => return Err("`exp` is not a number".into()),
    };
    if !answer.contains_key("jti") {
        answer.insert("jti".into(), token_digest(token).into());
    }
    Ok(Read::Active {
        claims: Value::Object(answer).to_string().into_bytes(),
        exp,
    })
}

/// What an answer says its token is.
enum Type {
    Access,
    /// No member names a type (RFC 7662 §2.2's own example).
    Untyped,
    /// Something else: a refresh token, an ID token.
    Other,
}

/// What the answer says it is about: `token_type` `Bearer` or
/// `access_token` (RFC 7662), `token_use` `access_token` (Hydra), `typ`
/// `Bearer` or `at+jwt` (Keycloak) name an access token; any of them
/// naming something else refuses it. A refresh token a provider would
/// also call active must not open an API.
fn token_type(answer: &Map<String, Value>) -> Type {
    let indicators = [
        ("token_type", &["bearer", "access_token", "dpop"][..]),
        ("token_use", &["access_token"][..]),
        ("typ", &["bearer", "at+jwt"][..]),
    ];
    let mut named = Type::Untyped;
    for (member, access) in indicators {
        match answer.get(member) {
            None => {}
            Some(Value::String(v)) if access.iter().any(|a| v.eq_ignore_ascii_case(a)) => {
                named = Type::Access
            }
            Some(_) => return Type::Other,
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(read: Read) -> Value {
        match read {
            Read::Active { claims, .. } => serde_json::from_slice(&claims).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_active_access_token_keeps_its_claims() {
        let body = json!({"active": true, "token_type": "Bearer", "sub": "ann", "scope": "a b", "exp": 1900000000, "iss": "https://idp"});
        let read = read(body.to_string().as_bytes(), "tok", "https://idp", true).unwrap();
        let Read::Active { exp, .. } = &read else {
            panic!()
        };
        assert_eq!(*exp, Some(1900000000));
        let c = claims(read);
        assert_eq!(c["sub"], "ann");
        assert!(c.get("active").is_none());
        assert!(c["jti"].as_str().unwrap().starts_with("sha256:"));
    }

    #[test]
    fn what_is_not_an_active_access_token_is_refused() {
        let refused =
            |body: Value| read(body.to_string().as_bytes(), "tok", "https://idp", true).unwrap();
        assert_eq!(refused(json!({"active": false})), Read::Refused("inactive"));
        assert_eq!(
            refused(json!({"active": true})),
            Read::Refused("no token type (token_type, token_use or typ)")
        );
        assert_eq!(
            refused(json!({"active": true, "token_type": "Bearer", "sub": 12345})),
            Read::Refused("`sub` is not a string")
        );
        assert_eq!(
            refused(json!({"active": true, "token_type": "Bearer", "sub": ["victim"]})),
            Read::Refused("`sub` is not a string")
        );
        assert_eq!(
            refused(json!({"active": true, "token_type": "refresh_token"})),
            Read::Refused("not an access token")
        );
        assert_eq!(
            refused(json!({"active": true, "typ": "Bearer", "token_use": "refresh_token"})),
            Read::Refused("not an access token")
        );
        // Bound: taken with its `cnf`, which the route holds the proof to.
        let bound = refused(json!({"active": true, "token_type": "DPoP", "cnf": {"jkt": "x"}}));
        assert!(matches!(bound, Read::Active { .. }), "{bound:?}");
        assert_eq!(
            refused(json!({"active": true, "token_type": "DPoP"})),
            Read::SenderConstrained
        );
        assert_eq!(
            refused(json!({"active": true, "token_type": "Bearer", "iss": "https://evil"})),
            Read::Refused("another issuer's")
        );
    }

    #[test]
    fn an_answer_about_anything_but_an_access_token_is_refused() {
        let refused =
            |body: Value| read(body.to_string().as_bytes(), "tok", "https://idp", true).unwrap();
        for body in [
            json!({"active": true, "token_type": "Bearer", "typ": "ID"}),
            json!({"active": true, "typ": "Refresh"}),
            json!({"active": true, "typ": "Offline"}),
            json!({"active": true, "token_type": "Bearer", "token_use": "id_token"}),
            json!({"active": true, "token_type": 7}),
        ] {
            assert_eq!(
                refused(body.clone()),
                Read::Refused("not an access token"),
                "{body}"
            );
        }
        let keycloak = json!({"active": true, "typ": "Bearer", "iss": "https://idp"});
        assert!(matches!(refused(keycloak), Read::Active { .. }));
    }

    #[test]
    fn an_untyped_answer_is_taken_only_when_the_issuer_allows_it() {
        // RFC 7662 §2.2's own example names no type.
        let example = json!({"active": true, "client_id": "l238j323ds-23ij4", "username": "jdoe", "scope": "read write dolphin", "sub": "Z5O3upPC88QrAjx00dis", "aud": "https://protected.example.net/resource", "iss": "https://idp", "exp": 1419356238, "iat": 1419350238});
        let body = example.to_string();
        assert!(matches!(
            read(body.as_bytes(), "tok", "https://idp", false).unwrap(),
            Read::Active { .. }
        ));
        let refresh = json!({"active": true, "token_type": "refresh_token"}).to_string();
        assert_eq!(
            read(refresh.as_bytes(), "tok", "https://idp", false).unwrap(),
            Read::Refused("not an access token")
        );
    }

    #[test]
    fn a_member_named_twice_or_no_issuer_to_hold_to_is_an_error() {
        let twice = br#"{"active": false, "active": true, "token_type": "Bearer"}"#;
        assert!(read(twice, "tok", "https://idp", true).is_err());
        let body = json!({"active": true, "token_type": "Bearer"}).to_string();
        assert!(read(body.as_bytes(), "tok", "", true).is_err());
    }

    #[test]
    fn a_malformed_answer_is_an_error() {
        for body in [
            &b"[]"[..],
            b"not json",
            br#"{"active": "yes"}"#,
            br#"{"active": true, "token_type": "Bearer", "exp": "soon"}"#,
        ] {
            assert!(
                read(body, "tok", "https://idp", true).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_issuer_is_filled_in_and_a_provider_jti_kept() {
        let body = json!({"active": true, "typ": "Bearer", "jti": "j-1"});
        let c = claims(read(body.to_string().as_bytes(), "tok", "https://idp", true).unwrap());
        assert_eq!(
            (c["iss"].as_str(), c["jti"].as_str()),
            (Some("https://idp"), Some("j-1"))
        );
    }
}
