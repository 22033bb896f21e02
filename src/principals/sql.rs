//! Principals read where the replaced service keeps them: one row of a
//! PostgreSQL or MySQL/MariaDB table per login, through the operator's
//! query (`pool`), its columns named as the dialect's principal keys
//! (`rows`). The config's principals come first: a login in both is logged
//! at start. Rows are kept for `cache_ttl`, or until the next revocation
//! (`cache`); an unreachable database makes logins answer 5xx in the
//! dialect's shape (tokens already issued are validated as ever, from
//! memory), with one WARN line per outage. Legacy hashes are rewritten as
//! argon2id (`rehash`).

mod cache;
mod pool;
mod rehash;
mod rows;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cache::Cache;
use pool::Pool;
pub use rows::QueryError;
use rows::Rows;

use crate::config::{AccountForm, Dialect, HashLimits, Principal, Principals, UserStoreConfig};

/// The config's principals looked up in the table at start, for clashes.
const MAX_CLASH_CHECKS: usize = 1000;

pub struct UserStore {
    pool: Pool,
    config: UserStoreConfig,
    form: AccountForm,
    cache: Cache,
    /// Set while the database fails, so an outage logs once.
    failing: AtomicBool,
    /// The query's columns were found to suit the dialect.
    columns_checked: AtomicBool,
    rows: Rows,
}

/// The database could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the user store could not answer")]
pub struct Unavailable;

/// Why the user stores could not be opened, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL makes no pool.
    #[error("issuers.{issuer}.user_store.url: {source}")]
    Url { issuer: String, source: sqlx::Error },
    /// The query does not suit the issuer's dialect.
    #[error("issuers.{issuer}.{source}")]
    Query { issuer: String, source: QueryError },
}

/// The user stores of `config`'s issuers, by issuer index, their queries
/// checked against their dialects where the databases answer now (a
/// database that does not is logged, and logins wait for it).
pub async fn open(
    config: &crate::config::Config,
    revocations: &crate::auth::revocation::Revocations,
    legacy_hashes: &prometheus::IntGaugeVec,
) -> Result<Vec<Option<Arc<UserStore>>>, OpenError> {
    let mut stores = Vec::new();
    for issuer in &config.issuers {
        let (Some(settings), Some(accounts)) = (&issuer.user_store, &issuer.accounts) else {
            stores.push(None);
            continue;
        };
        let store = UserStore::new(
            settings,
            accounts.form,
            accounts.hash_limits,
            revocations.subscribe(),
        )
        .map_err(|source| OpenError::Url {
            issuer: issuer.name.clone(),
            source,
        })?;
        match store.check_columns().await {
            Ok(true) => {}
            Ok(false) => {
                store.failing.store(true, Ordering::Relaxed);
                tracing::warn!(
                    issuer = %issuer.name,
                    "user store not reachable: logins wait for it, and its query is checked then"
                );
            }
            Err(source) => {
                return Err(OpenError::Query {
                    issuer: issuer.name.clone(),
                    source,
                })
            }
        }
        let store = Arc::new(store);
        store
            .warn_of_clashes(&issuer.name, &accounts.principals)
            .await;
        store.count_legacy_hashes(legacy_hashes.with_label_values(&[&issuer.name]));
        stores.push(Some(store));
    }
    Ok(stores)
}

impl UserStore {
    /// A store whose pool connects when first used: the database may come
    /// up after portero.
    fn new(
        config: &UserStoreConfig,
        form: AccountForm,
        limits: HashLimits,
        revocations: tokio::sync::watch::Receiver<u64>,
    ) -> Result<UserStore, sqlx::Error> {
        Ok(UserStore {
            pool: Pool::connect_lazy(config)?,
            config: config.clone(),
            form,
            cache: Cache::new(config.cache_ttl, revocations),
            failing: AtomicBool::new(false),
            columns_checked: AtomicBool::new(false),
            rows: Rows::new(form, limits),
        })
    }

    /// Checks the query's columns against the dialect without reading a
    /// row: a missing column is named. `Ok(false)`: the database could not
    /// be asked now.
    async fn check_columns(&self) -> Result<bool, QueryError> {
        let check = self.pool.column_names(&self.config.url, &self.config.query);
        let columns = match tokio::time::timeout(self.config.timeout, check).await {
            Ok(Ok(columns)) => columns,
            Ok(Err(sqlx::Error::Database(e))) => {
                return Err(QueryError::Refused(e.message().to_string()))
            }
            Ok(Err(_)) | Err(_) => return Ok(false),
        };
        rows::check_columns(self.form, columns)?;
        self.columns_checked.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// The principal named `login`, if the table has one.
    pub async fn find(&self, login: &str) -> Result<Option<Arc<Principal>>, Unavailable> {
        if login.chars().any(char::is_control) {
            return Ok(None);
        }
        if let Some(found) = self.cache.get(login) {
            return Ok(found);
        }
        // A database that was down at start has its query checked once it answers.
        if !self.columns_checked.load(Ordering::Relaxed) {
            match self.check_columns().await {
                Ok(true) => {}
                Ok(false) => return Err(self.failed("not reachable")),
                Err(e) => return Err(self.failed(&e.to_string())),
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
                issuer_dialect = self.form.name(),
                "user store reachable again"
            );
        }
        let found = found.map(Arc::new);
        self.cache.keep(login, found.clone());
        Ok(found)
    }

    /// The formats and costs of the rows read, as `credentials::StandIn`.
    pub fn stand_in(&self) -> &std::sync::Mutex<crate::credentials::StandIn> {
        self.rows.stand_in()
    }

    /// The row the query returns for `login`, as a principal; `Err(None)`
    /// when the database did not answer in time.
    async fn read(&self, login: &str) -> Result<Option<Principal>, Option<sqlx::Error>> {
        let args = self.login_args(login);
        let read = async {
            let row = self.pool.fetch_optional(&self.config.query, args).await?;
            Ok::<_, sqlx::Error>(row.and_then(|row| self.rows.principal(&row, login)))
        };
        match tokio::time::timeout(self.config.timeout, read).await {
            Ok(read) => read.map_err(Some),
            Err(_) => Err(None),
        }
    }

    /// The query's parameters for a login: the login, or for the project
    /// dialect its business and proyecto.
    fn login_args(&self, login: &str) -> Vec<String> {
        match self.form {
            AccountForm::Dialect(Dialect::Project) => {
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
}
