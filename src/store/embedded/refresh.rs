//! The embedded store's refresh tokens, each under the SHA-256 of the
//! token, with the tokens minted from it in its record.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};

use super::db::{backend, decode, encode, Redb};
use super::Embedded;
use crate::store::{replaced_marker, RefreshRecord, RefreshTokens, StoreError, MAX_LINEAGE};

pub(super) const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");

#[async_trait]
impl RefreshTokens for Embedded {
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
}

impl Redb {
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

    fn replace_refresh(
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

    fn extend_refresh(
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
}
