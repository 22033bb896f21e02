//! The single sign-on session: once a user has signed in, a cookie names
//! a record in the store (so every instance sees it), and the next client
//! asking for the same user needs no typing. The cookie holds the
//! session's id and a 256-bit secret; the store holds the secret's hash.
//! Every sign-in makes a new session (no fixation), and logging out ends
//! it everywhere. On https the cookie is `__Host-` (Secure, Path=/, no
//! Domain: no sibling host can set or read it).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::mint::live_user;
use super::{Endpoints, Error, Request};
use crate::config::{Principal, SecretHash};
use crate::store::SsoSession;
use crate::tokens::random_id;

/// The cookie's name for `ctx`'s issuer.
pub fn cookie_name(ctx: &Endpoints<'_>, base: &str) -> String {
    let name = issuer_token(&ctx.issuer.config.name);
    match secure(ctx) {
        true => format!("__Host-{base}-{name}"),
        false => format!("{base}-{name}"),
    }
}

/// An issuer's name as a cookie name's token, so that two issuers never
/// share a cookie even as the most lenient upstream reads names (letters
/// and digits only, case aside: `header_name::loosely_same_cookie`): a
/// name of lower-case letters and digits not beginning with `x` as it is,
/// any other as `x` and its bytes in lower-case hex (`a-b` is `x612d62`).
fn issuer_token(issuer: &str) -> String {
    let plain = !issuer.starts_with('x')
        && !issuer.is_empty()
        && issuer
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if plain {
        return issuer.to_string();
    }
    issuer.bytes().fold(String::from("x"), |mut token, b| {
        token += &format!("{b:02x}");
        token
    })
}

/// The issuer is reached over https: cookies are Secure and `__Host-`.
fn secure(ctx: &Endpoints<'_>) -> bool {
    ctx.settings.public_url.starts_with("https://")
}

/// A `Set-Cookie` value for `name`: HttpOnly, SameSite=Lax (the client's
/// redirect to the authorization endpoint is a top-level GET, which
/// carries it; a cross-site POST or frame does not).
pub fn set_cookie(ctx: &Endpoints<'_>, name: &str, value: &str, max_age: i64) -> String {
    let secure = if secure(ctx) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// The value of the cookie `name`, from any `Cookie` header, read as a
/// route's cookie token is; `None` when it is absent or sent twice in any
/// spelling (a cookie tossed in by a sibling host).
pub fn cookie<'a>(req: &Request<'a>, name: &str) -> Option<&'a str> {
    let values = req.cookies.iter().copied();
    let value = crate::header_name::one_cookie(values, name)
        .ok()
        .flatten()?;
    std::str::from_utf8(value).ok()
}

fn hex_sha256(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session the request's cookie names, if it is this issuer's and
/// live, the cookie's secret is its own, and its user may still sign in:
/// still there, active and not blocked, with the credential they signed
/// in with, and not revoked (by subject) since.
pub async fn current(ctx: &Endpoints<'_>, req: &Request<'_>) -> Result<Option<SsoSession>, Error> {
    let Some(value) = cookie(req, &cookie_name(ctx, "portero-sso")) else {
        return Ok(None);
    };
    let Some((sid, secret)) = value.split_once('.') else {
        return Ok(None);
    };
    if sid.len() > 64 || secret.len() > 64 {
        return Ok(None);
    }
    let found = ctx
        .issuer
        .store
        .get_sso(sid)
        .await
        .map_err(|_| Error::unavailable())?;
    let Some(session) = found.filter(|s| {
        s.issuer == ctx.issuer.config.name
            && s.expires_at > req.now
            && bool::from(
                s.secret_hash
                    .as_bytes()
                    .ct_eq(hex_sha256(secret).as_bytes()),
            )
    }) else {
        return Ok(None);
    };
    let revoked = ctx.issuer.revocations.is_revoked(
        &ctx.issuer.config.iss,
        Some(&session.sub),
        None,
        Some(session.auth_time),
    );
    let user = live_user(ctx, &session.login).await?;
    let same_user = user.is_some_and(|u| credential(&u.secret) == session.credential);
    Ok((same_user && !revoked).then_some(session))
}

/// What a session remembers of the user's credential: a digest of the
/// stored hash's own text (never the hash itself), so a new password, even
/// of the same format and cost, ends the session.
pub(super) fn credential(secret: &SecretHash) -> String {
    hex_sha256(&secret.text())
}

/// A new session for `user`, who has just signed in by `amr` (RFC 8176),
/// with the `Set-Cookie` that carries it.
pub async fn begin(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    user: &Principal,
    sub: &str,
    amr: Vec<String>,
) -> Result<(SsoSession, String), Error> {
    let ttl = ctx.settings.session_ttl.as_secs() as i64;
    let (sid, secret) = (random_id(16), random_id(32));
    let session = SsoSession {
        issuer: ctx.issuer.config.name.clone(),
        login: user.login.clone(),
        sub: sub.to_string(),
        sid: sid.clone(),
        secret_hash: hex_sha256(&secret),
        credential: credential(&user.secret),
        auth_time: req.now,
        amr,
        expires_at: req.now + ttl,
        families: Vec::new(),
    };
    ctx.issuer
        .store
        .put_sso(&session)
        .await
        .map_err(|_| Error::unavailable())?;
    let name = cookie_name(ctx, "portero-sso");
    Ok((
        session,
        set_cookie(ctx, &name, &format!("{sid}.{secret}"), ttl),
    ))
}

/// The `Set-Cookie` that removes the session's cookie.
pub fn forget(ctx: &Endpoints<'_>) -> String {
    set_cookie(ctx, &cookie_name(ctx, "portero-sso"), "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_the_stored_hashs_text_never_its_debug_form() {
        // Two hashes of each format that differ only in salt or digest, as
        // a changed password leaves them: a digest of a redacted `Debug`
        // would be one for all.
        let written = [
            crate::credentials::hash_password("old"),
            crate::credentials::hash_password("new"),
            bcrypt::hash("old", 4).unwrap(),
            bcrypt::hash("new", 4).unwrap(),
            crate::credentials::hash_fast("old"),
            crate::credentials::hash_fast("new"),
            "pbkdf2_sha256$1000$salt$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=".to_string(),
            "pbkdf2_sha256$1000$salt$SEFTSGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=".to_string(),
        ];
        let digests: Vec<String> = written
            .iter()
            .map(|w| {
                let hash = crate::config::secret_hash(w).unwrap();
                let digest = credential(&hash);
                assert_eq!(digest, hex_sha256(&hash.text()), "{w}");
                assert_ne!(digest, hex_sha256(&format!("{hash:?}")), "{w}");
                digest
            })
            .collect();
        for (i, a) in digests.iter().enumerate() {
            assert!(!digests[i + 1..].contains(a), "{}", written[i]);
        }
        // Read again (another instance, a restart), a hash has its digest.
        let again = crate::config::secret_hash(&written[0]).unwrap();
        assert_eq!(credential(&again), digests[0]);
    }

    #[test]
    fn two_issuers_never_share_a_cookie() {
        assert_eq!(issuer_token("app"), "app");
        assert_eq!(issuer_token("a-b"), "x612d62");
        assert_eq!(issuer_token("é"), "xc3a9");
        // Read as upstreams may (letters and digits, any case), no two
        // issuers' cookies are one.
        let names = [
            "ab", "a-b", "a_b", "a.b", "AB", "Ab", "x612d62", "x6162", "é",
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let (ta, tb) = (issuer_token(a), issuer_token(b));
                assert!(
                    !crate::header_name::loosely_same_cookie(ta.as_bytes(), &tb),
                    "{a} and {b}: {ta} and {tb}"
                );
            }
        }
    }
}
