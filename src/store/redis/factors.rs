//! Factors in Redis: `P factors:<issuer>\0<login>`, a hash of `version`
//! and `record`, written by a script that compares the version first; and
//! `P factor-handle:<issuer>\0<handle>`, the login a passkey's user handle
//! names. Each script touches one key, so a cluster needs no hash tag.

use std::sync::LazyLock;

use async_trait::async_trait;

use super::{decode, encode, Redis};
use crate::store::{Factors, StoreError, UserFactors};

/// KEYS[1] the record; ARGV: the version read, the record, its version.
const SWAP: &str = r"
local held = redis.call('HGET', KEYS[1], 'version') or '0'
if held ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'record', ARGV[2])
return 1
";

impl Redis {
    fn factors_key(&self, issuer: &str, login: &str) -> String {
        self.key("factors", &format!("{issuer}\0{login}"))
    }

    fn handle_key(&self, issuer: &str, handle: &str) -> String {
        self.key("factor-handle", &format!("{issuer}\0{handle}"))
    }
}

#[async_trait]
impl Factors for Redis {
    async fn factors(&self, issuer: &str, login: &str) -> Result<Option<UserFactors>, StoreError> {
        let key = self.factors_key(issuer, login);
        let mut conn = self.conn();
        let held: Option<Vec<u8>> = self
            .run(
                "factors",
                redis::cmd("HGET")
                    .arg(&key)
                    .arg("record")
                    .query_async(&mut conn),
            )
            .await?;
        held.map(|bytes| decode(&key, &bytes)).transpose()
    }

    async fn swap_factors(&self, factors: &UserFactors, read_at: u64) -> Result<bool, StoreError> {
        // The index first: a handle that names a login with no passkey
        // under it is harmless (the record is read and checked), a passkey
        // whose handle names nobody could not sign in.
        if !factors.handle.is_empty() {
            let handle = self.handle_key(&factors.issuer, &factors.handle);
            let mut conn = self.conn();
            let _: () = self
                .run(
                    "swap_factors",
                    redis::cmd("SET")
                        .arg(&handle)
                        .arg(&factors.login)
                        .query_async(&mut conn),
                )
                .await?;
        }
        let key = self.factors_key(&factors.issuer, &factors.login);
        static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SWAP));
        let mut invocation = SCRIPT.prepare_invoke();
        invocation
            .key(&key)
            .arg(read_at.to_string())
            .arg(encode(factors))
            .arg(factors.version.to_string());
        let mut conn = self.conn();
        let written: i64 = self
            .run("swap_factors", invocation.invoke_async(&mut conn))
            .await?;
        Ok(written == 1)
    }

    async fn delete_factors(&self, issuer: &str, login: &str) -> Result<bool, StoreError> {
        let Some(held) = self.factors(issuer, login).await? else {
            return Ok(false);
        };
        let mut conn = self.conn();
        let mut keys = vec![self.factors_key(issuer, login)];
        if !held.handle.is_empty() {
            keys.push(self.handle_key(issuer, &held.handle));
        }
        // One key at a time: in a cluster the two may live on two nodes.
        let mut deleted = 0;
        for key in keys {
            let n: i64 = self
                .run(
                    "delete_factors",
                    redis::cmd("DEL").arg(&key).query_async(&mut conn),
                )
                .await?;
            deleted += n;
        }
        Ok(deleted > 0)
    }

    async fn login_of_handle(
        &self,
        issuer: &str,
        handle: &str,
    ) -> Result<Option<String>, StoreError> {
        let key = self.handle_key(issuer, handle);
        let mut conn = self.conn();
        self.run(
            "login_of_handle",
            redis::cmd("GET").arg(&key).query_async(&mut conn),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::factors::checks;
    use crate::store::redis::oauth::tests::{store, tidy};

    #[tokio::test]
    async fn a_record_is_written_only_over_the_version_read() {
        let Some(s) = store().await else { return };
        checks::a_record_is_written_only_over_the_version_read(&s).await;
        tidy(&s).await;
    }
}
