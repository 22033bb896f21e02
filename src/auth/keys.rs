//! The key cache: every issuer's keys, loaded once per config and read on the
//! hot path by `kid` without locks or I/O. Each key carries its own algorithm,
//! which is the only one it is ever verified with.

use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;

use crate::config::KeyConfig;
use crate::jwk::{alg_name, ExternalKeys};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("issuers.{issuer}: key {kid:?}: environment variable {var} is not set")]
    MissingEnv {
        issuer: String,
        kid: String,
        var: String,
    },
    #[error("issuers.{issuer}: key {kid:?}: {path}: {source}")]
    Read {
        issuer: String,
        kid: String,
        path: String,
        source: std::io::Error,
    },
    #[error("issuers.{issuer}: key {kid:?}: {message}")]
    Invalid {
        issuer: String,
        kid: String,
        message: String,
    },
    #[error("issuers.{issuer}: cannot keep a generated key: {message}")]
    Generate { issuer: String, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the issuer has no signing key (every key is verify-only)")]
    NoSigningKey,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// One verification (and maybe signing) key.
pub struct Key {
    pub kid: String,
    /// Index into [`KeySet::issuers`].
    pub issuer: usize,
    pub alg: Algorithm,
    /// The `alg` header value this key's tokens must carry.
    pub alg_name: &'static str,
    pub decoding: DecodingKey,
    pub encoding: Option<EncodingKey>,
    /// The public half as a JWK, for asymmetric keys whose private key portero holds.
    pub jwk: Option<Jwk>,
    /// HS256 only: the HMAC already keyed with the secret, cloned per check
    /// instead of keyed again (the hot path's cold-token cost).
    pub hmac: Option<Hmac<Sha256>>,
}

impl Key {
    /// An HS256 key that signs and verifies with `secret`.
    pub fn hs256(kid: impl Into<String>, issuer: usize, secret: &[u8]) -> Key {
        Key {
            encoding: Some(EncodingKey::from_secret(secret)),
            hmac: Some(hs256_mac(secret)),
            ..Key::verifying(
                kid,
                issuer,
                Algorithm::HS256,
                DecodingKey::from_secret(secret),
            )
        }
    }

    /// A key that only verifies, for `alg`.
    pub fn verifying(
        kid: impl Into<String>,
        issuer: usize,
        alg: Algorithm,
        decoding: DecodingKey,
    ) -> Key {
        Key {
            kid: kid.into(),
            issuer,
            alg,
            alg_name: alg_name(alg),
            decoding,
            encoding: None,
            jwk: None,
            hmac: None,
        }
    }
}

/// The keyed HMAC-SHA256 state of an HS256 secret.
pub fn hs256_mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// What validation needs to know of an issuer.
#[derive(Debug, Clone)]
pub struct IssuerInfo {
    pub name: String,
    pub iss: String,
    /// The `iss` of the tokens its OAuth 2.0 endpoints issue, if it has them.
    pub oauth2_iss: Option<String>,
    pub allow_no_exp: bool,
    /// portero signs people in at this issuer as this client
    /// (`login_client_id`): a token for it (`aud`) is an ID token meant
    /// for portero, never a bearer token for a route.
    pub login_client: Option<String>,
}

impl IssuerInfo {
    /// Whether a token claiming `iss` is this issuer's.
    pub fn claims(&self, iss: &str) -> bool {
        self.iss == iss || self.oauth2_iss.as_deref() == Some(iss)
    }
}

/// An immutable snapshot of every key; swapped whole on reload, and when
/// an external issuer's published keys change.
#[derive(Default)]
pub struct KeySet {
    pub issuers: Vec<IssuerInfo>,
    /// Keys whose `kid` no other key has.
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys sharing a `kid` (two providers may pick the same one): told
    /// apart by the token's `iss`.
    shared_kids: HashMap<String, Vec<Arc<Key>>>,
    by_issuer: Vec<Vec<Arc<Key>>>,
    signing: Vec<Option<Arc<Key>>>,
    /// The keys from the config and the store, kept to rebuild the set.
    own: Vec<Arc<Key>>,
    /// Per issuer, the external key set this snapshot holds.
    external: Vec<Option<Arc<ExternalKeys>>>,
}

impl KeySet {
    /// `/.well-known/jwks.json`: the public keys of every asymmetric key
    /// portero signs (or signed) with. GatewayState secrets are never published.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<&Jwk> = self
            .by_issuer
            .iter()
            .flatten()
            .filter_map(|k| k.jwk.as_ref())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    pub fn by_kid(&self, kid: &str) -> Option<&Arc<Key>> {
        self.by_kid.get(kid)
    }

    /// The keys of different issuers that share `kid`.
    pub fn shared_kid(&self, kid: &str) -> &[Arc<Key>] {
        self.shared_kids.get(kid).map_or(&[], Vec::as_slice)
    }

    /// The keys of the issuer whose `iss` claim is `iss` (for tokens without a `kid`).
    pub fn for_iss(&self, iss: &str) -> &[Arc<Key>] {
        match self.issuers.iter().position(|i| i.claims(iss)) {
            Some(i) => &self.by_issuer[i],
            None => &[],
        }
    }

    /// The key an issuer signs with, if it has one.
    pub fn signing_key(&self, issuer: usize) -> Option<&Arc<Key>> {
        self.signing.get(issuer).and_then(Option::as_ref)
    }

    /// Signs `claims` with the issuer's signing key, naming it by `kid`;
    /// the header's `typ` is `typ` when given, else `JWT`.
    pub fn sign(
        &self,
        issuer: usize,
        claims: &serde_json::Value,
        typ: Option<&str>,
    ) -> Result<String, SignError> {
        let key = self.signing_key(issuer).ok_or(SignError::NoSigningKey)?;
        let encoding = key.encoding.as_ref().ok_or(SignError::NoSigningKey)?;
        let mut header = jsonwebtoken::Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.to_string());
        }
        jsonwebtoken::encode(&header, claims, encoding).map_err(|e| SignError::Sign(e.to_string()))
    }

    pub fn issuer_index(&self, name: &str) -> Option<usize> {
        self.issuers.iter().position(|i| i.name == name)
    }

    /// Per issuer, the external key set this snapshot holds.
    pub fn external(&self) -> &[Option<Arc<ExternalKeys>>] {
        &self.external
    }

    /// Builds a set from keys already in hand (tests and benches).
    pub fn from_keys(issuers: Vec<IssuerInfo>, keys: Vec<Key>) -> KeySet {
        let external = vec![None; issuers.len()];
        KeySet::build(issuers, keys.into_iter().map(Arc::new).collect(), external)
    }

    /// This set with the external issuers' keys replaced by `external`
    /// (one entry per issuer).
    pub fn with_external(&self, external: Vec<Option<Arc<ExternalKeys>>>) -> KeySet {
        KeySet::build(self.issuers.clone(), self.own.clone(), external)
    }

    /// The set of issuers `issuers`: their own keys `own`, and each
    /// external issuer's keys (one entry per issuer), its `iss` theirs.
    pub fn build(
        mut issuers: Vec<IssuerInfo>,
        own: Vec<Arc<Key>>,
        external: Vec<Option<Arc<ExternalKeys>>>,
    ) -> KeySet {
        let mut keys = own.clone();
        for (index, set) in external.iter().enumerate() {
            let Some(set) = set else { continue };
            issuers[index].iss = set.iss.clone();
            keys.extend(set.keys.iter().map(|k| {
                let kid = k.kid.clone().unwrap_or_default();
                Arc::new(Key::verifying(kid, index, k.alg, k.decoding.clone()))
            }));
        }
        let mut set = KeySet {
            by_issuer: vec![Vec::new(); issuers.len()],
            signing: vec![None; issuers.len()],
            issuers,
            own,
            external,
            ..KeySet::default()
        };
        for key in keys {
            set.insert(key);
        }
        set
    }

    fn insert(&mut self, key: Arc<Key>) {
        if key.encoding.is_some() && self.signing[key.issuer].is_none() {
            self.signing[key.issuer] = Some(key.clone());
        }
        self.by_issuer[key.issuer].push(key.clone());
        // A key without a kid is found by its issuer's `iss` only.
        if key.kid.is_empty() {
            return;
        }
        if let Some(shared) = self.shared_kids.get_mut(&key.kid) {
            shared.push(key);
        } else if let Some(first) = self.by_kid.remove(&key.kid) {
            self.shared_kids.insert(key.kid.clone(), vec![first, key]);
        } else {
            self.by_kid.insert(key.kid.clone(), key);
        }
    }
}

/// A configured key's bytes, as read from where the config says.
pub enum Material {
    /// An HS256 secret (surrounding whitespace already trimmed).
    Secret(Vec<u8>),
    /// PEM files: the private key to sign with, the public one to verify.
    Pem {
        private: Option<Vec<u8>>,
        public: Option<Vec<u8>>,
    },
}

/// The key `k` of issuer `issuer` (the `index`th) made of its `material`.
pub fn configured(
    issuer: &str,
    index: usize,
    k: &KeyConfig,
    material: Material,
) -> Result<Key, KeyError> {
    let invalid = |message: String| KeyError::Invalid {
        issuer: issuer.to_string(),
        kid: k.kid.clone(),
        message,
    };
    let (decoding, encoding, hmac) = match material {
        Material::Secret(secret) => hmac_keys(&secret).map_err(invalid)?,
        Material::Pem { private, public } => {
            let encoding = match private {
                Some(pem) => {
                    Some(encoding_from_pem(k.alg, &pem).map_err(|e| invalid(e.to_string()))?)
                }
                None => None,
            };
            let decoding = match public {
                Some(pem) => decoding_from_pem(k.alg, &pem).map_err(|e| invalid(e.to_string()))?,
                None => return Err(invalid(
                    "public_key_file is required to verify (the private key alone is not enough)"
                        .into(),
                )),
            };
            (decoding, encoding, None)
        }
    };
    let jwk = match (&encoding, k.alg) {
        (_, Algorithm::HS256) | (None, _) => None,
        (Some(e), alg) => {
            let mut jwk = Jwk::from_encoding_key(e, alg).map_err(|e| invalid(e.to_string()))?;
            jwk.common.key_id = Some(k.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            Some(jwk)
        }
    };
    Ok(Key {
        kid: k.kid.clone(),
        issuer: index,
        alg: k.alg,
        alg_name: alg_name(k.alg),
        decoding,
        encoding: if k.verify_only { None } else { encoding },
        jwk,
        hmac,
    })
}

type HmacKeys = (DecodingKey, Option<EncodingKey>, Option<Hmac<Sha256>>);

/// HS256 secrets shorter than the hash output weaken HMAC (RFC 7518 §3.2).
fn hmac_keys(secret: &[u8]) -> Result<HmacKeys, String> {
    if secret.len() < 32 {
        return Err(format!(
            "an HS256 secret needs at least 32 bytes, this one has {}",
            secret.len()
        ));
    }
    Ok((
        DecodingKey::from_secret(secret),
        Some(EncodingKey::from_secret(secret)),
        Some(hs256_mac(secret)),
    ))
}

fn encoding_from_pem(alg: Algorithm, pem: &[u8]) -> jsonwebtoken::errors::Result<EncodingKey> {
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
        _ => EncodingKey::from_ed_pem(pem),
    }
}

fn decoding_from_pem(alg: Algorithm, pem: &[u8]) -> jsonwebtoken::errors::Result<DecodingKey> {
    match alg {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
        Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
        _ => DecodingKey::from_ed_pem(pem),
    }
}
