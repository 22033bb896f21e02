//! Refresh tokens in Redis: `P refresh:<sha256>`, the record, and
//! `P lineage:<sha256>`, the tokens minted from it (jti -> exp), both
//! expiring with it and under one hash tag in a cluster.

use async_trait::async_trait;

use super::{decode, encode, now_secs, Redis};
use crate::store::{replaced_marker, RefreshRecord, RefreshTokens, StoreError, MAX_LINEAGE};

#[async_trait]
impl RefreshTokens for Redis {
    async fn put_refresh(&self, hash: &str, record: &RefreshRecord) -> Result<(), StoreError> {
        let ttl = (record.expires_at - now_secs() as i64).max(1);
        let mut conn = self.conn();
        self.run(
            "put_refresh",
            redis::cmd("SET")
                .arg(self.refresh_key("refresh", hash))
                .arg(encode(record))
                .arg("EX")
                .arg(ttl)
                .exec_async(&mut conn),
        )
        .await
    }

    async fn get_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.get_decoded("get_refresh", &self.refresh_key("refresh", hash))
            .await
    }

    async fn delete_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let key = self.refresh_key("refresh", hash);
        let mut conn = self.conn();
        let (bytes, lineage): (Option<Vec<u8>>, Vec<(String, i64)>) = self
            .run(
                "delete_refresh",
                self.delete_refresh
                    .key(&key)
                    .key(self.refresh_key("lineage", hash))
                    .invoke_async(&mut conn),
            )
            .await?;
        let Some(bytes) = bytes else { return Ok(None) };
        let mut record: RefreshRecord = decode(&key, &bytes)?;
        record.tokens.extend(lineage);
        Ok(Some(record))
    }

    async fn replace_refresh(
        &self,
        hash: &str,
        seen: &RefreshRecord,
        next_hash: &str,
    ) -> Result<bool, StoreError> {
        // Records are written as `encode` writes them, so `seen` encodes
        // to the stored bytes exactly while it is unchanged.
        let marker = replaced_marker(seen, next_hash);
        let mut invocation = self.replace_refresh.prepare_invoke();
        invocation
            .key(self.refresh_key("refresh", hash))
            .arg(encode(seen))
            .arg(encode(&marker));
        let mut conn = self.conn();
        let replaced: i64 = self
            .run("replace_refresh", invocation.invoke_async(&mut conn))
            .await?;
        Ok(replaced == 1)
    }

    async fn extend_refresh(
        &self,
        hash: &str,
        minted: &[(String, i64)],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.extend_refresh.prepare_invoke();
        invocation
            .key(self.refresh_key("refresh", hash))
            .key(self.refresh_key("lineage", hash))
            .arg(now)
            .arg(MAX_LINEAGE);
        for (jti, exp) in minted {
            invocation.arg(jti).arg(exp);
        }
        let mut conn = self.conn();
        let added: i64 = self
            .run("extend_refresh", invocation.invoke_async(&mut conn))
            .await?;
        Ok(added == 1)
    }
}
