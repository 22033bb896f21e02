//! API keys: the long-lived credentials an `api_key` issuer's consumers
//! send instead of a token. A key is shown once, when the admin API makes
//! it; the store keeps only its keyed hash (`Pepper`), so a copy of the
//! store names no usable key. Every instance holds every key's record in
//! memory (`Index`, fed by the store's channel like the revocations), so a
//! request never waits on the store; each snapshot keeps the keys it has
//! seen by their bytes (`Check`), so a repeat key costs no hash at all.

mod check;
mod index;

use hmac::Mac;
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use check::Check;
pub use index::{Absent, Held, Index};

/// What every key portero makes starts with, so secret scanners can find
/// a leaked one (and a reader can tell it from a token).
pub const KEY_PREFIX: &str = "prt_";
/// What every key id starts with; ids are public (listed, logged).
pub const ID_PREFIX: &str = "ak_";
/// The name the hashing key is kept under in the store, beside issuers'
/// generated signing keys: no issuer name holds a control character.
pub const PEPPER_NAME: &str = "\u{1}api-keys";
/// Claims a key's record sets itself, or that a route reads as roles and
/// scopes (granted only through `roles` and `scopes`, checked as such):
/// `claims` may not name them.
pub const RESERVED_CLAIMS: [&str; 10] = [
    "iss", "sub", "jti", "iat", "exp", "nbf", "role", "roles", "scope", "scp",
];

/// A key as the store keeps it: who holds it and what it grants, never
/// the key itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    pub issuer: String,
    /// The key's holder: the `sub` routes see.
    pub consumer: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// More claims, as a token would carry them.
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Unix seconds.
    pub created: i64,
    pub expires: Option<i64>,
    /// The key's [`Pepper::digest`], hex.
    pub hash: String,
    /// The key a rotation replaced, accepted until its grace period ends.
    #[serde(default)]
    pub previous: Option<Previous>,
    /// Hashes of the keys rotated out before that: never accepted, kept so
    /// that no import brings one back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    /// Counts the record's changes: an announcement of an older version
    /// than the one held is stale, and a rotation writes only over the
    /// version it read.
    #[serde(default)]
    pub version: u64,
    /// A revoked key's record, kept so that no later write (a rotation
    /// racing the revocation, an import of the same file) brings it back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

impl Record {
    /// The record a revocation leaves: the id, issuer and hashes of the
    /// keys it had, nothing they granted.
    pub fn tombstone(&self) -> Record {
        Record {
            consumer: String::new(),
            roles: Vec::new(),
            scopes: Vec::new(),
            claims: Map::new(),
            version: self.version + 1,
            revoked: true,
            ..self.clone()
        }
    }

    /// The digests of every key it ever had: the current one, the one
    /// before (within its grace or not), and those retired earlier.
    pub fn digests(&self) -> impl Iterator<Item = Digest32> + '_ {
        let previous = self.previous.as_ref().map(|p| p.hash.as_str());
        std::iter::once(self.hash.as_str())
            .chain(previous)
            .chain(self.retired.iter().map(String::as_str))
            .filter_map(from_hex)
    }

    /// A live record with nothing granted, for tests.
    #[cfg(test)]
    pub fn sample(id: &str, issuer: &str, hash: String) -> Record {
        Record {
            id: id.into(),
            issuer: issuer.into(),
            consumer: "acme".into(),
            roles: Vec::new(),
            scopes: Vec::new(),
            claims: Map::new(),
            created: 1,
            expires: None,
            hash,
            previous: None,
            retired: Vec::new(),
            version: 0,
            revoked: false,
        }
    }

    /// Its next version with a new key (hash `hash`); the current one
    /// works until `until`, the one before that is retired.
    pub fn rotated(&self, hash: String, until: i64) -> Record {
        let mut retired = self.retired.clone();
        retired.extend(self.previous.as_ref().map(|p| p.hash.clone()));
        Record {
            hash,
            previous: Some(Previous {
                hash: self.hash.clone(),
                until,
            }),
            retired,
            version: self.version + 1,
            ..self.clone()
        }
    }
}

/// A conditional write of a key's record: the store writes it only if
/// what it holds for the id allows (`Write::allows`), atomically, so a
/// revocation is never undone by a write that read the record before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Made or imported: the id is new, or holds the same key, live, of
    /// the same issuer (an import changes a key's grant, never the key:
    /// a rotation since stands).
    Put,
    /// A new key over the version the rotation read, still live.
    Rotate { from_version: u64 },
    /// A tombstone over a live key.
    Revoke,
    /// A tombstone an instance holds, written back where the store lost
    /// it (a Redis restarted empty) or over a key revived since (an import
    /// into that empty store): over anything but a tombstone.
    Restore,
}

impl Write {
    /// Whether the store may write `new` over `current`.
    pub fn allows(self, current: Option<&Record>, new: &Record) -> bool {
        match (self, current) {
            (Write::Put, None) => true,
            (Write::Put, Some(c)) => !c.revoked && c.issuer == new.issuer && c.hash == new.hash,
            (Write::Rotate { from_version }, Some(c)) => !c.revoked && c.version == from_version,
            (Write::Revoke | Write::Restore, Some(c)) => !c.revoked,
            (Write::Restore, None) => true,
            (_, None) => false,
        }
    }

    /// The word the store's script reads.
    pub fn name(self) -> &'static str {
        match self {
            Write::Put => "put",
            Write::Rotate { .. } => "rotate",
            Write::Revoke => "revoke",
            Write::Restore => "restore",
        }
    }

    pub fn from_version(self) -> u64 {
        match self {
            Write::Rotate { from_version } => from_version,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Previous {
    pub hash: String,
    /// Unix seconds: refused from then on.
    pub until: i64,
}

/// What the store announces to every instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Made, rotated or imported: replaces the record of its id.
    Put(Box<Record>),
    /// Revoked: refused at once, for good.
    Deleted { id: String },
}

/// The keyed hash keys are stored and found by: HMAC-SHA-256, under a
/// secret kept in the store, of the key's SHA-256. Fast (a key is random,
/// not a password: nothing to slow down), and an imported key known only
/// by its SHA-256 hashes to the same value as the key itself.
#[derive(Clone)]
pub struct Pepper(hmac::Hmac<Sha256>);

pub type Digest32 = [u8; 32];

impl Pepper {
    pub fn new(secret: &[u8]) -> Pepper {
        Pepper(crate::auth::keys::hs256_mac(secret))
    }

    pub fn digest(&self, key: &str) -> Digest32 {
        self.of_sha256(&Sha256::digest(key.as_bytes()).into())
    }

    /// The digest of the key whose SHA-256 is `sha256`.
    pub fn of_sha256(&self, sha256: &Digest32) -> Digest32 {
        let mut mac = self.0.clone();
        mac.update(sha256);
        mac.finalize().into_bytes().into()
    }
}

/// A new key: 43 letters and digits (256 bits) after the prefix.
pub fn new_key() -> String {
    format!(
        "{KEY_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 43)
    )
}

/// A new key id: 16 letters and digits after the prefix.
pub fn new_id() -> String {
    format!(
        "{ID_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 16)
    )
}

pub fn to_hex(d: &Digest32) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Option<Digest32> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Why a key's grant (`consumer`, `roles`, `scopes`, `claims`) cannot be
/// kept: each one a header or a claim somewhere downstream.
pub fn check_grant(
    consumer: &str,
    roles: &[String],
    scopes: &[String],
    claims: &Map<String, Value>,
) -> Result<(), String> {
    // What the upstream reads from a header must be what portero checked:
    // a header value loses the spaces around it.
    let plain = |s: &str| {
        !s.is_empty() && s.len() <= 256 && s.trim() == s && !s.chars().any(char::is_control)
    };
    if !plain(consumer) {
        return Err(
            "consumer: 1 to 256 characters, no control characters or spaces around it".into(),
        );
    }
    let word = |s: &String| plain(s) && !s.chars().any(|c| c.is_whitespace() || c == ',');
    if !roles.iter().all(word) {
        return Err("roles: each a name without spaces, commas or control characters".into());
    }
    if !scopes.iter().all(word) {
        return Err("scopes: each a name without spaces, commas or control characters".into());
    }
    if claims
        .iter()
        .any(|(k, v)| k.chars().any(char::is_control) || holds_control(v))
    {
        return Err("claims: a value holds a control character".into());
    }
    if let Some(name) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(format!(
            "claims: {name:?} is set by the key itself (consumer, roles, scopes, expires)"
        ));
    }
    // A key is a bearer credential: a binding portero checks no proof of
    // would only make the key refused (and mislead an upstream reading it).
    if claims.contains_key("cnf") {
        return Err("claims: \"cnf\" binds a credential to a key portero does not check".into());
    }
    if Value::Object(claims.clone()).to_string().len() > 8 * 1024 {
        return Err("claims: more than 8 KiB".into());
    }
    Ok(())
}

/// Whether a claim value, at any depth, holds a control character: it
/// could reach no header intact.
fn holds_control(v: &Value) -> bool {
    match v {
        Value::String(s) => s.chars().any(char::is_control),
        Value::Array(list) => list.iter().any(holds_control),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.chars().any(char::is_control) || holds_control(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_recognisable() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 43);
        assert!(a[KEY_PREFIX.len()..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn an_imported_sha256_hashes_as_its_key_does() {
        let pepper = Pepper::new(b"secret");
        let key = "legacy-key-123";
        let sha: Digest32 = Sha256::digest(key.as_bytes()).into();
        assert_eq!(pepper.of_sha256(&sha), pepper.digest(key));
        assert_ne!(Pepper::new(b"other").digest(key), pepper.digest(key));
        assert_eq!(from_hex(&to_hex(&sha)), Some(sha));
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn grants_that_would_reach_a_header_badly_are_refused() {
        let none = Map::new();
        assert!(check_grant("acme", &[], &[], &none).is_ok());
        assert!(check_grant("", &[], &[], &none).is_err());
        assert!(check_grant("a\nb", &[], &[], &none).is_err());
        assert!(check_grant("acme", &["a b".into()], &[], &none).is_err());
        assert!(check_grant("acme", &[], &["x,y".into()], &none).is_err());
        assert!(check_grant(" root", &[], &[], &none).is_err());
        assert!(check_grant("acme", &["adm\u{a0}in".into()], &[], &none).is_err());
        for name in ["sub", "role", "scp"] {
            let mut reserved = Map::new();
            reserved.insert(name.into(), Value::from("admin"));
            assert!(check_grant("acme", &[], &[], &reserved).is_err(), "{name}");
        }
        let mut bound = Map::new();
        bound.insert("cnf".into(), serde_json::json!({"jkt": "x"}));
        assert!(check_grant("acme", &[], &[], &bound).is_err());
        let mut crlf = Map::new();
        crlf.insert(
            "tenant".into(),
            serde_json::json!({"a": ["t1\r\nX-Evil: 1"]}),
        );
        assert!(check_grant("acme", &[], &[], &crlf).is_err());
    }

    fn record(version: u64, issuer: &str, revoked: bool) -> Record {
        Record {
            version,
            revoked,
            ..Record::sample("ak_1", issuer, "00".repeat(32))
        }
    }

    #[test]
    fn a_revoked_record_takes_no_later_write() {
        let live = record(3, "partners", false);
        let dead = live.tombstone();
        let new = record(4, "partners", false);
        assert!(Write::Put.allows(None, &new));
        assert!(Write::Put.allows(Some(&live), &new));
        assert!(!Write::Put.allows(Some(&record(3, "internal", false)), &new));
        let rotated = live.rotated("33".repeat(32), 100);
        assert!(
            !Write::Put.allows(Some(&rotated), &new),
            "an import over a rotation"
        );
        assert_eq!(rotated.digests().count(), 2);
        assert_eq!(rotated.rotated("44".repeat(32), 200).digests().count(), 3);
        assert!(!Write::Put.allows(Some(&dead), &new));
        assert!(Write::Rotate { from_version: 3 }.allows(Some(&live), &new));
        assert!(!Write::Rotate { from_version: 2 }.allows(Some(&live), &new));
        assert!(!Write::Rotate { from_version: 4 }.allows(Some(&dead), &new));
        assert!(!Write::Rotate { from_version: 3 }.allows(None, &new));
        assert!(Write::Revoke.allows(Some(&live), &dead));
        assert!(!Write::Revoke.allows(Some(&dead), &dead));
        assert!(!Write::Revoke.allows(None, &dead));
    }
}
