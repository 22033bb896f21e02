//! The connections to the operator's database, PostgreSQL or MySQL/MariaDB,
//! and the few statements the user store runs through them.

use sqlx::mysql::{MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Column, ColumnIndex, Connection, Database, Decode, Executor, Row, Type};

use crate::config::UserStoreConfig;

/// Each database through its own driver: sqlx's `Any` driver cannot read
/// MySQL's `TINYINT(1)`, the type of most flag columns there.
pub enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// A row as the database's driver read it.
pub enum FetchedRow {
    Postgres(PgRow),
    MySql(MySqlRow),
}

impl Pool {
    /// A pool that connects when first used: the database may come up
    /// after portero.
    pub fn connect_lazy(config: &UserStoreConfig) -> Result<Pool, sqlx::Error> {
        let url = &config.url;
        if url.starts_with("mysql://") {
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
    }

    /// The one row `sql` returns for `args`, if any.
    pub async fn fetch_optional(
        &self,
        sql: &str,
        args: Vec<String>,
    ) -> Result<Option<FetchedRow>, sqlx::Error> {
        Ok(match self {
            Pool::Postgres(pool) => fetch(pool, sql, args).await?.map(FetchedRow::Postgres),
            Pool::MySql(pool) => fetch(pool, sql, args).await?.map(FetchedRow::MySql),
        })
    }

    /// Runs `sql` with `args`; the rows it changed.
    pub async fn execute(&self, sql: &str, args: Vec<String>) -> Result<u64, sqlx::Error> {
        match self {
            Pool::Postgres(pool) => execute(pool, sql, args).await,
            Pool::MySql(pool) => execute(pool, sql, args).await,
        }
    }

    /// The one number `sql` returns.
    pub async fn count(&self, sql: &str) -> Result<i64, sqlx::Error> {
        match self {
            Pool::Postgres(pool) => count_rows(pool, sql).await,
            Pool::MySql(pool) => count_rows(pool, sql).await,
        }
    }

    /// The names of the columns `query` returns, asked of the database at
    /// `url` without running it, on a connection of its own, closed after:
    /// the pool's connections are made by the runtime that uses them.
    pub async fn column_names(&self, url: &str, query: &str) -> Result<Vec<String>, sqlx::Error> {
        match self {
            Pool::Postgres(_) => column_names::<PgConnection>(url, query).await,
            Pool::MySql(_) => column_names::<MySqlConnection>(url, query).await,
        }
    }
}

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
