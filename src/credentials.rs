//! Hashing and checking principals' secrets (the principals themselves are
//! config data, `config::Principal`). Passwords are argon2id; high-entropy
//! client secrets may use a fast keyed hash (HMAC-SHA256 with a per-secret
//! salt). Verifying costs the same whether or not the principal exists: an
//! unknown login is checked against a dummy hash of the same kind.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::{SecretHash, FAST_PREFIX};

impl SecretHash {
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
        FAST.get_or_init(|| crate::config::secret_hash(&hash_fast(&random())).expect("own format"))
    } else {
        ARGON.get_or_init(|| {
            crate::config::secret_hash(&hash_password(&random())).expect("own format")
        })
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
            let parsed = crate::config::secret_hash(&h).unwrap();
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
        assert!(crate::config::secret_hash("demo2024").is_err());
        assert!(crate::config::secret_hash("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$YWJj").is_err());
        assert!(crate::config::secret_hash("$portero-hmac-sha256$only-one-part").is_err());
    }
}
