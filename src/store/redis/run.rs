//! Running one Redis operation: within the timeout, its failure counted,
//! and the store marked unreachable when Redis did not answer (or the
//! master moved), until the subscription proves otherwise.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Redis;
use crate::store::StoreError;

impl Redis {
    /// Runs one Redis operation within the timeout; a failure is counted
    /// and marks the store unreachable until the subscription proves otherwise.
    pub(super) async fn run<T>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        self.run_within(self.timeout, op, f).await
    }

    /// [`Redis::run`] within `limit`: longer for a `WAIT`, which the server
    /// answers only once the replicas confirm or `wait_timeout` passes.
    pub(super) async fn run_within<T>(
        &self,
        limit: Duration,
        op: &'static str,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let error = match tokio::time::timeout(limit, f).await {
            Ok(Ok(v)) => return Ok(v),
            // A master demoted by a failover refuses writes (find the new
            // one); a cluster refuses while a shard has none, or redirects.
            Ok(Err(e))
                if matches!(
                    e.code(),
                    Some("READONLY" | "CLUSTERDOWN" | "TRYAGAIN" | "MOVED")
                ) =>
            {
                e.to_string()
            }
            Ok(Err(e))
                if !(e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error()) =>
            {
                // Redis answered, with an error: it is reachable.
                self.metrics.errors.with_label_values(&[op]).inc();
                return Err(StoreError::Backend(format!("{op}: {e}")));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {limit:?}"),
        };
        self.metrics.errors.with_label_values(&[op]).inc();
        self.set_reachable(false, &error);
        self.look_for_master.notify_one();
        Err(StoreError::Unreachable(format!("{op}: {error}")))
    }

    pub(super) fn set_reachable(&self, up: bool, why: &str) {
        if self.reachable.swap(up, Ordering::AcqRel) != up {
            self.metrics.up.set(up as i64);
            if up {
                tracing::info!("store reachable again");
            } else {
                tracing::warn!(
                    error = why,
                    "store unreachable: validating from cached keys and revocations"
                );
            }
        }
    }
}
