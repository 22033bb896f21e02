use super::*;
use crate::auth::keys::{IssuerInfo, Key};
use crate::auth::revocation::Revocation;
use jsonwebtoken::{Algorithm, EncodingKey, Header as JwtHeader};
use serde_json::{json, Value};

const SECRET: &[u8] = b"an-hs256-test-secret-of-32-bytes!!";
const NOW: i64 = 1_800_000_000;

fn validator() -> Validator {
    let issuers = vec![
        IssuerInfo {
            oauth2_iss: None,
            name: "a".into(),
            iss: "issuer-a".into(),
            login_client: None,
            allow_no_exp: false,
        },
        IssuerInfo {
            oauth2_iss: None,
            name: "b".into(),
            iss: "issuer-b".into(),
            login_client: None,
            allow_no_exp: true,
        },
    ];
    let keys = vec![Key::hs256("ka", 0, SECRET), Key::hs256("kb", 1, SECRET)];
    let keys = KeySet::from_keys(issuers, keys);
    Validator::new(keys, Arc::default(), 1000, 30)
}

fn policy() -> Policy {
    Policy::bearer(0b11)
}

fn token(kid: Option<&str>, claims: Value) -> String {
    let mut h = JwtHeader::new(Algorithm::HS256);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn good_claims() -> Value {
    json!({"iss": "issuer-a", "sub": "alice", "exp": NOW + 60, "iat": NOW - 10, "jti": "j1", "role": "ADMIN"})
}

#[test]
fn accepts_a_good_token_and_caches_it() {
    let v = validator();
    let t = token(Some("ka"), good_claims());
    let ok = v.validate(&t, &policy(), NOW).unwrap();
    assert_eq!(ok.sub(), Some("alice"));
    let again = v.validate(&t, &policy(), NOW).unwrap();
    assert!(
        Arc::ptr_eq(&ok, &again),
        "second validation comes from the cache"
    );
}

#[test]
fn cached_tokens_still_expire_and_get_revoked() {
    let v = validator();
    let t = token(Some("ka"), good_claims());
    v.validate(&t, &policy(), NOW).unwrap();
    assert_eq!(
        v.validate(&t, &policy(), NOW + 90).unwrap_err(),
        AuthError::Expired
    );
    v.revocations.apply(&Revocation::Jti {
        jti: "j1".into(),
        expires_at: Some(NOW + 60),
    });
    assert_eq!(
        v.validate(&t, &policy(), NOW).unwrap_err(),
        AuthError::Revoked
    );
}

#[test]
fn rejects_each_bad_token_with_its_reason() {
    let v = validator();
    let p = policy();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good_claims();
        f(&mut c);
        token(Some("ka"), c)
    };
    let cases: Vec<(String, AuthError)> = vec![
        ("garbage".into(), AuthError::Malformed),
        ("a.b.c".into(), AuthError::Malformed),
        (token(Some("nope"), good_claims()), AuthError::UnknownKey),
        (with(&|c| c["exp"] = json!(NOW - 31)), AuthError::Expired),
        (
            with(&|c| c["nbf"] = json!(NOW + 31)),
            AuthError::NotYetValid,
        ),
        (
            with(&|c| c["exp"] = json!("tomorrow")),
            AuthError::Malformed,
        ),
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            AuthError::MissingExpiry,
        ),
        (
            with(&|c| c["iss"] = json!("issuer-b")),
            AuthError::WrongIssuer,
        ),
    ];
    for (t, want) in cases {
        assert_eq!(v.validate(&t, &p, NOW).unwrap_err(), want, "{t}");
    }
}

#[test]
fn a_token_bound_to_a_key_carries_its_binding_and_an_unknown_binding_is_refused() {
    use super::Binding;
    let v = validator();
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let x5t = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2";
    for (cnf, want) in [
        (json!({"jkt": jkt}), Binding::Dpop(jkt.into())),
        (json!({"x5t#S256": x5t}), Binding::Certificate(x5t.into())),
    ] {
        let mut c = good_claims();
        c["cnf"] = cnf;
        let verified = v.validate(&token(Some("ka"), c), &policy(), NOW).unwrap();
        assert_eq!(verified.binding, Some(want));
    }
    for cnf in [
        json!({"jkt": jkt, "x5t#S256": x5t}),
        json!({"jkt": jkt, "other": "x"}),
        json!({"jkt": ""}),
        json!({"jkt": 1}),
        json!({"jwk": {"kty": "EC", "crv": "P-256"}}),
        json!({}),
        json!(null),
        json!("any"),
    ] {
        let mut c = good_claims();
        c["cnf"] = cnf.clone();
        let t = token(Some("ka"), c);
        assert_eq!(
            v.validate(&t, &policy(), NOW).unwrap_err(),
            AuthError::SenderConstrained,
            "{cnf}"
        );
        // Refused each time, never kept as verified.
        assert_eq!(
            v.validate(&t, &policy(), NOW).unwrap_err(),
            AuthError::SenderConstrained,
            "{cnf}, again"
        );
    }
    // A claim that merely starts so is no binding.
    let mut c = good_claims();
    c["cnf_note"] = json!("x");
    c["cn"] = json!("x");
    v.validate(&token(Some("ka"), c), &policy(), NOW).unwrap();
    // Nor does portero vouch for one (an API key's record).
    let bound = Claims::parse(br#"{"sub": "svc", "cnf": {"jkt": "x"}}"#.to_vec()).unwrap();
    assert_eq!(
        Verified::vouched(0, bound, "key").unwrap_err(),
        AuthError::SenderConstrained
    );
}

#[test]
fn leeway_applies_to_exp_and_nbf() {
    let v = validator();
    let mut c = good_claims();
    c["exp"] = json!(NOW - 29);
    c["nbf"] = json!(NOW + 29);
    v.validate(&token(Some("ka"), c), &policy(), NOW).unwrap();
}

#[test]
fn tampered_payload_fails_the_signature() {
    let v = validator();
    let t = token(Some("ka"), good_claims());
    let parts: Vec<&str> = t.split('.').collect();
    for sub in ["mallory", "bobby"] {
        let mut forged = good_claims();
        forged["sub"] = json!(sub);
        let payload = URL_SAFE_NO_PAD.encode(forged.to_string());
        let t2 = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(
            v.validate(&t2, &policy(), NOW).unwrap_err(),
            AuthError::BadSignature
        );
        // Cached, the token shares its place with a forgery of its length
        // and signature: the hit is confirmed byte for byte.
        v.validate(&t, &policy(), NOW).unwrap();
        assert_eq!(
            v.cache_key(t.as_bytes()) == v.cache_key(t2.as_bytes()),
            t.len() == t2.len()
        );
        assert!(v.cached(t2.as_bytes()).is_none());
        assert!(v.cached(t.as_bytes()).is_some());
    }
}

/// A token with exactly this header and payload JSON, signed with `SECRET`.
fn signed(header: &str, payload: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = crate::auth::keys::hs256_mac(SECRET);
    mac.update(message.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{message}.{signature}")
}

#[test]
fn a_claim_named_twice_makes_the_token_malformed() {
    let v = validator();
    let header = r#"{"alg":"HS256","kid":"ka"}"#;
    let twice = format!(
        r#"{{"iss":"issuer-a","sub":"alice","exp":{},"sub":"admin"}}"#,
        NOW + 60
    );
    assert_eq!(
        v.validate(&signed(header, &twice), &policy(), NOW)
            .unwrap_err(),
        AuthError::Malformed
    );
    let once = format!(r#"{{"iss":"issuer-a","sub":"alice","exp":{}}}"#, NOW + 60);
    assert!(v.validate(&signed(header, &once), &policy(), NOW).is_ok());
}

#[test]
fn large_tokens_and_escaped_header_fields_verify() {
    let v = validator();
    // "k\u0061" is "ka" written with an escape: it cannot be borrowed.
    // The padding puts the header past the stack buffer.
    let header = format!(
        r#"{{"alg":"HS\u0032\u0035\u0036","kid":"k\u0061","pad":"{}"}}"#,
        "p".repeat(2 * HEADER_ON_STACK)
    );
    let groups = "g".repeat(4096);
    let payload = format!(
        r#"{{"iss":"issuer-a","sub":"alice","exp":{},"groups":"{groups}"}}"#,
        NOW + 60
    );
    let ok = v
        .validate(&signed(&header, &payload), &policy(), NOW)
        .unwrap();
    assert_eq!(ok.claims.str("groups"), Some(&*groups));
}

#[test]
fn alg_none_is_rejected() {
    let v = validator();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"ka"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good_claims().to_string());
    let t = format!("{header}.{payload}.");
    assert_eq!(
        v.validate(&t, &policy(), NOW).unwrap_err(),
        AuthError::BadAlgorithm
    );
}

#[test]
fn token_without_kid_uses_its_issuers_keys() {
    let v = validator();
    let t = token(None, good_claims());
    assert!(v.validate(&t, &policy(), NOW).is_ok());
    let mut c = good_claims();
    c["iss"] = json!("stranger");
    assert_eq!(
        v.validate(&token(None, c), &policy(), NOW).unwrap_err(),
        AuthError::UnknownKey
    );
}

#[test]
fn issuer_allowing_no_exp_accepts_eternal_tokens() {
    let v = validator();
    let t = token(Some("kb"), json!({"iss": "issuer-b", "sub": "svc"}));
    assert!(v.validate(&t, &policy(), NOW).is_ok());
}

#[test]
fn route_policy_is_enforced() {
    let v = validator();
    let t = token(Some("ka"), good_claims());
    let mut p = policy();
    p.issuer_mask = 0b10;
    assert_eq!(v.validate(&t, &p, NOW).unwrap_err(), AuthError::WrongIssuer);
    let mut p = policy();
    p.audience = Some("billing".into());
    assert_eq!(
        v.validate(&t, &p, NOW).unwrap_err(),
        AuthError::WrongAudience
    );
    let mut p = policy();
    p.token_use = Some("access".into());
    assert_eq!(
        v.validate(&t, &p, NOW).unwrap_err(),
        AuthError::WrongTokenUse
    );
    let mut p = policy();
    p.roles = vec!["AUDITOR".into()];
    assert_eq!(v.validate(&t, &p, NOW).unwrap_err(), AuthError::MissingRole);
    p.roles.push("ADMIN".into());
    assert!(v.validate(&t, &p, NOW).is_ok());
    let mut p = policy();
    p.scopes = vec!["read".into()];
    assert_eq!(
        v.validate(&t, &p, NOW).unwrap_err(),
        AuthError::MissingScope
    );
    let mut p = policy();
    p.claims = vec![(crate::claim_path::ClaimPath::top("sub"), "bob".into())];
    assert_eq!(
        v.validate(&t, &p, NOW).unwrap_err(),
        AuthError::ClaimMismatch
    );
}
