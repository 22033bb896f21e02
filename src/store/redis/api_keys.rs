//! API keys in Redis: one hash of records by id (a revoked key's as a
//! tombstone), each write checked against the record held and announced on
//! the revocation channel in one script the replicas confirm (so a revoked
//! key stops on every instance as a revoked token does, and no write that
//! read the record before brings it back), and a hash of when each key was
//! last used.

use std::collections::HashMap;

use async_trait::async_trait;

use super::channel::Announcement;
use super::{decode, encode, now_secs, Redis};
use crate::api_keys::{Change, Record, Write};
use crate::store::{ApiKeyRecords, StoreError};

/// Writes each record only where the record held allows it (as
/// `Write::allows` says), and publishes its announcement: KEYS[1] the
/// records, KEYS[2] the use times; ARGV[1] the channel, then per write its
/// id, kind, the version a rotation read, the record and the announcement.
const WRITE_API_KEYS: &str = r"
local out = {}
for i = 2, #ARGV, 5 do
  local id, kind, from, record, announcement = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local held = redis.call('HGET', KEYS[1], id)
  local c = held and cjson.decode(held)
  local live = c and c.revoked ~= true
  local ok
  if kind == 'put' then
    local r = cjson.decode(record)
    ok = (not c) or (live and c.issuer == r.issuer and c.hash == r.hash)
  elseif kind == 'rotate' then
    ok = live and (c.version or 0) == from
  elseif kind == 'restore' then
    ok = (not c) or live
  else
    ok = live
  end
  if ok then
    redis.call('HSET', KEYS[1], id, record)
    if kind == 'revoke' or kind == 'restore' then
      redis.call('HDEL', KEYS[2], id)
    end
    redis.call('PUBLISH', ARGV[1], announcement)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
";

/// Sets a use time only when it is later than the one kept.
const NOTE_USE: &str = r"
for i = 1, #ARGV, 2 do
  local held = redis.call('HGET', KEYS[2], ARGV[i])
  if held and cjson.decode(held).revoked ~= true then
    local before = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
    if tonumber(ARGV[i + 1]) > before then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    end
  end
end
return 0
";

impl Redis {
    /// The records' hash: beside the revocations (`{rev}`) in a cluster,
    /// where the channel's transactions run, outside their pattern.
    fn api_keys_key(&self, kind: &str) -> String {
        match self.cluster {
            true => format!("{}{{rev}}{kind}", self.prefix),
            false => format!("{}{kind}", self.prefix),
        }
    }

    pub(super) fn new_note_use_script() -> redis::Script {
        redis::Script::new(NOTE_USE)
    }

    pub(super) fn new_write_api_keys_script() -> redis::Script {
        redis::Script::new(WRITE_API_KEYS)
    }
}

#[async_trait]
impl ApiKeyRecords for Redis {
    /// Each write checked against the record held and done in one script
    /// (the rules of `Write::allows`), announced on the channel.
    async fn write_api_keys(&self, writes: &[(Write, Record)]) -> Result<Vec<bool>, StoreError> {
        let key = self.api_keys_key("api-keys");
        let mut invocation = self.write_api_keys.prepare_invoke();
        invocation
            .key(&key)
            .key(self.api_keys_key("api-key-uses"))
            .arg(&self.channel);
        for (write, record) in writes {
            // A tombstone travels whole: every instance learns every
            // hash it retires, and can write it back.
            let change = Change::Put(Box::new(record.clone()));
            let announcement = Announcement {
                at: now_secs(),
                revocation: None,
                api_key: Some(change),
            };
            invocation
                .arg(&record.id)
                .arg(write.name())
                .arg(write.from_version())
                .arg(encode(record))
                .arg(encode(&announcement));
        }
        let mut pipe = redis::pipe();
        pipe.invoke_script(&invocation);
        let link = self.link.load_full();
        let (written,): (Vec<i64>,) = self
            .write_confirmed(
                &link,
                "write_api_keys",
                &key,
                pipe,
                Some(&self.write_api_keys),
            )
            .await?;
        Ok(written.into_iter().map(|w| w == 1).collect())
    }

    async fn api_keys(&self) -> Result<Vec<Record>, StoreError> {
        let key = self.api_keys_key("api-keys");
        let mut conn = self.conn();
        let all: Vec<(String, Vec<u8>)> = self
            .run(
                "api_keys",
                conn.query_at(redis::cmd("HGETALL").arg(&key), &key),
            )
            .await?;
        all.iter()
            .map(|(id, bytes)| decode(&format!("{key} {id}"), bytes))
            .collect()
    }

    async fn note_api_key_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut invocation = self.note_api_key_use.prepare_invoke();
        invocation
            .key(self.api_keys_key("api-key-uses"))
            .key(self.api_keys_key("api-keys"));
        for (id, at) in uses {
            invocation.arg(id).arg(at);
        }
        let mut conn = self.conn();
        let _: i64 = self
            .run("note_api_key_uses", invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn api_key_uses(&self) -> Result<HashMap<String, i64>, StoreError> {
        let key = self.api_keys_key("api-key-uses");
        let mut conn = self.conn();
        self.run(
            "api_key_uses",
            conn.query_at(redis::cmd("HGETALL").arg(&key), &key),
        )
        .await
    }
}
