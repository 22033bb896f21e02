//! What a session's cookie id opens. The store keeps a session under the
//! SHA-256 of its id, and the provider's tokens sealed (ChaCha20-Poly1305)
//! under a key derived from the id: whoever reads the store holds neither
//! a cookie nor a token.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The provider's tokens of one session.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

/// A new session id: 256 random bits, URL-safe.
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// Whether `id` could be one [`new_id`] made: 43 URL-safe characters.
pub fn well_formed(id: &str) -> bool {
    id.len() == 43
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The store's key of session `id`: SHA-256, hex.
pub fn store_key(id: &str) -> String {
    hex(&Sha256::digest(id.as_bytes()))
}

/// The id a revocation of the session names: `session:<store key>`.
pub fn revocation_id(store_key: &str) -> String {
    format!("session:{store_key}")
}

fn cipher(id: &str) -> ChaCha20Poly1305 {
    let mut hash = Sha256::new();
    hash.update(b"portero session tokens\0");
    hash.update(id.as_bytes());
    ChaCha20Poly1305::new(&Key::from(<[u8; 32]>::from(hash.finalize())))
}

/// `tokens` sealed under session `id`'s key: a random nonce, then the ciphertext.
pub fn seal(id: &str, tokens: &Tokens) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let plain = serde_json::to_vec(tokens).expect("tokens serialize");
    let sealed = cipher(id)
        .encrypt(&Nonce::from(nonce), plain.as_slice())
        .expect("ChaCha20-Poly1305 seals any length the store keeps");
    [nonce.as_slice(), &sealed].concat()
}

/// The tokens sealed under `id`; `None` if they were not sealed under it.
pub fn open(id: &str, sealed: &[u8]) -> Option<Tokens> {
    let (nonce, body) = sealed.split_at_checked(12)?;
    let nonce = <[u8; 12]>::try_from(nonce).ok()?;
    let plain = cipher(id).decrypt(&Nonce::from(nonce), body).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// Compared in constant time: a cookie's MAC, a nonce, a state.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_with_their_id() {
        let id = new_id();
        assert!(well_formed(&id));
        let tokens = Tokens {
            id_token: "a.b.c".into(),
            access_token: Some("at".into()),
            refresh_token: None,
        };
        let sealed = seal(&id, &tokens);
        assert_eq!(open(&id, &sealed), Some(tokens));
        assert_eq!(open(&new_id(), &sealed), None);
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&id, &tampered), None);
        assert_ne!(store_key(&id), store_key(&new_id()));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}=", &id[..42])));
    }
}
