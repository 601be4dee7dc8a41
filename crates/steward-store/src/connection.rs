//! The one connection type domain code sees. Queries written against it run on either backend;
//! the few statements that differ (upserts, locking) match on the variant.

use diesel::connection::{
    AnsiTransactionManager, Connection, SimpleConnection, TransactionManager,
};
use diesel::{PgConnection, SqliteConnection};

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl DbConnection {
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Sqlite(_) => Backend::Sqlite,
            DbConnection::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs `f` in a transaction that holds the write lock from its first statement: on
    /// SQLite `BEGIN IMMEDIATE`, on PostgreSQL a plain `BEGIN`. Nested `transaction` calls
    /// inside `f` are savepoints, as usual.
    ///
    /// The group committer needs this. A deferred `BEGIN` starts as a read transaction and
    /// upgrades at its first write; if another connection holds SQLite's WAL write lock at
    /// that instant, even for microseconds (a reader re-reading a WAL header it caught
    /// mid-update takes it), the upgrade fails at once with "database is locked" — SQLite
    /// does not wait on an upgrade, since waiting there could deadlock — and the whole batch
    /// fails. `BEGIN IMMEDIATE` takes the lock before anything is read, where `busy_timeout`
    /// applies, so the committer waits out such a holder instead (BENCHMARKS.md, "Session 14").
    pub fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        type Manager = <DbConnection as Connection>::TransactionManager;
        match self {
            DbConnection::Sqlite(c) => {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
            }
            DbConnection::Postgres(_) => Manager::begin_transaction(self)?,
        }
        match f(self) {
            Ok(value) => {
                Manager::commit_transaction(self)?;
                Ok(value)
            }
            // As diesel's own `transaction`: a manager already broken (a savepoint that failed
            // to release) keeps the closure's error, which is the one worth logging.
            Err(e) => match Manager::rollback_transaction(self) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
                Err(rollback) => Err(rollback.into()),
            },
        }
    }

    /// Runs raw SQL with no results (PRAGMAs, `SELECT 1` checks).
    pub fn execute_batch(&mut self, sql: &str) -> diesel::QueryResult<()> {
        match self {
            DbConnection::Sqlite(c) => c.batch_execute(sql),
            DbConnection::Postgres(c) => c.batch_execute(sql),
        }
    }
}
