//! A row as the dialect's principal: the columns the query must return,
//! each row's values read whichever driver read it, and the hash formats
//! and costs seen among them.

use std::sync::Mutex;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::pool::FetchedRow;
use crate::config::{secret_hash, within_limits, Dialect, HashLimits, Principal, SecretHash};
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

/// The columns each dialect needs: the login's and the secret's.
fn required_columns(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Session | Dialect::LoginRefresh | Dialect::Standard => {
            &["username", "secret_hash"]
        }
        Dialect::Project => &["business", "proyecto", "secret_hash"],
        Dialect::ClientEnvelope | Dialect::ClientFlat => &["client_id", "secret_hash"],
    }
}

/// Whether `columns`, those the query returns, are enough for `dialect`;
/// the first missing one is named.
pub fn check_columns(dialect: Dialect, columns: Vec<String>) -> Result<(), QueryError> {
    let needed = required_columns(dialect);
    match needed.iter().find(|n| !columns.iter().any(|c| c == *n)) {
        None => Ok(()),
        Some(missing) => Err(QueryError::MissingColumn {
            missing,
            returned: columns,
            dialect: dialect.name(),
            needed,
        }),
    }
}

/// Reads rows as one dialect's principals, within the hash limits.
pub struct Rows {
    dialect: Dialect,
    /// The costs a row's hash may name.
    limits: HashLimits,
    /// The formats and costs of the rows read: an unknown login is checked
    /// against the most common one.
    seen: Mutex<StandIn>,
}

impl Rows {
    pub fn new(dialect: Dialect, limits: HashLimits) -> Rows {
        Rows {
            dialect,
            limits,
            seen: Mutex::default(),
        }
    }

    /// What an unknown login is checked against: an imitation of the most
    /// common format and cost among the rows read (argon2id before any).
    pub fn stand_in(&self) -> SecretHash {
        let mut seen = self.seen.lock().expect("not poisoned");
        seen.hash()
            .unwrap_or_else(|| crate::credentials::dummy(false).clone())
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
                    dialect = self.dialect.name(),
                    login,
                    "user store: a login refused, its secret_hash is unusable: {why}"
                );
                return None;
            }
        };
        self.seen.lock().expect("not poisoned").saw(&secret);
        let (business, proyecto) = (text("business"), text("proyecto"));
        let login = self.dialect.login_of(
            text("username").as_deref(),
            text("client_id").as_deref(),
            business.as_deref(),
            proyecto.as_deref(),
        )?;
        let permissions = words(text("permissions"));
        // A standard issuer's `claims` column: a JSON object, or the row
        // is refused (a claim silently dropped could drop a restriction).
        let claims = match text("claims").map(|c| serde_json::from_str(&c)) {
            None => serde_json::Map::new(),
            Some(Ok(serde_json::Value::Object(map))) => map,
            Some(_) => {
                tracing::warn!(
                    login,
                    "user store: a login refused, its claims are not a JSON object"
                );
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
            active: flag(row, "active", true),
            blocked: flag(row, "blocked", false),
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

/// A flag column: a boolean, or a number (MySQL's `TINYINT(1)`) where
/// nonzero is true; `default` without one.
fn flag<R>(row: &R, name: &str, default: bool) -> bool
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<Option<bool>, _>(name)
        .ok()
        .flatten()
        .or_else(|| {
            row.try_get::<Option<i64>, _>(name)
                .ok()
                .flatten()
                .map(|n| n != 0)
        })
        .unwrap_or(default)
}
