//! The one connection type domain code sees. Queries written against it run on either backend;
//! the few statements that differ (upserts, locking) match on the variant.

use diesel::connection::SimpleConnection;
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

    /// Runs raw SQL with no results (PRAGMAs, `SELECT 1` checks).
    pub fn execute_batch(&mut self, sql: &str) -> diesel::QueryResult<()> {
        match self {
            DbConnection::Sqlite(c) => c.batch_execute(sql),
            DbConnection::Postgres(c) => c.batch_execute(sql),
        }
    }
}
