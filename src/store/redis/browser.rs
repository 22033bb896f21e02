//! Browser sessions and claims in Redis:
//! - `P bs:<hash>`: a session, a hash of its record (`record`, JSON) and
//!   what a touch reads and writes without decoding it (`last_seen`,
//!   `idle_secs`, `expires_at`; `last_seen` is the one read back), expiring
//!   at its `ends_at()`;
//! - `P bs-sub:<provider>\0<sub>`, `P bs-sid:<provider>\0<sid>`: sets of
//!   the hashes of an owner's sessions, expiring at the latest absolute end
//!   (`expires_at`) of any of them, which no touch goes past. Provider
//!   names hold no control characters, so the first NUL ends the provider
//!   and a `sub` or `sid` may hold anything;
//! - `P claim:<key>`: a claim, `SET NX PX`.
//!
//! Every command and script touches one key, so in a cluster each goes to
//! its key's slot and nothing shares one. A session is written before its
//! index entries and deleted before them: once a put has returned, the
//! session is found by its owners, and an entry left over (its session
//! ended, expired, or written again for another owner) is dropped by the
//! next listing, which checks each against its record. (A listing that
//! found a record gone cannot drop the entry of a session written since
//! under that hash: hashes are of fresh random ids, never reused.) A
//! session past its `ends_at()` by this instance's clock counts as gone,
//! before Redis drops it.

use std::time::Duration;

use async_trait::async_trait;

use super::oauth::exat;
use super::{decode, encode, Redis};
use crate::clock::unix_now;
use crate::store::{BrowserSession, BrowserSessionRecords, SessionOwner, StoreError};

/// Notes a request (KEYS[1]; ARGV: now, and the later of now and this
/// instance's clock): `last_seen` moves to now if later, and the key's
/// expiry to the session's new end. 0, and nothing written, when the
/// session is gone or has ended by either time.
const TOUCH: &str = r"
local f = redis.call('HMGET', KEYS[1], 'last_seen', 'idle_secs', 'expires_at')
if not f[1] or not f[2] or not f[3] then return 0 end
local last, idle, absolute = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
local now = tonumber(ARGV[1])
if math.min(absolute, last + idle) <= tonumber(ARGV[2]) then return 0 end
if now > last then
  last = now
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
end
redis.call('EXPIREAT', KEYS[1], string.format('%.0f', math.min(absolute, last + idle)))
return 1
";

/// Adds a session's hash to an owner's set (KEYS[1]; ARGV: the hash, its
/// absolute end, seconds from now to then): the set is kept at least
/// until then. A new set (no expiry yet, TTL -1) gets the session's.
const INDEX: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 or ttl < tonumber(ARGV[3]) then
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
return 0
";

pub(super) struct Scripts {
    touch: redis::Script,
    index: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            touch: redis::Script::new(TOUCH),
            index: redis::Script::new(INDEX),
        }
    }
}

/// The session at `key`, as `HMGET key record last_seen` read it.
fn session_from(
    key: &str,
    (record, last_seen): (Option<Vec<u8>>, Option<i64>),
) -> Result<Option<BrowserSession>, StoreError> {
    let (Some(record), Some(last_seen)) = (record, last_seen) else {
        return Ok(None);
    };
    let session: BrowserSession = decode(key, &record)?;
    Ok(Some(BrowserSession {
        last_seen,
        ..session
    }))
}

impl Redis {
    fn session_key(&self, hash: &str) -> String {
        self.key("bs", hash)
    }

    fn owner_key(&self, provider: &str, owner: &SessionOwner) -> String {
        match owner {
            SessionOwner::Subject(sub) => self.key("bs-sub", &format!("{provider}\0{sub}")),
            SessionOwner::ProviderSession(sid) => self.key("bs-sid", &format!("{provider}\0{sid}")),
        }
    }

    fn claim_key(&self, key: &str) -> String {
        self.key("claim", key)
    }

    /// The session `hash` as held, ended or not.
    async fn held_browser_session(
        &self,
        op: &'static str,
        hash: &str,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let key = self.session_key(hash);
        let mut conn = self.conn();
        let fields = self
            .run(
                op,
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("record")
                    .arg("last_seen")
                    .query_async(&mut conn),
            )
            .await?;
        session_from(&key, fields)
    }
}

#[async_trait]
impl BrowserSessionRecords for Redis {
    async fn put_browser_session(
        &self,
        hash: &str,
        session: &BrowserSession,
    ) -> Result<(), StoreError> {
        let key = self.session_key(hash);
        let mut conn = self.conn();
        self.run(
            "put_browser_session",
            redis::pipe()
                .atomic()
                .del(&key)
                .ignore()
                .hset_multiple(
                    &key,
                    &[
                        ("last_seen", session.last_seen),
                        ("idle_secs", session.idle_secs),
                        ("expires_at", session.expires_at),
                    ],
                )
                .ignore()
                .hset(&key, "record", encode(session))
                .ignore()
                .cmd("EXPIREAT")
                .arg(&key)
                .arg(exat(session.ends_at()))
                .ignore()
                .exec_async(&mut conn),
        )
        .await?;
        let keep = session.expires_at - unix_now();
        for owner in session.owners() {
            let mut invocation = self.browser.index.prepare_invoke();
            invocation
                .key(self.owner_key(&session.provider, &owner))
                .arg(hash)
                .arg(exat(session.expires_at))
                .arg(keep);
            let _: i64 = self
                .run("put_browser_session", invocation.invoke_async(&mut conn))
                .await?;
        }
        Ok(())
    }

    async fn get_browser_session(&self, hash: &str) -> Result<Option<BrowserSession>, StoreError> {
        let found = self
            .held_browser_session("get_browser_session", hash)
            .await?;
        let now = unix_now();
        Ok(found.filter(|s| s.ends_at() > now))
    }

    async fn end_browser_session(&self, hash: &str) -> Result<Option<BrowserSession>, StoreError> {
        let key = self.session_key(hash);
        let mut conn = self.conn();
        let (fields,): ((Option<Vec<u8>>, Option<i64>),) = self
            .run(
                "end_browser_session",
                redis::pipe()
                    .atomic()
                    .cmd("HMGET")
                    .arg(&key)
                    .arg("record")
                    .arg("last_seen")
                    .del(&key)
                    .ignore()
                    .query_async(&mut conn),
            )
            .await?;
        let Some(ended) = session_from(&key, fields)? else {
            return Ok(None);
        };
        for owner in ended.owners() {
            self.run(
                "end_browser_session",
                redis::cmd("SREM")
                    .arg(self.owner_key(&ended.provider, &owner))
                    .arg(hash)
                    .exec_async(&mut conn),
            )
            .await?;
        }
        let now = unix_now();
        Ok(Some(ended).filter(|s| s.ends_at() > now))
    }

    async fn browser_sessions_of(
        &self,
        provider: &str,
        owner: &SessionOwner,
    ) -> Result<Vec<String>, StoreError> {
        let op = "browser_sessions_of";
        let set = self.owner_key(provider, owner);
        let mut conn = self.conn();
        let members: Vec<String> = self
            .run(op, redis::cmd("SMEMBERS").arg(&set).query_async(&mut conn))
            .await?;
        let now = unix_now();
        let (mut live, mut stale) = (Vec::new(), Vec::new());
        // One by one: in a cluster, each session is in a slot of its own.
        for hash in members {
            match self.held_browser_session(op, &hash).await? {
                Some(s) if s.ends_at() > now && s.owned_by(provider, owner) => live.push(hash),
                _ => stale.push(hash),
            }
        }
        if !stale.is_empty() {
            self.run(
                op,
                redis::cmd("SREM")
                    .arg(&set)
                    .arg(&stale)
                    .exec_async(&mut conn),
            )
            .await?;
        }
        Ok(live)
    }

    async fn touch_browser_session(&self, hash: &str, now: i64) -> Result<bool, StoreError> {
        let mut invocation = self.browser.touch.prepare_invoke();
        invocation
            .key(self.session_key(hash))
            .arg(now)
            .arg(now.max(unix_now()));
        let mut conn = self.conn();
        let touched: i64 = self
            .run("touch_browser_session", invocation.invoke_async(&mut conn))
            .await?;
        Ok(touched == 1)
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn();
        let set: Option<String> = self
            .run(
                "claim",
                redis::cmd("SET")
                    .arg(self.claim_key(key))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn release_claim(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        self.run(
            "release_claim",
            redis::cmd("DEL")
                .arg(self.claim_key(key))
                .exec_async(&mut conn),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::browser::checks;
    use crate::store::redis::oauth::tests::{store, tidy};

    /// Unix seconds the key expires at (-1: never, -2: no such key).
    async fn expires_at(s: &Redis, key: &str) -> i64 {
        let mut conn = s.conn();
        redis::cmd("EXPIRETIME")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_session_is_kept_replaced_and_ended() {
        let Some(s) = store().await else { return };
        checks::a_session_is_kept_replaced_and_ended(&s).await;
        tidy(&s).await;
    }

    #[tokio::test]
    async fn an_expired_session_reads_as_absent() {
        let Some(s) = store().await else { return };
        checks::an_expired_session_reads_as_absent(&s).await;
        tidy(&s).await;
    }

    #[tokio::test]
    async fn sessions_are_found_by_owner_at_their_provider() {
        let Some(s) = store().await else { return };
        checks::sessions_are_found_by_owner_at_their_provider(&s).await;
        tidy(&s).await;
    }

    #[tokio::test]
    async fn a_touch_extends_the_idle_end_and_not_a_gone_session() {
        let Some(s) = store().await else { return };
        checks::a_touch_extends_the_idle_end_and_not_a_gone_session(&s).await;
        tidy(&s).await;
    }

    #[tokio::test]
    async fn a_claim_is_held_once_until_released_or_lapsed() {
        let Some(s) = store().await else { return };
        checks::a_claim_is_held_once_until_released_or_lapsed(&s).await;
        tidy(&s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_of_many_concurrent_claims_wins() {
        let Some(s) = store().await else { return };
        let s = Arc::new(s);
        checks::one_of_many_concurrent_claims_wins(s.clone()).await;
        tidy(&s).await;
    }

    #[tokio::test]
    async fn keys_expire_with_their_session_and_outlive_no_owner() {
        let Some(s) = store().await else { return };
        let now = unix_now();
        let session = BrowserSession {
            last_seen: now - 500,
            ..BrowserSession::sample("p", "user-1", Some("sid-1"), now)
        };
        s.put_browser_session("h", &session).await.unwrap();
        let (record, by_sub) = (
            s.session_key("h"),
            s.owner_key("p", &SessionOwner::Subject("user-1".into())),
        );
        let by_sid = s.owner_key("p", &SessionOwner::ProviderSession("sid-1".into()));
        assert_eq!(expires_at(&s, &record).await, now + 100);
        // The owners' sets last as long as the session can, touched or not.
        assert_eq!(expires_at(&s, &by_sub).await, now + 3600);
        assert_eq!(expires_at(&s, &by_sid).await, now + 3600);
        assert!(s.touch_browser_session("h", now).await.unwrap());
        assert_eq!(expires_at(&s, &record).await, now + 600);

        // Redis dropped the record (it expired): its entries are dropped
        // by the next listing.
        let mut conn = s.conn();
        let _: i64 = redis::cmd("DEL")
            .arg(&record)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!s.touch_browser_session("h", now).await.unwrap());
        assert_eq!(
            expires_at(&s, &record).await,
            -2,
            "a touch brings nothing back"
        );
        let owner = SessionOwner::Subject("user-1".into());
        assert!(s.browser_sessions_of("p", &owner).await.unwrap().is_empty());
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&by_sub)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(members.is_empty(), "{members:?}");
        tidy(&s).await;
    }
}
