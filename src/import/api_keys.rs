//! `portero import` for an `api_key` issuer: keys another gateway made,
//! a JSON object per line, each given as the key itself (hashed here, never
//! written) or as the SHA-256 the old system kept. A row's id is given or
//! follows from its key, so importing a file again replaces, never adds.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::record::from_text;
use super::Report;
use crate::api_keys::{self, Digest32, Pepper, Record, Write};
use crate::store::{ApiKeyRecords, Store};

/// A plain key shorter than this is refused: guessable.
const MIN_KEY_LEN: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    consumer: String,
    /// The key itself...
    key: Option<String>,
    /// ...or its SHA-256, hex.
    key_sha256: Option<String>,
    id: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    claims: Map<String, Value>,
    /// RFC 3339.
    expires: Option<String>,
    created: Option<String>,
}

/// Imports the keys in `text` (JSON lines) for `issuer`. A `shared`
/// store (Redis) must hold the API-key secret already: one restarted
/// empty gets it back, with every revoked key's tombstone, from the
/// instances running on it, and an import before that would revive them.
pub async fn import(
    store: &dyn Store,
    issuer: &str,
    text: &str,
    partial: bool,
    shared: bool,
    now: i64,
) -> anyhow::Result<Report> {
    let pepper = match crate::store::existing_api_key_pepper(store).await? {
        Some(pepper) => pepper,
        None if shared => anyhow::bail!(
            "the store holds no API-key secret: start a gateway on it first (if Redis restarted empty, wait for the running gateways to write back what they hold, then import)"
        ),
        None => crate::store::api_key_pepper(store).await?,
    };
    let existing: HashMap<String, Record> = store
        .api_keys()
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    // Revoked keys' too: importing a file again must not bring one back.
    let by_digest: HashMap<Digest32, &Record> = existing
        .values()
        .flat_map(|r| r.digests().map(move |d| (d, r)))
        .collect();
    let mut report = Report::default();
    let mut records: Vec<Record> = Vec::new();
    let mut lines_of: HashMap<Digest32, usize> = HashMap::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        report.rows += 1;
        let line_no = n + 1;
        let checked = from_text::<Row>(line).and_then(|row| record(row, issuer, &pepper, now));
        let checked = checked.and_then(|r| {
            let digest = api_keys::from_hex(&r.hash).expect("made here");
            if let Some(first) = lines_of.insert(digest, line_no) {
                return Err(format!("the same key is on line {first}"));
            }
            if let Some(first) = ids.insert(r.id.clone(), line_no) {
                return Err(format!("id {:?} is on line {first} too", r.id));
            }
            match (existing.get(&r.id), by_digest.get(&digest)) {
                (Some(held), _) if held.revoked => Err(format!("id {:?} was revoked", r.id)),
                (Some(held), _) if held.issuer != r.issuer => Err(format!(
                    "id {:?} is a key of issuer {:?}",
                    r.id, held.issuer
                )),
                // An import changes a key's grant, never the key: a
                // rotation since must stand.
                (Some(held), _) if held.hash != r.hash => Err(format!(
                    "id {:?} holds another key now (rotated since?); its grant can be imported only with that key",
                    r.id
                )),
                (_, Some(held)) if held.revoked => {
                    Err(format!("this key was revoked (as {:?})", held.id))
                }
                (_, Some(held)) if held.id != r.id => {
                    Err(format!("the store has this key already, as {:?}", held.id))
                }
                _ => Ok(r),
            }
        });
        match checked {
            Ok(r) => records.push(r),
            Err(why) => report.refused.push(format!("line {line_no}: {why}")),
        }
    }
    if !report.refused.is_empty() && !partial {
        return Ok(report);
    }
    report.written = true;
    write(store, records, &existing, now, &mut report).await?;
    Ok(report)
}

/// Writes the records that change what the store holds, each only where
/// the store still allows it; counts what was added, changed and refused.
async fn write(
    store: &dyn ApiKeyRecords,
    records: Vec<Record>,
    existing: &HashMap<String, Record>,
    now: i64,
    report: &mut Report,
) -> anyhow::Result<()> {
    // (record, whether it is new): the unchanged ones are not written.
    let mut changed: Vec<(Record, bool)> = Vec::new();
    for mut r in records {
        match existing.get(&r.id) {
            None => changed.push((r, true)),
            Some(old) => {
                r.version = old.version;
                r.previous = old.previous.clone();
                r.retired = old.retired.clone();
                if r.created == now {
                    r.created = old.created;
                }
                if r != *old {
                    // A newer version: instances holding the old one take it.
                    r.version += 1;
                    changed.push((r, false));
                }
            }
        }
    }
    for batch in changed.chunks(super::BATCH) {
        let writes: Vec<(Write, Record)> =
            batch.iter().map(|(r, _)| (Write::Put, r.clone())).collect();
        let written = store.write_api_keys(&writes).await?;
        for ((r, new), written) in batch.iter().zip(written) {
            match (written, new) {
                (true, true) => report.upserted.added += 1,
                (true, false) => report.upserted.changed += 1,
                // Revoked, rotated or taken by another issuer since the file was read.
                (false, _) => report
                    .refused
                    .push(format!("id {:?}: changed in the store meanwhile", r.id)),
            }
        }
    }
    Ok(())
}

/// The record of one row, or why there is none.
fn record(row: Row, issuer: &str, pepper: &Pepper, now: i64) -> Result<Record, String> {
    api_keys::check_grant(&row.consumer, &row.roles, &row.scopes, &row.claims)?;
    let digest = match (&row.key, &row.key_sha256) {
        (Some(key), None) if key.chars().count() < MIN_KEY_LEN || key.trim() != key => {
            return Err(format!(
                "key: at least {MIN_KEY_LEN} characters, no spaces around it"
            ))
        }
        (Some(key), None) => pepper.digest(key),
        (None, Some(hex)) => {
            let sha =
                api_keys::from_hex(&hex.to_ascii_lowercase()).ok_or("key_sha256: 64 hex digits")?;
            pepper.of_sha256(&sha)
        }
        _ => return Err("give exactly one of key and key_sha256".into()),
    };
    let instant = |text: &str, name: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp())
            .map_err(|e| format!("{name}: not an RFC 3339 instant: {e}"))
    };
    let expires = row
        .expires
        .as_deref()
        .map(|t| instant(t, "expires"))
        .transpose()?;
    if expires.is_some_and(|e| e <= now) {
        return Err("expires: has passed".into());
    }
    let created = row
        .created
        .as_deref()
        .map(|t| instant(t, "created"))
        .transpose()?;
    // A key "made in the future" would outlive a revocation of its consumer.
    if created.is_some_and(|c| c > now) {
        return Err("created: is in the future".into());
    }
    let id = match row.id {
        Some(id)
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            return Err("id: 1 to 64 letters, digits, `_` or `-`".into())
        }
        Some(id) => id,
        // Follows from the key, so a second import of it finds the first.
        None => format!(
            "{}{}",
            api_keys::ID_PREFIX,
            &api_keys::to_hex(&pepper.of_sha256(&digest))[..16]
        ),
    };
    Ok(Record {
        id,
        issuer: issuer.to_string(),
        consumer: row.consumer,
        roles: row.roles,
        scopes: row.scopes,
        claims: row.claims,
        created: created.unwrap_or(now),
        expires,
        hash: api_keys::to_hex(&digest),
        previous: None,
        retired: Vec::new(),
        version: 0,
        revoked: false,
    })
}
