//! A row as the dialect's principal: the columns the query must return,
//! each row's values read whichever driver read it, and the hash formats
//! and costs seen among them.

use std::sync::Mutex;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::pool::FetchedRow;
use crate::config::{secret_hash, within_limits, AccountForm, Dialect, HashLimits, Principal};
use crate::credentials::StandIn;

/// Why the operator's query cannot serve the dialect.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The database refused the query: its message.
    #[error("user_store.query: {0}")]
    Refused(String),
    #[error(
        "user_store.query returns no {missing:?} column (it returns {returned:?}); \
         the {dialect} dialect needs {needed:?}"
    )]
    MissingColumn {
        missing: &'static str,
        returned: Vec<String>,
        dialect: &'static str,
        needed: &'static [&'static str],
    },
}

/// The columns each form of account needs: the login's and the secret's.
fn required_columns(form: AccountForm) -> &'static [&'static str] {
    match form.dialect() {
        None | Some(Dialect::Session | Dialect::LoginRefresh) => &["username", "secret_hash"],
        Some(Dialect::Project) => &["business", "proyecto", "secret_hash"],
        Some(Dialect::ClientEnvelope | Dialect::ClientFlat) => &["client_id", "secret_hash"],
    }
}

/// Whether `columns`, those the query returns, are enough for `form`;
/// the first missing one is named.
pub fn check_columns(form: AccountForm, columns: Vec<String>) -> Result<(), QueryError> {
    let needed = required_columns(form);
    match needed.iter().find(|n| !columns.iter().any(|c| c == *n)) {
        None => Ok(()),
        Some(missing) => Err(QueryError::MissingColumn {
            missing,
            returned: columns,
            dialect: form.name(),
            needed,
        }),
    }
}

/// Reads rows as accounts of one form, within the hash limits.
pub struct Rows {
    form: AccountForm,
    /// The costs a row's hash may name.
    limits: HashLimits,
    /// The formats and costs of the rows read: an unknown login is checked
    /// against the most common one, a refusal costs the slowest.
    seen: Mutex<StandIn>,
}

impl Rows {
    pub fn new(form: AccountForm, limits: HashLimits) -> Rows {
        Rows {
            form,
            limits,
            seen: Mutex::default(),
        }
    }

    /// The formats and costs of the rows read, as `credentials::StandIn`.
    pub fn stand_in(&self) -> &Mutex<StandIn> {
        &self.seen
    }

    /// A row as the dialect's principal; `None` (logged, naming the format
    /// and never the hash) when its secret is in no format portero knows.
    pub fn principal(&self, row: &FetchedRow, login: &str) -> Option<Principal> {
        match row {
            FetchedRow::Postgres(row) => self.decode(row, login),
            FetchedRow::MySql(row) => self.decode(row, login),
        }
    }

    fn decode<R>(&self, row: &R, login: &str) -> Option<Principal>
    where
        R: Row,
        for<'c> &'c str: ColumnIndex<R>,
        String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
        i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
        i32: for<'r> Decode<'r, R::Database> + Type<R::Database>,
        i16: for<'r> Decode<'r, R::Database> + Type<R::Database>,
        bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    {
        let text = |name: &str| -> Option<String> {
            row.try_get::<Option<String>, _>(name).ok().flatten()
        };
        let secret = secret_hash(&text("secret_hash")?)
            .and_then(|h| within_limits(&h, &self.limits).map(|()| h));
        let secret = match secret {
            Ok(h) => h,
            Err(why) => {
                tracing::warn!(
                    dialect = self.form.name(),
                    login,
                    "user store: a login refused, its secret_hash is unusable: {why}"
                );
                return None;
            }
        };
        self.seen.lock().expect("not poisoned").saw(&secret);
        let (business, proyecto) = (text("business"), text("proyecto"));
        let login = self.form.login_of(
            text("username").as_deref(),
            text("client_id").as_deref(),
            business.as_deref(),
            proyecto.as_deref(),
        )?;
        let permissions = words(text("permissions"));
        let refused = |why: &str| {
            tracing::warn!(login, "user store: a login refused, {why}");
        };
        let (Some(active), Some(blocked)) =
            (flag(row, "active", true), flag(row, "blocked", false))
        else {
            refused("its active or blocked column is neither a boolean, a number nor true/false");
            return None;
        };
        // A standard issuer's `claims` column: text holding a JSON object
        // (a jsonb column cast `::text`), or the row is refused: a claim
        // silently dropped could drop a restriction.
        let written = match row.try_column("claims") {
            Err(_) => None,
            Ok(_) => match row.try_get::<Option<String>, _>("claims") {
                Ok(text) => text,
                Err(_) => {
                    refused("its claims column is not text (cast a json column ::text)");
                    return None;
                }
            },
        };
        let claims = match written.map(|c| serde_json::from_str(&c)) {
            None => serde_json::Map::new(),
            Some(Ok(serde_json::Value::Object(map)))
                if crate::config::reserved_claim(&map).is_none() =>
            {
                map
            }
            Some(_) => {
                refused("its claims are not a JSON object, or name a claim portero sets or reads itself");
                return None;
            }
        };
        Some(Principal {
            login,
            secret,
            stored_hash: text("secret_hash"),
            id: id(row),
            username: text("username"),
            nombre: text("nombre"),
            role: text("role"),
            business,
            proyecto,
            client_id: text("client_id"),
            company: text("company"),
            permissions,
            active,
            blocked,
            rate_limit: None,
            auth_method: None,
            introspect: false,
            roles: words(text("roles")),
            claims,
            client: Default::default(),
        })
    }
}

/// A list column: names separated by spaces or commas.
fn words(text: Option<String>) -> Vec<String> {
    text.map(|p| {
        p.split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// The row's `id`: a number of either width, or text; null without one.
fn id<R>(row: &R) -> serde_json::Value
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i32: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<Option<i64>, _>("id")
        .ok()
        .flatten()
        .or_else(|| {
            row.try_get::<Option<i32>, _>("id")
                .ok()
                .flatten()
                .map(i64::from)
        })
        .map(serde_json::Value::from)
        .or_else(|| {
            row.try_get::<Option<String>, _>("id")
                .ok()
                .flatten()
                .map(serde_json::Value::from)
        })
        .unwrap_or(serde_json::Value::Null)
}

/// A flag column: a boolean, a number of any width (MySQL's
/// `TINYINT(1)`, PostgreSQL's `smallint`) where nonzero is true, or text
/// (`true`/`false`, `t`/`f`, `1`/`0`); `default` when the query returns
/// no such column or NULL. `None` for a value of any other type or text:
/// the row is refused rather than read as the default (a `blocked` that
/// cannot be read must not let its user in).
fn flag<R>(row: &R, name: &str, default: bool) -> Option<bool>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i32: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i16: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    if row.try_column(name).is_err() {
        return Some(default);
    }
    let number = |n: i64| Some(n != 0);
    if let Ok(v) = row.try_get::<Option<bool>, _>(name) {
        return Some(v.unwrap_or(default));
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(name) {
        return v.map_or(Some(default), number);
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(name) {
        return v.map_or(Some(default), |n| number(n.into()));
    }
    if let Ok(v) = row.try_get::<Option<i16>, _>(name) {
        return v.map_or(Some(default), |n| number(n.into()));
    }
    match row
        .try_get::<Option<String>, _>(name)
        .ok()?
        .as_deref()
        .map(str::trim)
    {
        None => Some(default),
        Some("true" | "t" | "1" | "TRUE" | "True") => Some(true),
        Some("false" | "f" | "0" | "FALSE" | "False") => Some(false),
        Some(_) => None,
    }
}
