//! What a failover must not lose, and finding the master after one: the
//! writes a security decision rests on (revocations, lockout counts and
//! the checks under way) wait for the replicas (`WAIT`), and a failure
//! has the sentinels asked which server is the master now.

use std::sync::Arc;

use redis::aio::ConnectionManager;

use super::{link, Redis, Source};
use crate::store::StoreError;

impl Redis {
    /// Asks the sentinels which server is the master, and moves to it if it
    /// is another; true if it moved.
    pub(super) async fn follow_master(&self) -> bool {
        if !self.source.follows_sentinels() {
            return false;
        }
        let client = match tokio::time::timeout(self.timeout, self.source.master()).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the sentinels named no master");
                return false;
            }
            Err(_) => return false,
        };
        let old = self.link.load().master.clone();
        if link::address(&client) == old {
            return false;
        }
        match Source::link(client, self.timeout).await {
            Ok(new) => {
                tracing::warn!(from = %old, to = %new.master, "store: the sentinels name a new master; moved to it");
                let _ = self.metrics.master.remove_label_values(&[&old]);
                self.metrics.master.with_label_values(&[&new.master]).set(1);
                self.link.store(Arc::new(new));
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "the new master does not answer yet");
                false
            }
        }
    }

    /// Waits until the write just made on `conn` is on `wait_replicas`
    /// replicas (at most as many as are connected; a lone master has none
    /// to wait for), or fails.
    pub(super) async fn replicated(
        &self,
        conn: &mut ConnectionManager,
        op: &'static str,
    ) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        // On the same connection: WAIT counts the writes made on it.
        let info: String = self
            .run(op, redis::cmd("INFO").arg("replication").query_async(conn))
            .await?;
        let wanted = self.wait_replicas.min(link::connected_replicas(&info));
        if wanted == 0 {
            return Ok(());
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(wanted).arg(self.wait_timeout.as_millis() as u64);
        let confirmed: u32 = self.run(op, wait.query_async(conn)).await?;
        if confirmed < wanted {
            self.metrics.errors.with_label_values(&[op]).inc();
            return Err(StoreError::Backend(format!(
                "{op}: written on the master but confirmed by {confirmed} of {wanted} \
                 replicas within {:?}",
                self.wait_timeout
            )));
        }
        Ok(())
    }
}
