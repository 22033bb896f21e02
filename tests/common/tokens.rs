//! Tokens signed with the fixture keys, independently of portero's code.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{fixture, now, HS_SECRET};

#[derive(Clone, Copy)]
pub enum Signer {
    Hs,
    Rs,
    Es,
    Ed,
}

impl Signer {
    pub fn kid(self) -> &'static str {
        match self {
            Signer::Hs => "hs-1",
            Signer::Rs => "rs-1",
            Signer::Es => "es-1",
            Signer::Ed => "ed-1",
        }
    }

    pub fn sign(self, claims: &Value) -> String {
        sign_with(self, Some(self.kid()), claims)
    }
}

pub fn sign_with(signer: Signer, kid: Option<&str>, claims: &Value) -> String {
    sign_typed(signer, kid, None, claims)
}

/// As [`sign_with`], the header's `typ` set (`at+jwt`: an access token
/// of an issuer's OAuth 2.0 endpoints, RFC 9068).
pub fn sign_typed(signer: Signer, kid: Option<&str>, typ: Option<&str>, claims: &Value) -> String {
    let pem = |f: &str| std::fs::read(fixture(f)).unwrap();
    let (alg, key) = match signer {
        Signer::Hs => (
            Algorithm::HS256,
            EncodingKey::from_secret(HS_SECRET.as_bytes()),
        ),
        Signer::Rs => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap(),
        ),
        Signer::Es => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem("ec_private.pem")).unwrap(),
        ),
        Signer::Ed => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&pem("ed_private.pem")).unwrap(),
        ),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    if let Some(typ) = typ {
        header.typ = Some(typ.to_string());
    }
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Claims of a good token from issuer `test-issuer`.
pub fn claims(sub: &str) -> Value {
    json!({
        "iss": "test-issuer",
        "sub": sub,
        "aud": "orders",
        "iat": now() - 5,
        "exp": now() + 300,
        "jti": format!("jti-{sub}-{}", now()),
        "role": "ADMIN",
        "tenant": ["acme", "globex"],
    })
}
