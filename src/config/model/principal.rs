//! A principal as the config and the stores give it: its record, the
//! claims it may not set, its secret as stored and the costs such a hash
//! may name, and the key its lockout budget is kept under.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::{ClientAuth, ClientProfile};

/// Claims portero sets itself on a standard issuer's tokens, or that
/// routes read as scopes and roles (`scp`, `role`) or as the token's use,
/// or userinfo reads as the login, or that would bind the token to a key
/// (`cnf`, which no route admits): a user's own `claims` (in the config,
/// a user store's row, an imported record) may not name them (a `scp`
/// claim would outlive the scope a client was granted).
pub const RESERVED_CLAIMS: [&str; 24] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "scp",
    "roles",
    "role",
    "permissions",
    "token_use",
    "username",
    "auth_time",
    "amr",
    "acr",
    "nonce",
    "sid",
    "azp",
    "at_hash",
    "typ",
    "cnf",
];

/// The first of `claims` a user may not set, if any.
pub fn reserved_claim(claims: &serde_json::Map<String, Value>) -> Option<&str> {
    claims
        .keys()
        .map(String::as_str)
        .find(|name| RESERVED_CLAIMS.contains(name))
}

/// The prefix of portero's fast hash: `$portero-hmac-sha256$<salt>$<mac>`.
pub const FAST_PREFIX: &str = "$portero-hmac-sha256$";

/// A stored secret, in any format portero can check. It writes only
/// argon2id and its fast hash; the others are what the services it
/// replaces kept over the years.
#[derive(Debug, Clone)]
pub enum SecretHash {
    /// A PHC string: argon2id (`$argon2id$v=19$m=...`, what portero
    /// writes), argon2i, argon2d, pbkdf2-sha256, pbkdf2-sha512, scrypt.
    Phc(String),
    /// bcrypt, `$2a$`, `$2b$` or `$2y$`.
    Bcrypt(String),
    /// PBKDF2 written by Django (`pbkdf2_sha256$...`, `pbkdf2_sha1$...`)
    /// or passlib (`$pbkdf2-sha256$29000$...`).
    Pbkdf2 {
        digest: Pbkdf2Digest,
        rounds: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Fast {
        salt: Vec<u8>,
        mac: Vec<u8>,
    },
}

impl SecretHash {
    /// The secret of a public client, which has none: a fast hash with a
    /// random salt and digest, so that no secret ever matches it.
    pub fn unusable() -> SecretHash {
        use rand::RngCore;
        let random = |n: usize| {
            let mut b = vec![0u8; n];
            rand::thread_rng().fill_bytes(&mut b);
            b
        };
        SecretHash::Fast {
            salt: random(16),
            mac: random(32),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pbkdf2Digest {
    Sha1,
    Sha256,
    Sha512,
}

/// The form of a login under which its lockout is counted, and two
/// principals of one issuer may not share: Unicode's compatibility caseless
/// form (NFKC, full case folding: `ß` and `ss` are one, so are `Σ`, `σ`
/// and `ς`), trimmed. A database's collation (MariaDB's default is case-
/// and trailing-space-insensitive) may select one row for many spellings;
/// they all count against one budget. The identity itself is the
/// principal's own login, never the spelling typed.
pub fn login_key(login: &str) -> String {
    use caseless::Caseless;
    use unicode_normalization::UnicodeNormalization;
    // Unicode 3.13, D146: NFKD(fold(NFKD(fold(NFD(x))))), composed at the end.
    let key: String = login
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkc()
        .collect();
    key.trim().to_string()
}

/// Bounds on the cost a stored hash may name (`[hash_limits]`): a hash
/// past them is refused by `portero check` and `portero import` and fails
/// its login without being computed, so one row cannot pin a core or
/// exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    pub pbkdf2_rounds: u32,
    pub bcrypt_cost: u32,
    /// Bytes an argon2 (`m`) or scrypt (128 · N · r) check may take.
    pub memory: u64,
    /// argon2's `t`.
    pub argon2_passes: u32,
    /// argon2's `p` and scrypt's `p`.
    pub parallelism: u32,
    /// scrypt's log2 N.
    pub scrypt_log_n: u8,
}

impl Default for HashLimits {
    fn default() -> HashLimits {
        HashLimits {
            pbkdf2_rounds: 10_000_000,
            bcrypt_cost: 16,
            memory: 256 << 20,
            argon2_passes: 16,
            parallelism: 16,
            scrypt_log_n: 20,
        }
    }
}

/// Someone who can obtain tokens, with what the dialects return about them.
#[derive(Debug, Clone)]
pub struct Principal {
    /// What identifies them at login: username, client id, or `business/proyecto`.
    pub login: String,
    pub secret: SecretHash,
    pub id: Value,
    pub username: Option<String>,
    pub nombre: Option<String>,
    pub role: Option<String>,
    pub business: Option<String>,
    pub proyecto: Option<String>,
    pub client_id: Option<String>,
    pub company: Option<String>,
    pub permissions: Vec<String>,
    pub active: bool,
    pub blocked: bool,
    /// Replaces `requests` of the rate limits keyed by identity for this
    /// principal's tokens.
    pub rate_limit: Option<u32>,
    /// The hash as a user store's row holds it, for a compare-and-swap
    /// rehash; `None` for the config's principals.
    pub stored_hash: Option<String>,
    /// As an OAuth 2.0 client, it may authenticate only this way.
    pub auth_method: Option<ClientAuth>,
    /// As an OAuth 2.0 client, it may introspect any token of the issuer,
    /// not only its own.
    pub introspect: bool,
    /// A standard issuer's user or client: its `roles` claim.
    pub roles: Vec<String>,
    /// A standard issuer's user: claims its tokens carry as written.
    pub claims: serde_json::Map<String, Value>,
    /// As an OAuth 2.0 client: public or not, redirect URIs, grants.
    pub client: ClientProfile,
}

impl Principal {
    /// A principal with only its login: a secret that never checks, no
    /// fields or claims; the rest is written over it
    /// (`..Principal::named(login)`).
    pub fn named(login: &str) -> Principal {
        Principal {
            login: login.to_string(),
            secret: SecretHash::unusable(),
            id: Value::Null,
            username: None,
            nombre: None,
            role: None,
            business: None,
            proyecto: None,
            client_id: None,
            company: None,
            permissions: Vec::new(),
            active: true,
            blocked: false,
            rate_limit: None,
            stored_hash: None,
            auth_method: None,
            introspect: false,
            roles: Vec::new(),
            claims: serde_json::Map::new(),
            client: ClientProfile::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Principals {
    by_login: HashMap<String, Arc<Principal>>,
    /// The same, by [`login_key`] (one principal a key: `portero check`
    /// refuses two).
    by_key: HashMap<String, Arc<Principal>>,
    /// What `credentials` makes of their hashes when first needed (their
    /// cost classes, counted and timed: what an unknown login is checked
    /// against, and what a refusal costs). Kept here, built there: the
    /// model names no runtime type.
    pub derived: Arc<std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>>,
}

impl Principals {
    pub fn new(list: Vec<Principal>) -> Principals {
        let list: Vec<Arc<Principal>> = list.into_iter().map(Arc::new).collect();
        Principals {
            by_login: list.iter().map(|p| (p.login.clone(), p.clone())).collect(),
            by_key: list
                .iter()
                .map(|p| (login_key(&p.login), p.clone()))
                .collect(),
            derived: Arc::default(),
        }
    }

    pub fn get(&self, login: &str) -> Option<&Arc<Principal>> {
        self.by_login.get(login)
    }

    /// The principal whose login is one with `login` under [`login_key`].
    pub fn get_by_key(&self, login: &str) -> Option<&Arc<Principal>> {
        self.by_key.get(&login_key(login))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Principal> {
        self.by_login.values().map(|p| &**p)
    }

    /// `login`'s principal, changed by `change` (in both its lookups).
    pub fn change(&mut self, login: &str, change: impl FnOnce(&mut Principal)) {
        let Some(old) = self.by_login.get(login) else {
            return;
        };
        let mut changed = Principal::clone(old);
        change(&mut changed);
        let changed = Arc::new(changed);
        self.by_key.insert(login_key(login), changed.clone());
        self.by_login.insert(login.to_string(), changed);
    }
}
