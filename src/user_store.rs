//! Principals read where the replaced service keeps them: one row of a
//! PostgreSQL or MySQL/MariaDB table per login, through the operator's
//! query, its columns named as the dialect's principal keys. The config's
//! principals come first: a login in both is logged at start. Rows are
//! kept for `cache_ttl`, or until the next revocation; an unreachable
//! database makes logins answer 5xx in the dialect's shape (tokens already
//! issued are validated as ever, from memory), with one WARN line per
//! outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Column, ColumnIndex, Connection, Database, Decode, Executor, Row, Type};

use crate::config::{
    secret_hash, within_limits, Dialect, HashLimits, Principal, Principals, SecretHash,
    UserStoreConfig,
};
use crate::credentials::StandIn;

/// Rows kept at most, so that logins for made-up names cannot grow it.
const MAX_CACHED: usize = 10_000;
/// The config's principals looked up in the table at start, for clashes.
const MAX_CLASH_CHECKS: usize = 1000;

pub struct UserStore {
    pool: Pool,
    config: UserStoreConfig,
    dialect: Dialect,
    cache: Mutex<HashMap<String, Cached>>,
    /// Set while the database fails, so an outage logs once.
    failing: AtomicBool,
    /// The query's columns were found to suit the dialect.
    columns_checked: AtomicBool,
    /// Counts revocations applied anywhere: a revocation (a user being
    /// shut out, say) makes every cached row stale at once.
    revocations: tokio::sync::watch::Receiver<u64>,
    /// The costs a row's hash may name.
    limits: HashLimits,
    /// The formats and costs of the rows read: an unknown login is checked
    /// against the most common one.
    stand_in: Mutex<StandIn>,
}

/// A row read for a login, or its absence: when it was read, and how many
/// revocations had been applied then.
type Cached = (Instant, u64, Option<Arc<Principal>>);

/// Each database through its own driver: sqlx's `Any` driver cannot read
/// MySQL's `TINYINT(1)`, the type of most flag columns there.
enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// The database could not answer.
#[derive(Debug)]
pub struct Unavailable;

/// The user stores of `config`'s issuers, by issuer index, their queries
/// checked against their dialects where the databases answer now (a
/// database that does not is logged, and logins wait for it).
pub async fn open(
    config: &crate::config::Config,
    revocations: &crate::auth::revocation::Revocations,
    legacy_hashes: &prometheus::IntGaugeVec,
) -> Result<Vec<Option<Arc<UserStore>>>, String> {
    let mut stores = Vec::new();
    for issuer in &config.issuers {
        let (Some(settings), Some(endpoint)) = (&issuer.user_store, &issuer.endpoint) else {
            stores.push(None);
            continue;
        };
        let store = UserStore::new(
            settings,
            endpoint.dialect,
            endpoint.hash_limits,
            revocations.subscribe(),
        )
        .map_err(|e| format!("issuers.{}.{e}", issuer.name))?;
        match store.check_columns().await {
            Ok(true) => {}
            Ok(false) => {
                store.failing.store(true, Ordering::Relaxed);
                tracing::warn!(
                    issuer = %issuer.name,
                    "user store not reachable: logins wait for it, and its query is checked then"
                );
            }
            Err(e) => return Err(format!("issuers.{}.{e}", issuer.name)),
        }
        let store = Arc::new(store);
        store
            .warn_of_clashes(&issuer.name, &endpoint.principals)
            .await;
        store.count_legacy_hashes(legacy_hashes.with_label_values(&[&issuer.name]));
        stores.push(Some(store));
    }
    Ok(stores)
}

/// The one row `sql` returns for `args`, if any.
async fn fetch<'p, DB>(
    pool: &'p sqlx::Pool<DB>,
    sql: &'p str,
    args: Vec<String>,
) -> Result<Option<DB::Row>, sqlx::Error>
where
    DB: Database,
    &'p sqlx::Pool<DB>: Executor<'p, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + Type<DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let mut query = sqlx::query::<DB>(sql);
    for arg in args {
        query = query.bind(arg);
    }
    query.fetch_optional(pool).await
}

/// Runs `sql` with `args`; the rows it changed.
async fn execute<'p, DB>(
    pool: &'p sqlx::Pool<DB>,
    sql: &'p str,
    args: Vec<String>,
) -> Result<u64, sqlx::Error>
where
    DB: Database,
    &'p sqlx::Pool<DB>: Executor<'p, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + Type<DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    DB::QueryResult: RowsAffected,
{
    let mut query = sqlx::query::<DB>(sql);
    for arg in args {
        query = query.bind(arg);
    }
    Ok(query.execute(pool).await?.rows())
}

/// The one number `sql` returns.
async fn count_rows<'p, DB>(pool: &'p sqlx::Pool<DB>, sql: &'p str) -> Result<i64, sqlx::Error>
where
    DB: Database,
    &'p sqlx::Pool<DB>: Executor<'p, Database = DB>,
    i64: for<'r> Decode<'r, DB> + Type<DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let row = sqlx::query::<DB>(sql).fetch_one(pool).await?;
    row.try_get::<i64, _>(0)
}

/// What an update changed, from either driver's result.
trait RowsAffected {
    fn rows(&self) -> u64;
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::mysql::MySqlQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

/// The names of the columns `query` returns, asked of the database
/// without running it, on a connection of its own.
async fn column_names<C>(url: &str, query: &str) -> Result<Vec<String>, sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
{
    let mut conn = C::connect(url).await?;
    let described = conn.describe(query).await;
    let _ = conn.close().await;
    Ok(described?
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect())
}

/// The columns each dialect needs: the login's and the secret's.
fn required_columns(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Session | Dialect::LoginRefresh => &["username", "secret_hash"],
        Dialect::Project => &["business", "proyecto", "secret_hash"],
        Dialect::ClientEnvelope | Dialect::ClientFlat => &["client_id", "secret_hash"],
    }
}

impl UserStore {
    /// A pool that connects when first used: the database may come up
    /// after portero.
    pub fn new(
        config: &UserStoreConfig,
        dialect: Dialect,
        limits: HashLimits,
        revocations: tokio::sync::watch::Receiver<u64>,
    ) -> Result<UserStore, String> {
        let url = &config.url;
        let pool = if url.starts_with("mysql://") {
            MySqlPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(config.timeout)
                .connect_lazy(url)
                .map(Pool::MySql)
        } else {
            PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(config.timeout)
                .connect_lazy(url)
                .map(Pool::Postgres)
        }
        .map_err(|e| format!("user_store.url: {e}"))?;
        Ok(UserStore {
            pool,
            config: config.clone(),
            dialect,
            cache: Mutex::new(HashMap::new()),
            failing: AtomicBool::new(false),
            columns_checked: AtomicBool::new(false),
            revocations,
            limits,
            stand_in: Mutex::default(),
        })
    }

    /// Checks the query's columns against the dialect without reading a
    /// row: a missing column is named. `Ok(false)`: the database could not
    /// be asked now. On a connection of its own, closed after: the pool's
    /// connections are made by the runtime that uses them.
    pub async fn check_columns(&self) -> Result<bool, String> {
        let (url, query) = (&self.config.url, &self.config.query);
        let check = async {
            match self.pool {
                Pool::Postgres(_) => column_names::<PgConnection>(url, query).await,
                Pool::MySql(_) => column_names::<MySqlConnection>(url, query).await,
            }
        };
        let columns = match tokio::time::timeout(self.config.timeout, check).await {
            Ok(Ok(columns)) => columns,
            Ok(Err(sqlx::Error::Database(e))) => {
                return Err(format!("user_store.query: {}", e.message()))
            }
            Ok(Err(_)) | Err(_) => return Ok(false),
        };
        for needed in required_columns(self.dialect) {
            if !columns.iter().any(|c| c == needed) {
                return Err(format!(
                    "user_store.query returns no {needed:?} column (it returns {columns:?}); \
                     the {} dialect needs {:?}",
                    self.dialect.name(),
                    required_columns(self.dialect)
                ));
            }
        }
        self.columns_checked.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// The principal named `login`, if the table has one.
    pub async fn find(&self, login: &str) -> Result<Option<Arc<Principal>>, Unavailable> {
        if login.chars().any(char::is_control) {
            return Ok(None);
        }
        if let Some(found) = self.cached(login) {
            return Ok(found);
        }
        // A database that was down at start has its query checked once it answers.
        if !self.columns_checked.load(Ordering::Relaxed) {
            match self.check_columns().await {
                Ok(true) => {}
                Ok(false) => return Err(self.failed("not reachable")),
                Err(e) => return Err(self.failed(&e)),
            }
        }
        let mut read = self.read(login).await;
        if let Err(Some(sqlx::Error::Database(_))) = &read {
            // The database may have refused this login's value (a character
            // the table's charset cannot hold, say) rather than the query.
            // If it answers for a plain login, ask once more (it may have
            // just come back); refused again, the login names no one, and
            // a client cannot report an outage that is not one.
            if self.read("-").await.is_ok() {
                read = self.read(login).await;
                if let Err(Some(sqlx::Error::Database(e))) = &read {
                    tracing::debug!(error = %e.message(), "user store: a login the database cannot compare");
                    return Ok(None);
                }
            }
        }
        let found = match read {
            Ok(found) => found,
            Err(Some(e)) => return Err(self.failed(&e.to_string())),
            Err(None) => return Err(self.failed("timed out")),
        };
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(
                issuer_dialect = self.dialect.name(),
                "user store reachable again"
            );
        }
        let found = found.map(Arc::new);
        self.keep(login, found.clone());
        Ok(found)
    }

    /// What an unknown login is checked against: an imitation of the most
    /// common format and cost among the rows read (argon2id before any).
    pub fn stand_in(&self) -> SecretHash {
        let mut stand_in = self.stand_in.lock().expect("not poisoned");
        stand_in
            .hash()
            .unwrap_or_else(|| crate::credentials::dummy(false).clone())
    }

    /// The row the query returns for `login`, as a principal; `Err(None)`
    /// when the database did not answer in time.
    async fn read(&self, login: &str) -> Result<Option<Principal>, Option<sqlx::Error>> {
        let args = self.login_args(login);
        let sql = self.config.query.as_str();
        let read = async {
            Ok::<_, sqlx::Error>(match &self.pool {
                Pool::Postgres(pool) => fetch(pool, sql, args)
                    .await?
                    .and_then(|row| self.principal(&row, login)),
                Pool::MySql(pool) => fetch(pool, sql, args)
                    .await?
                    .and_then(|row| self.principal(&row, login)),
            })
        };
        match tokio::time::timeout(self.config.timeout, read).await {
            Ok(read) => read.map_err(Some),
            Err(_) => Err(None),
        }
    }

    /// Whether a login that `p` just passed should rewrite its hash.
    pub fn wants_rehash(&self, p: &Principal) -> bool {
        self.config.rehash_update.is_some() && p.stored_hash.is_some() && !p.secret.is_current()
    }

    /// Writes an argon2id hash of `secret` over the row's `p.stored_hash`,
    /// in the background: a compare-and-swap, so a password changed
    /// meanwhile is never overwritten, and a failed write never fails the
    /// login it follows.
    pub fn rehash_later(self: &Arc<Self>, p: &Principal, secret: &str) {
        let (Some(update), Some(stored)) = (&self.config.rehash_update, &p.stored_hash) else {
            return;
        };
        let (store, update, stored) = (self.clone(), update.clone(), stored.clone());
        let (login, secret) = (p.login.clone(), secret.to_string());
        tokio::spawn(async move {
            let format = crate::config::secret_hash(&stored)
                .map(|h| h.format())
                .unwrap_or("unknown");
            let Ok(new) =
                tokio::task::spawn_blocking(move || crate::credentials::hash_password(&secret))
                    .await
            else {
                return;
            };
            let mut args = store.login_args(&login);
            args.insert(0, new);
            args.push(stored);
            let written = match &store.pool {
                Pool::Postgres(pool) => execute(pool, &update, args).await,
                Pool::MySql(pool) => execute(pool, &update, args).await,
            };
            store.cache.lock().expect("not poisoned").remove(&login);
            match written {
                Ok(1) => {
                    tracing::info!(format, "user store: a {format} hash rewritten as argon2id")
                }
                Ok(_) => tracing::info!(
                    format,
                    "user store: not rehashed, the row changed since it was read"
                ),
                Err(e) => tracing::warn!(error = %e, "user store: rehash not written"),
            }
        });
    }

    /// Sets `gauge` to the rows whose hash is not argon2id yet, now and
    /// once a minute, while the store is in use.
    pub fn count_legacy_hashes(self: &Arc<Self>, gauge: prometheus::IntGauge) {
        let Some(count) = self.config.legacy_count.clone() else {
            return;
        };
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let Some(store) = store.upgrade() else { return };
                let counted = match &store.pool {
                    Pool::Postgres(pool) => count_rows(pool, &count).await,
                    Pool::MySql(pool) => count_rows(pool, &count).await,
                };
                match counted {
                    Ok(n) => gauge.set(n),
                    Err(e) => tracing::warn!(error = %e, "user store: legacy_count failed"),
                }
            }
        });
    }

    /// The query's parameters for a login: the login, or for the project
    /// dialect its business and proyecto.
    fn login_args(&self, login: &str) -> Vec<String> {
        match self.dialect {
            Dialect::Project => {
                let (business, proyecto) = login.split_once('/').unwrap_or((login, ""));
                vec![business.to_string(), proyecto.to_string()]
            }
            _ => vec![login.to_string()],
        }
    }

    /// Whether the database answered the last time it was asked.
    pub fn reachable(&self) -> bool {
        !self.failing.load(Ordering::Relaxed)
    }

    fn failed(&self, error: &str) -> Unavailable {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error,
                "user store unavailable: logins answer 503 until it is back"
            );
        }
        Unavailable
    }

    /// Logs each of the config's principals the table also has: the
    /// config's is the one that logs in, and the table is never asked.
    async fn warn_of_clashes(&self, issuer: &str, principals: &Principals) {
        if self.failing.load(Ordering::Relaxed) {
            return;
        }
        for p in principals.iter().take(MAX_CLASH_CHECKS) {
            if let Ok(Some(_)) = self.find(&p.login).await {
                tracing::warn!(
                    issuer,
                    login = %p.login,
                    "a login both in the config and the user store: the config's principal is used"
                );
            }
        }
    }

    fn cached(&self, login: &str) -> Option<Option<Arc<Principal>>> {
        let revoked = *self.revocations.borrow();
        let cache = self.cache.lock().expect("not poisoned");
        let (at, seen, found) = cache.get(login)?;
        (at.elapsed() < self.config.cache_ttl && *seen == revoked).then(|| found.clone())
    }

    fn keep(&self, login: &str, found: Option<Arc<Principal>>) {
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.len() >= MAX_CACHED {
            let ttl = self.config.cache_ttl;
            cache.retain(|_, (at, _, _)| at.elapsed() < ttl);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        let revoked = *self.revocations.borrow();
        cache.insert(login.to_string(), (Instant::now(), revoked, found));
    }

    /// A row as the dialect's principal; `None` (logged, naming the format
    /// and never the hash) when its secret is in no format portero knows.
    fn principal<R>(&self, row: &R, login: &str) -> Option<Principal>
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
        let flag = |name: &str, default: bool| -> bool {
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
        self.stand_in.lock().expect("not poisoned").saw(&secret);
        let id = row
            .try_get::<Option<i64>, _>("id")
            .ok()
            .flatten()
            .or_else(|| {
                row.try_get::<Option<i32>, _>("id")
                    .ok()
                    .flatten()
                    .map(i64::from)
            })
            .map(serde_json::Value::from)
            .or_else(|| text("id").map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null);
        let (business, proyecto) = (text("business"), text("proyecto"));
        let login = self.dialect.login_of(
            text("username").as_deref(),
            text("client_id").as_deref(),
            business.as_deref(),
            proyecto.as_deref(),
        )?;
        let permissions = text("permissions")
            .map(|p| {
                p.split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Some(Principal {
            login,
            secret,
            stored_hash: text("secret_hash"),
            id,
            username: text("username"),
            nombre: text("nombre"),
            role: text("role"),
            business,
            proyecto,
            client_id: text("client_id"),
            company: text("company"),
            permissions,
            active: flag("active", true),
            blocked: flag("blocked", false),
            rate_limit: None,
            auth_method: None,
            introspect: false,
        })
    }
}
