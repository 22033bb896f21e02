//! What one of portero's pages hands its next post and nobody may read or
//! change: a sign-in waiting for its second factor, a one-time code being
//! enrolled. Sealed (ChaCha20-Poly1305) under a key every instance shares
//! (kept in the store, made once), per issuer and purpose, so a ticket
//! made on one instance opens on another and is never one issuer's or
//! page's for another. A ticket says when it lapses; the caller checks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Endpoints, Error};
use crate::store::StoredSecret;

/// The store's name for the tickets' secret (a control character: no
/// issuer is named so).
const TICKETS_SECRET: &str = "\u{1}oauth2-tickets";

/// The longest ticket opened: a passkey ceremony's state is the longest
/// (a few kilobytes); a form field of any size is refused before it is decoded.
const MAX_TICKET: usize = super::form::MAX_ASSERTION;

async fn cipher(ctx: &Endpoints<'_>, purpose: &str) -> Result<ChaCha20Poly1305, Error> {
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let fresh = StoredSecret {
        kid: "oauth2-tickets".into(),
        secret,
    };
    let kept = ctx
        .issuer
        .store
        .secret_or_insert(TICKETS_SECRET, fresh)
        .await
        .map_err(|_| Error::unavailable())?;
    let mut key = Sha256::new();
    // Each part with its length first: no two (issuer, purpose) pairs read alike.
    for part in [
        kept.secret.as_slice(),
        ctx.issuer.config.name.as_bytes(),
        purpose.as_bytes(),
    ] {
        key.update((part.len() as u64).to_be_bytes());
        key.update(part);
    }
    Ok(ChaCha20Poly1305::new(&Key::from(<[u8; 32]>::from(
        key.finalize(),
    ))))
}

/// `value` sealed for `purpose`, as text for a form field.
pub async fn seal<T: Serialize>(
    ctx: &Endpoints<'_>,
    purpose: &str,
    value: &T,
) -> Result<String, Error> {
    let cipher = cipher(ctx, purpose).await?;
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let plain = serde_json::to_vec(value).expect("tickets serialize");
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &plain,
                aad: purpose.as_bytes(),
            },
        )
        .expect("ChaCha20-Poly1305 seals any ticket");
    Ok(URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat()))
}

/// The value sealed for `purpose` in `text`; `None` if it was not sealed
/// so (another issuer's, another page's, changed, or not a ticket).
pub async fn open<T: DeserializeOwned>(
    ctx: &Endpoints<'_>,
    purpose: &str,
    text: &str,
) -> Result<Option<T>, Error> {
    if text.len() > MAX_TICKET {
        return Ok(None);
    }
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(text) else {
        return Ok(None);
    };
    let Some((nonce, body)) = bytes.split_at_checked(12) else {
        return Ok(None);
    };
    let nonce = <[u8; 12]>::try_from(nonce).expect("12 bytes");
    let cipher = cipher(ctx, purpose).await?;
    let opened = cipher.decrypt(
        &Nonce::from(nonce),
        Payload {
            msg: body,
            aad: purpose.as_bytes(),
        },
    );
    Ok(opened
        .ok()
        .and_then(|plain| serde_json::from_slice(&plain).ok()))
}
