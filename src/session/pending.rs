//! A sign-in on its way: what the callback must find again (the `state`,
//! the `nonce`, the PKCE verifier, the provider and the page first asked
//! for), kept in a short-lived cookie signed with a secret every instance
//! shares. A callback whose `state` is not the cookie's is refused: nobody
//! can make a browser finish a sign-in it did not begin (login CSRF).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a browser may take at the provider.
pub const PENDING_SECS: i64 = 600;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// The provider's issuer name.
    pub provider: String,
    /// Where the browser goes once signed in: a path on this origin.
    pub return_to: String,
    pub expires_at: i64,
}

impl Pending {
    /// The cookie's value: the record, then its HMAC, both base64url.
    pub fn sign(&self, secret: &[u8]) -> String {
        let body = base64_simd::URL_SAFE_NO_PAD
            .encode_to_string(serde_json::to_vec(self).expect("a pending sign-in serializes"));
        let mac = mac(secret, &body);
        format!("{body}.{mac}")
    }

    /// The record a cookie holds, if this gateway signed it and it has not
    /// run out by `now`.
    pub fn verify(secret: &[u8], cookie: &str, now: i64) -> Option<Pending> {
        let (body, sent) = cookie.split_once('.')?;
        let expected = mac(secret, body);
        if !super::seal::same(sent.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let json = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(body).ok()?;
        let pending: Pending = serde_json::from_slice(&json).ok()?;
        (pending.expires_at > now).then_some(pending)
    }
}

fn mac(secret: &[u8], body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(b"portero pending sign-in\0");
    mac.update(body.as_bytes());
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(mac.finalize().into_bytes())
}

/// A page to return to after signing in: a path on this origin, never a
/// URL of another (`//evil`, `/\evil`, a scheme), nor one a header cannot
/// carry.
pub fn safe_return(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        Pending {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            provider: "idp".into(),
            return_to: "/app?x=1".into(),
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_cookie_reads_back_only_as_signed_and_in_time() {
        let cookie = pending().sign(b"secret");
        assert_eq!(Pending::verify(b"secret", &cookie, 1_000), Some(pending()));
        assert_eq!(Pending::verify(b"other", &cookie, 1_000), None);
        assert_eq!(Pending::verify(b"secret", &cookie, 2_000), None);
        let (body, mac) = cookie.split_once('.').unwrap();
        let mut changed = pending();
        changed.return_to = "//evil.example".into();
        let forged = format!("{}.{mac}", changed.sign(b"x").split_once('.').unwrap().0);
        assert_eq!(Pending::verify(b"secret", &forged, 1_000), None);
        assert_eq!(Pending::verify(b"secret", body, 1_000), None);
    }

    #[test]
    fn only_paths_on_this_origin_are_returned_to() {
        for good in ["/", "/app", "/app/x?y=1&z=%20"] {
            assert!(safe_return(good), "{good}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "app",
            "/a b",
            "/a\r\nb",
            "",
        ] {
            assert!(!safe_return(bad), "{bad}");
        }
    }
}
