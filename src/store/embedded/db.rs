//! The embedded store's redb file and what every domain's transactions
//! are made of: one-key reads and writes, and the records' encoding. Each
//! domain's tables and transactions live in its own file, beside its
//! trait's implementation for `Embedded`, which runs them (writes on a
//! blocking thread).

use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// The redb file; each domain adds its synchronous operations to it.
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
}
