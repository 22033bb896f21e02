//! A principal's `secret_hash`, told by its format: portero's own (argon2id,
//! its fast keyed hash) and those the services it replaces kept (bcrypt,
//! PHC argon2i/argon2d/pbkdf2/scrypt, Django's and passlib's PBKDF2).
//! Parsed once, when the config is read; `credentials` checks secrets.

use argon2::password_hash::PasswordHash;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;

use super::super::model::{HashLimits, Pbkdf2Digest, SecretHash, FAST_PREFIX};

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
            // The id is not named: a plain secret that starts with `$` would be.
            return Err("a hash of a format not known (argon2, pbkdf2-sha256/-sha512, scrypt, bcrypt, Django)".to_string());
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
    let (salt, mac) = (decode(salt)?, decode(mac)?);
    // HMAC-SHA256: a 32-byte tag; `portero hash-secret` writes a 16-byte salt.
    if mac.len() != 32 || salt.is_empty() || salt.len() > 64 {
        return Err("malformed fast hash".to_string());
    }
    Ok(SecretHash::Fast { salt, mac })
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

/// Whether `hash` names a cost within `limits`; if not, why, naming the
/// format and the parameter, never the hash.
pub fn within_limits(hash: &SecretHash, limits: &HashLimits) -> Result<(), String> {
    match hash {
        SecretHash::Fast { .. } => Ok(()),
        SecretHash::Bcrypt(s) => bcrypt_within(s, limits),
        SecretHash::Pbkdf2 {
            digest,
            rounds,
            hash,
            ..
        } => pbkdf2_digest_within(*digest, *rounds, hash, limits),
        SecretHash::Phc(s) => phc_within(s, limits),
    }
}

/// Why a hash's parameter is over its limit.
fn over(format: &str, what: &str, value: u64, most: u64, key: &str) -> Result<(), String> {
    Err(format!(
        "{format} hash with {what} {value}, over the limit of {most} (hash_limits.{key})"
    ))
}

fn bcrypt_within(s: &str, limits: &HashLimits) -> Result<(), String> {
    let cost = s
        .parse::<bcrypt::HashParts>()
        .map(|p| p.get_cost())
        .map_err(|_| "malformed bcrypt hash".to_string())?;
    match cost <= limits.bcrypt_cost {
        true => Ok(()),
        false => over(
            "bcrypt",
            "cost",
            cost.into(),
            limits.bcrypt_cost.into(),
            "bcrypt_cost",
        ),
    }
}

/// Django's and passlib's PBKDF2, its digest's length given.
fn pbkdf2_digest_within(
    digest: Pbkdf2Digest,
    rounds: u32,
    hash: &[u8],
    limits: &HashLimits,
) -> Result<(), String> {
    // Each block of the derived key costs the rounds again (Keycloak
    // keeps 64 bytes: two blocks of SHA-256): the rounds bound the
    // work, blocks counted. No library writes more than 64 bytes.
    let block = match digest {
        Pbkdf2Digest::Sha1 => 20,
        Pbkdf2Digest::Sha256 => 32,
        Pbkdf2Digest::Sha512 => 64,
    };
    if hash.len() > 64 {
        return Err(format!(
            "pbkdf2 hash with a {}-byte digest, over 64 bytes",
            hash.len()
        ));
    }
    let blocks = hash.len().div_ceil(block) as u64;
    pbkdf2_within(u64::from(rounds).saturating_mul(blocks), limits, "pbkdf2")
}

/// A PHC string's parameters, read by name.
struct PhcParams<'a> {
    parsed: PasswordHash<'a>,
    id: &'a str,
}

impl PhcParams<'_> {
    /// The parameter `name`, or what the library takes when it is left out.
    fn get(&self, name: &str, default: u64) -> Result<u64, String> {
        let id = self.id;
        self.parsed
            .params
            .get_str(name)
            .map_or(Ok(default), |v| v.parse::<u64>())
            .map_err(|_| format!("{id} hash with a malformed {name}"))
    }
}

fn phc_within(s: &str, limits: &HashLimits) -> Result<(), String> {
    let parsed = PasswordHash::new(s).map_err(|_| "malformed PHC hash".to_string())?;
    let params = PhcParams {
        id: parsed.algorithm.as_str(),
        parsed,
    };
    match params.id {
        "pbkdf2-sha256" | "pbkdf2-sha512" => {
            let rounds = params.get("i", pbkdf2::Params::RECOMMENDED_ROUNDS as u64)?;
            pbkdf2_within(rounds, limits, params.id)
        }
        "scrypt" => scrypt_within(&params, limits),
        _ => argon2_within(&params, limits),
    }
}

fn scrypt_within(params: &PhcParams, limits: &HashLimits) -> Result<(), String> {
    let id = params.id;
    // What the library takes for a parameter left out.
    let ln = params.get("ln", scrypt::Params::RECOMMENDED_LOG_N.into())?;
    let r = params.get("r", scrypt::Params::RECOMMENDED_R.into())?;
    let p = params.get("p", scrypt::Params::RECOMMENDED_P.into())?;
    if ln > limits.scrypt_log_n.into() {
        return over(id, "ln", ln, limits.scrypt_log_n.into(), "scrypt_log_n");
    }
    lanes_within(id, p, limits)?;
    // scrypt fills 128 · N · r bytes once per lane, one lane
    // after another: the work is bounded like argon2's memory.
    let bytes = 128u64
        .saturating_mul(1 << ln)
        .saturating_mul(r)
        .saturating_mul(p);
    match bytes > limits.memory {
        true => over(
            id,
            "memory (bytes, all lanes)",
            bytes,
            limits.memory,
            "memory",
        ),
        false => Ok(()),
    }
}

/// argon2: m in KiB, t passes, p lanes.
fn argon2_within(params: &PhcParams, limits: &HashLimits) -> Result<(), String> {
    let id = params.id;
    let kib = params.get("m", argon2::Params::DEFAULT_M_COST.into())?;
    if kib.saturating_mul(1024) > limits.memory {
        return over(
            id,
            "memory (bytes)",
            kib.saturating_mul(1024),
            limits.memory,
            "memory",
        );
    }
    let t = params.get("t", argon2::Params::DEFAULT_T_COST.into())?;
    if t > limits.argon2_passes.into() {
        return over(id, "t", t, limits.argon2_passes.into(), "argon2_passes");
    }
    lanes_within(
        id,
        params.get("p", argon2::Params::DEFAULT_P_COST.into())?,
        limits,
    )
}

fn lanes_within(id: &str, p: u64, limits: &HashLimits) -> Result<(), String> {
    match p <= limits.parallelism.into() {
        true => Ok(()),
        false => over(id, "p", p, limits.parallelism.into(), "parallelism"),
    }
}

fn pbkdf2_within(rounds: u64, limits: &HashLimits, format: &str) -> Result<(), String> {
    match rounds <= limits.pbkdf2_rounds.into() {
        true => Ok(()),
        false => Err(format!(
            "{format} hash with {rounds} rounds, over the limit of {} (hash_limits.pbkdf2_rounds)",
            limits.pbkdf2_rounds
        )),
    }
}
