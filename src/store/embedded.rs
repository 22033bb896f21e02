//! The embedded store: one redb file under `data_dir`. Every write commits
//! with an fsync before it is acknowledged, so nothing acknowledged is lost
//! to a crash or `kill -9`. redb blocks on the disk, so each write or scan
//! runs on a blocking thread; the transactions are `transactions`.

mod api_keys;
mod oauth;
mod transactions;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use redb::Database;

#[cfg(test)]
use super::MAX_LINEAGE;
use super::{
    CodeRecord, Feeds, RefreshRecord, RegisteredClient, Reservation, SsoSession, Store, StoreError,
    StoredKey, Upserted,
};
use crate::api_keys::{Record, Write};
use crate::auth::revocation::{Revocation, Revocations};
use crate::clock::unix_now;
use crate::metrics::StoreMetrics;
use api_keys::{API_KEYS, API_KEY_USES};
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
        ] {
            tx.open_table(t).map_err(backend)?;
        }
        tx.open_table(API_KEY_USES).map_err(backend)?;
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
            db.purge_oauth(cutoff)
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
mod tests {
    use super::*;

    #[tokio::test]
    async fn everything_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoredKey {
            kid: "k".into(),
            secret: vec![7; 32],
        };
        {
            let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
            assert_eq!(s.signing_key("i", key.clone()).await.unwrap(), key);
            let other = StoredKey {
                kid: "other".into(),
                secret: vec![1; 32],
            };
            assert_eq!(
                s.signing_key("i", other).await.unwrap(),
                key,
                "the first key stays"
            );
            s.add_revocations(&[
                Revocation::Jti {
                    jti: "j".into(),
                    expires_at: Some(100),
                },
                Revocation::Jti {
                    jti: "old".into(),
                    expires_at: Some(10),
                },
            ])
            .await
            .unwrap();
            s.purge_expired(50).await.unwrap();
            let rec = RefreshRecord {
                issuer: "i".into(),
                sub: "s".into(),
                login: "l".into(),
                issued_at: 1,
                expires_at: 2,
                tokens: vec![("a".into(), 2)],
                client_id: None,
                rotated_to: None,
                scope: None,
                resource: None,
            };
            s.put_refresh("h", &rec).await.unwrap();
        }
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        assert_eq!(
            s.signing_key(
                "i",
                StoredKey {
                    kid: "x".into(),
                    secret: vec![]
                }
            )
            .await
            .unwrap(),
            key
        );
        assert_eq!(
            s.revocations().await.unwrap(),
            vec![Revocation::Jti {
                jti: "j".into(),
                expires_at: Some(100)
            }]
        );
        assert_eq!(s.get_refresh("h").await.unwrap().unwrap().sub, "s");
        assert!(s.delete_refresh("h").await.unwrap().is_some());
        assert!(s.get_refresh("h").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_revoked_api_key_takes_no_later_write_even_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let live = Record::sample("ak_1", "partners", "11".repeat(32));
        let rotated = live.rotated("22".repeat(32), 100);
        {
            let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
            assert_eq!(
                s.write_api_keys(&[(Write::Put, live.clone())])
                    .await
                    .unwrap(),
                [true]
            );
            assert_eq!(
                s.write_api_keys(&[(Write::Revoke, live.tombstone())])
                    .await
                    .unwrap(),
                [true]
            );
        }
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        // A rotation that read the record before the revocation, an import
        // of it again, a second revocation: none is written.
        let late = [
            (Write::Rotate { from_version: 0 }, rotated),
            (Write::Put, live.clone()),
            (Write::Revoke, live.tombstone()),
        ];
        assert_eq!(
            s.write_api_keys(&late).await.unwrap(),
            [false, false, false]
        );
        let kept = s.api_keys().await.unwrap();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].revoked && kept[0].consumer.is_empty());
    }

    #[tokio::test]
    async fn failures_lock_then_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        let u = [("u", 3)];
        assert!(!s.record_failures(&u, 60, 1000).await.unwrap());
        assert!(!s.record_failures(&u, 60, 1000).await.unwrap());
        assert!(s.record_failures(&u, 60, 1000).await.unwrap());
        assert_eq!(
            s.reserve_attempt(&u, 60, 1059, "r").await.unwrap(),
            Reservation::Locked
        );
        // After the cool-down the count starts again.
        assert!(!s.record_failures(&u, 60, 1061).await.unwrap());
        assert_eq!(
            s.reserve_attempt(&u, 60, 1061, "r").await.unwrap(),
            Reservation::Granted(1)
        );
        s.release_attempts(&["u"], "r").await.unwrap();
        s.clear_failures("u").await.unwrap();
        assert_eq!(
            s.reserve_attempt(&u, 60, 1061, "r").await.unwrap(),
            Reservation::Granted(0)
        );
    }

    #[tokio::test]
    async fn lapsed_failure_records_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        for i in 0..100 {
            let key = format!("k{i}");
            s.record_failures(&[(key.as_str(), 5)], 60, 1000)
                .await
                .unwrap();
        }
        s.record_failures(&[("late", 5)], 60, 2000).await.unwrap();
        let count = |s: &Embedded| {
            use redb::ReadableTableMetadata;
            let tx = s.db.db.begin_read().unwrap();
            tx.open_table(FAILURES).unwrap().len().unwrap()
        };
        assert_eq!(count(&s), 101);
        s.purge_expired(1059).await.unwrap();
        assert_eq!(count(&s), 101);
        s.purge_expired(1061).await.unwrap();
        assert_eq!(count(&s), 1);
    }

    #[tokio::test]
    async fn a_lineage_is_bounded_and_ends_with_its_refresh_token() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        let record = RefreshRecord {
            issuer: "i".into(),
            sub: "s".into(),
            login: "l".into(),
            issued_at: 1000,
            expires_at: 5000,
            tokens: vec![("old".into(), 1500)],
            client_id: None,
            rotated_to: None,
            scope: None,
            resource: None,
        };
        s.put_refresh("h", &record).await.unwrap();
        let batch: Vec<(String, i64)> = (0..MAX_LINEAGE - 1)
            .map(|i| (format!("t{i}"), 3000))
            .collect();
        assert!(s.extend_refresh("h", &batch, 1000).await.unwrap());
        // Full: one more is refused while the old ones live...
        assert!(!s
            .extend_refresh("h", &[("x".into(), 3000)], 1000)
            .await
            .unwrap());
        // ...and makes room once one has expired (dropped on the way).
        assert!(s
            .extend_refresh("h", &[("x".into(), 3000)], 2000)
            .await
            .unwrap());
        let deleted = s.delete_refresh("h").await.unwrap().unwrap();
        assert_eq!(deleted.tokens.len(), MAX_LINEAGE);
        // Gone: nothing more can be added.
        assert!(!s
            .extend_refresh("h", &[("y".into(), 3000)], 2000)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_refresh_token_is_replaced_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        let seen = RefreshRecord {
            issuer: "i".into(),
            sub: "s".into(),
            login: "l".into(),
            issued_at: 1000,
            expires_at: 5000,
            tokens: vec![("a".into(), 3000)],
            client_id: Some("c".into()),
            rotated_to: None,
            scope: None,
            resource: None,
        };
        s.put_refresh("old", &seen).await.unwrap();
        assert!(s.replace_refresh("old", &seen, "new").await.unwrap());
        // Every later request read it as it was: too late.
        assert!(!s.replace_refresh("old", &seen, "other").await.unwrap());
        let marker = s.get_refresh("old").await.unwrap().unwrap();
        assert_eq!(marker.rotated_to.as_deref(), Some("new"));
        assert!(marker.tokens.is_empty(), "the lineage moved on");
        s.delete_refresh("old").await.unwrap();
        assert!(!s.replace_refresh("old", &seen, "other").await.unwrap());
    }

    #[tokio::test]
    async fn revoking_a_token_revokes_what_was_derived_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        let cache = Arc::new(Revocations::default());
        s.follow(Feeds {
            revocations: cache.clone(),
            api_keys: Arc::new(crate::api_keys::Index::detached()),
        })
        .await;
        assert!(s.derive_token("a", &("b".into(), 3000)).await.unwrap());
        assert!(s.derive_token("b", &("c".into(), 2000)).await.unwrap());
        let revoked = |jti: &str| Revocation::Jti {
            jti: jti.into(),
            expires_at: Some(3000),
        };
        s.add_revocations(&[revoked("a")]).await.unwrap();
        let stored = s.revocations().await.unwrap();
        for jti in ["b", "c"] {
            assert!(cache.is_revoked("i", None, Some(jti), None), "{jti}");
            assert!(stored
                .iter()
                .any(|r| matches!(r, Revocation::Jti { jti: j, .. } if j == jti)));
        }
        // Nothing more is derived from a revoked token.
        assert!(!s.derive_token("a", &("d".into(), 3000)).await.unwrap());
    }

    #[tokio::test]
    async fn a_burst_gets_no_more_checks_than_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        let limits = [("u", 5), ("ip", 50)];
        let reserve = || s.reserve_attempt(&limits, 60, 1000, "r");
        let mut granted = 0;
        for _ in 0..40 {
            match reserve().await.unwrap() {
                Reservation::Granted(_) => granted += 1,
                other => assert_eq!(other, Reservation::Busy),
            }
        }
        assert_eq!(granted, 5);
        // Two fail, three are released unchecked: two more may come.
        s.record_failures(&[("u", 5)], 60, 1000).await.unwrap();
        s.record_failures(&[("u", 5)], 60, 1000).await.unwrap();
        for _ in 0..5 {
            s.release_attempts(&["u", "ip"], "r").await.unwrap();
        }
        assert_eq!(reserve().await.unwrap(), Reservation::Granted(2));
        assert_eq!(reserve().await.unwrap(), Reservation::Granted(2));
        assert_eq!(reserve().await.unwrap(), Reservation::Granted(2));
        assert_eq!(reserve().await.unwrap(), Reservation::Busy);
        // Those three fail: locked, whatever is in flight.
        for _ in 0..3 {
            s.release_attempts(&["u", "ip"], "r").await.unwrap();
            s.record_failures(&[("u", 5)], 60, 1000).await.unwrap();
        }
        assert_eq!(
            s.reserve_attempt(&limits, 60, 1059, "r").await.unwrap(),
            Reservation::Locked
        );
        assert_eq!(
            s.reserve_attempt(&limits, 60, 1060, "r").await.unwrap(),
            Reservation::Granted(0)
        );
    }

    fn fresh() -> (tempfile::TempDir, Embedded) {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once() {
        let (_dir, s) = fresh();
        crate::store::oauth::checks::a_code_is_redeemed_once(&s).await;
    }

    #[tokio::test]
    async fn an_expired_code_is_not_held() {
        let (_dir, s) = fresh();
        crate::store::oauth::checks::an_expired_code_is_not_held(&s).await;
    }

    #[tokio::test]
    async fn a_session_ends_and_takes_no_family_after() {
        let (_dir, s) = fresh();
        crate::store::oauth::checks::a_session_ends_and_takes_no_family_after(&s).await;
    }

    #[tokio::test]
    async fn clients_are_listed_by_issuer_and_stay_deleted() {
        let (_dir, s) = fresh();
        crate::store::oauth::checks::clients_are_listed_by_issuer_and_stay_deleted(&s).await;
    }

    #[tokio::test]
    async fn expired_issuer_records_are_purged() {
        let (_dir, s) = fresh();
        let now = unix_now();
        let count = |s: &Embedded| {
            use redb::ReadableTableMetadata;
            let tx = s.db.db.begin_read().unwrap();
            [CODES, SSO, CLIENTS].map(|t| tx.open_table(t).unwrap().len().unwrap())
        };
        for (name, exp) in [("old", now - 10), ("new", now + 600)] {
            s.put_code(name, &CodeRecord::sample("i", exp))
                .await
                .unwrap();
            s.put_sso(&SsoSession::sample(name, exp)).await.unwrap();
            s.put_client(&RegisteredClient::sample("i", name, exp))
                .await
                .unwrap();
        }
        assert_eq!(count(&s), [2, 2, 2]);
        s.purge_expired(now).await.unwrap();
        assert_eq!(count(&s), [1, 1, 1]);
        assert!(s.get_sso("new").await.unwrap().is_some());
        assert!(s.get_client("i", "new").await.unwrap().is_some());
        assert!(s.redeem_code("new").await.unwrap().is_some());
    }
}
