//! The embedded store's factors: each user's record under
//! `<issuer>\0<login>`, and the user handle index under
//! `<issuer>\0<handle>` (issuer names, logins and handles hold no NUL).

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};

use super::db::{backend, decode, encode, Redb};
use super::Embedded;
use crate::store::{Factors, StoreError, UserFactors};

pub(super) const FACTORS: TableDefinition<&str, &[u8]> = TableDefinition::new("factors");
pub(super) const HANDLES: TableDefinition<&str, &[u8]> = TableDefinition::new("factor_handles");

fn key(issuer: &str, name: &str) -> String {
    format!("{issuer}\0{name}")
}

#[async_trait]
impl Factors for Embedded {
    async fn factors(&self, issuer: &str, login: &str) -> Result<Option<UserFactors>, StoreError> {
        let key = key(issuer, login);
        let held = self.read("factors", |db| db.get(FACTORS, &key))?;
        held.map(|bytes| decode(&key, &bytes)).transpose()
    }

    async fn swap_factors(&self, factors: &UserFactors, read_at: u64) -> Result<bool, StoreError> {
        let record = factors.clone();
        self.run("swap_factors", move |db| db.swap_factors(&record, read_at))
            .await
    }

    async fn delete_factors(&self, issuer: &str, login: &str) -> Result<bool, StoreError> {
        let (issuer, login) = (issuer.to_string(), login.to_string());
        self.run("delete_factors", move |db| {
            db.delete_factors(&issuer, &login)
        })
        .await
    }

    async fn login_of_handle(
        &self,
        issuer: &str,
        handle: &str,
    ) -> Result<Option<String>, StoreError> {
        let key = key(issuer, handle);
        let held = self.read("login_of_handle", |db| db.get(HANDLES, &key))?;
        Ok(held.and_then(|bytes| String::from_utf8(bytes).ok()))
    }
}

impl Redb {
    fn swap_factors(&self, record: &UserFactors, read_at: u64) -> Result<bool, StoreError> {
        let key = key(&record.issuer, &record.login);
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut t = tx.open_table(FACTORS).map_err(backend)?;
            let version = match t.get(key.as_str()).map_err(backend)? {
                Some(v) => decode::<UserFactors>(&key, v.value())?.version,
                None => 0,
            };
            if version != read_at {
                return Ok(false);
            }
            t.insert(key.as_str(), encode(record).as_slice())
                .map_err(backend)?;
            if !record.handle.is_empty() {
                let mut handles = tx.open_table(HANDLES).map_err(backend)?;
                handles
                    .insert(key_of_handle(record).as_str(), record.login.as_bytes())
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(true)
    }

    fn delete_factors(&self, issuer: &str, login: &str) -> Result<bool, StoreError> {
        let key = key(issuer, login);
        let tx = self.db.begin_write().map_err(backend)?;
        let old = {
            let mut t = tx.open_table(FACTORS).map_err(backend)?;
            let old = t.remove(key.as_str()).map_err(backend)?;
            old.map(|v| decode::<UserFactors>(&key, v.value()))
                .transpose()?
        };
        if let Some(old) = old.as_ref().filter(|o| !o.handle.is_empty()) {
            let mut handles = tx.open_table(HANDLES).map_err(backend)?;
            handles
                .remove(key_of_handle(old).as_str())
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(old.is_some())
    }
}

fn key_of_handle(record: &UserFactors) -> String {
    key(&record.issuer, &record.handle)
}
