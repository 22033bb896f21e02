//! The embedded store's imported principals, each under
//! `<issuer>\0<login>`.

use async_trait::async_trait;
use redb::TableDefinition;

use super::db::{backend, Redb};
use super::Embedded;
use crate::store::{ImportedPrincipals, StoreError, Upserted};

/// Imported principals, under `<issuer>\0<login>`.
pub(super) const PRINCIPALS: TableDefinition<&str, &[u8]> = TableDefinition::new("principals");

#[async_trait]
impl ImportedPrincipals for Embedded {
    async fn put_principals(
        &self,
        issuer: &str,
        records: &[(String, String)],
    ) -> Result<Upserted, StoreError> {
        let (issuer, records) = (issuer.to_string(), records.to_vec());
        self.run("put_principals", move |db| {
            db.put_principals(&issuer, &records)
        })
        .await
    }

    async fn principal(&self, issuer: &str, login: &str) -> Result<Option<String>, StoreError> {
        let key = principal_key(issuer, login);
        let bytes = self.read("principal", |db| db.get(PRINCIPALS, &key))?;
        bytes
            .map(|b| String::from_utf8(b).map_err(|_| StoreError::Corrupt(key.clone())))
            .transpose()
    }
}

impl Redb {
    fn put_principals(
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
fn principal_key(issuer: &str, login: &str) -> String {
    format!("{issuer}\0{login}")
}
