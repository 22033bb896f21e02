//! Keys an identity provider publishes as a JWKS, made verification keys.
//! Each key's algorithm comes from the key itself (its `alg`, else its
//! `kty`/`crv`), never from a token. Encryption keys, symmetric (`oct`) keys
//! and keys too weak to trust are left out.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// RSA moduli shorter than this are refused (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;
/// Nor longer than this: the RSA implementation verifies none longer.
const MAX_RSA_BITS: usize = 4096;

/// Keys beyond this many in one JWKS are ignored: a token without a `kid`
/// is tried against each of its issuer's keys.
pub const MAX_KEYS: usize = 64;

/// An external issuer's keys as last fetched: shared, never changed.
pub struct ExternalKeys {
    /// The `iss` its tokens must carry.
    pub iss: String,
    pub keys: Vec<ExternalKey>,
}

pub struct ExternalKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub decoding: DecodingKey,
    /// The JWK as published, to tell a changed set from the same set.
    pub published: String,
}

impl ExternalKeys {
    /// Whether `other` holds the same keys for the same `iss`.
    pub fn same_as(&self, other: &ExternalKeys) -> bool {
        self.iss == other.iss
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.published == b.published)
    }
}

/// An algorithm's name as JOSE headers write it.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// Whether a member of a JOSE header was there at all, whatever its
/// value: `null` included, which `Option` would read as absent (`crit`).
#[derive(Default)]
pub struct Present(pub bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Present, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// The verification keys of a JWKS document, and why each other key was
/// left out. A document that is not a JWKS is an error.
pub fn parse_jwks(body: &[u8]) -> Result<(Vec<ExternalKey>, Vec<String>), String> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for value in set.keys {
        let published = value.to_string();
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                skipped.push(format!("unreadable key: {e}"));
                continue;
            }
        };
        let kid = jwk.common.key_id.clone();
        match verification_key(&jwk) {
            Ok(_) if keys.len() == MAX_KEYS => {
                skipped.push(format!("{kid:?}: over {MAX_KEYS} keys"))
            }
            Ok((alg, decoding)) => keys.push(ExternalKey {
                kid,
                alg,
                decoding,
                published,
            }),
            Err(why) => skipped.push(format!("{kid:?}: {why}")),
        }
    }
    // One order for one set, however the provider lists it.
    keys.sort_by(|a, b| a.published.cmp(&b.published));
    Ok((keys, skipped))
}

/// The algorithm and key a JWK verifies with, or why it may not.
pub fn verification_key(jwk: &Jwk) -> Result<(Algorithm, DecodingKey), String> {
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(PublicKeyUse::Encryption) => return Err("an encryption key (use = enc)".into()),
        Some(PublicKeyUse::Other(u)) => return Err(format!("use {u:?} is not sig")),
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("key_ops does not include verify".into());
        }
    }
    let alg = match (&jwk.algorithm, &jwk.common.key_algorithm) {
        (AlgorithmParameters::OctetKey(_), _) => {
            return Err("a symmetric (oct) key: a published secret verifies nothing".into())
        }
        (AlgorithmParameters::RSA(rsa), alg) => {
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| "RSA modulus is not base64url")?;
            // The modulus's length in bits, its leading zero bits not counted.
            let significant: Vec<u8> = n.into_iter().skip_while(|&b| b == 0).collect();
            let bits = significant.first().map_or(0, |top| {
                significant.len() * 8 - top.leading_zeros() as usize
            });
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!(
                    "RSA key of about {bits} bits (not {MIN_RSA_BITS} to {MAX_RSA_BITS})"
                ));
            }
            // An even or tiny exponent verifies nothing (e = 1: any
            // message is its own signature).
            let e = URL_SAFE_NO_PAD
                .decode(&rsa.e)
                .map_err(|_| "RSA exponent is not base64url")?;
            let e = e
                .iter()
                .skip_while(|&&b| b == 0)
                .copied()
                .collect::<Vec<u8>>();
            if e.len() > 8 || e.last().is_none_or(|b| b % 2 == 0) || e == [1] {
                return Err("RSA exponent is not an odd number over 1 (65537)".into());
            }
            match alg {
                None | Some(KeyAlgorithm::RS256) => Algorithm::RS256,
                Some(KeyAlgorithm::RS384) => Algorithm::RS384,
                Some(KeyAlgorithm::RS512) => Algorithm::RS512,
                Some(KeyAlgorithm::PS256) => Algorithm::PS256,
                Some(KeyAlgorithm::PS384) => Algorithm::PS384,
                Some(KeyAlgorithm::PS512) => Algorithm::PS512,
                Some(other) => return Err(format!("alg {other:?} is not an RSA signature")),
            }
        }
        (AlgorithmParameters::EllipticCurve(ec), alg) => {
            let (alg, size) = match (&ec.curve, alg) {
                (EllipticCurve::P256, None | Some(KeyAlgorithm::ES256)) => (Algorithm::ES256, 32),
                (EllipticCurve::P384, None | Some(KeyAlgorithm::ES384)) => (Algorithm::ES384, 48),
                (curve, alg) => return Err(format!("curve {curve:?} with alg {alg:?}")),
            };
            // Each coordinate its curve's size: one key, one spelling (and
            // one thumbprint).
            let sized = |c: &str| URL_SAFE_NO_PAD.decode(c).is_ok_and(|c| c.len() == size);
            if !sized(&ec.x) || !sized(&ec.y) {
                return Err(format!(
                    "an EC key's x and y are {size} bytes each, base64url"
                ));
            }
            alg
        }
        (AlgorithmParameters::OctetKeyPair(okp), alg) => match (&okp.curve, alg) {
            // 32 bytes, no other length: the verifier slices them unchecked.
            (EllipticCurve::Ed25519, None | Some(KeyAlgorithm::EdDSA)) => {
                let x: [u8; 32] = URL_SAFE_NO_PAD
                    .decode(&okp.x)
                    .ok()
                    .and_then(|x| x.try_into().ok())
                    .ok_or("an Ed25519 key is 32 bytes (x), base64url")?;
                // A point of small order (the identity among them) takes a
                // signature made without any private key.
                match ed25519_dalek::VerifyingKey::from_bytes(&x) {
                    Ok(key) if !key.is_weak() => Algorithm::EdDSA,
                    Ok(_) => return Err("an Ed25519 key of small order signs nothing".into()),
                    Err(_) => return Err("an Ed25519 key is a point of the curve".into()),
                }
            }
            (EllipticCurve::Ed25519, _) => {
                return Err("an Ed25519 key is 32 bytes (x), base64url".into())
            }
            (curve, alg) => return Err(format!("curve {curve:?} with alg {alg:?}")),
        },
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    Ok((alg, decoding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RSA_N: &str = "wq5L_IB_OLQi20e2NLJZcL3ee7ehw8vpHpixEPK1zQmoiQvVG0STUix8ElV9TOyqpz5EPXtg03g-pyyYfXzfSGPHQJu6UbAvnjIh8L1OftX2vIlkGmxnt-J5MDPSLDfpAfA7C_ThTiuXrVQ45T9EbyKW25uPsnlfu_rsp8cjqpuK64HSHaQDoDaGQEv5V8VEOhvwBamkzFrE0LL4jqEs17aS56TSn-dp6yenhBIyTPJXVT2-QDkXjub4VVIULDLV0v6FHgcn2J5Pb-6BSoknQ9O3bKhmjjakM2dsfIyzR77OyZ5J69L3WWuP5zWuSca7vBW_jMNWwV3OQmqqOzGAAQ";

    fn alg_of(jwk: serde_json::Value) -> Result<Algorithm, String> {
        let jwk: Jwk = serde_json::from_value(jwk).unwrap();
        verification_key(&jwk).map(|(alg, _)| alg)
    }

    #[test]
    fn the_algorithm_is_the_keys() {
        let rsa = |alg: Option<&str>| {
            let mut k = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB"});
            if let Some(a) = alg {
                k["alg"] = json!(a);
            }
            alg_of(k)
        };
        assert_eq!(rsa(None), Ok(Algorithm::RS256));
        assert_eq!(rsa(Some("PS384")), Ok(Algorithm::PS384));
        assert_eq!(rsa(Some("RS512")), Ok(Algorithm::RS512));
        assert!(
            rsa(Some("HS256")).is_err(),
            "an RSA key never verifies HMAC"
        );
        assert!(rsa(Some("ES256")).is_err());
    }

    #[test]
    fn encryption_symmetric_and_weak_keys_are_left_out() {
        let enc = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "use": "enc"});
        assert!(alg_of(enc).unwrap_err().contains("enc"));
        let oct = json!({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "alg": "HS256"});
        assert!(alg_of(oct).unwrap_err().contains("oct"));
        let sign_only = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "key_ops": ["sign"]});
        assert!(alg_of(sign_only).is_err());
        let weak = json!({"kty": "RSA", "n": &RSA_N[..172], "e": "AQAB"});
        assert!(alg_of(weak).unwrap_err().contains("bits"));
        let huge = json!({"kty": "RSA", "n": RSA_N.repeat(3), "e": "AQAB"});
        assert!(alg_of(huge).unwrap_err().contains("bits"));
        for e in ["AQ", "Ag", "AAE"] {
            let exponent = json!({"kty": "RSA", "n": RSA_N, "e": e});
            assert!(alg_of(exponent).unwrap_err().contains("exponent"), "{e}");
        }
        // 2041 bits: 256 bytes, its top byte 0x01. Bits are counted, not bytes.
        let mut short = URL_SAFE_NO_PAD.decode(RSA_N).unwrap();
        short[0] = 0x01;
        let short = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&short), "e": "AQAB"});
        assert!(alg_of(short).unwrap_err().contains("2041 bits"));
        // An Ed25519 key of any length but 32 bytes (the verifier would slice it).
        for x in ["AA", &"A".repeat(44), &"A".repeat(86)] {
            let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
            assert!(alg_of(okp).unwrap_err().contains("32 bytes"), "{x}");
        }
        // Points of small order: the identity (1, then zeros), and the
        // point of order 4 (all zeros).
        for x in [
            "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &"A".repeat(43),
        ] {
            let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
            assert!(alg_of(okp).unwrap_err().contains("small order"), "{x}");
        }
        let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(alg_of(okp), Ok(Algorithm::EdDSA));
    }

    #[test]
    fn a_jwks_keeps_what_verifies_and_says_why_not_the_rest() {
        let body = json!({"keys": [
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "r"},
            {"kty": "oct", "k": "AAAA", "kid": "s"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
            {"kty": "nonsense", "kid": "n"},
        ]});
        let (keys, skipped) = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("r"));
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(parse_jwks(b"{\"keys\": 3}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }
}
