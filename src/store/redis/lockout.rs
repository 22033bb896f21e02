//! Lockout counters in Redis: `P fail:<key>`, a hash of the failures, the
//! lock and the checks in flight (`p:<id>`), expiring one cool-down after
//! the last failure; all under `{fail}` in a cluster. Every change is a
//! script the replicas confirm.

use async_trait::async_trait;

use super::Redis;
use crate::store::{Lockout, Reservation, StoreError};

impl Redis {
    /// Runs a lockout script (its keys all under `{fail}`, in one slot,
    /// the first named by `first`) as a write the replicas confirm: a
    /// failover must forget neither a failure counted nor a check reserved
    /// (or given back: a lost release would hold its place until it
    /// lapses). The script's answer.
    async fn lockout_write<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &redis::Script,
        invocation: &redis::ScriptInvocation<'_>,
        first: Option<&str>,
    ) -> Result<T, StoreError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(invocation);
        let key = first.map(|k| self.grouped("fail", k)).unwrap_or_default();
        let link = self.link.load_full();
        let (answer,) = self
            .write_confirmed::<(T,)>(&link, op, &key, pipe, Some(script))
            .await?;
        Ok(answer)
    }
}

#[async_trait]
impl Lockout for Redis {
    async fn record_failures(
        &self,
        limits: &[(&str, u32)],
        cooldown: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.record_failures.prepare_invoke();
        invocation.arg(now).arg(cooldown.max(1));
        for &(key, threshold) in limits {
            invocation.key(self.grouped("fail", key)).arg(threshold);
        }
        let first = limits.first().map(|l| l.0);
        let locked: i64 = self
            .lockout_write("record_failures", &self.record_failures, &invocation, first)
            .await?;
        Ok(locked == 1)
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        // Checks in flight (`p:<id>`) stay counted.
        self.run(
            "clear_failures",
            redis::cmd("HDEL")
                .arg(self.grouped("fail", key))
                .arg("count")
                .arg("locked_until")
                .exec_async(&mut conn),
        )
        .await
    }

    async fn reserve_attempt(
        &self,
        limits: &[(&str, u32)],
        cooldown: i64,
        now: i64,
        id: &str,
    ) -> Result<Reservation, StoreError> {
        let mut invocation = self.reserve_attempt.prepare_invoke();
        invocation.arg(now).arg(cooldown.max(1)).arg(id);
        for &(key, threshold) in limits {
            invocation.key(self.grouped("fail", key)).arg(threshold);
        }
        let first = limits.first().map(|l| l.0);
        let first: i64 = self
            .lockout_write("reserve_attempt", &self.reserve_attempt, &invocation, first)
            .await?;
        Ok(match first {
            -2 => Reservation::Busy,
            n => u32::try_from(n).map_or(Reservation::Locked, Reservation::Granted),
        })
    }

    async fn release_attempts(&self, keys: &[&str], id: &str) -> Result<(), StoreError> {
        let mut invocation = self.release_attempts.prepare_invoke();
        invocation.arg(id);
        for key in keys {
            invocation.key(self.grouped("fail", key));
        }
        let _: i64 = self
            .lockout_write(
                "release_attempts",
                &self.release_attempts,
                &invocation,
                keys.first().copied(),
            )
            .await?;
        Ok(())
    }
}
