//! The revocation channel: revocations (and API-key changes) written and announced in one
//! transaction the replicas confirm, and followed by every instance, which
//! subscribes again (and re-reads the set) after any loss.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{encode, now_secs, revocation_key, Redis};
use crate::api_keys::{Change, Write};
use crate::auth::revocation::Revocation;
use crate::store::{ApiKeyRecords, Feeds, StoreError};

/// How often a live subscription is checked (and the command connection
/// nudged to reconnect), so an outage is noticed within about this long.
const PING_EVERY: Duration = Duration::from_millis(500);
/// A cluster's masters are read again every this many pings (10 s).
const MASTERS_EVERY: u32 = 20;
/// Retry delays for the subscription after a disconnect.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_millis(500);

/// What travels on the revocation channel: a revocation, or a change to
/// an API key.
#[derive(Serialize, Deserialize)]
pub(super) struct Announcement {
    /// When it was written (Unix seconds, fractional): the start of the propagation lag.
    pub(super) at: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) revocation: Option<Revocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) api_key: Option<Change>,
}

impl Redis {
    /// Writes and announces revocations in one transaction the replicas confirm.
    pub(super) async fn write_revocations(&self, list: &[Revocation]) -> Result<(), StoreError> {
        let now = now_secs();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut last = String::new();
        for r in list {
            last = self.grouped("rev", &revocation_key(r));
            let set = pipe.cmd("SET").arg(&last).arg(encode(r));
            if let Some(ttl) = self.revocation_ttl(r, now as i64) {
                set.arg("EX").arg(ttl);
            }
            set.ignore();
            let announcement = Announcement {
                at: now,
                revocation: Some(r.clone()),
                api_key: None,
            };
            pipe.cmd("PUBLISH")
                .arg(&self.channel)
                .arg(encode(&announcement))
                .ignore();
        }
        let link = self.link.load_full();
        self.write_confirmed(&link, "add_revocations", &last, pipe, None)
            .await
    }

    /// Seconds a revocation is kept: until its token would be refused anyway.
    fn revocation_ttl(&self, r: &Revocation, now: i64) -> Option<i64> {
        match r {
            Revocation::Jti {
                expires_at: Some(exp),
                ..
            } => Some((exp + self.ttl_margin - now).max(1)),
            _ => None,
        }
    }

    /// Applies an announcement; true when it brought back an API key
    /// revoked here, whose tombstone the store must be given again.
    fn arrived(&self, feeds: &Feeds, payload: &[u8]) -> bool {
        match serde_json::from_slice::<Announcement>(payload) {
            Ok(a) => {
                if let Some(r) = &a.revocation {
                    feeds.revocations.apply(r);
                }
                let revived = a.api_key.is_some_and(|change| feeds.api_keys.apply(change));
                self.metrics
                    .propagation
                    .observe((now_secs() - a.at).max(0.0));
                revived
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignored a malformed revocation announcement");
                false
            }
        }
    }

    /// Re-reads every API key record, first writing back the tombstones
    /// held here that the store lost or that an import revived since: a
    /// key revoked anywhere stays revoked whatever the store went through.
    async fn reread_api_keys(&self, feeds: &Feeds) -> Result<(), StoreError> {
        let mut records = self.api_keys().await?;
        let mut restore = feeds.api_keys.tombstones_to_restore(&records);
        // Redis lost the secret keys are hashed under, and a gateway made
        // another: what was written under it (an import of a key revoked
        // here among it) cannot be told from a revived key. It is buried.
        if self.api_key_secret_replaced.swap(false, Ordering::AcqRel) {
            let strangers = feeds.api_keys.unknown_live(&records);
            tracing::error!(
                count = strangers.len(),
                "the store's API-key secret was made while it had lost this instance's: the keys written under it are revoked (make them again once every instance restarts on one secret)"
            );
            restore.extend(strangers.iter().map(|r| r.tombstone()));
        }
        if !restore.is_empty() {
            tracing::warn!(
                count = restore.len(),
                "the store had lost revoked API keys, or a key revoked here was written again; writing their tombstones back"
            );
            let writes: Vec<_> = restore.into_iter().map(|r| (Write::Restore, r)).collect();
            self.write_api_keys(&writes).await?;
            records = self.api_keys().await?;
        }
        feeds.api_keys.replace_all(records);
        Ok(())
    }

    /// Follows the revocation channel for good, subscribing again (on the
    /// master in use: it may have moved) whenever the subscription is lost.
    pub(super) async fn follow_channel(&self, feeds: &Feeds) {
        let mut retry = RETRY_MIN;
        loop {
            let error = self.follow_once(feeds, &mut retry).await;
            tracing::debug!(error = %error, retry = ?retry, "revocation subscription lost; retrying");
            // Asked now, and again as soon as a failover is announced (or
            // noticed by a command) during the wait: the old address may
            // answer again soon, a restarted server there holding nothing.
            let moved = self.follow_master().await
                || tokio::select! {
                    _ = tokio::time::sleep(retry) => false,
                    _ = self.look_for_master.notified() => self.follow_master().await,
                };
            retry = if moved {
                RETRY_MIN
            } else {
                (retry * 2).min(RETRY_MAX)
            };
        }
    }

    /// Subscribes, resynchronises, then applies announcements until the
    /// connection fails. `retry` goes back to its minimum once subscribed.
    async fn follow_once(&self, feeds: &Feeds, retry: &mut Duration) -> StoreError {
        let link = self.link.load_full();
        let client = self
            .source
            .subscriber(&link, &self.channel, self.timeout)
            .await;
        let mut pubsub = match self.run("subscribe", client.get_async_pubsub()).await {
            Ok(p) => p,
            Err(e) => return e,
        };
        if let Err(e) = self.run("subscribe", pubsub.subscribe(&self.channel)).await {
            return e;
        }
        let (mut sink, mut stream) = pubsub.split();
        // Nothing is read from, or written back to, a server restarted (or
        // put) at the master's address: it is not the master linked to.
        // (Not asked of a server whose replication id is unknown: one that
        // refused `INFO` when linked, or a cluster.)
        if link.replid.is_some() {
            if let Err(e) = self.check_linked(&link, "subscribe", &self.channel).await {
                return e;
            }
        }
        // Subscribed first, read second: a revocation published in between
        // arrives on the channel, so none is missed.
        match self.resync(&feeds.revocations).await {
            Ok(count) => tracing::debug!(count, "revocation set read from the store"),
            Err(e) => return e,
        }
        if let Err(e) = self.reread_api_keys(feeds).await {
            return e;
        }
        *retry = RETRY_MIN;
        self.set_reachable(true, "");
        let mut tick = tokio::time::interval(PING_EVERY);
        let mut ticks = 0;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(m) => if self.arrived(feeds, m.get_payload_bytes()) {
                        if let Err(e) = self.reread_api_keys(feeds).await {
                            return e;
                        }
                    },
                    None => {
                        let e = "the subscription connection closed";
                        self.set_reachable(false, e);
                        return StoreError::Unreachable(e.into());
                    }
                },
                _ = self.look_for_master.notified() => {
                    if self.follow_master().await {
                        // Resubscribe on the new master, and re-read what
                        // the failover may have kept from this instance.
                        return StoreError::Unreachable("the master moved".into());
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.run("ping", sink.ping::<redis::Value>()).await {
                        return e;
                    }
                    // Commands go over another connection: keep it alive too,
                    // and let it reconnect before a token request needs it.
                    let mut conn = self.conn();
                    if let Err(e) = self.run("ping", redis::cmd("PING").query_async::<String>(&mut conn)).await {
                        return e;
                    }
                    self.set_reachable(true, "");
                    ticks += 1;
                    if self.cluster && ticks % MASTERS_EVERY == 0 {
                        self.read_cluster_masters().await;
                    }
                }
            }
        }
    }
}
