//! A proof's public key (its header's `jwk`): read once, with its RFC 7638
//! thumbprint, and kept by the header that names it, as a client signs
//! many proofs with one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A proof key, ready to verify with.
pub struct ProofKey {
    /// The header (base64url) that named it, to confirm a cache hit.
    pub header: Box<[u8]>,
    pub alg: Algorithm,
    /// `alg` as a set of one, for a place's allowed algorithms.
    pub algorithm: super::Algorithms,
    pub decoding: DecodingKey,
    /// Its RFC 7638 thumbprint, base64url: what `cnf.jkt` names.
    pub thumbprint: std::sync::Arc<str>,
}

/// The longest signature a proof may carry, base64url: RSA's of 8192
/// bits (1024 bytes), the longest key ring verifies with.
const MAX_SIGNATURE: usize = 1366;

/// Room for any signature of up to [`MAX_SIGNATURE`] characters, decoded
/// (base64_simd panics where the room is short of what a text's length
/// would decode to, before it reads a character).
const SIGNATURE_ROOM: usize = MAX_SIGNATURE.div_ceil(4) * 3;

impl ProofKey {
    /// Whether `signature` (base64url) signs `message` with this key, by
    /// ring: for ES256 about 757,000 instructions under callgrind, against
    /// 2.82 million through jsonwebtoken's pure-Rust p256. (ring takes RSA
    /// keys of 2048 to 8192 bits; a proof's is of at most 4096,
    /// `crate::jwk`.) A frame of its own: benches/sender.sh counts it as
    /// the signature's check.
    #[inline(never)]
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature as ring;
        use Algorithm::*;
        if signature.len() > MAX_SIGNATURE {
            return false;
        }
        let mut decoded = [std::mem::MaybeUninit::uninit(); SIGNATURE_ROOM];
        let out = base64_simd::Out::from_uninit_slice(&mut decoded);
        let Ok(signature) = base64_simd::URL_SAFE_NO_PAD.decode(signature, out) else {
            return false;
        };
        let signature = &*signature;
        match self.decoding.kind() {
            DecodingKeyKind::SecretOrDer(key) => {
                let algorithm: &dyn ring::VerificationAlgorithm = match self.alg {
                    ES256 => &ring::ECDSA_P256_SHA256_FIXED,
                    ES384 => &ring::ECDSA_P384_SHA384_FIXED,
                    EdDSA => &ring::ED25519,
                    _ => return false,
                };
                ring::UnparsedPublicKey::new(algorithm, key)
                    .verify(message, signature)
                    .is_ok()
            }
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                let parameters = match self.alg {
                    RS256 => &ring::RSA_PKCS1_2048_8192_SHA256,
                    RS384 => &ring::RSA_PKCS1_2048_8192_SHA384,
                    RS512 => &ring::RSA_PKCS1_2048_8192_SHA512,
                    PS256 => &ring::RSA_PSS_2048_8192_SHA256,
                    PS384 => &ring::RSA_PSS_2048_8192_SHA384,
                    PS512 => &ring::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                // ring reads the integers without leading zeros, which some
                // libraries write (RFC 7518 §6.3.1.1 asks them not to).
                let unpadded = |b: &'_ [u8]| {
                    let zeros = b.iter().take_while(|b| **b == 0).count();
                    b[zeros..].to_vec()
                };
                ring::RsaPublicKeyComponents {
                    n: unpadded(n),
                    e: unpadded(e),
                }
                .verify(parameters, message, signature)
                .is_ok()
            }
        }
    }
}

/// Members only a private or symmetric key has: a proof carries the
/// public key alone (RFC 9449 §4.2), and one that shows its private half
/// is refused rather than used.
const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The key (`jwk`, its text) of a proof signed with `alg`, whose header
/// is `header`, or why it cannot be one.
pub fn read(header: &[u8], text: &str, alg: &str) -> Result<ProofKey, &'static str> {
    let algorithm = super::Algorithms::of([alg]).map_err(|_| "alg not allowed")?;
    let object: Map<String, Value> =
        serde_json::from_str(text).map_err(|_| "the jwk is not a JSON object")?;
    if PRIVATE.iter().any(|m| object.contains_key(*m)) {
        return Err("the jwk holds a private or symmetric key");
    }
    let thumbprint = thumbprint(&object)?;
    let named: KeyAlgorithm = alg.parse().map_err(|_| "unknown alg")?;
    let mut jwk: Jwk =
        serde_json::from_value(Value::Object(object)).map_err(|_| "the jwk is not a key")?;
    // The key's own `alg`, if it names one, must be the proof's.
    match jwk.common.key_algorithm {
        Some(own) if own != named => return Err("the jwk's alg is not the proof's"),
        _ => jwk.common.key_algorithm = Some(named),
    }
    let (alg, decoding) =
        crate::jwk::verification_key(&jwk).map_err(|_| "the jwk cannot verify")?;
    Ok(ProofKey {
        header: header.into(),
        alg,
        algorithm,
        decoding,
        thumbprint: thumbprint.into(),
    })
}

/// RFC 7638: the SHA-256 of the key's required members, in lexical
/// order, written without white space; base64url.
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, &'static str> {
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => return Err("the jwk's kty is not EC, RSA or OKP"),
    };
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        let value = jwk
            .get(*name)
            .and_then(Value::as_str)
            .ok_or("the jwk lacks a member its kty requires")?;
        if i > 0 {
            canonical.push(',');
        }
        canonical.push_str(&format!("\"{name}\":"));
        canonical.push_str(&Value::from(value).to_string());
    }
    canonical.push('}');
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and thumbprint.
        let key = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let Value::Object(map) = key else {
            unreachable!()
        };
        assert_eq!(
            thumbprint(&map).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn private_symmetric_and_mismatched_keys_are_refused() {
        let ec = json!({"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        assert!(read(b"h", &ec.to_string(), "ES256").is_ok());
        assert!(
            read(b"h", &ec.to_string(), "ES384").is_err(),
            "a P-256 key signs no ES384"
        );
        assert!(read(b"h", &ec.to_string(), "RS256").is_err());
        assert!(read(b"h", &ec.to_string(), "HS256").is_err());
        let mut private = ec.clone();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        assert_eq!(
            read(b"h", &private.to_string(), "ES256").err(),
            Some("the jwk holds a private or symmetric key")
        );
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(read(b"h", &oct.to_string(), "HS256").is_err());
        let mut named = ec.clone();
        named["alg"] = json!("ES384");
        assert!(read(b"h", &named.to_string(), "ES256").is_err());
        assert!(read(b"h", "[1]", "ES256").is_err());
    }
}
