//! Every key's record in memory, by the digest of its key: what a key
//! not yet seen by the running snapshot is looked up in. Written by the
//! admin API and the store's channel, rarely; read on a snapshot's miss.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus::{IntCounter, IntCounterVec};

use super::{from_hex, Change, Digest32, Pepper, Record};

/// Consumers counted under their own label; the rest under `other`, so a
/// busy key table cannot grow the metrics without bound.
const CONSUMER_LABELS: usize = 500;

/// One key record as the gateway holds it.
pub struct Held {
    pub record: Record,
    /// Counts what happened to the record since it was made (revoked,
    /// replaced, its key found held by another record too): a snapshot
    /// that kept it at another count must look the key up again.
    changes: AtomicU64,
    /// Unix seconds of the last request it admitted here.
    last_used: AtomicI64,
    /// ...and the last one written to the store.
    flushed: AtomicI64,
    pub requests: IntCounter,
}

impl Held {
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Notes a request at `now`; a store write follows later, off the path.
    pub fn used(&self, now: i64) {
        if self.last_used.load(Ordering::Relaxed) < now {
            self.last_used.store(now, Ordering::Relaxed);
        }
        self.requests.inc();
    }

    pub fn last_used(&self) -> Option<i64> {
        Some(self.last_used.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

/// A key's record, and until when that key is accepted (a rotated-out
/// key's grace; `None` for the current key).
pub type Found = (Arc<Held>, Option<i64>);

/// Why no record holds a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// No record ever held it (or two do: refused until one is revoked).
    Unknown,
    /// A record held it, and it was revoked or rotated out since.
    Revoked,
}

pub struct Index {
    pepper: Pepper,
    requests: IntCounterVec,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// A key's digest → its record, and until when that key is accepted
    /// (a rotated-out key's grace), `None` for the current key.
    /// More than one record for a digest (two imports that raced) is an
    /// ambiguous key: refused until all but one are revoked.
    by_digest: HashMap<Digest32, Vec<Found>>,
    by_id: HashMap<String, Arc<Held>>,
    /// Ids revoked here: an older announcement arriving late must not
    /// bring them back. Ids are random and never made again.
    deleted: HashSet<String>,
    /// The tombstones of revoked keys, every hash each retired with it:
    /// written back to a store that lost them, and no record holding one
    /// of those hashes is taken again, under any id.
    tombstones: HashMap<String, Record>,
    revoked_digests: HashSet<Digest32>,
    /// The digests of keys revoked or retired, so that one presented
    /// again is told from a key that never existed (in metrics only).
    revoked: HashSet<Digest32>,
    /// Consumers with their own metric label.
    labelled: HashSet<(String, String)>,
}

impl Index {
    pub fn new(pepper: Pepper, records: Vec<Record>, requests: IntCounterVec) -> Index {
        let index = Index {
            pepper,
            requests,
            inner: RwLock::default(),
        };
        for r in records {
            index.apply(Change::Put(Box::new(r)));
        }
        index
    }

    /// An empty index whose metrics go nowhere, for tests.
    #[cfg(test)]
    pub fn detached() -> Index {
        let requests = IntCounterVec::new(
            prometheus::Opts::new("requests", "requests"),
            &["issuer", "consumer"],
        )
        .expect("a valid metric");
        Index::new(Pepper::new(b"pepper"), Vec::new(), requests)
    }

    pub fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    /// The record `key` names, and until when it is accepted; or why no
    /// record does.
    pub fn find(&self, key: &str) -> Result<Found, Absent> {
        let digest = self.pepper.digest(key);
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        match inner.by_digest.get(&digest).map(Vec::as_slice) {
            Some([one]) => Ok(one.clone()),
            _ if inner.revoked.contains(&digest) => Err(Absent::Revoked),
            _ => Err(Absent::Unknown),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Held>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.by_id.get(id).cloned()
    }

    /// Every record held, for the admin API's listing.
    pub fn all(&self) -> Vec<Arc<Held>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.by_id.values().cloned().collect()
    }

    /// Applies a change made here or announced by another instance. A
    /// record older than the one held, or of a revoked id, changes nothing.
    /// True when the change would bring back a key revoked here (an import
    /// into a store that lost its tombstone): the store needs it again.
    pub fn apply(&self, change: Change) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Put(record) if record.revoked => inner.bury(*record),
            Change::Put(record) => {
                let record = *record;
                if inner.deleted.contains(&record.id) {
                    return true;
                }
                if record.digests().any(|d| inner.revoked_digests.contains(&d)) {
                    tracing::warn!(id = %record.id, "refused an API key record holding a revoked key");
                    return true;
                }
                if let Some(held) = inner.by_id.get(&record.id) {
                    if held.record.version > record.version
                        || (held.record.version == record.version && held.record == record)
                    {
                        return false;
                    }
                }
                let Some(current) = from_hex(&record.hash) else {
                    tracing::warn!(id = %record.id, "ignored an API key record with a malformed hash");
                    return false;
                };
                let previous = record
                    .previous
                    .as_ref()
                    .and_then(|p| Some((from_hex(&p.hash)?, p.until)));
                inner.remove(&record.id);
                inner.revoked.extend(
                    record
                        .retired
                        .iter()
                        .map(String::as_str)
                        .filter_map(from_hex),
                );
                let requests = self.counter(&mut inner, &record);
                let held = Arc::new(Held {
                    record,
                    changes: AtomicU64::new(0),
                    last_used: AtomicI64::new(0),
                    flushed: AtomicI64::new(0),
                    requests,
                });
                inner.hold(current, (held.clone(), None));
                if let Some((digest, until)) = previous {
                    inner.hold(digest, (held.clone(), Some(until)));
                }
                inner.by_id.insert(held.record.id.clone(), held);
            }
            Change::Deleted { id } => match inner.by_id.get(&id) {
                Some(held) => {
                    let tombstone = held.record.tombstone();
                    inner.bury(tombstone);
                }
                None => {
                    inner.deleted.insert(id);
                }
            },
        }
        false
    }

    /// The tombstones `stored` (what the store holds) lacks: those held
    /// here that it lost, and one for each live record it holds over a
    /// key revoked here. Written back with `Write::Restore`.
    pub fn tombstones_to_restore(&self, stored: &[Record]) -> Vec<Record> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let buried: HashSet<&str> = stored
            .iter()
            .filter(|r| r.revoked)
            .map(|r| r.id.as_str())
            .collect();
        let lost = inner
            .tombstones
            .values()
            .filter(|t| !buried.contains(t.id.as_str()))
            .cloned();
        let revived = stored
            .iter()
            .filter(|r| !r.revoked && !inner.tombstones.contains_key(&r.id))
            .filter(|r| {
                inner.deleted.contains(&r.id)
                    || r.digests().any(|d| inner.revoked_digests.contains(&d))
            })
            .map(Record::tombstone);
        lost.chain(revived).collect()
    }

    /// The live records of `stored` this index does not hold.
    pub fn unknown_live<'s>(&self, stored: &'s [Record]) -> Vec<&'s Record> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        stored
            .iter()
            .filter(|r| !r.revoked && !inner.by_id.contains_key(&r.id))
            .collect()
    }

    /// Makes the held records the store's `records` (tombstones among
    /// them): what a re-read after a lost subscription finds. Live records
    /// the store no longer has were lost with it: they stop here too (not
    /// revoked: an import may bring them back). Tombstones stay.
    pub fn replace_all(&self, records: Vec<Record>) {
        let present: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        {
            let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<String> = inner
                .by_id
                .keys()
                .filter(|id| !present.contains(id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                inner.remove(&id);
            }
        }
        for r in records {
            self.apply(Change::Put(Box::new(r)));
        }
    }

    /// (id, last use) of keys used since the last call: for the store.
    pub fn take_uses(&self) -> Vec<(String, i64)> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner
            .by_id
            .values()
            .filter_map(|h| {
                let used = h.last_used.load(Ordering::Relaxed);
                let flushed = h.flushed.swap(used, Ordering::Relaxed);
                (used > flushed).then(|| (h.record.id.clone(), used))
            })
            .collect()
    }

    /// The request counter of `record`'s consumer: its own label while
    /// there is room, else `other`.
    fn counter(&self, inner: &mut Inner, record: &Record) -> IntCounter {
        let pair = (record.issuer.clone(), record.consumer.clone());
        if inner.labelled.contains(&pair) || inner.labelled.len() < CONSUMER_LABELS {
            inner.labelled.insert(pair);
            return self
                .requests
                .with_label_values(&[&record.issuer, &record.consumer]);
        }
        self.requests.with_label_values(&[&record.issuer, "other"])
    }
}

impl Inner {
    /// Revokes `tombstone`'s id for good, and every key it ever had.
    fn bury(&mut self, tombstone: Record) {
        self.remove(&tombstone.id);
        self.deleted.insert(tombstone.id.clone());
        self.revoked_digests.extend(tombstone.digests());
        self.revoked.extend(tombstone.digests());
        // A later version of the tombstone knows as many hashes or more.
        let newer = match self.tombstones.get(&tombstone.id) {
            Some(t) => t.version < tombstone.version,
            None => true,
        };
        if newer {
            self.tombstones.insert(tombstone.id.clone(), tombstone);
        }
    }

    fn hold(&mut self, digest: Digest32, entry: Found) {
        let list = self.by_digest.entry(digest).or_default();
        // Another record's: both are now ambiguous, so tell their snapshots.
        for (other, _) in list.iter() {
            other.changed();
            tracing::warn!(id = %other.record.id, also = %entry.0.record.id, "an API key held by two records is refused until one is revoked");
        }
        list.push(entry);
    }

    /// Forgets record `id` and every key of it, telling the snapshots.
    fn remove(&mut self, id: &str) {
        let Some(held) = self.by_id.remove(id) else {
            return;
        };
        // Only the digests it was held under: its current and previous key.
        let previous = held.record.previous.as_ref().map(|p| p.hash.as_str());
        let held_under = std::iter::once(held.record.hash.as_str()).chain(previous);
        for digest in held_under.filter_map(from_hex) {
            let Some(list) = self.by_digest.get_mut(&digest) else {
                continue;
            };
            list.retain(|(h, _)| !Arc::ptr_eq(h, &held));
            match list.as_slice() {
                [] => {
                    self.by_digest.remove(&digest);
                }
                // No longer ambiguous: its snapshots may take it again.
                [(left, _)] => left.changed(),
                _ => {}
            }
        }
        held.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_keys::{to_hex, Previous};

    fn index() -> Index {
        Index::detached()
    }

    fn record(index: &Index, id: &str, key: &str, version: u64) -> Record {
        Record {
            version,
            ..Record::sample(id, "partners", to_hex(&index.pepper().digest(key)))
        }
    }

    #[test]
    fn a_key_is_found_by_its_digest_and_revoked_for_good() {
        let index = index();
        let r = record(&index, "ak_1", "prt_a", 0);
        index.apply(Change::Put(Box::new(r.clone())));
        let (held, until) = index.find("prt_a").unwrap();
        assert_eq!((held.record.id.as_str(), until), ("ak_1", None));
        assert_eq!(index.find("prt_b").err(), Some(Absent::Unknown));
        index.apply(Change::Deleted { id: "ak_1".into() });
        assert_ne!(held.changes(), 0);
        assert_eq!(index.find("prt_a").err(), Some(Absent::Revoked));
        // The announcement of its making, arriving late, changes nothing.
        index.apply(Change::Put(Box::new(r)));
        assert_eq!(index.find("prt_a").err(), Some(Absent::Revoked));
    }

    #[test]
    fn a_rotation_keeps_the_old_key_for_its_grace_and_stale_versions_lose() {
        let index = index();
        let first = record(&index, "ak_1", "prt_old", 0);
        index.apply(Change::Put(Box::new(first.clone())));
        let mut rotated = record(&index, "ak_1", "prt_new", 1);
        rotated.previous = Some(Previous {
            hash: first.hash.clone(),
            until: 100,
        });
        index.apply(Change::Put(Box::new(rotated)));
        assert_eq!(index.find("prt_old").unwrap().1, Some(100));
        assert_eq!(index.find("prt_new").unwrap().1, None);
        index.apply(Change::Put(Box::new(first)));
        assert_eq!(index.find("prt_new").unwrap().0.record.version, 1);
    }

    #[test]
    fn a_retired_key_is_told_from_one_never_made() {
        let index = index();
        let mut r = record(&index, "ak_1", "prt_new", 2);
        r.retired = vec![to_hex(&index.pepper().digest("prt_first"))];
        index.apply(Change::Put(Box::new(r)));
        assert_eq!(index.find("prt_first").err(), Some(Absent::Revoked));
        assert_eq!(index.find("prt_never").err(), Some(Absent::Unknown));
    }

    #[test]
    fn a_key_two_records_hold_is_refused_until_one_is_revoked() {
        let index = index();
        index.apply(Change::Put(Box::new(record(&index, "ak_1", "prt_a", 0))));
        index.apply(Change::Put(Box::new(record(&index, "ak_2", "prt_a", 0))));
        assert_eq!(index.find("prt_a").err(), Some(Absent::Unknown));
        index.apply(Change::Deleted { id: "ak_2".into() });
        assert_eq!(index.find("prt_a").unwrap().0.record.id, "ak_1");
    }

    #[test]
    fn a_reread_drops_what_the_store_no_longer_has() {
        let index = index();
        index.apply(Change::Put(Box::new(record(&index, "ak_1", "prt_a", 0))));
        let kept = record(&index, "ak_2", "prt_b", 0);
        index.replace_all(vec![kept]);
        assert!(index.find("prt_a").is_err());
        assert!(index.find("prt_b").is_ok());
    }

    #[test]
    fn uses_are_handed_to_the_store_once() {
        let index = index();
        index.apply(Change::Put(Box::new(record(&index, "ak_1", "prt_a", 0))));
        index.find("prt_a").unwrap().0.used(50);
        assert_eq!(index.take_uses(), vec![("ak_1".to_string(), 50)]);
        assert!(index.take_uses().is_empty());
    }

    #[test]
    fn tombstones_are_kept_and_given_back_to_a_store_that_lost_them() {
        let index = index();
        let r = record(&index, "ak_1", "prt_a", 0);
        index.apply(Change::Put(Box::new(r.clone())));
        index.apply(Change::Put(Box::new(r.tombstone())));
        // The store lost everything: the tombstone goes back.
        assert_eq!(index.tombstones_to_restore(&[]), vec![r.tombstone()]);
        // ...and a live record of that key, under any id, is refused and buried.
        let revived = record(&index, "ak_2", "prt_a", 0);
        assert!(index.apply(Change::Put(Box::new(revived.clone()))));
        assert!(index.find("prt_a").is_err());
        let restore = index.tombstones_to_restore(std::slice::from_ref(&revived));
        assert!(restore.contains(&revived.tombstone()), "{restore:?}");
        // A live key the store merely lost stops here, but is not revoked.
        let lost = record(&index, "ak_3", "prt_b", 0);
        index.apply(Change::Put(Box::new(lost.clone())));
        index.replace_all(Vec::new());
        assert!(index.find("prt_b").is_err());
        assert!(!index.apply(Change::Put(Box::new(lost))));
        assert!(index.find("prt_b").is_ok());
    }
}
