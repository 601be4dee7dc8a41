//! `Store`: the pool for reads, the committer for writes, opened and migrated in one call.

use std::sync::Arc;

use steward_core::Error;

use crate::autovacuum;
use crate::checkpointer::Checkpointer;
use crate::committer::Committer;
use crate::connection::{Backend, DbConnection};
use crate::migrations;
use crate::pool::{build_pool, Manager, Pool, PoolOptions};
use crate::url::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("could not open the database pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("could not prepare the database: {0}")]
    Setup(crate::pool::ConnectError),
    #[error(transparent)]
    Migration(#[from] migrations::MigrationError),
    #[error("could not start the committer thread: {0}")]
    Committer(std::io::Error),
    #[error("could not start the WAL checkpoint thread: {0}")]
    Checkpointer(std::io::Error),
}

#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    committer: Committer,
    backend: Backend,
    url: DatabaseUrl,
    /// SQLite only; stops with the store.
    _checkpointer: Option<Checkpointer>,
}

impl Store {
    /// Opens the pool, runs pending migrations, starts the committer.
    pub fn open(url: &DatabaseUrl, options: PoolOptions) -> Result<Self, OpenError> {
        let store = Self::open_unmigrated(url, options)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens without migrating (for `steward migrate`, which reports what it ran).
    pub fn open_unmigrated(url: &DatabaseUrl, options: PoolOptions) -> Result<Self, OpenError> {
        if let DatabaseUrl::Sqlite(path) = url {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| OpenError::CreateDir {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
        }
        Manager::new(url.clone(), options.clone())
            .enable_wal()
            .map_err(OpenError::Setup)?;
        let pool = build_pool(url, options.clone())?;
        let backend = if url.is_sqlite() {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let committer =
            Committer::start(Manager::new(url.clone(), options)).map_err(OpenError::Committer)?;
        let checkpointer = match backend {
            Backend::Sqlite => Some(
                Checkpointer::start(pool.clone(), committer.commits())
                    .map_err(OpenError::Checkpointer)?,
            ),
            Backend::Postgres => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                committer,
                backend,
                url: url.clone(),
                _checkpointer: checkpointer,
            }),
        })
    }

    /// Runs pending migrations; on PostgreSQL, also warns if autovacuum is off.
    pub fn migrate(&self) -> Result<usize, OpenError> {
        let mut conn = self.inner.pool.get()?;
        let ran = migrations::run_pending(&mut conn)?;
        autovacuum::warn_if_off(&mut conn);
        Ok(ran)
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.inner.url
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub fn committer(&self) -> &Committer {
        &self.inner.committer
    }

    /// A read on a pooled connection, off the async executor.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, Error> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|_| Error::internal_msg("read task failed"))?
    }

    /// A short read — a handful of rows found by key, like authenticating a credential or
    /// fetching one visitor. On SQLite it runs right here on the calling thread: an indexed
    /// lookup in a local file takes microseconds, far less than handing the work to another
    /// thread and waking the caller again (under load those hand-offs were most of the CPU a
    /// read cost). On PostgreSQL every query is a network round trip, so it goes to the
    /// blocking pool like any other read. Never use it for scans or pages of records.
    pub async fn read_point<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, Error> + Send + 'static,
    {
        match self.inner.backend {
            Backend::Sqlite => self.read_blocking(f),
            Backend::Postgres => self.read(f).await,
        }
    }

    pub fn read_blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, Error>,
    {
        let mut conn = self.inner.pool.get()?;
        f(&mut conn)
    }

    /// A long read that can use several connections at once (verifying a whole audit chain):
    /// `f` gets one connection for sure and up to `n - 1` more that are idle right now. Never
    /// waiting for the extra ones means two such reads can never deadlock on the pool.
    pub async fn read_parallel<T, F>(&self, n: usize, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Vec<&mut DbConnection>) -> Result<T, Error> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_parallel_blocking(n, f))
            .await
            .map_err(|_| Error::internal_msg("read task failed"))?
    }

    pub fn read_parallel_blocking<T, F>(&self, n: usize, f: F) -> Result<T, Error>
    where
        F: FnOnce(Vec<&mut DbConnection>) -> Result<T, Error>,
    {
        let mut conns = vec![self.inner.pool.get()?];
        while conns.len() < n {
            match self.inner.pool.try_get() {
                Some(c) => conns.push(c),
                None => break,
            }
        }
        f(conns.iter_mut().map(|c| &mut **c).collect())
    }

    /// A write through the group committer; resolves after its commit is durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, Error> + Send + 'static,
    {
        self.inner.committer.submit(f).await
    }

    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, Error> + Send + 'static,
    {
        self.inner.committer.submit_blocking(f)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), Error> {
        self.read(|conn| conn.execute_batch("SELECT 1").map_err(Error::from))
            .await
    }
}
