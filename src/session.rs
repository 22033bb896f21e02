//! Browser sessions of the routes that sign people in (`login`): portero
//! as an OpenID Connect relying party. A browser without a session is sent
//! to its provider (`flow`: code with PKCE, `state` and `nonce` kept in a
//! signed cookie, `pending`); the callback checks the ID token (`tokens`)
//! and makes a session: a record in the store under the SHA-256 of a
//! random id, the provider's tokens sealed under that id (`seal`), and a
//! cookie holding only the id. Requests find it here, in memory; an ended
//! session is a revocation (`session:<hash>`), pushed to every instance as
//! any revocation is. Logouts, the back-channel's among them, are `logout`;
//! keeping the provider's access token fresh is `refresh`.

pub mod flow;
pub mod logout;
pub mod pending;
pub mod provider;
pub mod refresh;
pub mod seal;
pub mod tokens;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::auth::revocation::{Revocation, Revocations};
use crate::auth::validate::Verified;
use crate::claims::Claims;
use crate::store::{BrowserSession, Store, StoreError, StoredSecret};

pub use seal::Tokens;

/// The store's name for the pending sign-ins' secret (a control character:
/// no issuer is named so).
const PENDING_SECRET: &str = "\u{1}session-cookies";
/// How many sessions one instance holds in memory; the rest are read
/// from the store when they come back.
const CACHED: usize = 100_000;

/// One session as this instance holds it.
pub struct Entry {
    id: Box<str>,
    /// The store's key: SHA-256 of the id.
    pub key: String,
    pub provider: String,
    /// Its identity, as the routes read a token's.
    pub verified: Arc<Verified>,
    pub expires_at: i64,
    idle_secs: i64,
    last_seen: AtomicI64,
    /// The `last_seen` the store holds.
    stored_seen: AtomicI64,
    tokens: Mutex<Arc<Tokens>>,
    access_expires_at: AtomicI64,
    /// A refresh of the provider's tokens is under way here.
    pub refreshing: AtomicBool,
}

impl Entry {
    /// Whether the session is still on at `now`: before its absolute end
    /// and within its idle time.
    fn live(&self, now: i64) -> bool {
        now < self.expires_at
            && now
                < self
                    .last_seen
                    .load(Ordering::Relaxed)
                    .saturating_add(self.idle_secs)
    }

    pub fn tokens(&self) -> Arc<Tokens> {
        self.tokens.lock().expect("not poisoned").clone()
    }

    pub fn access_expires_at(&self) -> i64 {
        self.access_expires_at.load(Ordering::Relaxed)
    }
}

/// A new session's identity and tokens, as the callback found them.
pub struct NewSession<'a> {
    pub provider: &'a str,
    pub provider_index: usize,
    pub sub: String,
    pub sid: Option<String>,
    pub claims: serde_json::Map<String, serde_json::Value>,
    pub tokens: Tokens,
    pub access_expires_at: i64,
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

/// Every session this instance has seen lately, and the store behind them.
pub struct BrowserSessions {
    cache: quick_cache::sync::Cache<u64, Arc<Entry>>,
    /// Randomly seeded per process; a hit is confirmed against the id.
    hasher: foldhash::fast::RandomState,
    pub store: Arc<dyn Store>,
    /// Where an ended session is revoked on this instance at once.
    revocations: Arc<Revocations>,
    pending_secret: tokio::sync::OnceCell<Vec<u8>>,
}

impl BrowserSessions {
    pub fn new(store: Arc<dyn Store>, revocations: Arc<Revocations>) -> BrowserSessions {
        BrowserSessions {
            revocations,
            cache: quick_cache::sync::Cache::new(CACHED),
            hasher: Default::default(),
            store,
            pending_secret: tokio::sync::OnceCell::new(),
        }
    }

    /// The session of cookie `id` if this instance holds it and it is on
    /// at `now` (its use noted); `None` sends the caller to the store.
    #[inline]
    pub fn cached(&self, id: &str, now: i64) -> Option<Arc<Entry>> {
        let hit = self.cache.get(&self.hasher.hash_one(id))?;
        // Plain equality, as the token cache's: to reach it a guess must
        // first share the id's 64-bit hash under a seed made per process.
        if *hit.id != *id || !hit.live(now) {
            return None;
        }
        if hit.last_seen.load(Ordering::Relaxed) != now {
            hit.last_seen.store(now, Ordering::Relaxed);
        }
        Some(hit)
    }

    /// The session of cookie `id` from the store, held here from now on;
    /// `None` when it never was, has ended, or is not sealed under `id`.
    pub async fn load(
        &self,
        id: &str,
        (provider, provider_index): (&str, usize),
        now: i64,
    ) -> Result<Option<Arc<Entry>>, StoreError> {
        if !seal::well_formed(id) {
            return Ok(None);
        }
        let key = seal::store_key(id);
        let Some(record) = self.store.get_browser_session(&key).await? else {
            return Ok(None);
        };
        // Another provider's session signs nobody in here, and is not held
        // under this provider's index.
        if record.provider != provider {
            return Ok(None);
        }
        let Some(tokens) = seal::open(id, &record.sealed) else {
            return Ok(None);
        };
        let Some(entry) = entry_of(id, key, &record, tokens, provider_index) else {
            return Ok(None);
        };
        // The store keeps only sessions that are still on: this is a use.
        if record.ends_at() <= now {
            return Ok(None);
        }
        entry.last_seen.store(now, Ordering::Relaxed);
        let entry = Arc::new(entry);
        self.cache.insert(self.hasher.hash_one(id), entry.clone());
        Ok(Some(entry))
    }

    /// Makes a session: its record stored, then its id for the cookie.
    pub async fn create(&self, new: NewSession<'_>, now: i64) -> Result<String, StoreError> {
        let id = seal::new_id();
        let key = seal::store_key(&id);
        let mut claims = new.claims;
        // The session is revoked by its own id, never by the ID token's.
        for name in ["jti", "nonce", "at_hash", "c_hash"] {
            claims.remove(name);
        }
        let record = BrowserSession {
            provider: new.provider.to_string(),
            sub: new.sub,
            sid: new.sid,
            claims: serde_json::Value::Object(claims).to_string(),
            sealed: seal::seal(&id, &new.tokens),
            access_expires_at: new.access_expires_at,
            created_at: now,
            last_seen: now,
            idle_secs: new.idle_secs,
            expires_at: now.saturating_add(new.absolute_secs),
        };
        self.store.put_browser_session(&key, &record).await?;
        if let Some(entry) = entry_of(&id, key, &record, new.tokens, new.provider_index) {
            self.cache
                .insert(self.hasher.hash_one(&id), Arc::new(entry));
        }
        Ok(id)
    }

    /// Ends the session stored under `key`, on every instance: its record
    /// goes, and its revocation is announced. The session as it was.
    pub async fn end(&self, key: &str) -> Result<Option<BrowserSession>, StoreError> {
        let ended = self.store.end_browser_session(key).await?;
        // A session the store no longer holds has run out everywhere: each
        // instance's copy lapses at the same times.
        let Some(session) = &ended else {
            return Ok(None);
        };
        let revocation = Revocation::Jti {
            jti: seal::revocation_id(key),
            expires_at: Some(session.expires_at),
        };
        self.store
            .add_revocations(std::slice::from_ref(&revocation))
            .await?;
        self.revocations.apply(&revocation);
        Ok(ended)
    }

    /// Ends every session of `provider` that `owner` names; how many.
    pub async fn end_all(
        &self,
        provider: &str,
        owner: &crate::store::SessionOwner,
    ) -> Result<usize, StoreError> {
        let keys = self.store.browser_sessions_of(provider, owner).await?;
        for key in &keys {
            self.end(key).await?;
        }
        Ok(keys.len())
    }

    /// Notes the session's use in the store once a tenth of its idle time
    /// (at least a minute) has passed since the store last heard of it.
    pub fn needs_touch(&self, entry: &Entry, now: i64) -> bool {
        let stored = entry.stored_seen.load(Ordering::Relaxed);
        let every = (entry.idle_secs / 10).max(60);
        now - stored >= every
            && entry
                .stored_seen
                .compare_exchange(stored, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// New provider tokens for a session: sealed into its record, and held here.
    pub async fn replace_tokens(
        &self,
        entry: &Entry,
        tokens: Tokens,
        access_expires_at: i64,
    ) -> Result<bool, StoreError> {
        let Some(mut record) = self.store.get_browser_session(&entry.key).await? else {
            return Ok(false);
        };
        record.sealed = seal::seal(&entry.id, &tokens);
        record.access_expires_at = access_expires_at;
        self.store.put_browser_session(&entry.key, &record).await?;
        self.adopt(entry, tokens, access_expires_at);
        Ok(true)
    }

    /// Tokens another instance refreshed, read from the store.
    pub async fn reread_tokens(&self, entry: &Entry) -> Result<bool, StoreError> {
        let Some(record) = self.store.get_browser_session(&entry.key).await? else {
            return Ok(false);
        };
        let Some(tokens) = seal::open(&entry.id, &record.sealed) else {
            return Ok(false);
        };
        self.adopt(entry, tokens, record.access_expires_at);
        Ok(true)
    }

    fn adopt(&self, entry: &Entry, tokens: Tokens, access_expires_at: i64) {
        *entry.tokens.lock().expect("not poisoned") = Arc::new(tokens);
        entry
            .access_expires_at
            .store(access_expires_at, Ordering::Relaxed);
    }

    /// The secret pending sign-ins' cookies are signed with: the same on
    /// every instance sharing the store.
    pub async fn pending_secret(&self) -> Result<&[u8], StoreError> {
        let secret = self
            .pending_secret
            .get_or_try_init(|| async {
                let mut secret = vec![0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
                let fresh = StoredSecret {
                    kid: "session-cookies".into(),
                    secret,
                };
                self.store
                    .secret_or_insert(PENDING_SECRET, fresh)
                    .await
                    .map(|k| k.secret)
            })
            .await?;
        Ok(secret)
    }
}

/// A stored session as this instance holds it; `None` for a record whose
/// claims are not an object a route could read.
fn entry_of(
    id: &str,
    key: String,
    record: &BrowserSession,
    tokens: Tokens,
    provider_index: usize,
) -> Option<Entry> {
    let claims = Claims::parse(record.claims.clone().into_bytes()).ok()?;
    let revocation_id = seal::revocation_id(&key);
    let verified = Verified::for_session(
        provider_index,
        claims,
        &revocation_id,
        record.created_at,
        record.expires_at,
    )
    .ok()?;
    Some(Entry {
        id: id.into(),
        key,
        provider: record.provider.clone(),
        verified: Arc::new(verified),
        expires_at: record.expires_at,
        idle_secs: record.idle_secs,
        last_seen: AtomicI64::new(record.last_seen),
        stored_seen: AtomicI64::new(record.last_seen),
        tokens: Mutex::new(Arc::new(tokens)),
        access_expires_at: AtomicI64::new(record.access_expires_at),
        refreshing: AtomicBool::new(false),
    })
}
