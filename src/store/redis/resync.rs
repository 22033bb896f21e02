//! Catching up after a (re)subscription: the whole revocation set read
//! again, what Redis lost written back, and the secrets in use re-asserted.

use std::sync::atomic::Ordering;

use super::{decode, now_secs, revocation_key, Redis, BATCH};
use crate::api_keys;
use crate::auth::revocation::{Revocation, Revocations};
use crate::store::{RevocationLog, Secrets, StoreError, StoredSecret};

impl Redis {
    /// Every key under `pattern`, with its value.
    pub(super) async fn scan(&self, pattern: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(BATCH);
            // In a cluster, on the master of the pattern's slot.
            let (next, keys): (u64, Vec<String>) =
                self.run("scan", conn.query_at(&scan, pattern)).await?;
            if !keys.is_empty() {
                let values: Vec<Option<Vec<u8>>> = self
                    .run("scan", redis::cmd("MGET").arg(&keys).query_async(&mut conn))
                    .await?;
                // A key that expired between SCAN and MGET reads as nil.
                out.extend(
                    keys.into_iter()
                        .zip(values)
                        .filter_map(|(k, v)| Some((k, v?))),
                );
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// Re-reads the whole revocation set into `cache`, then writes back what
    /// this instance holds and Redis lost, and re-asserts the secrets it
    /// uses (generated signing keys among them).
    pub(super) async fn resync(&self, cache: &Revocations) -> Result<usize, StoreError> {
        let remote = self.scan(&self.grouped("rev", "*")).await?;
        let mut present = std::collections::HashSet::with_capacity(remote.len());
        for (key, value) in &remote {
            let r: Revocation = decode(key, value)?;
            present.insert(revocation_key(&r));
            cache.apply(&r);
        }
        let now = now_secs() as i64;
        let lost: Vec<Revocation> = cache
            .list()
            .into_iter()
            .filter(|r| !present.contains(&revocation_key(r)))
            .filter(|r| !matches!(r, Revocation::Jti { expires_at: Some(e), .. } if *e + self.ttl_margin < now))
            .collect();
        if !lost.is_empty() {
            tracing::warn!(
                count = lost.len(),
                "the store had lost revocations; writing them back"
            );
            self.add_revocations(&lost).await?;
        }
        // Copied out first: `secret_or_insert` writes to the map.
        let held: Vec<(String, StoredSecret)> = self
            .secrets_held
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        for (issuer, secret) in held {
            if self.secret_or_insert(&issuer, secret.clone()).await? != secret {
                if issuer == api_keys::PEPPER_NAME {
                    self.api_key_secret_replaced.store(true, Ordering::Release);
                }
                tracing::error!(
                    %issuer,
                    "the store holds another generated key for this issuer; tokens signed here are refused elsewhere until this instance restarts"
                );
            }
        }
        Ok(remote.len())
    }
}
