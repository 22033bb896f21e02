//! A principal's `secret_hash`, told by its format: portero's own (argon2id,
//! its fast keyed hash) and those the services it replaces kept (bcrypt,
//! PHC argon2i/argon2d/pbkdf2/scrypt, Django's and passlib's PBKDF2).
//! Parsed once, when the config is read; `credentials` checks secrets.

use argon2::password_hash::PasswordHash;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;

use super::super::model::{Pbkdf2Digest, SecretHash, FAST_PREFIX};

/// The PHC algorithms portero checks (RustCrypto's `password-hash` family).
const PHC: [&str; 6] = [
    "argon2id",
    "argon2i",
    "argon2d",
    "pbkdf2-sha256",
    "pbkdf2-sha512",
    "scrypt",
];

/// The format of `s`, or why it is none portero knows. The message names
/// the format, never the hash.
pub fn secret_hash(s: &str) -> Result<SecretHash, String> {
    if let Some(rest) = s.strip_prefix(FAST_PREFIX) {
        return fast(rest);
    }
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p)) {
        return s
            .parse::<bcrypt::HashParts>()
            .map(|_| SecretHash::Bcrypt(s.to_string()))
            .map_err(|_| "malformed bcrypt hash".to_string());
    }
    if let Some((digest, rest)) = django_prefix(s) {
        return django(digest, rest);
    }
    if let Some((digest, rest)) = passlib_prefix(s) {
        return passlib(digest, rest);
    }
    if let Some(id) = s.strip_prefix('$').and_then(|rest| rest.split('$').next()) {
        if !PHC.contains(&id) {
            return Err(format!(
                "{id:?} hashes are not known (argon2, pbkdf2-sha256/-sha512, scrypt, bcrypt, Django)"
            ));
        }
        let parsed = PasswordHash::new(s).map_err(|_| format!("malformed {id} hash"))?;
        if parsed.hash.is_none() {
            return Err(format!("{id} string without a hash"));
        }
        return Ok(SecretHash::Phc(s.to_string()));
    }
    Err(
        "not a known hash format (argon2id, bcrypt, pbkdf2, scrypt, Django, \
         portero hash-secret); plain text is refused"
            .to_string(),
    )
}

fn fast(rest: &str) -> Result<SecretHash, String> {
    let (salt, mac) = rest.split_once('$').ok_or("malformed fast hash")?;
    let decode = |x: &str| {
        URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| "malformed fast hash".to_string())
    };
    Ok(SecretHash::Fast {
        salt: decode(salt)?,
        mac: decode(mac)?,
    })
}

/// Django: `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`.
fn django_prefix(s: &str) -> Option<(Pbkdf2Digest, &str)> {
    let digest = |d| Some((d, s.split_once('$')?.1));
    match s.split_once('$')?.0 {
        "pbkdf2_sha256" => digest(Pbkdf2Digest::Sha256),
        "pbkdf2_sha1" => digest(Pbkdf2Digest::Sha1),
        _ => None,
    }
}

fn django(digest: Pbkdf2Digest, rest: &str) -> Result<SecretHash, String> {
    let malformed = || "malformed Django pbkdf2 hash".to_string();
    let mut parts = rest.splitn(3, '$');
    let (Some(rounds), Some(salt), Some(hash)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    pbkdf2(
        digest,
        rounds,
        salt.as_bytes().to_vec(),
        STANDARD.decode(hash).map_err(|_| malformed())?,
    )
    .ok_or_else(malformed)
}

/// passlib: `$pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64 hash>` (and
/// `$pbkdf2$` for SHA-1), told from the PHC form by its bare round count.
fn passlib_prefix(s: &str) -> Option<(Pbkdf2Digest, &str)> {
    let rest = s.strip_prefix('$')?;
    let (id, rest) = rest.split_once('$')?;
    let digest = match id {
        "pbkdf2" => Pbkdf2Digest::Sha1,
        "pbkdf2-sha256" => Pbkdf2Digest::Sha256,
        "pbkdf2-sha512" => Pbkdf2Digest::Sha512,
        _ => return None,
    };
    let rounds = rest.split('$').next()?;
    (!rounds.is_empty() && rounds.bytes().all(|b| b.is_ascii_digit())).then_some((digest, rest))
}

fn passlib(digest: Pbkdf2Digest, rest: &str) -> Result<SecretHash, String> {
    let malformed = || "malformed passlib pbkdf2 hash".to_string();
    // passlib's "adapted base64": `.` where base64 has `+`, no padding.
    let ab64 = |x: &str| {
        STANDARD_NO_PAD
            .decode(x.replace('.', "+"))
            .map_err(|_| malformed())
    };
    let mut parts = rest.split('$');
    let (Some(rounds), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    pbkdf2(digest, rounds, ab64(salt)?, ab64(hash)?).ok_or_else(malformed)
}

fn pbkdf2(digest: Pbkdf2Digest, rounds: &str, salt: Vec<u8>, hash: Vec<u8>) -> Option<SecretHash> {
    let rounds = rounds.parse::<u32>().ok().filter(|&r| r > 0)?;
    (!hash.is_empty()).then_some(SecretHash::Pbkdf2 {
        digest,
        rounds,
        salt,
        hash,
    })
}
