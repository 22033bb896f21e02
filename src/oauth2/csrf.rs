//! The forms portero's pages post (the sign-in form, the logout
//! confirmation) carry a token: an HMAC, under a secret every instance
//! shares, of a value bound to the browser and of the form's own fields,
//! each length-prefixed. A browser's post must also come from portero's
//! own origin.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Endpoints, Error, Request};
use crate::store::StoredSecret;

/// The store's name for the forms' secret (a control character: no
/// issuer is named so).
const FORMS_SECRET: &str = "\u{1}oauth2-forms";

/// A browser says where a form came from (`Origin`); one from another
/// origin is a cross-site post. A request without it is a client that is
/// not a browser, which the CSRF cookie still binds.
pub fn same_origin(ctx: &Endpoints<'_>, req: &Request<'_>) -> bool {
    let Some(origin) = req.origin else {
        return true;
    };
    let ours = url::Url::parse(&ctx.settings.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    origin == ours.as_bytes()
}

pub fn same(sent: Option<&str>, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

/// HMAC-SHA-256 of the form's binding cookie and the request's fields.
pub async fn token(
    ctx: &Endpoints<'_>,
    binding: &str,
    params: &[(String, String)],
) -> Result<String, Error> {
    let mut secret = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    let fresh = StoredSecret {
        kid: "oauth2-forms".into(),
        secret,
    };
    let kept = ctx
        .issuer
        .store
        .secret_or_insert(FORMS_SECRET, fresh)
        .await
        .map_err(|_| Error::unavailable())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&kept.secret).expect("any key length");
    // Each part with its length first: no two lists of fields read alike.
    let mut part = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    part(ctx.issuer.config.name.as_bytes());
    part(binding.as_bytes());
    for (name, value) in params {
        part(name.as_bytes());
        part(value.as_bytes());
    }
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// The token of the logout confirmation form for session `sid`.
pub async fn logout_token(ctx: &Endpoints<'_>, sid: &str) -> Result<String, Error> {
    token(ctx, sid, &[("logout".to_string(), sid.to_string())]).await
}

pub async fn logout_token_matches(ctx: &Endpoints<'_>, sid: &str, sent: &str) -> bool {
    logout_token(ctx, sid)
        .await
        .is_ok_and(|t| same(Some(sent), &t))
}
