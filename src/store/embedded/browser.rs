//! The embedded store's browser sessions and claims. A session is kept
//! under its hash, and indexed to it under each of its owners:
//! `<provider>\0s\0<len>\0<sub>\0<hash>`, `<provider>\0i\0<len>\0<sid>\0<hash>`,
//! `<len>` the byte length of the `sub` or `sid` after it. Those may hold
//! anything, NUL too: the length keeps one from reading as the start of a
//! longer one (provider names hold no control characters). A record and
//! its index entries change in one write transaction; a session past its
//! `ends_at()` reads as absent until `purge_expired` drops it, and its
//! entries with it.

use std::time::Duration;

use async_trait::async_trait;
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::db::{backend, decode, encode, Redb};
use super::Embedded;
use crate::clock::{unix_now, Clock};
use crate::store::{BrowserSession, BrowserSessionRecords, SessionOwner, StoreError};

pub(super) const BROWSER: TableDefinition<&str, &[u8]> = TableDefinition::new("browser_sessions");
/// Owner keys (above) to the hash of each session they own.
pub(super) const BROWSER_INDEX: TableDefinition<&str, &str> =
    TableDefinition::new("browser_session_index");
/// Claims under their key: when each lapses (Unix milliseconds).
pub(super) const CLAIMS: TableDefinition<&str, i64> = TableDefinition::new("claims");

#[async_trait]
impl BrowserSessionRecords for Embedded {
    async fn put_browser_session(
        &self,
        hash: &str,
        session: &BrowserSession,
    ) -> Result<(), StoreError> {
        let (hash, session) = (hash.to_string(), session.clone());
        self.run("put_browser_session", move |db| {
            db.put_browser_session(&hash, &session)
        })
        .await
    }

    async fn get_browser_session(&self, hash: &str) -> Result<Option<BrowserSession>, StoreError> {
        self.read("get_browser_session", |db| {
            db.get_browser_session(hash, unix_now())
        })
    }

    async fn end_browser_session(&self, hash: &str) -> Result<Option<BrowserSession>, StoreError> {
        let hash = hash.to_string();
        self.run("end_browser_session", move |db| {
            db.end_browser_session(&hash, unix_now())
        })
        .await
    }

    async fn browser_sessions_of(
        &self,
        provider: &str,
        owner: &SessionOwner,
    ) -> Result<Vec<String>, StoreError> {
        let (provider, owner) = (provider.to_string(), owner.clone());
        self.run("browser_sessions_of", move |db| {
            db.browser_sessions_of(&provider, &owner, unix_now())
        })
        .await
    }

    async fn touch_browser_session(&self, hash: &str, now: i64) -> Result<bool, StoreError> {
        let hash = hash.to_string();
        self.run("touch_browser_session", move |db| {
            db.touch_browser_session(&hash, now, unix_now())
        })
        .await
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.run("claim", move |db| db.claim(&key, ttl)).await
    }

    async fn release_claim(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.run("release_claim", move |db| db.release_claim(&key))
            .await
    }
}

/// The start of every index key of `owner`'s sessions at `provider`.
fn owner_prefix(provider: &str, owner: &SessionOwner) -> String {
    let (kind, value) = match owner {
        SessionOwner::Subject(sub) => ('s', sub),
        SessionOwner::ProviderSession(sid) => ('i', sid),
    };
    format!("{provider}\0{kind}\0{}\0{value}\0", value.len())
}

/// The index keys of the session `hash`.
fn index_keys(hash: &str, session: &BrowserSession) -> Vec<String> {
    let owners = session.owners();
    owners
        .iter()
        .map(|o| owner_prefix(&session.provider, o) + hash)
        .collect()
}

/// Now, in Unix milliseconds, for claims (they last less than a second too).
fn now_millis() -> i64 {
    Clock::system().now().timestamp_millis()
}

/// Removes the record `hash` and its index entries; it as it was.
fn remove_session(
    records: &mut Table<&str, &[u8]>,
    index: &mut Table<&str, &str>,
    hash: &str,
) -> Result<Option<BrowserSession>, StoreError> {
    let old = records
        .remove(hash)
        .map_err(backend)?
        .map(|v| v.value().to_vec());
    let Some(old) = old else { return Ok(None) };
    let old: BrowserSession = decode(hash, &old)?;
    for key in index_keys(hash, &old) {
        index.remove(key.as_str()).map_err(backend)?;
    }
    Ok(Some(old))
}

impl Redb {
    /// Drops sessions past their end by `cutoff`, the index entries of
    /// sessions no longer held, and lapsed claims, in a transaction of its
    /// own beside `purge_expired`'s.
    pub(super) fn purge_browser(&self, cutoff: i64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        purge_sessions_and_claims(&tx, cutoff)?;
        tx.commit().map_err(backend)
    }

    fn put_browser_session(&self, hash: &str, session: &BrowserSession) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut records = tx.open_table(BROWSER).map_err(backend)?;
            let mut index = tx.open_table(BROWSER_INDEX).map_err(backend)?;
            // The one it replaces may have had other owners.
            remove_session(&mut records, &mut index, hash)?;
            records
                .insert(hash, encode(session).as_slice())
                .map_err(backend)?;
            for key in index_keys(hash, session) {
                index.insert(key.as_str(), hash).map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn get_browser_session(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let found: Option<BrowserSession> = self
            .get(BROWSER, hash)?
            .map(|b| decode(hash, &b))
            .transpose()?;
        Ok(found.filter(|s| s.ends_at() > now))
    }

    fn end_browser_session(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let ended = {
            let mut records = tx.open_table(BROWSER).map_err(backend)?;
            let mut index = tx.open_table(BROWSER_INDEX).map_err(backend)?;
            remove_session(&mut records, &mut index, hash)?
        };
        match ended {
            Some(_) => tx.commit().map_err(backend)?,
            None => tx.abort().map_err(backend)?,
        }
        Ok(ended.filter(|s| s.ends_at() > now))
    }

    fn browser_sessions_of(
        &self,
        provider: &str,
        owner: &SessionOwner,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let index = tx.open_table(BROWSER_INDEX).map_err(backend)?;
        let records = tx.open_table(BROWSER).map_err(backend)?;
        // The prefix ends in `\0`: up to `\x01` there, its keys only.
        let from = owner_prefix(provider, owner);
        let to = format!("{}\u{1}", &from[..from.len() - 1]);
        let mut out = Vec::new();
        for entry in index.range(from.as_str()..to.as_str()).map_err(backend)? {
            let (_, hash) = entry.map_err(backend)?;
            let hash = hash.value();
            let Some(bytes) = records.get(hash).map_err(backend)? else {
                continue;
            };
            let session: BrowserSession = decode(hash, bytes.value())?;
            if session.ends_at() > now && session.owned_by(provider, owner) {
                out.push(hash.to_string());
            }
        }
        Ok(out)
    }

    /// See `BrowserSessionRecords::touch_browser_session`; gone if it ended by `now` or by
    /// the store's `store_now`, whichever is later.
    fn touch_browser_session(
        &self,
        hash: &str,
        now: i64,
        store_now: i64,
    ) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let (live, changed) = {
            let mut records = tx.open_table(BROWSER).map_err(backend)?;
            let found = records
                .get(hash)
                .map_err(backend)?
                .map(|v| v.value().to_vec());
            let found: Option<BrowserSession> = found.map(|b| decode(hash, &b)).transpose()?;
            match found {
                Some(mut s) if s.ends_at() > now.max(store_now) => {
                    let later = now > s.last_seen;
                    if later {
                        s.last_seen = now;
                        records
                            .insert(hash, encode(&s).as_slice())
                            .map_err(backend)?;
                    }
                    (true, later)
                }
                _ => (false, false),
            }
        };
        if changed {
            tx.commit().map_err(backend)?;
        } else {
            // Nothing changed: no commit, no fsync.
            tx.abort().map_err(backend)?;
        }
        Ok(live)
    }

    fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_millis();
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let tx = self.db.begin_write().map_err(backend)?;
        let taken = {
            let mut claims = tx.open_table(CLAIMS).map_err(backend)?;
            let held = claims.get(key).map_err(backend)?.map(|v| v.value());
            match held {
                Some(until) if until > now => false,
                _ => {
                    claims
                        .insert(key, now.saturating_add(ttl))
                        .map_err(backend)?;
                    true
                }
            }
        };
        if taken {
            tx.commit().map_err(backend)?;
        } else {
            tx.abort().map_err(backend)?;
        }
        Ok(taken)
    }

    fn release_claim(&self, key: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        tx.open_table(CLAIMS)
            .map_err(backend)?
            .remove(key)
            .map_err(backend)?;
        tx.commit().map_err(backend)
    }
}

/// Drops sessions past their end by `cutoff`, then the index entries of
/// sessions no longer held, then claims lapsed by `cutoff`.
fn purge_sessions_and_claims(tx: &WriteTransaction, cutoff: i64) -> Result<(), StoreError> {
    let mut records = tx.open_table(BROWSER).map_err(backend)?;
    records
        .retain(|_, v| {
            // Unreadable records are kept, as elsewhere: for an operator to see.
            serde_json::from_slice::<BrowserSession>(v).map_or(true, |s| s.ends_at() > cutoff)
        })
        .map_err(backend)?;
    tx.open_table(BROWSER_INDEX)
        .map_err(backend)?
        .retain(|_, hash| !matches!(records.get(hash), Ok(None)))
        .map_err(backend)?;
    tx.open_table(CLAIMS)
        .map_err(backend)?
        .retain(|_, until| until > cutoff.saturating_mul(1000))
        .map_err(backend)?;
    Ok(())
}
