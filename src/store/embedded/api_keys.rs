//! The embedded store's API-key tables: records by id (a revoked key's
//! as a tombstone), and when each key was last used (apart, so a use never
//! rewrites a record a rotation is writing).

use std::collections::HashMap;

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};

use super::db::{backend, Redb};
use super::Embedded;
use crate::api_keys::{Record, Write};
use crate::store::{ApiKeyRecords, StoreError};

pub(super) const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
pub(super) const API_KEY_USES: TableDefinition<&str, i64> = TableDefinition::new("api_key_uses");

fn decode(id: &str, bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt(format!("api key {id}")))
}

#[async_trait]
impl ApiKeyRecords for Embedded {
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
}

impl Redb {
    fn write_api_keys(&self, writes: &[(Write, Record)]) -> Result<Vec<bool>, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let mut written = Vec::with_capacity(writes.len());
        {
            let mut t = tx.open_table(API_KEYS).map_err(backend)?;
            let mut uses = tx.open_table(API_KEY_USES).map_err(backend)?;
            for (write, record) in writes {
                let current: Option<Record> = match t.get(record.id.as_str()).map_err(backend)? {
                    Some(v) => Some(decode(&record.id, v.value())?),
                    None => None,
                };
                let allowed = write.allows(current.as_ref(), record);
                if allowed {
                    let bytes = serde_json::to_vec(record).expect("records serialize");
                    t.insert(record.id.as_str(), bytes.as_slice())
                        .map_err(backend)?;
                    if matches!(write, Write::Revoke | Write::Restore) {
                        uses.remove(record.id.as_str()).map_err(backend)?;
                    }
                }
                written.push(allowed);
            }
        }
        tx.commit().map_err(backend)?;
        Ok(written)
    }

    fn api_keys(&self) -> Result<Vec<Record>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(API_KEYS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn note_api_key_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let keys = tx.open_table(API_KEYS).map_err(backend)?;
            let mut t = tx.open_table(API_KEY_USES).map_err(backend)?;
            for (id, at) in uses {
                // A key revoked meanwhile leaves no entry behind.
                let live = match keys.get(id.as_str()).map_err(backend)? {
                    Some(v) => !decode(id, v.value())?.revoked,
                    None => false,
                };
                if !live {
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

    fn api_key_uses(&self) -> Result<HashMap<String, i64>, StoreError> {
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
