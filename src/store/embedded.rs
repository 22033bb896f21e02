//! The embedded store: one redb file under `data_dir`. Every write commits
//! with an fsync before it is acknowledged, so nothing acknowledged is lost
//! to a crash or `kill -9`. redb blocks on the disk, so each write or scan
//! runs on a blocking thread. Each domain's tables, transactions and trait
//! implementation are a file of their own; `db` is what they share.

mod api_keys;
mod browser;
mod consent;
mod db;
mod factors;
mod lockout;
mod oauth;
mod principals;
mod refresh;
mod revocations;
mod secrets;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use redb::Database;

use super::{Feeds, SharedRates, StoreError, Upkeep};
use crate::auth::revocation::Revocations;
use crate::metrics::StoreMetrics;
use api_keys::{API_KEYS, API_KEY_USES};
use browser::{BROWSER, BROWSER_INDEX, CLAIMS};
use db::{backend, Redb};
use lockout::{purge_failures, FAILURES};
use oauth::{CLIENTS, CODES, SSO};
use principals::PRINCIPALS;
use refresh::REFRESH;
use revocations::{purge_revocations, DERIVED, REVOCATIONS};
use secrets::SECRETS;

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
            SECRETS,
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
        tx.open_table(consent::CONSENTS).map_err(backend)?;
        tx.open_table(factors::FACTORS).map_err(backend)?;
        tx.open_table(factors::HANDLES).map_err(backend)?;
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

/// No other instance shares the file: every rate is counted in memory.
impl SharedRates for Embedded {}

#[async_trait]
impl Upkeep for Embedded {
    async fn purge_expired(&self, cutoff: i64) -> Result<(), StoreError> {
        self.run("purge_expired", move |db| {
            let tx = db.db.begin_write().map_err(backend)?;
            purge_revocations(&tx, cutoff)?;
            purge_failures(&tx, cutoff)?;
            tx.commit().map_err(backend)?;
            db.purge_oauth(cutoff)?;
            db.purge_browser(cutoff)
        })
        .await
    }

    async fn follow(&self, feeds: Feeds) {
        let _ = self.cache.set(feeds.revocations);
    }
}

#[cfg(test)]
mod tests;
