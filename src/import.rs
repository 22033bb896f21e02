//! `portero import`: principals from a file into the store, for teams with
//! no database to keep their users in. Every row is checked first (its
//! keys, its login for the issuer's dialect, its hash's format, a login
//! given twice); a file with a bad row imports nothing unless the operator
//! asks for the rest (`partial`). Rows are written by login, replacing
//! what that login had, so a file can be imported again after a fix.
//!
//! The gateway reads an imported principal at each login, after the
//! config's (which wins on a name clash) and before a user store.

mod api_keys;
mod formats;
mod keycloak;
mod record;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;

pub use formats::Format;

use crate::config::{login_key, within_limits, Config, IssuerKind, StoreBackend};
use crate::store::{Store, Upserted};

/// Rows written to the store per atomic write.
const BATCH: usize = 1000;

/// What an import found and did.
#[derive(Debug, Default)]
pub struct Report {
    /// Rows in the file.
    pub rows: usize,
    /// Refused rows: `line N: why`, in file order.
    pub refused: Vec<String>,
    /// Rows whose login the config also names (the config's principal is
    /// the one that logs in): `line N: login`.
    pub shadowed: Vec<String>,
    /// Whether anything was written (not when a row was refused without
    /// `partial`).
    pub written: bool,
    pub upserted: Upserted,
}

impl Report {
    /// Rows written that changed nothing.
    pub fn unchanged(&self) -> usize {
        let written = self.rows.saturating_sub(self.refused.len());
        written.saturating_sub(self.upserted.added + self.upserted.changed)
    }
}

/// Imports `file` into `issuer`'s principals in `store`.
pub async fn import(
    config: &Config,
    store: &dyn Store,
    issuer: &str,
    file: &Path,
    format: Option<Format>,
    partial: bool,
) -> anyhow::Result<Report> {
    let found = config.issuers.iter().find(|i| i.name == issuer);
    let issuer = found.ok_or_else(|| anyhow::anyhow!("no issuer named {issuer:?}"))?;
    if issuer.kind == IssuerKind::ApiKey {
        let shared = !matches!(config.store.backend, StoreBackend::Embedded);
        return import_api_keys(store, &issuer.name, file, format, partial, shared).await;
    }
    let accounts = issuer.accounts.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "issuer {:?} has no dialect: it serves no logins, so it has no principals",
            issuer.name
        )
    })?;
    let format = format
        .or_else(|| Format::of(file))
        .ok_or_else(|| anyhow::anyhow!("{}: name the format with --format", file.display()))?;
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let rows = format
        .read(&text)
        .map_err(|why| anyhow::anyhow!("{}: {why}", file.display()))?;
    drop(text);

    let mut report = Report {
        rows: rows.len(),
        ..Report::default()
    };
    let mut records = Vec::with_capacity(rows.len());
    // Logins are one when their `login_key`s are: a case-insensitive
    // database would make them one identity with two budgets.
    let mut first_line: HashMap<String, (usize, String)> = HashMap::new();
    let configured: HashMap<String, &str> = accounts
        .principals
        .iter()
        .map(|p| (login_key(&p.login), p.login.as_str()))
        .collect();
    for row in rows {
        let line = row.line;
        let checked = row.record.and_then(|r| {
            let principal = r.to_principal(accounts.form)?;
            within_limits(&principal.secret, &accounts.hash_limits)
                .map_err(|why| format!("secret_hash: {why}"))?;
            let key = login_key(&principal.login);
            if let Some(config) = configured.get(&key).filter(|c| **c != principal.login) {
                return Err(format!(
                    "login {:?} differs from the config's {config:?} only in case, spacing or Unicode form",
                    principal.login
                ));
            }
            match first_line.entry(key) {
                Entry::Occupied(first) => {
                    let (line, written) = first.get();
                    let spelled = match *written == principal.login {
                        true => String::new(),
                        false => format!(" (as {written:?})"),
                    };
                    return Err(format!(
                        "login {:?} is on line {line} too{spelled}",
                        principal.login
                    ));
                }
                Entry::Vacant(v) => {
                    v.insert((line, principal.login.clone()));
                }
            }
            Ok((principal.login, r.encode()))
        });
        match checked {
            Ok((login, record)) => {
                if accounts.principals.get(&login).is_some() {
                    report.shadowed.push(format!("line {line}: {login:?}"));
                }
                records.push((login, record));
            }
            Err(why) => report.refused.push(format!("line {line}: {why}")),
        }
    }
    if !report.refused.is_empty() && !partial {
        return Ok(report);
    }
    report.written = true;
    for batch in records.chunks(BATCH) {
        let upserted = store.put_principals(&issuer.name, batch).await?;
        report.upserted.added += upserted.added;
        report.upserted.changed += upserted.changed;
    }
    Ok(report)
}

/// An `api_key` issuer's keys, from JSON lines.
async fn import_api_keys(
    store: &dyn Store,
    issuer: &str,
    file: &Path,
    format: Option<Format>,
    partial: bool,
    shared: bool,
) -> anyhow::Result<Report> {
    if format.or_else(|| Format::of(file)) != Some(Format::Jsonl) {
        anyhow::bail!(
            "{}: an api_key issuer's keys are imported from JSON lines (--format jsonl)",
            file.display()
        );
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let now = crate::clock::Clock::system().unix();
    api_keys::import(store, issuer, &text, partial, shared, now).await
}
