//! Imported principals in Redis: `P principals:<issuer>`, a hash of
//! login -> record.

use async_trait::async_trait;

use super::Redis;
use crate::store::{ImportedPrincipals, StoreError, Upserted};

#[async_trait]
impl ImportedPrincipals for Redis {
    async fn put_principals(
        &self,
        issuer: &str,
        records: &[(String, String)],
    ) -> Result<Upserted, StoreError> {
        let mut invocation = self.put_principals.prepare_invoke();
        invocation.key(self.key("principals", issuer));
        for (login, record) in records {
            invocation.arg(login).arg(record);
        }
        let mut conn = self.conn();
        let (added, changed): (usize, usize) = self
            .run("put_principals", invocation.invoke_async(&mut conn))
            .await?;
        Ok(Upserted { added, changed })
    }

    async fn principal(&self, issuer: &str, login: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        self.run(
            "principal",
            redis::cmd("HGET")
                .arg(self.key("principals", issuer))
                .arg(login)
                .query_async(&mut conn),
        )
        .await
    }
}
