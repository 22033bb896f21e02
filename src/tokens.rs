//! Tokens, knowing no dialect and no protocol: what a minted token is
//! stamped with and what comes back (`Stamp`, `Minted`), refresh tokens
//! and their families (`refresh`), random identifiers, and the digest refresh
//! tokens and lockout logins are stored under. The legacy dialects and the
//! standard server both mint and refresh through here.

pub mod refresh;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// `n` random bytes, base64url: `random_id(32)` is a 256-bit refresh token.
pub fn random_id(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The SHA-256 digest of `text`, base64url without padding: what a refresh
/// token or a lockout budget's login is stored under, never itself.
pub fn sha256_base64url(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

/// Who a minted token says issued it, and how it is counted.
pub struct Stamp<'a> {
    pub iss: &'a str,
    /// The JOSE header's `typ`; none for the dialects' tokens.
    pub typ: Option<&'static str>,
    /// The `dialect` label of `portero_tokens_issued_total`.
    pub endpoint: &'static str,
    /// The token's `jti`, when chosen beforehand (an authorization code's
    /// access token, revoked if the code is replayed); else a random one.
    pub jti: Option<&'a str>,
}

pub struct Minted {
    pub token: String,
    pub jti: String,
    pub exp: Option<i64>,
    /// Bound to a DPoP key (`cnf.jkt`): its `token_type` is `DPoP`.
    pub bound: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_carry_256_bits() {
        let t = random_id(32);
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 32);
        assert_ne!(sha256_base64url(&t), t);
    }
}
