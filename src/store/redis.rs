//! The shared store: every instance pointed at the same Redis server and key
//! prefix sees the same keys, refresh tokens, revocations and lockouts.
//!
//! Layout under the prefix `P`:
//! - `P key:<name>`: a secret, such as an issuer's generated signing key
//!   (set once, `SET NX`);
//! - `P rev:<kind>\0<id>`: a revocation, expiring with the token it stops;
//! - `P refresh:<sha256>`: a refresh token record, expiring with it;
//! - `P derived:<jti>`: tokens exchanged for the token `jti` (hash, jti ->
//!   exp), revoked with it; beside the revocations (`{rev}`) in a cluster;
//! - `P fail:<key>`: a lockout counter (hash), expiring one cool-down after
//!   the last failure;
//! - `P rate:<route>:<digest>`: a cluster-wide rate limit's theoretical
//!   arrival time (GCRA), expiring when its bucket is full again;
//! - `P principals:<issuer>`: principals `portero import` wrote (hash,
//!   login -> record);
//! - `P code:<sha256>`, `P sso:<sid>`, `P client:<issuer>\0<client_id>`
//!   and `P client-index`: the standard issuer's authorization codes,
//!   sign-on sessions and registered clients (`oauth`);
//! - `P consent:<issuer>\0<login>`: a user's consents (hash, client id
//!   -> record), expiring with the latest (`consent`);
//! - `P factors:<issuer>\0<login>` and `P factor-handle:<issuer>\0<handle>`:
//!   a user's passkeys, one-time-code secret and recovery codes, and the
//!   login a passkey's user handle names (`factors`);
//! - `P bs:<hash>`, `P bs-sub:<provider>\0<sub>`, `P bs-sid:<provider>\0<sid>`
//!   and `P claim:<key>`: browser sessions, the sets they are found by, and
//!   claims (`browser`);
//! - channel `P revocations`: every revocation, published in the same
//!   transaction that writes it.
//!
//! Each domain's trait is implemented in the file of its keys: `secrets`,
//! `revocations` (with `channel`), `refresh`, `lockout`, `principals`,
//! `rates`, `api_keys`, `oauth`, `browser`; this one keeps the connection
//! and the store's [`Upkeep`].
//!
//! The master is `url`'s, or the one the sentinels name now (`link`; asked
//! again after a failed command or a `READONLY` answer: `failover`). In a
//! Redis Cluster, keys a script or transaction touches together share a
//! hash tag (`{rev}`, `{fail}`, `{<hash>}` of a refresh token and its
//! lineage, `{client}`), and the channel carries `{rev}` too: the
//! subscription is on that slot's master, where revocations are published
//! (the cluster forwards a `PUBLISH` to every node, so any other will do
//! meanwhile).
//!
//! Each instance subscribes to the channel and applies what arrives to its
//! in-memory cache. After any disconnect it subscribes again and then
//! re-reads the whole set, so nothing published while it was away is
//! missed; revocations it holds that Redis lost (a restart without
//! persistence) are written back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{revocation_key, Feeds, StoreError, StoredSecret, Upkeep};
use crate::clock::Clock;
use crate::config::RedisSettings;
use crate::metrics::StoreMetrics;

mod api_keys;
mod browser;
mod channel;
mod conn;
mod consent;
mod factors;
mod failover;
mod keys;
mod link;
mod lockout;
mod oauth;
mod principals;
mod rates;
mod refresh;
mod resync;
mod revocations;
mod run;
mod scripts;
mod secrets;
use conn::Conn;
use link::{Link, Source};
use scripts::{
    DELETE_REFRESH, DERIVE_TOKEN, EXTEND_REFRESH, PUT_PRINCIPALS, RECORD_FAILURES,
    RELEASE_ATTEMPTS, REPLACE_REFRESH, RESERVE_ATTEMPT, TAKE_RATE,
};

/// Keys read per SCAN and MGET round trip during a resync.
const BATCH: usize = 1000;

pub struct Redis {
    source: Source,
    /// The master in use; swapped when the sentinels name another.
    link: ArcSwap<Link>,
    /// Set by a failure that may mean the master moved (with sentinels).
    look_for_master: Notify,
    /// Replicas a revocation waits for (`WAIT`), and how long.
    wait_replicas: u32,
    wait_timeout: Duration,
    prefix: String,
    /// Keys written together share a hash tag (a Redis Cluster).
    cluster: bool,
    channel: String,
    timeout: Duration,
    ttl_margin: i64,
    record_failures: redis::Script,
    reserve_attempt: redis::Script,
    extend_refresh: redis::Script,
    delete_refresh: redis::Script,
    replace_refresh: redis::Script,
    derive_token: redis::Script,
    release_attempts: redis::Script,
    take_rate: redis::Script,
    put_principals: redis::Script,
    note_api_key_use: redis::Script,
    write_api_keys: redis::Script,
    oauth: oauth::Scripts,
    browser: browser::Scripts,
    /// False from a failed operation or a lost subscription until the
    /// subscription is back and the revocation set re-read.
    reachable: AtomicBool,
    /// Secrets this instance uses (its generated signing keys among them),
    /// written back if Redis lost them.
    secrets_held: DashMap<String, StoredSecret>,
    /// Set when Redis was found holding another API-key secret than this
    /// instance's: it lost its own, and a gateway started meanwhile made
    /// one. Records written under it are buried at the next re-read.
    api_key_secret_replaced: AtomicBool,
    metrics: StoreMetrics,
}

impl Redis {
    /// The record at `key`, if there is one (`op` names it in metrics).
    async fn get_decoded<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let mut conn = self.conn();
        let bytes: Option<Vec<u8>> = self
            .run(op, redis::cmd("GET").arg(key).query_async(&mut conn))
            .await?;
        bytes.map(|b| decode(key, &b)).transpose()
    }
}

fn now_secs() -> f64 {
    Clock::system().unix_f64()
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store records serialize")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt(key.to_string()))
}

impl Redis {
    /// Connects to the master (through the sentinels, if given), and fails
    /// if it cannot be reached within the timeout.
    pub async fn connect(
        settings: &RedisSettings,
        metrics: StoreMetrics,
    ) -> Result<Redis, StoreError> {
        let source = Source::new(settings)?;
        let link = source
            .connect(settings.timeout, settings.wait_timeout)
            .await?;
        for master in &link.masters {
            metrics.master.with_label_values(&[master]).set(1);
        }
        metrics.up.set(1);
        let cluster = matches!(source, Source::Cluster { .. });
        let prefix = &settings.key_prefix;
        Ok(Redis {
            source,
            link: ArcSwap::from_pointee(link),
            look_for_master: Notify::new(),
            wait_replicas: settings.wait_replicas,
            wait_timeout: settings.wait_timeout,
            prefix: prefix.clone(),
            cluster,
            channel: if cluster {
                format!("{prefix}{{rev}}revocations")
            } else {
                format!("{prefix}revocations")
            },
            timeout: settings.timeout,
            ttl_margin: settings.ttl_margin.as_secs() as i64,
            record_failures: redis::Script::new(RECORD_FAILURES),
            reserve_attempt: redis::Script::new(RESERVE_ATTEMPT),
            extend_refresh: redis::Script::new(EXTEND_REFRESH),
            delete_refresh: redis::Script::new(DELETE_REFRESH),
            replace_refresh: redis::Script::new(REPLACE_REFRESH),
            derive_token: redis::Script::new(DERIVE_TOKEN),
            release_attempts: redis::Script::new(RELEASE_ATTEMPTS),
            take_rate: redis::Script::new(TAKE_RATE),
            put_principals: redis::Script::new(PUT_PRINCIPALS),
            note_api_key_use: Redis::new_note_use_script(),
            write_api_keys: Redis::new_write_api_keys_script(),
            oauth: oauth::Scripts::new(),
            browser: browser::Scripts::new(),
            reachable: AtomicBool::new(true),
            secrets_held: DashMap::new(),
            api_key_secret_replaced: AtomicBool::new(false),
            metrics,
        })
    }

    /// The command connection to the master in use.
    fn conn(&self) -> Conn {
        self.link.load().conn.clone()
    }
}

#[async_trait]
impl Upkeep for Redis {
    async fn purge_expired(&self, _cutoff: i64) -> Result<(), StoreError> {
        // Redis expires them itself.
        Ok(())
    }

    fn master(&self) -> Option<String> {
        Some(self.link.load().masters.join(","))
    }

    fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    async fn follow(&self, feeds: Feeds) {
        tokio::join!(self.follow_channel(&feeds), self.watch_sentinels());
    }
}
