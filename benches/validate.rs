//! The validation hot path: `Validator::validate` on a good token, with the
//! verified-token cache off ("cold": signature checked every time) and on
//! ("cached"), for HS256, RS256, ES256 and EdDSA; the same for a key taken
//! from an external issuer's JWKS beside a configured one; and the
//! revocation check as the set grows.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use portero::auth::keys::{IssuerInfo, Key, KeySet};
use portero::auth::revocation::{Revocation, Revocations};
use portero::auth::validate::Validator;
use portero::config::Policy;
use portero::jwk::{parse_jwks, ExternalKeys};
use serde_json::json;

const SECRET: &[u8] = b"bench-hs256-secret-of-at-least-32-bytes";
const NOW: i64 = 1_800_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn keys() -> KeySet {
    let issuers = vec![IssuerInfo {
        oauth2_iss: None,
        name: "bench".into(),
        iss: "bench-issuer".into(),
        login_client: None,
        allow_no_exp: false,
    }];
    KeySet::from_keys(issuers, keys_of_bench())
}

fn keys_of_bench() -> Vec<Key> {
    vec![
        Key::hs256("hs", 0, SECRET),
        Key::verifying(
            "es",
            0,
            Algorithm::ES256,
            DecodingKey::from_ec_pem(&fixture("ec_public.pem")).unwrap(),
        ),
        Key::verifying(
            "rs",
            0,
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(&fixture("rsa_public.pem")).unwrap(),
        ),
        Key::verifying(
            "ed",
            0,
            Algorithm::EdDSA,
            DecodingKey::from_ed_pem(&fixture("ed_public.pem")).unwrap(),
        ),
    ]
}

/// `keys()` beside an external issuer (`bench-idp`) whose JWKS holds the
/// same fixture keys as `idp-rs` and `idp-es`, built as the gateway builds it.
fn with_external_issuer() -> KeySet {
    let mut issuers = keys().issuers.clone();
    issuers.push(IssuerInfo {
        oauth2_iss: None,
        name: "idp".into(),
        iss: String::new(),
        login_client: None,
        allow_no_exp: false,
    });
    let base = KeySet::from_keys(issuers, keys_of_bench());
    let public = |alg, kid: &str| {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing_key(alg), alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        serde_json::to_value(jwk).unwrap()
    };
    let jwks =
        json!({"keys": [public(Algorithm::RS256, "idp-rs"), public(Algorithm::ES256, "idp-es")]});
    let (keys, _) = parse_jwks(jwks.to_string().as_bytes()).unwrap();
    let idp = ExternalKeys {
        iss: "bench-idp".into(),
        keys,
    };
    base.with_external(vec![None, Some(Arc::new(idp))])
}

fn signing_key(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&fixture("ed_private.pem")).unwrap(),
        _ => EncodingKey::from_ec_pem(&fixture("ec_private.pem")).unwrap(),
    }
}

fn token(alg: Algorithm, kid: &str) -> String {
    token_from("bench-issuer", alg, kid)
}

fn token_from(iss: &str, alg: Algorithm, kid: &str) -> String {
    let key = signing_key(alg);
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    let claims = json!({
        "iss": iss, "sub": "bench-user-42", "iat": NOW - 10, "exp": NOW + 3600,
        "jti": "0123456789abcdef0123456789abcdef", "role": "ADMIN",
    });
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

fn policy() -> Policy {
    Policy {
        roles: vec!["ADMIN".into()],
        headers: vec![(
            http::HeaderName::from_static("x-auth-sub"),
            portero::claim_path::ClaimPath::top("sub"),
        )],
        ..Policy::bearer(1)
    }
}

fn validate(c: &mut Criterion) {
    let p = policy();
    let mut group = c.benchmark_group("validate");
    for (name, alg, kid) in [
        ("HS256", Algorithm::HS256, "hs"),
        ("RS256", Algorithm::RS256, "rs"),
        ("ES256", Algorithm::ES256, "es"),
        ("EdDSA", Algorithm::EdDSA, "ed"),
    ] {
        let t = token(alg, kid);
        let cold = Validator::new(keys(), Arc::default(), 0, 30);
        group.bench_function(BenchmarkId::new(name, "cold"), |b| {
            b.iter(|| cold.validate(&t, &p, NOW).unwrap())
        });
        let cached = Validator::new(keys(), Arc::default(), 1024, 30);
        group.bench_function(BenchmarkId::new(name, "cached"), |b| {
            b.iter(|| cached.validate(&t, &p, NOW).unwrap())
        });
    }
    group.finish();
}

/// A configured key against the same key published in a JWKS: the lookup
/// and the check are the same code, so the figures should match.
fn external(c: &mut Criterion) {
    let p = Policy {
        roles: vec!["ADMIN".into()],
        ..Policy::bearer(0b11)
    };
    let mut group = c.benchmark_group("validate_external");
    for (name, alg, configured, published) in [
        ("RS256", Algorithm::RS256, "rs", "idp-rs"),
        ("ES256", Algorithm::ES256, "es", "idp-es"),
    ] {
        let tokens = [
            ("configured", token(alg, configured)),
            ("jwks", token_from("bench-idp", alg, published)),
        ];
        for (source, t) in &tokens {
            let cold = Validator::new(with_external_issuer(), Arc::default(), 0, 30);
            group.bench_function(BenchmarkId::new(format!("{name}/{source}"), "cold"), |b| {
                b.iter(|| cold.validate(t, &p, NOW).unwrap())
            });
            let cached = Validator::new(with_external_issuer(), Arc::default(), 1024, 30);
            group.bench_function(
                BenchmarkId::new(format!("{name}/{source}"), "cached"),
                |b| b.iter(|| cached.validate(t, &p, NOW).unwrap()),
            );
        }
    }
    group.finish();
}

fn revocation_scaling(c: &mut Criterion) {
    let p = policy();
    let t = token(Algorithm::HS256, "hs");
    let mut group = c.benchmark_group("validate_cached_with_revocations");
    for n in [0usize, 10_000, 1_000_000] {
        let revocations = Arc::new(Revocations::default());
        for i in 0..n {
            revocations.apply(&Revocation::Jti {
                jti: format!("revoked-{i}"),
                expires_at: Some(NOW + 3600),
            });
        }
        let v = Validator::new(keys(), revocations, 1024, 30);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| v.validate(&t, &p, NOW).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, validate, external, revocation_scaling);
criterion_main!(benches);
