//! The embedded store's lockout counters, under their key. One instance
//! owns the file, so the credential checks in flight are counted in memory
//! (`Embedded::checks_in_flight`): a reservation costs no disk write.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::db::{backend, decode, encode, Redb};
use super::Embedded;
use crate::store::{Failures, Lockout, Reservation, StoreError};

pub(super) const FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("failures");

#[async_trait]
impl Lockout for Embedded {
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

impl Redb {
    fn failures(&self, key: &str) -> Result<Failures, StoreError> {
        Ok(self
            .get(FAILURES, key)?
            .map(|b| decode(key, &b))
            .transpose()?
            .unwrap_or_default())
    }

    fn record_failures(
        &self,
        limits: &[(String, u32)],
        cooldown: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let mut locked = false;
        {
            let mut t = tx.open_table(FAILURES).map_err(backend)?;
            for (key, threshold) in limits {
                let current: Failures = match t.get(key.as_str()).map_err(backend)? {
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
                if f.count >= *threshold {
                    f.locked_until = now + cooldown;
                    locked = true;
                }
                f.expires_at = now + cooldown;
                t.insert(key.as_str(), encode(&f).as_slice())
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(locked)
    }

    fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        self.remove(FAILURES, key).map(|_| ())
    }
}

/// Drops, in `tx`, the counters that lapsed and whose lock ran out before
/// `cutoff`.
pub(super) fn purge_failures(tx: &WriteTransaction, cutoff: i64) -> Result<(), StoreError> {
    let mut t = tx.open_table(FAILURES).map_err(backend)?;
    t.retain(|_, v| {
        !matches!(
            serde_json::from_slice::<Failures>(v),
            Ok(f) if f.expires_at < cutoff && f.locked_until < cutoff
        )
    })
    .map_err(backend)
}
