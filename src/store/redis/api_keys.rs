//! API keys in Redis: one hash of records by id, written and announced on
//! the revocation channel in one transaction the replicas confirm (so a
//! revoked key stops on every instance as a revoked token does), and a
//! hash of when each key was last used.

use std::collections::HashMap;

use super::channel::Announcement;
use super::{decode, encode, now_secs, Redis};
use crate::api_keys::{Change, Record};
use crate::store::StoreError;

/// Sets a use time only when it is later than the one kept.
const NOTE_USE: &str = r"
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
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

    pub(super) async fn write_api_keys(&self, records: &[Record]) -> Result<(), StoreError> {
        let key = self.api_keys_key("api-keys");
        let mut pipe = redis::pipe();
        pipe.atomic();
        for r in records {
            pipe.cmd("HSET")
                .arg(&key)
                .arg(&r.id)
                .arg(encode(r))
                .ignore();
            self.announce(&mut pipe, Change::Put(Box::new(r.clone())));
        }
        let link = self.link.load_full();
        self.write_confirmed(&link, "put_api_keys", &key, pipe, None)
            .await
    }

    pub(super) async fn remove_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let key = self.api_keys_key("api-keys");
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HDEL").arg(&key).arg(id);
        pipe.cmd("HDEL")
            .arg(self.api_keys_key("api-key-uses"))
            .arg(id)
            .ignore();
        self.announce(&mut pipe, Change::Deleted { id: id.to_string() });
        let link = self.link.load_full();
        let (removed,): (i64,) = self
            .write_confirmed(&link, "delete_api_key", &key, pipe, None)
            .await?;
        Ok(removed > 0)
    }

    fn announce(&self, pipe: &mut redis::Pipeline, change: Change) {
        let announcement = Announcement {
            at: now_secs(),
            revocation: None,
            api_key: Some(change),
        };
        pipe.cmd("PUBLISH")
            .arg(&self.channel)
            .arg(encode(&announcement))
            .ignore();
    }

    pub(super) async fn read_api_keys(&self) -> Result<Vec<Record>, StoreError> {
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

    pub(super) async fn write_api_key_uses(
        &self,
        uses: &[(String, i64)],
    ) -> Result<(), StoreError> {
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

    pub(super) async fn read_api_key_uses(&self) -> Result<HashMap<String, i64>, StoreError> {
        let key = self.api_keys_key("api-key-uses");
        let mut conn = self.conn();
        self.run(
            "api_key_uses",
            conn.query_at(redis::cmd("HGETALL").arg(&key), &key),
        )
        .await
    }

    pub(super) fn new_note_use_script() -> redis::Script {
        redis::Script::new(NOTE_USE)
    }
}
