//! The embedded store's synchronous side: its redb tables and one
//! function per operation, each a transaction of its own. `Embedded` runs
//! them, writes on a blocking thread.

use std::collections::HashSet;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::auth::revocation::Revocation;
use crate::store::{
    replaced_marker, revocation_key, Failures, RefreshRecord, StoreError, StoredKey, Upserted,
    MAX_DERIVED, MAX_LINEAGE,
};

pub(super) const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
pub(super) const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
pub(super) const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");
pub(super) const FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("failures");
/// Imported principals, under `<issuer>\0<login>`.
pub(super) const PRINCIPALS: TableDefinition<&str, &[u8]> = TableDefinition::new("principals");
/// Tokens exchanged for a token, under its jti: (jti, exp) of each.
pub(super) const DERIVED: TableDefinition<&str, &[u8]> = TableDefinition::new("derived_tokens");

/// The synchronous redb operations; `Embedded` runs writes and scans on
/// blocking threads, one-key reads in place.
pub(super) struct Redb {
    pub(super) db: Database,
}

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store records serialize")
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt(key.to_string()))
}

impl Redb {
    pub(super) fn get(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(table).map_err(backend)?;
        Ok(t.get(key).map_err(backend)?.map(|v| v.value().to_vec()))
    }

    pub(super) fn put(
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

    pub(super) fn remove(
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

    pub(super) fn signing_key(
        &self,
        issuer: &str,
        fresh: StoredKey,
    ) -> Result<StoredKey, StoreError> {
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

    /// All in one transaction: a refresh token's revocations land together,
    /// with those of the tokens derived from them. Returns the latter.
    pub(super) fn add_revocations(
        &self,
        list: &[Revocation],
    ) -> Result<Vec<Revocation>, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let mut derived = Vec::new();
        {
            let mut t = tx.open_table(REVOCATIONS).map_err(backend)?;
            let links = tx.open_table(DERIVED).map_err(backend)?;
            let mut seen: HashSet<String> = HashSet::new();
            let mut next: Vec<String> = Vec::new();
            for r in list {
                t.insert(revocation_key(r).as_str(), encode(r).as_slice())
                    .map_err(backend)?;
                if let Revocation::Jti { jti, .. } = r {
                    seen.insert(jti.clone());
                    next.push(jti.clone());
                }
            }
            while let Some(parent) = next.pop() {
                let Some(v) = links.get(parent.as_str()).map_err(backend)? else {
                    continue;
                };
                let children: Vec<(String, i64)> = decode(&parent, v.value())?;
                for (jti, exp) in children {
                    if seen.len() >= MAX_DERIVED || !seen.insert(jti.clone()) {
                        continue;
                    }
                    let r = Revocation::Jti {
                        jti: jti.clone(),
                        expires_at: Some(exp),
                    };
                    t.insert(revocation_key(&r).as_str(), encode(&r).as_slice())
                        .map_err(backend)?;
                    derived.push(r);
                    next.push(jti);
                }
            }
        }
        tx.commit().map_err(backend)?;
        Ok(derived)
    }

    pub(super) fn derive_token(
        &self,
        parent: &str,
        child: &(String, i64),
    ) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let parent_revoked = Revocation::Jti {
            jti: parent.to_string(),
            expires_at: None,
        };
        {
            let revoked = tx.open_table(REVOCATIONS).map_err(backend)?;
            if revoked
                .get(revocation_key(&parent_revoked).as_str())
                .map_err(backend)?
                .is_some()
            {
                return Ok(false);
            }
            let mut links = tx.open_table(DERIVED).map_err(backend)?;
            let mut children: Vec<(String, i64)> = match links.get(parent).map_err(backend)? {
                Some(v) => decode(parent, v.value())?,
                None => Vec::new(),
            };
            children.push(child.clone());
            links
                .insert(parent, encode(&children).as_slice())
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(true)
    }

    pub(super) fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(REVOCATIONS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    pub(super) fn purge_expired(&self, cutoff: i64) -> Result<(), StoreError> {
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
            let mut t = tx.open_table(FAILURES).map_err(backend)?;
            t.retain(|_, v| {
                !matches!(
                    serde_json::from_slice::<Failures>(v),
                    Ok(f) if f.expires_at < cutoff && f.locked_until < cutoff
                )
            })
            .map_err(backend)?;
            // A token's derived tokens expire no later than it does: an
            // entry whose every child expired names nothing left to revoke.
            let mut t = tx.open_table(DERIVED).map_err(backend)?;
            t.retain(|_, v| {
                serde_json::from_slice::<Vec<(String, i64)>>(v).map_or(true, |children| {
                    children.iter().any(|(_, exp)| *exp >= cutoff)
                })
            })
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }

    pub(super) fn put_refresh(&self, hash: &str, record: &RefreshRecord) -> Result<(), StoreError> {
        self.put(REFRESH, hash, &encode(record))
    }

    pub(super) fn stored_key(&self, issuer: &str) -> Result<Option<StoredKey>, StoreError> {
        self.get(KEYS, issuer)?
            .map(|b| decode(issuer, &b))
            .transpose()
    }

    pub(super) fn get_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.get(REFRESH, hash)?
            .map(|b| decode(hash, &b))
            .transpose()
    }

    pub(super) fn delete_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.remove(REFRESH, hash)?
            .map(|b| decode(hash, &b))
            .transpose()
    }

    pub(super) fn replace_refresh(
        &self,
        hash: &str,
        seen: &RefreshRecord,
        next_hash: &str,
    ) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let replaced = {
            let mut t = tx.open_table(REFRESH).map_err(backend)?;
            let found: Option<RefreshRecord> = match t.get(hash).map_err(backend)? {
                Some(v) => Some(decode(hash, v.value())?),
                None => None,
            };
            if found.as_ref() == Some(seen) {
                let marker = replaced_marker(seen, next_hash);
                t.insert(hash, encode(&marker).as_slice())
                    .map_err(backend)?;
                true
            } else {
                false
            }
        };
        tx.commit().map_err(backend)?;
        Ok(replaced)
    }

    pub(super) fn extend_refresh(
        &self,
        hash: &str,
        minted: &[(String, i64)],
        now: i64,
    ) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let extended = {
            let mut t = tx.open_table(REFRESH).map_err(backend)?;
            let found: Option<RefreshRecord> = match t.get(hash).map_err(backend)? {
                Some(v) => Some(decode(hash, v.value())?),
                None => None,
            };
            match found {
                Some(mut r) if r.expires_at > now => {
                    r.tokens.retain(|&(_, exp)| exp >= now);
                    if r.tokens.len() + minted.len() > MAX_LINEAGE {
                        false
                    } else {
                        r.tokens.extend_from_slice(minted);
                        t.insert(hash, encode(&r).as_slice()).map_err(backend)?;
                        true
                    }
                }
                _ => false,
            }
        };
        tx.commit().map_err(backend)?;
        Ok(extended)
    }

    pub(super) fn failures(&self, key: &str) -> Result<Failures, StoreError> {
        Ok(self
            .get(FAILURES, key)?
            .map(|b| decode(key, &b))
            .transpose()?
            .unwrap_or_default())
    }

    pub(super) fn record_failures(
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

    pub(super) fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        self.remove(FAILURES, key).map(|_| ())
    }

    pub(super) fn put_principals(
        &self,
        issuer: &str,
        records: &[(String, String)],
    ) -> Result<Upserted, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let mut upserted = Upserted::default();
        {
            let mut t = tx.open_table(PRINCIPALS).map_err(backend)?;
            for (login, record) in records {
                let key = principal_key(issuer, login);
                let old = t.insert(key.as_str(), record.as_bytes()).map_err(backend)?;
                match old {
                    None => upserted.added += 1,
                    Some(old) if old.value() != record.as_bytes() => upserted.changed += 1,
                    Some(_) => {}
                }
            }
        }
        tx.commit().map_err(backend)?;
        Ok(upserted)
    }
}

/// Logins may hold any character but NUL.
pub(super) fn principal_key(issuer: &str, login: &str) -> String {
    format!("{issuer}\0{login}")
}
