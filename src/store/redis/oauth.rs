//! The standard issuer's records in Redis, each JSON under its own key,
//! expiring at its `expires_at` (`EXAT`):
//! - `P code:<sha256>`: an authorization code;
//! - `P sso:<sid>`: a sign-on session;
//! - `P client:<issuer>\0<client_id>`: a registered client, and
//!   `P client-index`, a sorted set of `<issuer>\0<client_id>` by
//!   `expires_at` to list them by, without a SCAN of the whole keyspace.
//!   In a cluster both are under `{client}`, one slot: one script writes
//!   a record and its index entry together, and one `MGET` reads them all.
//!
//! Read-modify-writes are scripts. A record past its `expires_at` by this
//! instance's clock counts as gone, even to a script, before Redis drops it.

use async_trait::async_trait;

use super::{decode, encode, Redis, BATCH};
use crate::clock::unix_now;
use crate::store::{
    CodeRecord, RegisteredClient, RegisteredClients, SignOn, SsoSession, StoreError,
};

/// Redeems a code (KEYS[1]; ARGV[1] now): returns it as it was and leaves
/// it used, and replayed if it was used already; its expiry is kept. Nil
/// when no live code is held. (A code has no list, which `cjson` would
/// write back as an object when empty, and its numbers are Unix seconds,
/// which it writes back exactly: it can be decoded and encoded here.)
const REDEEM_CODE: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then return false end
local c = cjson.decode(held)
if c.expires_at <= tonumber(ARGV[1]) then return false end
if c.used == true then c.replayed = true end
c.used = true
redis.call('SET', KEYS[1], cjson.encode(c), 'KEEPTTL')
return held
";

/// Notes the refresh token a code's first redemption issued (KEYS[1];
/// ARGV: its hash, now): 0, and nothing written, if the code is gone or
/// was replayed.
const CODE_ISSUED: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then return 0 end
local c = cjson.decode(held)
if c.expires_at <= tonumber(ARGV[2]) or c.replayed == true then return 0 end
c.refresh_hash = ARGV[1]
redis.call('SET', KEYS[1], cjson.encode(c), 'KEEPTTL')
return 1
";

/// Adds a refresh family to a live session (KEYS[1]; ARGV: the family,
/// now); 0 if it has ended or expired. The list holds an entry once
/// written, so `cjson` encodes it as a list.
const SSO_ADD_FAMILY: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then return 0 end
local s = cjson.decode(held)
if s.expires_at <= tonumber(ARGV[2]) then return 0 end
local families = s.families or {}
for _, f in ipairs(families) do
  if f == ARGV[1] then return 1 end
end
families[#families + 1] = ARGV[1]
s.families = families
redis.call('SET', KEYS[1], cjson.encode(s), 'KEEPTTL')
return 1
";

/// Writes a client (KEYS: record, index; ARGV: record, expires_at, index
/// member, now) and drops the index entries of clients expired by now.
const PUT_CLIENT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
return 0
";

/// Deletes a client and its index entry (KEYS: record, index; ARGV:
/// member, now); 1 if it was there and live.
const DELETE_CLIENT: &str = r"
local held = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if held and cjson.decode(held).expires_at > tonumber(ARGV[2]) then return 1 end
return 0
";

/// Replaces a client's record (KEYS: record, index; ARGV: the record read,
/// the record touched, expires_at, member) if it is still, byte for byte,
/// the one read: 0 if it changed meanwhile. A client's lists may be empty,
/// which `cjson` would write back as objects, so the record is changed
/// by the caller and only compared here. 1 also when it is gone: it
/// stays gone.
const TOUCH_CLIENT: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then return 1 end
if held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
";

/// Rounds of read and compare a touch makes before it gives way to the
/// writes it keeps meeting: those are uses noted, or the client changed,
/// at the same moment.
const TOUCH_ROUNDS: usize = 5;

pub(super) struct Scripts {
    redeem_code: redis::Script,
    code_issued: redis::Script,
    sso_add_family: redis::Script,
    put_client: redis::Script,
    delete_client: redis::Script,
    touch_client: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            redeem_code: redis::Script::new(REDEEM_CODE),
            code_issued: redis::Script::new(CODE_ISSUED),
            sso_add_family: redis::Script::new(SSO_ADD_FAMILY),
            put_client: redis::Script::new(PUT_CLIENT),
            delete_client: redis::Script::new(DELETE_CLIENT),
            touch_client: redis::Script::new(TOUCH_CLIENT),
        }
    }
}

/// A client's index entry; issuer names hold no NUL.
fn member(issuer: &str, client_id: &str) -> String {
    format!("{issuer}\0{client_id}")
}

/// `EXAT` refuses 0 and below; any past time expires the key at once.
pub(super) fn exat(expires_at: i64) -> i64 {
    expires_at.max(1)
}

impl Redis {
    fn code_key(&self, hash: &str) -> String {
        self.key("code", hash)
    }

    fn sso_key(&self, sid: &str) -> String {
        self.key("sso", sid)
    }

    /// In a cluster, in the index's slot.
    fn client_key(&self, member: &str) -> String {
        self.grouped("client", member)
    }

    fn client_index(&self) -> String {
        match self.cluster {
            true => format!("{}{{client}}index", self.prefix),
            false => format!("{}client-index", self.prefix),
        }
    }

    /// Writes `bytes` at `key` until `expires_at`.
    async fn set_until(
        &self,
        op: &'static str,
        key: &str,
        bytes: Vec<u8>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        self.run(
            op,
            redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .arg("EXAT")
                .arg(exat(expires_at))
                .exec_async(&mut conn),
        )
        .await
    }
}

#[async_trait]
impl SignOn for Redis {
    async fn put_code(&self, hash: &str, record: &CodeRecord) -> Result<(), StoreError> {
        let key = self.code_key(hash);
        self.set_until("put_code", &key, encode(record), record.expires_at)
            .await
    }

    async fn redeem_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        let key = self.code_key(hash);
        let mut invocation = self.oauth.redeem_code.prepare_invoke();
        invocation.key(&key).arg(unix_now());
        let mut conn = self.conn();
        let was: Option<Vec<u8>> = self
            .run("redeem_code", invocation.invoke_async(&mut conn))
            .await?;
        was.map(|b| decode(&key, &b)).transpose()
    }

    async fn code_issued(&self, hash: &str, refresh_hash: &str) -> Result<bool, StoreError> {
        let mut invocation = self.oauth.code_issued.prepare_invoke();
        invocation
            .key(self.code_key(hash))
            .arg(refresh_hash)
            .arg(unix_now());
        let mut conn = self.conn();
        let noted: i64 = self
            .run("code_issued", invocation.invoke_async(&mut conn))
            .await?;
        Ok(noted == 1)
    }

    async fn put_sso(&self, session: &SsoSession) -> Result<(), StoreError> {
        let key = self.sso_key(&session.sid);
        self.set_until("put_sso", &key, encode(session), session.expires_at)
            .await
    }

    async fn get_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError> {
        let found: Option<SsoSession> = self.get_decoded("get_sso", &self.sso_key(sid)).await?;
        let now = unix_now();
        Ok(found.filter(|s| s.expires_at > now))
    }

    async fn end_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError> {
        let key = self.sso_key(sid);
        let mut conn = self.conn();
        let bytes: Option<Vec<u8>> = self
            .run(
                "end_sso",
                redis::cmd("GETDEL").arg(&key).query_async(&mut conn),
            )
            .await?;
        let found: Option<SsoSession> = bytes.map(|b| decode(&key, &b)).transpose()?;
        let now = unix_now();
        Ok(found.filter(|s| s.expires_at > now))
    }

    async fn sso_add_family(&self, sid: &str, family: &str) -> Result<bool, StoreError> {
        let mut invocation = self.oauth.sso_add_family.prepare_invoke();
        invocation
            .key(self.sso_key(sid))
            .arg(family)
            .arg(unix_now());
        let mut conn = self.conn();
        let added: i64 = self
            .run("sso_add_family", invocation.invoke_async(&mut conn))
            .await?;
        Ok(added == 1)
    }
}

#[async_trait]
impl RegisteredClients for Redis {
    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        let member = member(&client.issuer, &client.client_id);
        let mut invocation = self.oauth.put_client.prepare_invoke();
        invocation
            .key(self.client_key(&member))
            .key(self.client_index())
            .arg(encode(client))
            .arg(exat(client.expires_at))
            .arg(&member)
            .arg(unix_now());
        let mut conn = self.conn();
        let _: i64 = self
            .run("put_client", invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn get_client(
        &self,
        issuer: &str,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        let key = self.client_key(&member(issuer, client_id));
        let found: Option<RegisteredClient> = self.get_decoded("get_client", &key).await?;
        let now = unix_now();
        Ok(found.filter(|c| c.expires_at > now))
    }

    async fn registered_clients(
        &self,
        issuer: Option<&str>,
    ) -> Result<Vec<RegisteredClient>, StoreError> {
        let now = unix_now();
        let mut conn = self.conn();
        let members: Vec<String> = self
            .run(
                "registered_clients",
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.client_index())
                    .arg(format!("({now}"))
                    .arg("+inf")
                    .query_async(&mut conn),
            )
            .await?;
        let of_issuer = |m: &String| match issuer {
            Some(issuer) => m
                .strip_prefix(issuer)
                .is_some_and(|rest| rest.starts_with('\0')),
            None => true,
        };
        let keys: Vec<String> = members
            .iter()
            .filter(|m| of_issuer(m))
            .map(|m| self.client_key(m))
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for batch in keys.chunks(BATCH) {
            let values: Vec<Option<Vec<u8>>> = self
                .run(
                    "registered_clients",
                    redis::cmd("MGET").arg(batch).query_async(&mut conn),
                )
                .await?;
            // A client deleted or expired since the index was read reads as nil.
            for (key, bytes) in batch.iter().zip(values) {
                let Some(bytes) = bytes else { continue };
                let client: RegisteredClient = decode(key, &bytes)?;
                if client.expires_at > now {
                    out.push(client);
                }
            }
        }
        Ok(out)
    }

    async fn delete_client(&self, issuer: &str, client_id: &str) -> Result<bool, StoreError> {
        let member = member(issuer, client_id);
        let mut invocation = self.oauth.delete_client.prepare_invoke();
        invocation
            .key(self.client_key(&member))
            .key(self.client_index())
            .arg(&member)
            .arg(unix_now());
        let mut conn = self.conn();
        let deleted: i64 = self
            .run("delete_client", invocation.invoke_async(&mut conn))
            .await?;
        Ok(deleted == 1)
    }

    async fn touch_client(
        &self,
        issuer: &str,
        client_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let member = member(issuer, client_id);
        let key = self.client_key(&member);
        for _ in 0..TOUCH_ROUNDS {
            let mut conn = self.conn();
            let held: Option<Vec<u8>> = self
                .run(
                    "touch_client",
                    redis::cmd("GET").arg(&key).query_async(&mut conn),
                )
                .await?;
            let Some(held) = held else { return Ok(()) };
            let client: RegisteredClient = decode(&key, &held)?;
            if client.expires_at <= now {
                return Ok(());
            }
            let touched = RegisteredClient {
                last_used: now,
                expires_at,
                ..client.clone()
            };
            if touched == client {
                return Ok(());
            }
            let mut invocation = self.oauth.touch_client.prepare_invoke();
            invocation
                .key(&key)
                .key(self.client_index())
                .arg(held)
                .arg(encode(&touched))
                .arg(exat(expires_at))
                .arg(&member);
            let done: i64 = self
                .run("touch_client", invocation.invoke_async(&mut conn))
                .await?;
            if done == 1 {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{RedisSettings, RedisTarget};
    use crate::metrics::StoreMetrics;
    use crate::store::oauth::checks;

    /// A store on this machine's Redis (`PORTERO_TEST_REDIS_URL`, else
    /// 127.0.0.1:6379) under a prefix of its own; `None`, the test
    /// skipped, without one, unless `PORTERO_REQUIRE_REDIS=1`.
    pub(in crate::store::redis) async fn store() -> Option<Redis> {
        let url = std::env::var("PORTERO_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let settings = RedisSettings {
            target: RedisTarget::Url(url),
            password_env: None,
            tls: false,
            ca_file: None,
            client_cert: None,
            key_prefix: format!("portero-unit:{:08x}:", rand::random::<u32>()),
            timeout: Duration::from_secs(2),
            ttl_margin: Duration::ZERO,
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(100),
        };
        match Redis::connect(&settings, StoreMetrics::detached()).await {
            Ok(store) => Some(store),
            Err(e) if std::env::var("PORTERO_REQUIRE_REDIS").as_deref() == Ok("1") => {
                panic!("no Redis: {e}")
            }
            Err(e) => {
                eprintln!("skipped: no Redis ({e})");
                None
            }
        }
    }

    /// Deletes what a test wrote (its records would expire, its index not).
    pub(in crate::store::redis) async fn tidy(store: &Redis) {
        let mut conn = store.conn();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", store.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in keys {
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once() {
        let Some(s) = store().await else { return };
        checks::a_code_is_redeemed_once(&s).await;
        tidy(&s).await;
    }

    #[tokio::test]
    async fn an_expired_code_is_not_held() {
        let Some(s) = store().await else { return };
        checks::an_expired_code_is_not_held(&s).await;
        tidy(&s).await;
    }

    #[tokio::test]
    async fn a_redeemed_code_keeps_its_expiry() {
        let Some(s) = store().await else { return };
        let code = CodeRecord::sample("i", unix_now() + 60);
        s.put_code("h", &code).await.unwrap();
        s.redeem_code("h").await.unwrap();
        assert!(s.code_issued("h", "r").await.unwrap());
        s.redeem_code("h").await.unwrap();
        let mut conn = s.conn();
        let at: i64 = redis::cmd("EXPIRETIME")
            .arg(s.code_key("h"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(at, code.expires_at);
        tidy(&s).await;
    }

    #[tokio::test]
    async fn a_session_ends_and_takes_no_family_after() {
        let Some(s) = store().await else { return };
        checks::a_session_ends_and_takes_no_family_after(&s).await;
        let mut conn = s.conn();
        let session = SsoSession::sample("sid-b", unix_now() + 60);
        s.put_sso(&session).await.unwrap();
        assert!(s.sso_add_family("sid-b", "f").await.unwrap());
        let at: i64 = redis::cmd("EXPIRETIME")
            .arg(s.sso_key("sid-b"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(at, session.expires_at, "adding a family keeps the expiry");
        tidy(&s).await;
    }

    #[tokio::test]
    async fn clients_are_listed_by_issuer_and_stay_deleted() {
        let Some(s) = store().await else { return };
        checks::clients_are_listed_by_issuer_and_stay_deleted(&s).await;
        // Touched, deleted and expired clients left no stale index entry
        // that a later listing would trip on.
        let mut conn = s.conn();
        let mut members: Vec<String> = redis::cmd("ZRANGE")
            .arg(s.client_index())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        members.sort();
        assert_eq!(members, ["a\0c1", "ab\0c1"]);
        tidy(&s).await;
    }
}
