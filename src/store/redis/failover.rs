//! What a failover must not lose, and finding the master after one: the
//! writes a security decision rests on (revocations, lockout counts and
//! the checks under way) wait for the replicas (`WAIT`), and a failure or
//! a sentinel's `+switch-master` has the sentinels asked which server is
//! the master now.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;
use redis::{FromRedisValue, Pipeline, Script, Value};

use super::{link, Link, Redis, Source};
use crate::store::StoreError;

impl Redis {
    /// Asks the sentinels which server is the master, and moves to it if it
    /// is another, or links to it again if the server linked to was found
    /// replaced (restarted empty, say, at the same address); true if it did.
    pub(super) async fn follow_master(&self) -> bool {
        if let Source::Cluster { .. } = self.source {
            self.read_cluster_masters().await;
            return false;
        }
        let old = self.link.load_full();
        let stale = old.stale.load(Ordering::Acquire);
        if !stale && !self.source.follows_sentinels() {
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
        if !stale && [link::address(&client)] == old.masters[..] {
            return false;
        }
        match Source::link(client, self.timeout, self.wait_timeout).await {
            Ok(new) if new.masters == old.masters => {
                tracing::warn!(master = %new.masters.join(","), "store: the server linked to was replaced (restarted?); linked to it again");
                self.link.store(Arc::new(new));
                true
            }
            Ok(new) => {
                tracing::warn!(from = %old.masters.join(","), to = %new.masters.join(","), "store: the sentinels name a new master; moved to it");
                self.show_masters(&old.masters, &new.masters);
                self.link.store(Arc::new(new));
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "the new master does not answer yet");
                false
            }
        }
    }

    /// Listens to the sentinels' `+switch-master` announcements (one
    /// sentinel at a time, the next after a failure), so a failover is
    /// followed as soon as it is announced, before a command fails on the
    /// old master. Without sentinels, does nothing, for ever.
    pub(super) async fn watch_sentinels(&self) {
        let Source::Sentinel {
            sentinels, name, ..
        } = &self.source
        else {
            return std::future::pending().await;
        };
        for sentinel in sentinels.iter().cycle() {
            if let Err(e) = self.listen_to(sentinel, name).await {
                tracing::debug!(error = %e, "lost a sentinel's announcements; asking the next");
            }
            tokio::time::sleep(self.timeout).await;
        }
    }

    async fn listen_to(&self, sentinel: &redis::Client, name: &str) -> redis::RedisResult<()> {
        let connect = tokio::time::timeout(self.timeout, sentinel.get_async_pubsub());
        let Ok(pubsub) = connect.await else {
            return Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )));
        };
        let mut pubsub = pubsub?;
        pubsub.subscribe("+switch-master").await?;
        let mut announcements = pubsub.into_on_message();
        while let Some(message) = announcements.next().await {
            // "<name> <old-ip> <old-port> <new-ip> <new-port>"
            let text: String = message.get_payload()?;
            if text.split(' ').next() == Some(name) {
                tracing::info!(announcement = %text, "store: a sentinel announces a new master");
                self.look_for_master.notify_one();
            }
        }
        Ok(())
    }

    /// Reads which masters serve a cluster's slots (after a failure, and
    /// now and then), so `/readyz` and the metrics name them.
    pub(super) async fn read_cluster_masters(&self) {
        let link = self.link.load_full();
        let mut conn = link.conn.clone();
        let read = tokio::time::timeout(self.timeout, Source::cluster_masters(&mut conn)).await;
        let Ok(Ok(masters)) = read else { return };
        if masters.is_empty() || masters == link.masters {
            return;
        }
        tracing::info!(from = %link.masters.join(","), to = %masters.join(","), "store: the cluster's masters changed");
        self.show_masters(&link.masters, &masters);
        self.link.store(Arc::new(Link::cluster(conn, masters)));
    }

    /// Moves `portero_store_master` from the `old` masters to the `new`.
    fn show_masters(&self, old: &[String], new: &[String]) {
        for master in old {
            let _ = self.metrics.master.remove_label_values(&[master]);
        }
        for master in new {
            self.metrics.master.with_label_values(&[master]).set(1);
        }
    }

    /// Checks that the server at `link`'s address is still the one linked
    /// to (`INFO replication`, on the link's connection, in a cluster on
    /// the master of `key`'s slot). Returns its online replicas.
    pub(super) async fn check_linked(
        &self,
        link: &Link,
        op: &'static str,
        key: &str,
    ) -> Result<u32, StoreError> {
        let mut conn = link.conn.clone();
        let info: String = self
            .run(
                op,
                conn.query_at(redis::cmd("INFO").arg("replication"), key),
            )
            .await?;
        self.same_server(link, op, &info)
    }

    /// Whether `info` (an `INFO replication` answer from `link`'s address)
    /// comes from the server linked to: one restarted there, or put there,
    /// does not hold what was written before, and writes to it would be
    /// lost once the sentinels make it a replica. Returns its online
    /// replicas.
    fn same_server(&self, link: &Link, op: &'static str, info: &str) -> Result<u32, StoreError> {
        if !link.same_server(info) {
            link.stale.store(true, Ordering::Release);
            self.metrics.errors.with_label_values(&[op]).inc();
            self.look_for_master.notify_one();
            return Err(StoreError::Unreachable(format!(
                "{op}: the server at {} is not the master linked to (restarted or replaced)",
                link.masters.join(",")
            )));
        }
        Ok(link::online_replicas(info))
    }

    /// Sends `write` (where `script` may be invoked) on `link`'s connection
    /// and returns its answers as `T` (those of the commands not ignored).
    /// With `wait_replicas`, the write counts only once that many replicas
    /// (at most as many as are online; a lone master has none to wait for)
    /// confirm it, and only if it went to the server linked to. `WAIT`
    /// counts the writes made on its own connection, so `CLIENT ID` is
    /// read with the write and again with the `WAIT`: on a connection made
    /// again in between, the `WAIT` would confirm nothing and pass.
    pub(super) async fn write_confirmed<T: FromRedisValue>(
        &self,
        link: &Link,
        op: &'static str,
        key: &str,
        mut write: Pipeline,
        script: Option<&Script>,
    ) -> Result<T, StoreError> {
        let mut conn = link.conn.clone();
        if self.wait_replicas == 0 {
            return self.run(op, conn.send(&write, script)).await;
        }
        write.cmd("CLIENT").arg("ID").cmd("INFO").arg("replication");
        let mut answers: Vec<Value> = self.run(op, conn.send(&write, script)).await?;
        let (info, connection) = match (answers.pop(), answers.pop()) {
            (Some(info), Some(id)) => (
                String::from_redis_value(info).map_err(|e| parse_error(op, e))?,
                i64::from_redis_value(id).map_err(|e| parse_error(op, e))?,
            ),
            _ => return Err(StoreError::Backend(format!("{op}: answers missing"))),
        };
        let answer = T::from_redis_value(Value::Array(answers)).map_err(|e| parse_error(op, e))?;
        let wanted = self.wait_replicas.min(self.same_server(link, op, &info)?);
        if wanted == 0 {
            return Ok(answer);
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(wanted).arg(self.wait_timeout.as_millis() as u64);
        let (confirmed, waited_on): (u32, i64) = self
            .run_within(
                self.timeout + self.wait_timeout,
                op,
                conn.pipe_at(&[wait, redis::cmd("CLIENT").arg("ID").clone()], key),
            )
            .await?;
        if waited_on != connection {
            self.metrics.errors.with_label_values(&[op]).inc();
            return Err(StoreError::Unreachable(format!(
                "{op}: the connection to the master was made again between the write and \
                 its WAIT; not confirmed"
            )));
        }
        if confirmed < wanted {
            self.metrics.errors.with_label_values(&[op]).inc();
            return Err(StoreError::Backend(format!(
                "{op}: written on the master but confirmed by {confirmed} of {wanted} \
                 replicas within {:?}",
                self.wait_timeout
            )));
        }
        Ok(answer)
    }
}

fn parse_error(op: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{op}: unexpected answer: {e}"))
}
