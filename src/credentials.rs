//! Hashing and checking principals' secrets (the principals themselves are
//! config data, `config::Principal`). Passwords are argon2id; high-entropy
//! client secrets may use a fast keyed hash (HMAC-SHA256 with a per-secret
//! salt). Hashes the services portero replaces kept (bcrypt, PBKDF2,
//! scrypt, argon2i) are checked too, with RustCrypto's `password-hash`
//! family and the `bcrypt` crate. Verifying costs the same whether or not
//! the principal exists: an unknown login is checked against a dummy hash
//! of the same kind.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::config::{Pbkdf2Digest, SecretHash, FAST_PREFIX};

impl SecretHash {
    /// Constant-time check of `secret` against this hash.
    pub fn verify(&self, secret: &str) -> bool {
        match self {
            SecretHash::Phc(phc) => PasswordHash::new(phc)
                .map(|h| {
                    let verifiers: [&dyn PasswordVerifier; 3] =
                        [&Argon2::default(), &pbkdf2::Pbkdf2, &scrypt::Scrypt];
                    h.verify_password(&verifiers, secret).is_ok()
                })
                .unwrap_or(false),
            SecretHash::Bcrypt(hash) => bcrypt::verify(secret, hash).unwrap_or(false),
            SecretHash::Pbkdf2 {
                digest,
                rounds,
                salt,
                hash,
            } => {
                let mut derived = vec![0u8; hash.len()];
                let (secret, rounds) = (secret.as_bytes(), *rounds);
                match digest {
                    Pbkdf2Digest::Sha1 => {
                        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(secret, salt, rounds, &mut derived)
                    }
                    Pbkdf2Digest::Sha256 => {
                        pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, rounds, &mut derived)
                    }
                    Pbkdf2Digest::Sha512 => {
                        pbkdf2::pbkdf2_hmac::<Sha512>(secret, salt, rounds, &mut derived)
                    }
                }
                bool::from(derived.ct_eq(hash))
            }
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

    /// Whether this is what portero writes today: argon2id with at least
    /// the OWASP parameters (19 MiB, 2 passes), or its fast keyed hash.
    pub fn is_current(&self) -> bool {
        let SecretHash::Phc(phc) = self else {
            return self.is_fast();
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let param = |name: &str| parsed.params.get_decimal(name).unwrap_or(0);
        parsed.algorithm.as_str() == "argon2id"
            && param("m") >= argon2::Params::DEFAULT_M_COST
            && param("t") >= argon2::Params::DEFAULT_T_COST
    }

    /// The format's name, for logs and metrics (never the hash itself).
    pub fn format(&self) -> &'static str {
        match self {
            SecretHash::Phc(phc) => match phc.split('$').nth(1) {
                Some("argon2id") => "argon2id",
                Some("argon2i") => "argon2i",
                Some("argon2d") => "argon2d",
                Some("pbkdf2-sha256") => "pbkdf2-sha256",
                Some("pbkdf2-sha512") => "pbkdf2-sha512",
                _ => "scrypt",
            },
            SecretHash::Bcrypt(_) => "bcrypt",
            SecretHash::Pbkdf2 { digest, .. } => match digest {
                Pbkdf2Digest::Sha1 => "pbkdf2-sha1",
                Pbkdf2Digest::Sha256 => "pbkdf2-sha256",
                Pbkdf2Digest::Sha512 => "pbkdf2-sha512",
            },
            SecretHash::Fast { .. } => "portero-hmac-sha256",
        }
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
    fn plain_text_and_unknown_formats_are_refused_by_name() {
        let refused = |s: &str| crate::config::secret_hash(s).unwrap_err();
        assert!(refused("demo2024").contains("plain text"));
        assert!(refused("$portero-hmac-sha256$only-one-part").contains("fast hash"));
        assert!(refused("$md5-crypt$abc$def").contains("md5-crypt"));
        assert!(refused("$2b$12$tooshort").contains("bcrypt"));
        assert!(refused("pbkdf2_sha256$0$salt$aGFzaA==").contains("Django"));
        assert!(refused("$pbkdf2-sha256$29000$salt$n*t-ab64").contains("passlib"));
        // The message names the format, never the hash.
        assert!(!refused("$2b$12$tooshort").contains("tooshort"));
    }
}
