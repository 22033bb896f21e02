//! Secrets in Redis: `P key:<name>`, each set once (`SET NX`). Those this
//! instance uses are kept in memory too, to write back if Redis loses
//! them (`resync`) and to sign with through an outage.

use async_trait::async_trait;

use super::{decode, encode, Redis};
use crate::store::{Secrets, StoreError, StoredSecret};

#[async_trait]
impl Secrets for Redis {
    async fn secret_or_insert(
        &self,
        name: &str,
        fresh: StoredSecret,
    ) -> Result<StoredSecret, StoreError> {
        let key = self.key("key", name);
        let mut conn = self.conn();
        let written = self
            .run(
                "signing_key",
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(encode(&fresh))
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(&key)
                    .query_async::<(Vec<u8>,)>(&mut conn),
            )
            .await;
        let bytes = match written {
            Ok((bytes,)) => bytes,
            // A reload during an outage keeps the secret this instance uses.
            Err(e) => return self.secrets_held.get(name).map(|k| k.clone()).ok_or(e),
        };
        let stored: StoredSecret = decode(&key, &bytes)?;
        self.secrets_held.insert(name.to_string(), stored.clone());
        Ok(stored)
    }

    async fn secret(&self, name: &str) -> Result<Option<StoredSecret>, StoreError> {
        self.get_decoded("signing_key", &self.key("key", name))
            .await
    }
}
