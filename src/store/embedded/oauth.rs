//! The embedded store's issuer tables: authorization codes (under the
//! code's hash), sign-on sessions (under their sid) and registered clients
//! (under `<issuer>\0<client_id>`). Every read-modify-write is one write
//! transaction; a record past its `expires_at` reads as absent until
//! `purge_expired` drops it.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::db::{backend, decode, encode, Redb};
use super::Embedded;
use crate::clock::unix_now;
use crate::store::{
    CodeRecord, RegisteredClient, RegisteredClients, SignOn, SsoSession, StoreError,
};

pub(super) const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("oauth_codes");
pub(super) const SSO: TableDefinition<&str, &[u8]> = TableDefinition::new("sso_sessions");
pub(super) const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("registered_clients");

#[async_trait]
impl SignOn for Embedded {
    async fn put_code(&self, hash: &str, record: &CodeRecord) -> Result<(), StoreError> {
        let (hash, record) = (hash.to_string(), record.clone());
        self.run("put_code", move |db| db.put_code(&hash, &record))
            .await
    }

    async fn redeem_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        let hash = hash.to_string();
        self.run("redeem_code", move |db| db.redeem_code(&hash, unix_now()))
            .await
    }

    async fn code_issued(&self, hash: &str, refresh_hash: &str) -> Result<bool, StoreError> {
        let (hash, refresh_hash) = (hash.to_string(), refresh_hash.to_string());
        self.run("code_issued", move |db| {
            db.code_issued(&hash, &refresh_hash, unix_now())
        })
        .await
    }

    async fn put_sso(&self, session: &SsoSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.run("put_sso", move |db| db.put_sso(&session)).await
    }

    async fn get_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError> {
        self.read("get_sso", |db| db.get_sso(sid, unix_now()))
    }

    async fn end_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError> {
        let sid = sid.to_string();
        self.run("end_sso", move |db| db.end_sso(&sid, unix_now()))
            .await
    }

    async fn sso_add_family(&self, sid: &str, family: &str) -> Result<bool, StoreError> {
        let (sid, family) = (sid.to_string(), family.to_string());
        self.run("sso_add_family", move |db| {
            db.sso_add_family(&sid, &family, unix_now())
        })
        .await
    }
}

#[async_trait]
impl RegisteredClients for Embedded {
    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        let client = client.clone();
        self.run("put_client", move |db| db.put_client(&client))
            .await
    }

    async fn get_client(
        &self,
        issuer: &str,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        self.read("get_client", |db| {
            db.get_client(issuer, client_id, unix_now())
        })
    }

    async fn registered_clients(
        &self,
        issuer: Option<&str>,
    ) -> Result<Vec<RegisteredClient>, StoreError> {
        let issuer = issuer.map(str::to_string);
        self.run("registered_clients", move |db| {
            db.registered_clients(issuer.as_deref(), unix_now())
        })
        .await
    }

    async fn delete_client(&self, issuer: &str, client_id: &str) -> Result<bool, StoreError> {
        let (issuer, client_id) = (issuer.to_string(), client_id.to_string());
        self.run("delete_client", move |db| {
            db.delete_client(&issuer, &client_id, unix_now())
        })
        .await
    }

    async fn touch_client(
        &self,
        issuer: &str,
        client_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (issuer, client_id) = (issuer.to_string(), client_id.to_string());
        self.run("touch_client", move |db| {
            db.touch_client(&issuer, &client_id, now, expires_at)
        })
        .await
    }
}

/// A record that lapses at its `expires_at` (Unix seconds).
trait Expiring: Serialize + DeserializeOwned {
    fn expires_at(&self) -> i64;

    fn live(&self, now: i64) -> bool {
        self.expires_at() > now
    }
}

impl Expiring for CodeRecord {
    fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

impl Expiring for SsoSession {
    fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

impl Expiring for RegisteredClient {
    fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

/// Issuer names hold no NUL, so one issuer's clients are one key range.
fn client_key(issuer: &str, client_id: &str) -> String {
    format!("{issuer}\0{client_id}")
}

/// All purging needs of any of these records.
#[derive(Deserialize)]
struct Lapse {
    expires_at: i64,
}

impl Redb {
    /// Drops codes, sessions and clients that ran out by `cutoff`, in a
    /// transaction of its own beside `purge_expired`'s.
    pub(super) fn purge_oauth(&self, cutoff: i64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        purge_issuer_records(&tx, cutoff)?;
        tx.commit().map_err(backend)
    }
}

/// Drops codes, sessions, clients and consents that ran out by `cutoff`.
fn purge_issuer_records(tx: &WriteTransaction, cutoff: i64) -> Result<(), StoreError> {
    for table in [CODES, SSO, CLIENTS, super::consent::CONSENTS] {
        tx.open_table(table)
            .map_err(backend)?
            .retain(|_, v| {
                // Unreadable records are kept, as elsewhere: for an operator to see.
                serde_json::from_slice::<Lapse>(v).map_or(true, |r| r.expires_at > cutoff)
            })
            .map_err(backend)?;
    }
    Ok(())
}

impl Redb {
    /// The record under `key`, unless it has expired.
    fn live<T: Expiring>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        now: i64,
    ) -> Result<Option<T>, StoreError> {
        let found: Option<T> = self.get(table, key)?.map(|b| decode(key, &b)).transpose()?;
        Ok(found.filter(|r| r.live(now)))
    }

    /// Deletes the record under `key`; it as it was, unless it had expired.
    fn take<T: Expiring>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        now: i64,
    ) -> Result<Option<T>, StoreError> {
        let found: Option<T> = self
            .remove(table, key)?
            .map(|b| decode(key, &b))
            .transpose()?;
        Ok(found.filter(|r| r.live(now)))
    }

    /// Reads the record under `key` (`None` if absent or expired) and
    /// writes back what `change` makes of it, if anything, in one write
    /// transaction; `change`'s answer.
    fn update<T: Expiring, R>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        now: i64,
        change: impl FnOnce(Option<T>) -> (Option<T>, R),
    ) -> Result<R, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let (written, answer) = {
            let mut t = tx.open_table(table).map_err(backend)?;
            let found: Option<T> = match t.get(key).map_err(backend)? {
                Some(v) => Some(decode(key, v.value())?),
                None => None,
            };
            let (write, answer) = change(found.filter(|r| r.live(now)));
            if let Some(r) = &write {
                t.insert(key, encode(r).as_slice()).map_err(backend)?;
            }
            (write.is_some(), answer)
        };
        if written {
            tx.commit().map_err(backend)?;
        } else {
            // Nothing changed: no commit, no fsync.
            tx.abort().map_err(backend)?;
        }
        Ok(answer)
    }

    fn put_code(&self, hash: &str, record: &CodeRecord) -> Result<(), StoreError> {
        self.put(CODES, hash, &encode(record))
    }

    fn redeem_code(&self, hash: &str, now: i64) -> Result<Option<CodeRecord>, StoreError> {
        self.update(CODES, hash, now, |found: Option<CodeRecord>| match found {
            Some(was) => {
                let redeemed = CodeRecord {
                    used: true,
                    replayed: was.replayed || was.used,
                    ..was.clone()
                };
                (Some(redeemed), Some(was))
            }
            None => (None, None),
        })
    }

    fn code_issued(&self, hash: &str, refresh_hash: &str, now: i64) -> Result<bool, StoreError> {
        self.update(CODES, hash, now, |found: Option<CodeRecord>| match found {
            Some(mut code) if !code.replayed => {
                code.refresh_hash = Some(refresh_hash.to_string());
                (Some(code), true)
            }
            _ => (None, false),
        })
    }

    fn put_sso(&self, session: &SsoSession) -> Result<(), StoreError> {
        self.put(SSO, &session.sid, &encode(session))
    }

    fn get_sso(&self, sid: &str, now: i64) -> Result<Option<SsoSession>, StoreError> {
        self.live(SSO, sid, now)
    }

    fn end_sso(&self, sid: &str, now: i64) -> Result<Option<SsoSession>, StoreError> {
        self.take(SSO, sid, now)
    }

    fn sso_add_family(&self, sid: &str, family: &str, now: i64) -> Result<bool, StoreError> {
        self.update(SSO, sid, now, |found: Option<SsoSession>| match found {
            Some(s) if s.families.iter().any(|f| f == family) => (None, true),
            Some(mut s) => {
                s.families.push(family.to_string());
                (Some(s), true)
            }
            None => (None, false),
        })
    }

    fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        let key = client_key(&client.issuer, &client.client_id);
        self.put(CLIENTS, &key, &encode(client))
    }

    fn get_client(
        &self,
        issuer: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        self.live(CLIENTS, &client_key(issuer, client_id), now)
    }

    fn registered_clients(
        &self,
        issuer: Option<&str>,
        now: i64,
    ) -> Result<Vec<RegisteredClient>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(CLIENTS).map_err(backend)?;
        let entries = match issuer {
            // `<issuer>\0` up to `<issuer>\x01`: that issuer's keys only.
            Some(issuer) => {
                let (from, to) = (format!("{issuer}\0"), format!("{issuer}\u{1}"));
                t.range(from.as_str()..to.as_str()).map_err(backend)?
            }
            None => t.iter().map_err(backend)?,
        };
        let mut out = Vec::new();
        for entry in entries {
            let (k, v) = entry.map_err(backend)?;
            let client: RegisteredClient = decode(k.value(), v.value())?;
            if client.live(now) {
                out.push(client);
            }
        }
        Ok(out)
    }

    fn delete_client(&self, issuer: &str, client_id: &str, now: i64) -> Result<bool, StoreError> {
        let gone: Option<RegisteredClient> =
            self.take(CLIENTS, &client_key(issuer, client_id), now)?;
        Ok(gone.is_some())
    }

    fn touch_client(
        &self,
        issuer: &str,
        client_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let key = client_key(issuer, client_id);
        self.update(CLIENTS, &key, now, |found: Option<RegisteredClient>| {
            let touched = found.map(|c| RegisteredClient {
                last_used: now,
                expires_at,
                ..c
            });
            (touched, ())
        })
    }
}
