//! The r2d2 pool and its connection manager. The manager picks the backend from the URL and,
//! for SQLite, sets the PRAGMAs every connection needs before it is handed out.

use std::time::Duration;

use diesel::connection::{Connection, TransactionManager};
use diesel::{PgConnection, SqliteConnection};

use crate::connection::DbConnection;
use crate::url::DatabaseUrl;

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// How SQLite syncs commits. `Full` (the default) fsyncs the WAL on every commit so an
/// acknowledged write survives a power cut; `Normal` survives a process crash but may lose the
/// last commits on power loss. It is a documented setting, never a silent trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

impl SqliteSync {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Some(SqliteSync::Full),
            "normal" => Some(SqliteSync::Normal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connection_timeout: Duration,
    pub sqlite_sync: SqliteSync,
    pub sqlite_busy_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            connection_timeout: Duration::from_secs(10),
            sqlite_sync: SqliteSync::Full,
            sqlite_busy_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not connect to the database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("could not configure the database connection: {0}")]
    Setup(#[from] diesel::result::Error),
}

/// SQLite page cache per pooled connection (KiB). Readers mostly fetch a few rows by key and
/// the OS caches the file anyway; sixteen connections at SQLite's default 2 MB each were a
/// sixth of the server's memory budget. The writer has its own, larger cache (`committer`).
const READER_CACHE_KIB: u32 = 1024;

#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    options: PoolOptions,
}

impl Manager {
    pub fn new(url: DatabaseUrl, options: PoolOptions) -> Self {
        Self { url, options }
    }

    pub fn connect(&self) -> Result<DbConnection, ConnectError> {
        self.connect_with(false)
    }

    /// The committer's connection. On SQLite with `synchronous = FULL` it writes the WAL
    /// through [`crate::wal_buffer`], which turns a commit's two `pwrite` calls per frame into
    /// one per 31 frames; that VFS relies on the sync every FULL commit ends with.
    pub fn connect_writer(&self) -> Result<DbConnection, ConnectError> {
        self.connect_with(self.options.sqlite_sync == SqliteSync::Full)
    }

    fn connect_with(&self, buffered_wal: bool) -> Result<DbConnection, ConnectError> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let buffered_wal = buffered_wal && crate::wal_buffer::supports(&path);
                let mut conn = if !buffered_wal {
                    SqliteConnection::establish(&path)?
                } else if let Err(rc) = crate::wal_buffer::register() {
                    tracing::warn!(
                        rc,
                        "buffered-WAL VFS not registered; the WAL is written unbuffered"
                    );
                    SqliteConnection::establish(&path)?
                } else {
                    SqliteConnection::establish(&crate::wal_buffer::uri(&path))?
                };
                let sync = match self.options.sqlite_sync {
                    SqliteSync::Full => "FULL",
                    SqliteSync::Normal => "NORMAL",
                };
                // WAL mode is a property of the file, set once by `enable_wal` before the pool
                // opens: switching it takes an exclusive lock that SQLite does not wait for, so
                // pool connections opening at once on a fresh file would see "database is
                // locked". No checkpoint on commit: `checkpointer` does them off the commit
                // path. A savepoint's sub-journal stays in memory (every unit runs in one).
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    &format!(
                        "PRAGMA busy_timeout = {};\
                         PRAGMA synchronous = {sync};\
                         PRAGMA foreign_keys = ON;\
                         PRAGMA wal_autocheckpoint = 0;\
                         PRAGMA journal_size_limit = 67108864;\
                         PRAGMA temp_store = MEMORY;\
                         PRAGMA cache_size = -{READER_CACHE_KIB};",
                        self.options.sqlite_busy_timeout.as_millis()
                    ),
                )?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => Ok(DbConnection::Postgres(PgConnection::establish(url)?)),
        }
    }
}

impl Manager {
    /// Puts a SQLite database in WAL mode (it stays so); a no-op for PostgreSQL. Call it once,
    /// before any pool or writer connection opens.
    pub fn enable_wal(&self) -> Result<(), ConnectError> {
        if let DatabaseUrl::Sqlite(path) = &self.url {
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL;",
                    self.options.sqlite_busy_timeout.as_millis()
                ),
            )?;
        }
        Ok(())
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        Manager::connect(self)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        conn.execute_batch("SELECT 1").map_err(ConnectError::Setup)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        // A connection left inside a transaction (a panic mid-unit) must not be reused.
        <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

pub fn build_pool(url: &DatabaseUrl, options: PoolOptions) -> Result<Pool, r2d2::Error> {
    let max_size = options.max_size;
    let timeout = options.connection_timeout;
    r2d2::Pool::builder()
        .max_size(max_size)
        // A PostgreSQL connection can die with the server or the network, so it is checked
        // before use; a SQLite connection is a file handle, and checking it would cost a
        // statement on every read.
        .test_on_check_out(!url.is_sqlite())
        .connection_timeout(timeout)
        .build(Manager::new(url.clone(), options))
}
