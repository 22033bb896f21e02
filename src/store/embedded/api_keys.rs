//! The embedded store's API-key tables: records by id, and when each key
//! was last used (apart, so a use never rewrites a record a rotation is
//! writing).

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition};

use super::transactions::{backend, Redb};
use crate::api_keys::Record;
use crate::store::StoreError;

pub(super) const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
pub(super) const API_KEY_USES: TableDefinition<&str, i64> = TableDefinition::new("api_key_uses");

impl Redb {
    pub(super) fn put_api_keys(&self, records: &[Record]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut t = tx.open_table(API_KEYS).map_err(backend)?;
            for r in records {
                let bytes = serde_json::to_vec(r).expect("records serialize");
                t.insert(r.id.as_str(), bytes.as_slice()).map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    pub(super) fn delete_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let existed = {
            let mut t = tx.open_table(API_KEYS).map_err(backend)?;
            let existed = t.remove(id).map_err(backend)?.is_some();
            tx.open_table(API_KEY_USES)
                .map_err(backend)?
                .remove(id)
                .map_err(backend)?;
            existed
        };
        tx.commit().map_err(backend)?;
        Ok(existed)
    }

    pub(super) fn api_keys(&self) -> Result<Vec<Record>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(API_KEYS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let record = serde_json::from_slice(v.value())
                .map_err(|_| StoreError::Corrupt(format!("api key {}", k.value())))?;
            out.push(record);
        }
        Ok(out)
    }

    pub(super) fn note_api_key_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let keys = tx.open_table(API_KEYS).map_err(backend)?;
            let mut t = tx.open_table(API_KEY_USES).map_err(backend)?;
            for (id, at) in uses {
                // A key revoked meanwhile leaves no entry behind.
                if keys.get(id.as_str()).map_err(backend)?.is_none() {
                    continue;
                }
                let before = t.get(id.as_str()).map_err(backend)?.map(|v| v.value());
                if before.is_none_or(|b| b < *at) {
                    t.insert(id.as_str(), *at).map_err(backend)?;
                }
            }
        }
        tx.commit().map_err(backend)
    }

    pub(super) fn api_key_uses(&self) -> Result<HashMap<String, i64>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(API_KEY_USES).map_err(backend)?;
        let mut out = HashMap::new();
        for entry in t.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            out.insert(k.value().to_string(), v.value());
        }
        Ok(out)
    }
}
