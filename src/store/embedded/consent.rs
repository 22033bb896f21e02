//! The embedded store's consents, each under
//! `<issuer>\0<login>\0<client_id>`: one user's are one key range.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};

use super::db::{backend, decode, encode, Redb};
use super::Embedded;
use crate::clock::unix_now;
use crate::store::{Consent, Consents, StoreError};

pub(super) const CONSENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("consents");

/// The key range of one user's consents: issuer names and logins hold no NUL.
fn user_prefix(issuer: &str, login: &str) -> String {
    format!("{issuer}\0{login}\0")
}

#[async_trait]
impl Consents for Embedded {
    async fn put_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let key = user_prefix(&consent.issuer, &consent.login) + &consent.client_id;
        let value = encode(consent);
        self.run("put_consent", move |db| db.put(CONSENTS, &key, &value))
            .await
    }

    async fn consents(&self, issuer: &str, login: &str) -> Result<Vec<Consent>, StoreError> {
        let prefix = user_prefix(issuer, login);
        let held = self.read("consents", |db| db.consents_of(&prefix))?;
        let now = unix_now();
        Ok(held.into_iter().filter(|c| c.live(now)).collect())
    }

    async fn delete_consents(
        &self,
        issuer: &str,
        login: &str,
        client_id: Option<&str>,
    ) -> Result<usize, StoreError> {
        let prefix = user_prefix(issuer, login);
        let client_id = client_id.map(str::to_string);
        self.run("delete_consents", move |db| {
            db.delete_consents(&prefix, client_id.as_deref())
        })
        .await
    }
}

impl Redb {
    fn consents_of(&self, prefix: &str) -> Result<Vec<Consent>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(CONSENTS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn delete_consents(&self, prefix: &str, client_id: Option<&str>) -> Result<usize, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let mut deleted = 0;
        {
            let mut t = tx.open_table(CONSENTS).map_err(backend)?;
            let now = unix_now();
            let keys: Vec<String> = match client_id {
                Some(id) => vec![format!("{prefix}{id}")],
                None => {
                    let mut keys = Vec::new();
                    for entry in t.range(prefix..).map_err(backend)? {
                        let (k, _) = entry.map_err(backend)?;
                        if !k.value().starts_with(prefix) {
                            break;
                        }
                        keys.push(k.value().to_string());
                    }
                    keys
                }
            };
            for key in keys {
                if let Some(old) = t.remove(key.as_str()).map_err(backend)? {
                    let old: Consent = decode(&key, old.value())?;
                    deleted += usize::from(old.live(now));
                }
            }
        }
        tx.commit().map_err(backend)?;
        Ok(deleted)
    }
}
