//! Principals and their hashed secrets. Passwords are argon2id; high-entropy
//! client secrets may use a fast keyed hash (HMAC-SHA256 with a per-secret
//! salt). Verifying costs the same whether or not the principal exists: an
//! unknown login is checked against a dummy hash of the same kind.

use std::collections::HashMap;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;

/// The prefix of portero's fast hash: `$portero-hmac-sha256$<salt>$<mac>`.
const FAST_PREFIX: &str = "$portero-hmac-sha256$";

#[derive(Debug, Clone)]
pub enum SecretHash {
    /// A PHC string, `$argon2id$v=19$m=...`.
    Argon2(String),
    Fast {
        salt: Vec<u8>,
        mac: Vec<u8>,
    },
}

impl SecretHash {
    pub fn parse(s: &str) -> Result<SecretHash, String> {
        if let Some(rest) = s.strip_prefix(FAST_PREFIX) {
            let (salt, mac) = rest.split_once('$').ok_or("malformed fast hash")?;
            let decode = |x: &str| {
                URL_SAFE_NO_PAD
                    .decode(x)
                    .map_err(|_| "malformed fast hash".to_string())
            };
            return Ok(SecretHash::Fast {
                salt: decode(salt)?,
                mac: decode(mac)?,
            });
        }
        let parsed = PasswordHash::new(s).map_err(|e| format!("not an argon2 PHC string: {e}"))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(format!(
                "{} hashes are not accepted; use argon2id",
                parsed.algorithm
            ));
        }
        Ok(SecretHash::Argon2(s.to_string()))
    }

    /// Constant-time check of `secret` against this hash.
    pub fn verify(&self, secret: &str) -> bool {
        match self {
            SecretHash::Argon2(phc) => PasswordHash::new(phc)
                .map(|h| {
                    Argon2::default()
                        .verify_password(secret.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false),
            SecretHash::Fast { salt, mac } => {
                let mut m =
                    Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes any key length");
                m.update(secret.as_bytes());
                m.verify_slice(mac).is_ok()
            }
        }
    }

    pub fn is_fast(&self) -> bool {
        matches!(self, SecretHash::Fast { .. })
    }
}

/// An argon2id hash (default parameters: 19 MiB, 2 passes) for a password.
pub fn hash_password(secret: &str) -> String {
    let salt = SaltString::generate(&mut rand::thread_rng());
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// The fast keyed hash, for high-entropy client secrets only.
pub fn hash_fast(secret: &str) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut m = Hmac::<Sha256>::new_from_slice(&salt).expect("HMAC takes any key length");
    m.update(secret.as_bytes());
    format!(
        "{FAST_PREFIX}{}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    )
}

/// A hash of the given kind that no secret matches, to spend the same time on
/// an unknown login as on a known one.
pub fn dummy(fast: bool) -> &'static SecretHash {
    static ARGON: OnceLock<SecretHash> = OnceLock::new();
    static FAST: OnceLock<SecretHash> = OnceLock::new();
    let random = || {
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    };
    if fast {
        FAST.get_or_init(|| SecretHash::parse(&hash_fast(&random())).expect("own format"))
    } else {
        ARGON.get_or_init(|| SecretHash::parse(&hash_password(&random())).expect("own format"))
    }
}

/// Someone who can obtain tokens, with what the dialects return about them.
#[derive(Debug, Clone)]
pub struct Principal {
    /// What identifies them at login: username, client id, or `business/proyecto`.
    pub login: String,
    pub secret: SecretHash,
    pub id: Value,
    pub username: Option<String>,
    pub nombre: Option<String>,
    pub role: Option<String>,
    pub business: Option<String>,
    pub proyecto: Option<String>,
    pub client_id: Option<String>,
    pub company: Option<String>,
    pub permissions: Vec<String>,
    pub active: bool,
    pub blocked: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Principals {
    by_login: HashMap<String, Principal>,
}

impl Principals {
    pub fn new(list: Vec<Principal>) -> Principals {
        Principals {
            by_login: list.into_iter().map(|p| (p.login.clone(), p)).collect(),
        }
    }

    pub fn get(&self, login: &str) -> Option<&Principal> {
        self.by_login.get(login)
    }
}

/// Reads a secret from stdin (trailing newline removed) and prints its hash.
pub fn hash_secret_from_stdin(fast: bool) -> std::io::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let secret = line.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty secret",
        ));
    }
    Ok(if fast {
        hash_fast(secret)
    } else {
        hash_password(secret)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_hashes_verify_only_their_secret() {
        for h in [
            hash_password("demo2024"),
            hash_fast("demo_secret_456_ABCDEFGH"),
        ] {
            let parsed = SecretHash::parse(&h).unwrap();
            let right = if parsed.is_fast() {
                "demo_secret_456_ABCDEFGH"
            } else {
                "demo2024"
            };
            assert!(parsed.verify(right));
            assert!(!parsed.verify("wrong"));
            assert!(!parsed.verify(""));
        }
        assert!(!dummy(true).verify(""));
        assert!(!dummy(false).verify(""));
    }

    #[test]
    fn plain_text_and_weak_hashes_are_refused() {
        assert!(SecretHash::parse("demo2024").is_err());
        assert!(SecretHash::parse("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$YWJj").is_err());
        assert!(SecretHash::parse("$portero-hmac-sha256$only-one-part").is_err());
    }
}
