//! The shared store: every instance pointed at the same Redis server and key
//! prefix sees the same keys, refresh tokens, revocations and lockouts.
//!
//! Layout under the prefix `P`:
//! - `P key:<issuer>`: a generated signing key (set once, `SET NX`);
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
//! - `P bs:<hash>`, `P bs-sub:<provider>\0<sub>`, `P bs-sid:<provider>\0<sid>`
//!   and `P claim:<key>`: browser sessions, the sets they are found by, and
//!   claims (`browser`);
//! - channel `P revocations`: every revocation, published in the same
//!   transaction that writes it.
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{
    replaced_marker, revocation_key, BrowserSession, CodeRecord, Feeds, RefreshRecord,
    RegisteredClient, Reservation, SessionOwner, SharedRate, SsoSession, Store, StoreError,
    StoredKey, Upserted, MAX_DERIVED, MAX_LINEAGE,
};
use crate::api_keys::{Record, Write};
use crate::auth::revocation::Revocation;
use crate::clock::Clock;
use crate::config::RedisSettings;
use crate::metrics::StoreMetrics;

mod api_keys;
mod browser;
mod channel;
mod conn;
mod failover;
mod keys;
mod link;
mod oauth;
mod resync;
mod run;
mod scripts;
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
    /// Generated keys this instance signs with, written back if Redis lost them.
    signing_keys: DashMap<String, StoredKey>,
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
            signing_keys: DashMap::new(),
            api_key_secret_replaced: AtomicBool::new(false),
            metrics,
        })
    }

    /// The command connection to the master in use.
    fn conn(&self) -> Conn {
        self.link.load().conn.clone()
    }

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
impl Store for Redis {
    async fn signing_key(&self, issuer: &str, fresh: StoredKey) -> Result<StoredKey, StoreError> {
        let key = self.key("key", issuer);
        let mut conn = self.conn();
        let written = self
            .run(
                "signing_key",
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(encode(&fresh))
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(&key)
                    .query_async::<(Vec<u8>,)>(&mut conn),
            )
            .await;
        let bytes = match written {
            Ok((bytes,)) => bytes,
            // A reload during an outage keeps the key this instance signs with.
            Err(e) => return self.signing_keys.get(issuer).map(|k| k.clone()).ok_or(e),
        };
        let stored: StoredKey = decode(&key, &bytes)?;
        self.signing_keys.insert(issuer.to_string(), stored.clone());
        Ok(stored)
    }

    async fn stored_key(&self, issuer: &str) -> Result<Option<StoredKey>, StoreError> {
        self.get_decoded("signing_key", &self.key("key", issuer))
            .await
    }

    async fn add_revocations(&self, list: &[Revocation]) -> Result<(), StoreError> {
        self.write_revocations(list).await?;
        // Written first, read second (`derive_token` the other way round):
        // a token derived meanwhile is either found here or refused there.
        let mut seen: std::collections::HashSet<String> = list
            .iter()
            .filter_map(|r| match r {
                Revocation::Jti { jti, .. } => Some(jti.clone()),
                _ => None,
            })
            .collect();
        let mut parents: Vec<String> = seen.iter().cloned().collect();
        while !parents.is_empty() {
            let mut pipe = redis::pipe();
            for jti in &parents {
                pipe.cmd("HGETALL").arg(self.derived_key(jti));
            }
            let mut conn = self.conn();
            let found: Vec<Vec<(String, i64)>> = self
                .run("add_revocations", pipe.query_async(&mut conn))
                .await?;
            let derived: Vec<Revocation> = found
                .into_iter()
                .flatten()
                .filter(|(jti, _)| seen.len() < MAX_DERIVED && seen.insert(jti.clone()))
                .map(|(jti, exp)| Revocation::Jti {
                    jti,
                    expires_at: Some(exp),
                })
                .collect();
            if derived.is_empty() {
                break;
            }
            self.write_revocations(&derived).await?;
            parents = derived
                .into_iter()
                .filter_map(|r| match r {
                    Revocation::Jti { jti, .. } => Some(jti),
                    _ => None,
                })
                .collect();
        }
        Ok(())
    }

    async fn derive_token(&self, parent: &str, child: &(String, i64)) -> Result<bool, StoreError> {
        let parent_revoked = Revocation::Jti {
            jti: parent.to_string(),
            expires_at: None,
        };
        let keep = (child.1 + self.ttl_margin - now_secs() as i64).max(1);
        let mut invocation = self.derive_token.prepare_invoke();
        invocation
            .key(self.grouped("rev", &revocation_key(&parent_revoked)))
            .key(self.derived_key(parent))
            .arg(&child.0)
            .arg(child.1)
            .arg(keep);
        let mut conn = self.conn();
        let derived: i64 = self
            .run("derive_token", invocation.invoke_async(&mut conn))
            .await?;
        Ok(derived == 1)
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.scan(&self.grouped("rev", "*"))
            .await?
            .iter()
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    async fn purge_expired(&self, _cutoff: i64) -> Result<(), StoreError> {
        // Redis expires them itself.
        Ok(())
    }

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

    async fn take_rate(
        &self,
        key: &str,
        emission: Duration,
        capacity: f64,
    ) -> Result<Option<SharedRate>, StoreError> {
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

    fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    fn master(&self) -> Option<String> {
        Some(self.link.load().masters.join(","))
    }

    async fn write_api_keys(&self, writes: &[(Write, Record)]) -> Result<Vec<bool>, StoreError> {
        self.check_and_write_api_keys(writes).await
    }

    async fn api_keys(&self) -> Result<Vec<Record>, StoreError> {
        self.read_api_keys().await
    }

    async fn note_api_key_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        self.write_api_key_uses(uses).await
    }

    async fn api_key_uses(&self) -> Result<HashMap<String, i64>, StoreError> {
        self.read_api_key_uses().await
    }

    async fn put_code(&self, hash: &str, record: &CodeRecord) -> Result<(), StoreError> {
        self.store_code(hash, record).await
    }

    async fn redeem_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        self.redeem(hash).await
    }

    async fn code_issued(&self, hash: &str, refresh_hash: &str) -> Result<bool, StoreError> {
        self.note_code_issued(hash, refresh_hash).await
    }

    async fn put_sso(&self, session: &SsoSession) -> Result<(), StoreError> {
        self.store_sso(session).await
    }

    async fn get_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError> {
        self.read_sso(sid).await
    }

    async fn end_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError> {
        self.take_sso(sid).await
    }

    async fn sso_add_family(&self, sid: &str, family: &str) -> Result<bool, StoreError> {
        self.add_sso_family(sid, family).await
    }

    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        self.store_client(client).await
    }

    async fn get_client(
        &self,
        issuer: &str,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        self.read_client(issuer, client_id).await
    }

    async fn registered_clients(
        &self,
        issuer: Option<&str>,
    ) -> Result<Vec<RegisteredClient>, StoreError> {
        self.list_clients(issuer).await
    }

    async fn delete_client(&self, issuer: &str, client_id: &str) -> Result<bool, StoreError> {
        self.remove_client(issuer, client_id).await
    }

    async fn touch_client(
        &self,
        issuer: &str,
        client_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.note_client_use(issuer, client_id, now, expires_at)
            .await
    }

    async fn put_browser_session(
        &self,
        hash: &str,
        session: &BrowserSession,
    ) -> Result<(), StoreError> {
        self.store_browser_session(hash, session).await
    }

    async fn get_browser_session(&self, hash: &str) -> Result<Option<BrowserSession>, StoreError> {
        self.read_browser_session(hash).await
    }

    async fn end_browser_session(&self, hash: &str) -> Result<Option<BrowserSession>, StoreError> {
        self.take_browser_session(hash).await
    }

    async fn browser_sessions_of(
        &self,
        provider: &str,
        owner: &SessionOwner,
    ) -> Result<Vec<String>, StoreError> {
        self.list_browser_sessions(provider, owner).await
    }

    async fn touch_browser_session(&self, hash: &str, now: i64) -> Result<bool, StoreError> {
        self.note_browser_session_use(hash, now).await
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.take_claim(key, ttl).await
    }

    async fn release_claim(&self, key: &str) -> Result<(), StoreError> {
        self.drop_claim(key).await
    }

    async fn follow(&self, feeds: Feeds) {
        tokio::join!(self.follow_channel(&feeds), self.watch_sentinels());
    }
}
