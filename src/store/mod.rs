//! Durable state, one small trait per domain:
//!
//! - [`Secrets`]: issuers' generated signing keys and the gateway's other
//!   secrets, each made once;
//! - [`RevocationLog`]: revocations, and the tokens derived from a token;
//! - [`RefreshTokens`], with the tokens minted from each;
//! - [`Lockout`]: failure counters and the credential checks in flight;
//! - [`ImportedPrincipals`]: the records `portero import` wrote;
//! - [`SharedRates`]: the buckets of cluster-wide rate limits;
//! - [`ApiKeyRecords`], and when each key was last used;
//! - [`SignOn`] and [`RegisteredClients`]: the standard issuer's codes,
//!   sign-on sessions and registered clients (`oauth`);
//! - [`Consents`]: what users allowed clients that described themselves;
//! - [`Factors`]: passkeys, one-time-code secrets and recovery codes;
//! - [`BrowserSessionRecords`]: the browser sessions of routes that sign
//!   people in, with the claims that keep two instances from doing one
//!   thing twice (`browser`);
//! - [`Upkeep`]: purging, following the other instances, and what an
//!   operator is told of the store (reachable, its master).
//!
//! [`Store`] is all of them, for what needs the whole store (the server's
//! start, the gateway's shared state, the admin API); a function that uses
//! one domain takes that domain's trait. Two backends implement every
//! domain, each in the file that holds the domain's records:
//!
//! - [`Embedded`] (redb): one instance, one file; every write is fsync'd
//!   before it is acknowledged.
//! - [`Redis`]: many instances share one truth. Revocations are also pushed
//!   to every instance's in-memory cache over a Redis channel.
//!
//! Validating a token touches no store: keys and revocations are served
//! from memory, so a store outage stops only what needs the store (token
//! endpoints, new revocations, sign-ins). A proxied request reaches the
//! store in two cases only, both of the route's own asking: a
//! cluster-wide rate limit takes from its shared bucket
//! ([`SharedRates`]; counted on this instance while the store is
//! unreachable), and a browser session this instance does not hold is
//! read from the store ([`BrowserSessionRecords`]; its use is noted now
//! and then, off the request).

mod browser;
mod consent;
mod embedded;
mod factors;
mod oauth;
mod redis;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::api_keys;
use crate::auth::revocation::{Revocation, Revocations};
use crate::config::{Config, StoreBackend};
use crate::metrics::StoreMetrics;

pub use browser::{BrowserSession, BrowserSessionRecords, SessionOwner};
pub use consent::{Consent, Consents};
pub use embedded::Embedded;
pub use factors::{Factors, StoredPasskey, TotpSecret, UserFactors};
pub use oauth::{CodeRecord, RegisteredClient, RegisteredClients, SignOn, SsoSession};
pub use redis::Redis;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Backend(String),
    #[error("store: corrupt record under {0}")]
    Corrupt(String),
    #[error("store: unreachable ({0})")]
    Unreachable(String),
}

/// A secret made by portero and kept under its name ([`Secrets`]): an
/// issuer's generated key (`kid` names it in tokens), or a secret of the
/// gateway's own (`kid` is then only a label).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSecret {
    pub kid: String,
    pub secret: Vec<u8>,
}

/// A refresh token, stored under the SHA-256 of the token (never the token).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefreshRecord {
    pub issuer: String,
    pub sub: String,
    /// The principal's login, to re-read its attributes on refresh.
    pub login: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Access and content tokens minted with it: (jti, exp). Revoking the
    /// refresh token revokes them.
    pub tokens: Vec<(String, i64)>,
    /// The OAuth 2.0 client it was issued to; `None` for the legacy
    /// dialect's refresh tokens.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Set once an OAuth 2.0 refresh token has been used: the hash of the
    /// one that replaced it. Presented again, it revokes its family.
    #[serde(default)]
    pub rotated_to: Option<String>,
    /// The scopes granted with an OAuth 2.0 refresh token, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// The resource (RFC 8707) its access tokens are for: their `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// How the user signed in (RFC 8176 `amr`), said again by the access
    /// tokens a refresh mints; empty where no one signed in at a page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The DPoP key (RFC 7638 thumbprint) a public client's refresh token
    /// is bound to (RFC 9449 §5): refreshed only with a proof of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// The client certificate (its SHA-256) a public client's refresh
    /// token is bound to (RFC 8705 §4): refreshed only over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
}

/// The answer to [`Lockout::reserve_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// A check may run; the first key's failures so far.
    Granted(u32),
    /// Checks in flight could still use up what is left of a budget.
    Busy,
    Locked,
}

/// One request taken from a rate bucket every instance shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedRate {
    pub admitted: bool,
    /// Requests the bucket still holds.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Until the next request fits (refused requests only).
    pub retry_after: Duration,
}

/// What [`ImportedPrincipals::put_principals`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upserted {
    /// Logins the issuer did not have.
    pub added: usize,
    /// Logins whose record was different.
    pub changed: usize,
}

/// The marker a replaced OAuth 2.0 refresh token leaves: its record, with
/// the hash of the token that replaced it and without the lineage it handed on.
pub fn replaced_marker(seen: &RefreshRecord, next_hash: &str) -> RefreshRecord {
    RefreshRecord {
        tokens: Vec::new(),
        rotated_to: Some(next_hash.to_string()),
        ..seen.clone()
    }
}

/// Unexpired tokens one refresh token may have minted: a client refreshing
/// in a loop is refused past it rather than growing the record.
pub const MAX_LINEAGE: usize = 1000;

/// Consecutive failures of one principal or client address.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Failures {
    pub count: u32,
    /// Unix seconds until which logins are refused; 0 = not locked.
    pub locked_until: i64,
    /// When the record may be dropped: one cool-down after the last failure.
    #[serde(default)]
    pub expires_at: i64,
}

/// Secrets kept under a name, made once and the same on every instance
/// after: issuers' generated signing keys, the API-key pepper, the keys
/// of the sign-in forms' CSRF tokens and of pending browser sign-ins.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The secret `name`: the stored one, or `fresh`, stored now.
    /// The first writer wins; everyone else adopts its secret.
    async fn secret_or_insert(
        &self,
        name: &str,
        fresh: StoredSecret,
    ) -> Result<StoredSecret, StoreError>;
    /// The secret `name` if the store holds one; makes none.
    async fn secret(&self, name: &str) -> Result<Option<StoredSecret>, StoreError>;
}

/// Revocations, and the tokens derived from a token that are revoked
/// with it.
#[async_trait]
pub trait RevocationLog: Send + Sync {
    /// Writes revocations durably (and, for a shared store, announces them to
    /// every instance) before returning. A `Jti` revocation revokes the
    /// tokens derived from it ([`RevocationLog::derive_token`]) too, and theirs.
    async fn add_revocations(&self, list: &[Revocation]) -> Result<(), StoreError>;
    /// Records `child` (jti, exp), a token exchanged for the token whose
    /// jti is `parent` (RFC 8693): revoking `parent`, on any instance,
    /// revokes `child` with it. `false` when `parent` is revoked already,
    /// and then `child` must not be handed out. (A revocation writes first
    /// and reads the derived tokens second; this writes first and reads
    /// the revocation second: one of the two always sees the other.)
    async fn derive_token(&self, parent: &str, child: &(String, i64)) -> Result<bool, StoreError>;
    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError>;
}

/// Refresh tokens, under the SHA-256 of each, with the tokens minted from
/// them.
#[async_trait]
pub trait RefreshTokens: Send + Sync {
    async fn put_refresh(&self, hash: &str, record: &RefreshRecord) -> Result<(), StoreError>;
    async fn get_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// Deletes a refresh token and returns it with every token minted from
    /// it (`tokens`), in one atomic step with [`RefreshTokens::extend_refresh`].
    async fn delete_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// Marks the OAuth 2.0 refresh token `hash` replaced by `next_hash`
    /// (stored by the caller first), in one atomic step, if its record is
    /// still `seen`: it keeps only a marker (`rotated_to`, no tokens: they
    /// moved on with `next_hash`), so a later use of it is a reuse. Of
    /// requests racing with one token exactly one gets `true`; `false` when
    /// it was replaced, revoked or expired meanwhile.
    async fn replace_refresh(
        &self,
        hash: &str,
        seen: &RefreshRecord,
        next_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Adds tokens minted from a refresh token to its lineage, atomically
    /// with its deletion: `false` when it is gone (revoked or expired) or
    /// already has [`MAX_LINEAGE`] unexpired tokens, and then the minted
    /// tokens must not be handed out. Expired entries are dropped on the way.
    async fn extend_refresh(
        &self,
        hash: &str,
        minted: &[(String, i64)],
        now: i64,
    ) -> Result<bool, StoreError>;
}

/// Lockout counters of principals and client addresses, and the credential
/// checks in flight against them.
#[async_trait]
pub trait Lockout: Send + Sync {
    /// Counts one more failure against each `(key, threshold)`, in one
    /// write: a key reaching its threshold is locked until `now + cooldown`,
    /// and every counter lapses `cooldown` after its last failure. True if
    /// a key is locked now.
    async fn record_failures(
        &self,
        limits: &[(&str, u32)],
        cooldown: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    async fn clear_failures(&self, key: &str) -> Result<(), StoreError>;
    /// Reserves one credential check against each `(key, threshold)` at
    /// once, atomically: `Locked` while a key is locked or has reached its
    /// threshold; `Busy` while its failures plus the checks in flight
    /// reach it, so a burst cannot outrun the lockout (the caller waits for
    /// those checks to end). Every reservation ends with
    /// [`Lockout::release_attempts`] of the same `id`; one an instance never
    /// releases lapses after `cooldown` seconds.
    async fn reserve_attempt(
        &self,
        limits: &[(&str, u32)],
        cooldown: i64,
        now: i64,
        id: &str,
    ) -> Result<Reservation, StoreError>;
    /// Ends reservation `id`; its failure, if any, is recorded first. A
    /// release of a reservation not held changes nothing.
    async fn release_attempts(&self, keys: &[&str], id: &str) -> Result<(), StoreError>;
}

/// Principals `portero import` wrote, by issuer and login.
#[async_trait]
pub trait ImportedPrincipals: Send + Sync {
    /// Writes principals `portero import` read for `issuer`, as
    /// (login, record) pairs, in one atomic step: each replaces the record
    /// its login had. Records are compared as written, so writing the same
    /// ones again changes nothing.
    async fn put_principals(
        &self,
        issuer: &str,
        records: &[(String, String)],
    ) -> Result<Upserted, StoreError>;
    /// The record `portero import` wrote for `login`.
    async fn principal(&self, issuer: &str, login: &str) -> Result<Option<String>, StoreError>;
}

/// Rate buckets every instance shares: a route's cluster-wide rate limit.
#[async_trait]
pub trait SharedRates: Send + Sync {
    /// Takes one request from the shared bucket `key` (GCRA: one request's
    /// room comes back every `emission`, and the bucket holds `capacity`),
    /// on the store's clock. `None` from a store no other instance shares,
    /// and from a shared one that cannot be reached now (the caller counts
    /// on its own then, without waiting for a timeout).
    async fn take_rate(
        &self,
        _key: &str,
        _emission: Duration,
        _capacity: f64,
    ) -> Result<Option<SharedRate>, StoreError> {
        Ok(None)
    }
}

/// API keys' records, and when each key was last used.
#[async_trait]
pub trait ApiKeyRecords: Send + Sync {
    /// Writes API keys' records (made, imported, rotated, or revoked into
    /// a tombstone), each only where its `Write` allows over what the store
    /// holds for its id, checked and written in one atomic step, and
    /// announces each one written to every instance; whether each was.
    async fn write_api_keys(
        &self,
        writes: &[(api_keys::Write, api_keys::Record)],
    ) -> Result<Vec<bool>, StoreError>;
    /// Every key's record, revoked ones (tombstones) too.
    async fn api_keys(&self) -> Result<Vec<api_keys::Record>, StoreError>;
    /// Notes when keys were last used (id, Unix seconds); a later time wins.
    async fn note_api_key_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError>;
    async fn api_key_uses(&self) -> Result<HashMap<String, i64>, StoreError>;
}

/// The store as a whole: what keeps it current and tidy, and what an
/// operator is told of it.
#[async_trait]
pub trait Upkeep: Send + Sync {
    /// Drops what has run out by `cutoff`: jti revocations of tokens that
    /// expired before it, lockout counters past their time, and (where the
    /// backend does not expire keys itself) issuer records, browser
    /// sessions and claims.
    async fn purge_expired(&self, cutoff: i64) -> Result<(), StoreError>;

    /// The Redis master in use (`host:port`); `None` for the embedded store.
    fn master(&self) -> Option<String> {
        None
    }

    /// False while a shared store cannot be reached: this instance then runs
    /// from its caches and may be missing revocations made elsewhere.
    fn reachable(&self) -> bool {
        true
    }

    /// Keeps `feeds` in step with revocations and API keys made on other
    /// instances, for as long as the process runs. A store no other
    /// instance shares has nothing to follow and returns at once.
    async fn follow(&self, _feeds: Feeds) {}
}

/// Every domain of the store, for what needs the whole of it (the server's
/// start, the live snapshot, the admin API). A function that uses one
/// domain takes that domain's trait.
pub trait Store:
    Secrets
    + RevocationLog
    + RefreshTokens
    + Lockout
    + ImportedPrincipals
    + SharedRates
    + ApiKeyRecords
    + SignOn
    + RegisteredClients
    + Consents
    + Factors
    + BrowserSessionRecords
    + Upkeep
{
}

impl<T> Store for T where
    T: Secrets
        + RevocationLog
        + RefreshTokens
        + Lockout
        + ImportedPrincipals
        + SharedRates
        + ApiKeyRecords
        + SignOn
        + RegisteredClients
        + Consents
        + Factors
        + BrowserSessionRecords
        + Upkeep
        + ?Sized
{
}

/// What the store's channel keeps current on every instance.
pub struct Feeds {
    pub revocations: Arc<Revocations>,
    pub api_keys: Arc<api_keys::Index>,
}

/// At most this many tokens derived from one revocation's tokens are
/// revoked with it (chains of exchanges included).
pub const MAX_DERIVED: usize = 10_000;

/// The record key of a revocation: one per token id, one per (issuer, subject).
fn revocation_key(r: &Revocation) -> String {
    match r {
        Revocation::Jti { jti, .. } => format!("jti\0{jti}"),
        Revocation::Subject { iss, sub, .. } => format!("sub\0{iss}\0{sub}"),
    }
}

/// The secret API keys are hashed under: made on first use, the same on
/// every instance after (kept beside issuers' generated signing keys).
pub async fn api_key_pepper(store: &dyn Secrets) -> Result<api_keys::Pepper, StoreError> {
    let kept = shared_secret(store, api_keys::PEPPER_NAME, "api-keys").await?;
    Ok(api_keys::Pepper::new(&kept))
}

/// A random secret every instance holds alike, kept as `name`: made on
/// first use, the same after.
pub async fn shared_secret(
    store: &dyn Secrets,
    name: &str,
    kid: &str,
) -> Result<Vec<u8>, StoreError> {
    use rand::RngCore;
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let fresh = StoredSecret {
        kid: kid.into(),
        secret,
    };
    Ok(store.secret_or_insert(name, fresh).await?.secret)
}

/// The API-key secret only if the store holds it already. A shared store
/// that lost it (a Redis restarted empty) gets it back from the running
/// instances; a new one made meanwhile would hide every key they hold.
pub async fn existing_api_key_pepper(
    store: &dyn Secrets,
) -> Result<Option<api_keys::Pepper>, StoreError> {
    let kept = store.secret(api_keys::PEPPER_NAME).await?;
    Ok(kept.map(|k| api_keys::Pepper::new(&k.secret)))
}

/// Opens the store the config names. A Redis store must be reachable at
/// start: an instance that cannot load the revocation set must not serve.
pub async fn open(config: &Config, metrics: StoreMetrics) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.store.backend {
        StoreBackend::Embedded => Arc::new(Embedded::open(&config.server.data_dir, metrics)?),
        StoreBackend::Redis(settings) => Arc::new(Redis::connect(settings, metrics).await?),
    })
}
