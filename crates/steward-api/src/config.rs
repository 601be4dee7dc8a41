//! What a running Steward needs to know, resolved from flags and environment by the CLI.

use std::path::PathBuf;

use steward_store::pool::SqliteSync;
use steward_store::DatabaseUrl;

#[derive(Debug, Clone)]
pub struct Config {
    /// Holds the SQLite file (embedded default) and `master.key`.
    pub data_dir: PathBuf,
    /// `None`: SQLite at `data_dir/steward.db`.
    pub database_url: Option<String>,
    pub sqlite_sync: SqliteSync,
    pub pool_size: u32,
}

impl Config {
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            sqlite_sync: SqliteSync::Full,
            pool_size: 16,
        }
    }

    pub fn database_url(&self) -> Result<DatabaseUrl, steward_store::url::UrlError> {
        match &self.database_url {
            Some(url) => DatabaseUrl::parse(url),
            None => Ok(DatabaseUrl::Sqlite(self.data_dir.join("steward.db"))),
        }
    }
}
