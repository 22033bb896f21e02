//! `/admin/api-keys`: API keys made, listed, revoked and rotated. A key is
//! in the answer that makes it and nowhere else: the store keeps its
//! keyed hash, the listing its id.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use http::StatusCode;
use hyper::body::Incoming;
use hyper::Request;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{json_reply, read_json, Admin, Reply};
use crate::api_keys::{self, Change, Held, Record, Write};
use crate::config::IssuerKind;
use crate::respond::{AdminError, ApiKeyRefused};

/// The longest a rotated-out key may live on.
const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;

/// The body of `POST /admin/api-keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MakeRequest {
    issuer: String,
    consumer: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    claims: Map<String, Value>,
    /// RFC 3339; none: the key lives until revoked.
    expires: Option<String>,
}

/// The body of `POST /admin/api-keys/{id}/rotate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// How long the replaced key still works: `0s` to `30d`.
    grace: String,
}

/// Which key a path under `/admin/api-keys/` names, and what is asked of it.
pub(super) enum KeyPath<'a> {
    Key(&'a str),
    Rotate(&'a str),
}

impl KeyPath<'_> {
    pub(super) fn of(path: &str) -> Option<KeyPath<'_>> {
        let rest = path.strip_prefix("/admin/api-keys/")?;
        let (id, rotate) = match rest.strip_suffix("/rotate") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        if id.is_empty() || id.contains('/') {
            return None;
        }
        Some(match rotate {
            true => KeyPath::Rotate(id),
            false => KeyPath::Key(id),
        })
    }
}

impl Admin {
    pub(super) async fn make_api_key(&self, req: Request<Incoming>) -> Result<Reply, AdminError> {
        let request: MakeRequest = read_json(req).await?;
        self.api_key_issuer(&request.issuer)?;
        api_keys::check_grant(
            &request.consumer,
            &request.roles,
            &request.scopes,
            &request.claims,
        )
        .map_err(ApiKeyRefused::Grant)?;
        let now = self.shared.clock.unix();
        let expires = request
            .expires
            .as_deref()
            .map(|text| future_instant(text, now))
            .transpose()?;
        let key = api_keys::new_key();
        let record = Record {
            id: api_keys::new_id(),
            issuer: request.issuer,
            consumer: request.consumer,
            roles: request.roles,
            scopes: request.scopes,
            claims: request.claims,
            created: now,
            expires,
            hash: api_keys::to_hex(&self.shared.api_keys.pepper().digest(&key)),
            previous: None,
            retired: Vec::new(),
            version: 0,
            revoked: false,
        };
        if !self.write(Write::Put, &record).await? {
            return Err(ApiKeyRefused::Changed(record.id).into());
        }
        self.count_change(&record.issuer, "made");
        let mut body = describe(&record, None);
        body["key"] = json!(key);
        Ok(json_reply(StatusCode::CREATED, body))
    }

    pub(super) async fn list_api_keys(&self, query: Option<&str>) -> Result<Reply, AdminError> {
        let issuer = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "issuer")
            .map(|(_, v)| v.into_owned());
        if let Some(issuer) = &issuer {
            self.api_key_issuer(issuer)?;
        }
        let stored_uses = self.shared.store.api_key_uses().await?;
        let mut held: Vec<Arc<Held>> = self
            .shared
            .api_keys
            .all()
            .into_iter()
            .filter(|h| issuer.as_ref().is_none_or(|i| *i == h.record.issuer))
            .collect();
        held.sort_by(|a, b| {
            (a.record.created, &a.record.id).cmp(&(b.record.created, &b.record.id))
        });
        let list: Vec<Value> = held
            .iter()
            .map(|h| describe(&h.record, last_used(h, &stored_uses)))
            .collect();
        Ok(json_reply(StatusCode::OK, json!({ "api_keys": list })))
    }

    /// Revokes key `id` on every instance: its record becomes a tombstone
    /// in the store, which announces it, and it is dropped here at once.
    pub(super) async fn revoke_api_key(&self, id: &str) -> Result<Reply, AdminError> {
        let no_such_key = || AdminError::from(ApiKeyRefused::NoSuchKey(id.to_string()));
        // Not held here yet (made a moment ago elsewhere): the store has it.
        let record = match self.shared.api_keys.get(id) {
            Some(held) => held.record.clone(),
            None => self
                .shared
                .store
                .api_keys()
                .await?
                .into_iter()
                .find(|r| r.id == id && !r.revoked)
                .ok_or_else(no_such_key)?,
        };
        let tombstone = record.tombstone();
        if !self.write(Write::Revoke, &tombstone).await? {
            return Err(no_such_key());
        }
        self.count_change(&record.issuer, "revoked");
        tracing::info!(target: "portero::admin", id, issuer = %record.issuer, "API key revoked");
        Ok(json_reply(StatusCode::OK, json!({ "revoked": id })))
    }

    /// A new key for record `id`; the one it replaces works for `grace` more.
    pub(super) async fn rotate_api_key(
        &self,
        id: &str,
        req: Request<Incoming>,
    ) -> Result<Reply, AdminError> {
        let request: RotateRequest = read_json(req).await?;
        let grace = match request.grace.trim() == request.grace {
            true => crate::config::parse_duration(&request.grace).map_err(ApiKeyRefused::Grace)?,
            false => return Err(ApiKeyRefused::Grace("spaces around it".into()).into()),
        };
        if grace.as_secs() > MAX_GRACE_SECS {
            return Err(ApiKeyRefused::Grace("at most 30d".into()).into());
        }
        let held = self
            .shared
            .api_keys
            .get(id)
            .ok_or_else(|| ApiKeyRefused::NoSuchKey(id.to_string()))?;
        let now = self.shared.clock.unix();
        let key = api_keys::new_key();
        let hash = api_keys::to_hex(&self.shared.api_keys.pepper().digest(&key));
        let record = held.record.rotated(hash, now + grace.as_secs() as i64);
        let rotation = Write::Rotate {
            from_version: held.record.version,
        };
        if !self.write(rotation, &record).await? {
            return Err(ApiKeyRefused::Changed(id.to_string()).into());
        }
        self.count_change(&record.issuer, "rotated");
        let mut body = describe(&record, None);
        body["key"] = json!(key);
        Ok(json_reply(StatusCode::CREATED, body))
    }

    /// Writes `record` where the store allows `write` (it announces it),
    /// and applies it here at once; false when the store refused.
    async fn write(&self, write: Write, record: &Record) -> Result<bool, AdminError> {
        let written = self
            .shared
            .store
            .write_api_keys(&[(write, record.clone())])
            .await?;
        if written.first() != Some(&true) {
            return Ok(false);
        }
        self.shared
            .api_keys
            .apply(Change::Put(Box::new(record.clone())));
        // Quoted: a consumer is the admin's text, not a log field of its own.
        tracing::info!(target: "portero::admin", id = %record.id, issuer = %record.issuer, consumer = ?record.consumer, change = write.name(), "API key written");
        Ok(true)
    }

    fn count_change(&self, issuer: &str, change: &str) {
        self.shared
            .metrics
            .api_key_changes
            .with_label_values(&[issuer, change])
            .inc();
    }

    /// `name` must be an `api_key` issuer of the running config.
    fn api_key_issuer(&self, name: &str) -> Result<(), ApiKeyRefused> {
        let live = self.shared.live.load();
        let found = live
            .issuers()
            .iter()
            .any(|i| i.config.name == name && i.config.kind == IssuerKind::ApiKey);
        match found {
            true => Ok(()),
            false => Err(ApiKeyRefused::NoSuchIssuer(name.to_string())),
        }
    }
}

/// Unix seconds of an RFC 3339 instant that is still to come.
fn future_instant(text: &str, now: i64) -> Result<i64, ApiKeyRefused> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|e| ApiKeyRefused::Expires(format!("{text:?} is not an RFC 3339 instant: {e}")))?
        .timestamp();
    if at <= now {
        return Err(ApiKeyRefused::Expires(format!("{text:?} has passed")));
    }
    Ok(at)
}

fn rfc3339(unix: i64) -> Value {
    DateTime::<Utc>::from_timestamp(unix, 0).map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

/// The later of this instance's last use and the store's.
fn last_used(h: &Held, stored: &HashMap<String, i64>) -> Option<i64> {
    let stored = stored.get(&h.record.id).copied();
    h.last_used().max(stored)
}

/// A key's record as the admin API shows it: never its hash.
fn describe(r: &Record, last_used: Option<i64>) -> Value {
    let mut body = json!({
        "id": r.id,
        "issuer": r.issuer,
        "consumer": r.consumer,
        "roles": r.roles,
        "scopes": r.scopes,
        "claims": r.claims,
        "created": rfc3339(r.created),
        "expires": r.expires.map_or(Value::Null, rfc3339),
        "last_used": last_used.map_or(Value::Null, rfc3339),
    });
    if let Some(p) = &r.previous {
        body["previous_key_until"] = rfc3339(p.until);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_name_one_key() {
        assert!(matches!(
            KeyPath::of("/admin/api-keys/ak_1"),
            Some(KeyPath::Key("ak_1"))
        ));
        assert!(matches!(
            KeyPath::of("/admin/api-keys/ak_1/rotate"),
            Some(KeyPath::Rotate("ak_1"))
        ));
        assert!(KeyPath::of("/admin/api-keys/").is_none());
        assert!(KeyPath::of("/admin/api-keys/a/b").is_none());
        assert!(KeyPath::of("/admin/api-keys//rotate").is_none());
    }

    #[test]
    fn expiry_must_be_an_instant_to_come() {
        let now = 1_800_000_000;
        assert!(future_instant("2030-01-01T00:00:00Z", now).is_ok());
        assert!(future_instant("2020-01-01T00:00:00Z", now).is_err());
        assert!(future_instant("tomorrow", now).is_err());
    }
}
