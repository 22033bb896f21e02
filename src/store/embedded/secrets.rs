//! The embedded store's secrets: one table, each under its name.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};

use super::db::{backend, decode, encode, Redb};
use super::Embedded;
use crate::store::{Secrets, StoreError, StoredSecret};

/// Secrets by name, in the table the file names `keys`.
pub(super) const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");

#[async_trait]
impl Secrets for Embedded {
    async fn secret_or_insert(
        &self,
        name: &str,
        fresh: StoredSecret,
    ) -> Result<StoredSecret, StoreError> {
        let name = name.to_string();
        self.run("signing_key", move |db| db.secret_or_insert(&name, fresh))
            .await
    }

    async fn secret(&self, name: &str) -> Result<Option<StoredSecret>, StoreError> {
        self.read("signing_key", |db| db.secret(name))
    }
}

impl Redb {
    fn secret_or_insert(
        &self,
        name: &str,
        fresh: StoredSecret,
    ) -> Result<StoredSecret, StoreError> {
        // Read and insert in one write transaction: the first writer wins.
        let tx = self.db.begin_write().map_err(backend)?;
        let kept = {
            let mut t = tx.open_table(SECRETS).map_err(backend)?;
            let existing = t.get(name).map_err(backend)?.map(|v| v.value().to_vec());
            match existing {
                Some(bytes) => decode(name, &bytes)?,
                None => {
                    t.insert(name, encode(&fresh).as_slice()).map_err(backend)?;
                    fresh
                }
            }
        };
        tx.commit().map_err(backend)?;
        Ok(kept)
    }

    fn secret(&self, name: &str) -> Result<Option<StoredSecret>, StoreError> {
        self.get(SECRETS, name)?
            .map(|b| decode(name, &b))
            .transpose()
    }
}
