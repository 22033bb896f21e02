//! Rates every instance shares in Redis: `P rate:<route>:<digest>`, a
//! bucket's theoretical arrival time (GCRA), expiring when the bucket is
//! full again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;

use super::Redis;
use crate::store::{SharedRate, SharedRates, StoreError};

#[async_trait]
impl SharedRates for Redis {
    async fn take_rate(
        &self,
        key: &str,
        emission: Duration,
        capacity: f64,
    ) -> Result<Option<SharedRate>, StoreError> {
        // Unreachable: the caller counts on its own at once rather than
        // wait out a timeout on every request.
        if !self.reachable.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut invocation = self.take_rate.prepare_invoke();
        invocation
            .key(self.key("rate", key))
            .arg(emission.as_micros().max(1) as u64)
            .arg(capacity);
        let mut conn = self.conn();
        let (admitted, remaining, retry_us, reset_us): (i64, i64, i64, i64) = self
            .run("take_rate", invocation.invoke_async(&mut conn))
            .await?;
        let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
        Ok(Some(SharedRate {
            admitted: admitted == 1,
            remaining: remaining.max(0) as u64,
            reset: micros(reset_us),
            retry_after: micros(retry_us),
        }))
    }
}
