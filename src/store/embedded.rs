//! The embedded store: one redb file under `data_dir`. Every write commits
//! with an fsync before it is acknowledged, so nothing acknowledged is lost
//! to a crash or `kill -9`. redb blocks on the disk, so each operation runs
//! on a blocking thread.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{revocation_key, Failures, RefreshRecord, Store, StoreError, StoredKey};
use crate::auth::revocation::Revocation;
use crate::metrics::StoreMetrics;

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");
const FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("failures");

/// The embedded store: one redb file under `data_dir`.
pub struct Embedded {
    db: Arc<Redb>,
    metrics: StoreMetrics,
}

/// The synchronous redb operations; [`Embedded`] runs writes and scans on
/// blocking threads, one-key reads in place.
struct Redb {
    db: Database,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store records serialize")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt(key.to_string()))
}

impl Embedded {
    pub fn open(data_dir: &Path, metrics: StoreMetrics) -> Result<Embedded, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(backend)?;
        let path = data_dir.join("portero.redb");
        let db = Database::create(&path).map_err(backend)?;
        restrict_to_owner(&path);
        // Create every table up front so readers never meet a missing one.
        let tx = db.begin_write().map_err(backend)?;
        for t in [KEYS, REVOCATIONS, REFRESH, FAILURES] {
            tx.open_table(t).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(Embedded {
            db: Arc::new(Redb { db }),
            metrics,
        })
    }

    /// Runs `f` on a blocking thread: redb writes wait on the disk (fsync).
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Redb) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        let result = tokio::task::spawn_blocking(move || f(&db))
            .await
            .unwrap_or_else(|e| Err(backend(e)));
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

impl Redb {
    fn get(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(table).map_err(backend)?;
        Ok(t.get(key).map_err(backend)?.map(|v| v.value().to_vec()))
    }

    fn put(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        tx.open_table(table)
            .map_err(backend)?
            .insert(key, value)
            .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn remove(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let old = tx
            .open_table(table)
            .map_err(backend)?
            .remove(key)
            .map_err(backend)?
            .map(|v| v.value().to_vec());
        tx.commit().map_err(backend)?;
        Ok(old)
    }

    fn signing_key(&self, issuer: &str, fresh: StoredKey) -> Result<StoredKey, StoreError> {
        // Read and insert in one write transaction: the first writer wins.
        let tx = self.db.begin_write().map_err(backend)?;
        let key = {
            let mut t = tx.open_table(KEYS).map_err(backend)?;
            let existing = t.get(issuer).map_err(backend)?.map(|v| v.value().to_vec());
            match existing {
                Some(bytes) => decode(issuer, &bytes)?,
                None => {
                    t.insert(issuer, encode(&fresh).as_slice())
                        .map_err(backend)?;
                    fresh
                }
            }
        };
        tx.commit().map_err(backend)?;
        Ok(key)
    }

    /// All in one transaction: a refresh token's revocations land together.
    fn add_revocations(&self, list: &[Revocation]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut t = tx.open_table(REVOCATIONS).map_err(backend)?;
            for r in list {
                t.insert(revocation_key(r).as_str(), encode(r).as_slice())
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(REVOCATIONS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn purge_revocations(&self, cutoff: i64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut t = tx.open_table(REVOCATIONS).map_err(backend)?;
            t.retain(|_, v| {
                !matches!(
                    serde_json::from_slice::<Revocation>(v),
                    Ok(Revocation::Jti { expires_at: Some(exp), .. }) if exp < cutoff
                )
            })
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }

    fn put_refresh(&self, hash: &str, record: &RefreshRecord) -> Result<(), StoreError> {
        self.put(REFRESH, hash, &encode(record))
    }

    fn get_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.get(REFRESH, hash)?
            .map(|b| decode(hash, &b))
            .transpose()
    }

    fn delete_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.remove(REFRESH, hash)?
            .map(|b| decode(hash, &b))
            .transpose()
    }

    fn failures(&self, key: &str) -> Result<Failures, StoreError> {
        Ok(self
            .get(FAILURES, key)?
            .map(|b| decode(key, &b))
            .transpose()?
            .unwrap_or_default())
    }

    fn record_failure(
        &self,
        key: &str,
        threshold: u32,
        cooldown: i64,
        now: i64,
    ) -> Result<Failures, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let updated = {
            let mut t = tx.open_table(FAILURES).map_err(backend)?;
            let current: Failures = match t.get(key).map_err(backend)? {
                Some(v) => decode(key, v.value())?,
                None => Failures::default(),
            };
            // A lock that has run out starts a fresh count.
            let mut f = if current.locked_until != 0 && current.locked_until <= now {
                Failures::default()
            } else {
                current
            };
            f.count += 1;
            if f.count >= threshold {
                f.locked_until = now + cooldown;
            }
            t.insert(key, encode(&f).as_slice()).map_err(backend)?;
            f
        };
        tx.commit().map_err(backend)?;
        Ok(updated)
    }

    fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        self.remove(FAILURES, key).map(|_| ())
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

    async fn add_revocations(&self, list: &[Revocation]) -> Result<(), StoreError> {
        let list = list.to_vec();
        self.run("add_revocations", move |db| db.add_revocations(&list))
            .await
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.run("revocations", |db| db.revocations()).await
    }

    async fn purge_revocations(&self, cutoff: i64) -> Result<(), StoreError> {
        self.run("purge_revocations", move |db| db.purge_revocations(cutoff))
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

    async fn failures(&self, key: &str) -> Result<Failures, StoreError> {
        self.read("failures", |db| db.failures(key))
    }

    async fn record_failure(
        &self,
        key: &str,
        threshold: u32,
        cooldown: i64,
        now: i64,
    ) -> Result<Failures, StoreError> {
        let key = key.to_string();
        self.run("record_failure", move |db| {
            db.record_failure(&key, threshold, cooldown, now)
        })
        .await
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.run("clear_failures", move |db| db.clear_failures(&key))
            .await
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
            s.purge_revocations(50).await.unwrap();
            let rec = RefreshRecord {
                issuer: "i".into(),
                sub: "s".into(),
                login: "l".into(),
                issued_at: 1,
                expires_at: 2,
                tokens: vec![("a".into(), 2)],
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
    async fn failures_lock_then_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        assert_eq!(
            s.record_failure("u", 3, 60, 1000)
                .await
                .unwrap()
                .locked_until,
            0
        );
        s.record_failure("u", 3, 60, 1000).await.unwrap();
        assert_eq!(
            s.record_failure("u", 3, 60, 1000)
                .await
                .unwrap()
                .locked_until,
            1060
        );
        // After the cool-down the count starts again.
        assert_eq!(s.record_failure("u", 3, 60, 1061).await.unwrap().count, 1);
        s.clear_failures("u").await.unwrap();
        assert_eq!(s.failures("u").await.unwrap(), Failures::default());
    }
}
