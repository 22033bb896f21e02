//! The embedded store: one redb file under `data_dir`. Every write commits
//! with an fsync before it is acknowledged, so nothing acknowledged is lost
//! to a crash or `kill -9`. redb blocks on the disk, so each write or scan
//! runs on a blocking thread; the transactions are `transactions`.

mod api_keys;
mod browser;
mod oauth;
mod transactions;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use redb::Database;

use super::{
    BrowserSession, CodeRecord, Feeds, RefreshRecord, RegisteredClient, Reservation, SessionOwner,
    SsoSession, Store, StoreError, StoredKey, Upserted,
};
use crate::api_keys::{Record, Write};
use crate::auth::revocation::{Revocation, Revocations};
use crate::clock::unix_now;
use crate::metrics::StoreMetrics;
use api_keys::{API_KEYS, API_KEY_USES};
use browser::{BROWSER, BROWSER_INDEX, CLAIMS};
use oauth::{CLIENTS, CODES, SSO};
use transactions::{
    backend, principal_key, Redb, DERIVED, FAILURES, KEYS, PRINCIPALS, REFRESH, REVOCATIONS,
};

/// The embedded store: one redb file under `data_dir`.
pub struct Embedded {
    db: Arc<Redb>,
    metrics: StoreMetrics,
    /// Credential checks in flight, per lockout key. One instance owns the
    /// file, so they live in memory: a reservation costs no disk write.
    checks_in_flight: Mutex<HashMap<String, u32>>,
    /// The turn to run a write or scan on a blocking thread.
    writing: Arc<tokio::sync::Semaphore>,
    /// The revocation cache: revocations of derived tokens, found by the
    /// store, are applied to it here (callers apply the ones they named).
    cache: OnceLock<Arc<Revocations>>,
}

impl Embedded {
    pub fn open(data_dir: &Path, metrics: StoreMetrics) -> Result<Embedded, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(backend)?;
        let path = data_dir.join("portero.redb");
        let db = Database::create(&path).map_err(backend)?;
        restrict_to_owner(&path);
        // Create every table up front so readers never meet a missing one.
        let tx = db.begin_write().map_err(backend)?;
        for t in [
            KEYS,
            REVOCATIONS,
            REFRESH,
            FAILURES,
            PRINCIPALS,
            DERIVED,
            API_KEYS,
            CODES,
            SSO,
            CLIENTS,
            BROWSER,
        ] {
            tx.open_table(t).map_err(backend)?;
        }
        tx.open_table(API_KEY_USES).map_err(backend)?;
        tx.open_table(BROWSER_INDEX).map_err(backend)?;
        tx.open_table(CLAIMS).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Embedded {
            db: Arc::new(Redb { db }),
            metrics,
            checks_in_flight: Mutex::default(),
            writing: Arc::new(tokio::sync::Semaphore::new(1)),
            cache: OnceLock::new(),
        })
    }

    /// Runs `f` on a blocking thread: redb writes wait on the disk (fsync).
    /// One at a time, as redb commits them anyway: a login flood queues
    /// here as waiting tasks, not as hundreds of blocking threads taking
    /// the cores from the proxy.
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Redb) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        let turn = self.writing.clone().acquire_owned().await.map_err(backend);
        let result = match turn {
            Ok(turn) => tokio::task::spawn_blocking(move || {
                let _turn = turn;
                f(&db)
            })
            .await
            .unwrap_or_else(|e| Err(backend(e))),
            Err(e) => Err(e),
        };
        self.count(op, result)
    }

    /// Runs a one-key read in place. redb readers never wait for the writer
    /// and a hot key is in redb's page cache, so the read costs less than a
    /// round trip to a blocking thread (which every token issuance paid).
    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Redb) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.count(op, f(&self.db))
    }

    fn count<T>(&self, op: &'static str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.metrics.errors.with_label_values(&[op]).inc();
        }
        result
    }
}

/// The store holds secrets: readable by the owner only.
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[async_trait]
impl Store for Embedded {
    async fn signing_key(&self, issuer: &str, fresh: StoredKey) -> Result<StoredKey, StoreError> {
        let issuer = issuer.to_string();
        self.run("signing_key", move |db| db.signing_key(&issuer, fresh))
            .await
    }

    async fn stored_key(&self, issuer: &str) -> Result<Option<StoredKey>, StoreError> {
        self.read("signing_key", |db| db.stored_key(issuer))
    }

    async fn add_revocations(&self, list: &[Revocation]) -> Result<(), StoreError> {
        let list = list.to_vec();
        let derived = self
            .run("add_revocations", move |db| db.add_revocations(&list))
            .await?;
        if let Some(cache) = self.cache.get() {
            for r in &derived {
                cache.apply(r);
            }
        }
        Ok(())
    }

    async fn derive_token(&self, parent: &str, child: &(String, i64)) -> Result<bool, StoreError> {
        let (parent, child) = (parent.to_string(), child.clone());
        self.run("derive_token", move |db| db.derive_token(&parent, &child))
            .await
    }

    async fn follow(&self, feeds: Feeds) {
        let _ = self.cache.set(feeds.revocations);
    }

    async fn write_api_keys(&self, writes: &[(Write, Record)]) -> Result<Vec<bool>, StoreError> {
        let writes = writes.to_vec();
        self.run("write_api_keys", move |db| db.write_api_keys(&writes))
            .await
    }

    async fn api_keys(&self) -> Result<Vec<Record>, StoreError> {
        self.run("api_keys", |db| db.api_keys()).await
    }

    async fn note_api_key_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        let uses = uses.to_vec();
        self.run("note_api_key_uses", move |db| db.note_api_key_uses(&uses))
            .await
    }

    async fn api_key_uses(&self) -> Result<HashMap<String, i64>, StoreError> {
        self.read("api_key_uses", |db| db.api_key_uses())
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.run("revocations", |db| db.revocations()).await
    }

    async fn purge_expired(&self, cutoff: i64) -> Result<(), StoreError> {
        self.run("purge_expired", move |db| {
            db.purge_expired(cutoff)?;
            db.purge_oauth(cutoff)?;
            db.purge_browser(cutoff)
        })
        .await
    }

    async fn put_refresh(&self, hash: &str, record: &RefreshRecord) -> Result<(), StoreError> {
        let (hash, record) = (hash.to_string(), record.clone());
        self.run("put_refresh", move |db| db.put_refresh(&hash, &record))
            .await
    }

    async fn get_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.read("get_refresh", |db| db.get_refresh(hash))
    }

    async fn delete_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let hash = hash.to_string();
        self.run("delete_refresh", move |db| db.delete_refresh(&hash))
            .await
    }

    async fn replace_refresh(
        &self,
        hash: &str,
        seen: &RefreshRecord,
        next_hash: &str,
    ) -> Result<bool, StoreError> {
        let (hash, seen, next_hash) = (hash.to_string(), seen.clone(), next_hash.to_string());
        self.run("replace_refresh", move |db| {
            db.replace_refresh(&hash, &seen, &next_hash)
        })
        .await
    }

    async fn extend_refresh(
        &self,
        hash: &str,
        minted: &[(String, i64)],
        now: i64,
    ) -> Result<bool, StoreError> {
        let (hash, minted) = (hash.to_string(), minted.to_vec());
        self.run("extend_refresh", move |db| {
            db.extend_refresh(&hash, &minted, now)
        })
        .await
    }

    async fn record_failures(
        &self,
        limits: &[(&str, u32)],
        cooldown: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let limits: Vec<(String, u32)> = limits.iter().map(|&(k, t)| (k.to_string(), t)).collect();
        self.run("record_failures", move |db| {
            db.record_failures(&limits, cooldown, now)
        })
        .await
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.run("clear_failures", move |db| db.clear_failures(&key))
            .await
    }

    async fn reserve_attempt(
        &self,
        limits: &[(&str, u32)],
        _cooldown: i64,
        now: i64,
        // One process: no reservation's answer is ever lost, so counting
        // them is exact without their ids.
        _id: &str,
    ) -> Result<Reservation, StoreError> {
        // Held across the reads: two reservations never see the same count.
        let mut in_flight = self.checks_in_flight.lock().expect("not poisoned");
        let mut first = None;
        for &(key, threshold) in limits {
            let f = self.read("failures", |db| db.failures(key))?;
            let lapsed = f.locked_until != 0 && f.locked_until <= now;
            let failures = if lapsed { 0 } else { f.count };
            if (!lapsed && f.locked_until > now) || failures >= threshold {
                return Ok(Reservation::Locked);
            }
            if failures + in_flight.get(key).copied().unwrap_or(0) >= threshold {
                return Ok(Reservation::Busy);
            }
            first.get_or_insert(failures);
        }
        for &(key, _) in limits {
            *in_flight.entry(key.to_string()).or_default() += 1;
        }
        Ok(Reservation::Granted(first.unwrap_or(0)))
    }

    async fn put_principals(
        &self,
        issuer: &str,
        records: &[(String, String)],
    ) -> Result<Upserted, StoreError> {
        let (issuer, records) = (issuer.to_string(), records.to_vec());
        self.run("put_principals", move |db| {
            db.put_principals(&issuer, &records)
        })
        .await
    }

    async fn principal(&self, issuer: &str, login: &str) -> Result<Option<String>, StoreError> {
        let key = principal_key(issuer, login);
        let bytes = self.read("principal", |db| db.get(PRINCIPALS, &key))?;
        bytes
            .map(|b| String::from_utf8(b).map_err(|_| StoreError::Corrupt(key.clone())))
            .transpose()
    }

    async fn put_code(&self, hash: &str, record: &CodeRecord) -> Result<(), StoreError> {
        let (hash, record) = (hash.to_string(), record.clone());
        self.run("put_code", move |db| db.put_code(&hash, &record))
            .await
    }

    async fn redeem_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        let hash = hash.to_string();
        self.run("redeem_code", move |db| db.redeem_code(&hash, unix_now()))
            .await
    }

    async fn code_issued(&self, hash: &str, refresh_hash: &str) -> Result<bool, StoreError> {
        let (hash, refresh_hash) = (hash.to_string(), refresh_hash.to_string());
        self.run("code_issued", move |db| {
            db.code_issued(&hash, &refresh_hash, unix_now())
        })
        .await
    }

    async fn put_sso(&self, session: &SsoSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.run("put_sso", move |db| db.put_sso(&session)).await
    }

    async fn get_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError> {
        self.read("get_sso", |db| db.get_sso(sid, unix_now()))
    }

    async fn end_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError> {
        let sid = sid.to_string();
        self.run("end_sso", move |db| db.end_sso(&sid, unix_now()))
            .await
    }

    async fn sso_add_family(&self, sid: &str, family: &str) -> Result<bool, StoreError> {
        let (sid, family) = (sid.to_string(), family.to_string());
        self.run("sso_add_family", move |db| {
            db.sso_add_family(&sid, &family, unix_now())
        })
        .await
    }

    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        let client = client.clone();
        self.run("put_client", move |db| db.put_client(&client))
            .await
    }

    async fn get_client(
        &self,
        issuer: &str,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        self.read("get_client", |db| {
            db.get_client(issuer, client_id, unix_now())
        })
    }

    async fn registered_clients(
        &self,
        issuer: Option<&str>,
    ) -> Result<Vec<RegisteredClient>, StoreError> {
        let issuer = issuer.map(str::to_string);
        self.run("registered_clients", move |db| {
            db.registered_clients(issuer.as_deref(), unix_now())
        })
        .await
    }

    async fn delete_client(&self, issuer: &str, client_id: &str) -> Result<bool, StoreError> {
        let (issuer, client_id) = (issuer.to_string(), client_id.to_string());
        self.run("delete_client", move |db| {
            db.delete_client(&issuer, &client_id, unix_now())
        })
        .await
    }

    async fn touch_client(
        &self,
        issuer: &str,
        client_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (issuer, client_id) = (issuer.to_string(), client_id.to_string());
        self.run("touch_client", move |db| {
            db.touch_client(&issuer, &client_id, now, expires_at)
        })
        .await
    }

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

    async fn release_attempts(&self, keys: &[&str], _id: &str) -> Result<(), StoreError> {
        let mut in_flight = self.checks_in_flight.lock().expect("not poisoned");
        for &key in keys {
            if let Some(n) = in_flight.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    in_flight.remove(key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
